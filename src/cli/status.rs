//! `status`: presence, drift and processes per namespace.

use std::collections::HashMap;

use serde::Serialize;

use super::terminal::{self, Colour};
use super::{load_desired, report_config_errors, require_root, GlobalArgs, EXIT_OK, JSON_VERSION};
use crate::kernel::netns::NetnsFile;
use crate::kernel::procs;
use crate::observe;
use crate::plan::{self, Note, Step};

#[derive(Debug, Serialize)]
struct NamespaceStatus {
    name: String,
    /// Attached at /run/netns/NAME.
    present: bool,
    /// A file at /run/netns/NAME that is not a namespace mount.
    stale_file: bool,
    /// Created or adopted by netnsctl.
    owned: bool,
    /// Declared in the config.
    declared: bool,
    in_sync: bool,
    drift: Vec<Step>,
    /// Declared objects that do not exist and that apply does not make (see the notes).
    missing: usize,
    notes: Vec<Note>,
    processes: usize,
}

pub fn status(global: &GlobalArgs, names: &[String], json: bool) -> u8 {
    if let Err(code) = require_root("status") {
        return code;
    }
    // A name that the config no longer declares but that netnsctl recorded is shown as not
    // managed, as plain `status` shows it.
    let recorded = crate::state::recorded_namespaces().unwrap_or_default();
    let declared_names = match crate::config::load(&global.config) {
        Ok(loaded) => loaded.config.namespaces,
        Err(errors) => return report_config_errors(&errors),
    };
    let (declared, orphans): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|name| declared_names.contains_key(name) || !recorded.contains(name));
    let (_, mut desired) = match load_desired(global, &declared) {
        Ok(loaded) => loaded,
        Err(errors) => return report_config_errors(&errors),
    };
    if declared.is_empty() && !orphans.is_empty() {
        desired.namespaces.clear();
    }
    let observed = observe::observe(&desired);
    let mut processes: HashMap<(u64, u64), Vec<u32>> = procs::pids_by_netns();
    // wireguard-go processes of netnsctl's WireGuard links run in their underlay namespace and
    // are not counted as processes inside it.
    let wireguard_pids = crate::state::wireguard_pids();
    for list in processes.values_mut() {
        list.retain(|pid| !wireguard_pids.contains(pid));
    }

    // One plan for everything, split by namespace: the host table depends on every namespace.
    let full = plan::plan(&desired, &observed);
    let mut statuses = Vec::new();
    for name in desired.namespaces.keys() {
        let seen = &observed.namespaces[name];
        let plan = plan::Plan {
            steps: full
                .steps
                .iter()
                .filter(|step| step.namespace() == name)
                .cloned()
                .collect(),
            notes: full
                .notes
                .iter()
                .filter(|note| &note.namespace == name)
                .cloned()
                .collect(),
        };
        let count = match seen.file {
            Some(NetnsFile::Attached { dev, ino }) => {
                processes.get(&(dev, ino)).map_or(0, Vec::len)
            }
            _ => 0,
        };
        let missing = plan.unmet_count(name);
        statuses.push(NamespaceStatus {
            name: name.clone(),
            present: seen.attached(),
            stale_file: seen.file == Some(NetnsFile::Stale),
            owned: seen.owned(),
            declared: true,
            in_sync: plan.steps.is_empty() && missing == 0 && seen.attached() && seen.owned(),
            drift: plan.steps,
            missing,
            notes: plan.notes,
            processes: count,
        });
    }
    let undeclared: Vec<String> = if names.is_empty() {
        recorded
            .into_iter()
            .filter(|name| !desired.namespaces.contains_key(name))
            .collect()
    } else {
        orphans
    };
    for name in undeclared {
        let file = crate::kernel::netns::inspect(&crate::kernel::netns::netns_path(&name)).ok();
        let count = match file {
            Some(NetnsFile::Attached { dev, ino }) => {
                processes.get(&(dev, ino)).map_or(0, Vec::len)
            }
            _ => 0,
        };
        statuses.push(NamespaceStatus {
            name: name.clone(),
            present: matches!(file, Some(NetnsFile::Attached { .. })),
            stale_file: file == Some(NetnsFile::Stale),
            owned: true,
            declared: false,
            in_sync: false,
            drift: Vec::new(),
            missing: 0,
            notes: vec![Note {
                namespace: name.clone(),
                level: plan::Level::Warning,
                message: format!("created by netnsctl but no longer declared; remove it with `netnsctl down {name}`"),
                skipped_sysctl: None,
                unmet: None,
            }],
            processes: count,
        });
    }

    // Host steps (bridges, the host table) belong to no single namespace.
    let host_drift: Vec<Step> = full
        .steps
        .iter()
        .filter(|step| step.namespace() == plan::HOST)
        .cloned()
        .collect();
    let host_notes: Vec<Note> = full
        .notes
        .iter()
        .filter(|note| note.namespace == plan::HOST)
        .cloned()
        .collect();
    let host_missing = full.unmet_count(plan::HOST);
    let host_in_sync = host_drift.is_empty() && host_missing == 0;

    if json {
        let output = serde_json::json!({
            "version": JSON_VERSION,
            "namespaces": statuses,
            "host": {
                "in_sync": host_in_sync,
                "drift": host_drift,
                "missing": host_missing,
                "notes": host_notes,
            },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&output).expect("status serializes")
        );
        return EXIT_OK;
    }
    let colour = terminal::colour_enabled(&std::io::stdout());
    for status in &statuses {
        let presence = if status.present {
            terminal::paint("present", Colour::Green, colour)
        } else if status.stale_file {
            terminal::paint("stale file", Colour::Red, colour)
        } else {
            terminal::paint("missing", Colour::Red, colour)
        };
        let ownership = if status.owned { "owned" } else { "not owned" };
        let sync = if status.in_sync {
            terminal::paint("in sync", Colour::Green, colour)
        } else if status.drift.is_empty() && status.missing == 0 {
            "not managed".to_owned()
        } else {
            terminal::paint(
                &drift_summary(status.drift.len(), status.missing),
                Colour::Yellow,
                colour,
            )
        };
        println!(
            "{}: {presence}, {ownership}, {sync}, {} process(es)",
            status.name, status.processes
        );
        for step in &status.drift {
            println!("  drift: {step}");
        }
        for note in &status.notes {
            println!("  note: {}", note.message);
        }
    }
    if !host_drift.is_empty() || !host_notes.is_empty() {
        let sync = if host_in_sync {
            "in sync".to_owned()
        } else {
            drift_summary(host_drift.len(), host_missing)
        };
        println!("host: {sync}");
        for step in &host_drift {
            println!("  drift: {step}");
        }
        for note in &host_notes {
            println!("  note: {}", note.message);
        }
    }
    EXIT_OK
}

/// Returns "N change(s) pending", "N declared object(s) missing", or both.
fn drift_summary(pending: usize, missing: usize) -> String {
    let mut parts = Vec::new();
    if pending > 0 || missing == 0 {
        parts.push(format!("{pending} change(s) pending"));
    }
    if missing > 0 {
        parts.push(format!("{missing} declared object(s) missing"));
    }
    parts.join(", ")
}
