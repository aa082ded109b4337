//! Users, their roles and their login sessions, in a SQLite file of their own.
//!
//! The file is `<data_dir>/users.db`, apart from the model's database, so exporting or
//! importing the model never carries password hashes along, and the file can be readable by
//! the service user only (it is created with mode 0600).
//!
//! Passwords are stored as argon2id PHC strings with the crate's default cost (19 MiB, two
//! passes: OWASP's recommendation). Sessions are stored as the SHA-256 of their random token,
//! so a copy of the file does not hand out live sessions. Every call here blocks (SQLite,
//! argon2): async callers use `spawn_blocking`.
//!
//! Time is passed in (milliseconds since the Unix epoch), so expiry is tested without waiting.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, PoisonError};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use uns_model::ModelError;

/// A session ends after this long without a request.
pub const SESSION_IDLE_MS: u64 = 12 * 3600 * 1000;
/// A session ends this long after login, however busy.
pub const SESSION_MAX_MS: u64 = 7 * 24 * 3600 * 1000;
/// `last_seen` is written at most this often per session: not one disk write per request.
const LAST_SEEN_RESOLUTION_MS: u64 = 60 * 1000;

pub const NAME_RULE: &str = "must be 1 to 64 characters: ASCII letters, digits, '_', '-' or '.', \
     starting with a letter or digit";
/// NIST SP 800-63B: a length range, no composition rules.
pub const PASSWORD_RULE: &str = "must be 8 to 128 characters";
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// What a user may do. Each role includes everything the roles before it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything except secrets (passwords, keys).
    Viewer,
    /// A viewer who also writes tag values.
    Operator,
    /// Everything: configuration and users.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// True if a user with this role may use something that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UserError;

    fn from_str(s: &str) -> Result<Role, UserError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                UserError::Invalid(ModelError::new(
                    "role",
                    s,
                    "must be one of viewer, operator, admin",
                ))
            })
    }
}

/// A user as listed; never carries the password hash out of this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
}

/// A session that is still valid, with its user's role as it is now (a role changed by an
/// admin applies to sessions already open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token every unsafe request of this session must carry.
    pub csrf: String,
}

/// A session just started: `token` goes into the cookie and is not stored anywhere.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A field breaks its rule; the value is never a password.
    #[error("{0}")]
    Invalid(ModelError),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("there is no user {0:?}")]
    NotFound(String),
    #[error("{0:?} is the last admin: make another user admin first, or nobody could manage users")]
    LastAdmin(String),
    #[error("a user exists already: the first admin is created only once")]
    NotFirst,
    #[error(
        "the user database was written by a newer sparkedge (schema {found}, this one knows up to {supported})"
    )]
    NewerSchema { found: u32, supported: u32 },
    #[error("user database: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A stored value no version of sparkedge writes (a hand-edited or damaged database).
    #[error("user database: {0}")]
    Corrupt(String),
    #[error("cannot set the permissions of the user database: {0}")]
    Permissions(std::io::Error),
    #[error("the system's random source failed: {0}")]
    Random(getrandom::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task that ran a store call died.
    #[error("the user database worker failed: {0}")]
    Worker(String),
}

impl UserError {
    /// The field at fault, for errors a user can fix by changing one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            UserError::Invalid(e) => Some(&e.field),
            UserError::Exists(_) | UserError::NotFound(_) => Some("name"),
            UserError::LastAdmin(_) => Some("role"),
            _ => None,
        }
    }

    /// True for errors caused by the request (bad input, a rule), not by the server.
    pub fn is_user_fault(&self) -> bool {
        matches!(
            self,
            UserError::Invalid(_)
                | UserError::Exists(_)
                | UserError::NotFound(_)
                | UserError::LastAdmin(_)
                | UserError::NotFirst
        )
    }
}

/// Checks a user name against [`NAME_RULE`].
pub fn check_name(name: &str) -> Result<(), UserError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(ok_char)
    {
        Ok(())
    } else {
        Err(UserError::Invalid(ModelError::new("name", name, NAME_RULE)))
    }
}

/// Checks a password against [`PASSWORD_RULE`]; the error shows its length, not the password.
pub fn check_password(password: &str) -> Result<(), UserError> {
    let chars = password.chars().count();
    if PASSWORD_CHARS.contains(&chars) {
        Ok(())
    } else {
        Err(UserError::Invalid(ModelError::new(
            "password",
            format!("({chars} characters, not shown)"),
            PASSWORD_RULE,
        )))
    }
}

/// 256 random bits from the operating system, as 64 hex digits.
pub fn random_token() -> Result<String, UserError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(UserError::Random)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash no password matches, checked for unknown user names so that a login with a wrong
/// name takes as long as one with a wrong password (no user enumeration by timing).
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let secret = random_token().unwrap_or_else(|_| "sparkedge-decoy".repeat(4));
        hash_password(&secret).unwrap_or_default()
    })
}

const MIGRATIONS: [&str; 3] = [
    "
    CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY NOT NULL,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL
    );
    CREATE INDEX sessions_user ON sessions (user);
",
    "
    CREATE TABLE api_tokens (
        token_sha256 TEXT PRIMARY KEY NOT NULL,
        user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX api_tokens_user ON api_tokens (user);
",
    // MQTT users of the embedded broker (`mqtt_users`): not web users, so no sessions.
    "
    CREATE TABLE mqtt_users (
        name TEXT PRIMARY KEY NOT NULL,
        access TEXT NOT NULL CHECK (access IN ('subscribe', 'publish')),
        password_hash TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
",
];

/// Users and sessions in `users.db`.
#[derive(Debug)]
pub struct UserStore {
    conn: Mutex<Connection>,
}

impl UserStore {
    /// Opens (or creates, with mode 0600) the user database at `path`. An existing file's mode
    /// is narrowed to 0600 too: the hashes are nobody else's business.
    pub fn open(path: &Path) -> Result<UserStore, UserError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
            .map_err(UserError::Permissions)?;
        let conn = Connection::open(path)?;
        // The CLI may add a user while the service runs: wait for its write lock, not fail.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        UserStore::init(conn)
    }

    pub fn open_in_memory() -> Result<UserStore, UserError> {
        UserStore::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<UserStore, UserError> {
        conn.pragma_update(None, "foreign_keys", true)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = MIGRATIONS.len() as u32;
        if found > supported {
            return Err(UserError::NewerSchema { found, supported });
        }
        for migration in &MIGRATIONS[found as usize..] {
            tx.execute_batch(migration)?;
        }
        tx.pragma_update(None, "user_version", supported)?;
        tx.commit()?;
        Ok(UserStore {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn has_users(&self) -> Result<bool, UserError> {
        Ok(self
            .conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?)
    }

    /// Every user, by name.
    pub fn list(&self) -> Result<Vec<User>, UserError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT name, role, created_ms FROM users ORDER BY name")?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut users = Vec::new();
        for row in rows {
            let (name, role, created_ms) = row?;
            users.push(User {
                name,
                role: role.parse()?,
                created_ms: ms_of(created_ms),
            });
        }
        Ok(users)
    }

    /// Adds a user. The name and password are checked first; nothing is stored on an error.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now_ms: u64,
    ) -> Result<User, UserError> {
        self.insert(name, role, password, now_ms, false)
    }

    /// Adds the first user, an admin, only while there is no user at all (the browser setup):
    /// of two racing setups, one gets [`UserError::NotFirst`].
    pub fn add_first_admin(
        &self,
        name: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<User, UserError> {
        self.insert(name, Role::Admin, password, now_ms, true)
    }

    fn insert(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now_ms: u64,
        only_first: bool,
    ) -> Result<User, UserError> {
        check_name(name)?;
        check_password(password)?;
        // Hash before taking the lock: it takes a while and needs no database.
        let hash = hash_password(password)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if only_first && tx.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))? {
            return Err(UserError::NotFirst);
        }
        // Names are unique ignoring case, as in the model: "Admin" and "admin" are one person.
        let taken: Option<String> = tx
            .query_row(
                "SELECT name FROM users WHERE lower(name) = lower(?1)",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(taken) = taken {
            return Err(UserError::Exists(taken));
        }
        tx.execute(
            "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), hash, sql_ms(now_ms)],
        )?;
        tx.commit()?;
        Ok(User {
            name: name.to_owned(),
            role,
            created_ms: now_ms,
        })
    }

    /// Removes a user and their sessions; refuses to remove the last admin.
    pub fn remove(&self, name: &str) -> Result<(), UserError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let role = role_of(&tx, name)?;
        if role == Role::Admin && admin_count(&tx)? <= 1 {
            return Err(UserError::LastAdmin(name.to_owned()));
        }
        tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a user's role; refuses to demote the last admin. Open sessions get the new
    /// role with their next request.
    pub fn set_role(&self, name: &str, role: Role) -> Result<(), UserError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = role_of(&tx, name)?;
        if old == Role::Admin && role != Role::Admin && admin_count(&tx)? <= 1 {
            return Err(UserError::LastAdmin(name.to_owned()));
        }
        tx.execute(
            "UPDATE users SET role = ?2 WHERE name = ?1",
            params![name, role.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a new password and ends every session of the user: whoever knew the old one is
    /// logged out. (The web UI logs the user back in when they changed their own.)
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), UserError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        role_of(&tx, name)?;
        tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )?;
        tx.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        tx.commit()?;
        Ok(())
    }

    /// The user if `password` is theirs; `None` for a wrong password or an unknown name, which
    /// take the same time.
    pub fn check_login(&self, name: &str, password: &str) -> Result<Option<User>, UserError> {
        let found: Option<(String, String, i64)> = self
            .conn()
            .query_row(
                "SELECT role, password_hash, created_ms FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((role, hash, created_ms)) = found else {
            password_matches(password, decoy_hash());
            return Ok(None);
        };
        if !password_matches(password, &hash) {
            return Ok(None);
        }
        Ok(Some(User {
            name: name.to_owned(),
            role: role.parse()?,
            created_ms: ms_of(created_ms),
        }))
    }

    /// Starts a session for `user` (who must exist); also forgets expired sessions.
    pub fn start_session(&self, user: &str, now_ms: u64) -> Result<NewSession, UserError> {
        let session = NewSession {
            token: random_token()?,
            csrf: random_token()?,
        };
        let conn = self.conn();
        conn.execute(
            "DELETE FROM sessions WHERE last_seen_ms < ?1 OR created_ms < ?2",
            params![
                sql_ms(now_ms.saturating_sub(SESSION_IDLE_MS)),
                sql_ms(now_ms.saturating_sub(SESSION_MAX_MS))
            ],
        )?;
        conn.execute(
            "INSERT INTO sessions (token_sha256, user, csrf, created_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![
                token_digest(&session.token),
                user,
                session.csrf,
                sql_ms(now_ms)
            ],
        )?;
        Ok(session)
    }

    /// The session of `token` if it is still valid at `now_ms`; an expired one is deleted.
    pub fn session(&self, token: &str, now_ms: u64) -> Result<Option<Session>, UserError> {
        let digest = token_digest(token);
        let conn = self.conn();
        let found: Option<(String, String, String, i64, i64)> = conn
            .query_row(
                "SELECT s.user, u.role, s.csrf, s.created_ms, s.last_seen_ms
                 FROM sessions s JOIN users u ON u.name = s.user
                 WHERE s.token_sha256 = ?1",
                [&digest],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((user, role, csrf, created_ms, last_seen_ms)) = found else {
            return Ok(None);
        };
        let (created_ms, last_seen_ms) = (ms_of(created_ms), ms_of(last_seen_ms));
        let idle = now_ms.saturating_sub(last_seen_ms);
        if idle > SESSION_IDLE_MS || now_ms.saturating_sub(created_ms) > SESSION_MAX_MS {
            conn.execute("DELETE FROM sessions WHERE token_sha256 = ?1", [&digest])?;
            return Ok(None);
        }
        if idle > LAST_SEEN_RESOLUTION_MS {
            conn.execute(
                "UPDATE sessions SET last_seen_ms = ?2 WHERE token_sha256 = ?1",
                params![digest, sql_ms(now_ms)],
            )?;
        }
        Ok(Some(Session {
            user,
            role: role.parse()?,
            csrf,
        }))
    }

    /// Ends the session of `token` (logout); nothing happens for an unknown token.
    pub fn end_session(&self, token: &str) -> Result<(), UserError> {
        self.conn().execute(
            "DELETE FROM sessions WHERE token_sha256 = ?1",
            [token_digest(token)],
        )?;
        Ok(())
    }
}

/// SQLite integers are signed; times here are far below `i64::MAX` milliseconds.
fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn ms_of(sql: i64) -> u64 {
    u64::try_from(sql).unwrap_or(0)
}

impl UserStore {
    /// A new API token for `user`, for scripts (`Authorization: Bearer …`). It acts with the
    /// user's role, as it is at each request, until revoked or the user is removed. Only its
    /// digest is stored: it is shown once.
    pub fn create_api_token(&self, user: &str, now_ms: u64) -> Result<String, UserError> {
        let token = random_token()?;
        let conn = self.conn();
        role_of(&conn, user)?;
        conn.execute(
            "INSERT INTO api_tokens (token_sha256, user, created_ms) VALUES (?1, ?2, ?3)",
            params![token_digest(&token), user, sql_ms(now_ms)],
        )?;
        Ok(token)
    }

    /// Revokes every API token of `user`; returns how many there were.
    pub fn revoke_api_tokens(&self, user: &str) -> Result<usize, UserError> {
        let conn = self.conn();
        role_of(&conn, user)?;
        Ok(conn.execute("DELETE FROM api_tokens WHERE user = ?1", [user])?)
    }

    /// The user and role an API token stands for, if it is valid (`csrf` is empty: a token
    /// needs none).
    pub fn api_token(&self, token: &str) -> Result<Option<Session>, UserError> {
        let found: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT t.user, u.role FROM api_tokens t JOIN users u ON u.name = t.user
                 WHERE t.token_sha256 = ?1",
                [token_digest(token)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        found
            .map(|(user, role)| {
                Ok(Session {
                    user,
                    role: role.parse()?,
                    csrf: String::new(),
                })
            })
            .transpose()
    }
}

fn role_of(conn: &Connection, name: &str) -> Result<Role, UserError> {
    let role: Option<String> = conn
        .query_row("SELECT role FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    role.ok_or_else(|| UserError::NotFound(name.to_owned()))?
        .parse()
}

fn admin_count(conn: &Connection) -> Result<i64, UserError> {
    Ok(
        conn.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
            r.get(0)
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;
    const HOUR: u64 = 3600 * 1000;

    fn store_with(users: &[(&str, Role)]) -> UserStore {
        let store = UserStore::open_in_memory().unwrap();
        for (name, role) in users {
            store.add(name, *role, "correct horse", T0).unwrap();
        }
        store
    }

    fn field_of(e: UserError) -> (String, String, String) {
        match e {
            UserError::Invalid(e) => (e.field, e.value, e.reason),
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn names_and_passwords_are_checked_and_the_error_names_the_field() {
        let store = store_with(&[]);
        for bad in ["", "-lead", "has space", "ü", &"a".repeat(65)] {
            let (field, value, reason) =
                field_of(store.add(bad, Role::Admin, "long enough", T0).unwrap_err());
            assert_eq!((field.as_str(), value.as_str()), ("name", bad));
            assert_eq!(reason, NAME_RULE);
        }
        for good in ["a", "ops.lead_2-x", &"a".repeat(64)] {
            check_name(good).unwrap();
        }
        let (field, value, reason) =
            field_of(store.add("anna", Role::Admin, "short", T0).unwrap_err());
        assert_eq!(field, "password");
        assert!(!value.contains("short"), "the password leaked: {value}");
        assert!(value.contains("5 characters"), "{value}");
        assert_eq!(reason, PASSWORD_RULE);
        check_password(&"ü".repeat(128)).unwrap();
        check_password(&"x".repeat(129)).unwrap_err();
        assert!(!store.has_users().unwrap(), "nothing stored after errors");
        let (field, value, _) = field_of("boss".parse::<Role>().unwrap_err());
        assert_eq!((field.as_str(), value.as_str()), ("role", "boss"));
    }

    #[test]
    fn login_checks_the_password_and_names_are_unique_ignoring_case() {
        let store = store_with(&[("anna", Role::Operator)]);
        let anna = store.check_login("anna", "correct horse").unwrap().unwrap();
        assert_eq!(anna.role, Role::Operator);
        assert_eq!(store.check_login("anna", "wrong horse").unwrap(), None);
        assert_eq!(store.check_login("nobody", "correct horse").unwrap(), None);
        assert!(matches!(
            store.add("ANNA", Role::Viewer, "another one", T0),
            Err(UserError::Exists(name)) if name == "anna"
        ));
        // Stored as a PHC string, never as given.
        let hash: String = store
            .conn()
            .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
    }

    #[test]
    fn the_last_admin_can_be_neither_removed_nor_demoted() {
        let store = store_with(&[("root", Role::Admin), ("anna", Role::Viewer)]);
        assert!(matches!(store.remove("root"), Err(UserError::LastAdmin(_))));
        assert!(matches!(
            store.set_role("root", Role::Operator),
            Err(UserError::LastAdmin(_))
        ));
        store.set_role("anna", Role::Admin).unwrap();
        store.set_role("root", Role::Viewer).unwrap();
        store.remove("root").unwrap();
        assert!(matches!(store.remove("root"), Err(UserError::NotFound(_))));
        let names: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.role))
            .collect();
        assert_eq!(names, vec![("anna".to_owned(), Role::Admin)]);
    }

    #[test]
    fn the_first_admin_is_created_only_once() {
        let store = store_with(&[]);
        store.add_first_admin("root", "correct horse", T0).unwrap();
        assert!(matches!(
            store.add_first_admin("eve", "correct horse", T0),
            Err(UserError::NotFirst)
        ));
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_logout() {
        let store = store_with(&[("anna", Role::Viewer)]);
        let s = store.start_session("anna", T0).unwrap();
        let found = store.session(&s.token, T0 + HOUR).unwrap().unwrap();
        assert_eq!((found.user.as_str(), found.role), ("anna", Role::Viewer));
        assert_eq!(found.csrf, s.csrf);
        // Used every 11 hours: alive past 12 h of age, until 7 days.
        let mut t = T0;
        while t + 11 * HOUR < T0 + SESSION_MAX_MS {
            t += 11 * HOUR;
            assert!(store.session(&s.token, t).unwrap().is_some(), "at {t}");
        }
        assert_eq!(
            store.session(&s.token, T0 + SESSION_MAX_MS + 1).unwrap(),
            None
        );

        let idle = store.start_session("anna", T0).unwrap();
        assert_eq!(
            store.session(&idle.token, T0 + 12 * HOUR + 1).unwrap(),
            None
        );
        // Gone for good, not just refused at that time.
        assert_eq!(store.session(&idle.token, T0).unwrap(), None);

        let out = store.start_session("anna", T0).unwrap();
        store.end_session(&out.token).unwrap();
        assert_eq!(store.session(&out.token, T0).unwrap(), None);
        assert_eq!(store.session("not a token", T0).unwrap(), None);
    }

    #[test]
    fn a_new_password_or_role_reaches_open_sessions() {
        let store = store_with(&[("root", Role::Admin), ("anna", Role::Viewer)]);
        let s = store.start_session("anna", T0).unwrap();
        store.set_role("anna", Role::Operator).unwrap();
        assert_eq!(
            store.session(&s.token, T0).unwrap().unwrap().role,
            Role::Operator
        );
        store.set_password("anna", "new password").unwrap();
        assert_eq!(store.session(&s.token, T0).unwrap(), None);
        assert!(store.check_login("anna", "new password").unwrap().is_some());
        let s = store.start_session("anna", T0).unwrap();
        store.remove("anna").unwrap();
        assert_eq!(store.session(&s.token, T0).unwrap(), None);
    }

    #[test]
    fn api_tokens_act_with_the_users_current_role_until_revoked() {
        let store = store_with(&[("root", Role::Admin), ("scada", Role::Viewer)]);
        let token = store.create_api_token("scada", T0).unwrap();
        let other = store.create_api_token("scada", T0).unwrap();
        assert_ne!(token, other);
        assert_eq!(store.api_token(&token).unwrap().unwrap().role, Role::Viewer);
        store.set_role("scada", Role::Operator).unwrap();
        assert_eq!(
            store.api_token(&token).unwrap().unwrap().role,
            Role::Operator
        );
        // A session token is not an API token, nor the other way round.
        let session = store.start_session("scada", T0).unwrap();
        assert_eq!(store.api_token(&session.token).unwrap(), None);
        assert_eq!(store.session(&token, T0).unwrap(), None);
        assert_eq!(store.revoke_api_tokens("scada").unwrap(), 2);
        assert_eq!(store.api_token(&token).unwrap(), None);
        let token = store.create_api_token("scada", T0).unwrap();
        store.remove("scada").unwrap();
        assert_eq!(store.api_token(&token).unwrap(), None);
        assert!(matches!(
            store.create_api_token("nobody", T0),
            Err(UserError::NotFound(_))
        ));
    }

    #[test]
    fn the_file_is_private_and_keeps_users_and_sessions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let token = {
            let store = UserStore::open(&path).unwrap();
            store.add("root", Role::Admin, "correct horse", T0).unwrap();
            store.start_session("root", T0).unwrap().token
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let store = UserStore::open(&path).unwrap();
        assert_eq!(
            store.session(&token, T0 + HOUR).unwrap().unwrap().user,
            "root"
        );
        // Only the digest is stored.
        let stored: String = store
            .conn()
            .query_row("SELECT token_sha256 FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, token);
    }
}
