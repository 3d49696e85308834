//! `generate`: files derived from the config for other programs, and the systemd generator.
//!
//! Completions and man pages come from the clap definitions in [`super::Cli`], and the schema
//! from the serde types in [`crate::config`], so none of them can drift from the code.
//!
//! Run as `netnsctl-generator` (a symlink in /usr/lib/systemd/system-generators), the binary
//! follows systemd.generator(7): it writes the same units as `netnsctl generate systemd` into
//! the directory systemd passes. On a bad config it logs the errors, writes nothing and still
//! exits with status 0, so boot goes on.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Subcommand};

use super::{report_config_errors, Cli, GlobalArgs, EXIT_FAILED, EXIT_INVALID, EXIT_OK};
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
    /// Print a shell completion script to stdout.
    Completions {
        /// Shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write man pages into DIR: netnsctl.1 and netnsctl-SUBCOMMAND.1 for each subcommand.
    Man {
        /// Directory to write the pages to; created when missing.
        dir: PathBuf,
    },
    /// Print the JSON Schema of the config file to stdout.
    Schema,
}

pub fn generate(global: &GlobalArgs, kind: &Generate) -> u8 {
    let result = match kind {
        Generate::Systemd { output } => return systemd_units(global, output.as_deref()),
        Generate::Completions { shell } => {
            print_completions(*shell);
            Ok(())
        }
        Generate::Man { dir } => write_man_pages(dir).map(drop),
        Generate::Schema => print_schema(),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_FAILED
        }
    }
}

fn print_completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "netnsctl", &mut std::io::stdout());
}

fn print_schema() -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", crate::config::schema::schema_json())
        .map_err(|err| format!("cannot write the schema to stdout: {err}"))
}

/// Writes one page per command and subcommand, hidden ones excepted, and returns their paths.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create directory {}: {err}", dir.display()))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Building propagates the global options into every subcommand and sets display names
    // such as `netnsctl-apply`, which become the page names.
    command.build();
    let mut written = Vec::new();
    write_man_page(&command, dir, &mut written)?;
    Ok(written)
}

fn write_man_page(
    command: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let page = clap_mangen::Man::new(command.clone())
        .source(format!("netnsctl {}", env!("CARGO_PKG_VERSION")))
        .manual("netnsctl manual");
    let path = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text)
        .map_err(|err| format!("cannot render man page {}: {err}", path.display()))?;
    std::fs::write(&path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_man_page(sub, dir, written)?;
    }
    Ok(())
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
    if let Err(err) = write_units(output, &units) {
        eprintln!("error: {err}");
        return EXIT_FAILED;
    }
    for unit in &units {
        println!("{}", output.join(&unit.path).display());
    }
    match remove_stale(output, &units) {
        Ok(removed) => {
            for path in removed {
                println!("removed {}", path.display());
            }
            EXIT_OK
        }
        Err(err) => {
            eprintln!("error: cannot remove units of namespaces no longer in the config: {err}");
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

/// Removes what an earlier `generate systemd` wrote into `dir` and `units` no longer has: unit
/// files named netns-*.service that start with netnsctl's mark, member drop-ins named
/// netnsctl-netns.conf, and install symlinks netns-*.service -> ../netns-*.service. Other files
/// stay. Returns the removed paths.
fn remove_stale(dir: &Path, units: &[OutputFile]) -> std::io::Result<Vec<PathBuf>> {
    let dir = &std::path::absolute(dir)?;
    let wanted: BTreeSet<&Path> = units.iter().map(|unit| unit.path.as_path()).collect();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_file() && is_namespace_unit_name(&name) {
            let text = files::read(&entry.path())?.unwrap_or_default();
            if text.starts_with(systemd::GENERATED_MARK.as_bytes()) {
                stale.push(PathBuf::from(&name));
            }
        } else if kind.is_dir() && name.ends_with(".d") {
            let drop_in = Path::new(&name).join(systemd::DROP_IN_NAME);
            if dir.join(&drop_in).is_file() {
                stale.push(drop_in);
            }
        } else if kind.is_dir()
            && systemd::install_dir_suffixes().any(|suffix| name.ends_with(&format!(".{suffix}")))
        {
            for link in std::fs::read_dir(entry.path())? {
                let link = link?;
                let link_name = link.file_name().to_string_lossy().into_owned();
                let ours = link.file_type()?.is_symlink()
                    && is_namespace_unit_name(&link_name)
                    && std::fs::read_link(link.path())? == Path::new("..").join(&link_name);
                if ours {
                    stale.push(Path::new(&name).join(link_name));
                }
            }
        }
    }
    stale.retain(|path| !wanted.contains(path.as_path()));
    stale.sort();

    for path in &stale {
        let full = dir.join(path);
        files::remove(&full, false)?;
        let parent = full
            .parent()
            .expect("stale paths are below the unit directory");
        if parent != dir {
            // The drop-in or link directory goes too when nothing else is in it.
            match files::remove(parent, true) {
                Err(err) if err.kind() != std::io::ErrorKind::DirectoryNotEmpty => return Err(err),
                _ => {}
            }
        }
    }
    Ok(stale.into_iter().map(|path| dir.join(path)).collect())
}

fn is_namespace_unit_name(name: &str) -> bool {
    name.strip_prefix("netns-")
        .and_then(|rest| rest.strip_suffix(".service"))
        .is_some_and(crate::config::names::is_valid_namespace_name)
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
