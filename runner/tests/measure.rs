//! What `runner exec` measures beyond quality and speed, checked through the binary on the tiny generated
//! model with the real GSM8K component: the `--trace` Chrome trace with ONNX Runtime's operator profile,
//! memory by stage, no GPU fields on a machine without a GPU, prompt options, and reasoning splits.

use std::path::{Path, PathBuf};
use std::process::Output;

use common::read_summary;
use runner::engine::{ThinkMarkers, split_reasoning};
use runner::import::Precision;
use runner::results::writer::{SAMPLES_FILE, SUMMARY_FILE, read_samples};
use runner::results::{SampleRecord, SampleStatus};
use serde_json::Value;

mod common;

/// `runner exec gsm8k --model TINY --no-progress --out DIR/run` plus `args`, run in `dir`.
fn exec(dir: &Path, args: &[&str]) -> (Output, String, String, PathBuf) {
    let results = dir.join("run");
    let (out, stdout, stderr) = common::run(
        common::exec(scenario_artifacts::GSM8K, &common::tiny_model(7, Precision::Int4))
            .current_dir(dir)
            .args(["--threads", "1", "--out"])
            .arg(&results)
            .args(args),
    );
    // No guest here panics on purpose, so no thread of runner's may.
    assert!(!stderr.contains("panicked"), "runner panicked:\n{stderr}");
    (out, stdout, stderr, results)
}

fn exec_ok(dir: &Path, args: &[&str]) -> (String, PathBuf) {
    let (out, stdout, stderr, results) = exec(dir, args);
    assert!(out.status.success(), "exec {args:?} failed:\n{stdout}\n{stderr}");
    (stdout, results)
}

#[derive(Debug, Clone)]
struct Span {
    name: String,
    start: f64,
    end: f64,
}

impl Span {
    fn contains(&self, other: &Span, slack: f64) -> bool {
        other.start >= self.start - slack && other.end <= self.end + slack
    }
}

fn spans(events: &[Value], pid: u64, name: Option<&str>) -> Vec<Span> {
    let mut spans: Vec<Span> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == pid && name.is_none_or(|n| e["name"] == n))
        .map(|e| {
            let start = e["ts"].as_f64().unwrap();
            Span { name: e["name"].as_str().unwrap().to_string(), start, end: start + e["dur"].as_f64().unwrap() }
        })
        .collect();
    // Parents before their children: by start, then longest first.
    spans.sort_by(|a, b| a.start.total_cmp(&b.start).then(b.end.total_cmp(&a.end)));
    spans
}

/// Float rounding of µs timestamps; not a timing tolerance.
const EPS: f64 = 1e-3;

#[test]
fn trace_holds_every_span_of_every_sample_and_onnx_runtime_operators() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, results) =
        exec_ok(dir.path(), &["--max-samples", "2", "--max-new-tokens", "6", "--ignore-eos", "--trace", "trace.json"]);
    assert!(stdout.contains("Trace: trace.json") && stdout.contains("Slowest operators: "), "{stdout}");
    let trace_path = dir.path().join("trace.json");
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&trace_path).unwrap()).unwrap();
    // ONNX Runtime's own file was merged and removed: the folder holds the trace and the results only.
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    left.sort();
    assert_eq!(left, ["run", "trace.json"]);

    // What Perfetto's legacy JSON importer and chrome://tracing need from every event.
    let events = trace["traceEvents"].as_array().unwrap();
    for event in events {
        for field in ["ph", "pid", "name", "ts"] {
            assert!(event.get(field).is_some(), "{field} missing: {event}");
        }
        match event["ph"].as_str().unwrap() {
            "X" => assert!(event["dur"].as_f64().unwrap() >= 0.0 && event.get("tid").is_some(), "{event}"),
            "M" => assert!(event["args"]["name"].is_string() || event["args"]["sort_index"].is_number(), "{event}"),
            "C" => assert!(event["args"].is_object(), "{event}"),
            other => panic!("unexpected event type {other}: {event}"),
        }
    }
    let named = |pid: u64, name: &str| {
        events
            .iter()
            .any(|e| e["ph"] == "M" && e["pid"] == pid && e["name"] == "process_name" && e["args"]["name"] == name)
    };
    assert!(named(1, "runner") && named(2, "ONNX Runtime (per-operator profile)"));

    let runner_spans = spans(events, 1, None);
    for once in ["scenario load", "dataset load", "model load"] {
        assert_eq!(runner_spans.iter().filter(|s| s.name == once).count(), 1, "{once}");
    }
    let samples = read_samples(&results).unwrap();
    let sample_spans = spans(events, 1, Some("sample"));
    assert_eq!(sample_spans.len(), 2);
    let mut forwards = Vec::new();
    for (sample_span, record) in sample_spans.iter().zip(&samples) {
        let inside: Vec<&Span> =
            runner_spans.iter().filter(|s| s.name != "sample" && sample_span.contains(s, EPS)).collect();
        // The sample's direct steps, in order and not overlapping.
        let steps: Vec<&&Span> =
            inside.iter().filter(|s| ["build-prompt", "generate", "score"].contains(&s.name.as_str())).collect();
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["build-prompt", "generate", "score"]);
        assert!(steps.windows(2).all(|w| w[0].end <= w[1].start + EPS), "{steps:?}");

        // The generation's phases: render, tokenize, prefill, the first token's sampling, then per token
        // the detokenizing before its decode step, and the last detokenize.
        let generate = steps[1];
        let phases: Vec<&Span> =
            inside.iter().copied().filter(|s| s.name != "generate" && generate.contains(s, EPS)).collect();
        let tokens = record.output_tokens.unwrap();
        assert_eq!(tokens, 6, "--ignore-eos generates the whole budget: {record:?}");
        let mut expected = vec!["render", "tokenize", "prefill", "sampling"];
        for _ in 1..tokens {
            expected.extend(["detokenize", "decode", "sampling"]);
        }
        expected.push("detokenize");
        let got: Vec<&str> = phases.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(got, expected);
        // Top-level phases follow each other; each decode step holds its sampling.
        let top: Vec<&&Span> = phases
            .iter()
            .filter(|s| s.name != "sampling" || !phases.iter().any(|d| d.name == "decode" && d.contains(s, EPS)))
            .collect();
        assert!(top.windows(2).all(|w| w[0].end <= w[1].start + EPS), "phases overlap: {top:?}");
        assert_eq!(
            top.iter().filter(|s| s.name == "sampling").count(),
            1,
            "only the first token's sampling is outside a step"
        );
        forwards.extend(phases.iter().filter(|s| s.name == "prefill" || s.name == "decode").map(|s| (*s).clone()));
        assert!(record.timings.sampling_ms > 0.0, "{record:?}");
    }

    // ONNX Runtime: one model_run per forward pass, each inside runner's span of that pass (2 ms allowed for
    // mapping ONNX Runtime's clock onto runner's), and the int4 model's MatMulNBits nodes.
    // The session's one probe run at load time (which provider ran each node) comes before the first forward
    // pass; it belongs to model load, not to a sample.
    let first_forward = forwards.iter().map(|f| f.start).fold(f64::INFINITY, f64::min);
    let runs: Vec<_> =
        spans(events, 2, Some("model_run")).into_iter().filter(|r| r.start + 2000.0 >= first_forward).collect();
    assert_eq!(runs.len(), forwards.len(), "one ONNX Runtime run per prefill and decode step");
    for (run, forward) in runs.iter().zip(&forwards) {
        assert!(forward.contains(run, 2000.0), "ONNX Runtime's run {run:?} is not within runner's {forward:?}");
    }
    let ops: Vec<&str> = events
        .iter()
        .filter(|e| e["pid"] == 2 && e["cat"] == "Node")
        .filter_map(|e| e["args"]["op_name"].as_str())
        .collect();
    assert!(ops.contains(&"MatMulNBits") && ops.contains(&"GroupQueryAttention"), "{:?}", &ops[..ops.len().min(20)]);
    assert!(events.iter().any(|e| e["ph"] == "C" && e["args"].get("after load").is_some()));
}

#[test]
fn memory_by_stage_is_recorded_and_nothing_is_profiled_or_gpu_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, results) = exec_ok(dir.path(), &["--max-samples", "2", "--max-new-tokens", "4"]);
    assert!(stdout.contains("after model load") && stdout.contains("after generation"), "{stdout}");
    // No trace and no ONNX Runtime profile anywhere: only the results folder was written.
    let left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(left, ["run"]);
    let mut files: Vec<String> =
        std::fs::read_dir(&results).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    files.sort();
    // samples.csv is rebuilt from samples.jsonl for spreadsheets.
    assert_eq!(files, ["samples.csv", SAMPLES_FILE, SUMMARY_FILE, "summary.md"]);

    let summary = read_summary(&results);
    let memory = &summary.memory;
    let (before, after) = (memory.before_load_bytes.unwrap(), memory.after_load_bytes.unwrap());
    assert!(after > before, "loading the model adds resident memory: {memory:?}");
    assert!(memory.peak_after_load_bytes.unwrap() >= after);
    assert!(memory.peak_scope.is_some());
    let r = &summary.results;
    assert!(r.peak_rss_bytes.unwrap() >= memory.peak_after_load_bytes.unwrap());
    assert_eq!(r.rss_after_generation_bytes.as_ref().unwrap().count, 2);
    assert_eq!(r.sample_peak_rss_bytes.as_ref().unwrap().count, 2);
    for sample in read_samples(&results).unwrap() {
        let generation = sample.rss_after_generation_bytes.unwrap();
        assert!(generation >= after / 2 && sample.peak_rss_bytes.unwrap() >= generation, "{sample:?}");
        if sample.output.as_deref().is_some_and(|o| !o.is_empty()) {
            assert!(sample.rss_after_prefill_bytes.is_some(), "{sample:?}");
        }
    }

    // This machine has no NVIDIA GPU and the run is on the CPU: GPU fields are absent, not zero.
    let raw: Value = serde_json::from_slice(&std::fs::read(results.join(SUMMARY_FILE)).unwrap()).unwrap();
    assert!(raw.get("gpu").is_none(), "{raw}");
    for line in std::fs::read_to_string(results.join(SAMPLES_FILE)).unwrap().lines() {
        let sample: Value = serde_json::from_str(line).unwrap();
        assert!(sample.get("gpu").is_none(), "{sample}");
        // Not a reasoning model and no thinking written: no reasoning fields either.
        assert!(sample.get("thinking_tokens").is_none(), "{sample}");
    }
}

fn first_user_message(record: &SampleRecord) -> String {
    let prompt = serde_json::to_value(record.prompt.as_ref().unwrap()).unwrap();
    prompt["value"].as_array().unwrap().iter().find(|m| m["role"] == "user").unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn system_prompt_and_plain_text_prompts_reach_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (_, results) =
        exec_ok(dir.path(), &["--max-samples", "1", "--max-new-tokens", "1", "--system-prompt", "Be brief."]);
    let sample = &read_samples(&results).unwrap()[0];
    let text = sample.prompt_text.as_deref().unwrap();
    assert!(text.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"), "{text}");
    assert!(!text.contains("SmolLM"), "our system prompt replaces the template's default: {text}");
    assert_eq!(read_summary(&results).settings.system_prompt.as_deref(), Some("Be brief."));

    let dir = tempfile::tempdir().unwrap();
    let (_, results) = exec_ok(dir.path(), &["--max-samples", "1", "--max-new-tokens", "1", "--no-chat-template"]);
    let sample = &read_samples(&results).unwrap()[0];
    // The scenario's single user message, as written, without any template token.
    assert_eq!(sample.prompt_text.as_deref(), Some(first_user_message(sample).as_str()));
    assert!(read_summary(&results).settings.no_chat_template);

    for (flag, value, says) in
        [("--system-prompt", " ", "--system-prompt is empty"), ("--think-markers", "<think>", "--think-markers must")]
    {
        let (out, _, stderr, _) = exec(dir.path(), &[flag, value]);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// Two non-blank characters without commas, at or after `from` (a byte offset) in `text`.
fn marker_at(text: &str, from: usize) -> Option<(usize, String)> {
    let chars: Vec<(usize, char)> = text.char_indices().filter(|(i, _)| *i >= from).collect();
    chars.windows(2).find(|w| w.iter().all(|(_, c)| !c.is_whitespace() && *c != ',')).map(|w| {
        let marker: String = w.iter().map(|(_, c)| c).collect();
        (w[0].0, marker)
    })
}

#[test]
fn thinking_is_split_from_the_answer_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // Greedy decoding of the tiny model repeats one token; seeded sampling writes varied, reproducible text.
    let args = ["--max-samples", "1", "--max-new-tokens", "32", "--ignore-eos", "--temperature", "1", "--seed", "3"];
    let (_, results) = exec_ok(dir.path(), &[&args[..], &["--think-markers", "off"]].concat());
    let plain = read_samples(&results).unwrap().remove(0);
    let output = plain.output.clone().unwrap();
    assert!(plain.thinking.is_none() && plain.thinking_tokens.is_none());

    // The tiny model writes random text: take markers from it, so the same seed writes them again.
    // The first pair of characters opens the block (its first occurrence is where it is found).
    let (open_at, open) = marker_at(&output, 0).unwrap_or_else(|| panic!("no marker in {output:?}"));
    assert_eq!(output.find(&open), Some(open_at));
    let (_, close) = (open_at + open.len() + 2..output.len())
        .filter_map(|from| marker_at(&output, from))
        .find(|(at, close)| *close != open && output.find(close.as_str()) == Some(*at))
        .unwrap_or_else(|| panic!("no closing marker in {output:?}"));
    let markers = ThinkMarkers::parse(&format!("{open},{close}")).unwrap();
    let opened_by_prompt = markers.opened_by(plain.prompt_text.as_deref().unwrap());
    let expected = split_reasoning(&output, &markers, opened_by_prompt);
    assert!(expected.thinking.is_some());

    let dir = tempfile::tempdir().unwrap();
    let (_, results) = exec_ok(dir.path(), &[&args[..], &[&format!("--think-markers={open},{close}")]].concat());
    let split = read_samples(&results).unwrap().remove(0);
    assert_eq!(split.status, SampleStatus::Ok);
    assert_eq!(split.output_tokens, plain.output_tokens);
    assert_eq!(split.thinking, expected.thinking);
    assert_eq!(split.output.as_deref(), Some(expected.answer.as_str()), "the answer is what is kept and scored");
    assert_eq!(split.thinking_unclosed, expected.unclosed);
    let (thinking, answer) = (split.thinking_tokens.unwrap(), split.answer_tokens.unwrap());
    assert!(thinking > 0 && thinking + answer == split.output_tokens.unwrap(), "{split:?}");
    let summary = read_summary(&results);
    assert_eq!(summary.settings.think_markers, Some(markers));
    assert!(summary.results.thinking_tokens.is_some() && summary.results.answer_tokens.is_some());
}
