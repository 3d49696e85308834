//! Rules for the names that end up in kernel objects, paths and unit names.

/// Maximum length of a namespace name in bytes.
pub const MAX_NAMESPACE_NAME: usize = 64;

/// Maximum length of an interface name in bytes (`IFNAMSIZ` minus the NUL byte).
pub const MAX_INTERFACE_NAME: usize = 15;

/// What a namespace name may contain, for error messages.
pub const NAMESPACE_NAME_RULE: &str =
    "1 to 64 bytes of ASCII letters, digits, '_', '.' and '-', not starting with '.' or '-'";

/// What an interface name may contain, for error messages.
pub const INTERFACE_NAME_RULE: &str =
    "1 to 15 bytes of ASCII letters, digits, '_', '.' and '-', not starting with '.' or '-'";

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn is_safe_name(name: &str, max: usize) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && !matches!(bytes[0], b'.' | b'-')
        && bytes.iter().all(|&b| is_name_byte(b))
}

/// Checks a namespace name: it becomes /run/netns/NAME, /etc/netns/NAME and
/// `netns-NAME.service`, so it must be a single path component and a valid unit name prefix.
pub fn is_valid_namespace_name(name: &str) -> bool {
    is_safe_name(name, MAX_NAMESPACE_NAME)
}

/// Checks an interface name. The kernel accepts more (anything but '/', ':' and white space),
/// but names that also work unquoted in nft rulesets and unit files are the safe subset.
pub fn is_valid_interface_name(name: &str) -> bool {
    is_safe_name(name, MAX_INTERFACE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_accepted() {
        for name in ["a", "vpn", "lab-1", "a.b_c-d", "0", &"x".repeat(64)] {
            assert!(is_valid_namespace_name(name), "{name:?} should be valid");
        }
    }

    #[test]
    fn namespace_names_rejected() {
        let long = "x".repeat(65);
        for name in ["", ".", "..", "a/b", "-a", ".a", "a b", "a\0b", "ä", &long] {
            assert!(!is_valid_namespace_name(name), "{name:?} should be invalid");
        }
    }

    #[test]
    fn interface_name_length_limit() {
        assert!(is_valid_interface_name("fifteen-bytes-x"));
        assert!(!is_valid_interface_name("sixteen-bytes-xx"));
    }
}
