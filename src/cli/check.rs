//! `check`: validate a config without changing anything.

use super::{load_desired, GlobalArgs, EXIT_FAILED, EXIT_INVALID, EXIT_OK, JSON_VERSION};
use crate::apply::{check_rulesets, check_sysctls};

pub fn check(global: &GlobalArgs, json: bool) -> u8 {
    let mut errors: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut code = EXIT_OK;
    let mut dropins = Vec::new();
    match load_desired(global, &[]) {
        Err(config_errors) => {
            errors.extend(config_errors.0.iter().map(ToString::to_string));
            code = EXIT_INVALID;
        }
        Ok((loaded, desired)) => {
            dropins = loaded.origins.dropins().to_vec();
            let rulesets: Vec<_> = desired
                .namespaces
                .values()
                .filter_map(|spec| spec.ruleset.as_ref())
                .collect();
            if rulesets.is_empty() {
            } else if !nix::unistd::geteuid().is_root() {
                notes.push("rulesets not checked: nft --check needs root".into());
            } else {
                match check_rulesets(&rulesets) {
                    Ok(messages) => {
                        if !messages.is_empty() {
                            code = EXIT_INVALID;
                        }
                        errors.extend(
                            messages
                                .into_iter()
                                .map(|m| format!("invalid nftables ruleset: {m}")),
                        );
                    }
                    Err(err) => {
                        errors.push(err);
                        code = EXIT_FAILED;
                    }
                }
            }
            let specs: Vec<_> = desired
                .namespaces
                .values()
                .filter(|spec| !spec.sysctls.is_empty())
                .collect();
            if specs.is_empty() {
            } else if !nix::unistd::geteuid().is_root() {
                notes.push(
                    "sysctl values not checked: test-writing them in a throwaway namespace needs root"
                        .into(),
                );
            } else {
                match check_sysctls(&specs) {
                    Ok(messages) => {
                        if !messages.is_empty() && code == EXIT_OK {
                            code = EXIT_INVALID;
                        }
                        errors.extend(messages);
                    }
                    Err(err) => {
                        errors.push(err);
                        code = EXIT_FAILED;
                    }
                }
            }
        }
    }
    if json {
        let output = serde_json::json!({
            "version": JSON_VERSION,
            "valid": code == EXIT_OK,
            "errors": errors,
            "notes": notes,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&output).expect("check serializes")
        );
    } else {
        for error in &errors {
            eprintln!("error: {error}");
        }
        for note in &notes {
            eprintln!("note: {note}");
        }
        if code == EXIT_OK && !global.quiet {
            println!("{}: valid", global.config.display());
            for dropin in &dropins {
                println!("{}: valid, merged", dropin.display());
            }
        }
    }
    code
}
