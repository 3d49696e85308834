//! In-process nftables through libnftables, the library the `nft` binary is built on. Compiled
//! only with the `libnftables` cargo feature; without it, [`super::nft`] runs the `nft` binary.
//!
//! Linking libnftables (GPL-2.0-or-later) makes the built binary a combined work under the GPL.
//!
//! A context opens its netlink socket in the network namespace of the calling thread, so every
//! call creates a fresh context on the thread that is inside the target namespace. The script
//! goes through a memfd and `nft_run_cmd_from_filename`, like `nft -f FILE`: libnftables 1.0.6
//! prints the wrong source line and no line number for errors in scripts run from a buffer.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_uint};
use std::sync::Mutex;

use nix::sys::memfd::{memfd_create, MFdFlags};

#[repr(C)]
struct NftCtx {
    _private: [u8; 0],
}

const NFT_CTX_DEFAULT: u32 = 0;
const NFT_CTX_OUTPUT_STATELESS: c_uint = 1 << 2;

#[link(name = "nftables")]
extern "C" {
    fn nft_ctx_new(flags: u32) -> *mut NftCtx;
    fn nft_ctx_free(ctx: *mut NftCtx);
    fn nft_ctx_set_dry_run(ctx: *mut NftCtx, dry: bool);
    fn nft_ctx_output_get_flags(ctx: *mut NftCtx) -> c_uint;
    fn nft_ctx_output_set_flags(ctx: *mut NftCtx, flags: c_uint);
    fn nft_ctx_buffer_output(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_buffer_error(ctx: *mut NftCtx) -> c_int;
    fn nft_ctx_get_output_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_ctx_get_error_buffer(ctx: *mut NftCtx) -> *const c_char;
    fn nft_run_cmd_from_filename(ctx: *mut NftCtx, filename: *const c_char) -> c_int;
}

/// Serializes all use of libnftables, so netnsctl does not rely on contexts being usable from
/// several threads at once.
// NOTE: whether parallel contexts are safe is untested. The kernel commit runs under this lock
// too, so rulesets of different namespaces load one at a time.
static LIBRARY: Mutex<()> = Mutex::new(());

/// What one run printed.
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Frees the context when dropped, also on early returns.
struct Context(*mut NftCtx);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from nft_ctx_new and is freed exactly once.
        unsafe { nft_ctx_free(self.0) }
    }
}

fn buffer_text(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: libnftables returns a NUL-terminated buffer owned by the live context.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// Runs an nft script in the calling thread's network namespace, as `nft -f FILE` does (with
/// `--check` when `dry_run`, `--stateless` when `stateless`). Returns the name the script had,
/// for the caller to replace in error messages, and what nft printed.
pub fn run(script: &str, dry_run: bool, stateless: bool) -> std::io::Result<(String, Output)> {
    let memfd = memfd_create(c"netnsctl-nft", MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(script.as_bytes())?;
    let name = format!("/proc/self/fd/{}", file.as_raw_fd());
    let c_name = CString::new(name.clone()).expect("a /proc path has no NUL byte");

    let _guard = LIBRARY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: plain constructor; a null return is handled below.
    let raw = unsafe { nft_ctx_new(NFT_CTX_DEFAULT) };
    if raw.is_null() {
        return Err(std::io::Error::other(
            "libnftables could not create a context",
        ));
    }
    let context = Context(raw);
    // SAFETY: the context is valid until `context` is dropped at the end of this function, and
    // the buffers read below belong to it.
    let output = unsafe {
        nft_ctx_buffer_output(context.0);
        nft_ctx_buffer_error(context.0);
        nft_ctx_set_dry_run(context.0, dry_run);
        if stateless {
            let flags = nft_ctx_output_get_flags(context.0);
            nft_ctx_output_set_flags(context.0, flags | NFT_CTX_OUTPUT_STATELESS);
        }
        let status = nft_run_cmd_from_filename(context.0, c_name.as_ptr());
        Output {
            success: status == 0,
            stdout: buffer_text(nft_ctx_get_output_buffer(context.0)),
            stderr: buffer_text(nft_ctx_get_error_buffer(context.0)),
        }
    };
    drop(context);
    drop(file);
    Ok((name, output))
}
