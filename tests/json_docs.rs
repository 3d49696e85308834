//! docs/json.md names every field and step action that `--json` output contains.

mod support;

use std::path::Path;

use netnsctl::plan::Step;
use support::{require_root, Env};

fn json_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Collects every object key, and every `action` value, in a JSON value.
fn names_in(value: &serde_json::Value, names: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(object) => {
            for (key, inner) in object {
                names.push(key.clone());
                if key == "action" {
                    names.push(inner.as_str().expect("action is a string").to_owned());
                }
                names_in(inner, names);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| names_in(item, names)),
        _ => {}
    }
}

fn assert_documented(what: &str, value: &serde_json::Value) {
    let doc = json_doc();
    let mut names = Vec::new();
    names_in(value, &mut names);
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/json.md does not name `{name}` of {what}"
        );
    }
}

/// Builds one step of every kind.
fn every_step() -> Vec<Step> {
    let namespace = "a".to_owned();
    let steps = vec![
        Step::CreateNamespace {
            namespace: namespace.clone(),
        },
        Step::ReplaceStaleFile {
            namespace: namespace.clone(),
        },
        Step::AdoptNamespace {
            namespace: namespace.clone(),
        },
        Step::SetLinkUp {
            namespace: namespace.clone(),
            link: "lo".into(),
        },
        Step::SetSysctl {
            namespace: namespace.clone(),
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
            current: Some("0".into()),
        },
        Step::RestoreSysctl {
            namespace: namespace.clone(),
            key: "net.ipv4.ip_forward".into(),
            value: "0".into(),
            current: "1".into(),
        },
        Step::LoadRuleset {
            namespace: namespace.clone(),
            source: "file".into(),
            reason: "not loaded yet".into(),
        },
        Step::FlushRuleset {
            namespace: namespace.clone(),
        },
        Step::WriteResolvConf {
            namespace: namespace.clone(),
        },
        Step::CreateBridge {
            bridge: "br0".into(),
        },
        Step::DeleteBridge {
            bridge: "br0".into(),
        },
        Step::CreateVeth {
            namespace: namespace.clone(),
            link: "eth0".into(),
            peer: "ve-a".into(),
            peer_netns: Some("b".into()),
        },
        Step::DeleteVeth {
            namespace: namespace.clone(),
            link: "eth0".into(),
        },
        Step::SetBridgePort {
            namespace: namespace.clone(),
            link: "ve-a".into(),
            bridge: "br0".into(),
        },
        Step::SetLinkUpIn {
            namespace: namespace.clone(),
            netns: None,
            link: "ve-a".into(),
        },
        Step::AddAddress {
            namespace: namespace.clone(),
            netns: Some(namespace.clone()),
            link: "eth0".into(),
            address: "10.0.0.2/24".parse().expect("address"),
        },
        Step::RemoveAddress {
            namespace: namespace.clone(),
            netns: Some(namespace.clone()),
            link: "eth0".into(),
            address: "fd00::2/64".parse().expect("address"),
        },
        Step::SetHostSysctl {
            namespace: namespace.clone(),
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
            current: Some("0".into()),
        },
        Step::AddRoute {
            namespace: namespace.clone(),
            destination: "0.0.0.0/0".parse().expect("network"),
            gateway: Some("10.0.0.1".parse().expect("gateway")),
            dev: None,
        },
        Step::RemoveRoute {
            namespace: namespace.clone(),
            destination: "10.1.0.0/16".parse().expect("network"),
            gateway: None,
            dev: Some("eth0".into()),
        },
        Step::MoveLinkIn {
            namespace: namespace.clone(),
            link: "eth1".into(),
        },
        Step::CreateWireGuard {
            namespace: namespace.clone(),
            link: "wg0".into(),
            underlay: None,
        },
        Step::DeleteWireGuard {
            namespace: namespace.clone(),
            link: "wg0".into(),
        },
        Step::SetWireGuardInterface {
            namespace: namespace.clone(),
            link: "wg0".into(),
        },
        Step::SetWireGuardPeer {
            namespace: namespace.clone(),
            link: "wg0".into(),
            public_key: "key".into(),
        },
        Step::RemoveWireGuardPeer {
            namespace,
            link: "wg0".into(),
            public_key: "key".into(),
        },
        Step::LoadHostTable {
            reason: "port mappings changed".into(),
            text: String::new(),
        },
        Step::DeleteHostTable,
    ];
    for step in &steps {
        // A new kind of step fails to compile here: document its action and fields in
        // docs/json.md, then add it to this list and to the match.
        match step {
            Step::CreateNamespace { .. }
            | Step::ReplaceStaleFile { .. }
            | Step::AdoptNamespace { .. }
            | Step::SetLinkUp { .. }
            | Step::SetSysctl { .. }
            | Step::RestoreSysctl { .. }
            | Step::LoadRuleset { .. }
            | Step::FlushRuleset { .. }
            | Step::WriteResolvConf { .. }
            | Step::CreateBridge { .. }
            | Step::DeleteBridge { .. }
            | Step::CreateVeth { .. }
            | Step::DeleteVeth { .. }
            | Step::SetBridgePort { .. }
            | Step::SetLinkUpIn { .. }
            | Step::AddAddress { .. }
            | Step::RemoveAddress { .. }
            | Step::SetHostSysctl { .. }
            | Step::AddRoute { .. }
            | Step::RemoveRoute { .. }
            | Step::MoveLinkIn { .. }
            | Step::CreateWireGuard { .. }
            | Step::DeleteWireGuard { .. }
            | Step::SetWireGuardInterface { .. }
            | Step::SetWireGuardPeer { .. }
            | Step::RemoveWireGuardPeer { .. }
            | Step::LoadHostTable { .. }
            | Step::DeleteHostTable => {}
        }
    }
    steps
}

#[test]
fn every_step_action_documented() {
    for step in every_step() {
        let value = serde_json::to_value(&step).expect("step serializes");
        assert_documented(&format!("step {step}"), &value);
    }
}

#[test]
fn check_json_fields_documented() {
    let env = Env::new("[namespaces.a]\nmembers = [\"web\"]\n");
    let output = env.run(&["check", "--json"]);
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("check prints JSON");
    assert_eq!(value["version"], 1);
    assert_eq!(value["valid"], false);
    assert_documented("check --json", &value);
}

#[test]
fn plan_and_status_json_fields_documented() {
    if !require_root("plan_and_status_json_fields_documented") {
        return;
    }
    let env = Env::new(
        "[namespaces.eco-json]\nsysctl = { \"net.ipv4.ip_forward\" = 1, \"net.eco.missing\" = 1 }\nnftables = \"table inet f { }\"\n",
    );
    let plan: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "--json"])).expect("plan prints JSON");
    assert_eq!(plan["version"], 1);
    assert_documented("plan --json", &plan);

    env.ok(&["apply"]);
    env.write_config("[namespaces.eco-json]\nsysctl = { \"net.ipv4.ip_forward\" = 0, \"net.eco.missing\" = 1 }\n");
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--json"])).expect("status prints JSON");
    assert_eq!(status["version"], 1);
    let drift = status["namespaces"][0]["drift"]
        .as_array()
        .expect("drift array");
    assert!(!drift.is_empty(), "changed config shows no drift: {status}");
    let notes = status["namespaces"][0]["notes"]
        .as_array()
        .expect("notes array");
    assert!(!notes.is_empty(), "missing sysctl shows no note: {status}");
    assert_documented("status --json", &status);
    env.ok(&["down", "eco-json"]);
}
