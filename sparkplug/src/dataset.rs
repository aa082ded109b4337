//! DataSet values (spec §3.5): a typed table carried in a metric's `dataset_value`.
//!
//! On the wire a DataSet repeats its shape three times (`num_of_columns`, `columns`,
//! `types`) and every row carries its cells as loose `oneof`s, so a decoder has to check
//! that they agree: every count matches, every column type is basic (1..=14) and every cell
//! sits in the field its column type prescribes. [`DataSet::from_proto`] does that and
//! names the row and column that is wrong. A null cell is an element with no value set
//! (what Tahu writes), modelled as `None`.

use crate::proto::payload as pb;
use crate::value::{BasicValue, DataSetValue, DataType, ScalarField, ValueError, basic_from_field};

/// A typed table: column names, basic column types, rows of optional cells.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSet {
    pub columns: Vec<String>,
    pub types: Vec<DataType>,
    /// Each row has one cell per column; `None` is a null cell.
    pub rows: Vec<Vec<Option<DataSetValue>>>,
}

impl DataSet {
    /// The protobuf message, written as given (see [`DataSet::validate`]).
    pub fn to_proto(&self) -> pb::DataSet {
        pb::DataSet {
            num_of_columns: Some(self.columns.len() as u64),
            columns: self.columns.clone(),
            types: self.types.iter().map(|t| t.code()).collect(),
            rows: self
                .rows
                .iter()
                .map(|row| pb::data_set::Row {
                    elements: row
                        .iter()
                        .map(|cell| pb::data_set::DataSetValue {
                            value: cell
                                .as_ref()
                                .map(|c| ScalarField::from_scalar(c.to_scalar())),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Reads and checks a DataSet message.
    pub fn from_proto(p: pb::DataSet) -> Result<DataSet, ValueError> {
        let width = p.columns.len();
        if p.num_of_columns != Some(width as u64) || p.types.len() != width {
            return Err(ValueError::DataSetColumns {
                num_of_columns: p.num_of_columns,
                columns: width,
                types: p.types.len(),
            });
        }
        let types = p
            .types
            .iter()
            .enumerate()
            .map(|(column, &code)| {
                let error = match DataType::from_code(code) {
                    Some(t) if t.is_basic() => return Ok(t),
                    Some(t) => ValueError::NotBasic(t),
                    None => ValueError::UnsupportedType(code),
                };
                Err(ValueError::DataSetColumnType {
                    column,
                    error: Box::new(error),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = p
            .rows
            .into_iter()
            .enumerate()
            .map(|(row, r)| {
                if r.elements.len() != width {
                    return Err(ValueError::DataSetRow {
                        row,
                        elements: r.elements.len(),
                        columns: width,
                    });
                }
                r.elements
                    .into_iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(column, (cell, &datatype))| {
                        cell.value
                            .map(|v| basic_from_field(datatype, v))
                            .transpose()
                            .map_err(|error| ValueError::DataSetCell {
                                row,
                                column,
                                error: Box::new(error),
                            })
                    })
                    .collect()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DataSet {
            columns: p.columns,
            types,
            rows,
        })
    }

    /// Checks what [`DataSet::to_proto`] writes as given: as many types as columns, basic
    /// types only, rows as wide as the table, and each cell of its column's type.
    pub fn validate(&self) -> Result<(), ValueError> {
        let width = self.columns.len();
        if self.types.len() != width {
            return Err(ValueError::DataSetColumns {
                num_of_columns: Some(width as u64),
                columns: width,
                types: self.types.len(),
            });
        }
        if let Some((column, &t)) = self.types.iter().enumerate().find(|(_, t)| !t.is_basic()) {
            return Err(ValueError::DataSetColumnType {
                column,
                error: Box::new(ValueError::NotBasic(t)),
            });
        }
        for (row, cells) in self.rows.iter().enumerate() {
            if cells.len() != width {
                return Err(ValueError::DataSetRow {
                    row,
                    elements: cells.len(),
                    columns: width,
                });
            }
            for (column, (cell, &declared)) in cells.iter().zip(&self.types).enumerate() {
                if let Some(value) = cell.as_ref().map(BasicValue::datatype)
                    && value != declared
                {
                    return Err(ValueError::DataSetCell {
                        row,
                        column,
                        error: Box::new(ValueError::TypeMismatch { declared, value }),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::payload::data_set::data_set_value::Value as Cell;

    fn sample() -> DataSet {
        DataSet {
            columns: vec!["id".into(), "temp".into(), "ok".into(), "count".into()],
            types: vec![
                DataType::Int8,
                DataType::Float,
                DataType::Boolean,
                DataType::UInt32,
            ],
            rows: vec![
                vec![
                    Some(BasicValue::Int8(-1)),
                    Some(BasicValue::Float(1.5)),
                    None,
                    Some(BasicValue::UInt32(u32::MAX)),
                ],
                vec![None, None, Some(BasicValue::Boolean(true)), None],
            ],
        }
    }

    #[test]
    fn round_trips_with_null_cells_and_uint32_as_long() {
        let ds = sample();
        ds.validate().unwrap();
        let p = ds.to_proto();
        assert_eq!(p.num_of_columns, Some(4));
        assert_eq!(p.types, [1, 9, 11, 7]);
        assert_eq!(
            p.rows[0].elements[0].value,
            Some(Cell::IntValue(0xFFFF_FFFF))
        );
        assert_eq!(
            p.rows[0].elements[3].value,
            Some(Cell::LongValue(u64::from(u32::MAX)))
        );
        assert_eq!(p.rows[0].elements[2].value, None);
        assert_eq!(DataSet::from_proto(p), Ok(ds));
    }

    #[test]
    fn uint32_cells_are_accepted_from_int_value() {
        let mut p = sample().to_proto();
        p.rows[0].elements[3].value = Some(Cell::IntValue(5));
        let ds = DataSet::from_proto(p).unwrap();
        assert_eq!(ds.rows[0][3], Some(BasicValue::UInt32(5)));
    }

    #[test]
    fn shape_errors_name_row_and_column() {
        let mut p = sample().to_proto();
        p.num_of_columns = Some(3);
        assert!(matches!(
            DataSet::from_proto(p),
            Err(ValueError::DataSetColumns { .. })
        ));

        let mut p = sample().to_proto();
        p.num_of_columns = None;
        assert!(matches!(
            DataSet::from_proto(p),
            Err(ValueError::DataSetColumns { .. })
        ));

        let mut p = sample().to_proto();
        p.types[2] = DataType::Bytes.code();
        let e = DataSet::from_proto(p).unwrap_err();
        assert_eq!(
            e,
            ValueError::DataSetColumnType {
                column: 2,
                error: Box::new(ValueError::NotBasic(DataType::Bytes))
            }
        );

        let mut p = sample().to_proto();
        p.types[0] = 99;
        assert!(matches!(
            DataSet::from_proto(p),
            Err(ValueError::DataSetColumnType { column: 0, .. })
        ));

        let mut p = sample().to_proto();
        p.rows[1].elements.pop();
        assert_eq!(
            DataSet::from_proto(p),
            Err(ValueError::DataSetRow {
                row: 1,
                elements: 3,
                columns: 4
            })
        );

        let mut p = sample().to_proto();
        p.rows[1].elements[1].value = Some(Cell::StringValue("hot".into()));
        let e = DataSet::from_proto(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DataSet row 1 column 1: a Float value must be in float_value, the metric carries string_value"
        );
    }

    #[test]
    fn validate_catches_what_to_proto_would_write_wrongly() {
        let mut ds = sample();
        ds.rows[0][1] = Some(BasicValue::Double(1.0));
        assert_eq!(
            ds.validate(),
            Err(ValueError::DataSetCell {
                row: 0,
                column: 1,
                error: Box::new(ValueError::TypeMismatch {
                    declared: DataType::Float,
                    value: DataType::Double
                })
            })
        );
        let mut ds = sample();
        ds.types[0] = DataType::Template;
        assert!(matches!(
            ds.validate(),
            Err(ValueError::DataSetColumnType { column: 0, .. })
        ));
        let mut ds = sample();
        ds.types.pop();
        assert!(matches!(
            ds.validate(),
            Err(ValueError::DataSetColumns { .. })
        ));
    }
}
