//! Progress on long work (a module upload, `--wait`, `rollout status`): a bar or a spinner on stderr when
//! edgectl talks to a person at a terminal, and nothing at all otherwise, so piped and scripted output stays
//! line-oriented and byte-for-byte what it was. [`Progress`] is a no-op handle in the second case: callers need
//! not ask.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressFinish, ProgressStyle};

/// A bar or a spinner, or nothing (not a terminal). Cloning shares the same bar.
#[derive(Clone, Default)]
pub struct Progress(Option<ProgressBar>);

/// True when both stdout and stderr are terminals: a pipe or a file on either side means a script is reading.
pub fn on_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

impl Progress {
    /// A bar over `total` bytes: `uploading tick.wasm [=====>    ] 1.2 MiB/4.0 MiB`.
    pub fn bytes(total: u64, message: impl Into<Cow<'static, str>>) -> Progress {
        if !on_terminal() {
            return Progress(None);
        }
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        // Dropped unfinished (an error returned early): cleared, so the error line stands alone.
        let bar = ProgressBar::new(total).with_style(style).with_message(message).with_finish(ProgressFinish::AndClear);
        Progress(Some(bar))
    }

    /// A spinner with a message that callers update (`1 of 3 replicas ready`), and the time elapsed.
    pub fn spinner(message: impl Into<Cow<'static, str>>) -> Progress {
        if !on_terminal() {
            return Progress(None);
        }
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_chars("|/-\\ ");
        let spinner =
            ProgressBar::new_spinner().with_style(style).with_message(message).with_finish(ProgressFinish::AndClear);
        spinner.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(spinner))
    }

    pub fn advance(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        if let Some(b) = &self.0 {
            b.set_message(message);
        }
    }

    /// A line of output: above the bar on a terminal, plainly on stdout otherwise.
    pub fn println(&self, line: &str) {
        match &self.0 {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }

    /// Removes the bar (what follows says how it ended).
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
