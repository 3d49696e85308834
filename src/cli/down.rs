//! `down`: remove namespaces netnsctl created.

use super::{require_root, take_lock, GlobalArgs, EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::config::names::{is_valid_namespace_name, NAMESPACE_NAME_RULE};
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
