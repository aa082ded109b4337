//! `sparkedge user …`: web UI users, managed on the appliance itself, and the user database
//! that `demo` and `run` hand to the web server.
//!
//! Whoever can run this command on the box can read the data directory anyway, so it needs
//! no login: it is how the first admin is created without a browser, and how a forgotten
//! admin password is reset.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;
use web::mqtt_users::MqttAccess;
use web::{Auth, Role, UserStore};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a user. The password is asked on the terminal (twice, not shown), or read as one
    /// line from standard input with --password-stdin.
    Add {
        name: String,
        /// viewer: reads everything but secrets; operator: also writes tag values; admin:
        /// everything, including configuration and users.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// List the users and their roles.
    List {
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Remove a user and end their sessions (not the last admin).
    Remove {
        name: String,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Print a new API token for scripts (`Authorization: Bearer TOKEN`), acting with the
    /// user's role; with --revoke, revoke all of the user's tokens instead.
    Token {
        name: String,
        #[arg(long)]
        revoke: bool,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Set a user's password and end their sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
}

/// `sparkedge mqtt-user …`: the embedded broker's MQTT users (see `web::mqtt_users`). A
/// running appliance picks changes up within a few seconds.
#[derive(Debug, Subcommand)]
pub enum MqttCommand {
    /// Add an MQTT user. The password is asked on the terminal (twice, not shown), or read
    /// as one line from standard input with --password-stdin.
    Add {
        name: String,
        /// subscribe: read only (dashboards, MES, historians); publish: publish and
        /// subscribe (a SCADA Primary Host: STATE and commands).
        #[arg(long, value_parser = parse_access, default_value = "subscribe")]
        access: MqttAccess,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// List the MQTT users and what each may do.
    List {
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Remove an MQTT user; its connected clients are disconnected.
    Remove {
        name: String,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
    /// Set an MQTT user's password; clients logged in with the old one are disconnected.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value_os_t = crate::config::cli_data_dir(), hide_default_value = true, help = crate::config::DATA_DIR_HELP)]
        data_dir: PathBuf,
    },
}

fn parse_access(s: &str) -> Result<MqttAccess, String> {
    match s {
        "subscribe" => Ok(MqttAccess::Subscribe),
        "publish" => Ok(MqttAccess::Publish),
        _ => Err(format!(
            "{s:?} is not an access: use subscribe (read only) or publish (publish and subscribe)"
        )),
    }
}

pub fn run_mqtt(command: MqttCommand) -> Result<(), String> {
    match command {
        MqttCommand::Add {
            name,
            access,
            password_stdin,
            data_dir,
        } => {
            let users = open(&data_dir)?;
            web::users::check_name(&name).map_err(|e| e.to_string())?;
            let password = read_password(&name, password_stdin)?;
            users
                .add_mqtt_user(&name, &password, access, now_ms())
                .map_err(|e| e.to_string())?;
            println!(
                "added MQTT user {name} ({}) to {}",
                access.as_str(),
                data_dir.display()
            );
            Ok(())
        }
        MqttCommand::List { data_dir } => {
            let users = open(&data_dir)?.mqtt_users().map_err(|e| e.to_string())?;
            if users.is_empty() {
                println!("no MQTT users yet: add one with `sparkedge mqtt-user add NAME`");
            }
            for user in users {
                println!("{:<24} {}", user.name, user.access.as_str());
            }
            Ok(())
        }
        MqttCommand::Remove { name, data_dir } => {
            open(&data_dir)?
                .remove_mqtt_user(&name)
                .map_err(|e| e.to_string())?;
            println!("removed MQTT user {name}");
            Ok(())
        }
        MqttCommand::Passwd {
            name,
            password_stdin,
            data_dir,
        } => {
            let users = open(&data_dir)?;
            if !users
                .mqtt_users()
                .map_err(|e| e.to_string())?
                .iter()
                .any(|u| u.name == name)
            {
                return Err(format!("there is no MQTT user {name:?}"));
            }
            let password = read_password(&name, password_stdin)?;
            users
                .update_mqtt_user(&name, Some(&password), None)
                .map_err(|e| e.to_string())?;
            println!("new password set for MQTT user {name}");
            Ok(())
        }
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|_| {
        format!("{s:?} is not a role: use viewer (reads), operator (also writes tag values) or admin (everything)")
    })
}

pub fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Add {
            name,
            role,
            password_stdin,
            data_dir,
        } => {
            let users = open(&data_dir)?;
            // Check the name before asking for a password that would then be refused.
            web::users::check_name(&name).map_err(|e| e.to_string())?;
            let password = read_password(&name, password_stdin)?;
            users
                .add(&name, role, &password, now_ms())
                .map_err(|e| e.to_string())?;
            println!("added {name} ({role}) to {}", data_dir.display());
            Ok(())
        }
        Command::List { data_dir } => {
            let users = open(&data_dir)?.list().map_err(|e| e.to_string())?;
            if users.is_empty() {
                println!("no users yet: add the admin with `sparkedge user add NAME --role admin`");
            }
            for user in users {
                println!("{:<24} {}", user.name, user.role);
            }
            Ok(())
        }
        Command::Remove { name, data_dir } => {
            open(&data_dir)?.remove(&name).map_err(|e| e.to_string())?;
            println!("removed {name}");
            Ok(())
        }
        Command::Token {
            name,
            revoke: false,
            data_dir,
        } => {
            let token = open(&data_dir)?
                .create_api_token(&name, now_ms())
                .map_err(|e| e.to_string())?;
            eprintln!(
                "API token for {name} (shown once; send it as `Authorization: Bearer TOKEN`):"
            );
            println!("{token}");
            Ok(())
        }
        Command::Token {
            name,
            revoke: true,
            data_dir,
        } => {
            let count = open(&data_dir)?
                .revoke_api_tokens(&name)
                .map_err(|e| e.to_string())?;
            println!("revoked {count} API token(s) of {name}");
            Ok(())
        }
        Command::Passwd {
            name,
            password_stdin,
            data_dir,
        } => {
            let users = open(&data_dir)?;
            if !users
                .list()
                .map_err(|e| e.to_string())?
                .iter()
                .any(|u| u.name == name)
            {
                return Err(web::users::UserError::NotFound(name).to_string());
            }
            let password = read_password(&name, password_stdin)?;
            users
                .set_password(&name, &password)
                .map_err(|e| e.to_string())?;
            println!("new password set for {name}; their web sessions were ended");
            Ok(())
        }
    }
}

/// Opens `<data_dir>/users.db`, creating the folder and the file if missing.
pub fn open(data_dir: &Path) -> Result<UserStore, String> {
    crate::prepare_data_dir(data_dir)?;
    let path = data_dir.join("users.db");
    UserStore::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The web server's logins for `demo` and `run`, and, while there is no user, the one-time
/// address that creates the admin in the browser (also logged, so a service's journal has it).
pub fn web_auth(
    data_dir: &Path,
    web_listen: SocketAddr,
) -> Result<(Arc<Auth>, Option<String>), String> {
    let auth = Auth::new(open(data_dir)?).map_err(|e| e.to_string())?;
    let setup_url = auth.setup_token().map(|token| {
        let url = format!(
            "http://{}/setup?token={token}",
            crate::on_this_machine(web_listen)
        );
        // A systemd service (INVOCATION_ID) runs as its own user (USER): so must the
        // command, or the files it makes would not be the service's.
        let sudo = match (std::env::var_os("INVOCATION_ID"), std::env::var("USER")) {
            (Some(_), Ok(user)) if user != "root" => format!("sudo -u {user} "),
            _ => String::new(),
        };
        tracing::warn!(
            "no users yet: open {url} to create the admin{}, or run `{sudo}sparkedge user add \
             NAME --role admin --data-dir {}`",
            if web_listen.ip().is_unspecified() {
                " (from another computer, use this machine's address)"
            } else {
                ""
            },
            data_dir.display()
        );
        url
    });
    Ok((Arc::new(auth), setup_url))
}

fn now_ms() -> u64 {
    web::auth::Clock::system().now_ms()
}

/// The new password: one line of standard input, or typed twice on the terminal unseen.
fn read_password(name: &str, from_stdin: bool) -> Result<String, String> {
    let stdin = std::io::stdin();
    if from_stdin {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    if !stdin.is_terminal() {
        return Err(
            "standard input is not a terminal: pass --password-stdin to read the password from it"
                .to_owned(),
        );
    }
    let first = prompt_hidden(&format!("Password for {name}: "))?;
    web::users::check_password(&first).map_err(|e| e.to_string())?;
    let second = prompt_hidden("Again: ")?;
    if first != second {
        return Err("the two passwords differ; nothing changed".to_owned());
    }
    Ok(first)
}

/// Reads a line from the terminal with echo off. rustix (already in the build) sets the
/// terminal mode without `unsafe`, so no extra crate is needed for this.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let saved = tcgetattr(&stdin).map_err(|e| format!("cannot read the terminal mode: {e}"))?;
    let mut hidden = saved.clone();
    hidden.local_modes.remove(LocalModes::ECHO);
    // Echo the Enter key, so the next prompt starts on a new line.
    hidden.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&stdin, OptionalActions::Now, &hidden)
        .map_err(|e| format!("cannot turn off the terminal's echo: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
