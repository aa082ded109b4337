//! Who may connect and what they may do: MQTT users with argon2 password hashes, anonymous
//! access, and the appliance's own internal login.
//!
//! The broker turns an [`Access`] into a [`Table`] that is never edited, only replaced
//! whole: a login is checked against the table of its moment, and a new table is compared
//! with the old one to find the connections whose login no longer holds.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Login};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// The user name of the appliance's own clients (its Sparkplug session and UNS publisher).
/// It is reserved: a configured user of that name is ignored.
pub const INTERNAL_USER: &str = "sparkedge-internal";

/// Who may connect to the broker. Given in [`Config::access`](crate::Config::access) and
/// replaced at run time with [`Broker::set_access`](crate::Broker::set_access).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Whether clients that send no user name get in. They may publish and subscribe, as
    /// before the broker knew users.
    pub allow_anonymous: bool,
    pub users: Vec<MqttUser>,
}

/// An MQTT user an administrator created for a SCADA, MES or ERP client.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUser {
    pub name: String,
    /// An argon2 PHC string (`$argon2id$v=19$m=…`), as [`hash_password`] makes.
    pub password_hash: String,
    pub permission: Permission,
}

// Written out so that a user list in a log or a panic message does not carry the hashes:
// they are not passwords, but they are what an offline guessing attack starts from.
impl fmt::Debug for MqttUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttUser")
            .field("name", &self.name)
            .field("password_hash", &"<hidden>")
            .field("permission", &self.permission)
            .finish()
    }
}

/// What an MQTT user may do once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read only: subscribe to anything (`$sparkplug/certificates/#` included). Its
    /// PUBLISHes are acknowledged and dropped, and a Will in its CONNECT is ignored.
    Subscribe,
    PublishSubscribe,
}

/// OWASP's argon2id profile with the least memory (m = 7168 KiB, t = 5, p = 1). OWASP rates
/// it as strong as argon2's default (19 MiB, t = 2) at about the same CPU time; MQTT
/// clients reconnect far more often than people log in to the web UI, and every
/// verification's memory counts against the appliance's RSS budget (64 MB).
const MQTT_HASH_PARAMS: (u32, u32, u32) = (7168, 5, 1);

/// The most memory a stored hash may make a verification allocate, in KiB. Verification
/// uses the cost written in the hash, so without a limit one user's hash could ask for
/// gigabytes. 19 MiB is argon2's default cost, which the web UI's own login hashes use.
const MAX_M_COST_KIB: u32 = 19 * 1024;

/// Hashes an MQTT user's password for [`MqttUser::password_hash`]: argon2id with a random
/// salt, as a PHC string, at a cost suited to clients that reconnect often
/// (m = 7168 KiB, t = 5, p = 1: OWASP's lightest argon2id profile).
///
/// Hashing takes tens of milliseconds of CPU: async callers should use `spawn_blocking`.
///
/// # Panics
/// If the operating system's random source fails (no salt can be drawn).
pub fn hash_password(password: &str) -> String {
    let (m, t, p) = MQTT_HASH_PARAMS;
    let params = argon2::Params::new(m, t, p, None).expect("the MQTT hash parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("the operating system's random source failed")
        .to_string()
}

/// Whether `password` matches the PHC string `hash`, whatever argon2 variant and cost made it.
fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Why a stored hash cannot be used, checked when a table is built so the administrator
/// hears of it then rather than from a client that cannot log in.
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| format!("it is not a PHC hash string ({e})"))?;
    Algorithm::try_from(parsed.algorithm.as_str())
        .map_err(|_| format!("{} is not an argon2 hash", parsed.algorithm.as_str()))?;
    let params = argon2::Params::try_from(&parsed)
        .map_err(|e| format!("its argon2 parameters are invalid ({e})"))?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err(format!(
            "it needs {} KiB per check, more than the {MAX_M_COST_KIB} KiB allowed",
            params.m_cost()
        ));
    }
    Ok(())
}

/// A hash no password matches in practice, checked for unknown user names so that a login
/// with a wrong name costs as long as one with a wrong password: timing does not tell
/// which user names exist.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        // Should the random source fail, zeros do: a match against the decoy is never
        // accepted, it is there for its timing.
        let _ = getrandom::fill(&mut secret);
        hash_password(&hex(&secret))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(PartialEq, Eq)]
struct Account {
    password_hash: String,
    permission: Permission,
}

// Without the hash, as for `MqttUser` (the router, and so the broker, print their table).
impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

/// An [`Access`], checked and indexed by user name.
#[derive(Debug)]
pub(crate) struct Table {
    allow_anonymous: bool,
    users: HashMap<Arc<str>, Account>,
}

impl Table {
    /// Users that cannot be used (reserved or empty name, a second user of the same name, a
    /// hash that is not argon2 or too costly) are left out with a warning; the rest apply.
    pub fn new(access: Access) -> Table {
        let mut users = HashMap::with_capacity(access.users.len());
        for user in access.users {
            let why = if user.name == INTERNAL_USER {
                Some("the name is reserved to the appliance's own clients".to_owned())
            } else if user.name.is_empty() {
                // A CONNECT with an empty user name is anonymous: no one could log in as it.
                Some("the name is empty".to_owned())
            } else if users.contains_key(user.name.as_str()) {
                Some("a user of that name is listed before it".to_owned())
            } else {
                check_hash(&user.password_hash)
                    .err()
                    .map(|why| format!("its password hash cannot be used: {why}"))
            };
            if let Some(why) = why {
                tracing::warn!(user = user.name, "MQTT user ignored: {why}");
                continue;
            }
            users.insert(
                user.name.into(),
                Account {
                    password_hash: user.password_hash,
                    permission: user.permission,
                },
            );
        }
        Table {
            allow_anonymous: access.allow_anonymous,
            users,
        }
    }

    fn grant(&self, who: &Identity) -> Option<Grant<'_>> {
        match who {
            Identity::Internal => Some(Grant::Internal),
            Identity::Anonymous => self.allow_anonymous.then_some(Grant::Anonymous),
            Identity::User(name) => self.users.get(name).map(Grant::User),
        }
    }

    /// The permission this table gives a client that logged in as `who` against table
    /// `checked`; `None` if it no longer admits it. A user's login holds while its account
    /// is unchanged: a new password hash means the password it gave was checked against
    /// something that no longer applies, and a new permission is taken up by reconnecting.
    pub fn admits(&self, who: &Identity, checked: &Table) -> Option<Permission> {
        let now = self.grant(who)?;
        (checked.grant(who) == Some(now)).then(|| now.permission())
    }
}

/// What a table gives one identity; equal grants from two tables mean a login still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant<'a> {
    Internal,
    Anonymous,
    User(&'a Account),
}

impl Grant<'_> {
    fn permission(&self) -> Permission {
        match self {
            Grant::Internal | Grant::Anonymous => Permission::PublishSubscribe,
            Grant::User(account) => account.permission,
        }
    }
}

/// Who a connection logged in as, kept while it is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    Internal,
    Anonymous,
    /// Shares the name with the table it logged in against.
    User(Arc<str>),
}

impl Identity {
    /// For logs: the user name, or empty for an anonymous client.
    pub fn user_name(&self) -> &str {
        match self {
            Identity::Internal => INTERNAL_USER,
            Identity::Anonymous => "",
            Identity::User(name) => name,
        }
    }
}

/// A login the broker accepted, and the table it was accepted against (the router checks,
/// as it attaches the connection, that the current table still admits it).
#[derive(Debug)]
pub(crate) struct Verified {
    pub who: Identity,
    pub permission: Permission,
    pub against: Arc<Table>,
}

/// Why a login was refused, for the CONNACK and the log.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub code: ConnectReturnCode,
    pub why: &'static str,
}

fn bad_credentials(why: &'static str) -> Refusal {
    Refusal {
        code: ConnectReturnCode::BadUserNamePassword,
        why,
    }
}

/// Checks CONNECT logins. Shared by all connections.
pub(crate) struct Gate {
    /// The internal login's password: 256 bits from the OS, made at start, never stored.
    internal_password: String,
    /// One argon2 verification at a time: each allocates its hash's memory cost (up to
    /// [`MAX_M_COST_KIB`]), and a flood of CONNECTs must not multiply that.
    verifier: Arc<Semaphore>,
}

// Without the internal password: `Broker` is `Debug` and holds a gate.
impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub fn new() -> std::io::Result<Gate> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| {
            std::io::Error::other(format!(
                "no randomness from the OS for the internal MQTT login: {e}"
            ))
        })?;
        Ok(Gate {
            internal_password: hex(&secret),
            verifier: Arc::new(Semaphore::new(1)),
        })
    }

    pub fn internal_password(&self) -> &str {
        &self.internal_password
    }

    /// Checks a CONNECT's login (MQTT 3.1.1 §3.2.2.3) against `table`. Credentials are
    /// always checked when given, even when anonymous clients are allowed: a client that
    /// names a user expects to act as that user, not to slip in anonymously.
    pub async fn check(
        &self,
        login: Option<Login>,
        table: Arc<Table>,
    ) -> Result<Verified, Refusal> {
        let verified = |who: Identity, permission| Verified {
            who,
            permission,
            against: table.clone(),
        };
        let Some(Login { username, password }) = login else {
            return if table.allow_anonymous {
                Ok(verified(Identity::Anonymous, Permission::PublishSubscribe))
            } else {
                Err(Refusal {
                    code: ConnectReturnCode::NotAuthorized,
                    why: "anonymous clients are not allowed",
                })
            };
        };
        if username.is_empty() {
            // The codec gives an empty name for a password sent without the user name flag,
            // which [MQTT-3.1.2-22] forbids.
            return Err(bad_credentials("a password without a user name"));
        }
        if username == INTERNAL_USER {
            // A random secret needs no hashing; comparing in constant time is enough. Not
            // queueing behind users' hash checks also keeps a flood of CONNECTs from locking
            // the appliance's own sessions out.
            return if bool::from(password.as_bytes().ct_eq(self.internal_password.as_bytes())) {
                Ok(verified(Identity::Internal, Permission::PublishSubscribe))
            } else {
                Err(bad_credentials("wrong password"))
            };
        }
        let Some((name, account)) = table.users.get_key_value(username.as_str()) else {
            self.verify(password, None).await;
            return Err(bad_credentials("unknown user"));
        };
        if self
            .verify(password, Some(account.password_hash.clone()))
            .await
        {
            Ok(verified(Identity::User(name.clone()), account.permission))
        } else {
            Err(bad_credentials("wrong password"))
        }
    }

    /// Verifies `password` against `hash` (the decoy when `None`, which never succeeds) on a
    /// blocking thread, one verification at a time.
    async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(permit) = self.verifier.clone().acquire_owned().await else {
            return false;
        };
        // The permit goes with the blocking task: if the connect timeout drops this future,
        // the verification still runs to its end, and its memory counts until then.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match hash {
                Some(hash) => password_matches(&password, &hash),
                None => {
                    password_matches(&password, decoy_hash());
                    false
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password_hash: &str, permission: Permission) -> MqttUser {
        MqttUser {
            name: name.into(),
            password_hash: password_hash.into(),
            permission,
        }
    }

    #[test]
    fn hash_password_makes_argon2id_with_the_light_profile_and_it_verifies() {
        let hash = hash_password("correct horse");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = argon2::Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (7168, 5, 1)
        );
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        assert!(password_matches("correct horse", &hash));
        assert!(!password_matches("correct horse ", &hash));
        assert_ne!(hash, hash_password("correct horse"), "salted");
    }

    #[test]
    fn hashes_of_any_argon2_cost_verify_and_too_costly_or_foreign_ones_are_left_out() {
        // The web UI's login cost (argon2's default, 19 MiB) is accepted.
        let default_cost = Argon2::default().hash_password(b"pw").unwrap().to_string();
        assert!(password_matches("pw", &default_cost));
        let light = hash_password("pw");
        let costly = light.replace("m=7168", "m=65536");
        let table = Table::new(Access {
            allow_anonymous: false,
            users: vec![
                user("web-cost", &default_cost, Permission::Subscribe),
                user("costly", &costly, Permission::Subscribe),
                user(
                    "bcrypt",
                    "$2b$12$abcdefghijklmnopqrstuv",
                    Permission::Subscribe,
                ),
                user("plain", "pw", Permission::Subscribe),
                user(INTERNAL_USER, &light, Permission::PublishSubscribe),
                user("", &light, Permission::PublishSubscribe),
                user("twice", &light, Permission::Subscribe),
                user("twice", &light, Permission::PublishSubscribe),
            ],
        });
        let mut names: Vec<_> = table.users.keys().map(|k| k.to_string()).collect();
        names.sort();
        assert_eq!(names, ["twice", "web-cost"]);
        assert_eq!(table.users["twice"].permission, Permission::Subscribe);
    }

    #[test]
    fn a_login_holds_while_its_account_is_unchanged() {
        let hash = hash_password("pw");
        let table = |allow_anonymous, users| {
            Table::new(Access {
                allow_anonymous,
                users,
            })
        };
        let old = table(
            true,
            vec![
                user("scada", &hash, Permission::PublishSubscribe),
                user("mes", &hash, Permission::Subscribe),
            ],
        );
        let scada = Identity::User("scada".into());
        let mes = Identity::User("mes".into());
        assert_eq!(old.admits(&scada, &old), Some(Permission::PublishSubscribe));
        let same = table(
            true,
            vec![
                user("mes", &hash, Permission::Subscribe),
                user("scada", &hash, Permission::PublishSubscribe),
            ],
        );
        assert_eq!(same.admits(&mes, &old), Some(Permission::Subscribe));
        assert_eq!(
            same.admits(&Identity::Anonymous, &old),
            Some(Permission::PublishSubscribe)
        );
        let changed = table(
            false,
            vec![
                user("scada", &hash_password("pw"), Permission::PublishSubscribe),
                user("mes", &hash, Permission::PublishSubscribe),
            ],
        );
        assert_eq!(changed.admits(&scada, &old), None, "new hash");
        assert_eq!(changed.admits(&mes, &old), None, "new permission");
        assert_eq!(changed.admits(&Identity::Anonymous, &old), None);
        assert_eq!(changed.admits(&Identity::User("gone".into()), &old), None);
        assert_eq!(
            table(false, vec![]).admits(&Identity::Internal, &old),
            Some(Permission::PublishSubscribe)
        );
    }

    #[test]
    fn debug_output_shows_neither_hashes_nor_the_internal_password() {
        let hash = hash_password("pw");
        let scada = user("scada", &hash, Permission::Subscribe);
        let shown = format!("{scada:?}");
        assert!(!shown.contains(&hash), "{shown}");
        assert!(shown.contains("scada"));
        let table = Table::new(Access {
            allow_anonymous: false,
            users: vec![scada],
        });
        let shown = format!("{table:?}");
        assert!(!shown.contains(&hash), "{shown}");
        let gate = Gate::new().unwrap();
        let shown = format!("{gate:?}");
        assert!(!shown.contains(gate.internal_password()), "{shown}");
    }
}
