//! Planner cases: a desired model and an observed model in, the steps and notes out.

use std::path::Path;

use super::*;
use crate::config;
use crate::desired::SysctlSetting;
use crate::desired::{self, HostSources};
use crate::kernel::sysctl::{normalize, SysctlState};
use crate::observe::Inside;
use crate::state::{Record, RECORD_VERSION};

const CONTRACT: &str = r#"
[namespaces.vpn]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = true }
nftables = '''
table inet filter {
  chain input { type filter hook input priority 0; policy drop; iif lo accept; }
}
'''
dns = { nameservers = ["192.0.2.53"] }
"#;

fn desired(text: &str) -> Desired {
    let loaded = config::parse(Path::new("/etc/netnsctl/test.toml"), text).expect("config parses");
    config::validate::validate(&loaded).expect("config is valid");
    let sources = HostSources {
        sysctl_dirs: Vec::new(),
    };
    desired::resolve(&loaded, &[], &sources).expect("config resolves")
}

/// The observed state right after a successful apply of `desired`.
fn converged(desired: &Desired) -> Observed {
    let mut observed = Observed::default();
    for (name, spec) in &desired.namespaces {
        let mut inside = Inside {
            lo_up: true,
            ruleset_generation: Some(7),
            ..Inside::default()
        };
        for setting in &spec.sysctls {
            inside.sysctls.insert(
                setting.key.clone(),
                SysctlState::Value(normalize(&setting.value)),
            );
        }
        let record = Record {
            version: RECORD_VERSION,
            ruleset_digest: spec.ruleset.as_ref().map(|ruleset| ruleset.digest.clone()),
            ruleset_generation: spec.ruleset.as_ref().map(|_| 7),
            netns_inode: Some(4026532000),
            ..Record::default()
        };
        observed.namespaces.insert(
            name.clone(),
            ObservedNamespace {
                file: Some(NetnsFile::Attached {
                    dev: 4,
                    ino: 4026532000,
                }),
                record: Some(record),
                inside: Some(inside),
                resolv_conf: Some(spec.resolv_conf.clone().into_bytes()),
                errors: Vec::new(),
                host_namespace: false,
            },
        );
    }
    observed
}

fn namespace<'a>(observed: &'a mut Observed, name: &str) -> &'a mut ObservedNamespace {
    observed
        .namespaces
        .get_mut(name)
        .expect("namespace observed")
}

fn inside<'a>(observed: &'a mut Observed, name: &str) -> &'a mut Inside {
    namespace(observed, name)
        .inside
        .as_mut()
        .expect("inside observed")
}

#[test]
fn missing_namespace_gets_every_step() {
    let desired = desired(CONTRACT);
    let plan = plan(&desired, &Observed::default());
    let actions: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        actions,
        [
            "vpn: create namespace",
            "vpn: set link lo up",
            "vpn: load nftables ruleset from /etc/netnsctl/test.toml: namespaces.vpn.nftables \
             (not loaded yet)",
            "vpn: set sysctl net.ipv4.ip_forward = 1",
            "vpn: set sysctl net.ipv6.conf.all.forwarding = 1",
            "vpn: write /etc/netns/vpn/resolv.conf",
        ]
    );
    assert!(plan.notes.is_empty());
}

#[test]
fn converged_namespace_has_no_steps() {
    let desired = desired(CONTRACT);
    let plan = plan(&desired, &converged(&desired));
    assert_eq!(plan, Plan::default());
}

#[test]
fn changed_sysctl_changes_only_that() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    inside(&mut observed, "vpn")
        .sysctls
        .insert("net.ipv4.ip_forward".into(), SysctlState::Value("0".into()));
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.steps,
        [Step::SetSysctl {
            namespace: "vpn".into(),
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
            current: Some("0".into()),
        }]
    );
}

#[test]
fn sysctl_values_compare_after_normalizing() {
    let desired = desired(
        r#"
        [namespaces.a]
        sysctl = { "net.ipv4.ip_local_port_range" = "1024   65000" }
        "#,
    );
    let mut observed = converged(&desired);
    inside(&mut observed, "a").sysctls.insert(
        "net.ipv4.ip_local_port_range".into(),
        // The kernel prints "1024\t65000"; observe normalizes what it reads.
        SysctlState::Value(normalize("1024\t65000")),
    );
    assert!(plan(&desired, &observed).steps.is_empty());
}

#[test]
fn missing_and_read_only_sysctls_become_warnings() {
    let desired = desired(
        r#"
        [namespaces.a]
        sysctl = { "net.core.rmem_max" = 4194304, "net.ipv4.no_such_key" = 1 }
        "#,
    );
    let mut observed = converged(&desired);
    let sysctls = &mut inside(&mut observed, "a").sysctls;
    sysctls.insert(
        "net.core.rmem_max".into(),
        SysctlState::ReadOnly("212992".into()),
    );
    sysctls.insert("net.ipv4.no_such_key".into(), SysctlState::Missing);
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    let messages: Vec<&str> = plan
        .notes
        .iter()
        .map(|note| note.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "sysctl net.core.rmem_max cannot be written in a child namespace; skipped",
            "sysctl net.ipv4.no_such_key does not exist in this namespace; skipped",
        ]
    );
    assert!(plan.notes.iter().all(|note| note.level == Level::Warning));
}

#[test]
fn later_sysctl_entry_wins_over_glob() {
    let mut desired = desired("[namespaces.a]\n");
    let spec = desired.namespaces.get_mut("a").expect("namespace a");
    spec.sysctls = vec![
        setting("net.ipv4.conf.*.rp_filter", "2"),
        setting("net.ipv4.conf.lo.rp_filter", "0"),
    ];
    let mut observed = converged(&desired);
    let inside = inside(&mut observed, "a");
    inside.globs.insert(
        "net.ipv4.conf.*.rp_filter".into(),
        vec![
            "net.ipv4.conf.all.rp_filter".into(),
            "net.ipv4.conf.lo.rp_filter".into(),
        ],
    );
    for key in ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.lo.rp_filter"] {
        inside
            .sysctls
            .insert(key.into(), SysctlState::Value("1".into()));
    }
    let plan = plan(&desired, &observed);
    let values: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .map(|step| match step {
            Step::SetSysctl { key, value, .. } => (key.as_str(), value.as_str()),
            other => panic!("unexpected step {other}"),
        })
        .collect();
    assert_eq!(
        values,
        [
            ("net.ipv4.conf.all.rp_filter", "2"),
            ("net.ipv4.conf.lo.rp_filter", "0"),
        ]
    );
}

fn setting(key: &str, value: &str) -> SysctlSetting {
    SysctlSetting {
        key: key.into(),
        value: value.into(),
        ignore_failure: false,
        source: "test".into(),
    }
}

/// Resolves `text` with the host sysctl.d files `files` (name, contents).
fn desired_with_host_sysctl(text: &str, files: &[(&str, &str)]) -> Desired {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).expect("write sysctl.d file");
    }
    let loaded = config::parse(Path::new("/etc/netnsctl/test.toml"), text).expect("config parses");
    config::validate::validate(&loaded).expect("config is valid");
    let sources = HostSources {
        sysctl_dirs: vec![dir.path().to_owned()],
    };
    desired::resolve(&loaded, &[], &sources).expect("config resolves")
}

/// Observes every concrete key below `net.ipv4.conf.{all,default,lo}` with `value`, and the
/// given globs expanded over those three.
fn conf_keys(observed: &mut Observed, name: &str, globs: &[&str], value: &str) {
    let inside = inside(observed, name);
    inside.sysctls.clear();
    for link in ["all", "default", "lo"] {
        for leaf in ["rp_filter", "log_martians"] {
            inside.sysctls.insert(
                format!("net.ipv4.conf.{link}.{leaf}"),
                SysctlState::Value(value.into()),
            );
        }
    }
    for glob in globs {
        let expanded: Vec<String> = inside
            .sysctls
            .keys()
            .filter(|key| {
                let key_parts: Vec<&str> = key.split('.').collect();
                let glob_parts: Vec<&str> = glob.split('.').collect();
                key_parts.len() == glob_parts.len()
                    && glob_parts
                        .iter()
                        .zip(&key_parts)
                        .all(|(pattern, part)| crate::kernel::sysctl::glob_match(pattern, part))
            })
            .cloned()
            .collect();
        inside.globs.insert((*glob).into(), expanded);
    }
}

fn set_values(plan: &Plan) -> Vec<(String, String)> {
    plan.steps
        .iter()
        .map(|step| match step {
            Step::SetSysctl { key, value, .. } => (key.clone(), value.clone()),
            other => panic!("unexpected step {other}"),
        })
        .collect()
}

#[test]
fn explicit_host_key_wins_over_later_glob() {
    let desired = desired_with_host_sysctl(
        "[namespaces.g]\ninherit_host_sysctl = true\n",
        &[
            ("10-explicit.conf", "net.ipv4.conf.all.rp_filter = 1\n"),
            (
                "20-glob.conf",
                "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.[al]*.log_martians = 1\n",
            ),
        ],
    );
    let mut observed = converged(&desired);
    conf_keys(
        &mut observed,
        "g",
        &[
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.[al]*.log_martians",
        ],
        "0",
    );
    let mut values = set_values(&plan(&desired, &observed));
    values.sort();
    let expected: Vec<(String, String)> = [
        ("net.ipv4.conf.all.log_martians", "1"),
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.default.rp_filter", "2"),
        ("net.ipv4.conf.lo.log_martians", "1"),
        ("net.ipv4.conf.lo.rp_filter", "2"),
    ]
    .iter()
    .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
    .collect();
    assert_eq!(values, expected);
}

#[test]
fn host_exclusion_line_keeps_key_out_of_glob() {
    let desired = desired_with_host_sysctl(
        "[namespaces.x]\ninherit_host_sysctl = true\n",
        &[(
            "50-x.conf",
            "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n\
             -net.ipv4.conf.all.rp_filter\n",
        )],
    );
    let mut observed = converged(&desired);
    conf_keys(&mut observed, "x", &["net.ipv4.conf.*.rp_filter"], "0");
    let mut values = set_values(&plan(&desired, &observed));
    values.sort();
    assert_eq!(
        values,
        [
            ("net.ipv4.conf.default.rp_filter".to_owned(), "2".to_owned()),
            ("net.ipv4.conf.lo.rp_filter".to_owned(), "2".to_owned()),
        ]
    );
}

#[test]
fn config_key_wins_over_host_glob() {
    let desired = desired_with_host_sysctl(
        "[namespaces.c]\ninherit_host_sysctl = true\n\
         sysctl = { \"net/ipv4/conf/lo/rp_filter\" = 0 }\n",
        &[("50-x.conf", "net.ipv4.conf.*.rp_filter = 2\n")],
    );
    let spec = &desired.namespaces["c"];
    assert!(spec
        .sysctl_glob_exclusions
        .contains("net.ipv4.conf.lo.rp_filter"));
    let mut observed = converged(&desired);
    conf_keys(&mut observed, "c", &["net.ipv4.conf.*.rp_filter"], "2");
    assert_eq!(
        set_values(&plan(&desired, &observed)),
        [("net.ipv4.conf.lo.rp_filter".to_owned(), "0".to_owned())]
    );
}

#[test]
fn integer_values_compare_as_numbers() {
    let desired = desired(
        r#"
        [namespaces.s]
        sysctl = { "net.ipv4.ip_forward" = "01", "net.ipv4.tcp_syncookies" = "+1" }
        "#,
    );
    let mut observed = converged(&desired);
    let sysctls = &mut inside(&mut observed, "s").sysctls;
    sysctls.insert("net.ipv4.ip_forward".into(), SysctlState::Value("1".into()));
    sysctls.insert(
        "net.ipv4.tcp_syncookies".into(),
        SysctlState::Value("1".into()),
    );
    // The kernel stores "01" as 1 and rejects "+1", so only the second differs.
    assert_eq!(
        set_values(&plan(&desired, &observed)),
        [("net.ipv4.tcp_syncookies".to_owned(), "+1".to_owned())]
    );
}

#[test]
fn slash_key_resolves_to_dotted_form() {
    let desired = desired("[namespaces.s]\nsysctl = { \"net/ipv4/ip_forward\" = 1 }\n");
    let spec = &desired.namespaces["s"];
    assert_eq!(spec.sysctls[0].key, "net.ipv4.ip_forward");
    assert_eq!(
        spec.sysctls[0].source,
        "/etc/netnsctl/test.toml: namespaces.s.sysctl.\"net/ipv4/ip_forward\""
    );
    let mut observed = converged(&desired);
    let sysctls = &mut inside(&mut observed, "s").sysctls;
    sysctls.clear();
    sysctls.insert("net.ipv4.ip_forward".into(), SysctlState::Value("1".into()));
    assert!(plan(&desired, &observed).steps.is_empty());
}

/// Builds the observed state after `key` was set from `original` to `current` and then left the config.
fn with_original(
    desired: &Desired,
    name: &str,
    key: &str,
    original: &str,
    current: &str,
) -> Observed {
    let mut observed = converged(desired);
    let seen = namespace(&mut observed, name);
    seen.record
        .as_mut()
        .expect("record")
        .sysctl_originals
        .insert(key.into(), original.into());
    inside(&mut observed, name)
        .sysctls
        .insert(key.into(), SysctlState::Value(current.into()));
    observed
}

#[test]
fn removed_sysctl_is_restored() {
    let desired = desired("[namespaces.s]\n");
    let observed = with_original(&desired, "s", "net.ipv4.ip_forward", "0", "1");
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.steps,
        [Step::RestoreSysctl {
            namespace: "s".into(),
            key: "net.ipv4.ip_forward".into(),
            value: "0".into(),
            current: "1".into(),
        }]
    );
    assert_eq!(
        plan.steps[0].to_string(),
        "s: restore sysctl net.ipv4.ip_forward = 0 (was 1; no longer in the config)"
    );
}

#[test]
fn removed_sysctl_at_original_value_plans_nothing() {
    let desired = desired("[namespaces.s]\n");
    let observed = with_original(&desired, "s", "net.ipv4.ip_forward", "0", "00");
    assert!(plan(&desired, &observed).steps.is_empty());
}

#[test]
fn declared_sysctl_with_original_is_not_restored() {
    let desired = desired("[namespaces.s]\nsysctl = { \"net.ipv4.ip_forward\" = 1 }\n");
    let observed = with_original(&desired, "s", "net.ipv4.ip_forward", "0", "1");
    assert!(plan(&desired, &observed).steps.is_empty());
}

#[test]
fn recreated_namespace_ignores_recorded_originals() {
    let desired = desired("[namespaces.s]\n");
    let mut observed = with_original(&desired, "s", "net.ipv4.ip_forward", "0", "1");
    namespace(&mut observed, "s").file = Some(NetnsFile::Missing);
    let plan = plan(&desired, &observed);
    assert!(
        !plan
            .steps
            .iter()
            .any(|step| matches!(step, Step::RestoreSysctl { .. })),
        "{:?}",
        plan.steps
    );
}

#[test]
fn unchanged_ruleset_is_not_reloaded() {
    let desired = desired(CONTRACT);
    let observed = converged(&desired);
    let plan = plan(&desired, &observed);
    assert!(!plan
        .steps
        .iter()
        .any(|step| matches!(step, Step::LoadRuleset { .. })));
}

#[test]
fn changed_ruleset_is_reloaded() {
    let old = desired(CONTRACT);
    let observed = converged(&old);
    let new = desired(&CONTRACT.replace("policy drop", "policy accept"));
    let plan = plan(&new, &observed);
    assert_eq!(plan.steps.len(), 1, "{:?}", plan.steps);
    assert!(matches!(
        &plan.steps[0],
        Step::LoadRuleset { reason, .. } if reason == "ruleset changed"
    ));
}

#[test]
fn ruleset_changed_by_hand_is_reloaded() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    inside(&mut observed, "vpn").ruleset_generation = Some(8);
    let plan = plan(&desired, &observed);
    assert!(matches!(
        plan.steps.as_slice(),
        [Step::LoadRuleset { reason, .. }] if reason == "ruleset was changed outside netnsctl"
    ));
}

#[test]
fn dropped_ruleset_is_flushed() {
    let desired_with = desired(CONTRACT);
    let observed = converged(&desired_with);
    let mut desired_without = desired_with.clone();
    desired_without
        .namespaces
        .get_mut("vpn")
        .expect("namespace vpn")
        .ruleset = None;
    let plan = plan(&desired_without, &observed);
    assert_eq!(
        plan.steps,
        [Step::FlushRuleset {
            namespace: "vpn".into()
        }]
    );
}

#[test]
fn changed_dns_rewrites_resolv_conf_only() {
    let old = desired(CONTRACT);
    let observed = converged(&old);
    let new = desired(&CONTRACT.replace("192.0.2.53", "192.0.2.54"));
    let plan = plan(&new, &observed);
    assert_eq!(
        plan.steps,
        [Step::WriteResolvConf {
            namespace: "vpn".into()
        }]
    );
}

#[test]
fn lo_down_is_set_up() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    inside(&mut observed, "vpn").lo_up = false;
    assert_eq!(
        plan(&desired, &observed).steps,
        [Step::SetLinkUp {
            namespace: "vpn".into(),
            link: "lo".into()
        }]
    );
}

#[test]
fn foreign_namespace_is_left_alone() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    namespace(&mut observed, "vpn").record = None;
    inside(&mut observed, "vpn").lo_up = false;
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert_eq!(plan.notes.len(), 1);
    assert!(plan.notes[0].message.contains("not created by netnsctl"));
    assert!(plan.notes[0].message.contains("adopt = true"));
}

#[test]
fn adopted_namespace_is_recorded_then_converged() {
    let desired = desired(&CONTRACT.replace("[namespaces.vpn]", "[namespaces.vpn]\nadopt = true"));
    let mut observed = converged(&desired);
    namespace(&mut observed, "vpn").record = None;
    let plan = plan(&desired, &observed);
    let actions: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        actions,
        [
            "vpn: adopt existing namespace",
            "vpn: load nftables ruleset from /etc/netnsctl/test.toml: namespaces.vpn.nftables \
             (not loaded yet)",
        ]
    );
}

#[test]
fn stale_file_of_own_namespace_is_replaced() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    let seen = namespace(&mut observed, "vpn");
    seen.file = Some(NetnsFile::Stale);
    seen.inside = None;
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.steps.first(),
        Some(&Step::ReplaceStaleFile {
            namespace: "vpn".into()
        })
    );
    assert!(plan.steps.iter().any(
        |step| matches!(step, Step::LoadRuleset { reason, .. } if reason == "not loaded yet")
    ));
}

#[test]
fn stale_file_of_foreign_name_is_left_alone() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    let seen = namespace(&mut observed, "vpn");
    seen.file = Some(NetnsFile::Stale);
    seen.record = None;
    seen.inside = None;
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty());
    assert!(plan.notes[0].message.contains("is not a namespace mount"));
}

#[test]
fn unreadable_namespace_is_reported_not_changed() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    let seen = namespace(&mut observed, "vpn");
    seen.inside = None;
    seen.errors
        .push("cannot enter namespace vpn: permission denied".into());
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty());
    assert_eq!(
        plan.notes[0].message,
        "cannot enter namespace vpn: permission denied"
    );
}

#[test]
fn steps_serialize_with_action_tag() {
    let step = Step::SetSysctl {
        namespace: "vpn".into(),
        key: "net.ipv4.ip_forward".into(),
        value: "1".into(),
        current: None,
    };
    let json = serde_json::to_value(&step).expect("step serializes");
    assert_eq!(json["action"], "set-sysctl");
    assert_eq!(json["namespace"], "vpn");
    assert_eq!(json["key"], "net.ipv4.ip_forward");
}

#[test]
fn namespace_registered_again_is_left_alone() {
    let desired = desired(CONTRACT);
    let mut observed = converged(&desired);
    let seen = namespace(&mut observed, "vpn");
    seen.record.as_mut().expect("record").netns_inode = Some(4026531000);
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert!(plan.notes[0]
        .message
        .contains("not the one netnsctl created"));
}

#[test]
fn namespace_registered_again_is_adopted_and_reloaded() {
    let desired = desired(&CONTRACT.replace("[namespaces.vpn]", "[namespaces.vpn]\nadopt = true"));
    let mut observed = converged(&desired);
    let seen = namespace(&mut observed, "vpn");
    seen.record.as_mut().expect("record").netns_inode = Some(4026531000);
    let plan = plan(&desired, &observed);
    assert_eq!(
        plan.steps[0],
        Step::AdoptNamespace {
            namespace: "vpn".into()
        }
    );
    assert!(plan.steps.iter().any(
        |step| matches!(step, Step::LoadRuleset { reason, .. } if reason == "not loaded yet")
    ));
}

#[test]
fn host_namespace_is_never_managed() {
    let desired = desired(&CONTRACT.replace("[namespaces.vpn]", "[namespaces.vpn]\nadopt = true"));
    let mut observed = converged(&desired);
    let seen = namespace(&mut observed, "vpn");
    seen.host_namespace = true;
    seen.inside = None;
    let plan = plan(&desired, &observed);
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert!(plan.notes[0].message.contains("host's network namespace"));
}

#[test]
fn ruleset_loads_before_sysctls() {
    let plan = plan(&desired(CONTRACT), &Observed::default());
    let position = |wanted: fn(&Step) -> bool| plan.steps.iter().position(wanted);
    let ruleset = position(|step| matches!(step, Step::LoadRuleset { .. }));
    let sysctl = position(|step| matches!(step, Step::SetSysctl { .. }));
    assert!(ruleset < sysctl, "{:?}", plan.steps);
}
