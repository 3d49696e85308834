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
        scope.spawn(move || draw_progress(total, done, &wait));
        let result = work();
        drop(finished);
        result
    })
}

fn draw_progress(total: usize, done: &dyn Fn() -> usize, wait: &mpsc::Receiver<()>) {
    let mut timeout = PROGRESS_DELAY;
    let mut drawn = false;
    // The sender is dropped, never used, so recv_timeout returns Err(Disconnected) at the end.
    while let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[K{}",
            progress_text(done().min(total), total)
        );
        let _ = stderr.flush();
        drawn = true;
        timeout = PROGRESS_INTERVAL;
    }
    if drawn {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K");
        let _ = stderr.flush();
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
    fn with_progress_returns_work_result() {
        // Test output is not a terminal, so this takes the plain path.
        assert_eq!(with_progress(5, || 0, || 42), 42);
    }
}
