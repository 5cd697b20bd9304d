//! `--trace FILE`: one Chrome trace (the JSON "traceEvents" format that chrome://tracing and Perfetto open)
//! holding runner's own spans and ONNX Runtime's per-operator profile on one clock.
//!
//! Runner's spans are "X" (complete) events on process 1: model and scenario load, then per sample the
//! scenario's build-prompt, the generation (render, tokenize, prefill, the sampling of each token, each
//! decode step, the detokenizing between steps) and the scenario's score. They are laid out from the
//! engine's [`Timings`] and an instant taken just before generation, so tracing adds no work to the loop.
//! ONNX Runtime's profile (its own Chrome-format events, `ts` in µs since profiling started) goes on
//! process 2, shifted by when profiling started; ONNX Runtime reports that instant on its clock, which is
//! matched to runner's through the realtime and monotonic clocks read when the trace began. Resident
//! memory at each stage is a counter track.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::engine::Timings;

pub const RUNNER_PID: u32 = 1;
pub const ORT_PID: u32 = 2;
/// Runner's spans share one track; ONNX Runtime's events keep their own thread ids under their own process.
const RUNNER_TID: u32 = 1;
/// Arguments of ONNX Runtime's node events left out of the trace: per-node thread-pool statistics and
/// allocator state are about 55% of its profile's bytes (95 MB for 128 forward passes of the default model),
/// and what remains (operator, provider, shapes, sizes) is what a trace is read for.
const DROPPED_ORT_ARGS: [&str; 2] = ["thread_scheduling_stats", "mem_"];
/// The counter track of resident memory readings.
const MEMORY_COUNTER: &str = "resident memory (MiB)";

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read ONNX Runtime's profile {path}: {source}", path = .path.display())]
    ReadProfile { path: PathBuf, source: std::io::Error },
    #[error("ONNX Runtime's profile {path} is not a JSON array of trace events: {source}", path = .path.display())]
    ParseProfile { path: PathBuf, source: serde_json::Error },
    #[error("cannot write the trace {path}: {source}", path = .path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, Serialize)]
struct Span {
    name: &'static str,
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    dur: f64,
    pid: u32,
    tid: u32,
    #[serde(skip_serializing_if = "Map::is_empty")]
    args: Map<String, Value>,
}

/// ONNX Runtime's profile file and when profiling started on its clock.
#[derive(Debug, Clone)]
pub struct OrtProfile {
    pub file: PathBuf,
    pub start_ns: u64,
}

/// What a written trace holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceSummary {
    pub runner_spans: usize,
    pub ort_events: usize,
    /// Which clock ONNX Runtime's start instant was read on: "realtime", "monotonic", or "model load" when
    /// neither fitted and ONNX Runtime's events were placed from the start of model loading.
    pub ort_alignment: Option<&'static str>,
    /// ONNX Runtime operator types by total time (µs) over the run, longest first.
    pub ort_ops: Vec<(String, f64)>,
}

/// Collects runner's spans during a run; [`TraceRecorder::write`] merges ONNX Runtime's profile.
pub struct TraceRecorder {
    epoch: Instant,
    epoch_realtime_ns: i128,
    epoch_monotonic_ns: Option<i128>,
    spans: Vec<Span>,
    /// Where model loading started: the fallback anchor of ONNX Runtime's clock.
    model_load_start: Option<Instant>,
}

fn monotonic_ns() -> Option<i128> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0;
    ok.then(|| i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

fn realtime_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

impl Default for TraceRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceRecorder {
    /// Starts the trace's clock now.
    pub fn new() -> Self {
        let epoch_monotonic_ns = monotonic_ns();
        let epoch = Instant::now();
        TraceRecorder {
            epoch,
            epoch_realtime_ns: realtime_ns(),
            epoch_monotonic_ns,
            spans: Vec::new(),
            model_load_start: None,
        }
    }

    fn us(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_nanos() as f64 / 1e3
    }

    /// Records a span of runner's work from `start` to `end`.
    pub fn span(&mut self, name: &'static str, cat: &'static str, start: Instant, end: Instant, args: Value) {
        let ts = self.us(start);
        let dur = (self.us(end) - ts).max(0.0);
        let args = match args {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        self.spans.push(Span { name, cat, ph: "X", ts, dur, pid: RUNNER_PID, tid: RUNNER_TID, args });
    }

    /// Records loading the model; ONNX Runtime's profiling starts inside it.
    pub fn model_load(&mut self, start: Instant, end: Instant, args: Value) {
        self.model_load_start = Some(start);
        self.span("model load", "load", start, end, args);
    }

    /// A resident-memory reading (bytes) at `at`, on the memory counter track.
    pub fn memory(&mut self, at: Instant, stage: &'static str, bytes: Option<u64>) {
        let Some(bytes) = bytes else { return };
        let args = Map::from_iter([(stage.to_string(), json!(bytes as f64 / (1u64 << 20) as f64))]);
        let ts = self.us(at);
        self.spans.push(Span {
            name: MEMORY_COUNTER,
            cat: "memory",
            ph: "C",
            ts,
            dur: 0.0,
            pid: RUNNER_PID,
            tid: RUNNER_TID,
            args,
        });
    }

    /// Lays one generation out from its timings: `start` is the instant taken just before `generate` was
    /// called. Children are kept inside their parents and after their earlier siblings even where the
    /// timings are a microsecond apart, so viewers nest them.
    pub fn generation(&mut self, start: Instant, timings: &Timings, args: Value) {
        let t = |d: Duration| start + d;
        let end = t(timings.e2e);
        self.span("generate", "engine", start, end, args);
        let mut layout = Layout { cursor: start, end };
        layout.child(self, "render", start, t(timings.render), Value::Null);
        layout.child(self, "tokenize", t(timings.render), t(timings.render + timings.tokenize), Value::Null);
        let Some(first) = timings.sampled.first() else { return };
        let prefill_end = t(first.at.saturating_sub(first.sampling));
        let prefill_start = prefill_end.checked_sub(timings.prefill).unwrap_or(start);
        layout.child(self, "prefill", prefill_start, prefill_end, Value::Null);
        layout.child(self, "sampling", prefill_end, t(first.at), json!({"token": 0}));
        for (step, (duration, token)) in timings.decode_steps.iter().zip(&timings.sampled[1..]).enumerate() {
            let step_end = t(token.at);
            let step_start = step_end.checked_sub(*duration).unwrap_or(layout.cursor);
            layout.child(self, "detokenize", layout.cursor, step_start, Value::Null);
            let (from, to) = layout.child(self, "decode", step_start, step_end, json!({"step": step + 1}));
            // Sampling ends the step: a child of the decode span.
            let sampling_start = to.checked_sub(token.sampling).unwrap_or(from).max(from);
            self.span("sampling", "engine", sampling_start, to, json!({"token": step + 1}));
        }
        layout.child(self, "detokenize", layout.cursor, end, Value::Null);
    }

    /// Writes the trace to `path`, with ONNX Runtime's events from `ort` when given. The ONNX Runtime file
    /// is removed once merged.
    pub fn write(&self, path: &Path, ort: Option<&OrtProfile>) -> Result<TraceSummary, TraceError> {
        let write_error = |source| TraceError::Write { path: path.to_path_buf(), source };
        let mut summary =
            TraceSummary { runner_spans: self.spans.iter().filter(|s| s.ph == "X").count(), ..Default::default() };
        let mut ort_events: Vec<Value> = Vec::new();
        if let Some(profile) = ort {
            let text = std::fs::read_to_string(&profile.file)
                .map_err(|source| TraceError::ReadProfile { path: profile.file.clone(), source })?;
            ort_events = serde_json::from_str(&text)
                .map_err(|source| TraceError::ParseProfile { path: profile.file.clone(), source })?;
            let (offset_us, alignment) = self.ort_offset_us(profile.start_ns);
            summary.ort_alignment = Some(alignment);
            let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
            for event in &mut ort_events {
                let Some(object) = event.as_object_mut() else { continue };
                let ts = object.get("ts").and_then(Value::as_f64).unwrap_or(0.0);
                object.insert("ts".into(), json!(ts + offset_us));
                object.insert("pid".into(), json!(ORT_PID));
                if let Some(args) = object.get_mut("args").and_then(Value::as_object_mut) {
                    args.retain(|key, _| !DROPPED_ORT_ARGS.iter().any(|dropped| key.starts_with(dropped)));
                }
                if object.get("cat").and_then(Value::as_str) == Some("Node")
                    && let Some(op) = object.get("args").and_then(|a| a.get("op_name")).and_then(Value::as_str)
                {
                    *by_op.entry(op.to_string()).or_default() +=
                        object.get("dur").and_then(Value::as_f64).unwrap_or(0.0);
                }
            }
            summary.ort_events = ort_events.len();
            summary.ort_ops = by_op.into_iter().collect();
            summary.ort_ops.sort_by(|a, b| b.1.total_cmp(&a.1));
        }

        let file = File::create(path).map_err(write_error)?;
        let mut out = BufWriter::new(file);
        out.write_all(b"{\"traceEvents\":[").map_err(write_error)?;
        let metadata = self.metadata(&ort_events);
        let events = metadata
            .iter()
            .map(|m| m as &dyn erased::Json)
            .chain(self.spans.iter().map(|s| s as &dyn erased::Json))
            .chain(ort_events.iter().map(|e| e as &dyn erased::Json));
        for (index, event) in events.enumerate() {
            out.write_all(if index == 0 { b"\n" } else { b",\n" }).map_err(write_error)?;
            event.write_to(&mut out).map_err(write_error)?;
        }
        let other = json!({
            "generator": format!("runner {}", env!("CARGO_PKG_VERSION")),
            "clock": "µs since the run started",
            // When the trace's clock started, on the wall clock: places the spans against the process's start.
            "epoch_unix_us": self.epoch_realtime_ns / 1000,
            "onnxruntime_alignment": summary.ort_alignment,
            "onnxruntime_args_dropped": DROPPED_ORT_ARGS,
        });
        write!(out, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{other}}}\n").map_err(write_error)?;
        out.flush().map_err(write_error)?;
        if let Some(profile) = ort {
            let _ = std::fs::remove_file(&profile.file);
        }
        Ok(summary)
    }

    /// The shift that puts ONNX Runtime's `ts` (µs since its profiling start) on this trace's clock.
    fn ort_offset_us(&self, start_ns: u64) -> (f64, &'static str) {
        let start_ns = i128::from(start_ns);
        let elapsed_ns = self.epoch.elapsed().as_nanos() as i128;
        // Profiling started after this trace did and before now (a minute's slack for clock adjustments).
        let fits = |epoch_ns: i128| {
            let offset = start_ns - epoch_ns;
            (offset > -60_000_000_000 && offset <= elapsed_ns + 60_000_000_000).then_some(offset)
        };
        if let Some(offset) = self.epoch_monotonic_ns.and_then(fits) {
            return (offset as f64 / 1e3, "monotonic");
        }
        if let Some(offset) = fits(self.epoch_realtime_ns) {
            return (offset as f64 / 1e3, "realtime");
        }
        (self.model_load_start.map_or(0.0, |s| self.us(s)), "model load")
    }

    fn metadata(&self, ort_events: &[Value]) -> Vec<Value> {
        let meta = |pid: u32, tid: Option<u64>, name: &str, args: Value| {
            let mut event = json!({"ph": "M", "pid": pid, "name": name, "args": args, "ts": 0});
            if let Some(tid) = tid {
                event["tid"] = json!(tid);
            }
            event
        };
        let mut events = vec![
            meta(RUNNER_PID, None, "process_name", json!({"name": "runner"})),
            meta(RUNNER_PID, None, "process_sort_index", json!({"sort_index": 0})),
            meta(RUNNER_PID, Some(u64::from(RUNNER_TID)), "thread_name", json!({"name": "samples"})),
        ];
        if !ort_events.is_empty() {
            events.push(meta(ORT_PID, None, "process_name", json!({"name": "ONNX Runtime (per-operator profile)"})));
            events.push(meta(ORT_PID, None, "process_sort_index", json!({"sort_index": 1})));
            let threads: BTreeSet<u64> =
                ort_events.iter().filter_map(|e| e.get("tid").and_then(Value::as_u64)).collect();
            for tid in threads {
                events.push(meta(ORT_PID, Some(tid), "thread_name", json!({"name": format!("ORT thread {tid}")})));
            }
        }
        events
    }
}

/// Places a generation's phases one after another inside it: each child starts no earlier than the
/// previous one ended and ends no later than the generation, even where timings are a microsecond apart.
struct Layout {
    cursor: Instant,
    end: Instant,
}

impl Layout {
    fn child(
        &mut self,
        recorder: &mut TraceRecorder,
        name: &'static str,
        from: Instant,
        to: Instant,
        args: Value,
    ) -> (Instant, Instant) {
        let from = from.max(self.cursor).min(self.end);
        let to = to.max(from).min(self.end);
        recorder.span(name, "engine", from, to, args);
        self.cursor = to;
        (from, to)
    }
}

/// Serialising spans and ONNX Runtime's events through one writer without boxing them into `Value`s.
mod erased {
    use std::io::Write;

    pub trait Json {
        fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()>;
    }

    impl<T: serde::Serialize> Json for T {
        fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
            serde_json::to_writer(out, self).map_err(std::io::Error::other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TokenTiming;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// A generation of three tokens: render 1 ms, tokenize 1 ms, prefill 10 ms, sampling 1 ms each, decode
    /// steps of 5 ms (sampling included), 1 ms of detokenizing between steps.
    fn timings() -> Timings {
        Timings {
            render: ms(1),
            tokenize: ms(1),
            prefill: ms(10),
            ttft: ms(13),
            decode_steps: vec![ms(5), ms(5)],
            detokenize: ms(3),
            e2e: ms(27),
            batch_size: 1,
            sampled: vec![
                TokenTiming { at: ms(13), sampling: ms(1) },
                TokenTiming { at: ms(19), sampling: ms(1) },
                TokenTiming { at: ms(25), sampling: ms(1) },
            ],
            ..Default::default()
        }
    }

    fn spans(recorder: &TraceRecorder) -> Vec<(&str, f64, f64)> {
        recorder.spans.iter().map(|s| (s.name, s.ts / 1e3, (s.ts + s.dur) / 1e3)).collect()
    }

    #[test]
    fn a_generation_is_laid_out_from_its_timings() {
        let mut recorder = TraceRecorder::new();
        let start = recorder.epoch + ms(100);
        recorder.generation(start, &timings(), json!({"sample": 0}));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        let expected = [
            ("generate", 100.0, 127.0),
            ("render", 100.0, 101.0),
            ("tokenize", 101.0, 102.0),
            ("prefill", 102.0, 112.0),
            ("sampling", 112.0, 113.0),
            ("detokenize", 113.0, 114.0),
            ("decode", 114.0, 119.0),
            ("sampling", 118.0, 119.0),
            ("detokenize", 119.0, 120.0),
            ("decode", 120.0, 125.0),
            ("sampling", 124.0, 125.0),
            ("detokenize", 125.0, 127.0),
        ];
        let got = spans(&recorder);
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for ((name, from, to), (want_name, want_from, want_to)) in got.iter().zip(expected) {
            assert!(*name == want_name && close(*from, want_from) && close(*to, want_to), "{got:?}");
        }
    }

    #[test]
    fn inconsistent_timings_still_nest() {
        // Durations that overlap (clock granularity, rounding) are clamped inside the generation.
        let mut t = timings();
        t.prefill = ms(50);
        t.decode_steps = vec![ms(30), ms(30)];
        let mut recorder = TraceRecorder::new();
        recorder.generation(recorder.epoch, &t, Value::Null);
        let got = spans(&recorder);
        let (_, g_from, g_to) = got[0];
        let mut cursor = g_from;
        for (name, from, to) in &got[1..] {
            assert!(*from >= g_from && *to <= g_to && from <= to, "{name} outside the generation: {got:?}");
            if *name != "sampling" {
                assert!(*from >= cursor - 1e-9, "{name} overlaps its previous sibling: {got:?}");
                cursor = *to;
            }
        }
    }

    #[test]
    fn no_tokens_means_no_prefill_spans() {
        let t = Timings { render: ms(1), tokenize: ms(1), e2e: ms(2), ..Default::default() };
        let mut recorder = TraceRecorder::new();
        recorder.generation(recorder.epoch, &t, Value::Null);
        let names: Vec<&str> = spans(&recorder).iter().map(|s| s.0).collect();
        assert_eq!(names, ["generate", "render", "tokenize"]);
    }

    #[test]
    fn ort_events_are_shifted_onto_runner_clock_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = TraceRecorder::new();
        let start = recorder.epoch;
        recorder.model_load(start, start + ms(5), Value::Null);
        recorder.memory(start + ms(5), "after load", Some(300 << 20));
        // ONNX Runtime started profiling 2 ms into the trace, on the monotonic clock.
        let start_ns = (recorder.epoch_monotonic_ns.unwrap() + 2_000_000) as u64;
        let ort_file = dir.path().join("ort.json");
        let ort = json!([
            {"cat": "Session", "pid": 4242, "tid": 4242, "dur": 100, "ts": 10, "ph": "X", "name": "model_run", "args": {}},
            {"cat": "Node", "pid": 4242, "tid": 4243, "dur": 60, "ts": 20, "ph": "X", "name": "mm_kernel_time",
             "args": {"op_name": "MatMulNBits", "provider": "CPUExecutionProvider", "mem_arena_held": "1",
                      "thread_scheduling_stats": {"main_thread": {}}}},
            {"cat": "Node", "pid": 4242, "tid": 4243, "dur": 30, "ts": 80, "ph": "X", "name": "gqa_kernel_time",
             "args": {"op_name": "GroupQueryAttention", "provider": "CPUExecutionProvider"}},
            {"cat": "Node", "pid": 4242, "tid": 4243, "dur": 5, "ts": 85, "ph": "X", "name": "mm2_kernel_time",
             "args": {"op_name": "MatMulNBits", "provider": "CPUExecutionProvider"}}
        ]);
        std::fs::write(&ort_file, ort.to_string()).unwrap();
        let out = dir.path().join("trace.json");
        let summary = recorder.write(&out, Some(&OrtProfile { file: ort_file.clone(), start_ns })).unwrap();
        assert_eq!((summary.runner_spans, summary.ort_events), (1, 4));
        assert_eq!(summary.ort_alignment, Some("monotonic"));
        assert_eq!(summary.ort_ops, [("MatMulNBits".to_string(), 65.0), ("GroupQueryAttention".to_string(), 30.0)]);
        assert!(!ort_file.exists(), "the merged ONNX Runtime file is removed");

        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let events = trace["traceEvents"].as_array().unwrap();
        let run = events.iter().find(|e| e["name"] == "model_run").unwrap();
        assert_eq!(run["pid"], ORT_PID);
        assert!((run["ts"].as_f64().unwrap() - 2010.0).abs() < 1e-6, "{run}");
        assert!(events.iter().any(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == 4243));
        let node = events.iter().find(|e| e["name"] == "mm_kernel_time").unwrap();
        assert_eq!(node["args"], json!({"op_name": "MatMulNBits", "provider": "CPUExecutionProvider"}));
        assert!(events.iter().any(|e| e["ph"] == "C" && e["args"]["after load"] == 300.0));
        for event in events {
            for field in ["ph", "pid", "name", "ts"] {
                assert!(event.get(field).is_some(), "{field} missing: {event}");
            }
        }
    }

    #[test]
    fn a_trace_without_onnx_runtime_events_is_still_valid() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("trace.json");
        let summary = TraceRecorder::new().write(&out, None).unwrap();
        assert_eq!(summary, TraceSummary::default());
        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(trace["traceEvents"].as_array().unwrap().iter().all(|e| e["ph"] == "M"));
    }
}
