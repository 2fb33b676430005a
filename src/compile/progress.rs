//! Word on stderr while a load waits on a long compilation, so that the cold start of a large
//! component does not look like a hang: after a second (`FUNCS_PROGRESS_MS`) a line says what
//! is compiling and whether from the artefact cache, and another how long it took
//! (`FUNCS_PROGRESS_MS=0`: for every compilation). `FUNCS_QUIET` (any value) silences both.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The wait before saying anything, unless `FUNCS_PROGRESS_MS` gives another.
const DEFAULT_AFTER_MS: u64 = 1000;

/// Says `what` on stderr if it is still going on after the wait; ends when dropped.
pub(super) struct Progress {
    /// Dropped to wake the thread early.
    stop: Option<Sender<()>>,
    /// Whether it said something, when it is joined.
    thread: Option<JoinHandle<bool>>,
    /// Said without a thread (no wait).
    said: bool,
    started: Instant,
    what: String,
}

impl Progress {
    /// Starts watching `what` (`compiling `ns:name` (3.4 MiB, not in the artefact cache)`).
    pub(super) fn start(what: String) -> Progress {
        let mut progress = Progress {
            stop: None,
            thread: None,
            said: false,
            started: Instant::now(),
            what,
        };
        if std::env::var_os("FUNCS_QUIET").is_some() {
            return progress;
        }
        let after = std::env::var("FUNCS_PROGRESS_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_AFTER_MS);
        let line = format!("funcs: {} ...", progress.what);
        if after == 0 {
            eprintln!("{line}");
            progress.said = true;
            return progress;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        // No thread, no word: the compilation matters more than the message.
        progress.thread = std::thread::Builder::new()
            .name("funcs-progress".into())
            .spawn(move || {
                let late = matches!(
                    stopped.recv_timeout(Duration::from_millis(after)),
                    Err(RecvTimeoutError::Timeout)
                );
                if late {
                    eprintln!("{line}");
                }
                late
            })
            .ok();
        progress.stop = Some(stop);
        progress
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        let said = match self.thread.take() {
            Some(thread) => thread.join().unwrap_or(false),
            None => self.said,
        };
        if said {
            eprintln!(
                "funcs: {}: done in {:.1} s",
                self.what,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
