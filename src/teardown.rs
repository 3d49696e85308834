//! `down`: removes namespaces netnsctl created and the files it wrote for them.
//!
//! The record is removed last, so a run killed halfway leaves the name owned and the next `down`
//! finishes the job.

use std::collections::HashMap;

use crate::kernel::files;
use crate::kernel::netns::{self, NetnsFile};
use crate::kernel::procs::{self, Process};
use crate::state;

/// What `down` did.
#[derive(Debug, Default)]
pub struct Teardown {
    pub removed: Vec<String>,
    pub warnings: Vec<String>,
    pub failures: Vec<String>,
}

/// Removes the namespaces in `names`. Every name must have a record; a namespace with processes
/// inside is kept unless `force`, in which case it is unregistered and lives on until its last
/// process exits. The calling process does not count: `ExecStop=` of netns-NAME.service runs
/// `netnsctl down NAME` inside the namespace it removes.
pub fn down(names: &[String], force: bool) -> Teardown {
    let mut result = Teardown::default();
    let mut processes: Option<HashMap<(u64, u64), Vec<Process>>> = None;
    for name in names {
        match state::read_record(name) {
            Ok(Some(_)) => {}
            Ok(None) => {
                result.failures.push(format!(
                    "{name}: not created by netnsctl (no record in {}); left alone",
                    state::STATE_DIR
                ));
                continue;
            }
            Err(err) => {
                result.failures.push(format!("{name}: {err}"));
                continue;
            }
        }
        let path = netns::netns_path(name);
        match netns::inspect(&path) {
            Ok(NetnsFile::Attached { dev, ino }) => {
                let own_pid = std::process::id();
                let inside: Vec<Process> = processes
                    .get_or_insert_with(procs::processes_by_netns)
                    .get(&(dev, ino))
                    .map(|list| list.iter().filter(|p| p.pid != own_pid).cloned().collect())
                    .unwrap_or_default();
                if !inside.is_empty() {
                    let list = inside
                        .iter()
                        .map(|p| format!("{} ({})", p.pid, p.command))
                        .collect::<Vec<_>>()
                        .join(", ");
                    if !force {
                        result.failures.push(format!(
                            "{name}: {} process(es) inside: {list}; stop them or use --force",
                            inside.len()
                        ));
                        continue;
                    }
                    result.warnings.push(format!(
                        "{name}: unregistered with processes still inside ({list}); the namespace lives until they exit"
                    ));
                }
            }
            Ok(_) => {}
            Err(err) => {
                result
                    .failures
                    .push(format!("{name}: cannot inspect {}: {err}", path.display()));
                continue;
            }
        }
        if let Err(err) = netns::remove(&path) {
            result.failures.push(format!("{name}: {err}"));
            continue;
        }
        crate::apply::step_boundary();
        if let Err(err) = remove_etc_files(name) {
            result.failures.push(format!("{name}: {err}"));
            continue;
        }
        crate::apply::step_boundary();
        if let Err(err) = state::remove_record(name) {
            result
                .failures
                .push(format!("{name}: cannot remove state record: {err}"));
            continue;
        }
        tracing::info!(namespace = name.as_str(), "removed namespace");
        result.removed.push(name.clone());
    }
    result
}

/// Removes /etc/netns/NAME/resolv.conf and the directory when nothing else is in it. Files other
/// tools put there are kept, and so is the directory then.
fn remove_etc_files(name: &str) -> std::io::Result<()> {
    let dir = netns::etc_dir(name);
    files::remove(&dir.join("resolv.conf"), false)?;
    match files::remove(&dir, true) {
        Err(err) if err.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        other => other,
    }
}
