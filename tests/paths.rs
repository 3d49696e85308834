//! File safety: a symlink planted on any path netnsctl writes must not redirect the write, and
//! files and directories netnsctl creates get their modes whatever the umask.

mod support;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use support::{require_root, run_ok, Env};

const CONFIG: &str = r#"
[namespaces.path-a]
sysctl = { "net.ipv4.ip_forward" = 1 }
dns = { nameservers = ["10.53.0.1"] }
"#;

/// Text of the files the planted symlinks point at.
const BAIT: &str = "owned by the test; netnsctl must not change this\n";

/// A file and a directory that the test owns, as symlink targets.
struct Bait {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    directory: std::path::PathBuf,
}

impl Bait {
    fn new() -> Bait {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("bait-file");
        std::fs::write(&file, BAIT).expect("write bait file");
        let directory = dir.path().join("bait-dir");
        std::fs::create_dir(&directory).expect("create bait directory");
        Bait {
            _dir: dir,
            file,
            directory,
        }
    }

    fn assert_untouched(&self, context: &str) {
        let text = std::fs::read_to_string(&self.file).expect("read bait file");
        assert_eq!(
            text, BAIT,
            "{context}: the file behind the symlink was changed"
        );
        let entries = support::system::list_tree(&self.directory, true);
        assert!(
            entries.is_empty(),
            "{context}: files written behind the symlink: {entries:?}"
        );
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|err| panic!("stat {}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn symlink_at_resolv_conf() {
    if !require_root("symlink_at_resolv_conf") {
        return;
    }
    let bait = Bait::new();
    let env = Env::new(CONFIG);
    std::fs::create_dir_all("/etc/netns/path-a").expect("create /etc/netns/path-a");
    symlink(&bait.file, "/etc/netns/path-a/resolv.conf").expect("plant symlink");

    let output = env.run(&["apply"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "apply should fail on the symlink"
    );
    assert!(
        stderr(&output).contains("/etc/netns/path-a/resolv.conf"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("symlink"), "{}", stderr(&output));
    bait.assert_untouched("apply");

    // down removes the symlink itself, never the file behind it.
    env.ok(&["down", "--all"]);
    bait.assert_untouched("down");
    assert!(!Path::new("/etc/netns/path-a").exists());
}

#[test]
fn symlink_at_etc_netns_dir() {
    if !require_root("symlink_at_etc_netns_dir") {
        return;
    }
    let bait = Bait::new();
    let env = Env::new(CONFIG);
    symlink(&bait.directory, "/etc/netns/path-a").expect("plant symlink");

    let output = env.run(&["apply"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "apply should fail on the symlink"
    );
    assert!(
        stderr(&output).contains("/etc/netns/path-a"),
        "{}",
        stderr(&output)
    );
    bait.assert_untouched("apply");

    let output = env.run(&["down", "--all"]);
    bait.assert_untouched("down");
    assert_eq!(
        output.status.code(),
        Some(1),
        "down should report the symlink"
    );
    std::fs::remove_file("/etc/netns/path-a").expect("remove symlink");
    env.ok(&["down", "--all"]);
}

#[test]
fn symlink_at_records_dir() {
    if !require_root("symlink_at_records_dir") {
        return;
    }
    let bait = Bait::new();
    let env = Env::new(CONFIG);
    symlink(&bait.directory, "/run/netnsctl/namespaces").expect("plant symlink");

    let output = env.run(&["apply"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "apply should fail on the symlink"
    );
    assert!(
        stderr(&output).contains("/run/netnsctl/namespaces"),
        "{}",
        stderr(&output)
    );
    bait.assert_untouched("apply");
    assert!(
        !Path::new("/run/netns/path-a").exists(),
        "a namespace was created without a record"
    );

    let output = env.run(&["down", "path-a"]);
    assert_ne!(output.status.code(), Some(0));
    bait.assert_untouched("down");
}

#[test]
fn symlink_at_state_dir() {
    if !require_root("symlink_at_state_dir") {
        return;
    }
    let bait = Bait::new();
    let env = Env::new(CONFIG);

    // The symlink goes into a fresh /run in a mount namespace of its own, so that tests sharing
    // this sandbox (under `cargo test`) keep their /run/netnsctl.
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir /run/netns && ln -s {bait} /run/netnsctl && \
         {bin} apply -c {config}; echo \"apply-status=$?\"; \
         {bin} down --all -c {config}; echo \"down-status=$?\"",
        bait = bait.directory.display(),
        bin = support::netnsctl_bin().display(),
        config = env.config.display(),
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");

    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", stderr(&output));
    assert!(
        stdout.contains("apply-status=1"),
        "apply should fail: {stdout}"
    );
    assert!(
        stdout.contains("down-status=1"),
        "down should fail: {stdout}"
    );
    assert!(
        stderr(&output).contains("/run/netnsctl"),
        "{}",
        stderr(&output)
    );
    bait.assert_untouched("apply and down");
}

#[test]
fn symlink_at_netns_file_not_owned() {
    if !require_root("symlink_at_netns_file_not_owned") {
        return;
    }
    let bait = Bait::new();
    let env = Env::new(CONFIG);
    symlink(&bait.file, "/run/netns/path-a").expect("plant symlink");

    let output = env.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("is not a namespace mount"),
        "{}",
        stderr(&output)
    );
    bait.assert_untouched("apply");
    let meta = std::fs::symlink_metadata("/run/netns/path-a").expect("symlink still there");
    assert!(
        meta.file_type().is_symlink(),
        "apply replaced a symlink it does not own"
    );

    let output = env.run_config_first(&["exec", "path-a", "--", "true"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exec must not enter through a symlink"
    );
    bait.assert_untouched("exec");
}

#[test]
fn symlink_at_netns_file_owned() {
    if !require_root("symlink_at_netns_file_owned") {
        return;
    }
    let bait = Bait::new();
    let env = Env::new(CONFIG);
    env.ok(&["apply"]);
    run_ok("umount", &["/run/netns/path-a"]);
    std::fs::remove_file("/run/netns/path-a").expect("remove the mount point");
    symlink(&bait.file, "/run/netns/path-a").expect("plant symlink");

    let output = env.ok(&["apply"]);
    assert!(output.contains("path-a: replace stale file"), "{output}");
    bait.assert_untouched("apply");
    assert_eq!(support::fs_type(Path::new("/run/netns/path-a")), "nsfs");
    env.ok(&["down", "--all"]);
}

#[test]
fn down_never_unmounts_symlink_target() {
    if !require_root("down_never_unmounts_symlink_target") {
        return;
    }
    let env = Env::new(CONFIG);
    env.ok(&["apply"]);
    run_ok("ip", &["netns", "add", "path-victim"]);
    // The owned name now points at a namespace someone else mounted.
    run_ok("umount", &["/run/netns/path-a"]);
    std::fs::remove_file("/run/netns/path-a").expect("remove the mount point");
    symlink("/run/netns/path-victim", "/run/netns/path-a").expect("plant symlink");

    env.ok(&["down", "--all"]);
    assert!(
        std::fs::symlink_metadata("/run/netns/path-a").is_err(),
        "symlink left"
    );
    assert_eq!(
        support::fs_type(Path::new("/run/netns/path-victim")),
        "nsfs",
        "down unmounted the namespace behind the symlink"
    );
    run_ok("ip", &["netns", "delete", "path-victim"]);
}

#[test]
fn modes_exact_under_strict_umask() {
    if !require_root("modes_exact_under_strict_umask") {
        return;
    }
    let env = Env::new(CONFIG);
    let script = format!(
        "umask 077 && exec {} apply -c {}",
        support::netnsctl_bin().display(),
        env.config.display()
    );
    run_ok("sh", &["-c", &script]);

    let expected = [
        ("/run/netnsctl/lock", 0o644),
        ("/run/netnsctl/namespaces", 0o700),
        ("/run/netnsctl/namespaces/path-a.json", 0o600),
        ("/etc/netns/path-a", 0o755),
        ("/etc/netns/path-a/resolv.conf", 0o644),
    ];
    for (path, wanted) in expected {
        assert_eq!(
            mode(Path::new(path)),
            wanted,
            "mode of {path}: {:o}",
            mode(Path::new(path))
        );
    }

    // An existing resolv.conf with other bits gets the declared mode back.
    std::fs::set_permissions(
        "/etc/netns/path-a/resolv.conf",
        PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::write("/etc/netns/path-a/resolv.conf", "changed\n").expect("change resolv.conf");
    env.ok(&["apply"]);
    assert_eq!(mode(Path::new("/etc/netns/path-a/resolv.conf")), 0o644);
    env.ok(&["down", "--all"]);
}

/// CONFIG plus a bridge, a veth to the host with a port mapping and masquerade, and a veth
/// between namespaces, so host sysctls and the host table are written too.
const TRACED_CONFIG: &str = r#"
[namespaces.path-a]
sysctl = { "net.ipv4.ip_forward" = 1 }
dns = { nameservers = ["10.53.0.1"] }

[[namespaces.path-a.veth]]
name = "eth0"
peer = "ve-path-a"
addresses = ["10.88.0.2/30"]
peer_addresses = ["10.88.0.1/30"]
masquerade = true

[[namespaces.path-a.port_mapping]]
protocol = "tcp"
host_port = 8088
port = 80

[[namespaces.path-a.veth]]
name = "to-b"
peer = "to-a"
peer_namespace = "path-b"

[namespaces.path-b]
nftables = """
table inet path_b {
  chain input { type filter hook input priority 0; policy accept; }
}
"""

[[namespaces.path-b.veth]]
name = "eth0"
peer = "ve-path-b"
peer_bridge = "br-path"

[bridges.br-path]
addresses = ["10.89.0.1/24"]
"#;

/// Syscalls that change the file system, traced by [`writes_stay_in_netnsctl_dirs`].
const WRITE_SYSCALLS: &str = "trace=openat,openat2,open,creat,mkdir,mkdirat,unlink,unlinkat,\
rename,renameat,renameat2,rmdir,symlink,symlinkat,link,linkat,chmod,fchmodat,truncate,mount,umount2";

/// Directories netnsctl may change, and /proc/sys/net for sysctls. Sysctls inside namespaces
/// are written through a private proc instance, a mount attached nowhere, which `strace -y` names
/// from its own root: /sys/net/... (sysfs has no /sys/net, so nothing else matches).
const ALLOWED: [&str; 5] = [
    "/run/netns",
    "/run/netnsctl",
    "/etc/netns",
    "/proc/sys/net",
    "/sys/net",
];

fn is_allowed(path: &str) -> bool {
    ALLOWED.iter().any(|dir| {
        path == *dir
            || path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Returns the paths a strace line (with `-y`) changes, or nothing for reads.
fn changed_paths(line: &str) -> Vec<String> {
    let Some((call, rest)) = line.split_once('(') else {
        return Vec::new();
    };
    let opens = ["openat", "openat2", "open"];
    if opens.contains(&call)
        && !["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
            .iter()
            .any(|f| rest.contains(f))
    {
        return Vec::new();
    }
    // Arguments are `FD</dir>, "name"` pairs or absolute `"path"`s; join each pair.
    let mut paths = Vec::new();
    let mut directory: Option<String> = None;
    for argument in rest.split(", ") {
        if let Some(start) = argument.find('<') {
            directory = argument[start + 1..].split('>').next().map(str::to_owned);
        } else if let Some(quoted) = argument.strip_prefix('"') {
            let name = quoted.split('"').next().unwrap_or_default();
            match (name.starts_with('/'), directory.take()) {
                (true, _) => paths.push(name.to_owned()),
                (false, Some(dir)) => paths.push(format!("{dir}/{name}")),
                (false, None) => paths.push(format!("relative:{name}")),
            }
        }
    }
    if call == "mount" {
        // Only the target changes; the source is read.
        return paths.into_iter().skip(1).take(1).collect();
    }
    paths
}

#[test]
fn writes_stay_in_netnsctl_dirs() {
    if !require_root("writes_stay_in_netnsctl_dirs") {
        return;
    }
    let env = Env::new(TRACED_CONFIG);
    let prefix = env.path("trace");
    for args in [&["apply"][..], &["apply"][..], &["down", "--all"][..]] {
        let mut strace_args = vec!["-f", "-ff", "-y", "-qq", "-e", WRITE_SYSCALLS, "-o"];
        let prefix_text = prefix.display().to_string();
        strace_args.push(&prefix_text);
        let bin = support::netnsctl_bin().display().to_string();
        strace_args.push(&bin);
        let config = env.config.display().to_string();
        strace_args.extend(["-c", &config]);
        strace_args.extend_from_slice(args);
        run_ok("strace", &strace_args);
    }

    let mut changed = Vec::new();
    for entry in std::fs::read_dir(env.dir.path())
        .expect("list traces")
        .flatten()
    {
        if !entry.file_name().to_string_lossy().starts_with("trace.") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read trace");
        for line in text.lines() {
            changed.extend(changed_paths(line));
        }
    }
    assert!(
        changed
            .iter()
            .any(|path| path.starts_with("/etc/netns/path-a")),
        "trace parsing found nothing: {changed:?}"
    );
    assert!(
        changed
            .iter()
            .any(|path| path.starts_with("/proc/sys/net/ipv4/conf/ve-path-a/")),
        "the host sysctl of the port mapping was not traced: {changed:?}"
    );
    let outside: Vec<&String> = changed.iter().filter(|path| !is_allowed(path)).collect();
    assert!(
        outside.is_empty(),
        "writes outside the netnsctl directories: {outside:?}"
    );
}
