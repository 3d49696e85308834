//! `apply` and `plan`.

use super::terminal::{self, Colour};
use super::{load_desired, report_config_errors, require_root, take_lock, GlobalArgs};
use super::{EXIT_FAILED, EXIT_INVALID, EXIT_OK, JSON_VERSION};
use crate::desired::{Desired, Ruleset};
use crate::plan::{Level, Plan, Step};
use crate::{apply as executor, observe, plan as planner};

/// Observes and plans; prints plan notes as warnings.
pub(super) fn compute_plan(desired: &Desired) -> Plan {
    let observed = observe::observe(desired);
    planner::plan(desired, &observed)
}

pub(super) fn print_notes(plan: &Plan) {
    for note in &plan.notes {
        // The same event as a sysctl skipped during apply, with the key and reason as fields.
        if let Some(skipped) = &note.skipped_sysctl {
            tracing::warn!(
                namespace = note.namespace.as_str(),
                key = skipped.key.as_str(),
                reason = skipped.reason.as_str(),
                "sysctl skipped"
            );
            continue;
        }
        match note.level {
            Level::Warning => {
                tracing::warn!(namespace = note.namespace.as_str(), "{}", note.message)
            }
            Level::Info => tracing::info!(namespace = note.namespace.as_str(), "{}", note.message),
        }
    }
}

/// Checks the rulesets the plan would load. Returns an exit status when one is invalid. When
/// the check itself cannot run (nft missing, say), the run goes on: each load then fails on its
/// own, naming its namespace, and the other namespaces still converge.
fn check_planned_rulesets(desired: &Desired, plan: &Plan) -> Result<(), u8> {
    let rulesets: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::LoadRuleset { namespace, .. } => {
                desired.namespaces.get(namespace)?.ruleset.as_ref()
            }
            _ => None,
        })
        .collect();
    check_rulesets(&rulesets)
}

/// Test-writes the sysctl values of each namespace the plan sets sysctls in. Returns an exit
/// status on failure.
fn check_planned_sysctls(desired: &Desired, plan: &Plan) -> Result<(), u8> {
    let mut names: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::SetSysctl { namespace, .. } => Some(namespace.as_str()),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    let specs: Vec<_> = names
        .iter()
        .filter_map(|name| desired.namespaces.get(*name))
        .collect();
    check_sysctls(&specs)
}

/// Test-writes sysctl values in throwaway namespaces and prints what the kernel rejects. Returns
/// an exit status on failure.
pub(super) fn check_sysctls(specs: &[&crate::desired::NamespaceSpec]) -> Result<(), u8> {
    match executor::check_sysctls(specs) {
        Ok(errors) if errors.is_empty() => Ok(()),
        Ok(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            Err(EXIT_INVALID)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Err(EXIT_FAILED)
        }
    }
}

/// Checks rulesets with `nft --check` and prints what nft rejects. Returns an exit status on
/// failure.
pub(super) fn check_rulesets(rulesets: &[&Ruleset]) -> Result<(), u8> {
    match executor::check_rulesets(rulesets) {
        Ok(errors) if errors.is_empty() => Ok(()),
        Ok(errors) => {
            for error in errors {
                eprintln!("error: invalid nftables ruleset: {error}");
            }
            Err(EXIT_INVALID)
        }
        Err(err) => {
            tracing::warn!("rulesets not checked before the run: {err}");
            Ok(())
        }
    }
}

/// Carries out a plan and prints each change made and each failure. Returns whether every step
/// succeeded.
/// Applies the plan with a progress line on terminals, prints the applied steps unless `quiet`
/// or the journal already has them as log entries, and prints failures. Returns whether every
/// step succeeded.
pub(super) fn execute(desired: &Desired, plan: &Plan, quiet: bool) -> bool {
    let before = executor::steps_done();
    let outcome = terminal::with_progress(
        plan.steps.len(),
        || executor::steps_done() - before,
        || executor::apply(desired, plan),
    );
    if !quiet && !super::logging::logging_to_journal() {
        let colour = terminal::colour_enabled(&std::io::stdout());
        for step in &outcome.applied {
            println!(
                "{}",
                terminal::paint(&step.to_string(), Colour::Green, colour)
            );
        }
    }
    for note in &outcome.notes {
        println!("{note}");
    }
    for failure in &outcome.failures {
        eprintln!("error: {failure}");
    }
    outcome.failures.is_empty()
}

pub fn apply(global: &GlobalArgs, names: &[String]) -> u8 {
    if let Err(code) = require_root("apply") {
        return code;
    }
    let (_, desired) = match load_desired(global, names) {
        Ok(loaded) => loaded,
        Err(errors) => return report_config_errors(&errors),
    };
    let _lock = match take_lock(global) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let plan = compute_plan(&desired);
    if let Err(code) = check_planned_rulesets(&desired, &plan) {
        return code;
    }
    if let Err(code) = check_planned_sysctls(&desired, &plan) {
        return code;
    }
    print_notes(&plan);
    if execute(&desired, &plan, global.quiet) {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

pub fn plan(global: &GlobalArgs, names: &[String], json: bool) -> u8 {
    if let Err(code) = require_root("plan") {
        return code;
    }
    let (_, desired) = match load_desired(global, names) {
        Ok(loaded) => loaded,
        Err(errors) => return report_config_errors(&errors),
    };
    let plan = compute_plan(&desired);
    // A plan that apply would reject is reported the same way, so plan never promises steps
    // that apply refuses.
    if let Err(code) = check_planned_rulesets(&desired, &plan) {
        return code;
    }
    if let Err(code) = check_planned_sysctls(&desired, &plan) {
        return code;
    }
    if json {
        let output = serde_json::json!({
            "version": JSON_VERSION,
            "steps": plan.steps,
            "notes": plan.notes,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&output).expect("plan serializes")
        );
    } else {
        print_notes(&plan);
        if plan.steps.is_empty() {
            println!("nothing to change");
        }
        let colour = terminal::colour_enabled(&std::io::stdout());
        for step in &plan.steps {
            println!(
                "{}",
                terminal::paint(&step.to_string(), Colour::Yellow, colour)
            );
        }
    }
    EXIT_OK
}
