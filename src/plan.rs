//! The plan: a pure diff of the desired and the observed model, as an ordered list of steps.
//!
//! Nothing here touches the kernel, so every decision is unit-tested without root.

pub mod links;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::desired::{Desired, NamespaceSpec};
use crate::kernel::netns::NetnsFile;
use crate::kernel::sysctl::{values_equal, SysctlState};
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
    /// Set a sysctl that left the config back to the value it had before netnsctl set it.
    RestoreSysctl {
        namespace: String,
        key: String,
        value: String,
        current: String,
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

    // Link steps run after every namespace of the run exists, in plan order. `netns` names the
    // namespace a link lives in; `None` is the host namespace.
    /// Create a bridge in the host namespace.
    CreateBridge {
        bridge: String,
    },
    /// Delete a bridge netnsctl created that the config no longer declares.
    DeleteBridge {
        bridge: String,
    },
    /// Create a veth pair with each end directly in its namespace.
    CreateVeth {
        namespace: String,
        link: String,
        peer: String,
        peer_netns: Option<String>,
    },
    /// Delete a veth pair netnsctl created that the config no longer declares.
    DeleteVeth {
        namespace: String,
        link: String,
    },
    /// Make a host link a port of a bridge.
    SetBridgePort {
        namespace: String,
        link: String,
        bridge: String,
    },
    SetLinkUpIn {
        namespace: String,
        netns: Option<String>,
        link: String,
    },
    AddAddress {
        namespace: String,
        netns: Option<String>,
        link: String,
        address: IpNet,
    },
    RemoveAddress {
        namespace: String,
        netns: Option<String>,
        link: String,
        address: IpNet,
    },
    /// Set a sysctl of the host namespace.
    SetHostSysctl {
        namespace: String,
        key: String,
        value: String,
        current: Option<String>,
    },
    AddRoute {
        namespace: String,
        destination: IpNet,
        gateway: Option<IpAddr>,
        dev: Option<String>,
    },
    RemoveRoute {
        namespace: String,
        destination: IpNet,
        gateway: Option<IpAddr>,
        dev: Option<String>,
    },
    /// Move an existing host link into the namespace (`interfaces`).
    MoveLinkIn {
        namespace: String,
        link: String,
    },
    /// Create a WireGuard link in its underlay, configure it, and move it into the namespace.
    #[serde(rename = "create-wireguard")]
    CreateWireGuard {
        namespace: String,
        link: String,
        underlay: Option<String>,
    },
    /// Stop a WireGuard link netnsctl created that the config no longer declares.
    #[serde(rename = "delete-wireguard")]
    DeleteWireGuard {
        namespace: String,
        link: String,
    },
    /// Set a WireGuard link's private key and listen port.
    #[serde(rename = "set-wireguard-interface")]
    SetWireGuardInterface {
        namespace: String,
        link: String,
    },
    /// Add or update one peer of a WireGuard link.
    #[serde(rename = "set-wireguard-peer")]
    SetWireGuardPeer {
        namespace: String,
        link: String,
        public_key: String,
    },
    #[serde(rename = "remove-wireguard-peer")]
    RemoveWireGuardPeer {
        namespace: String,
        link: String,
        public_key: String,
    },
    /// Replace netnsctl's host nftables table in one transaction.
    LoadHostTable {
        reason: String,
        #[serde(skip)]
        text: String,
    },
    /// Delete netnsctl's host nftables table.
    DeleteHostTable,
}

impl Step {
    pub fn namespace(&self) -> &str {
        match self {
            Step::CreateNamespace { namespace }
            | Step::ReplaceStaleFile { namespace }
            | Step::AdoptNamespace { namespace }
            | Step::SetLinkUp { namespace, .. }
            | Step::SetSysctl { namespace, .. }
            | Step::RestoreSysctl { namespace, .. }
            | Step::LoadRuleset { namespace, .. }
            | Step::FlushRuleset { namespace }
            | Step::WriteResolvConf { namespace }
            | Step::CreateVeth { namespace, .. }
            | Step::DeleteVeth { namespace, .. }
            | Step::SetBridgePort { namespace, .. }
            | Step::SetLinkUpIn { namespace, .. }
            | Step::AddAddress { namespace, .. }
            | Step::RemoveAddress { namespace, .. }
            | Step::SetHostSysctl { namespace, .. }
            | Step::AddRoute { namespace, .. }
            | Step::RemoveRoute { namespace, .. }
            | Step::MoveLinkIn { namespace, .. }
            | Step::CreateWireGuard { namespace, .. }
            | Step::DeleteWireGuard { namespace, .. }
            | Step::SetWireGuardInterface { namespace, .. }
            | Step::SetWireGuardPeer { namespace, .. }
            | Step::RemoveWireGuardPeer { namespace, .. } => namespace,
            Step::CreateBridge { .. }
            | Step::DeleteBridge { .. }
            | Step::LoadHostTable { .. }
            | Step::DeleteHostTable => HOST,
        }
    }

    /// Whether the step belongs to the link phase, which runs after every namespace exists.
    pub fn is_link_step(&self) -> bool {
        !matches!(
            self,
            Step::CreateNamespace { .. }
                | Step::ReplaceStaleFile { .. }
                | Step::AdoptNamespace { .. }
                | Step::SetLinkUp { .. }
                | Step::SetSysctl { .. }
                | Step::RestoreSysctl { .. }
                | Step::LoadRuleset { .. }
                | Step::FlushRuleset { .. }
                | Step::WriteResolvConf { .. }
        )
    }
}

/// Name that [`Step::namespace`] returns for steps on the host namespace alone.
pub const HOST: &str = "host";

fn netns_name(netns: &Option<String>) -> String {
    match netns {
        Some(name) => format!("namespace {name}"),
        None => "the host namespace".to_owned(),
    }
}

fn describe_route(destination: &IpNet, gateway: &Option<IpAddr>, dev: &Option<String>) -> String {
    let mut text = format!("route {destination}");
    if let Some(gateway) = gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if let Some(dev) = dev {
        text.push_str(&format!(" dev {dev}"));
    }
    text
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
            Step::RestoreSysctl {
                namespace,
                key,
                value,
                current,
            } => write!(
                f,
                "{namespace}: restore sysctl {key} = {value} (was {current}; no longer in the config)"
            ),
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
            Step::CreateBridge { bridge } => write!(f, "host: create bridge {bridge}"),
            Step::DeleteBridge { bridge } => write!(f, "host: delete bridge {bridge}"),
            Step::CreateVeth {
                namespace,
                link,
                peer,
                peer_netns,
            } => write!(
                f,
                "{namespace}: create veth {link} with peer {peer} in {}",
                netns_name(peer_netns)
            ),
            Step::DeleteVeth { namespace, link } => write!(f, "{namespace}: delete veth {link}"),
            Step::SetBridgePort {
                namespace,
                link,
                bridge,
            } => write!(
                f,
                "{namespace}: make host link {link} a port of bridge {bridge}"
            ),
            Step::SetLinkUpIn {
                namespace,
                netns,
                link,
            } => write!(
                f,
                "{namespace}: set link {link} up in {}",
                netns_name(netns)
            ),
            Step::AddAddress {
                namespace,
                netns,
                link,
                address,
            } => write!(
                f,
                "{namespace}: add address {address} to {link} in {}",
                netns_name(netns)
            ),
            Step::RemoveAddress {
                namespace,
                netns,
                link,
                address,
            } => write!(
                f,
                "{namespace}: remove address {address} from {link} in {}",
                netns_name(netns)
            ),
            Step::SetHostSysctl {
                namespace,
                key,
                value,
                current,
            } => {
                write!(f, "{namespace}: set host sysctl {key} = {value}")?;
                if let Some(current) = current {
                    write!(f, " (was {current})")?;
                }
                Ok(())
            }
            Step::AddRoute {
                namespace,
                destination,
                gateway,
                dev,
            } => write!(
                f,
                "{namespace}: add {}",
                describe_route(destination, gateway, dev)
            ),
            Step::RemoveRoute {
                namespace,
                destination,
                gateway,
                dev,
            } => write!(
                f,
                "{namespace}: remove {}",
                describe_route(destination, gateway, dev)
            ),
            Step::MoveLinkIn { namespace, link } => {
                write!(f, "{namespace}: move host link {link} into the namespace")
            }
            Step::CreateWireGuard {
                namespace,
                link,
                underlay,
            } => write!(
                f,
                "{namespace}: create WireGuard link {link} in {} and move it in",
                netns_name(underlay)
            ),
            Step::DeleteWireGuard { namespace, link } => {
                write!(f, "{namespace}: delete WireGuard link {link}")
            }
            Step::SetWireGuardInterface { namespace, link } => {
                write!(f, "{namespace}: set private key and listen port of {link}")
            }
            Step::SetWireGuardPeer {
                namespace,
                link,
                public_key,
            } => write!(f, "{namespace}: set peer {public_key} of {link}"),
            Step::RemoveWireGuardPeer {
                namespace,
                link,
                public_key,
            } => write!(f, "{namespace}: remove peer {public_key} from {link}"),
            Step::LoadHostTable { reason, .. } => write!(
                f,
                "host: load nftables table inet {} ({reason})",
                crate::desired::links::HOST_TABLE
            ),
            Step::DeleteHostTable => write!(
                f,
                "host: delete nftables table inet {}",
                crate::desired::links::HOST_TABLE
            ),
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
    /// The sysctl that a note about a skipped sysctl is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_sysctl: Option<SkippedSysctl>,
}

/// A sysctl that apply leaves alone, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedSysctl {
    pub key: String,
    /// Reason for the skip, such as "does not exist in this namespace".
    pub reason: String,
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
    let mut managed = Vec::new();
    for (name, spec) in &desired.namespaces {
        let seen = observed.namespaces.get(name).unwrap_or(&missing);
        if let Some(fresh) = plan_namespace(spec, seen, &mut plan) {
            managed.push((spec, fresh));
        }
    }
    if let Some(host) = &observed.host {
        links::plan_links(desired, observed, host, &managed, &mut plan);
    }
    plan
}

fn note(plan: &mut Plan, namespace: &str, level: Level, message: String) {
    plan.notes.push(Note {
        namespace: namespace.to_owned(),
        level,
        message,
        skipped_sysctl: None,
    });
}

/// Records a sysctl that apply skips, as a warning.
fn note_skipped_sysctl(plan: &mut Plan, namespace: &str, key: &str, reason: &str) {
    plan.notes.push(Note {
        namespace: namespace.to_owned(),
        level: Level::Warning,
        message: format!("sysctl {key} {reason}; skipped"),
        skipped_sysctl: Some(SkippedSysctl {
            key: key.to_owned(),
            reason: reason.to_owned(),
        }),
    });
}

/// Plans one namespace's own steps. Returns `None` when netnsctl leaves the namespace alone, else
/// whether it is created by this plan.
fn plan_namespace(spec: &NamespaceSpec, seen: &ObservedNamespace, plan: &mut Plan) -> Option<bool> {
    let name = &spec.name;
    for error in &seen.errors {
        note(plan, name, Level::Warning, error.clone());
    }
    if seen.host_namespace {
        note(
            plan,
            name,
            Level::Warning,
            format!(
                "/run/netns/{name} is the host's network namespace or the one netnsctl runs in; \
                 left alone (remove it with `umount /run/netns/{name}` and `rm /run/netns/{name}`)"
            ),
        );
        return None;
    }
    // A record whose namespace inode differs belongs to a namespace that no longer exists:
    // someone else registered another one under the same name since.
    let owned = seen.owned();
    let replaced = seen.record.is_some() && !owned;
    if replaced && !spec.adopt {
        note(
            plan,
            name,
            Level::Warning,
            format!(
                "the namespace at /run/netns/{name} is not the one netnsctl created (it was \
                 deleted and registered again outside netnsctl); left alone (set adopt = true \
                 in [namespaces.{name}] to manage it)"
            ),
        );
        return None;
    }
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
            return None;
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
            return None;
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
        return None;
    }

    if !inside.is_some_and(|inside| inside.lo_up) {
        plan.steps.push(Step::SetLinkUp {
            namespace: name.clone(),
            link: "lo".into(),
        });
    }

    // The firewall goes in before sysctls such as ip_forward open the namespace up, so an
    // interrupted run never leaves forwarding on without the ruleset.
    plan_ruleset(spec, seen, inside, fresh || replaced, plan);
    let record = seen.record.as_ref().filter(|_| !fresh && !replaced);
    plan_sysctls(spec, record, inside, plan);

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
    Some(fresh)
}

/// Plans the sysctl writes: each entry's value where the namespace differs, and the value from
/// before netnsctl for each key it set earlier that no entry covers any more.
fn plan_sysctls(
    spec: &NamespaceSpec,
    record: Option<&crate::state::Record>,
    inside: Option<&crate::observe::Inside>,
    plan: &mut Plan,
) {
    let name = &spec.name;
    // Later entries win, per concrete key, keeping first-seen order. A glob never overrides a
    // key with an explicit entry, whatever the order, as in systemd-sysctl.
    let mut wanted: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (position, setting) in spec.sysctls.iter().enumerate() {
        let keys = match inside.and_then(|inside| inside.globs.get(&setting.key)) {
            Some(expanded) => expanded
                .iter()
                .filter(|key| !spec.sysctl_glob_exclusions.contains(*key))
                .cloned()
                .collect(),
            None => vec![setting.key.clone()],
        };
        for concrete in keys {
            let order = wanted.get(&concrete).map_or(position, |(order, _)| *order);
            wanted.insert(concrete, (order, setting.value.clone()));
        }
    }
    let restores: Vec<Step> = match (record, inside) {
        (Some(record), Some(inside)) => record
            .sysctl_originals
            .iter()
            .filter(|(key, _)| !wanted.contains_key(*key))
            .filter_map(|(key, original)| match inside.sysctls.get(key) {
                Some(SysctlState::Value(current)) if !values_equal(current, original) => {
                    Some(Step::RestoreSysctl {
                        namespace: name.clone(),
                        key: key.clone(),
                        value: original.clone(),
                        current: current.clone(),
                    })
                }
                // NOTE: a key already back at its original value, or gone with its link,
                // stays in the record until a later run restores or sets it.
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
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
                    note_skipped_sysctl(plan, name, &key, "does not exist in this namespace");
                    continue;
                }
                Some(SysctlState::ReadOnly(_)) => {
                    note_skipped_sysctl(plan, name, &key, "cannot be written in a child namespace");
                    continue;
                }
                None => None,
            },
        };
        if current
            .as_deref()
            .is_some_and(|current| values_equal(current, &value))
        {
            continue;
        }
        plan.steps.push(Step::SetSysctl {
            namespace: name.clone(),
            key,
            value,
            current,
        });
    }
    plan.steps.extend(restores);
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
