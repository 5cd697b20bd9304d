//! Logging to the run's log through the host's `log` import. Natively (unit tests, the harness) there is
//! no host, so lines go to standard error instead.

use crate::LogLevel;

/// Writes `message` to the run's log at `level`.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::runner::scenario::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[scenario {level:?}] {message}");
}

pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}
