//! Tags as CSV, one row per tag, for bulk editing in a spreadsheet.
//!
//! The columns are the keys of a tag in the TOML file (`device`, `location`, `name`,
//! `datatype`, `address`, then the optional settings), so the two formats say the same thing
//! in the same words. An empty cell is an absent setting. Export writes every column; import
//! needs only the five required ones, in any order, and refuses unknown columns (a misspelt
//! header would otherwise drop a setting silently).
//!
//! Errors name the row as a spreadsheet numbers it (the header is row 1) and the column:
//! `row[7].datatype`. Every row is checked; one pass shows every
//! problem in the file. [`read_csv`] also returns the rows that did read, so the caller can
//! check them against the model's rules in the same pass: an engineer fixing a sheet of 5,000
//! rows sees a typo in row 12 and a missing device in row 4,000 at once, not one after the
//! other.
//!
//! Spreadsheets set to a European locale save with `;` between cells: the header decides
//! which separator the file uses. A byte order mark (Excel's "CSV UTF-8") is skipped.

use serde_json::{Map, Value as JsonValue};

use crate::model::Tag;
use crate::validate::{ModelError, ModelErrors};

/// Every column, in export order.
pub const COLUMNS: [&str; 20] = [
    "device",
    "location",
    "name",
    "datatype",
    "address",
    "unit",
    "description",
    "writable",
    "byte_order",
    "length",
    "raw_type",
    "gain",
    "offset",
    "raw_low",
    "raw_high",
    "eng_low",
    "eng_high",
    "deadband",
    "deadband_percent",
    "scan_class",
];

const REQUIRED: [&str; 5] = ["device", "location", "name", "datatype", "address"];

/// Columns whose cells are numbers (the rest are text, and `writable` a yes/no).
const NUMBERS: [&str; 9] = [
    "length",
    "gain",
    "offset",
    "raw_low",
    "raw_high",
    "eng_low",
    "eng_high",
    "deadband",
    "deadband_percent",
];

/// Writes `tags` as CSV with a header row of every column.
pub fn to_csv<'a>(tags: impl IntoIterator<Item = &'a Tag>) -> String {
    let mut out = ::csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail; the results are checked all the same.
    let mut write = |cells: &[String]| {
        let _ = out.write_record(cells);
    };
    write(&COLUMNS.map(str::to_owned));
    for tag in tags {
        let json = serde_json::to_value(tag).unwrap_or(JsonValue::Null);
        let cells = COLUMNS.map(|c| match json.get(c) {
            None | Some(JsonValue::Null) => String::new(),
            Some(JsonValue::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
        write(&cells);
    }
    let bytes = out.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// One tag read from a CSV file, with the spreadsheet row it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvTag {
    pub row: usize,
    pub tag: Tag,
}

/// Reads tags from CSV text. Either every row is a tag, or every problem is returned, each
/// naming `row[N].column`. Rules that need the rest of the model (the device exists, the
/// location is in the namespace) are for [`crate::Model::validate`] once the tags are in it.
pub fn from_csv(text: &str) -> Result<Vec<CsvTag>, ModelErrors> {
    let read = read_csv(text);
    if read.errors.is_empty() {
        Ok(read.tags)
    } else {
        Err(ModelErrors(read.errors))
    }
}

/// What a CSV file holds: the rows that read as tags, and the problems of the others.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvRead {
    /// Every row whose cells read, in file order, even when other rows' cells do not.
    pub tags: Vec<CsvTag>,
    /// Each naming `row[N].column`. A bad header (an unknown, doubled or missing column) is
    /// reported alone, with no rows read: the cells could not be trusted to their columns.
    pub errors: Vec<ModelError>,
}

/// Reads every row of CSV text that can be read, and names the problem of each that cannot.
pub fn read_csv(text: &str) -> CsvRead {
    read_rows(text).unwrap_or_else(|errors| CsvRead {
        tags: Vec::new(),
        errors,
    })
}

/// The rows that read and the errors of the rest; `Err` with the header's problems.
fn read_rows(text: &str) -> Result<CsvRead, Vec<ModelError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header_line = text.lines().next().unwrap_or("");
    let delimiter = if header_line.contains(';') && !header_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
        Err(e) => {
            return Err(vec![ModelError::new("row[1]", "", format!("not CSV: {e}"))]);
        }
    };
    let mut errors = Vec::new();
    for (i, column) in headers.iter().enumerate() {
        if !COLUMNS.contains(&column.as_str()) {
            errors.push(ModelError::new(
                format!("row[1].column[{}]", i + 1),
                column,
                format!("unknown column; the columns are {}", COLUMNS.join(", ")),
            ));
        } else if headers[..i].contains(column) {
            errors.push(ModelError::new(
                format!("row[1].column[{}]", i + 1),
                column,
                "this column appears twice",
            ));
        }
    }
    for required in REQUIRED {
        if !headers.iter().any(|h| h == required) {
            errors.push(ModelError::new(
                "row[1]",
                header_line,
                format!(
                    "the column {required:?} is missing; every tag needs {}",
                    REQUIRED.join(", ")
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut tags = Vec::new();
    for record in reader.records() {
        // The line the row starts on: a spreadsheet's row number, blank lines included
        // (unless a cell above holds a line break, which spreadsheets count as one row).
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map_or(0, |p| p.line());
                errors.push(ModelError::new(
                    format!("row[{row}]"),
                    "",
                    format!("not CSV: {e}"),
                ));
                continue;
            }
        };
        let row = record.position().map_or(0, |p| start_line(text, p));
        if record.iter().all(|c| c.trim().is_empty()) {
            continue; // blank lines between blocks of tags are common in hand-edited sheets
        }
        if record.len() > headers.len() {
            errors.push(ModelError::new(
                format!("row[{row}]"),
                record.iter().collect::<Vec<_>>().join(","),
                format!(
                    "has {} cells but the header has {} columns",
                    record.len(),
                    headers.len()
                ),
            ));
            continue;
        }
        let mut object = Map::new();
        for (column, cell) in headers.iter().zip(record.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            object.insert(column.clone(), cell_value(column, cell));
        }
        let json = JsonValue::Object(object);
        match serde_path_to_error::deserialize::<_, Tag>(&json) {
            Ok(tag) => tags.push(CsvTag { row, tag }),
            Err(e) => {
                let column = e.path().to_string();
                let message = e.inner().to_string();
                let (field, value) = if column == "." {
                    // A missing cell: serde names it in the message.
                    let missing = message
                        .split_once("missing field `")
                        .and_then(|(_, rest)| rest.split('`').next())
                        .unwrap_or("");
                    (format!("row[{row}].{missing}"), String::new())
                } else {
                    let value = record
                        .iter()
                        .zip(&headers)
                        .find(|(_, h)| **h == column)
                        .map(|(c, _)| c.trim().to_owned())
                        .unwrap_or_default();
                    (format!("row[{row}].{column}"), value)
                };
                let reason = if message.starts_with("missing field") {
                    "required: the cell is empty".to_owned()
                } else {
                    message
                };
                errors.push(ModelError::new(field.trim_end_matches('.'), value, reason));
            }
        }
    }
    Ok(CsvRead { tags, errors })
}

/// The line a record starts on. The reader's position is where it began looking, before the
/// blank lines it skips.
fn start_line(text: &str, position: &::csv::Position) -> usize {
    let from = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    let skipped = text
        .get(from..)
        .unwrap_or("")
        .bytes()
        .take_while(|b| matches!(b, b'\n' | b'\r'))
        .filter(|b| *b == b'\n')
        .count();
    usize::try_from(position.line()).unwrap_or(usize::MAX) + skipped
}

/// A cell as the JSON value its column takes; a cell that is not of its column's type stays
/// text, so the error says what was written.
fn cell_value(column: &str, cell: &str) -> JsonValue {
    if column == "writable" {
        return match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "x" => JsonValue::Bool(true),
            "false" | "no" | "n" | "0" => JsonValue::Bool(false),
            _ => JsonValue::String(cell.to_owned()),
        };
    }
    if NUMBERS.contains(&column) {
        if let Ok(n) = cell.parse::<u64>() {
            return JsonValue::from(n);
        }
        if let Ok(x) = cell.parse::<f64>()
            && let Some(n) = serde_json::Number::from_f64(x)
        {
            return JsonValue::Number(n);
        }
    }
    JsonValue::String(cell.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::demo_model;

    #[test]
    fn export_then_import_gives_the_same_tags() {
        let mut model = demo_model();
        model.tags[0].acquisition = crate::Acquisition {
            gain: Some(0.1),
            deadband: Some(0.5),
            ..Default::default()
        }
        .boxed();
        model.tags[1].description = Some("with \"quotes\", commas\nand a new line".to_owned());
        let text = to_csv(&model.tags);
        assert!(text.starts_with("device,location,name,datatype,address,unit,"));
        let back: Vec<Tag> = from_csv(&text)
            .unwrap()
            .into_iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(back, model.tags);
    }

    #[test]
    fn only_the_required_columns_in_any_order_with_semicolons() {
        let text = "\u{feff}name;address;datatype;location;device;writable\n\
                    speed;40001;int16;packaging/line3;press;yes\n\
                    \n\
                    torque;40002;float32;packaging/line3;press;\n";
        let tags = from_csv(text).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].row, tags[1].row), (2, 4));
        assert_eq!(tags[0].tag.name, "speed");
        assert!(tags[0].tag.writable && !tags[1].tag.writable);
        assert_eq!(tags[1].tag.datatype, crate::DataType::Float32);
    }

    #[test]
    fn every_bad_row_is_named_by_row_and_column() {
        let text = "device,location,name,datatype,address,gain,writable\n\
                    press,a/b,ok,int16,40001,,\n\
                    press,a/b,typo,flaot32,40002,,\n\
                    press,a/b,gain,int16,40003,lots,\n\
                    press,a/b,,int16,40004,,\n\
                    press,a/b,w,int16,40005,,maybe\n";
        let errors = from_csv(text).unwrap_err().0;
        let found: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("row[3].datatype", "flaot32"),
                ("row[4].gain", "lots"),
                ("row[5].name", ""),
                ("row[6].writable", "maybe"),
            ],
            "{errors:?}"
        );
        assert!(errors[0].reason.contains("float32"), "{}", errors[0].reason);
        assert_eq!(errors[2].reason, "required: the cell is empty");
    }

    #[test]
    fn unknown_duplicate_and_missing_columns_are_refused_before_any_row() {
        let errors = from_csv("device,location,nmae,datatype,address,unit,unit\n")
            .unwrap_err()
            .0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["row[1].column[3]", "row[1].column[7]", "row[1]"]);
        assert!(errors[0].reason.contains("unknown column"));
        assert!(errors[2].reason.contains("\"name\" is missing"));
    }

    #[test]
    fn rows_that_read_are_returned_beside_the_errors_of_the_others() {
        let text = "device,location,name,datatype,address\n\
                    plc,a/b,ok,int16,hr:1\n\
                    plc,a/b,typo,flaot32,hr:2\n\
                    plc,a/b,also-ok,bool,coil:1\n";
        let read = read_csv(text);
        let rows: Vec<(usize, &str)> = read
            .tags
            .iter()
            .map(|t| (t.row, t.tag.name.as_str()))
            .collect();
        assert_eq!(rows, vec![(2, "ok"), (4, "also-ok")]);
        assert_eq!(read.errors.len(), 1);
        assert_eq!(read.errors[0].field, "row[3].datatype");
        // A bad header reads no row at all.
        let read = read_csv("device,location,nmae,datatype,address\nplc,a/b,x,int16,hr:1\n");
        assert!(read.tags.is_empty());
        assert_eq!(read.errors[0].field, "row[1].column[3]");
    }
}
