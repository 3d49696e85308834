//! Command-line interface: argument definitions and one function per subcommand.

mod apply;
mod attach;
mod check;
mod down;
mod exec;
pub mod generate;
mod logging;
mod status;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigErrors, LoadedConfig};
use crate::desired::{self, Desired, HostSources};
use crate::state::{Lock, LockError};

/// Exit status when everything succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status when a change to the system failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for an invalid config or invalid usage; nothing was changed.
pub const EXIT_INVALID: u8 = 2;

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  a change to the system failed (the other namespaces were still converged)
  2  invalid config or usage; nothing was changed";

/// Declarative manager for named Linux network namespaces.
///
/// One TOML file declares each namespace: sysctls, an nftables ruleset and DNS. netnsctl makes
/// the kernel match it, registering namespaces at /run/netns/NAME as iproute2 does.
#[derive(Debug, Parser)]
#[command(name = "netnsctl", version, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file.
    #[arg(short, long, global = true, value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// More log output; repeat for more detail (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only errors: no log below error, no list of applied changes.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Seconds to wait for another netnsctl run to release the lock.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_lock_timeout)]
    pub lock_timeout: f64,
}

/// Longest lock wait accepted, in seconds: one day.
const MAX_LOCK_TIMEOUT: f64 = 86_400.0;

fn parse_lock_timeout(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=MAX_LOCK_TIMEOUT).contains(&seconds) {
        return Err(format!(
            "use a number of seconds from 0 to {MAX_LOCK_TIMEOUT}"
        ));
    }
    Ok(seconds)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the namespaces match the config; print each change made.
    Apply {
        /// Namespaces to apply; all when none are given.
        names: Vec<String>,
    },
    /// Print the changes apply would make, without making them.
    Plan {
        /// Print a JSON object: {"version": 1, "steps": [...], "notes": [...]}.
        #[arg(long)]
        json: bool,
        /// Namespaces to plan; all when none are given.
        names: Vec<String>,
    },
    /// Show each namespace: present or missing, in sync or its drift, processes inside.
    Status {
        /// Print a JSON object: {"version": 1, "namespaces": [...]}.
        #[arg(long)]
        json: bool,
        /// Namespaces to show; all when none are given.
        names: Vec<String>,
    },
    /// Remove namespaces netnsctl created, and the /etc/netns files it wrote.
    Down {
        /// Remove every namespace netnsctl created, declared in the config or not.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Remove namespaces even with processes inside; they keep the namespace alive.
        #[arg(long)]
        force: bool,
        /// Namespaces to remove.
        #[arg(required_unless_present = "all")]
        names: Vec<String>,
    },
    /// Run a command inside a namespace, as `ip netns exec` does; exit with its status.
    Exec {
        /// Namespace to enter.
        name: String,
        /// Run the command as this user (a name or a numeric user id), with its groups.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Command and arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Register the network namespace netnsctl runs in as NAME and apply NAME's config to it.
    ///
    /// The ExecStart= of netns-NAME.service, which runs in a namespace systemd creates
    /// (PrivateNetwork=yes). Like `ip netns attach NAME $$`, then `netnsctl apply NAME`.
    Attach {
        /// Namespace to register.
        name: String,
    },
    /// Write derived files: systemd units, shell completions, man pages, the config schema.
    Generate {
        #[command(subcommand)]
        kind: generate::Generate,
    },
    /// Validate the config, rulesets included, without changing anything.
    Check {
        /// Print a JSON object: {"version": 1, "valid": bool, "errors": [...]}.
        #[arg(long)]
        json: bool,
    },
}

/// Version of the JSON output formats of plan, status and check.
pub const JSON_VERSION: u32 = 1;

/// Runs the command line and returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    logging::init(&cli.global);
    let code = match &cli.command {
        Command::Apply { names } => apply::apply(&cli.global, names),
        Command::Plan { json, names } => apply::plan(&cli.global, names, *json),
        Command::Status { json, names } => status::status(&cli.global, names, *json),
        Command::Down { all, force, names } => down::down(&cli.global, names, *all, *force),
        Command::Exec {
            name,
            user,
            command,
        } => exec::exec(name, user.as_deref(), command),
        Command::Attach { name } => attach::attach(&cli.global, name),
        Command::Generate { kind } => generate::generate(&cli.global, kind),
        Command::Check { json } => check::check(&cli.global, *json),
    };
    ExitCode::from(code)
}

/// Prints config errors and returns the exit status for them.
fn report_config_errors(errors: &ConfigErrors) -> u8 {
    for error in &errors.0 {
        eprintln!("error: {error}");
    }
    EXIT_INVALID
}

/// Loads, validates and resolves the config, limited to `names` when given.
fn load_desired(
    global: &GlobalArgs,
    names: &[String],
) -> Result<(LoadedConfig, Desired), ConfigErrors> {
    let loaded = config::load(&global.config)?;
    // Resolving only reads files (nftables_file, sysctl.d, the host ruleset), so it runs even
    // on an invalid config and its errors are reported together with the validation errors.
    let validated = config::validate::validate(&loaded);
    let resolved = desired::resolve(&loaded, names, &HostSources::default());
    match (validated, resolved) {
        (Ok(()), Ok(desired)) => Ok((loaded, desired)),
        (Err(mut errors), Err(more)) => {
            errors.0.extend(more.0);
            Err(errors)
        }
        (Err(errors), Ok(_)) | (Ok(()), Err(errors)) => Err(errors),
    }
}

/// Fails unless running as root with CAP_SYS_ADMIN and CAP_NET_ADMIN: namespaces, mounts and
/// netlink changes need both. Prints one message that names what is missing.
fn require_root(command: &str) -> Result<(), u8> {
    use crate::kernel::procs::{effective_capabilities, CAP_NET_ADMIN, CAP_SYS_ADMIN};

    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "error: netnsctl {command} needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run it as root or with sudo"
        );
        return Err(EXIT_FAILED);
    }
    // Without /proc the check cannot be made; the first privileged call then reports EPERM.
    let Ok(effective) = effective_capabilities() else {
        return Ok(());
    };
    let missing: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| effective & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "error: netnsctl {command} needs CAP_SYS_ADMIN and CAP_NET_ADMIN, but this root process lacks {}; \
         give it both (a container runtime or a systemd CapabilityBoundingSet= may have dropped them)",
        missing.join(" and ")
    );
    Err(EXIT_FAILED)
}

fn take_lock(global: &GlobalArgs) -> Result<Lock, u8> {
    let timeout = Duration::from_secs_f64(global.lock_timeout.max(0.0));
    Lock::acquire(timeout).map_err(|err| {
        eprintln!("error: {err}");
        match err {
            LockError::Io(_) | LockError::TimedOut { .. } => EXIT_FAILED,
        }
    })
}
