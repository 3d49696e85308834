//! Named network namespaces, registered at /run/netns/NAME as iproute2 does.
//!
//! `setns` and `unshare(CLONE_NEWNET)` change only the calling thread, so every switch happens on
//! a short-lived thread made for it ([`in_new_netns`], [`in_netns`]); the main thread and any
//! other thread stay in the namespace they started in. Sockets opened on such a thread stay bound
//! to its namespace and can be used from anywhere after the thread ends.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::statfs::{statfs, NSFS_MAGIC};

/// Directory of namespace files, as iproute2 uses it.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Directory of per-namespace /etc files that `ip netns exec` bind-mounts over /etc.
pub const NETNS_ETC_DIR: &str = "/etc/netns";

/// Returns /run/netns/NAME.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Returns /etc/netns/NAME.
pub fn etc_dir(name: &str) -> PathBuf {
    Path::new(NETNS_ETC_DIR).join(name)
}

/// What is at /run/netns/NAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsFile {
    Missing,
    /// A mounted namespace: device and inode number identify the namespace.
    Attached {
        dev: u64,
        ino: u64,
    },
    /// A file that is not a namespace mount, left by a crash or by another tool.
    Stale,
}

/// Looks at /run/netns/NAME.
pub fn inspect(path: &Path) -> io::Result<NetnsFile> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(NetnsFile::Missing),
        Err(err) => return Err(err),
    };
    if meta.file_type().is_symlink() {
        return Ok(NetnsFile::Stale);
    }
    // Every namespace file is an inode of the one nsfs file system. A file on the device of this
    // process's namespace file is therefore a namespace, and anything else needs statfs.
    let on_nsfs = host_namespaces()
        .first()
        .is_some_and(|&(dev, _)| dev == meta.dev())
        || statfs(path).map_err(io::Error::from)?.filesystem_type() == NSFS_MAGIC;
    if on_nsfs {
        // The final component is not followed as a symlink, but the mount on it is crossed, so
        // `meta` is the namespace's own inode.
        Ok(NetnsFile::Attached {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    } else {
        Ok(NetnsFile::Stale)
    }
}

fn errno_context(err: Errno, what: String) -> io::Error {
    io::Error::new(
        io::Error::from(err).kind(),
        format!("{what}: {}", err.desc()),
    )
}

/// Makes /run/netns exist and be a shared mount point, so namespace mounts made later are seen
/// in every mount namespace that has a copy of it (systemd units with private mounts included).
/// iproute2 does the same: make it shared, and if it is not a mount point yet, bind-mount it
/// onto itself first.
pub fn prepare_run_dir() -> io::Result<()> {
    super::files::create_dir_all(Path::new(NETNS_RUN_DIR), 0o755)?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => return Ok(()),
        Err(Errno::EINVAL) => {}
        Err(err) => {
            return Err(errno_context(
                err,
                format!("cannot make {NETNS_RUN_DIR} shared"),
            ))
        }
    }
    mount(
        Some(NETNS_RUN_DIR),
        NETNS_RUN_DIR,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|err| {
        errno_context(
            err,
            format!("cannot bind-mount {NETNS_RUN_DIR} onto itself"),
        )
    })?;
    shared().map_err(|err| errno_context(err, format!("cannot make {NETNS_RUN_DIR} shared")))
}

/// Runs `f` on a new thread and returns its result. The thread may switch namespaces: it ends
/// when `f` returns, so no other code ever runs in the namespace it switched to.
pub fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Creates a network namespace, registers it at `path`, and runs `f` inside it on a dedicated
/// thread. `path` must not exist. On failure before `f` runs, the file is removed again.
pub fn in_new_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    on_thread(|| {
        // Mode 0 like iproute2: the file only serves as a mount point.
        let file = open(
            path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| errno_context(err, format!("cannot create {}", path.display())))?;
        drop(file);
        let attach = || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|err| errno_context(err, "cannot create a network namespace".into()))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|err| {
                errno_context(
                    err,
                    format!("cannot bind-mount the namespace at {}", path.display()),
                )
            })
        };
        if let Err(err) = attach() {
            let _ = std::fs::remove_file(path);
            return Err(err);
        }
        Ok(f())
    })
}

/// Bind-mounts the network namespace of process `pid` at `path`, like `ip netns attach`.
pub fn attach_pid(path: &Path, pid: u32) -> io::Result<()> {
    let source = format!("/proc/{pid}/ns/net");
    let file = open(
        path,
        OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| errno_context(err, format!("cannot create {}", path.display())))?;
    drop(file);
    mount(
        Some(source.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|err| {
        let _ = std::fs::remove_file(path);
        errno_context(
            err,
            format!("cannot bind-mount {source} at {}", path.display()),
        )
    })
}

/// Opens a namespace file for `setns`.
pub fn open_netns(path: &Path) -> io::Result<File> {
    File::open(path)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot open {}: {err}", path.display())))
}

/// Runs `f` inside the namespace at `path` on a dedicated thread.
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = open_netns(path)?;
    on_thread(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|err| {
            errno_context(
                err,
                format!("cannot enter the namespace at {}", path.display()),
            )
        })?;
        Ok(f())
    })
}

/// Unregisters the namespace at `path`: lazy unmount, then unlink, as `ip netns delete` does.
/// The namespace itself lives on while processes or sockets still hold it. Either step may
/// already have happened. A symlink at `path` is removed itself; what it points to is never
/// unmounted.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(err) => {
            return Err(errno_context(
                err,
                format!("cannot unmount {}", path.display()),
            ))
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io::Error::new(
            err.kind(),
            format!("cannot remove {}: {err}", path.display()),
        )),
    }
}

/// Returns the device and inode of the network namespace of the process's main thread, which
/// `/proc/self/ns/net` shows whichever thread reads it.
pub fn process_netns() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/self/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}

/// Returns the device and inode of the network namespaces netnsctl must never manage as a
/// named namespace: PID 1's (the host's) and the one netnsctl itself runs in.
/// Both are read once per process: neither changes while netnsctl runs, because only
/// short-lived threads switch namespaces.
pub fn host_namespaces() -> &'static [(u64, u64)] {
    static HOST: std::sync::OnceLock<Vec<(u64, u64)>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/1/ns/net", "/proc/self/ns/net"]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| (meta.dev(), meta.ino()))
            .collect()
    })
}

/// Returns the device and inode of PID 1's network namespace.
pub fn init_netns() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/1/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}

/// Returns the device and inode of the network namespace of process `pid`.
pub fn pid_netns(pid: u32) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/net"))?;
    Ok((meta.dev(), meta.ino()))
}

/// Returns the device and inode of the host network namespace (see [`set_host_netns`]).
pub fn host_netns_id() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(host_netns_path())?;
    Ok((meta.dev(), meta.ino()))
}

/// Returns the device and inode of the calling thread's network namespace.
pub fn current_thread_netns() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}

/// Network namespace file of the host namespace, set by [`set_host_netns`].
static HOST_NETNS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes the network namespace of process `pid` the host namespace for this run: the namespace
/// of bridges, host veth ends, the host nftables table and `underlay = "host"`. The namespace is
/// opened now and kept open, so it stays the same even if the process exits. Without a call, the
/// host namespace is the one netnsctl started in.
pub fn set_host_netns(pid: u32) -> io::Result<()> {
    let file = open_netns(Path::new(&format!("/proc/{pid}/ns/net")))?;
    let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
    let _ = HOST_NETNS.set(PathBuf::from(format!("/proc/self/fd/{fd}")));
    Ok(())
}

/// Returns a path that opens the host network namespace.
pub fn host_netns_path() -> PathBuf {
    HOST_NETNS
        .get()
        .cloned()
        // The main thread never switches namespaces, so the thread group's namespace link is
        // the one netnsctl started in.
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"))
}

/// Runs `f` on a dedicated thread inside the host network namespace.
pub fn in_host_netns<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    in_netns(&host_netns_path(), f)
}
