//! The plan: a pure diff of the desired and the observed model, as an ordered list of steps.
//!
//! Nothing here touches the kernel, so every decision is unit-tested without root.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::desired::{Desired, NamespaceSpec};
use crate::kernel::netns::NetnsFile;
use crate::kernel::sysctl::{normalize, SysctlState};
use crate::observe::{Observed, ObservedNamespace};

/// One change apply would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// Create the namespace and register it at /run/netns/NAME.
    CreateNamespace {
        namespace: String,
    },
    /// Remove a file at /run/netns/NAME that is not a namespace, then create the namespace.
    ReplaceStaleFile {
        namespace: String,
    },
    /// Record an existing namespace as managed (`adopt = true`).
    AdoptNamespace {
        namespace: String,
    },
    SetLinkUp {
        namespace: String,
        link: String,
    },
    SetSysctl {
        namespace: String,
        key: String,
        value: String,
        /// Value before the change; `None` when unknown (namespace not created yet).
        current: Option<String>,
    },
    /// Replace the namespace's ruleset in one transaction.
    LoadRuleset {
        namespace: String,
        source: String,
        reason: String,
    },
    /// Empty a ruleset netnsctl loaded earlier and the config no longer declares.
    FlushRuleset {
        namespace: String,
    },
    /// Rewrite /etc/netns/NAME/resolv.conf in place.
    WriteResolvConf {
        namespace: String,
    },
}

impl Step {
    pub fn namespace(&self) -> &str {
        match self {
            Step::CreateNamespace { namespace }
            | Step::ReplaceStaleFile { namespace }
            | Step::AdoptNamespace { namespace }
            | Step::SetLinkUp { namespace, .. }
            | Step::SetSysctl { namespace, .. }
            | Step::LoadRuleset { namespace, .. }
            | Step::FlushRuleset { namespace }
            | Step::WriteResolvConf { namespace } => namespace,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNamespace { namespace } => write!(f, "{namespace}: create namespace"),
            Step::ReplaceStaleFile { namespace } => write!(
                f,
                "{namespace}: replace stale file /run/netns/{namespace} with the namespace"
            ),
            Step::AdoptNamespace { namespace } => {
                write!(f, "{namespace}: adopt existing namespace")
            }
            Step::SetLinkUp { namespace, link } => write!(f, "{namespace}: set link {link} up"),
            Step::SetSysctl {
                namespace,
                key,
                value,
                current,
            } => {
                write!(f, "{namespace}: set sysctl {key} = {value}")?;
                if let Some(current) = current {
                    write!(f, " (was {current})")?;
                }
                Ok(())
            }
            Step::LoadRuleset {
                namespace,
                source,
                reason,
            } => write!(
                f,
                "{namespace}: load nftables ruleset from {source} ({reason})"
            ),
            Step::FlushRuleset { namespace } => write!(f, "{namespace}: flush nftables ruleset"),
            Step::WriteResolvConf { namespace } => {
                write!(f, "{namespace}: write /etc/netns/{namespace}/resolv.conf")
            }
        }
    }
}

/// How serious a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
}

/// Something the plan will not change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub namespace: String,
    pub level: Level,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.namespace, self.message)
    }
}

/// The ordered changes for a set of namespaces, and what they leave alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub notes: Vec<Note>,
}

/// Computes the plan for every namespace in `desired`.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    let missing = ObservedNamespace::default();
    for (name, spec) in &desired.namespaces {
        let seen = observed.namespaces.get(name).unwrap_or(&missing);
        plan_namespace(spec, seen, &mut plan);
    }
    plan
}

fn note(plan: &mut Plan, namespace: &str, level: Level, message: String) {
    plan.notes.push(Note {
        namespace: namespace.to_owned(),
        level,
        message,
    });
}

fn plan_namespace(spec: &NamespaceSpec, seen: &ObservedNamespace, plan: &mut Plan) {
    let name = &spec.name;
    for error in &seen.errors {
        note(plan, name, Level::Warning, error.clone());
    }
    let owned = seen.record.is_some();
    let fresh = match seen.file {
        Some(NetnsFile::Missing) | None => {
            plan.steps.push(Step::CreateNamespace {
                namespace: name.clone(),
            });
            true
        }
        Some(NetnsFile::Stale) if owned || spec.adopt => {
            plan.steps.push(Step::ReplaceStaleFile {
                namespace: name.clone(),
            });
            true
        }
        Some(NetnsFile::Stale) => {
            note(
                plan,
                name,
                Level::Warning,
                format!(
                    "/run/netns/{name} is not a namespace mount and netnsctl did not create it; \
                     left alone (remove it, or set adopt = true to let netnsctl replace it)"
                ),
            );
            return;
        }
        Some(NetnsFile::Attached { .. }) if !owned && !spec.adopt => {
            note(
                plan,
                name,
                Level::Warning,
                format!(
                    "namespace exists but was not created by netnsctl; left alone \
                     (set adopt = true in [namespaces.{name}] to manage it)"
                ),
            );
            return;
        }
        Some(NetnsFile::Attached { .. }) => {
            if !owned {
                plan.steps.push(Step::AdoptNamespace {
                    namespace: name.clone(),
                });
            }
            false
        }
    };
    let inside = if fresh { None } else { seen.inside.as_ref() };
    if !fresh && inside.is_none() {
        // The namespace exists but could not be read; its errors are in the notes.
        return;
    }

    if !inside.is_some_and(|inside| inside.lo_up) {
        plan.steps.push(Step::SetLinkUp {
            namespace: name.clone(),
            link: "lo".into(),
        });
    }

    plan_sysctls(spec, inside, plan);
    plan_ruleset(spec, seen, inside, fresh, plan);

    let resolv_current = if fresh {
        None
    } else {
        seen.resolv_conf.as_deref()
    };
    if resolv_current != Some(spec.resolv_conf.as_bytes()) {
        plan.steps.push(Step::WriteResolvConf {
            namespace: name.clone(),
        });
    }
}

fn plan_sysctls(spec: &NamespaceSpec, inside: Option<&crate::observe::Inside>, plan: &mut Plan) {
    let name = &spec.name;
    // Later entries win, per concrete key, keeping first-seen order.
    let mut wanted: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (position, (key, value)) in spec.sysctls.iter().enumerate() {
        let keys = match inside.and_then(|inside| inside.globs.get(key)) {
            Some(expanded) => expanded.clone(),
            None => vec![key.clone()],
        };
        for concrete in keys {
            let order = wanted.get(&concrete).map_or(position, |(order, _)| *order);
            wanted.insert(concrete, (order, value.clone()));
        }
    }
    let mut ordered: Vec<(String, usize, String)> = wanted
        .into_iter()
        .map(|(key, (order, value))| (key, order, value))
        .collect();
    ordered.sort_by_key(|(_, order, _)| *order);

    for (key, _, value) in ordered {
        let current = match inside {
            None => None,
            Some(inside) => match inside.sysctls.get(&key) {
                Some(SysctlState::Value(current)) => Some(current.clone()),
                Some(SysctlState::Missing) => {
                    note(
                        plan,
                        name,
                        Level::Warning,
                        format!("sysctl {key} does not exist in this namespace; skipped"),
                    );
                    continue;
                }
                Some(SysctlState::ReadOnly(_)) => {
                    note(
                        plan,
                        name,
                        Level::Warning,
                        format!("sysctl {key} cannot be written in a child namespace; skipped"),
                    );
                    continue;
                }
                None => None,
            },
        };
        if current.as_deref() == Some(normalize(&value).as_str()) {
            continue;
        }
        plan.steps.push(Step::SetSysctl {
            namespace: name.clone(),
            key,
            value,
            current,
        });
    }
}

fn plan_ruleset(
    spec: &NamespaceSpec,
    seen: &ObservedNamespace,
    inside: Option<&crate::observe::Inside>,
    fresh: bool,
    plan: &mut Plan,
) {
    let name = &spec.name;
    let record = seen.record.as_ref().filter(|_| !fresh);
    let loaded_digest = record.and_then(|r| r.ruleset_digest.as_deref());
    let loaded_generation = record.and_then(|r| r.ruleset_generation);
    let generation = inside.and_then(|inside| inside.ruleset_generation);
    match &spec.ruleset {
        Some(ruleset) => {
            let reason = if loaded_digest != Some(ruleset.digest.as_str()) {
                if loaded_digest.is_none() {
                    "not loaded yet"
                } else {
                    "ruleset changed"
                }
            } else if generation.is_none() || generation != loaded_generation {
                "ruleset was changed outside netnsctl"
            } else {
                return;
            };
            plan.steps.push(Step::LoadRuleset {
                namespace: name.clone(),
                source: ruleset.label.clone(),
                reason: reason.into(),
            });
        }
        None if loaded_digest.is_some() => plan.steps.push(Step::FlushRuleset {
            namespace: name.clone(),
        }),
        None => {}
    }
}

#[cfg(test)]
mod tests;
