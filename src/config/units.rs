//! Checks of the systemd parts of a config: `members` and `[namespaces.NAME.service]` overrides.

use std::collections::BTreeMap;

use super::validate::{key_part, ConfigError};
use super::LoadedConfig;
use crate::systemd::{namespace_unit_name, unit_name};

/// `[Service]` settings that give the namespace unit a mount namespace of its own: a mount made
/// there, like the one at /run/netns/NAME, is not seen by the host and other units.
const MOUNT_NAMESPACE_KEYS: [&str; 30] = [
    "BindPaths",
    "BindReadOnlyPaths",
    "DynamicUser",
    "ExecPaths",
    "ExtensionDirectories",
    "ExtensionImages",
    "InaccessiblePaths",
    "MountAPIVFS",
    "MountFlags",
    "MountImages",
    "NoExecPaths",
    "PrivateDevices",
    "PrivateMounts",
    "PrivateTmp",
    "PrivateUsers",
    "ProcSubset",
    "ProtectClock",
    "ProtectControlGroups",
    "ProtectHome",
    "ProtectHostname",
    "ProtectKernelLogs",
    "ProtectKernelModules",
    "ProtectKernelTunables",
    "ProtectProc",
    "ProtectSystem",
    "ReadOnlyPaths",
    "ReadWritePaths",
    "RootDirectory",
    "RootImage",
    "TemporaryFileSystem",
];

/// Settings that would put the namespace unit in a network namespace other than the one
/// systemd creates for it.
const NETWORK_NAMESPACE_KEYS: [(&str, &str); 3] = [
    ("Service", "PrivateNetwork"),
    ("Service", "NetworkNamespacePath"),
    ("Unit", "JoinsNamespaceOf"),
];

/// `[Service]` settings that netnsctl writes itself: the unit is a oneshot whose ExecStart=
/// attaches and configures the namespace and whose ExecStop= removes it.
const FIXED_SERVICE_KEYS: [&str; 4] = ["Type", "ExecStart", "ExecStop", "RemainAfterExit"];

/// `[Service]` settings that would run netnsctl without the root privileges it needs.
const USER_KEYS: [&str; 2] = ["User", "Group"];

/// `[Install]` settings whose values are unit names that get a symlink to the namespace unit.
const INSTALL_LINK_KEYS: [&str; 3] = ["WantedBy", "RequiredBy", "UpheldBy"];

/// Checks overrides and members of every namespace; returns the errors found.
pub fn check(loaded: &LoadedConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    // Member unit name to the key that claims it, to find units listed in two namespaces.
    let mut members: BTreeMap<&str, String> = BTreeMap::new();

    for (name, ns) in &loaded.config.namespaces {
        let key = format!("namespaces.{}", key_part(name));
        let unit = namespace_unit_name(name);

        for (i, member) in ns.members.iter().enumerate() {
            let mkey = format!("{key}.members[{i}]");
            if let Some(previous) = members.insert(member, mkey.clone()) {
                errors.push(ConfigError::key(
                    loaded.file_of(&mkey),
                    mkey,
                    format!("{member:?}"),
                    format!("a unit runs in one namespace only, and {previous} already lists it"),
                ));
            }
        }

        for (section, entries) in &ns.service {
            for (setting, value) in entries {
                let skey = format!("{key}.service.{}.{}", key_part(section), key_part(setting));
                let value_text = value.to_string();
                let file = loaded.file_of(&skey);
                let setting_error =
                    |message: String| ConfigError::key(file, skey.clone(), &value_text, message);
                if NETWORK_NAMESPACE_KEYS.contains(&(section.as_str(), setting.as_str())) {
                    errors.push(setting_error(format!(
                        "{unit} runs in the namespace systemd creates for it (PrivateNetwork=yes); remove this setting"
                    )));
                } else if section == "Service" && MOUNT_NAMESPACE_KEYS.contains(&setting.as_str()) {
                    errors.push(setting_error(format!(
                        "{setting}= gives {unit} a mount namespace of its own, which hides /run/netns/{name} from the host; remove this setting"
                    )));
                } else if section == "Service" && FIXED_SERVICE_KEYS.contains(&setting.as_str()) {
                    errors.push(setting_error(format!(
                        "netnsctl sets {setting}= in {unit} itself; remove this setting (use ExecStartPre= or ExecStartPost= to run more commands)"
                    )));
                } else if section == "Service" && USER_KEYS.contains(&setting.as_str()) {
                    errors.push(setting_error(format!(
                        "{unit} runs netnsctl, which needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); remove this setting"
                    )));
                } else if section == "Install" && INSTALL_LINK_KEYS.contains(&setting.as_str()) {
                    for word in value
                        .lines()
                        .iter()
                        .flat_map(|line| line.split_whitespace())
                    {
                        if !unit_name::is_valid_dependency(word) {
                            errors.push(setting_error(format!(
                                "{word:?} is not a unit name: use names such as \"multi-user.target\""
                            )));
                        }
                    }
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    fn errors(toml: &str) -> Vec<String> {
        let loaded = parse(Path::new("n.toml"), toml).expect("valid TOML");
        check(&loaded).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn plain_overrides_accepted() {
        let toml = r#"
[namespaces.vpn.service.Unit]
After = "keys.service"
[namespaces.vpn.service.Service]
Environment = ["A=1", "B=2"]
[namespaces.vpn.service.Install]
WantedBy = ["", "network-online.target getty@tty1.service"]
"#;
        assert_eq!(errors(toml), Vec::<String>::new());
    }

    #[test]
    fn mount_sandboxing_rejected() {
        let found = errors("[namespaces.vpn.service.Service]\nProtectSystem = \"strict\"\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("n.toml: namespaces.vpn.service.Service.ProtectSystem = "),
            "{found:?}"
        );
        assert!(
            found[0].contains("hides /run/netns/vpn from the host"),
            "{found:?}"
        );
    }

    #[test]
    fn network_settings_rejected() {
        let toml = "[namespaces.vpn.service.Service]\nPrivateNetwork = \"no\"\n[namespaces.vpn.service.Unit]\nJoinsNamespaceOf = \"x.service\"\n";
        let found = errors(toml);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|e| e.contains("remove this setting")));
    }

    #[test]
    fn user_rejected() {
        let found = errors("[namespaces.vpn.service.Service]\nUser = \"nobody\"\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("needs root"), "{found:?}");
    }

    #[test]
    fn install_target_must_be_unit_name() {
        let found =
            errors("[namespaces.vpn.service.Install]\nWantedBy = \"../x multi-user.target\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("\"../x\" is not a unit name"),
            "{found:?}"
        );
    }

    #[test]
    fn member_in_two_namespaces_rejected() {
        let toml = "[namespaces.a]\nmembers = [\"x.service\"]\n[namespaces.b]\nmembers = [\"x.service\"]\n";
        let found = errors(toml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("n.toml: namespaces.b.members[0] = \"x.service\""),
            "{found:?}"
        );
        assert!(
            found[0].contains("namespaces.a.members[0] already lists it"),
            "{found:?}"
        );
    }
}
