//! `exec`: run a command inside a namespace.

use super::{require_root, EXIT_FAILED, EXIT_INVALID};
use crate::config::names::{is_valid_namespace_name, NAMESPACE_NAME_RULE};
use crate::kernel::{exec, netns};

pub fn exec(name: &str, user: Option<&str>, command: &[String]) -> u8 {
    if !is_valid_namespace_name(name) {
        eprintln!("error: invalid namespace name {name:?}: use {NAMESPACE_NAME_RULE}");
        return EXIT_INVALID;
    }
    if let Err(code) = require_root("exec") {
        return code;
    }
    // The user is looked up before entering the namespace: an unknown user is a usage error.
    let account = match user.map(exec::lookup_user).transpose() {
        Ok(account) => account.flatten(),
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_FAILED;
        }
    };
    if let (Some(user), None) = (user, &account) {
        eprintln!("error: user {user:?} not found; give an existing user name to --user");
        return EXIT_INVALID;
    }
    match netns::inspect(&netns::netns_path(name)) {
        Ok(netns::NetnsFile::Attached { .. }) => {}
        Ok(netns::NetnsFile::Stale) => {
            eprintln!(
                "error: {} is not a namespace mount (left by a crash or another tool); run `netnsctl apply` to repair it",
                netns::netns_path(name).display()
            );
            return EXIT_FAILED;
        }
        Ok(netns::NetnsFile::Missing) => {
            eprintln!(
                "error: namespace {name} not found at {}",
                netns::netns_path(name).display()
            );
            return EXIT_FAILED;
        }
        Err(err) => {
            eprintln!(
                "error: cannot inspect {}: {err}",
                netns::netns_path(name).display()
            );
            return EXIT_FAILED;
        }
    }
    if let Err(err) = exec::enter(name) {
        eprintln!("error: {err}");
        return EXIT_FAILED;
    }
    if let Some(account) = &account {
        if let Err(err) = exec::drop_privileges(account) {
            eprintln!("error: {err}");
            return EXIT_FAILED;
        }
    }
    let (err, status) = exec::exec_command(command);
    eprintln!("error: {err}");
    status
}
