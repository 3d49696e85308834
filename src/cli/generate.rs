//! `generate`: files derived from netnsctl's own definitions, for packagers and editors.
//!
//! Completions and man pages come from the clap definitions in [`super::Cli`], and the schema
//! from the serde types in [`crate::config`], so none of them can drift from the code.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Subcommand};

use super::{Cli, GlobalArgs, EXIT_FAILED, EXIT_OK};

/// Files that `netnsctl generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
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

pub fn generate(_global: &GlobalArgs, kind: &Generate) -> u8 {
    let result = match kind {
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
    write_page(&command, dir, &mut written)?;
    Ok(written)
}

fn write_page(
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
        write_page(sub, dir, written)?;
    }
    Ok(())
}
