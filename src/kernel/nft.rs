//! nftables: rulesets are loaded with the `nft` binary, the one helper netnsctl runs, because only
//! nft parses the ruleset language. With the `libnftables` cargo feature, the same scripts run
//! in-process through libnftables instead, which saves a process spawn per namespace. The
//! ruleset generation is read over nfnetlink directly.
//!
//! `nft` acts on the network namespace it runs in. A child process starts in the namespace of the
//! thread that spawned it, and a libnftables context opens its socket in the namespace of the
//! calling thread, so callers run these functions on a thread inside the target namespace.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// Environment variable that overrides the nft binary, for tests and unusual installs.
pub const NFT_ENV: &str = "NETNSCTL_NFT";

/// A failed nft run.
#[derive(Debug)]
pub enum NftError {
    /// nft could not be started.
    Spawn { program: PathBuf, source: io::Error },
    /// libnftables could not run the script (no context, no memfd for the script).
    #[cfg(feature = "libnftables")]
    Library { source: io::Error },
    /// nft ran and rejected the ruleset; `message` is its own output, with file and line.
    Rejected { message: String },
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftError::Spawn { program, source } if source.kind() == io::ErrorKind::NotFound => write!(
                f,
                "cannot run {}: not found; install nftables (Debian: apt install nftables) or set {NFT_ENV}",
                program.display()
            ),
            NftError::Spawn { program, source } => {
                write!(f, "cannot run {}: {source}", program.display())
            }
            #[cfg(feature = "libnftables")]
            NftError::Library { source } => write!(f, "cannot run libnftables: {source}"),
            NftError::Rejected { message } => f.write_str(message.trim_end()),
        }
    }
}

impl std::error::Error for NftError {}

/// Returns the nft binary: `$NETNSCTL_NFT`, else the first `nft` on PATH or in /usr/sbin and
/// /sbin (root's usual PATH is not always set, e.g. under systemd generators).
pub fn nft_program() -> PathBuf {
    if let Some(path) = std::env::var_os(NFT_ENV) {
        return PathBuf::from(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("nft"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// Runs an nft script as `nft -f` does, in-process through libnftables, `--check` when
/// `check`. Returns what nft printed on stdout.
#[cfg(feature = "libnftables")]
fn run_script_text(script: &str, label: &str, check: bool) -> Result<String, NftError> {
    let (name, output) = super::libnftables::run(script, check, false)
        .map_err(|source| NftError::Library { source })?;
    if output.success {
        return Ok(output.stdout);
    }
    Err(rejected(&output.stderr, &name, label, script))
}

/// Runs an nft script with the `nft` binary, `--check` when `check`. Returns what nft printed on
/// stdout.
#[cfg(not(feature = "libnftables"))]
fn run_script_text(script: &str, label: &str, check: bool) -> Result<String, NftError> {
    let args: &[&str] = if check {
        &["--check", "-f", "-"]
    } else {
        &["-f", "-"]
    };
    run(args, script, label)
}

/// Runs one nft listing command given as arguments, like `nft list ruleset`, with `--stateless`
/// when `stateless`. Returns its output.
fn run_command(args: &[&str], stateless: bool) -> Result<String, NftError> {
    #[cfg(feature = "libnftables")]
    {
        let script = format!("{}\n", args.join(" "));
        let (name, output) = super::libnftables::run(&script, false, stateless)
            .map_err(|source| NftError::Library { source })?;
        if output.success {
            return Ok(output.stdout);
        }
        Err(rejected(&output.stderr, &name, "list", &script))
    }
    #[cfg(not(feature = "libnftables"))]
    {
        let mut all = Vec::with_capacity(args.len() + 1);
        if stateless {
            all.push("--stateless");
        }
        all.extend_from_slice(args);
        run(&all, "", "list")
    }
}

/// Builds the error for a rejected script from nft's message: `name`, the file name nft saw,
/// becomes `label`, and the flush prefix of [`replace_script`] is hidden.
#[cfg(feature = "libnftables")]
fn rejected(stderr: &str, name: &str, label: &str, script: &str) -> NftError {
    let message = if stderr.trim().is_empty() {
        "nft failed without a message".to_owned()
    } else {
        let message = stderr.replace(&format!("{name}:"), &format!("{label}:"));
        if script.starts_with(FLUSH_PREFIX) {
            hide_flush_prefix(&message, label)
        } else {
            message
        }
    };
    NftError::Rejected { message }
}

#[cfg_attr(feature = "libnftables", allow(dead_code))]
fn run(args: &[&str], stdin: &str, label: &str) -> Result<String, NftError> {
    let program = nft_program();
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NftError::Spawn {
            program: program.clone(),
            source,
        })?;
    let mut input = child.stdin.take().expect("stdin is piped");
    // A write error means nft exited early; its status and stderr tell why.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let output = child.wait_with_output().map_err(|source| NftError::Spawn {
        program: program.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = if stderr.trim().is_empty() {
        format!("nft failed with {}", output.status)
    } else {
        let message = stderr.replace("/dev/stdin:", &format!("{label}:"));
        let mut message = if stdin.starts_with(FLUSH_PREFIX) {
            hide_flush_prefix(&message, label)
        } else {
            message
        };
        if message.contains("Interface does not exist") {
            // nft turns `iif`/`oif` names into interface indexes while parsing, and netnsctl
            // checks and loads a namespace's ruleset before it creates the namespace's links.
            message.push_str(
                "hint: the ruleset is checked and loaded before netnsctl creates the namespace's \
                 links; match links by name with `iifname` and `oifname` instead of `iif` and `oif`\n",
            );
        }
        message
    };
    Err(NftError::Rejected { message })
}

/// Builds the script that replaces the whole ruleset in one transaction. `flush ruleset;` goes on
/// the first line so nft's line numbers match the user's text.
pub fn replace_script(ruleset: &str) -> String {
    format!("{FLUSH_PREFIX}{ruleset}")
}

const FLUSH_PREFIX: &str = "flush ruleset; ";

/// Removes the `flush ruleset; ` that [`replace_script`] put before the user's first line from
/// nft's message: from the quoted line, from the caret line under it, and from the columns of
/// `LABEL:1:FROM-TO:`.
fn hide_flush_prefix(message: &str, label: &str) -> String {
    let shift = FLUSH_PREFIX.len();
    let location = format!("{label}:1:");
    let mut lines: Vec<String> = Vec::new();
    let mut after_quote = false;
    for line in message.lines() {
        if let Some(rest) = line.strip_prefix(FLUSH_PREFIX) {
            lines.push(rest.to_owned());
            after_quote = true;
            continue;
        }
        if after_quote && line.len() >= shift && line[..shift].trim().is_empty() {
            lines.push(line[shift..].to_owned());
            after_quote = false;
            continue;
        }
        after_quote = false;
        lines.push(shift_columns(line, &location, shift));
    }
    let mut joined = lines.join("\n");
    if message.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// Rewrites `LOCATION FROM-TO:` (or `LOCATION COLUMN:`) at the start of `line` with the columns
/// reduced by `shift`.
fn shift_columns(line: &str, location: &str, shift: usize) -> String {
    let Some(rest) = line.strip_prefix(location) else {
        return line.to_owned();
    };
    let Some((columns, tail)) = rest.split_once(':') else {
        return line.to_owned();
    };
    let shifted: Option<Vec<String>> = columns
        .split('-')
        .map(|column| {
            let column: usize = column.parse().ok()?;
            Some(column.saturating_sub(shift).max(1).to_string())
        })
        .collect();
    match shifted {
        Some(shifted) => format!("{location}{}:{tail}", shifted.join("-")),
        None => line.to_owned(),
    }
}

/// Replaces the ruleset of the calling thread's namespace with `ruleset`, atomically: nft sends
/// the flush and the new ruleset in one batch, and on any error the old ruleset stays.
/// `label` replaces `/dev/stdin` in nft's error messages.
pub fn load_ruleset(ruleset: &str, label: &str) -> Result<(), NftError> {
    run_script_text(&replace_script(ruleset), label, false).map(drop)
}

/// Checks that `ruleset` would load (`nft --check`), without changing anything.
pub fn check_ruleset(ruleset: &str, label: &str) -> Result<(), NftError> {
    run_script_text(&replace_script(ruleset), label, true).map(drop)
}

/// Empties the ruleset of the calling thread's namespace.
pub fn flush_ruleset() -> Result<(), NftError> {
    run_script_text("flush ruleset\n", "flush", false).map(drop)
}

/// Returns the ruleset of the calling thread's namespace as nft prints it, without stateful
/// values such as counters and quotas, so that the text only changes when the rules do.
pub fn list_ruleset() -> Result<String, NftError> {
    run_command(&["list", "ruleset"], true)
}

/// Runs an nft script as given, e.g. one that replaces a single table.
pub fn run_script(script: &str, label: &str) -> Result<(), NftError> {
    run_script_text(script, label, false).map(drop)
}

/// Returns the listing of one table, or `None` when it does not exist.
pub fn list_table(family: &str, name: &str) -> Result<Option<String>, NftError> {
    match run_command(&["list", "table", family, name], false) {
        Ok(listing) => Ok(Some(listing)),
        Err(NftError::Rejected { message }) if message.contains("No such file or directory") => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Builds the script that replaces one table in one transaction: `add table` first, so that the
/// `delete table` after it succeeds whether or not the table existed. Other tables stay as they
/// are.
pub fn replace_table_script(family: &str, name: &str, table: &str) -> String {
    format!("add table {family} {name}\ndelete table {family} {name}\n{table}")
}

/// Replaces (or creates) one table atomically in the calling thread's namespace.
pub fn replace_table(family: &str, name: &str, table: &str) -> Result<(), NftError> {
    run_script(
        &replace_table_script(family, name, table),
        &format!("table {family} {name}"),
    )
}

/// Deletes one table in the calling thread's namespace; a missing table is not an error.
pub fn delete_table(family: &str, name: &str) -> Result<(), NftError> {
    run_script(
        &format!("add table {family} {name}\ndelete table {family} {name}\n"),
        &format!("table {family} {name}"),
    )
}

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETGEN: u16 = 16;
const NFT_MSG_NEWGEN: u16 = 15;
const NFTA_GEN_ID: u16 = 1;
const NLMSG_ERROR: u16 = 2;

/// Reads the nftables generation of the calling thread's namespace. The kernel increments it on
/// every committed ruleset change in that namespace, so an unchanged generation proves nobody
/// touched the ruleset since netnsctl loaded it.
pub fn ruleset_generation() -> io::Result<u32> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;

    let message_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
    let mut request = Vec::with_capacity(20);
    request.extend_from_slice(&20u32.to_ne_bytes());
    request.extend_from_slice(&message_type.to_ne_bytes());
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id 0.
    request.extend_from_slice(&[0, 0, 0, 0]);
    socket.send(&request, 0)?;

    let mut buffer = vec![0u8; 8192];
    let size = socket.recv(&mut &mut buffer[..], 0)?;
    let reply = &buffer[..size];
    if reply.len() < 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short nfnetlink reply",
        ));
    }
    let reply_type = u16::from_ne_bytes([reply[4], reply[5]]);
    if reply_type == NLMSG_ERROR {
        let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        return Err(io::Error::from_raw_os_error(-code));
    }
    if reply_type != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected nfnetlink reply type {reply_type:#x}"),
        ));
    }
    let mut offset = 20;
    while offset + 4 <= reply.len() {
        let length = u16::from_ne_bytes([reply[offset], reply[offset + 1]]) as usize;
        let kind = u16::from_ne_bytes([reply[offset + 2], reply[offset + 3]]) & 0x3fff;
        if length < 4 || offset + length > reply.len() {
            break;
        }
        if kind == NFTA_GEN_ID && length >= 8 {
            let value = &reply[offset + 4..offset + 8];
            return Ok(u32::from_be_bytes([value[0], value[1], value[2], value[3]]));
        }
        offset += (length + 3) & !3;
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "nfnetlink reply has no generation id",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_prefix_hidden_from_messages() {
        let message = "vpn.nft:1:24-27: Error: syntax error, unexpected string\n\
                       flush ruleset; table ip x { chain y { dorp; } }\n\
                       \x20                      ^^^^\n";
        let shown = hide_flush_prefix(message, "vpn.nft");
        assert_eq!(
            shown,
            "vpn.nft:1:9-12: Error: syntax error, unexpected string\n\
             table ip x { chain y { dorp; } }\n\
             \x20       ^^^^\n"
        );
    }

    #[test]
    fn later_lines_keep_their_columns() {
        let message = "vpn.nft:3:5-8: Error: x\n    dorp\n    ^^^^\n";
        assert_eq!(hide_flush_prefix(message, "vpn.nft"), message);
    }
}
