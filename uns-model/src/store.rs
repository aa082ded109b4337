//! The SQLite store: the model the appliance runs, and the Sparkplug counters that must
//! survive restarts.
//!
//! SQLite rather than a TOML file because the web UI edits the model while the appliance runs:
//! a replacement is one transaction, so a crash or power cut mid-write leaves the old model,
//! never half of the new one. The schema evolves through [`MIGRATIONS`], applied in order and
//! in one transaction on open; a database written by a newer build is refused rather than
//! misread.

use std::collections::HashMap;
use std::path::Path;

use compact_str::CompactString;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::model::{
    Acquisition, Area, Device, DriverConfig, Line, Model, Namespace, ScanClass, SparkplugIds, Tag,
};
use crate::validate::ModelErrors;

/// Schema migrations; migration `i` brings the schema to version `i + 1` (`PRAGMA
/// user_version`). Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE areas (
    id       INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    name     TEXT NOT NULL COLLATE NOCASE UNIQUE
);
CREATE TABLE lines (
    id       INTEGER PRIMARY KEY,
    area_id  INTEGER NOT NULL REFERENCES areas(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name     TEXT NOT NULL COLLATE NOCASE,
    UNIQUE (area_id, name)
);
CREATE TABLE cells (
    id       INTEGER PRIMARY KEY,
    line_id  INTEGER NOT NULL REFERENCES lines(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name     TEXT NOT NULL COLLATE NOCASE,
    UNIQUE (line_id, name)
);
CREATE TABLE devices (
    id       INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    name     TEXT NOT NULL COLLATE NOCASE UNIQUE,
    enabled  INTEGER NOT NULL,
    driver   TEXT NOT NULL -- DriverConfig as JSON
);
CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    position    INTEGER NOT NULL,
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    location    TEXT NOT NULL,
    name        TEXT NOT NULL,
    datatype    TEXT NOT NULL,
    address     TEXT NOT NULL,
    unit        TEXT,
    description TEXT,
    writable    INTEGER NOT NULL
);
CREATE TABLE sparkplug_session (
    server      TEXT PRIMARY KEY,
    last_bd_seq INTEGER NOT NULL CHECK (last_bd_seq BETWEEN 0 AND 255)
);
"#,
    r#"
-- Sparkplug aliases given to (device, metric) so hosts see the same alias after a restart.
-- Rows of removed metrics stay, so a metric that comes back gets its old alias again.
CREATE TABLE sparkplug_aliases (
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    alias     INTEGER NOT NULL CHECK (alias >= 0),
    PRIMARY KEY (device_id, metric)
);
"#,
    r#"
-- Modbus tag settings.
ALTER TABLE tags ADD COLUMN byte_order TEXT;
ALTER TABLE tags ADD COLUMN length INTEGER;
"#,
    r#"
-- Scaling, deadband and scan classes.
ALTER TABLE tags ADD COLUMN raw_type TEXT;
ALTER TABLE tags ADD COLUMN gain REAL;
ALTER TABLE tags ADD COLUMN scale_offset REAL; -- OFFSET is an SQL keyword
ALTER TABLE tags ADD COLUMN raw_low REAL;
ALTER TABLE tags ADD COLUMN raw_high REAL;
ALTER TABLE tags ADD COLUMN eng_low REAL;
ALTER TABLE tags ADD COLUMN eng_high REAL;
ALTER TABLE tags ADD COLUMN deadband REAL;
ALTER TABLE tags ADD COLUMN deadband_percent REAL;
ALTER TABLE tags ADD COLUMN scan_class TEXT;
CREATE TABLE scan_classes (
    id        INTEGER PRIMARY KEY,
    position  INTEGER NOT NULL,
    name      TEXT NOT NULL COLLATE NOCASE UNIQUE,
    period_ms INTEGER NOT NULL
);
"#,
    r#"
-- Northbound MQTT connections, each as JSON (uns_model::Northbound).
CREATE TABLE northbound (
    position INTEGER PRIMARY KEY,
    name     TEXT NOT NULL COLLATE NOCASE UNIQUE,
    settings TEXT NOT NULL
);
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the model is invalid:\n{0}")]
    Invalid(ModelErrors),
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database has schema version {found}, but this build of sparkedge supports only up \
         to {supported}; run a newer sparkedge or use another data folder"
    )]
    NewerSchema { found: u32, supported: u32 },
}

/// An open store. One per process; writes take `&mut self`.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if absent) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        // WAL lets the web UI read while the appliance writes; the pragma returns the mode.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        // Every commit reaches the disk before it returns: a bdSeq must be durable before the
        // CONNECT that carries it, or a power cut could make the next start reuse it.
        conn.pragma_update(None, "synchronous", "FULL")?;
        Store::init(conn)
    }

    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "foreign_keys", true)?;
        // IMMEDIATE takes the write lock first, so two processes opening a fresh file
        // cannot both run the migrations.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = user_version(&tx)?;
        let supported = MIGRATIONS.len() as u32;
        if found > supported {
            return Err(StoreError::NewerSchema { found, supported });
        }
        for migration in &MIGRATIONS[found as usize..] {
            tx.execute_batch(migration)?;
        }
        tx.pragma_update(None, "user_version", supported)?;
        tx.commit()?;
        Ok(Store { conn })
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        user_version(&self.conn)
    }

    /// The stored model, in the order it was stored; `None` if no model was ever stored.
    pub fn load_model(&self) -> Result<Option<Model>, StoreError> {
        let tx = self.conn.unchecked_transaction()?; // one consistent snapshot
        let meta = |key: &str| -> Result<Option<String>, StoreError> {
            Ok(tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        };
        let Some(enterprise) = meta("enterprise")? else {
            return Ok(None);
        };
        let required = |key: &str| meta(key)?.ok_or_else(|| corrupt(format!("meta: no {key}")));
        let namespace = Namespace {
            enterprise,
            site: required("site")?,
        };
        let sparkplug = SparkplugIds {
            group_id: meta("group_id")?,
            edge_node_id: required("edge_node_id")?,
            primary_host_id: meta("primary_host_id")?,
        };

        let scan_classes = tx
            .prepare("SELECT name, period_ms FROM scan_classes ORDER BY position")?
            .query_map([], |r| {
                Ok(ScanClass {
                    name: r.get(0)?,
                    period_ms: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;

        let mut northbound = Vec::new();
        for row in tx
            .prepare("SELECT name, settings FROM northbound ORDER BY position")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        {
            let (name, settings) = row?;
            northbound.push(
                serde_json::from_str(&settings)
                    .map_err(|e| corrupt(format!("northbound {name:?}: {e}")))?,
            );
        }

        let mut areas = Vec::new();
        let mut area_rows = tx.prepare("SELECT id, name FROM areas ORDER BY position")?;
        let mut line_rows =
            tx.prepare("SELECT id, name FROM lines WHERE area_id = ?1 ORDER BY position")?;
        let mut cell_rows =
            tx.prepare("SELECT name FROM cells WHERE line_id = ?1 ORDER BY position")?;
        for area in area_rows.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))? {
            let (area_id, name) = area?;
            let mut lines = Vec::new();
            for line in line_rows.query_map([area_id], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))? {
                let (line_id, name) = line?;
                let cells = cell_rows
                    .query_map([line_id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                lines.push(Line { name, cells });
            }
            areas.push(Area { name, lines });
        }

        let mut devices = Vec::new();
        let mut rows =
            tx.prepare("SELECT id, name, enabled, driver FROM devices ORDER BY position")?;
        for row in rows.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            let (id, name, enabled, driver) = row?;
            let driver: DriverConfig = serde_json::from_str(&driver)
                .map_err(|e| corrupt(format!("devices row id {id}: driver {driver:?}: {e}")))?;
            devices.push(Device {
                name,
                enabled,
                driver,
            });
        }

        // Sized up front: growing a 100,000-tag vector by doubling briefly holds two copies,
        // and that moment is the appliance's peak memory.
        let tag_count: i64 = tx.query_row("SELECT COUNT(*) FROM tags", [], |r| r.get(0))?;
        let mut tags = Vec::with_capacity(usize::try_from(tag_count).unwrap_or(0));
        let mut rows = tx.prepare(
            "SELECT t.id, d.name, t.location, t.name, t.datatype, t.address, t.unit, t.description, t.writable,
                    t.byte_order, t.length, t.raw_type, t.gain, t.scale_offset, t.raw_low, t.raw_high,
                    t.eng_low, t.eng_high, t.deadband, t.deadband_percent, t.scan_class
             FROM tags t JOIN devices d ON d.id = t.device_id ORDER BY t.position",
        )?;
        let mut query = rows.query([])?;
        while let Some(r) = query.next()? {
            let id: i64 = r.get(0)?;
            let datatype: String = r.get(4)?;
            let raw_type: Option<String> = r.get(11)?;
            tags.push(Tag {
                device: text(r, 1)?,
                location: text(r, 2)?,
                name: text(r, 3)?,
                datatype: datatype
                    .parse()
                    .map_err(|e| corrupt(format!("tags row id {id}: datatype: {e}")))?,
                address: text(r, 5)?,
                unit: r.get(6)?,
                description: r.get(7)?,
                writable: r.get(8)?,
                byte_order: r.get(9)?,
                length: r.get(10)?,
                acquisition: Acquisition {
                    raw_type: raw_type
                        .map(|t| t.parse())
                        .transpose()
                        .map_err(|e| corrupt(format!("tags row id {id}: raw_type: {e}")))?,
                    gain: r.get(12)?,
                    offset: r.get(13)?,
                    raw_low: r.get(14)?,
                    raw_high: r.get(15)?,
                    eng_low: r.get(16)?,
                    eng_high: r.get(17)?,
                    deadband: r.get(18)?,
                    deadband_percent: r.get(19)?,
                    scan_class: r.get(20)?,
                }
                .boxed(),
            });
        }

        Ok(Some(Model {
            namespace,
            sparkplug,
            northbound,
            scan_classes,
            areas,
            devices,
            tags,
        }))
    }

    /// Validates `model` and, only if it is valid, replaces the stored model with it in one
    /// transaction.
    pub fn replace_model(&mut self, model: &Model) -> Result<(), StoreError> {
        model.validate().map_err(StoreError::Invalid)?;
        let tx = self.conn.transaction()?;
        write_model(&tx, model)?;
        tx.commit()?;
        Ok(())
    }

    /// The Sparkplug bdSeq last used in an NBIRTH on MQTT server `server`.
    pub fn last_bd_seq(&self, server: &str) -> Result<Option<u8>, StoreError> {
        let value: Option<i64> = self
            .conn
            .query_row(
                "SELECT last_bd_seq FROM sparkplug_session WHERE server = ?1",
                [server],
                |r| r.get(0),
            )
            .optional()?;
        value
            .map(|v| {
                u8::try_from(v).map_err(|_| {
                    corrupt(format!("sparkplug_session row {server:?}: last_bd_seq {v}"))
                })
            })
            .transpose()
    }

    pub fn set_last_bd_seq(&mut self, server: &str, bd_seq: u8) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sparkplug_session (server, last_bd_seq) VALUES (?1, ?2)
             ON CONFLICT (server) DO UPDATE SET last_bd_seq = excluded.last_bd_seq",
            params![server, bd_seq],
        )?;
        Ok(())
    }

    /// How many times a model was stored: changes with every [`Store::replace_model`].
    pub fn model_version(&self) -> Result<u64, StoreError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'model_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match v {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| corrupt(format!("meta: model_version {v:?} is not a number"))),
        }
    }

    /// Every Sparkplug alias remembered, by (device id, metric name).
    pub fn sparkplug_aliases(&self) -> Result<HashMap<(String, String), u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT device_id, metric, alias FROM sparkplug_aliases")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                r.get::<_, i64>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (key, alias) = row?;
            let alias = u64::try_from(alias).map_err(|_| {
                corrupt(format!(
                    "sparkplug_aliases {key:?}: alias {alias} is negative"
                ))
            })?;
            Ok((key, alias))
        })
        .collect()
    }

    /// Remembers these aliases (in one transaction), replacing what was remembered for the
    /// same (device id, metric name) and keeping the rest.
    pub fn save_sparkplug_aliases(
        &mut self,
        aliases: &[(String, String, u64)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO sparkplug_aliases (device_id, metric, alias) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id, metric) DO UPDATE SET alias = excluded.alias",
            )?;
            for (device, metric, alias) in aliases {
                let alias = i64::try_from(*alias).map_err(|_| {
                    corrupt(format!(
                        "alias {alias} of {device}/{metric} does not fit SQLite"
                    ))
                })?;
                stmt.execute(params![device, metric, alias])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// A text column read straight into a [`CompactString`], without a `String` in between.
fn text(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<CompactString> {
    Ok(CompactString::from(row.get_ref(column)?.as_str()?))
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    u32::try_from(v).map_err(|_| corrupt(format!("user_version {v}")))
}

fn write_model(tx: &Transaction<'_>, model: &Model) -> Result<(), StoreError> {
    tx.execute_batch(
        "DELETE FROM tags; DELETE FROM devices; DELETE FROM cells; DELETE FROM lines; DELETE FROM scan_classes; DELETE FROM northbound;
         DELETE FROM areas; DELETE FROM meta WHERE key IN ('enterprise', 'site', 'group_id', 'edge_node_id', 'primary_host_id');",
    )?;
    let mut meta = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
    // Counts replacements, so a running appliance can tell the model it runs from a newer one.
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('model_version', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    meta.execute(["enterprise", &model.namespace.enterprise])?;
    meta.execute(["site", &model.namespace.site])?;
    meta.execute(["edge_node_id", &model.sparkplug.edge_node_id])?;
    if let Some(group) = &model.sparkplug.group_id {
        meta.execute(["group_id", group])?;
    }
    if let Some(host) = &model.sparkplug.primary_host_id {
        meta.execute(["primary_host_id", host])?;
    }

    for (i, nb) in model.northbound.iter().enumerate() {
        tx.execute(
            "INSERT INTO northbound (position, name, settings) VALUES (?1, ?2, ?3)",
            params![
                i as i64,
                nb.name,
                serde_json::to_string(nb).expect("Northbound always serializes to JSON")
            ],
        )?;
    }

    for (i, class) in model.scan_classes.iter().enumerate() {
        tx.execute(
            "INSERT INTO scan_classes (position, name, period_ms) VALUES (?1, ?2, ?3)",
            params![i as i64, class.name, class.period_ms],
        )?;
    }

    for (a, area) in model.areas.iter().enumerate() {
        tx.execute(
            "INSERT INTO areas (position, name) VALUES (?1, ?2)",
            params![a as i64, area.name],
        )?;
        let area_id = tx.last_insert_rowid();
        for (l, line) in area.lines.iter().enumerate() {
            tx.execute(
                "INSERT INTO lines (area_id, position, name) VALUES (?1, ?2, ?3)",
                params![area_id, l as i64, line.name],
            )?;
            let line_id = tx.last_insert_rowid();
            for (c, cell) in line.cells.iter().enumerate() {
                tx.execute(
                    "INSERT INTO cells (line_id, position, name) VALUES (?1, ?2, ?3)",
                    params![line_id, c as i64, cell],
                )?;
            }
        }
    }

    for (d, device) in model.devices.iter().enumerate() {
        let driver =
            serde_json::to_string(&device.driver).expect("DriverConfig always serializes to JSON");
        tx.execute(
            "INSERT INTO devices (position, name, enabled, driver) VALUES (?1, ?2, ?3, ?4)",
            params![d as i64, device.name, device.enabled, driver],
        )?;
    }

    let mut insert = tx.prepare(
        "INSERT INTO tags (position, device_id, location, name, datatype, address, unit, description, writable,
                           byte_order, length, raw_type, gain, scale_offset, raw_low, raw_high, eng_low, eng_high,
                           deadband, deadband_percent, scan_class)
         VALUES (?1, (SELECT id FROM devices WHERE name = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                 ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?;
    for (t, tag) in model.tags.iter().enumerate() {
        let c = tag.acquisition();
        insert.execute(params![
            t as i64,
            tag.device.as_str(),
            tag.location.as_str(),
            tag.name.as_str(),
            tag.datatype.as_str(),
            tag.address.as_str(),
            tag.unit,
            tag.description,
            tag.writable,
            tag.byte_order,
            tag.length,
            c.raw_type.map(|t| t.as_str()),
            c.gain,
            c.offset,
            c.raw_low,
            c.raw_high,
            c.eng_low,
            c.eng_high,
            c.deadband,
            c.deadband_percent,
            c.scan_class
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::demo_model;
    use crate::value::DataType;

    fn db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparkedge.db");
        (dir, path)
    }

    /// A valid model different from the demo in every table, with non-alphabetical order.
    fn other_model() -> Model {
        let mut m = demo_model();
        m.sparkplug.group_id = Some("north".into());
        m.sparkplug.primary_host_id = Some("SCADA.Host 1".into());
        m.northbound.push(crate::Northbound {
            name: "plant".into(),
            servers: vec!["mqtt://10.0.0.5".into(), "mqtt://10.0.0.6:1884".into()],
            client_id: None,
            username: Some("edge".into()),
            password: Some("secret".into()),
            ca_pem: None,
            primary_host_id: Some("scada".into()),
            enabled: false,
        });
        m.areas.insert(
            0,
            Area {
                name: "utilities".into(),
                lines: vec![Line {
                    name: "boiler".into(),
                    cells: vec![],
                }],
            },
        );
        m.areas[1].lines[0].cells.insert(0, "washer".into());
        m.devices.insert(
            0,
            Device {
                name: "z-plc".into(),
                enabled: false,
                driver: DriverConfig::Simulator { period_ms: 50 },
            },
        );
        m.devices.push(Device {
            name: "meter".into(),
            enabled: true,
            driver: DriverConfig::ModbusRtu {
                path: "/dev/ttyS1".into(),
                baud: 9600,
                parity: crate::Parity::None,
                data_bits: 8,
                stop_bits: 2,
                unit: 12,
                inter_frame_delay_us: Some(4000),
                period_ms: 2000,
                timeout_ms: 300,
                offline_after: 2,
                max_gap: 0,
            },
        });
        m.devices.push(Device {
            name: "remote".into(),
            enabled: true,
            driver: DriverConfig::ModbusRtuTcp {
                host: "gw".into(),
                port: 4001,
                unit: 3,
                period_ms: 500,
                timeout_ms: 800,
                offline_after: 4,
                max_gap: 8,
            },
        });
        m.tags.reverse();
        m.tags.push(Tag::new(
            "z-plc",
            "utilities/boiler",
            "pressure",
            DataType::Float64,
            "ramp",
        ));
        // Types without a fixed-width register: the store keeps every type by its name.
        for (name, datatype) in [
            ("serviced", DataType::DateTime),
            ("recipe", DataType::StringArray),
            ("profile", DataType::Float32Array),
        ] {
            m.tags.push(Tag {
                writable: true,
                ..Tag::new("z-plc", "utilities/boiler", name, datatype, "memory")
            });
        }
        m.scan_classes = vec![
            ScanClass {
                name: "fast".into(),
                period_ms: 100,
            },
            ScanClass {
                name: "slow".into(),
                period_ms: 60_000,
            },
        ];
        m.tags.push(Tag {
            acquisition: Acquisition {
                raw_type: Some(DataType::Int16),
                raw_low: Some(0.0),
                raw_high: Some(27648.0),
                eng_low: Some(-10.5),
                eng_high: Some(110.25),
                deadband_percent: Some(0.5),
                scan_class: Some("fast".into()),
                ..Acquisition::default()
            }
            .boxed(),
            unit: Some("degC".into()),
            ..Tag::new(
                "meter",
                "utilities/boiler",
                "flow",
                DataType::Float32,
                "ir:3",
            )
        });
        m.tags.push(Tag {
            acquisition: Acquisition {
                raw_type: Some(DataType::UInt32),
                gain: Some(0.001),
                offset: Some(-5.0),
                deadband: Some(0.25),
                scan_class: Some("slow".into()),
                ..Acquisition::default()
            }
            .boxed(),
            byte_order: Some("CDAB".into()),
            writable: true,
            ..Tag::new(
                "remote",
                "utilities/boiler",
                "energy",
                DataType::Float64,
                "hr:10",
            )
        });
        m.validate().unwrap();
        m
    }

    #[test]
    fn migrations_bring_a_fresh_db_to_the_latest_version_idempotently() {
        let (_dir, path) = db();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as u32);
        assert_eq!(store.load_model().unwrap(), None);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as u32);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: bool = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(fk);
        assert_eq!(
            Store::open_in_memory().unwrap().schema_version().unwrap(),
            MIGRATIONS.len() as u32
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (_dir, path) = db();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, supported } if supported == MIGRATIONS.len() as u32),
            "{err}"
        );
    }

    #[test]
    fn model_round_trips_through_a_file_store() {
        let (_dir, path) = db();
        let mut store = Store::open(&path).unwrap();
        store.replace_model(&demo_model()).unwrap();
        assert_eq!(store.load_model().unwrap(), Some(demo_model()));
        store.replace_model(&other_model()).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.load_model().unwrap(), Some(other_model()));
    }

    #[test]
    fn an_invalid_model_leaves_the_stored_one_unchanged() {
        let mut store = Store::open_in_memory().unwrap();
        store.replace_model(&demo_model()).unwrap();
        let mut bad = other_model();
        bad.tags[0].device = "ghost".into();
        match store.replace_model(&bad) {
            Err(StoreError::Invalid(errors)) => assert_eq!(errors.0[0].field, "tag[0].device"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(store.load_model().unwrap(), Some(demo_model()));
    }

    #[test]
    fn an_unreadable_row_is_reported_as_corrupt() {
        let mut store = Store::open_in_memory().unwrap();
        store.replace_model(&demo_model()).unwrap();
        store
            .conn
            .execute(
                "UPDATE tags SET datatype = 'float16' WHERE position = 2",
                [],
            )
            .unwrap();
        let err = store.load_model().unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("tags row") && m.contains("float16")),
            "{err}"
        );
    }

    #[test]
    fn bd_seq_persists_per_server() {
        let (_dir, path) = db();
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.last_bd_seq("embedded").unwrap(), None);
        store.set_last_bd_seq("embedded", 7).unwrap();
        store.set_last_bd_seq("tcp://emqx:1883", 255).unwrap();
        store.set_last_bd_seq("embedded", 8).unwrap();
        store.replace_model(&demo_model()).unwrap(); // does not touch session counters
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.last_bd_seq("embedded").unwrap(), Some(8));
        assert_eq!(store.last_bd_seq("tcp://emqx:1883").unwrap(), Some(255));
        assert_eq!(store.last_bd_seq("other").unwrap(), None);
    }

    #[test]
    fn sparkplug_aliases_are_upserted_and_survive_reopen() {
        let (_dir, path) = db();
        let mut store = Store::open(&path).unwrap();
        assert!(store.sparkplug_aliases().unwrap().is_empty());
        let key = |d: &str, m: &str| (d.to_owned(), m.to_owned());
        store
            .save_sparkplug_aliases(&[
                ("plc".into(), "a/temp".into(), 1),
                ("plc".into(), "a/level".into(), 2),
            ])
            .unwrap();
        store
            .save_sparkplug_aliases(&[("plc".into(), "a/temp".into(), 9)])
            .unwrap();
        drop(store);
        let aliases = Store::open(&path).unwrap().sparkplug_aliases().unwrap();
        assert_eq!(
            aliases,
            HashMap::from([(key("plc", "a/temp"), 9), (key("plc", "a/level"), 2)])
        );
    }

    #[test]
    fn the_model_version_counts_replacements() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.model_version().unwrap(), 0);
        store.replace_model(&demo_model()).unwrap();
        store.replace_model(&demo_model()).unwrap();
        assert_eq!(store.model_version().unwrap(), 2);
        let mut bad = demo_model();
        bad.tags[0].device = "ghost".into();
        assert!(store.replace_model(&bad).is_err());
        assert_eq!(store.model_version().unwrap(), 2);
    }
}
