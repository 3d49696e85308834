//! Sysctls through /proc/sys.
//!
//! Files under /proc/sys/net belong to the network namespace of the task that opens them, so
//! these functions act on the calling thread's namespace.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode};

/// Maps a sysctl key to its /proc/sys path the way systemd-sysctl does: when the first
/// separator is '/', the key is already a path; otherwise '.' and '/' swap, so an interface
/// name with a dot can be written as `net.ipv4.conf.eth0/100.rp_filter`.
pub fn proc_path(key: &str) -> PathBuf {
    let first_sep = key.find(['.', '/']);
    let path: String = if first_sep.is_some_and(|i| key.as_bytes()[i] == b'/') {
        key.to_owned()
    } else {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    };
    PathBuf::from("/proc/sys").join(path)
}

/// The state of one sysctl in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlState {
    /// Readable value, white space normalized to single spaces.
    Value(String),
    /// No such file in this namespace.
    Missing,
    /// The file exists but has no write permission in this namespace.
    ReadOnly(String),
}

/// Normalizes a value for comparison: the kernel separates multi-value sysctls with tabs.
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a sysctl in the calling thread's network namespace.
pub fn read(key: &str) -> io::Result<SysctlState> {
    let path = proc_path(key);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(SysctlState::Missing),
        Err(err) => return Err(err),
    };
    let value = match fs::read_to_string(&path) {
        Ok(text) => normalize(&text),
        // Write-only entries such as net.ipv4.route.flush.
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => String::new(),
        Err(err) => return Err(err),
    };
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o200 == 0 {
        return Ok(SysctlState::ReadOnly(value));
    }
    Ok(SysctlState::Value(value))
}

/// Writes a sysctl in the calling thread's network namespace.
pub fn write(key: &str, value: &str) -> io::Result<()> {
    let path = proc_path(key);
    let mut file = fs::OpenOptions::new().write(true).open(&path)?;
    file.write_all(value.as_bytes())
}

/// The directories directly under /proc/sys/net (`ipv4`, `ipv6`, `core`, ...), opened in the
/// calling thread's network namespace and kept open, to read and write many `net.*` keys of that
/// namespace.
///
/// Each network namespace has its own dentries for these directories, all children of the one
/// /proc/sys/net dentry of a proc instance, so the entries of one name sit in one dcache hash
/// chain, newest first. A lookup compares them one by one under the global sysctl spinlock
/// (`proc_sys_compare` in perf profiles). For the middle one of 1000 namespaces in /proc this
/// took 58 to 84 µs on Linux 6.18, measured with bench/lookup-cost. So the directories are
/// opened once per namespace, each key relative to them, and through a private proc instance
/// (see [`proc_instance`]) whose chains contain the entries of a few namespaces only. Keys outside
/// /proc/sys/net use [`read`] and [`write`].
pub struct NetDir {
    /// /proc/sys/net of a private proc instance, or `None` to use /proc.
    root: Option<(Arc<OwnedFd>, OwnedFd)>,
    dirs: HashMap<String, Option<OwnedFd>>,
}

impl Default for NetDir {
    fn default() -> Self {
        NetDir::new()
    }
}

impl NetDir {
    /// Opens the directories through a private proc instance, or through /proc when the process
    /// cannot mount one (no CAP_SYS_ADMIN, a seccomp filter, Linux before 5.2). Before Linux 5.8
    /// a new proc mount shares the superblock, and so the dentries, of /proc.
    pub fn new() -> Self {
        let root = proc_instance().and_then(|instance| {
            let net = openat(
                instance.as_ref(),
                "sys/net",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
            Some((instance, net))
        });
        NetDir {
            root,
            dirs: HashMap::new(),
        }
    }

    /// Returns the opened directory under /proc/sys/net that contains a `net.*` key and the
    /// key's path relative to it. Returns `None` for other keys and for directories that cannot
    /// be opened; the absolute path then reports the error.
    fn parent_of(&mut self, key: &str) -> Option<(&OwnedFd, PathBuf)> {
        let path = proc_path(key);
        let below = path.strip_prefix("/proc/sys/net").ok()?;
        let mut components = below.components();
        let first = components.next()?.as_os_str().to_str()?.to_owned();
        let rest = components.as_path().to_path_buf();
        if rest.as_os_str().is_empty() {
            return None;
        }
        let root = &self.root;
        let dir = self.dirs.entry(first).or_insert_with_key(|first| {
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            match root {
                Some((_, net)) => openat(net, first.as_str(), flags, Mode::empty()).ok(),
                None => open(
                    Path::new("/proc/sys/net").join(first).as_path(),
                    flags,
                    Mode::empty(),
                )
                .ok(),
            }
        });
        dir.as_ref().map(|dir| (dir, rest))
    }

    /// Reads a sysctl, like [`read`].
    pub fn read(&mut self, key: &str) -> io::Result<SysctlState> {
        let Some((dir, name)) = self.parent_of(key) else {
            return read(key);
        };
        let (stat, value) = match openat(
            dir,
            name.as_path(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let stat = fstat(&fd)?;
                (stat, normalize(&read_text(fs::File::from(fd))?))
            }
            Err(Errno::ENOENT) => return Ok(SysctlState::Missing),
            // Write-only entries such as net.ipv4.route.flush.
            Err(err) if io::Error::from(err).kind() == io::ErrorKind::PermissionDenied => {
                match fstatat(dir, name.as_path(), AtFlags::empty()) {
                    Ok(stat) => (stat, String::new()),
                    Err(Errno::ENOENT) => return Ok(SysctlState::Missing),
                    Err(err) => return Err(err.into()),
                }
            }
            Err(err) => return Err(err.into()),
        };
        if stat.st_mode & 0o200 == 0 {
            return Ok(SysctlState::ReadOnly(value));
        }
        Ok(SysctlState::Value(value))
    }

    /// Writes a sysctl, like [`write`].
    pub fn write(&mut self, key: &str, value: &str) -> io::Result<()> {
        let Some((dir, name)) = self.parent_of(key) else {
            return write(key, value);
        };
        let fd = openat(
            dir,
            name.as_path(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        fs::File::from(fd).write_all(value.as_bytes())
    }
}

/// Namespaces whose sysctl directories share one private proc instance. A lookup in an instance
/// scans the entries of the namespaces that used it before. Creating an instance, one lookup in
/// it and the close that frees it took 37 to 47 µs (bench/lookup-cost, Linux 6.18). With 32
/// namespaces per instance, both costs stay at a few µs per namespace.
const NAMESPACES_PER_INSTANCE: usize = 32;

/// Returns a private proc instance, which is a mount attached nowhere (fsopen and fsmount). Up
/// to [`NAMESPACES_PER_INSTANCE`] callers share one, and it is unmounted when the last of them
/// drops it. Returns `None` when mounting fails, and from then on.
fn proc_instance() -> Option<Arc<OwnedFd>> {
    static CURRENT: Mutex<Option<(Arc<OwnedFd>, usize)>> = Mutex::new(None);
    static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    let mut current = CURRENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((instance, users)) = current.as_mut() {
        if *users < NAMESPACES_PER_INSTANCE {
            *users += 1;
            return Some(Arc::clone(instance));
        }
    }
    match mount_proc() {
        Ok(fd) => {
            let instance = Arc::new(fd);
            *current = Some((Arc::clone(&instance), 1));
            Some(instance)
        }
        Err(err) => {
            tracing::debug!("cannot mount a private proc instance, using /proc/sys: {err}");
            UNAVAILABLE.store(true, Ordering::Relaxed);
            *current = None;
            None
        }
    }
}

/// Mounts a new proc instance without attaching it, read-only for this use: nosuid, nodev,
/// noexec.
fn mount_proc() -> io::Result<OwnedFd> {
    // From linux/mount.h; the libc crate does not define them.
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let attributes = (libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC)
        as libc::c_uint;

    let check = |ret: libc::c_long| -> io::Result<OwnedFd> {
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
    };

    // SAFETY: the arguments are a NUL-terminated string and integers, as fsopen(2) takes.
    let context =
        check(unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) })?;

    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }

    // SAFETY: fsmount(2) takes the context descriptor and two flag words.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attributes,
        )
    })
}

/// Reads a sysctl file to the end. /proc/sys files report size 0, so this reads into a buffer
/// directly instead of asking for the size first as `read_to_string` does (two more system calls
/// per key).
fn read_text(mut file: fs::File) -> io::Result<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    String::from_utf8(bytes).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// Returns whether a key is a glob pattern: systemd-sysctl treats keys with `*`, `?` or `[` as globs.
pub fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

/// Rewrites a key in the dotted form netnsctl compares keys in. systemd-sysctl (`sysctl.d(5)`)
/// accepts `net/ipv4/ip_forward` too: when the first separator is '/', '/' and '.' swap, so
/// `net/ipv4/conf/eth0.100/rp_filter` becomes `net.ipv4.conf.eth0/100.rp_filter`. Repeated
/// and leading separators are dropped, as systemd's `path_simplify` drops them.
pub fn dotted_key(key: &str) -> String {
    let slash_first = key
        .find(['.', '/'])
        .is_some_and(|i| key.as_bytes()[i] == b'/');
    let separator = if slash_first { '/' } else { '.' };
    key.split(separator)
        .filter(|part| !part.is_empty())
        .map(|part| {
            if slash_first {
                part.replace('.', "/")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Expands a glob key (see [`is_glob`]) into the keys present in the calling thread's
/// namespace, as systemd-sysctl expands it with glob(3). Keys come back in dotted form, sorted.
/// Keys without wildcards come back unchanged.
pub fn expand_glob(key: &str) -> Vec<String> {
    if !is_glob(key) {
        return vec![key.to_owned()];
    }
    // Each component of the /proc/sys path is matched against file names, which may contain dots.
    let path = proc_path(key);
    let Ok(relative) = path.strip_prefix("/proc/sys") else {
        return Vec::new();
    };
    let parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let mut found = Vec::new();
    expand_parts(
        PathBuf::from("/proc/sys"),
        &parts,
        String::new(),
        &mut found,
    );
    found.sort();
    found
}

fn expand_parts(dir: PathBuf, parts: &[String], prefix: String, found: &mut Vec<String>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // glob(3) without GLOB_PERIOD: wildcards never match a leading '.'.
        if name.starts_with('.') && !first.starts_with('.') {
            continue;
        }
        if !glob_match(first, &name) {
            continue;
        }
        // Names with dots (VLAN links) need the '/' form to stay one component.
        let part = name.replace('.', "/");
        if rest.is_empty() {
            if entry.path().is_file() {
                found.push(join(&part));
            }
        } else {
            expand_parts(entry.path(), rest, join(&part), found);
        }
    }
}

/// Matches one file name against one glob(7) component: `*`, `?`, bracket expressions such as
/// `[al]`, `[!0-9]`, `[^a]` and `[[:digit:]]`, and `\` to quote the next character. A `[`
/// without a closing `]` matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

fn match_from(pattern: &[char], name: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return name.is_empty();
    };
    match first {
        '*' => (0..=name.len()).any(|skip| match_from(rest, &name[skip..])),
        '?' => !name.is_empty() && match_from(rest, &name[1..]),
        '[' => match (bracket(rest), name.split_first()) {
            (Some((set, after)), Some((&c, name_rest))) => {
                set.contains(c) && match_from(after, name_rest)
            }
            (Some(_), None) => false,
            // No closing ']': the '[' is an ordinary character.
            (None, _) => name.first() == Some(&'[') && match_from(rest, &name[1..]),
        },
        '\\' if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && match_from(&rest[1..], &name[1..])
        }
        c => name.first() == Some(&c) && match_from(rest, &name[1..]),
    }
}

/// A parsed bracket expression.
struct CharSet {
    negated: bool,
    ranges: Vec<(char, char)>,
    classes: Vec<String>,
}

impl CharSet {
    fn contains(&self, c: char) -> bool {
        let in_ranges = self.ranges.iter().any(|&(low, high)| low <= c && c <= high);
        let in_classes = self.classes.iter().any(|class| match class.as_str() {
            "alnum" => c.is_ascii_alphanumeric(),
            "alpha" => c.is_ascii_alphabetic(),
            "digit" => c.is_ascii_digit(),
            "lower" => c.is_ascii_lowercase(),
            "upper" => c.is_ascii_uppercase(),
            "xdigit" => c.is_ascii_hexdigit(),
            "punct" => c.is_ascii_punctuation(),
            "space" => c.is_ascii_whitespace(),
            _ => false,
        });
        (in_ranges || in_classes) != self.negated
    }
}

/// Parses a bracket expression after its '['. Returns the set and the pattern after the closing
/// ']', or `None` when there is no closing ']'.
fn bracket(pattern: &[char]) -> Option<(CharSet, &[char])> {
    let mut set = CharSet {
        negated: false,
        ranges: Vec::new(),
        classes: Vec::new(),
    };
    let mut i = 0;
    if matches!(pattern.first(), Some('!' | '^')) {
        set.negated = true;
        i = 1;
    }
    let body_start = i;
    loop {
        let c = *pattern.get(i)?;
        // A ']' right after the '[' (or after its '!') is an ordinary member.
        if c == ']' && i > body_start {
            return Some((set, &pattern[i + 1..]));
        }
        if c == '[' && pattern.get(i + 1) == Some(&':') {
            let rest: String = pattern[i + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                set.classes.push(rest[..end].to_owned());
                i += 2 + rest[..end].chars().count() + 2;
                continue;
            }
        }
        let low = if c == '\\' && i + 1 < pattern.len() {
            i += 1;
            pattern[i]
        } else {
            c
        };
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&high| high != ']') {
            set.ranges.push((low, pattern[i + 2]));
            i += 3;
        } else {
            set.ranges.push((low, low));
            i += 1;
        }
    }
}

/// Parses one integer the way the kernel's `proc_dointvec` family does: an optional '-', then
/// digits in C notation (`0x` hexadecimal, a leading `0` octal, else decimal). So the kernel
/// stores "01" as 1 and "010" as 8.
pub fn proc_integer(token: &str) -> Option<i128> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (radix, body) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from(u64::from_str_radix(body, radix).ok()?);
    Some(if negative { -magnitude } else { magnitude })
}

/// Returns whether a value read from /proc/sys equals a desired value once the kernel has parsed it:
/// white space separates values, and integers compare as numbers, so "01" equals "1".
pub fn values_equal(current: &str, desired: &str) -> bool {
    let current: Vec<&str> = current.split_whitespace().collect();
    let desired: Vec<&str> = desired.split_whitespace().collect();
    current.len() == desired.len()
        && current.iter().zip(&desired).all(|(read, wanted)| {
            read == wanted
                || matches!(
                    (proc_integer(read), proc_integer(wanted)),
                    (Some(a), Some(b)) if a == b
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_path_dotted_key() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }

    #[test]
    fn proc_path_key_with_vlan_name() {
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/100.rp_filter"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.100/rp_filter"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
    }

    #[test]
    fn normalize_tabs() {
        assert_eq!(normalize("4096\t87380\t6291456\n"), "4096 87380 6291456");
    }

    #[test]
    fn glob_patterns() {
        assert!(glob_match("*", "eth0"));
        assert!(glob_match("eth?", "eth0"));
        assert!(!glob_match("eth?", "eth10"));
        assert!(glob_match("e*0", "eth10"));
    }

    /// Keys of every kind `read` tells apart: values, a missing key in an existing directory, a
    /// missing directory, a write-only entry, and a key that is read-only in a child namespace.
    const KEYS: [&str; 7] = [
        "net.ipv4.ip_forward",
        "net.ipv6.conf.all.forwarding",
        "net.ipv4.conf.lo.rp_filter",
        "net.ipv4.no_such_key",
        "net.no_such_directory.key",
        "net.ipv4.route.flush",
        "net.core.rmem_max",
    ];

    #[test]
    fn net_dir_matches_absolute_paths() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(
                std::env::var("NETNSCTL_REQUIRE_ROOT").as_deref(),
                Ok("1"),
                "net_dir_matches_absolute_paths needs root and NETNSCTL_REQUIRE_ROOT=1 forbids skipping it"
            );
            eprintln!("SKIP: net_dir_matches_absolute_paths needs root");
            return;
        }
        crate::kernel::netns::on_thread(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let mut dir = NetDir::new();
            for key in KEYS {
                assert_eq!(dir.read(key).unwrap(), read(key).unwrap(), "read {key}");
            }

            dir.write("net.ipv4.conf.all.rp_filter", "2").unwrap();
            assert_eq!(
                read("net.ipv4.conf.all.rp_filter").unwrap(),
                SysctlState::Value("2".into())
            );
            for key in ["net.ipv4.no_such_key", "net.no_such_directory.key"] {
                let relative = dir.write(key, "1").unwrap_err().kind();
                let absolute = write(key, "1").unwrap_err().kind();
                assert_eq!(relative, absolute, "write {key}");
            }
        });
    }

    #[test]
    fn glob_bracket_expressions() {
        assert!(glob_match("[al]*", "all"));
        assert!(glob_match("[al]*", "lo"));
        assert!(!glob_match("[al]*", "default"));
        assert!(glob_match("[!al]*", "default"));
        assert!(glob_match("[^al]*", "default"));
        assert!(!glob_match("[!al]*", "lo"));
        assert!(glob_match("eth[0-9]", "eth7"));
        assert!(!glob_match("eth[0-9]", "ethx"));
        assert!(glob_match("eth[[:digit:]]", "eth3"));
        assert!(glob_match("[]x]", "]"));
        assert!(glob_match("a[", "a["));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
    }

    #[test]
    fn glob_detection() {
        assert!(is_glob("net.ipv4.conf.*.rp_filter"));
        assert!(is_glob("net.ipv4.conf.[al]*.log_martians"));
        assert!(!is_glob("net.ipv4.ip_forward"));
    }

    #[test]
    fn dotted_key_forms() {
        assert_eq!(dotted_key("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(dotted_key("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(
            dotted_key("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(
            dotted_key("net.ipv4.conf.eth0/100.rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(dotted_key("/net//ipv4/ip_forward"), "net.ipv4.ip_forward");
    }

    #[test]
    fn proc_integer_follows_kernel_parsing() {
        assert_eq!(proc_integer("1"), Some(1));
        assert_eq!(proc_integer("01"), Some(1));
        assert_eq!(proc_integer("010"), Some(8));
        assert_eq!(proc_integer("0x10"), Some(16));
        assert_eq!(proc_integer("-3"), Some(-3));
        assert_eq!(proc_integer("0"), Some(0));
        assert_eq!(proc_integer("+1"), None);
        assert_eq!(proc_integer("08"), None);
        assert_eq!(proc_integer("abc"), None);
        assert_eq!(proc_integer(""), None);
    }

    #[test]
    fn values_compare_as_the_kernel_stores_them() {
        assert!(values_equal("1", "01"));
        assert!(values_equal("8", "010"));
        assert!(values_equal("1024 65000", "1024   65000"));
        // A leading 0 means octal to the kernel.
        assert!(values_equal("532 65000", "01024 65000"));
        assert!(!values_equal("1024 65000", "01024 65000"));
        assert!(values_equal("cubic", "cubic"));
        assert!(!values_equal("1", "2"));
        assert!(!values_equal("1", "+1"));
        assert!(!values_equal("1024 65000", "1024"));
    }
}
