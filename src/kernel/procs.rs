//! Processes inside network namespaces, found by comparing /proc/PID/ns/net with a namespace
//! file's device and inode.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

/// A process found inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    pub pid: u32,
    /// The command line, or the command name in brackets for kernel threads.
    pub command: String,
}

/// Maps namespace (device, inode) to the PIDs of the processes inside it, in ascending order, from
/// one scan of /proc. Only /proc/PID/ns/net is read per process; [`describe`] reads the command
/// of the few that matter.
pub fn pids_by_netns() -> HashMap<(u64, u64), Vec<u32>> {
    let mut map: HashMap<(u64, u64), Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // The process may exit between readdir and stat; skip it then.
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        map.entry((meta.dev(), meta.ino())).or_default().push(pid);
    }
    for pids in map.values_mut() {
        pids.sort_unstable();
    }
    map
}

/// Returns the process with its command line, or its command name in brackets when the command
/// line is empty (kernel threads, or a process that has just exited).
pub fn describe(pid: u32) -> Process {
    Process {
        pid,
        command: command_of(pid),
    }
}

fn command_of(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    if args.is_empty() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        format!("[{}]", comm.trim_end())
    } else {
        args.join(" ")
    }
}

/// Capability bit of CAP_NET_ADMIN, from linux/capability.h.
pub const CAP_NET_ADMIN: u32 = 12;
/// Capability bit of CAP_SYS_ADMIN, from linux/capability.h.
pub const CAP_SYS_ADMIN: u32 = 21;

/// Returns the effective capability set of this process, from the `CapEff` line of
/// /proc/self/status.
pub fn effective_capabilities() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| std::io::Error::other("no CapEff line in /proc/self/status"))
}
