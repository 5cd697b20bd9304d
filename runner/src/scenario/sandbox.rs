//! What a scenario instance lives in: a WASI context that grants nothing, with fixed clocks, seeded
//! randomness and captured stderr; a memory limiter that remembers when it refused; and the `host`
//! interface the guest imports.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::LogLevel;
use super::bindings::runner::scenario::{host, types};

/// Guest stderr kept per instance; a guest that writes more gets write errors, not more memory.
const STDERR_CAPACITY: usize = 256 << 10;
/// Stderr attached to an error is cut to its last this many bytes.
const STDERR_IN_ERRORS: usize = 8 << 10;
/// The wall clock a scenario sees: 2025-01-01T00:00:00Z.
const FIXED_WALL_CLOCK: Duration = Duration::from_secs(1_735_689_600);

pub(super) struct GuestState {
    pub(super) scenario_name: Arc<str>,
    pub(super) limiter: MemoryLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    /// The warnings the guest logged since the host last took them (at most [`MAX_WARNINGS`]): a flawed
    /// dataset row the scenario worked around is recorded in the results, not only in the log.
    pub(super) warnings: Vec<String>,
}

/// Warnings kept per call: a file flawed throughout is refused by the scenario long before this.
const MAX_WARNINGS: usize = 1000;

impl GuestState {
    pub(super) fn new(scenario_name: &str, memory_bytes: usize) -> GuestState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut builder = WasiCtx::builder();
        builder
            .stderr(stderr.clone())
            .wall_clock(FixedWallClock)
            .monotonic_clock(FixedMonotonicClock)
            .secure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(b"runner scenario secure-random")))
            .insecure_random(wasmtime_wasi::Deterministic::new(seeded_bytes(b"runner scenario insecure-random")))
            .insecure_random_seed(0x7275_6e6e_6572_5f73_6365_6e61_7269_6f00);
        GuestState {
            scenario_name: Arc::from(scenario_name),
            limiter: MemoryLimiter { limit: memory_bytes, exceeded: false },
            wasi: builder.build(),
            table: ResourceTable::new(),
            stderr,
            warnings: Vec::new(),
        }
    }

    pub(super) fn stderr_len(&self) -> usize {
        self.stderr.contents().len()
    }

    /// Whether the stderr buffer is over half full; the instance should then be replaced.
    pub(super) fn stderr_filling(&self) -> bool {
        self.stderr_len() > STDERR_CAPACITY / 2
    }

    /// What the guest wrote to stderr after `start` bytes, at most the last STDERR_IN_ERRORS bytes.
    pub(super) fn stderr_since(&self, start: usize) -> String {
        let contents = self.stderr.contents();
        let written = contents.get(start..).unwrap_or_default();
        let tail = &written[written.len().saturating_sub(STDERR_IN_ERRORS)..];
        String::from_utf8_lossy(tail).into_owned()
    }
}

/// 4 KiB of bytes derived from `seed`, cycled by the guest's random source.
fn seeded_bytes(seed: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4096);
    let mut block = Sha256::digest(seed);
    while bytes.len() < 4096 {
        bytes.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    bytes
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl host::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        let scenario = &*self.scenario_name;
        match level {
            LogLevel::Debug => tracing::debug!(scenario, "{message}"),
            LogLevel::Info => tracing::info!(scenario, "{message}"),
            LogLevel::Warn => {
                tracing::warn!(scenario, "{message}");
                if self.warnings.len() < MAX_WARNINGS {
                    self.warnings.push(message);
                }
            }
            LogLevel::Error => tracing::error!(scenario, "{message}"),
        }
    }
}

impl types::Host for GuestState {}

/// Caps linear memory and records that it refused a growth, so the host can report the cap rather than
/// whatever the guest did next.
pub(super) struct MemoryLimiter {
    limit: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "the scenario asked for {desired} bytes of memory, over its limit of {} bytes",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

struct FixedMonotonicClock;

impl HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}
