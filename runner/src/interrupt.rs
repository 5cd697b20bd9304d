//! Ctrl-C (SIGINT) and SIGTERM while a run's samples are running: the first signal asks the run to stop
//! after the samples in progress, so that its summary says `interrupted`, holds the aggregates of every
//! finished sample, and `--resume` continues it; a second signal ends the process at once. Outside the
//! sample loop (loading, between the runs of a sweep) a signal ends the process at once, as it always did:
//! there is nothing to finish, and every finished sample is on disk either way.
//!
//! The handler only touches atomics and calls `write` and `_exit`, the async-signal-safe subset. A signal
//! the parent chose to ignore (a job started in the background by a non-interactive shell ignores SIGINT)
//! stays ignored, as Python and the shells themselves do.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a run stopped by a signal: 128 + SIGINT, what shells report for Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// A run's samples are running: a first signal asks them to stop instead of ending the process.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// A signal asked the run to stop; stays set for the rest of the process (a sweep stops too).
static REQUESTED: AtomicBool = AtomicBool::new(false);

const STOPPING: &[u8] = b"\nInterrupted: stopping after the samples in progress; every finished sample is kept. \
A second Ctrl-C stops at once.\n";
const STOPPED: &[u8] = b"\nStopped at once. Every finished sample is kept in samples.jsonl; `--resume` with the same \
--out continues the run.\n";

extern "C" fn on_signal(_signal: libc::c_int) {
    let first = ACTIVE.load(Ordering::SeqCst) && !REQUESTED.swap(true, Ordering::SeqCst);
    let message = if first { STOPPING } else { STOPPED };
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a static byte string.
    unsafe {
        libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len());
        if !first {
            libc::_exit(EXIT_INTERRUPTED);
        }
    }
}

/// Installs the handler for SIGINT and SIGTERM, once per process (later calls do nothing).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: sigaction with a zeroed struct and an empty mask; the handler is async-signal-safe.
            unsafe {
                let mut current: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 || current.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Whether a signal asked the run (and the sweep around it) to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// While it lives, a first signal asks the samples to stop rather than ending the process.
pub struct SamplesRunning(());

impl SamplesRunning {
    pub fn start() -> Self {
        install();
        ACTIVE.store(true, Ordering::SeqCst);
        SamplesRunning(())
    }
}

impl Drop for SamplesRunning {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
    }
}
