//! `down`: remove namespaces netnsctl created.

use super::{require_root, take_lock, GlobalArgs, EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::config::names::{is_valid_namespace_name, NAMESPACE_NAME_RULE};
use std::os::unix::fs::MetadataExt;

use crate::kernel::netns;
use crate::{state, teardown};

pub fn down(global: &GlobalArgs, names: &[String], all: bool, force: bool) -> u8 {
    for name in names {
        if !is_valid_namespace_name(name) {
            eprintln!("error: invalid namespace name {name:?}: use {NAMESPACE_NAME_RULE}");
            return EXIT_INVALID;
        }
    }
    if let Err(code) = require_root("down") {
        return code;
    }
    let _lock = match take_lock(global) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let names = if all {
        match state::recorded_namespaces() {
            Ok(names) => names,
            Err(err) => {
                eprintln!("error: cannot list {}: {err}", state::STATE_DIR);
                return EXIT_FAILED;
            }
        }
    } else {
        names.to_vec()
    };
    // As the ExecStop= of netns-NAME.service, down runs inside the namespace it removes; the
    // host namespace (host veth ends, bridges, the host nftables table) is then the parent's.
    let own = netns::process_netns().ok();
    // One stat per name: a namespace file that is not attached cannot be this namespace.
    let inside_target = own.is_some_and(|own| {
        names.iter().any(|name| {
            std::fs::symlink_metadata(netns::netns_path(name))
                .is_ok_and(|meta| (meta.dev(), meta.ino()) == own)
        })
    });
    if inside_target {
        if let Err(err) = netns::set_host_netns(nix::unistd::getppid().as_raw() as u32) {
            eprintln!("error: cannot open the network namespace of the parent process: {err}");
            return EXIT_FAILED;
        }
    }
    let mut result = teardown::down(&names, force);
    if let Err(err) = state::remove_leftovers() {
        result.warnings.push(format!(
            "cannot tidy {}/namespaces: {err}",
            state::STATE_DIR
        ));
    }
    if !global.quiet {
        for name in &result.removed {
            println!("{name}: removed namespace");
        }
    }
    for warning in &result.warnings {
        tracing::warn!("{warning}");
    }
    for failure in &result.failures {
        eprintln!("error: {failure}");
    }
    if result.failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
