//! `attach`: registers the network namespace netnsctl runs in as NAME and configures it. This is
//! the `ExecStart=` of netns-NAME.service, where systemd has created that namespace
//! (`PrivateNetwork=yes`).

use super::apply::{check_rulesets, compute_plan, execute, print_notes};
use super::{load_desired, report_config_errors, require_root, take_lock, GlobalArgs};
use super::{EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::config::names::{is_valid_namespace_name, NAMESPACE_NAME_RULE};
use crate::kernel::netns::{self, NetnsFile};
use crate::state::{self, Record, RECORD_VERSION};
use crate::teardown;

pub fn attach(global: &GlobalArgs, name: &str) -> u8 {
    if !is_valid_namespace_name(name) {
        eprintln!("error: invalid namespace name {name:?}: use {NAMESPACE_NAME_RULE}");
        return EXIT_INVALID;
    }
    if let Err(code) = require_root("attach") {
        return code;
    }
    let (_, desired) = match load_desired(global, &[name.to_owned()]) {
        Ok(loaded) => loaded,
        Err(errors) => return report_config_errors(&errors),
    };
    let spec = &desired.namespaces[name];
    // A ruleset that nft rejects stops the run before the namespace is registered.
    if let Err(code) = check_rulesets(&spec.ruleset.iter().collect::<Vec<_>>()) {
        return code;
    }
    let _lock = match take_lock(global) {
        Ok(lock) => lock,
        Err(code) => return code,
    };

    // systemd started this process inside the namespace it configures, so the host namespace
    // (host veth ends, bridges, the host nftables table) is the one of the parent process.
    if let Err(err) = netns::set_host_netns(nix::unistd::getppid().as_raw() as u32) {
        eprintln!("error: cannot open the network namespace of the parent process: {err}");
        return EXIT_FAILED;
    }

    let registered = match register(name, spec.adopt) {
        Ok(registered) => registered,
        Err(message) => {
            eprintln!("error: {name}: {message}");
            return EXIT_FAILED;
        }
    };

    let plan = compute_plan(&desired);
    print_notes(&plan);
    if execute(&desired, &plan, global.quiet) {
        return EXIT_OK;
    }
    if registered {
        // A failed start leaves nothing behind: systemd runs no ExecStop= for a unit whose
        // ExecStart= failed.
        let result = teardown::down(&[name.to_owned()], true);
        for failure in &result.failures {
            eprintln!("error: {failure}");
        }
        if result.failures.is_empty() {
            eprintln!("{name}: configuration failed; removed the namespace registration again");
        }
    }
    EXIT_FAILED
}

/// Registers the process's network namespace at /run/netns/NAME and records it as created by
/// netnsctl. Returns false when it was registered already.
fn register(name: &str, adopt: bool) -> Result<bool, String> {
    netns::prepare_run_dir()
        .map_err(|err| format!("cannot prepare {}: {err}", netns::NETNS_RUN_DIR))?;
    let path = netns::netns_path(name);
    let own =
        netns::process_netns().map_err(|err| format!("cannot read /proc/self/ns/net: {err}"))?;
    if netns::init_netns().is_ok_and(|init| init == own) {
        return Err(
            "netnsctl runs in the host's network namespace (PID 1's); attach registers the \
             namespace of a unit with PrivateNetwork=yes, so run it as that unit's ExecStart="
                .into(),
        );
    }
    let record = state::read_record(name).map_err(|err| err.to_string())?;
    let owned = record.is_some();
    let current =
        netns::inspect(&path).map_err(|err| format!("cannot inspect {}: {err}", path.display()))?;

    match current {
        NetnsFile::Attached { dev, ino } if (dev, ino) == own && owned => return Ok(false),
        NetnsFile::Missing => {}
        NetnsFile::Attached { .. } if owned => {
            // Left by a stop that failed, e.g. because a process outside the unit's members
            // still ran in the namespace. That process keeps the old namespace alive.
            tracing::warn!(
                namespace = name,
                "replacing the namespace registered at {} by an earlier start",
                path.display()
            );
            netns::remove(&path).map_err(|err| err.to_string())?;
        }
        NetnsFile::Stale if owned || adopt => {
            netns::remove(&path).map_err(|err| err.to_string())?;
        }
        NetnsFile::Attached { .. } | NetnsFile::Stale => {
            return Err(format!(
                "{} exists and netnsctl did not create it; remove it with `ip netns delete {name}` \
                 and start the unit again",
                path.display()
            ));
        }
    }

    // The record goes first, as in apply: after a crash before the mount the name is still
    // known to be netnsctl's.
    let record = Record {
        version: RECORD_VERSION,
        netns_inode: Some(own.1),
        ..Record::default()
    };
    state::write_record(name, &record)
        .map_err(|err| format!("cannot write state record: {err}"))?;
    netns::attach_pid(&path, std::process::id()).map_err(|err| err.to_string())?;
    tracing::info!(
        namespace = name,
        "registered the namespace at {}",
        path.display()
    );
    Ok(true)
}
