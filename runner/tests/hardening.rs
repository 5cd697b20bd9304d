//! Hardening against what runs for hours on shared machines meets: model folders corrupted on disk
//! (truncated or overwritten files, a tokenizer that does not fit the model, a chat template that does not
//! render), ONNX Runtime libraries that are not the one runner needs (not ONNX Runtime at all, an older or
//! newer release, a library that answers with nothing), hostile scenarios (huge outputs, very many metrics,
//! clock and random probing, deep recursion in every export, a hostile Python guest) and the inputs the
//! fuzzers once crashed on. Every case runs the real `runner` binary or the real engine and sandbox, and
//! must end in a clear error naming the file or scenario, never a panic, with the other samples finished.

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, runner};
use runner::import::Precision;
use runner::results::SampleStatus;
use runner::results::writer::read_samples;

mod common;

/// The tiny int4 model the tests of this file share; tests that break it break a copy.
fn tiny_model() -> PathBuf {
    common::tiny_model(7, Precision::Int4)
}

/// A copy of the tiny model in `to/model`, for a test to break.
fn copy_model(to: &Path) -> PathBuf {
    let model = to.join("model");
    common::copy_model(&tiny_model(), &model);
    model
}

/// `runner exec gsm8k --model MODEL` on two samples, expected to fail: returns stderr.
fn exec_fails(model: &Path, extra: &[&str]) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(runner()
        .args(["exec", scenario_artifacts::GSM8K, "--no-progress", "--max-samples", "2", "--max-new-tokens", "2"])
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out_dir.path().join("run"))
        .args(extra));
    assert_eq!(out.status.code(), Some(1), "expected a failure (exit 1):\n{stderr}");
    assert!(stderr.contains("Error:"), "{stderr}");
    stderr
}

fn truncate(path: &Path, keep: f64) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
}

/// A file of the model folder and what breaks it.
type Corruption = (&'static str, fn(&Path));

#[test]
fn a_truncated_or_overwritten_model_file_is_an_error_naming_it() {
    let cases: [Corruption; 5] = [
        ("model.onnx", |p| truncate(p, 0.5)),
        ("model.onnx", |p| {
            let mut bytes = std::fs::read(p).unwrap();
            bytes[..256].fill(0xff);
            std::fs::write(p, bytes).unwrap();
        }),
        ("model.onnx", |p| std::fs::write(p, b"").unwrap()),
        ("model.onnx.data", |p| truncate(p, 0.5)),
        ("model.onnx.data", |p| std::fs::write(p, b"").unwrap()),
    ];
    for (i, (file, corrupt)) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let model = copy_model(dir.path());
        corrupt(&model.join(file));
        let stderr = exec_fails(&model, &[]);
        assert!(stderr.contains(file), "case {i}: the error must name {file}:\n{stderr}");
    }
}

#[test]
fn a_broken_tokenizer_or_model_config_is_an_error_naming_it() {
    for (file, content) in [
        ("tokenizer.json", &b"{\"version\": \"1.0\", \"model\": "[..]),
        ("tokenizer.json", &b"\xff\xfe garbage"[..]),
        ("genai_config.json", &b"{\"model\": {\"vocab_size\": -3}}"[..]),
        ("genai_config.json", &b"[1, 2"[..]),
        ("tokenizer_config.json", &b"{\"chat_template\": 42"[..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let model = copy_model(dir.path());
        std::fs::write(model.join(file), content).unwrap();
        let stderr = exec_fails(&model, &[]);
        assert!(stderr.contains(file), "the error must name {file}:\n{stderr}");
    }
}

/// A tokenizer from another model: more tokens than the model's vocabulary, so prompt ids could index
/// past the embedding table and outputs could not be decoded consistently.
#[test]
fn a_tokenizer_larger_than_the_model_vocabulary_is_refused_naming_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_model(dir.path());
    let path = model.join("tokenizer.json");
    let mut tokenizer: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let vocab = tokenizer["model"]["vocab"].as_object_mut().unwrap();
    let model_vocab = vocab.len();
    for i in 0..100 {
        vocab.insert(format!("extra{i}"), (model_vocab + i).into());
    }
    std::fs::write(&path, serde_json::to_vec(&tokenizer).unwrap()).unwrap();
    let stderr = exec_fails(&model, &[]);
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
    assert!(stderr.contains(&(model_vocab + 100).to_string()) && stderr.contains(&model_vocab.to_string()), "{stderr}");
}

/// Replaces the folder's chat template (wherever the importer put it) with `template`.
fn set_chat_template(model: &Path, template: &str) {
    let _ = std::fs::remove_file(model.join("chat_template.jinja"));
    let path = model.join("tokenizer_config.json");
    let mut config: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    config["chat_template"] = template.into();
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
}

#[test]
fn a_chat_template_that_does_not_parse_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_model(dir.path());
    set_chat_template(&model, "{% for message in messages %}{{ message['content'] }");
    let stderr = exec_fails(&model, &[]);
    assert!(stderr.contains("chat template"), "{stderr}");
}

/// A template that parses but fails on every prompt: each sample fails at the prompt with the template's
/// own message, and the run stops after the consecutive-failure limit with exit status 1.
#[test]
fn a_chat_template_that_fails_to_render_fails_each_sample_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_model(dir.path());
    set_chat_template(&model, "{{ raise_exception('this template refuses every conversation') }}");
    let out_dir = tempfile::tempdir().unwrap();
    let results = out_dir.path().join("run");
    let (out, _, stderr) = run(runner()
        .args(["exec", scenario_artifacts::GSM8K, "--no-progress", "--max-samples", "3", "--max-new-tokens", "2"])
        .args(["--max-consecutive-failures", "2", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&results));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped early"), "{stderr}");
    let samples = read_samples(&results).unwrap();
    assert_eq!(samples.len(), 2, "the run stops at the limit, every finished sample kept");
    for sample in samples {
        assert_eq!(sample.status, SampleStatus::Failed);
        let error = sample.error.unwrap();
        assert!(error.message.contains("refuses every conversation"), "{error:?}");
    }
}

/// Compiles a fake "ONNX Runtime" from C source with the system compiler, into `dir/NAME`.
fn compile_shared_library(dir: &Path, name: &str, source: &str) -> Option<PathBuf> {
    let c_file = dir.join(format!("{name}.c"));
    std::fs::write(&c_file, source).unwrap();
    let out = dir.join(name);
    match Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&out).arg(&c_file).output() {
        Ok(result) if result.status.success() => Some(out),
        Ok(result) => panic!("cc failed to build {name}: {}", String::from_utf8_lossy(&result.stderr)),
        Err(e) => {
            eprintln!("skipping {name}: no C compiler (`cc`): {e}");
            None
        }
    }
}

/// A library exporting `OrtGetApiBase` the way ONNX Runtime does, reporting `version` and answering
/// `GetApi` with nothing (what a release older or newer than the API runner asks for may do); with
/// `null_base` the base itself is missing.
fn fake_ort_source(version: &str, null_base: bool) -> String {
    format!(
        r#"
#include <stddef.h>
typedef struct {{ const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); }} OrtApiBase;
static const void* get_api(unsigned version) {{ (void)version; return NULL; }}
static const char* get_version(void) {{ return "{version}"; }}
static const OrtApiBase base = {{ get_api, get_version }};
const OrtApiBase* OrtGetApiBase(void) {{ return {}; }}
"#,
        if null_base { "NULL" } else { "&base" }
    )
}

#[test]
fn an_onnx_runtime_library_of_the_wrong_kind_or_version_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    // Not a shared library at all.
    let garbage = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&garbage, b"\x7fELF but not really").unwrap();
    cases.push((garbage, "could not be loaded"));
    // A real shared library that is not ONNX Runtime: no OrtGetApiBase.
    if let Some(lib) = compile_shared_library(dir.path(), "libnot-ort.so", "int unrelated(void) { return 1; }\n") {
        cases.push((lib, "OrtGetApiBase"));
    }
    // An older release: ort itself sees the version.
    if let Some(lib) = compile_shared_library(dir.path(), "libold-ort.so", &fake_ort_source("1.17.3", false)) {
        cases.push((lib, "1.17.3"));
    }
    // A newer release that does not serve runner's API version, and one whose API base is missing.
    if let Some(lib) = compile_shared_library(dir.path(), "libnew-ort.so", &fake_ort_source("1.40.0", false)) {
        cases.push((lib, "1.40.0"));
    }
    if let Some(lib) = compile_shared_library(dir.path(), "libnull-ort.so", &fake_ort_source("1.31.1", true)) {
        cases.push((lib, "libnull-ort.so"));
    }
    for (lib, expected) in cases {
        let stderr = exec_fails(&tiny_model(), &["--ort-lib", lib.to_str().unwrap()]);
        let name = lib.file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(name), "the error must name {name}:\n{stderr}");
        assert!(stderr.contains(expected), "the error for {name} must say `{expected}`:\n{stderr}");
    }
}

/// `runner exec SCENARIO --data LINES` on the tiny model, batched: returns the results folder's records
/// and runner's stderr. The run itself must succeed: hostile samples fail alone.
fn exec_lines(scenario: &str, lines: &[&str], extra: &[&str]) -> (Vec<runner::results::SampleRecord>, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("commands.txt");
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let results = dir.path().join("run");
    let (out, _, stderr) = run(runner()
        .args(["exec", scenario, "--no-progress", "--max-new-tokens", "2", "--batch-size", "4"])
        .args(["--scenario-timeout", "2", "--max-consecutive-failures", "100", "--model"])
        .arg(tiny_model())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&results)
        .args(extra));
    let samples = read_samples(&results).unwrap();
    // Finished: 0 when every sample succeeded, 3 when some failed (documented exit statuses).
    let expected = if samples.iter().any(|s| s.error.is_some()) { 3 } else { 0 };
    assert_eq!(out.status.code(), Some(expected), "the run must finish:\n{stderr}");
    (samples, stderr)
}

/// Each hostile sample's expected outcome: `None` works, `Some(text)` fails with a message containing it.
fn assert_outcomes(records: &[runner::results::SampleRecord], expected: &[(&str, Option<&str>)]) {
    assert_eq!(records.len(), expected.len(), "one record per sample, none lost");
    for (i, (record, (command, failure))) in records.iter().zip(expected).enumerate() {
        assert_eq!(record.index, i, "records stay in dataset order");
        match failure {
            None => assert_eq!(record.status, SampleStatus::Ok, "`{command}` should work: {:?}", record.error),
            Some(needle) => {
                assert_eq!(record.status, SampleStatus::Failed, "`{command}` should fail");
                let message = &record.error.as_ref().unwrap().message;
                assert!(message.contains("scenario"), "`{command}`: the message names the scenario: {message}");
                let lower = message.to_lowercase();
                assert!(lower.contains(&needle.to_lowercase()), "`{command}`: expected `{needle}` in: {message}");
                assert!(message.len() < 64 << 10, "`{command}`: a hostile message is cut, not stored whole");
            }
        }
    }
}

/// Huge outputs, too many metrics, traps, recursion, loops, exhaustion and invalid UTF-8 from the Rust
/// fixture, mixed with good samples in batches of 4: each fails alone, attributed to the scenario.
#[test]
fn hostile_rust_samples_fail_alone_inside_batches() {
    let expected: [(&str, Option<&str>); 16] = [
        ("hello", None),
        ("huge-prompt", Some("over the limit")),
        ("score:huge-metric-name", Some("bytes long")),
        ("score:many-metrics", Some("1000000 metrics")),
        ("hello again", None),
        ("trap", Some("trapped")),
        ("recurse", Some("trapped")),
        ("score:recurse", Some("trapped")),
        ("loop", Some("time limit")),
        ("score:oom", Some("memory limit")),
        ("bad-utf8", Some("UTF-8")),
        ("entropy", None),
        ("snoop", None),
        ("socket", None),
        ("score:unreachable", Some("trapped")),
        ("hello at last", None),
    ];
    let lines: Vec<&str> = expected.iter().map(|(c, _)| *c).collect();
    let (records, _) = exec_lines(scenario_artifacts::FAULTY, &lines, &["--scenario-memory-mib", "256"]);
    assert_outcomes(&records, &expected);
}

/// A scenario whose `aggregate` returns a million metrics: the run keeps every sample and says why the
/// scenario's own aggregates are missing, and summary.json stays small.
#[test]
fn an_aggregate_with_a_million_metrics_is_refused_and_the_run_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("commands.txt");
    std::fs::write(&data, "hello\nworld\n").unwrap();
    let results = dir.path().join("run");
    let (out, _, stderr) = run(runner()
        .args(["exec", scenario_artifacts::FAULTY, "--no-progress", "--max-new-tokens", "2"])
        .args(["--scenario-arg", "fault=aggregate:many-metrics", "--model"])
        .arg(tiny_model())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&results));
    assert!(stderr.contains("1000000 metrics"), "{stderr}");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    assert_eq!(read_samples(&results).unwrap().len(), 2);
    let summary = std::fs::metadata(results.join("summary.json")).unwrap().len();
    assert!(summary < 1 << 20, "summary.json is {summary} bytes");
}

/// Deep recursion and memory exhaustion in every export a dataset or option can reach: each is that
/// call's error, and the scenario works again afterwards.
#[test]
fn every_export_survives_deep_recursion_and_exhaustion() {
    use runner::scenario::{Options, Scenario, ScenarioError, ScenarioLimits};
    let limits = ScenarioLimits { memory_bytes: 64 << 20, call_timeout: std::time::Duration::from_secs(5) };
    let configured = |fault: &str| {
        let mut scenario = Scenario::load(Path::new(scenario_artifacts::FAULTY), limits).unwrap();
        let mut options = Options::defaults_for(scenario.metadata());
        options.args = vec![("fault".to_string(), fault.to_string())];
        scenario.configure(options).map(|_| scenario)
    };
    let contained = |error: ScenarioError, function: &str| match &error {
        ScenarioError::Trap { function: f, .. } | ScenarioError::MemoryLimit { function: f, .. } => {
            assert_eq!(*f, function, "{error}")
        }
        other => panic!("{function}: expected a trap or the memory limit, got {other}"),
    };
    for action in ["recurse", "oom"] {
        contained(configured(&format!("configure:{action}")).err().unwrap(), "configure");
        let mut scenario = configured(&format!("embedded-dataset:{action}")).unwrap();
        contained(scenario.embedded_dataset().unwrap_err(), "embedded-dataset");
        let mut scenario = configured(&format!("parse-dataset:{action}")).unwrap();
        let loaded = runner::datasets::LoadedData::bytes(
            "file",
            "c.txt".into(),
            "c.txt",
            None,
            b"hi\n".to_vec(),
            &Default::default(),
        )
        .unwrap();
        contained(scenario.parse_dataset(&loaded.info, &loaded.input).unwrap_err(), "parse-dataset");
        let mut scenario = configured(&format!("aggregate:{action}")).unwrap();
        contained(scenario.aggregate(&[]).unwrap_err(), "aggregate");
        // The instance was rebuilt and configured again: other calls still work.
        assert!(scenario.embedded_dataset().unwrap().is_some());
    }
}

/// The hostile Python fixture, or `None` (with the reason printed) where componentize-py is missing;
/// CI must have it.
fn python_hostile() -> Option<&'static str> {
    let found = scenario_artifacts::ALL.iter().find(|(name, _)| *name == "hostile").map(|(_, path)| *path);
    if found.is_none() {
        let reason = scenario_artifacts::PYTHON_NOT_BUILT.unwrap_or("the hostile Python fixture was not built");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must build the Python fixture: {reason}");
        eprintln!("skipped: {reason}");
    }
    found
}

fn python_report(scenario: &mut runner::scenario::Scenario, command: &str) -> String {
    let sample = runner::scenario::Sample {
        id: command.to_string(),
        subset: None,
        fields: vec![runner::scenario::Field { name: "command".to_string(), value: command.to_string() }],
        reference: String::new(),
    };
    match scenario.build_prompt(&sample, &[], false).unwrap().prompt {
        runner::prompt::Prompt::Text(text) => text,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Inside the Python interpreter the sandbox grants nothing either: no files, no sockets, no environment
/// or arguments, and the clocks and random sources are the host's fixed ones, the same on every load.
#[test]
fn a_hostile_python_guest_sees_no_files_sockets_or_environment_and_fixed_clocks() {
    use runner::scenario::{Scenario, ScenarioLimits};
    let Some(hostile) = python_hostile() else { return };
    let load = || Scenario::load(Path::new(hostile), ScenarioLimits::default()).unwrap();
    let mut scenario = load();
    let files = python_report(&mut scenario, "files");
    assert_eq!(files.matches("refused").count(), 4, "{files}");
    let socket = python_report(&mut scenario, "socket");
    assert_eq!(socket.matches("refused").count(), 2, "{socket}");
    assert_eq!(python_report(&mut scenario, "env"), "env={} argv=[]");
    let clock = python_report(&mut scenario, "clock");
    assert!(clock.starts_with("wall=1735689600.0 monotonic="), "{clock}");
    assert_eq!(clock, python_report(&mut load(), "clock"), "the same on every load");
}

/// Loops, unbounded recursion, exhaustion, exceptions and a 100 MB prompt from Python fail their own
/// sample with the scenario's message (the traceback for an exception); the others finish.
#[test]
fn hostile_python_samples_fail_alone_inside_batches() {
    let Some(hostile) = python_hostile() else { return };
    let expected: [(&str, Option<&str>); 9] = [
        ("hello", None),
        ("loop", Some("time limit")),
        ("raise", Some("hostile was asked to raise")),
        ("recurse", Some("scenario")),
        ("files", None),
        ("huge", Some("over the limit")),
        ("score:oom", Some("memory limit")),
        ("score:raise", Some("hostile was asked to raise")),
        ("hello again", None),
    ];
    let lines: Vec<&str> = expected.iter().map(|(c, _)| *c).collect();
    let (records, _) = exec_lines(hostile, &lines, &["--scenario-memory-mib", "384"]);
    assert_outcomes(&records, &expected);
}

/// A Python guest that loops or raises in `configure` or `parse-dataset` stops the run before any sample
/// with the scenario's message and exit status 1.
#[test]
fn a_hostile_python_guest_failing_before_the_first_sample_is_a_clear_error() {
    let Some(hostile) = python_hostile() else { return };
    for (fault, needle) in [("configure:loop", "time limit"), ("parse-dataset:raise", "hostile was asked to raise")] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("commands.txt");
        std::fs::write(&data, "hello\n").unwrap();
        let (out, _, stderr) = run(runner()
            .args(["exec", hostile, "--no-progress", "--scenario-timeout", "2", "--scenario-arg"])
            .arg(format!("fault={fault}"))
            .arg("--model")
            .arg(tiny_model())
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(dir.path().join("run")));
        assert_eq!(out.status.code(), Some(1), "{fault}:\n{stderr}");
        assert!(stderr.contains("Error:") && stderr.contains(needle), "{fault}:\n{stderr}");
    }
}

/// The inputs in `fuzz/regressions/TARGET/` (each once crashed a fuzz target) replayed through the same
/// entry points as the fuzz targets: each is read or refused with an error, never a panic.
#[test]
fn inputs_that_once_crashed_the_fuzzers_are_read_or_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("fuzz").join("regressions");
    let inputs = |target: &str| -> Vec<(PathBuf, Vec<u8>)> {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        files.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
    };
    let scratch = tempfile::tempdir().unwrap();
    for (path, bytes) in inputs("gguf") {
        let file = scratch.path().join("input.gguf");
        std::fs::write(&file, &bytes).unwrap();
        if let Ok(gguf) = runner::gguf::GgufFile::open(&file) {
            for tensor in gguf.tensors() {
                let _ = (tensor.byte_len(), gguf.tensor_bytes(tensor));
            }
            for key in gguf.metadata().keys() {
                let _ = (gguf.u64(key), gguf.f64(key), gguf.str_array(key));
            }
        }
        eprintln!("replayed {}", path.display());
    }
    const NAMES: [&str; 5] = ["fuzz.jsonl", "fuzz.json", "fuzz.csv", "fuzz.tsv", "fuzz.parquet"];
    for (path, bytes) in inputs("datasets") {
        let Some((&selector, data)) = bytes.split_first() else { continue };
        let name = NAMES[usize::from(selector) % NAMES.len()];
        if let Err(error) = runner::datasets::decode(name, data) {
            assert!(error.to_string().contains(name), "{}: {error}", path.display());
        }
        eprintln!("replayed {}", path.display());
    }
    for (path, bytes) in inputs("results") {
        let Some((_, data)) = bytes.split_first() else { continue };
        std::fs::write(scratch.path().join("samples.jsonl"), data).unwrap();
        let _ = read_samples(scratch.path());
        let _ = serde_json::from_slice::<runner::results::RunSummary>(data);
        eprintln!("replayed {}", path.display());
    }
}

/// A real two-sample GSM8K run on the tiny model in `dir/run`, to be made hostile afterwards.
fn two_sample_run(dir: &Path) -> PathBuf {
    let results = dir.join("run");
    let (out, _, stderr) = run(runner()
        .args(["exec", scenario_artifacts::GSM8K, "--no-progress", "--max-samples", "2", "--max-new-tokens", "2"])
        .arg("--model")
        .arg(tiny_model())
        .arg("--out")
        .arg(&results));
    assert!(out.status.success(), "{stderr}");
    results
}

/// Markup from models (an output), datasets (the label), scenarios (name, description) and the machine
/// (host names, warnings) reaches the HTML report escaped: a `<script>` in any of them never runs.
#[test]
fn the_html_report_escapes_markup_from_models_datasets_and_scenarios() {
    const SCRIPT: &str = "<script>alert(1)</script>";
    let dir = tempfile::tempdir().unwrap();
    let results = two_sample_run(dir.path());
    // As if the model had written it, and the scenario, dataset and machine had named themselves so.
    let samples = std::fs::read_to_string(results.join("samples.jsonl")).unwrap();
    let hostile: Vec<String> = samples
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["output"] = format!("The answer is {SCRIPT}").into();
            record["extracted"] = SCRIPT.into();
            record.to_string()
        })
        .collect();
    std::fs::write(results.join("samples.jsonl"), hostile.join("\n") + "\n").unwrap();
    let summary_path = results.join("summary.json");
    let mut summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    for pointer in ["/scenario/name", "/scenario/description", "/model/info/name", "/dataset/label", "/host/hostname"] {
        *summary.pointer_mut(pointer).unwrap_or_else(|| panic!("summary.json has {pointer}")) =
            format!("x{SCRIPT}").into();
    }
    std::fs::write(&summary_path, serde_json::to_vec(&summary).unwrap()).unwrap();
    let html = dir.path().join("report.html");
    let (out, _, stderr) = run(runner().arg("report").arg(&results).args(["--format", "html", "--out"]).arg(&html));
    assert!(out.status.success(), "{stderr}");
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(!html.to_lowercase().contains("<script"), "unescaped <script> in the HTML report");
    assert!(html.contains("&lt;script&gt;"), "the hostile names should be shown, escaped");
}

/// Control characters from models, datasets and scenarios (an ANSI escape that clears the screen, a
/// carriage return, a right-to-left override) reach the terminal escaped, never as themselves; the files
/// keep the text exactly.
#[test]
fn terminal_output_escapes_control_characters_from_scenarios_and_datasets() {
    const HOSTILE: &str = "x\u{1b}[2J\u{1b}[31m\r\u{202e}";
    let dir = tempfile::tempdir().unwrap();
    let results = two_sample_run(dir.path());
    let summary_path = results.join("summary.json");
    let mut summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    for pointer in ["/scenario/name", "/model/info/name", "/dataset/label"] {
        *summary.pointer_mut(pointer).unwrap_or_else(|| panic!("summary.json has {pointer}")) = HOSTILE.into();
    }
    std::fs::write(&summary_path, serde_json::to_vec(&summary).unwrap()).unwrap();
    let out = runner().arg("report").arg(&results).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("x\\u{1b}[2J\\u{1b}[31m\\u{d}\\u{202e}"), "the hostile name, escaped:\n{stdout}");
    assert!(!stdout.contains(['\u{1b}', '\r', '\u{202e}']), "a raw control character reached the terminal:\n{stdout}");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(kept["dataset"]["label"], HOSTILE);
}
