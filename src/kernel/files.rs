//! File writes that never follow symlinks.
//!
//! Every path netnsctl writes is resolved with `openat2(RESOLVE_NO_SYMLINKS)`, so a symlink
//! planted anywhere on the path (at /etc/netns/NAME/resolv.conf, at /run/netnsctl, ...) makes
//! the write fail with ELOOP instead of redirecting it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{ftruncate, unlinkat, UnlinkatFlags};

fn open_no_symlinks(path: &Path, flags: OFlag, mode: u32) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(AT_FDCWD, path, how)
}

fn with_path(err: Errno, what: &str, path: &Path) -> io::Error {
    let hint = if err == Errno::ELOOP {
        " (a symlink is on the path; netnsctl does not follow symlinks when writing)"
    } else {
        ""
    };
    io::Error::new(
        io::Error::from(err).kind(),
        format!("{what} {}: {}{hint}", path.display(), err.desc()),
    )
}

/// Creates `path` and its missing parents with `mode`, refusing symlinks on the way.
pub fn create_dir_all(path: &Path, mode: u32) -> io::Result<()> {
    let mut current = std::path::PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir => continue,
            Component::Normal(part) => current.push(part),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "refusing path {} with '.' or '..' components",
                        path.display()
                    ),
                ))
            }
        }
        match open_no_symlinks(&current, OFlag::O_PATH | OFlag::O_DIRECTORY, 0) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(err) => return Err(with_path(err, "cannot open directory", &current)),
        }
        let parent = current.parent().unwrap_or(Path::new("/"));
        let parent_fd = open_no_symlinks(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)
            .map_err(|err| with_path(err, "cannot open directory", parent))?;
        let name = current.file_name().expect("a normal component has a name");
        match mkdirat(&parent_fd, name, Mode::from_bits_truncate(mode)) {
            Ok(()) => {
                // mkdirat applies the umask; set the mode exactly, through a descriptor opened
                // without following symlinks.
                let created = open_no_symlinks(&current, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                    .map_err(|err| with_path(err, "cannot open directory", &current))?;
                set_mode(&created, mode, &current)?;
            }
            Err(Errno::EEXIST) => {}
            Err(err) => return Err(with_path(err, "cannot create directory", &current)),
        }
    }
    Ok(())
}

/// Sets the permission bits of an open file to exactly `mode`, whatever the umask was.
pub fn set_mode(fd: &impl std::os::fd::AsFd, mode: u32, path: &Path) -> io::Result<()> {
    fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
        .map_err(|err| with_path(err, "cannot set the mode of", path))
}

/// Rewrites a regular file in place: truncate and write through the same inode, so bind mounts
/// of the file see the new content. Creates the file if it is missing, and sets its mode to
/// `mode` either way.
pub fn write_in_place(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader. Without one
    // the open fails with ENXIO; with one, the type check below rejects it.
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file; remove it", path.display()),
        )
    };
    let fd = match open_no_symlinks(
        path,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NONBLOCK,
        mode,
    ) {
        Ok(fd) => fd,
        Err(Errno::ENXIO) => return Err(not_regular()),
        Err(err) => return Err(with_path(err, "cannot open", path)),
    };
    let stat = fstat(&fd).map_err(|err| with_path(err, "cannot stat", path))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(not_regular());
    }
    set_mode(&fd, mode, path)?;
    ftruncate(&fd, 0).map_err(|err| with_path(err, "cannot truncate", path))?;
    let mut file = File::from(fd);
    file.write_all(contents).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot write {}: {err}", path.display()),
        )
    })
}

/// Replaces a file atomically: writes a temporary file next to it and renames it over `path`.
/// `rename` replaces a symlink at `path` instead of following it.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let dir_fd = open_no_symlinks(dir, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)
        .map_err(|err| with_path(err, "cannot open directory", dir))?;
    let temp_name = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let temp_path = dir.join(&temp_name);
    let _ = unlinkat(&dir_fd, temp_name.as_str(), UnlinkatFlags::NoRemoveDir);
    let fd = open_no_symlinks(
        &temp_path,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        mode,
    )
    .map_err(|err| with_path(err, "cannot create", &temp_path))?;
    set_mode(&fd, mode, &temp_path)?;
    File::from(fd).write_all(contents)?;
    nix::fcntl::renameat(&dir_fd, temp_name.as_str(), &dir_fd, name)
        .map_err(|err| with_path(err, "cannot rename into place", path))
}

/// Replaces `path` with a symlink to `target` atomically: creates it under a temporary name next
/// to `path` and renames it over whatever is at `path`.
pub fn replace_symlink(path: &Path, target: &Path) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let dir_fd = open_no_symlinks(dir, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)
        .map_err(|err| with_path(err, "cannot open directory", dir))?;
    let temp_name = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let _ = unlinkat(&dir_fd, temp_name.as_str(), UnlinkatFlags::NoRemoveDir);
    nix::unistd::symlinkat(target, &dir_fd, temp_name.as_str())
        .map_err(|err| with_path(err, "cannot create symlink", &dir.join(&temp_name)))?;
    nix::fcntl::renameat(&dir_fd, temp_name.as_str(), &dir_fd, name)
        .map_err(|err| with_path(err, "cannot rename into place", path))
}

/// Reads a file without following symlinks. Returns `None` when it does not exist.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    // O_NONBLOCK keeps a FIFO planted at the path from blocking the open; the type check then
    // rejects it.
    match open_no_symlinks(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
        Ok(fd) => {
            let stat = fstat(&fd).map_err(|err| with_path(err, "cannot stat", path))?;
            if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a regular file; remove it", path.display()),
                ));
            }
            // Sized from the fstat above: read_to_end on a File would ask for the size again.
            let size = stat.st_size.max(0) as usize;
            let mut buf = vec![0; size + 1];
            let mut len = 0;
            let mut file = File::from(fd);
            loop {
                if len == buf.len() {
                    buf.resize(len * 2, 0);
                }
                match file.read(&mut buf[len..]) {
                    Ok(0) => break,
                    Ok(n) => len += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
                // A short read that reached the size fstat reported is the end of the file, so
                // no second read is needed to see 0. Files that report size 0 (under /proc) are
                // read until a read returns 0.
                if size > 0 && len == size {
                    break;
                }
            }
            buf.truncate(len);
            Ok(Some(buf))
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(err) => Err(with_path(err, "cannot read", path)),
    }
}

/// A directory opened once without following symlinks, to remove entries of it without
/// resolving its path again for each one.
pub struct Dir {
    path: PathBuf,
    /// `None` when the directory does not exist: there is nothing to remove in it.
    fd: Option<OwnedFd>,
}

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = match open_no_symlinks(path, OFlag::O_PATH | OFlag::O_DIRECTORY, 0) {
            Ok(fd) => Some(fd),
            Err(Errno::ENOENT) => None,
            Err(err) => return Err(with_path(err, "cannot open directory", path)),
        };
        Ok(Dir {
            path: path.to_owned(),
            fd,
        })
    }

    /// Opens the subdirectory `name`, a single path component, without following symlinks.
    pub fn subdir(&self, name: &str) -> io::Result<Dir> {
        let path = self.path.join(name);
        let Some(fd) = &self.fd else {
            return Ok(Dir { path, fd: None });
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH);
        let fd = match openat2(fd, name, how) {
            Ok(fd) => Some(fd),
            Err(Errno::ENOENT) => None,
            Err(err) => return Err(with_path(err, "cannot open directory", &path)),
        };
        Ok(Dir { path, fd })
    }

    /// Removes the entry `name` (an empty directory with `dir`); a missing one is not an error.
    pub fn remove(&self, name: impl AsRef<OsStr>, dir: bool) -> io::Result<()> {
        let name = name.as_ref();
        let Some(fd) = &self.fd else {
            return Ok(());
        };
        let flag = if dir {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        match unlinkat(fd, name, flag) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(err) => Err(with_path(err, "cannot remove", &self.path.join(name))),
        }
    }
}

/// Removes a file (or an empty directory with `dir`); a missing one is not an error.
/// The parent is resolved without following symlinks.
pub fn remove(path: &Path, dir: bool) -> io::Result<()> {
    let Some(name) = path.file_name() else {
        return Ok(());
    };
    Dir::open(path.parent().unwrap_or(Path::new("/")))?.remove(name, dir)
}
