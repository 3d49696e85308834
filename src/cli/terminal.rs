//! Colour and the progress line, used only when the output is a terminal.
//!
//! Colour follows the NO_COLOR convention (no-color.org): a non-empty `NO_COLOR`, or
//! `TERM=dumb`, turns it off. Output to a pipe or file is plain text, byte for byte the same
//! as without these features.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::Duration;

/// Checks whether `stream` gets colour: it is a terminal and the environment allows colour.
pub fn colour_enabled(stream: &impl IsTerminal) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
    stream.is_terminal() && !no_color && !dumb
}

/// ANSI colours used in netnsctl's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Yellow,
    Red,
}

/// Wraps `text` in the SGR sequences of `colour` when `enabled`, and returns it unchanged
/// otherwise.
pub fn paint(text: &str, colour: Colour, enabled: bool) -> String {
    if !enabled {
        return text.to_owned();
    }
    let code = match colour {
        Colour::Green => 32,
        Colour::Yellow => 33,
        Colour::Red => 31,
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Time an apply runs before the progress line appears, so quick runs print no line at all.
const PROGRESS_DELAY: Duration = Duration::from_millis(500);
/// Time between redraws of the progress line.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Returns the progress line for `done` of `total` steps.
pub fn progress_text(done: usize, total: usize) -> String {
    format!("applying: {done}/{total} steps")
}

/// Runs `work` while a progress line on stderr shows `done()` of `total` steps, redrawn in
/// place. The line appears only when stdout and stderr are terminals and `work` is still
/// running after a short delay, and it is erased before this returns.
pub fn with_progress<T: Send>(
    total: usize,
    done: impl Fn() -> usize + Sync,
    work: impl FnOnce() -> T + Send,
) -> T {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) || total == 0 {
        return work();
    }
    let (finished, wait) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let done = &done;
        scope.spawn(move || {
            let timing = (PROGRESS_DELAY, PROGRESS_INTERVAL);
            draw_progress(total, done, &wait, timing, &mut std::io::stderr());
        });
        let result = work();
        drop(finished);
        result
    })
}

/// Redraws the progress line on `out` until the sender of `wait` is dropped, first after
/// `timing.0`, then every `timing.1`, and erases it at the end if it was drawn.
fn draw_progress(
    total: usize,
    done: &dyn Fn() -> usize,
    wait: &mpsc::Receiver<()>,
    timing: (Duration, Duration),
    out: &mut dyn Write,
) {
    let (mut timeout, interval) = timing;
    let mut drawn = false;
    // The sender is dropped, never used, so recv_timeout returns Err(Disconnected) at the end.
    while let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
        let _ = write!(out, "\r\x1b[K{}", progress_text(done().min(total), total));
        let _ = out.flush();
        drawn = true;
        timeout = interval;
    }
    if drawn {
        let _ = write!(out, "\r\x1b[K");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_disabled_is_plain() {
        assert_eq!(
            paint("vpn: create namespace", Colour::Green, false),
            "vpn: create namespace"
        );
    }

    #[test]
    fn paint_enabled_wraps_in_sgr() {
        assert_eq!(paint("x", Colour::Red, true), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn progress_text_counts() {
        assert_eq!(progress_text(3, 12), "applying: 3/12 steps");
    }

    #[test]
    fn progress_line_redrawn_then_erased() {
        let (finished, wait) = mpsc::channel::<()>();
        // done() drops the sender on its third call, which ends the loop without any timing.
        let calls = std::cell::Cell::new(0);
        let finished = std::cell::RefCell::new(Some(finished));
        let done = || {
            calls.set(calls.get() + 1);
            if calls.get() == 3 {
                finished.borrow_mut().take();
            }
            calls.get()
        };
        let mut out = Vec::new();
        draw_progress(5, &done, &wait, (Duration::ZERO, Duration::ZERO), &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        let expected = "\r\x1b[Kapplying: 1/5 steps\r\x1b[Kapplying: 2/5 steps\r\x1b[Kapplying: 3/5 steps\r\x1b[K";
        assert_eq!(text, expected);
    }

    #[test]
    fn progress_line_absent_when_work_ends_first() {
        let (finished, wait) = mpsc::channel::<()>();
        drop(finished);
        let mut out = Vec::new();
        draw_progress(5, &|| 0, &wait, (Duration::ZERO, Duration::ZERO), &mut out);
        assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn with_progress_returns_work_result() {
        // Test output is not a terminal, so this takes the plain path.
        assert_eq!(with_progress(5, || 0, || 42), 42);
    }
}
