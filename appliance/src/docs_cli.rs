//! `sparkedge generate`: the man pages and shell completions that the Debian package installs.
//!
//! They are made from the very clap definition the binary parses, at package build time
//! (`packaging/build-deb`), so an option added to the CLI cannot be missing from them. The
//! subcommand is hidden: users get its output installed, only the packaging runs it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory, Subcommand};
use clap_complete::{Generator, Shell};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write sparkedge.1 and a page per subcommand (sparkedge-run.1, sparkedge-user-add.1, …)
    /// into DIR.
    Man {
        dir: PathBuf,
        /// The date in the pages' footer (YYYY-MM-DD): that of the release, so that building
        /// the same release twice gives the same pages.
        #[arg(long)]
        date: Option<String>,
    },
    /// Write the bash (sparkedge.bash), zsh (_sparkedge) and fish (sparkedge.fish)
    /// completions into DIR.
    Completions { dir: PathBuf },
}

pub fn run(what: Generate) -> Result<(), String> {
    match what {
        Generate::Man { dir, date } => {
            create_dir(&dir)?;
            for (name, page) in man_pages(date.as_deref().unwrap_or_default())
                .map_err(|e| format!("cannot render the man pages: {e}"))?
            {
                write(&dir.join(name), &page)?;
            }
        }
        Generate::Completions { dir } => {
            create_dir(&dir)?;
            for (name, script) in completions() {
                write(&dir.join(name), &script)?;
            }
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What `man sparkedge` says before the list of subcommands; the one-line `about` of `--help`
/// is too short for a reader who only has the installed package in front of them.
const DESCRIPTION: &str = "\
sparkedge is an industrial edge appliance in one binary. It polls PLCs over Modbus (TCP and \
RTU) and OPC UA, and publishes every tag from one ISA-95 model twice: as a Sparkplug 3.0 Edge \
Node and as a Unified Namespace tree of retained JSON topics, on an embedded MQTT broker \
(port 1883) that SCADA, MES and ERP subscribe to. A web UI (port 8080) manages devices, tags \
and the namespace and shows live values.

The Debian package runs sparkedge run as the systemd service sparkedge.service, as the \
system user sparkedge. Its log is in the journal (journalctl -u sparkedge). While no web user \
exists, the log holds a one-time /setup?token=… link that creates the first admin. The \
commands that change its data (user, mqtt-user, import, opcua trust) run as that user, e.g. \
sudo -u sparkedge sparkedge mqtt-user add scada --access publish; without --data-dir they \
use the data_dir of /etc/sparkedge/sparkedge.toml.";

/// Every page as (file name, roff source): `sparkedge.1` and one per visible subcommand,
/// nested ones included (`sparkedge-user-add.1`), which the top page refers to by name.
fn man_pages(date: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cli = crate::Cli::command()
        .long_about(DESCRIPTION)
        .disable_help_subcommand(true);
    // Builds the display names (sparkedge-user-add) and bin names the pages print.
    cli.build();
    let mut pages = vec![("sparkedge.1".to_owned(), top_page(cli.clone(), date)?)];
    let mut pending: Vec<Command> = visible_subcommands(&cli).cloned().collect();
    while let Some(cmd) = pending.pop() {
        pending.extend(visible_subcommands(&cmd).cloned());
        let man = describe(Man::new(cmd), date);
        let mut page = Vec::new();
        man.render(&mut page)?;
        pages.push((man.get_filename(), page));
    }
    Ok(pages)
}

/// The page footer: clap_mangen names a subcommand's page after the subcommand alone
/// ("run"), without the program and its version.
fn describe(man: Man, date: &str) -> Man {
    man.date(date)
        .source(concat!("sparkedge ", env!("CARGO_PKG_VERSION")))
        .manual("sparkedge manual")
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|c| !c.is_hide_set())
}

/// clap_mangen's sections, with FILES, ENVIRONMENT and SEE ALSO added: what an administrator
/// of the installed service looks for first.
fn top_page(cli: Command, date: &str) -> std::io::Result<Vec<u8>> {
    let man = describe(Man::new(cli), date);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;

    let mut extra = Roff::new();
    extra.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/sparkedge/sparkedge.toml",
            "The configuration of sparkedge run: listening addresses, data directory, \
             anonymous MQTT, northbound MQTT brokers. Every key is listed there with its \
             default. Read at start: restart the service after a change.",
        ),
        (
            "/var/lib/sparkedge/",
            "The data directory of the service (data_dir): sparkedge.db holds the model \
             (namespace, devices, tags) and the Sparkplug state, users.db the web and MQTT \
             users and sessions, opcua-pki/ the appliance's OPC UA certificate and the \
             servers it trusts. Commands that take --data-dir work on it when run as the \
             sparkedge user, e.g. sudo -u sparkedge sparkedge user list --data-dir \
             /var/lib/sparkedge.",
        ),
        (
            "/usr/lib/systemd/system/sparkedge.service",
            "The systemd unit. Change it with systemctl edit sparkedge, not in place.",
        ),
    ] {
        extra.control("TP", []);
        extra.text([bold(path)]);
        extra.text([roman(what)]);
    }
    extra.control("SH", ["ENVIRONMENT"]);
    extra.control("TP", []);
    extra.text([bold("RUST_LOG")]);
    extra.text([
        roman("Which log lines are written, as a tracing filter, e.g. "),
        italic("debug"),
        roman(" or "),
        italic("info,broker=debug"),
        roman(". The default is info, with the OPC UA library's own lines at warn."),
    ]);
    extra.control("SH", ["SEE ALSO"]);
    extra.text([roman(
        "sparkedge-run(1), sparkedge-demo(1), sparkedge-user(1), sparkedge-mqtt-user(1), \
         systemctl(1), journalctl(1)",
    )]);
    // `to_roff`: the apostrophe preamble is already in the page, from the title.
    page.write_all(extra.to_roff().as_bytes())?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Every script as (file name, contents), named as clap_complete names them.
fn completions() -> Vec<(String, Vec<u8>)> {
    let mut cli = visible_cli();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli, "sparkedge", &mut script);
            (shell.file_name("sparkedge"), script)
        })
        .collect()
}

/// The CLI without its hidden subcommands (this one): clap_complete, unlike clap_mangen and
/// `--help`, would offer them. clap cannot remove a subcommand, so the top level is made
/// anew from the visible subcommands and the top-level arguments, which is all a completion
/// needs of it.
fn visible_cli() -> Command {
    let full = crate::Cli::command();
    Command::new("sparkedge")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(visible_subcommands(&full).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_offer_every_visible_subcommand_and_no_hidden_one() {
        let full = crate::Cli::command();
        assert!(
            full.get_subcommands()
                .any(|c| c.get_name() == "generate" && c.is_hide_set()),
            "`generate` is expected to be a hidden subcommand"
        );
        let names = |cmd: &Command| {
            visible_subcommands(cmd)
                .map(|c| c.get_name().to_owned())
                .collect::<Vec<_>>()
        };
        let visible = visible_cli();
        assert_eq!(names(&visible), names(&full));
        assert!(visible.find_subcommand("generate").is_none());
        for (name, script) in completions() {
            let script = String::from_utf8(script).unwrap();
            assert!(script.contains("mqtt-user"), "{name} lacks mqtt-user");
            assert!(script.contains("config"), "{name} lacks run --config");
            assert!(!script.contains("generate"), "{name} offers generate");
        }
    }

    #[test]
    fn man_pages_cover_every_subcommand_and_hide_generate() {
        let pages = man_pages("2026-11-22").unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for page in [
            "sparkedge.1",
            "sparkedge-run.1",
            "sparkedge-demo.1",
            "sparkedge-user-add.1",
            "sparkedge-sim-modbus.1",
        ] {
            assert!(names.contains(&page), "{page} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")));
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        assert_eq!(pages[0].0, "sparkedge.1");
        for text in [
            "sparkedge\\-run(1)",
            "/etc/sparkedge/sparkedge.toml",
            "RUST_LOG",
        ] {
            assert!(top.contains(text), "sparkedge.1 lacks {text}:\n{top}");
        }
        assert!(!top.contains("generate"));
    }
}
