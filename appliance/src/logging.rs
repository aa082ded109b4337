//! Where the log goes and how it looks. On a terminal or into a file: tracing's usual lines.
//! Under systemd, with standard error connected to the journal (`$JOURNAL_STREAM` names that
//! stream): no timestamp, as the journal stamps every line itself, and a `<N>` syslog
//! priority before each line, which journald takes as the line's priority, so that
//! `journalctl -u sparkedge -p warning` shows the warnings and errors alone.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the process's logger, writing to standard error.
pub fn init() {
    // async-opcua logs every session step at INFO, and at WARN and ERROR what is normal
    // here (a client configured without named endpoints; certificate checks we make
    // ourselves first and report with the fix): its word would drown or contradict ours,
    // which says what failed and what to do.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,opcua_client=warn,opcua_core=warn,opcua_crypto=warn,opcua_server=warn,\
         opcua_types=warn,opcua_crypto::certificate_store=off,\
         opcua_core::comms::secure_channel=off,opcua_client::config=error"
            .into()
    });
    let logger = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if stderr_is_journal() {
        logger
            .with_ansi(false)
            .event_format(Priority(tracing_subscriber::fmt::format().without_time()))
            .init();
    } else {
        logger
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// systemd sets `JOURNAL_STREAM=<device>:<inode>` for a service whose output goes to the
/// journal. A child process may inherit the variable with other streams, so it counts only
/// if standard error is that very stream.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    device.parse().ok() == Some(stat.st_dev) && inode.parse().ok() == Some(stat.st_ino)
}

/// Puts the syslog priority of the event's level before the line `F` formats (sd-daemon(3)).
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // err 3, warning 4, info 6, debug 7.
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
