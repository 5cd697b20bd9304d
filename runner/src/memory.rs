//! Peak resident memory of this process, per sample: Linux keeps a high-water mark (VmHWM) that can be
//! reset through /proc/self/clear_refs, so each sample's peak is measured on its own.

use std::fs;

/// Resets the high-water mark to the current resident size. Fails silently where the kernel does not
/// allow it: the peak then covers the run so far, which is still an upper bound.
pub fn reset_peak() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since the last reset, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_follows_allocations_and_resets() {
        reset_peak();
        let before = peak_rss_bytes().unwrap();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let during = peak_rss_bytes().unwrap();
        assert!(during >= before + (60 << 20), "before {before}, during {during}");
        drop(big);
        reset_peak();
        assert!(peak_rss_bytes().unwrap() < during);
    }
}
