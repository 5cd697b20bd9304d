//! Where a result came from: the runner build, the machine, and content hashes of the model, scenario and
//! dataset, so every number in a report can be traced to exactly what produced it.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerInfo {
    pub version: String,
    /// The commit runner was built from (`-dirty` when it had uncommitted changes).
    pub git_commit: String,
}

impl RunnerInfo {
    pub fn current() -> Self {
        Self { version: env!("CARGO_PKG_VERSION").to_string(), git_commit: env!("RUNNER_GIT_COMMIT").to_string() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    pub driver: String,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    pub memory_bytes: u64,
    pub gpus: Vec<GpuInfo>,
}

impl HostInfo {
    /// Reads what the machine says about itself; fields it cannot read are left as "unknown".
    pub fn detect() -> Self {
        let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_string();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let or_unknown = |s: String| if s.trim().is_empty() { "unknown".to_string() } else { s.trim().to_string() };
        Self {
            hostname: or_unknown(read("/proc/sys/kernel/hostname")),
            os,
            kernel: or_unknown(read("/proc/sys/kernel/osrelease")),
            cpu_model,
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            gpus: detect_gpus(),
        }
    }
}

/// NVIDIA GPUs through NVML; none when the driver library is absent (every CPU-only machine).
fn detect_gpus() -> Vec<GpuInfo> {
    let Ok(nvml) = nvml_wrapper::Nvml::init() else {
        return Vec::new();
    };
    let driver = nvml.sys_driver_version().unwrap_or_default();
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| nvml.device_by_index(i).ok())
        .map(|d| GpuInfo {
            name: d.name().unwrap_or_default(),
            driver: driver.clone(),
            memory_bytes: d.memory_info().map_or(0, |m| m.total),
        })
        .collect()
}

/// CPU time counters at one instant: the whole machine's (from /proc/stat) and this process's (from
/// /proc/self/stat), in clock ticks. Two of them bracket a run to measure what else the machine was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every CPU's ticks, idle included.
    pub machine_total: u64,
    /// Every CPU's busy ticks: user, nice, system, irq, softirq and steal (idle and I/O wait excluded).
    pub machine_busy: u64,
    /// This process's user + system ticks, all threads.
    pub process: u64,
}

impl CpuTimes {
    /// `None` where /proc is not readable (not Linux).
    pub fn now() -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let own = fs::read_to_string("/proc/self/stat").ok()?;
        Self::parse(&stat, &own)
    }

    /// Parses the aggregate `cpu` line of /proc/stat and utime + stime of /proc/PID/stat.
    pub fn parse(proc_stat: &str, self_stat: &str) -> Option<Self> {
        let fields: Vec<u64> = proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("cpu "))?
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already counted in
        // user and nice, so it is left out of both sums.
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        let machine_busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let machine_total = machine_busy + field(3) + field(4);
        // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
        let after_name = &self_stat[self_stat.rfind(')')? + 1..];
        let rest: Vec<&str> = after_name.split_whitespace().collect();
        // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
        let process = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        Some(Self { machine_total, machine_busy, process })
    }

    /// The share (0 to 1) of the machine's CPU time between `start` and `self` that other processes used:
    /// busy ticks not spent by this process over all ticks (wall time × cores, as the kernel counted it).
    pub fn background_share_since(&self, start: &CpuTimes) -> Option<f64> {
        let total = self.machine_total.checked_sub(start.machine_total)?;
        let busy = self.machine_busy.checked_sub(start.machine_busy)?;
        let own = self.process.checked_sub(start.process)?;
        (total > 0).then(|| (busy.saturating_sub(own) as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// The 1-minute load average, from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn hash_file_into(hasher: &mut Sha256, path: &Path) -> Result<()> {
    let mut file = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

pub fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    hash_file_into(&mut hasher, path)?;
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// A hash of a folder's regular files: their relative names and contents, in name order, so the same
/// model folder hashes the same wherever it is copied.
pub fn hash_dir(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for rel in &files {
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hash_file_into(&mut hasher, &dir.join(rel))?;
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type().with_context(|| format!("cannot stat {}", path.display()))?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).expect("walked below root").to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_hash_depends_on_names_and_contents_not_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            fs::create_dir(dir.join("sub")).unwrap();
            fs::write(dir.join("model.onnx"), b"graph").unwrap();
            fs::write(dir.join("sub/x.json"), b"{}").unwrap();
        }
        assert_eq!(hash_dir(a.path()).unwrap(), hash_dir(b.path()).unwrap());
        fs::write(b.path().join("sub/x.json"), b"{ }").unwrap();
        assert_ne!(hash_dir(a.path()).unwrap(), hash_dir(b.path()).unwrap());
        assert_eq!(hash_file(&a.path().join("model.onnx")).unwrap(), hash_bytes(b"graph"));
    }

    #[test]
    fn detects_this_machine() {
        let host = HostInfo::detect();
        assert!(host.logical_cores >= 1);
        assert!(host.memory_bytes > 0);
        assert!(load_average().is_some());
    }

    const PROC_STAT: &str = "cpu  100 10 50 800 20 5 5 10 7 0\ncpu0 50 5 25 400 10 2 3 5 3 0\nintr 1 2\n";
    const SELF_STAT: &str = "4242 (run (ner) x) R 1 4242 4242 0 -1 4194304 500 0 0 0 30 12 0 0 20 0 9 0 100 1000 200";

    #[test]
    fn reads_machine_and_process_cpu_ticks() {
        let t = CpuTimes::parse(PROC_STAT, SELF_STAT).unwrap();
        assert_eq!(t, CpuTimes { machine_total: 1000, machine_busy: 180, process: 42 });
        assert!(CpuTimes::parse("intr 1", SELF_STAT).is_none());
        assert!(CpuTimes::parse(PROC_STAT, "garbage").is_none());
    }

    #[test]
    fn background_share_leaves_out_this_process() {
        let start = CpuTimes { machine_total: 1000, machine_busy: 180, process: 42 };
        // 400 ticks pass: 150 busy, of which 100 are this process's: 50 / 400 went to other processes.
        let end = CpuTimes { machine_total: 1400, machine_busy: 330, process: 142 };
        assert_eq!(end.background_share_since(&start), Some(0.125));
        assert_eq!(start.background_share_since(&start), None);
        assert_eq!(start.background_share_since(&end), None);
    }

    #[test]
    fn this_machine_reports_cpu_times() {
        // Linux-only files; the CI machines run Linux.
        let start = CpuTimes::now().expect("/proc/stat and /proc/self/stat are readable");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        let end = CpuTimes::now().unwrap();
        assert!(end.machine_total >= start.machine_total && end.process >= start.process);
    }
}
