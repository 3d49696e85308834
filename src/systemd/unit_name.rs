//! Unit name rules of systemd.unit(5), as systemd's `unit_name_is_valid()` checks them.

/// Maximum length of a unit name in bytes (systemd's `UNIT_NAME_MAX` of 256 counts the NUL).
pub const MAX_UNIT_NAME: usize = 255;

/// Unit type suffixes systemd accepts.
pub const UNIT_TYPES: [&str; 11] = [
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// Kind of unit name a check accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `foo.service`: no `@`.
    Plain,
    /// `foo@bar.service`.
    Instance,
    /// `foo@.service`.
    Template,
}

/// Checks a unit name: a non-empty prefix of ASCII letters, digits, `:`, `-`, `_`, `.` and `\`
/// (plus `@` between template and instance), a dot, and a known unit type, at most 255 bytes.
pub fn is_valid(name: &str, kinds: &[NameKind]) -> bool {
    if name.is_empty() || name.len() > MAX_UNIT_NAME {
        return false;
    }
    let Some((prefix, suffix)) = name.rsplit_once('.') else {
        return false;
    };
    if prefix.is_empty() || !UNIT_TYPES.contains(&suffix) {
        return false;
    }
    let valid_byte = |b: u8| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b);
    if !prefix.bytes().all(valid_byte) {
        return false;
    }
    match prefix.find('@') {
        None => kinds.contains(&NameKind::Plain),
        Some(0) => false,
        Some(at) if at + 1 == prefix.len() => kinds.contains(&NameKind::Template),
        Some(_) => kinds.contains(&NameKind::Instance),
    }
}

/// Checks a name that may appear in a unit file's dependency list (`WantedBy=`, `After=`):
/// a plain unit or an instance, not a template.
pub fn is_valid_dependency(name: &str) -> bool {
    is_valid(name, &[NameKind::Plain, NameKind::Instance])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [NameKind; 3] = [NameKind::Plain, NameKind::Instance, NameKind::Template];

    #[test]
    fn plain_names_accepted() {
        for name in [
            "a.service",
            "netns-vpn.service",
            "a:b\\x2d.socket",
            "x.y.z.target",
        ] {
            assert!(
                is_valid(name, &[NameKind::Plain]),
                "{name:?} should be valid"
            );
        }
    }

    #[test]
    fn invalid_names_rejected() {
        let long = format!("{}.service", "x".repeat(248));
        for name in [
            "",
            ".service",
            "a",
            "a.",
            "a.unknown",
            "a b.service",
            "a/b.service",
            "@.service",
            "@x.service",
            "ä.service",
            &long,
        ] {
            assert!(!is_valid(name, &ALL), "{name:?} should be invalid");
        }
    }

    #[test]
    fn length_limit_is_255_bytes() {
        let max = format!("{}.service", "x".repeat(247));
        assert_eq!(max.len(), 255);
        assert!(is_valid(&max, &[NameKind::Plain]));
    }

    #[test]
    fn at_sign_kinds() {
        assert!(is_valid("getty@.service", &[NameKind::Template]));
        assert!(!is_valid(
            "getty@.service",
            &[NameKind::Plain, NameKind::Instance]
        ));
        assert!(is_valid("getty@tty1.service", &[NameKind::Instance]));
        assert!(!is_valid("getty@tty1.service", &[NameKind::Plain]));
        assert!(is_valid_dependency("getty@tty1.service"));
        assert!(!is_valid_dependency("getty@.service"));
    }
}
