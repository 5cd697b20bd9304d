//! Memory bandwidth measured on the spot, STREAM-style: copy (`a = b`) and triad (`a = b + s * c`) over arrays
//! far larger than any cache, with 1 and with N threads each taking a contiguous share of the arrays. The best
//! of several passes is kept, as STREAM does: the bandwidth limit is what the hardware can reach, and a pass
//! slowed by other processes says nothing about that limit. Bytes count what the loop reads and writes
//! (copy 16 bytes per element, triad 24), without STREAM's write-allocate traffic.

use std::time::Instant;

use serde_json::{Value, json};

/// Elements per array: 3 x 8M f64 = 192 MiB, well beyond the last-level cache of any machine this runs on.
const ELEMENTS: usize = 8 << 20;

/// GB/s of one kernel at one thread count.
#[derive(Debug, Clone, Copy)]
pub struct Bandwidth {
    pub threads: usize,
    pub copy_gb_s: f64,
    pub triad_gb_s: f64,
}

impl Bandwidth {
    /// The figure a decode step's weight streaming is compared with: triad, the kernel that reads two arrays
    /// while writing one, as a matmul over weights mostly reads.
    pub fn limit_gb_s(&self) -> f64 {
        self.copy_gb_s.max(self.triad_gb_s)
    }

    pub fn to_json(self) -> Value {
        json!({"threads": self.threads, "copy_gb_s": round2(self.copy_gb_s), "triad_gb_s": round2(self.triad_gb_s)})
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Runs `kernel` on `threads` contiguous chunks of the arrays at once; returns the seconds it took.
fn timed_pass(a: &mut [f64], b: &[f64], c: &[f64], threads: usize, kernel: fn(&mut [f64], &[f64], &[f64])) -> f64 {
    let chunk = a.len().div_ceil(threads);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for ((a, b), c) in a.chunks_mut(chunk).zip(b.chunks(chunk)).zip(c.chunks(chunk)) {
            scope.spawn(move || kernel(a, b, c));
        }
    });
    started.elapsed().as_secs_f64()
}

fn copy(a: &mut [f64], b: &[f64], _: &[f64]) {
    a.copy_from_slice(b);
}

fn triad(a: &mut [f64], b: &[f64], c: &[f64]) {
    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
        *a = b + 3.0 * c;
    }
}

/// Best-of-`passes` copy and triad bandwidth with `threads` threads.
pub fn measure(threads: usize, passes: usize) -> Bandwidth {
    let mut a = vec![0.0f64; ELEMENTS];
    let b: Vec<f64> = (0..ELEMENTS).map(|i| i as f64).collect();
    let c: Vec<f64> = (0..ELEMENTS).map(|i| (i % 7) as f64).collect();
    // Touch the destination once so page faults are not timed.
    timed_pass(&mut a, &b, &c, threads, copy);
    let bytes = (ELEMENTS * std::mem::size_of::<f64>()) as f64;
    let best = |kernel, arrays: f64, a: &mut Vec<f64>| {
        let fastest = (0..passes.max(1)).map(|_| timed_pass(a, &b, &c, threads, kernel)).fold(f64::INFINITY, f64::min);
        arrays * bytes / fastest / 1e9
    };
    let copy_gb_s = best(copy, 2.0, &mut a);
    let triad_gb_s = best(triad, 3.0, &mut a);
    std::hint::black_box(&a);
    Bandwidth { threads, copy_gb_s, triad_gb_s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_compute_what_stream_defines() {
        let b = [1.0, 2.0, 3.0];
        let c = [4.0, 5.0, 6.0];
        let mut a = [0.0; 3];
        triad(&mut a, &b, &c);
        assert_eq!(a, [13.0, 17.0, 21.0]);
        copy(&mut a, &b, &c);
        assert_eq!(a, b);
    }
}
