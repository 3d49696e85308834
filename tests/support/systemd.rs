//! A throwaway container with systemd as PID 1, for tests of the generated units.
//!
//! tests/support/systemd-container.sh builds the container (see its header). This module starts
//! it in a cgroup of its own, waits for boot and runs commands inside with `nsenter`. `Drop` kills
//! it, so the container dies also when a test fails.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The systemd binary booted in the container.
pub const SYSTEMD: &str = "/lib/systemd/systemd";

/// Upper bound for boot and for waiting on a unit state, so a broken container fails the test
/// instead of hanging it.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

static CONTAINERS: AtomicUsize = AtomicUsize::new(0);

/// A running container. Files go in through /proc/PID/root, commands through `nsenter`.
pub struct Container {
    /// The container script, then `unshare`; its death kills the container.
    launcher: Child,
    /// systemd, as seen from outside the container.
    pub pid: u32,
    cgroup: PathBuf,
    console: PathBuf,
    _dir: tempfile::TempDir,
}

/// Returns the directory of the calling process's cgroup in the cgroup v2 hierarchy.
fn own_cgroup_v2() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4))?
        })
        .expect("a cgroup v2 hierarchy is mounted");
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let path = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .expect("the process is in a cgroup v2 hierarchy");
    Path::new(mount).join(path.trim_start_matches('/'))
}

impl Container {
    /// Boots a container whose root gets the files under `setup` (relative path to contents)
    /// and the symlinks in `links` (relative path to target) before systemd starts.
    pub fn boot(setup: &[(&str, &str)], links: &[(&str, &str)]) -> Container {
        let dir = tempfile::Builder::new()
            .prefix("netnsctl-systemd-")
            .tempdir()
            .expect("temporary directory");
        let state = dir.path().join("state");
        let setup_dir = dir.path().join("setup");
        let console = dir.path().join("console.log");
        std::fs::create_dir(&state).expect("create state dir");
        std::fs::write(&console, "").expect("create console log");
        for (path, contents) in setup {
            let file = setup_dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).expect("create setup dir");
            std::fs::write(&file, contents).expect("write setup file");
        }
        for (path, target) in links {
            let link = setup_dir.join(path);
            std::fs::create_dir_all(link.parent().unwrap()).expect("create setup dir");
            std::os::unix::fs::symlink(target, &link).expect("create setup symlink");
        }
        std::fs::create_dir_all(&setup_dir).expect("create setup dir");

        remove_orphaned_cgroups();
        let number = CONTAINERS.fetch_add(1, Ordering::SeqCst);
        let cgroup = own_cgroup_v2().join(format!("netnsctl-test-{}-{number}", std::process::id()));
        std::fs::create_dir(&cgroup)
            .unwrap_or_else(|err| panic!("cannot create cgroup {}: {err}", cgroup.display()));

        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/systemd-container.sh");
        let mut command = Command::new(script);
        command
            .arg(&state)
            .arg(&cgroup)
            .arg(super::netnsctl_bin())
            .arg(&setup_dir)
            .arg(&console)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe. The launcher gets SIGKILL when the thread that
        // started it ends, so a test killed before Drop still takes the container down.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let launcher = command.spawn().expect("start the container script");
        let mut container = Container {
            pid: 0,
            launcher,
            cgroup,
            console,
            _dir: dir,
        };
        container.pid = container.wait_for_systemd();
        container.wait_booted();
        container
    }

    /// Waits until the launcher's child runs systemd; returns its PID.
    fn wait_for_systemd(&mut self) -> u32 {
        let launcher = self.launcher.id();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.launcher.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.launcher.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!(
                    "the container script exited with {status} before systemd started:\n{stderr}"
                );
            }
            let children =
                std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children"))
                    .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                // /proc/PID/exe of a process in another root shows no usable path, so the
                // command line shows when the container script has become systemd.
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if cmdline.starts_with(SYSTEMD.as_bytes()) {
                    return pid;
                }
            }
            assert!(
                start.elapsed() < WAIT_LIMIT,
                "systemd did not start in the container"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until systemd has finished booting: `systemctl is-system-running` prints running
    /// or degraded.
    fn wait_booted(&self) {
        let start = Instant::now();
        loop {
            let output = self
                .command(&["systemctl", "is-system-running", "--wait"])
                .output();
            let state = output
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            if state == "running" || state == "degraded" {
                return;
            }
            assert!(
                start.elapsed() < WAIT_LIMIT,
                "systemd did not finish booting (state {state:?}); console:\n{}",
                self.console_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Returns what systemd logged so far.
    pub fn console_log(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Returns the host path of a path inside the container.
    pub fn path(&self, path: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid)).join(path.trim_start_matches('/'))
    }

    /// Writes a file inside the container, creating its directory.
    pub fn write(&self, path: &str, contents: &str) {
        let path = self.path(path);
        std::fs::create_dir_all(path.parent().unwrap()).expect("create directory in container");
        std::fs::write(&path, contents)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    }

    /// Returns a command that runs `args` inside the container's namespaces.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args([
                "-t",
                &self.pid.to_string(),
                "-m",
                "-p",
                "-n",
                "-u",
                "-i",
                "-C",
                "-r",
                "-w",
                "--",
            ])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs a command inside the container and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run nsenter: {err}"));
        eprintln!(
            "# {}\n[status {:?}]\n{}{}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs a command inside the container, asserts success and returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed in the container: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `systemctl ARGS` inside the container and asserts success.
    pub fn systemctl(&self, args: &[&str]) -> String {
        let mut full = vec!["systemctl"];
        full.extend_from_slice(args);
        let output = self.run(&full);
        assert!(
            output.status.success(),
            "systemctl {args:?} failed: {}\njournal:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.journal()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Returns the journal of the container, for failure messages.
    pub fn journal(&self) -> String {
        let output = self
            .command(&[
                "journalctl",
                "--no-pager",
                "-n",
                "200",
                "-o",
                "short-monotonic",
            ])
            .output();
        output.map_or_else(
            |err| format!("journalctl failed: {err}"),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// Returns the value of one unit property, e.g. `MainPID` or `ActiveState`.
    pub fn property(&self, unit: &str, property: &str) -> String {
        self.systemctl(&["show", "-P", property, unit])
            .trim()
            .to_owned()
    }

    /// Waits until a unit's `ActiveState` is `state`, as stop and restart jobs of dependent
    /// units may still run when systemctl returns.
    pub fn wait_state(&self, unit: &str, state: &str) {
        let start = Instant::now();
        loop {
            let current = self.property(unit, "ActiveState");
            if current == state {
                return;
            }
            assert!(
                start.elapsed() < WAIT_LIMIT,
                "{unit} stayed {current}, expected {state}; journal:\n{}",
                self.journal()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGKILL to PID 1 of the container's PID namespace kills every process in it.
        if self.pid != 0 {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
        remove_cgroup_tree(&self.cgroup);
    }
}

/// Removes the cgroups of containers whose test process is gone. Drop removes a container's
/// cgroup, but a test process killed with SIGKILL runs no Drop and leaves it empty behind.
fn remove_orphaned_cgroups() {
    let Ok(entries) = std::fs::read_dir(own_cgroup_v2()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("netnsctl-test-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            remove_cgroup_tree(&entry.path());
        }
    }
}

/// Removes a cgroup directory and the ones systemd made below it, deepest first. The kernel
/// releases a cgroup shortly after its last process is reaped, so EBUSY is retried for a while.
fn remove_cgroup_tree(root: &Path) {
    let mut dirs = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
        dirs.push(dir);
    }
    for dir in dirs.iter().rev() {
        let start = Instant::now();
        while let Err(err) = std::fs::remove_dir(dir) {
            if err.kind() == std::io::ErrorKind::NotFound {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                eprintln!("warning: cannot remove cgroup {}: {err}", dir.display());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
