//! `exec`: runs a command inside a named namespace the way `ip netns exec` does.
//!
//! The steps follow iproute2's `netns_switch`: join the network namespace, unshare the mount
//! namespace, make `/` a slave mount so nothing propagates back, mount a fresh sysfs on /sys so
//! /sys/class/net shows the namespace's links, and bind every file in /etc/netns/NAME over the
//! file of the same name in /etc. Then privileges are dropped if asked and the command replaces
//! this process, so its exit status is the command's.
//!
//! This runs on the main thread of a process with no other threads, because `unshare(CLONE_NEWNS)`
//! fails in a multithreaded process.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{execvp, setgid, setgroups, setuid, User};

use super::netns;

fn context(err: nix::errno::Errno, what: String) -> io::Error {
    io::Error::new(
        io::Error::from(err).kind(),
        format!("{what}: {}", err.desc()),
    )
}

/// Switches the calling (single-threaded) process into namespace `name` with its /etc files.
pub fn enter(name: &str) -> io::Result<()> {
    let path = netns::netns_path(name);
    let file = netns::open_netns(&path)?;
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|err| context(err, format!("cannot enter namespace {name}")))?;
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|err| context(err, "cannot create a mount namespace".into()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|err| context(err, "cannot make / a slave mount".into()))?;

    let sys_flags = match statvfs("/sys") {
        Ok(stat) if stat.flags().contains(FsFlags::ST_RDONLY) => MsFlags::MS_RDONLY,
        _ => MsFlags::empty(),
    };
    // /sys may not be mounted at all (in some containers); a failed unmount is fine then.
    let _ = umount2("/sys", MntFlags::MNT_DETACH);
    mount(Some(name), "/sys", Some("sysfs"), sys_flags, None::<&str>)
        .map_err(|err| context(err, "cannot mount sysfs on /sys".into()))?;

    bind_etc_files(name);
    Ok(())
}

/// Binds /etc/netns/NAME/ENTRY over /etc/ENTRY for every entry. A missing target is reported
/// and skipped, as iproute2 does.
fn bind_etc_files(name: &str) {
    let dir = netns::etc_dir(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let source = entry.path();
        let target = Path::new("/etc").join(entry.file_name());
        if let Err(err) = mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            tracing::warn!(
                source = %source.display(),
                target = %target.display(),
                "cannot bind-mount over /etc: {}",
                err.desc()
            );
        }
    }
}

/// Drops to `user`: supplementary groups first, then the group id, then the user id, so that
/// no step runs with fewer privileges than the next one needs. `setuid` as root sets the real,
/// effective and saved user ids, and leaving uid 0 clears the capability sets, so the command
/// cannot switch back.
pub fn drop_privileges(account: &User) -> io::Result<()> {
    let user = &account.name;
    let name = CString::new(account.name.clone())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    let groups = nix::unistd::getgrouplist(&name, account.gid)
        .map_err(|err| context(err, format!("cannot list the groups of {user}")))?;
    setgroups(&groups).map_err(|err| context(err, "cannot set supplementary groups".into()))?;
    setgid(account.gid).map_err(|err| context(err, format!("cannot set gid {}", account.gid)))?;
    setuid(account.uid).map_err(|err| context(err, format!("cannot set uid {}", account.uid)))?;
    if setuid(nix::unistd::Uid::from_raw(0)).is_ok() && !account.uid.is_root() {
        return Err(io::Error::other(
            "privileges were not dropped: setuid(0) still succeeds",
        ));
    }
    // SAFETY: single-threaded at this point; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("HOME", &account.dir);
        std::env::set_var("USER", &account.name);
        std::env::set_var("LOGNAME", &account.name);
    }
    Ok(())
}

/// Looks up a user by name, or by numeric id when `user` is all digits; `Ok(None)` when no such
/// user exists.
pub fn lookup_user(user: &str) -> io::Result<Option<User>> {
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    };
    found.map_err(|err| context(err, format!("cannot look up user {user}")))
}

/// Replaces this process with `command`. Returns only on failure, with the exit status to use:
/// 127 when the command is not found, 126 when it cannot be run.
pub fn exec_command(command: &[String]) -> (io::Error, u8) {
    let args: Result<Vec<CString>, _> = command
        .iter()
        .map(|arg| CString::new(arg.as_str()))
        .collect();
    let args = match args {
        Ok(args) if !args.is_empty() => args,
        _ => {
            return (
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "invalid command: empty or contains NUL",
                ),
                2,
            )
        }
    };
    let err = match execvp(&args[0], &args) {
        Err(err) => err,
        Ok(never) => match never {},
    };
    let status = if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    };
    (context(err, format!("cannot run {}", command[0])), status)
}
