//! Resident-memory readings against real allocations. They measure the whole process, so they live in a
//! test binary of their own with a single test: other tests freeing memory on other threads would blur them.
//! The allocations are large (256 MiB) because some kernels batch each thread's RSS updates (up to 64 page
//! faults, which with transparent huge pages is 128 MiB) before /proc/self/status shows them.

use runner::memory::{PeakScope, current_rss_bytes, peak_rss_bytes, reset_peak};

#[test]
fn current_and_peak_memory_follow_allocations() {
    let before = current_rss_bytes().expect("/proc/self/status has VmRSS");
    let big = vec![1u8; 256 << 20];
    std::hint::black_box(&big);
    let with = current_rss_bytes().unwrap();
    assert!(with >= before + (100 << 20), "before {before}, with {with}");
    drop(big);

    if reset_peak() == PeakScope::Cumulative {
        eprintln!("skipped the peak reset: this kernel does not allow resetting it through /proc/self/clear_refs");
        return;
    }
    let before = peak_rss_bytes().unwrap();
    let big = vec![1u8; 256 << 20];
    std::hint::black_box(&big);
    let during = peak_rss_bytes().unwrap();
    assert!(during >= before + (100 << 20), "before {before}, during {during}");
    drop(big);
    reset_peak();
    assert!(peak_rss_bytes().unwrap() < during);
}
