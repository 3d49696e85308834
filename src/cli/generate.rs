//! `generate`: files derived from the config for other programs, and the systemd generator.
//!
//! Run as `netnsctl-generator` (a symlink in /usr/lib/systemd/system-generators), the binary
//! follows systemd.generator(7): it writes the same units as `netnsctl generate systemd` into
//! the directory systemd passes. On a bad config it logs the errors, writes nothing and still
//! exits with status 0, so boot goes on.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{report_config_errors, GlobalArgs, EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::config::{self, ConfigErrors, LoadedConfig};
use crate::kernel::files;
use crate::systemd::{self, Content, Options, OutputFile};

/// File name under which the binary acts as a systemd generator.
pub const GENERATOR_NAME: &str = "netnsctl-generator";

/// Environment variable with the config file the generator reads instead of the default.
pub const GENERATOR_CONFIG_ENV: &str = "NETNSCTL_CONFIG";

/// Kinds of files `generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write netns-NAME.service for each namespace, and UNIT.d/netnsctl-netns.conf for each
    /// member unit.
    Systemd {
        /// Directory to write into, such as /etc/systemd/system; prints the files when absent.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

pub fn generate(global: &GlobalArgs, kind: &Generate) -> u8 {
    match kind {
        Generate::Systemd { output } => systemd_units(global, output.as_deref()),
    }
}

fn systemd_units(global: &GlobalArgs, output: Option<&Path>) -> u8 {
    let loaded = match load_valid(&global.config) {
        Ok(loaded) => loaded,
        Err(errors) => return report_config_errors(&errors),
    };
    let options = match unit_options(&global.config) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let units = systemd::render(&loaded.config, &options);
    let Some(output) = output else {
        print_units(&units);
        return EXIT_OK;
    };
    match write_units(output, &units) {
        Ok(()) => {
            for unit in &units {
                println!("{}", output.join(&unit.path).display());
            }
            EXIT_OK
        }
        Err(err) => {
            eprintln!("error: {err}");
            EXIT_FAILED
        }
    }
}

fn load_valid(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let loaded = config::load(path)?;
    config::validate::validate(&loaded)?;
    Ok(loaded)
}

/// Returns the paths written into the units: this binary and the config, both absolute.
fn unit_options(config: &Path) -> Result<Options, String> {
    let executable = std::env::current_exe()
        .map_err(|err| format!("cannot find the path of the netnsctl binary: {err}"))?;
    let config = std::path::absolute(config)
        .map_err(|err| format!("cannot make {} absolute: {err}", config.display()))?;
    Ok(Options { executable, config })
}

fn print_units(units: &[OutputFile]) {
    let mut stdout = std::io::stdout().lock();
    for (i, unit) in units.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(stdout);
        }
        let _ = match &unit.content {
            Content::File(text) => write!(stdout, "==> {} <==\n{text}", unit.path.display()),
            Content::Symlink(target) => writeln!(
                stdout,
                "==> {} -> {} <==",
                unit.path.display(),
                target.display()
            ),
        };
    }
}

/// Writes the units under `dir`, replacing files of the same name.
fn write_units(dir: &Path, units: &[OutputFile]) -> std::io::Result<()> {
    let dir = std::path::absolute(dir)?;
    for unit in units {
        let path = dir.join(&unit.path);
        let parent = path.parent().expect("unit paths are relative file paths");
        files::create_dir_all(parent, 0o755)?;
        match &unit.content {
            Content::File(text) => files::replace(&path, text.as_bytes(), 0o644)?,
            Content::Symlink(target) => files::replace_symlink(&path, target)?,
        }
    }
    Ok(())
}

/// Returns true when the binary was started under the generator's name.
pub fn invoked_as_generator(argv0: &OsString) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|name| name == GENERATOR_NAME)
}

/// Runs as a systemd generator: `netnsctl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]`. Writes
/// into NORMAL_DIR and returns 0 also when the config is invalid, so boot goes on without the
/// namespace units; the errors go to the kernel log.
pub fn generator(args: &[OsString]) -> u8 {
    let dirs = &args[1.min(args.len())..];
    if dirs.len() != 1 && dirs.len() != 3 {
        log_generator(
            3,
            "usage: netnsctl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]",
        );
        return EXIT_INVALID;
    }
    let normal_dir = Path::new(&dirs[0]);
    let config_path = std::env::var_os(GENERATOR_CONFIG_ENV)
        .map_or_else(|| PathBuf::from(config::DEFAULT_CONFIG), PathBuf::from);
    if !config_path.exists() {
        // No config, no namespaces: nothing to generate.
        return EXIT_OK;
    }
    let loaded = match load_valid(&config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for error in &errors.0 {
                log_generator(3, &error.to_string());
            }
            log_generator(
                3,
                &format!(
                    "{}: invalid config, no namespace units generated; check it with `netnsctl check`",
                    config_path.display()
                ),
            );
            return EXIT_OK;
        }
    };
    let options = match unit_options(&config_path) {
        Ok(options) => options,
        Err(message) => {
            log_generator(3, &message);
            return EXIT_OK;
        }
    };
    let units = systemd::render(&loaded.config, &options);
    if let Err(err) = write_units(normal_dir, &units) {
        log_generator(
            3,
            &format!("cannot write units into {}: {err}", normal_dir.display()),
        );
    }
    EXIT_OK
}

/// Logs one generator message with a syslog priority (3 error). When systemd runs the
/// generator (it sets SYSTEMD_SCOPE in the generator environment, as systemd 252 does), the
/// message goes to /dev/kmsg, because the journal is not running yet at boot. Otherwise, or when
/// /dev/kmsg cannot be opened, it goes to stderr.
fn log_generator(priority: u8, message: &str) {
    if std::env::var_os("SYSTEMD_SCOPE").is_some() {
        if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
            let line = format!(
                "<{priority}>{GENERATOR_NAME}[{}]: {message}\n",
                std::process::id()
            );
            if kmsg.write_all(line.as_bytes()).is_ok() {
                return;
            }
        }
    }
    eprintln!("{GENERATOR_NAME}: {message}");
}
