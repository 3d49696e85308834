//! Log setup: the systemd journal when stderr is connected to it, otherwise stderr.
//!
//! Events carry the fields `namespace`, `step`, `key` and `reason` where they apply. In the
//! journal they become the fields NAMESPACE, STEP, KEY and REASON, so
//! `journalctl -t netnsctl NAMESPACE=vpn` shows one namespace's changes.

use std::os::fd::AsFd;

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use super::GlobalArgs;

/// Environment variable that overrides the log filter, in `tracing_subscriber::EnvFilter`
/// syntax such as `debug` or `netnsctl=trace`.
pub const LOG_FILTER_ENV: &str = "NETNSCTL_LOG";

/// Identifier of netnsctl's journal entries (`journalctl -t netnsctl`).
pub const SYSLOG_IDENTIFIER: &str = "netnsctl";

static LOGGING_TO_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] sent the logs to the journal.
pub fn logging_to_journal() -> bool {
    LOGGING_TO_JOURNAL.load(Ordering::Relaxed)
}

/// Sets up logging at the level the flags select. Under systemd the journal receives info and
/// above by default, so every applied change is recorded. Elsewhere the default is warn.
pub fn init(global: &GlobalArgs) {
    let journal = stderr_is_journal().then(|| {
        tracing_journald::layer().map(|layer| {
            layer
                .with_field_prefix(None)
                .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned())
                .with_priority_mappings(priority_mappings())
        })
    });
    let level = level_name(global, matches!(journal, Some(Ok(_))));
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV).unwrap_or_else(|_| {
        // netlink-packet-route warns about every attribute newer than itself, such as
        // IFLA_INET6_CONF growing on recent kernels; that is noise for netnsctl's users.
        EnvFilter::new(format!(
            "{level},netlink_packet_route=error,netlink_packet_core=error"
        ))
    });
    let registry = tracing_subscriber::registry().with(filter);
    match journal {
        Some(Ok(layer)) => {
            registry.with(layer).init();
            LOGGING_TO_JOURNAL.store(true, Ordering::Relaxed);
        }
        other => {
            let stderr_layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(super::terminal::colour_enabled(&std::io::stderr()))
                .without_time()
                .with_target(false);
            registry.with(stderr_layer).init();
            if let Some(Err(err)) = other {
                tracing::warn!(%err, "cannot open the journal socket, so logs go to stderr");
            }
        }
    }
}

/// Maps tracing levels to syslog priorities as their names match: info to 6 (info), debug and
/// trace to 7 (debug). tracing-journald's default puts info at 5 (notice).
fn priority_mappings() -> tracing_journald::PriorityMappings {
    let mut mappings = tracing_journald::PriorityMappings::new();
    mappings.info = tracing_journald::Priority::Informational;
    mappings.debug = tracing_journald::Priority::Debug;
    mappings
}

/// Returns the level filter for the flags: `-q` error, default warn (info for the journal),
/// `-v` info, `-vv` debug, `-vvv` trace.
fn level_name(global: &GlobalArgs, journal: bool) -> &'static str {
    if global.quiet {
        return "error";
    }
    match (global.verbose, journal) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` contains the
/// `DEVICE:INODE` of that stream (systemd.exec(5)), and stderr must still be it, because a
/// child whose stderr was redirected inherits the variable too.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    journal_stream_matches(&value, stat.st_dev, stat.st_ino)
}

/// Compares a `JOURNAL_STREAM` value (`DEVICE:INODE`, both decimal) with a file's identity.
fn journal_stream_matches(value: &str, device: u64, inode: u64) -> bool {
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    dev.parse() == Ok(device) && ino.parse() == Ok(inode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_parsing() {
        assert!(journal_stream_matches("8:1234", 8, 1234));
        assert!(!journal_stream_matches("8:1234", 8, 1235));
        assert!(!journal_stream_matches("9:1234", 8, 1234));
        assert!(!journal_stream_matches("8", 8, 1234));
        assert!(!journal_stream_matches("", 0, 0));
        assert!(!journal_stream_matches("x:y", 0, 0));
    }

    fn args(verbose: u8, quiet: bool) -> GlobalArgs {
        GlobalArgs {
            config: "/dev/null".into(),
            verbose,
            quiet,
            lock_timeout: 0.0,
        }
    }

    #[test]
    fn levels_by_flags() {
        assert_eq!(level_name(&args(0, false), false), "warn");
        assert_eq!(level_name(&args(0, false), true), "info");
        assert_eq!(level_name(&args(1, false), false), "info");
        assert_eq!(level_name(&args(2, false), true), "debug");
        assert_eq!(level_name(&args(5, false), false), "trace");
        assert_eq!(level_name(&args(0, true), true), "error");
    }
}
