//! Resident memory of this process, read from /proc/self/status: the current size (VmRSS) at the stages a
//! run reports (after model load, after prefill, after generation) and the peak (VmHWM). Linux lets a
//! process reset its peak to the current size through /proc/self/clear_refs, so each sample's peak is
//! measured on its own; where the kernel refuses, the peak covers the whole run so far and results say so.

use std::fs;

use serde::{Deserialize, Serialize};

/// What a sample's peak covers: the sample alone, or everything since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeakScope {
    /// The high-water mark was reset when the sample started.
    PerSample,
    /// The kernel refused the reset: the peak is the process's peak so far (still an upper bound).
    Cumulative,
}

/// Resets the high-water mark to the current resident size. Returns whether the kernel allowed it; when it
/// did not, later peaks are cumulative.
pub fn reset_peak() -> PeakScope {
    match fs::write("/proc/self/clear_refs", "5") {
        Ok(()) => PeakScope::PerSample,
        Err(_) => PeakScope::Cumulative,
    }
}

/// The peak resident set size since the last reset (or process start), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// The resident set size now, in bytes.
pub fn current_rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let status = "Name:\trunner\nVmHWM:\t  123456 kB\nVmRSS:\t   4096 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(123456));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(4096));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }
}
