//! NVIDIA GPU measurements through NVML while a run generates: a background thread samples the device's
//! memory used, utilisation and power every N ms, and the board's energy counter is read when each
//! generation starts and ends, which gives joules per generated token without sampling error.
//!
//! Where there is no NVIDIA GPU or driver, [`GpuMonitor::start_nvml`] says why and a run records no GPU
//! fields at all (absent, never zero). The samples come from a [`GpuReader`], so the aggregation is the
//! same code whether the reader is NVML or a test's fake.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One reading of the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuReading {
    pub memory_used_bytes: u64,
    /// Share of the last sample period in which a kernel ran, in percent.
    pub utilization_percent: u32,
    pub power_watts: f64,
}

/// Where readings come from: NVML on a real machine, a fake in tests.
pub trait GpuReader: Send + Sync + 'static {
    /// The device's name, for results.
    fn name(&self) -> String;
    fn read(&self) -> Result<GpuReading, String>;
    /// The board's energy counter in millijoules (since the driver loaded); `None` when the board has none.
    fn energy_millijoules(&self) -> Option<u64>;
}

/// An NVIDIA GPU read through NVML.
pub struct NvmlReader {
    nvml: nvml_wrapper::Nvml,
    /// NVML's index of the device (not always the CUDA device id).
    index: u32,
    name: String,
}

impl NvmlReader {
    /// The device a CUDA execution provider calls `cuda_device`: `CUDA_VISIBLE_DEVICES` (indices or UUIDs)
    /// is honoured; otherwise CUDA's device ids are taken to follow NVML's (PCI bus) order, which holds
    /// when `CUDA_DEVICE_ORDER=PCI_BUS_ID` and on single-GPU machines. Errors say why there is no device.
    pub fn open(cuda_device: u32) -> Result<NvmlReader, String> {
        let nvml = nvml_wrapper::Nvml::init()
            .map_err(|e| format!("NVML is not available (no NVIDIA driver on this machine?): {e}"))?;
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let (index, name) = {
            let device = match visible.as_deref().and_then(|v| v.split(',').nth(cuda_device as usize)) {
                Some(entry) if entry.trim().starts_with("GPU-") || entry.trim().starts_with("MIG-") => {
                    nvml.device_by_uuid(entry.trim())
                }
                Some(entry) => match entry.trim().parse::<u32>() {
                    Ok(index) => nvml.device_by_index(index),
                    Err(_) => {
                        return Err(format!("CUDA_VISIBLE_DEVICES entry `{entry}` is neither an index nor a UUID"));
                    }
                },
                None => nvml.device_by_index(cuda_device),
            }
            .map_err(|e| format!("NVML has no device for CUDA device {cuda_device}: {e}"))?;
            let index = device.index().map_err(|e| format!("NVML cannot index CUDA device {cuda_device}: {e}"))?;
            (index, device.name().unwrap_or_else(|_| "NVIDIA GPU".to_string()))
        };
        let reader = NvmlReader { nvml, index, name };
        reader.read()?;
        Ok(reader)
    }
}

impl GpuReader for NvmlReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn read(&self) -> Result<GpuReading, String> {
        let device = self.nvml.device_by_index(self.index).map_err(|e| e.to_string())?;
        let memory = device.memory_info().map_err(|e| format!("memory: {e}"))?;
        let utilization = device.utilization_rates().map_err(|e| format!("utilisation: {e}"))?;
        let power_mw = device.power_usage().map_err(|e| format!("power: {e}"))?;
        Ok(GpuReading {
            memory_used_bytes: memory.used,
            utilization_percent: utilization.gpu,
            power_watts: f64::from(power_mw) / 1e3,
        })
    }

    fn energy_millijoules(&self) -> Option<u64> {
        self.nvml.device_by_index(self.index).ok()?.total_energy_consumption().ok()
    }
}

/// What the GPU did over a stretch of time (one generation, or the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuStats {
    /// Readings the stretch holds.
    pub samples: usize,
    pub memory_used_max_bytes: u64,
    pub memory_used_mean_bytes: u64,
    pub utilization_mean_percent: f64,
    pub power_mean_watts: f64,
    pub power_max_watts: f64,
    /// From the board's energy counter; absent on boards without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_joules: Option<f64>,
}

impl GpuStats {
    /// Statistics of `readings`; `None` when there are none.
    pub fn of(readings: &[GpuReading], energy_joules: Option<f64>) -> Option<GpuStats> {
        if readings.is_empty() {
            return None;
        }
        let n = readings.len() as f64;
        Some(GpuStats {
            samples: readings.len(),
            memory_used_max_bytes: readings.iter().map(|r| r.memory_used_bytes).max().unwrap_or(0),
            memory_used_mean_bytes: (readings.iter().map(|r| r.memory_used_bytes as f64).sum::<f64>() / n) as u64,
            utilization_mean_percent: readings.iter().map(|r| f64::from(r.utilization_percent)).sum::<f64>() / n,
            power_mean_watts: readings.iter().map(|r| r.power_watts).sum::<f64>() / n,
            power_max_watts: readings.iter().map(|r| r.power_watts).fold(0.0, f64::max),
            energy_joules,
        })
    }
}

/// The GPU over one generation: its readings and energy, and energy per generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationGpu {
    #[serde(flatten)]
    pub stats: GpuStats,
    /// Board energy over the generation divided by its generated tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joules_per_token: Option<f64>,
}

/// The GPU over a whole run, for `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunGpu {
    pub device: String,
    pub sample_interval_ms: u64,
    /// Every reading of the run, generations or not.
    pub run: GpuStats,
    /// Board energy summed over the generations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_energy_joules: Option<f64>,
    /// That energy divided by all generated tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joules_per_token: Option<f64>,
    /// Readings that failed (the first error is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
}

/// The start of a generation: when, and the energy counter then.
#[derive(Debug, Clone, Copy)]
pub struct GpuMark {
    at: Instant,
    energy_mj: Option<u64>,
}

#[derive(Default)]
struct Log {
    readings: Vec<(Instant, GpuReading)>,
    first_error: Option<String>,
}

/// Samples a GPU on a background thread until dropped or finished.
pub struct GpuMonitor {
    reader: Arc<dyn GpuReader>,
    interval: Duration,
    log: Arc<Mutex<Log>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    generation_energy_mj: Option<u64>,
    generated_tokens: usize,
}

impl GpuMonitor {
    /// Starts sampling `reader` every `interval` (one reading at once, then one per interval).
    pub fn start(reader: Arc<dyn GpuReader>, interval: Duration) -> GpuMonitor {
        let log = Arc::new(Mutex::new(Log::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = {
            let (reader, log) = (Arc::clone(&reader), Arc::clone(&log));
            std::thread::Builder::new()
                .name("gpu-monitor".into())
                .spawn(move || {
                    loop {
                        let reading = reader.read();
                        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                        match reading {
                            Ok(r) => log.readings.push((Instant::now(), r)),
                            Err(e) => {
                                log.first_error.get_or_insert(e);
                            }
                        }
                        drop(log);
                        match stopped.recv_timeout(interval) {
                            Err(RecvTimeoutError::Timeout) => continue,
                            _ => break,
                        }
                    }
                })
                .ok()
        };
        GpuMonitor { reader, interval, log, stop: Some(stop), thread, generation_energy_mj: None, generated_tokens: 0 }
    }

    /// Monitors the NVIDIA GPU a CUDA execution provider calls `cuda_device`; the error is why it cannot.
    pub fn start_nvml(cuda_device: u32, interval: Duration) -> Result<GpuMonitor, String> {
        Ok(Self::start(Arc::new(NvmlReader::open(cuda_device)?), interval))
    }

    /// Call when a generation starts.
    pub fn mark(&self) -> GpuMark {
        GpuMark { at: Instant::now(), energy_mj: self.reader.energy_millijoules() }
    }

    /// Call when the generation that `start` marked has ended, with its generated tokens: the GPU over it.
    /// One reading is taken now, so a generation shorter than the interval still has one.
    pub fn generation(&mut self, start: GpuMark, tokens: usize) -> Option<GenerationGpu> {
        let energy_end = self.reader.energy_millijoules();
        let now_reading = self.reader.read().ok();
        let mut readings: Vec<GpuReading> = {
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.readings.iter().filter(|(at, _)| *at >= start.at).map(|(_, r)| *r).collect()
        };
        readings.extend(now_reading);
        let energy_mj = match (start.energy_mj, energy_end) {
            (Some(a), Some(b)) if b >= a => Some(b - a),
            _ => None,
        };
        if let Some(mj) = energy_mj {
            *self.generation_energy_mj.get_or_insert(0) += mj;
        }
        self.generated_tokens += tokens;
        let stats = GpuStats::of(&readings, energy_mj.map(|mj| mj as f64 / 1e3))?;
        let joules_per_token = stats.energy_joules.filter(|_| tokens > 0).map(|j| j / tokens as f64);
        Some(GenerationGpu { stats, joules_per_token })
    }

    /// Stops sampling; the GPU over the whole run. `None` when not a single reading succeeded.
    pub fn finish(mut self) -> Option<RunGpu> {
        self.stop_thread();
        let log = std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()));
        let readings: Vec<GpuReading> = log.readings.iter().map(|(_, r)| *r).collect();
        let energy = self.generation_energy_mj.map(|mj| mj as f64 / 1e3);
        Some(RunGpu {
            device: self.reader.name(),
            sample_interval_ms: self.interval.as_millis() as u64,
            run: GpuStats::of(&readings, None)?,
            generation_energy_joules: energy,
            joules_per_token: energy.filter(|_| self.generated_tokens > 0).map(|j| j / self.generated_tokens as f64),
            read_error: log.first_error,
        })
    }

    fn stop_thread(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for GpuMonitor {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fake GPU: the only mock in runner's tests, because this machine (and CI) has no NVIDIA GPU.
    /// Each reading advances a counter, so readings are distinguishable; energy grows 500 mJ per read.
    struct FakeGpu {
        reads: AtomicU64,
        energy_mj: AtomicU64,
        with_energy: bool,
    }

    impl FakeGpu {
        fn new(with_energy: bool) -> Arc<FakeGpu> {
            Arc::new(FakeGpu { reads: AtomicU64::new(0), energy_mj: AtomicU64::new(1_000_000), with_energy })
        }
    }

    impl GpuReader for FakeGpu {
        fn name(&self) -> String {
            "Fake GPU".into()
        }
        fn read(&self) -> Result<GpuReading, String> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(GpuReading {
                memory_used_bytes: (1 + n % 4) << 30,
                utilization_percent: 50 + (n % 2) as u32 * 40,
                power_watts: 100.0 + (n % 3) as f64 * 50.0,
            })
        }
        fn energy_millijoules(&self) -> Option<u64> {
            self.with_energy.then(|| self.energy_mj.fetch_add(500, Ordering::SeqCst))
        }
    }

    #[test]
    fn statistics_of_readings() {
        let r = |mem_gib: u64, util: u32, watts: f64| GpuReading {
            memory_used_bytes: mem_gib << 30,
            utilization_percent: util,
            power_watts: watts,
        };
        let stats = GpuStats::of(&[r(1, 10, 100.0), r(3, 90, 300.0), r(2, 50, 200.0)], Some(12.5)).unwrap();
        assert_eq!(stats.samples, 3);
        assert_eq!(stats.memory_used_max_bytes, 3 << 30);
        assert_eq!(stats.memory_used_mean_bytes, 2 << 30);
        assert_eq!(
            (stats.utilization_mean_percent, stats.power_mean_watts, stats.power_max_watts),
            (50.0, 200.0, 300.0)
        );
        assert_eq!(stats.energy_joules, Some(12.5));
        assert!(GpuStats::of(&[], Some(1.0)).is_none());
    }

    #[test]
    fn energy_per_token_comes_from_the_counter() {
        let fake = FakeGpu::new(true);
        // A long interval: the thread reads once at start, the rest comes from `generation`'s own reading.
        let mut monitor = GpuMonitor::start(fake.clone(), Duration::from_secs(3600));
        let mark = monitor.mark();
        let gpu = monitor.generation(mark, 10).unwrap();
        // The counter advanced 500 mJ between the two reads.
        assert_eq!(gpu.stats.energy_joules, Some(0.5));
        assert_eq!(gpu.joules_per_token, Some(0.05));
        assert!(gpu.stats.samples >= 1);
        let mark = monitor.mark();
        let none = monitor.generation(mark, 0).unwrap();
        assert_eq!(none.joules_per_token, None, "no tokens: no energy per token");
        let run = monitor.finish().unwrap();
        assert_eq!(run.device, "Fake GPU");
        assert_eq!(run.generation_energy_joules, Some(1.0));
        assert_eq!(run.joules_per_token, Some(0.1));
        assert_eq!(run.sample_interval_ms, 3_600_000);
        assert!(run.read_error.is_none());
    }

    #[test]
    fn background_thread_samples_until_finished() {
        let fake = FakeGpu::new(false);
        let monitor = GpuMonitor::start(fake.clone(), Duration::from_millis(1));
        // Wait for readings by count, not by time: the machine may be busy.
        while fake.reads.load(Ordering::SeqCst) < 5 {
            std::thread::yield_now();
        }
        let run = monitor.finish().unwrap();
        assert!(run.run.samples >= 5);
        assert_eq!(run.run.power_max_watts, 200.0);
        assert_eq!((run.generation_energy_joules, run.joules_per_token), (None, None));
        let after = fake.reads.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fake.reads.load(Ordering::SeqCst), after, "the thread stopped");
    }

    #[test]
    fn boards_without_an_energy_counter_give_no_energy_fields() {
        let mut monitor = GpuMonitor::start(FakeGpu::new(false), Duration::from_secs(3600));
        let mark = monitor.mark();
        let gpu = monitor.generation(mark, 5).unwrap();
        assert_eq!((gpu.stats.energy_joules, gpu.joules_per_token), (None, None));
        let json = serde_json::to_value(&gpu).unwrap();
        assert!(json.get("energy_joules").is_none() && json.get("joules_per_token").is_none(), "{json}");
        assert!(json.get("power_mean_watts").is_some(), "stats are flattened into the record: {json}");
    }

    /// On a machine without an NVIDIA GPU or driver (this one, CI) NVML is unavailable and says why.
    #[test]
    fn nvml_reports_why_it_is_unavailable_or_reads_a_real_gpu() {
        match GpuMonitor::start_nvml(0, Duration::from_millis(50)) {
            Err(reason) => {
                assert!(reason.contains("NVML") || reason.contains("CUDA device"), "{reason}");
                eprintln!("skipped the real-GPU half: {reason}");
            }
            Ok(mut monitor) => {
                let mark = monitor.mark();
                let gpu = monitor.generation(mark, 1).unwrap();
                assert!(gpu.stats.memory_used_max_bytes > 0);
                assert!(monitor.finish().is_some());
            }
        }
    }
}
