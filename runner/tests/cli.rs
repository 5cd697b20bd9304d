//! The `runner` binary as a user runs it: a whole benchmark on a tiny generated model with the real
//! GSM8K component, the faulty fixture component, and the errors a user meets first (no ONNX Runtime
//! library, a broken model folder, a bad dataset row, a bad flag).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use runner::results::writer::{SAMPLES_FILE, SUMMARY_FILE, SUMMARY_MARKDOWN_FILE, read_samples};
use runner::results::{RunStatus, RunSummary, SampleStatus, Stage};

fn runner() -> Command {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner"));
    cmd.env_remove("ORT_DYLIB_PATH");
    // Precompiled scenarios go to a folder of the test's own.
    cmd.env("RUNNER_CACHE_DIR", CACHE.get_or_init(|| tempfile::tempdir().unwrap()).path());
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // A guest's own panic message may appear in a sample's error; runner's main thread must never panic.
    assert!(!stderr.contains("thread 'main'"), "runner panicked:\n{stderr}");
    (out, stdout, stderr)
}

/// A tiny llama model imported through the CLI, shared by the tests of this file.
fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &MODEL
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let gguf = dir.path().join("tiny.gguf");
            runner::testing::write_tiny_llama_gguf(&gguf, 7);
            let model = dir.path().join("tiny-int4");
            let (out, stdout, stderr) = run(runner().arg("import").arg(&gguf).arg("--out").arg(&model));
            assert!(out.status.success(), "import failed:\n{stdout}\n{stderr}");
            (dir, model)
        })
        .1
}

/// `runner exec SCENARIO --model MODEL --no-progress`, for a test to add its own flags to.
fn exec_with(scenario: &str, model: &Path) -> Command {
    let mut cmd = runner();
    cmd.arg("exec").arg(scenario).arg("--model").arg(model).arg("--no-progress");
    cmd
}

fn exec_on_tiny(scenario: &str) -> Command {
    exec_with(scenario, tiny_model())
}

fn read_summary(dir: &Path) -> RunSummary {
    serde_json::from_slice(&std::fs::read(dir.join(SUMMARY_FILE)).unwrap()).unwrap()
}

#[test]
fn exec_runs_gsm8k_end_to_end_and_writes_every_result_file() {
    let out_dir = tempfile::tempdir().unwrap();
    let results = out_dir.path().join("run");
    let (out, stdout, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .args(["--max-samples", "3", "--max-new-tokens", "6", "--out"])
        .arg(&results));
    assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("embedded sample"), "the embedded dataset must be labelled:\n{stderr}");
    assert!(stdout.contains("accuracy"), "{stdout}");
    assert!(stdout.contains("TTFT"), "{stdout}");

    let samples = read_samples(&results).unwrap();
    assert_eq!(samples.len(), 3);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s.index, i);
        assert_eq!(s.status, SampleStatus::Ok, "{s:?}");
        assert!(s.prompt_text.as_ref().unwrap().contains("<|im_start|>user"), "chat template applied: {s:?}");
        assert!(s.output_tokens.unwrap() <= 6);
        assert!(s.timings.ttft_ms > 0.0 && s.timings.e2e_ms >= s.timings.ttft_ms);
        assert!(s.metrics.contains_key("accuracy"));
    }
    let summary = read_summary(&results);
    assert_eq!(summary.status, RunStatus::Complete);
    assert_eq!(summary.dataset.source, "embedded");
    assert_eq!(summary.dataset.selected, 3);
    assert!(summary.scenario.hash.starts_with("sha256:"));
    assert!(summary.model.hash.starts_with("sha256:"));
    assert_eq!(summary.runtime.onnxruntime_version, "1.31.1");
    assert_eq!(summary.results.samples, 3);
    assert!(summary.results.ttft_ms.is_some() && summary.results.itl_ms.is_some());
    assert!(summary.results.peak_rss_bytes.unwrap() > 10 << 20);
    let markdown = std::fs::read_to_string(results.join(SUMMARY_MARKDOWN_FILE)).unwrap();
    assert!(markdown.contains("| accuracy ↑ |"), "{markdown}");

    // A second run into the same folder is refused: results are never mixed or overwritten.
    let (again, _, stderr) =
        run(exec_on_tiny(scenario_artifacts::GSM8K).args(["--max-samples", "1", "--out"]).arg(&results));
    assert!(!again.status.success());
    assert!(stderr.contains("already holds a run") && stderr.contains(SAMPLES_FILE), "{stderr}");
}

#[test]
fn a_bad_dataset_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    std::fs::write(&data, "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}\n{\"question\": \"2+2?\"}\n").unwrap();
    let (out, _, stderr) =
        run(exec_on_tiny(scenario_artifacts::GSM8K).arg("--data").arg(&data).arg("--out").arg(dir.path().join("run")));
    assert!(!out.status.success());
    assert!(stderr.contains("bad.jsonl") && stderr.contains("record 2") && stderr.contains("answer"), "{stderr}");
}

#[test]
fn a_missing_onnx_runtime_library_says_how_to_get_one() {
    let home = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .env("RUNNER_HOME", home.path())
        .arg("--out")
        .arg(home.path().join("run")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("ONNX Runtime") && stderr.contains("cargo xtask setup"), "{stderr}");

    let (out, _, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .arg("--ort-lib")
        .arg(home.path().join("libonnxruntime.so"))
        .arg("--out")
        .arg(home.path().join("run2")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("libonnxruntime.so"), "{stderr}");
}

#[test]
fn a_broken_model_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    std::fs::write(model.join("model.onnx"), b"not a protobuf").unwrap();
    let (out, _, stderr) = run(exec_with(scenario_artifacts::GSM8K, &model).arg("--out").arg(dir.path().join("run")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("model.onnx") || stderr.contains(&model.display().to_string()), "{stderr}");

    let (out, _, stderr) = run(&mut exec_with(scenario_artifacts::GSM8K, &dir.path().join("absent")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("absent") && stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn bad_flags_are_named() {
    let (out, _, stderr) = run(runner().args(["exec", "x.wasm", "--max-samples", "many"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--max-samples"), "{stderr}");
    let (out, _, stderr) = run(runner().args(["exec", "absent.wasm", "--no-progress"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("absent.wasm") && stderr.contains("cargo xtask setup"), "{stderr}");
    let (out, _, stderr) = run(runner().args(["exec", "x.wasm", "--scenario-timeout", "0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--scenario-timeout"), "{stderr}");
    // Sampling settings out of range fail before anything loads, naming the flag and the value.
    for (flag, value) in [("--top-p", "1.5"), ("--temperature", "-0.5"), ("--repetition-penalty", "0")] {
        let (out, _, stderr) = run(runner().args(["exec", "x.wasm", &format!("{flag}={value}")]));
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: {stderr}");
        assert!(stderr.contains(&format!("{flag} must be")) && stderr.contains(value), "{stderr}");
    }
}

/// Sampling flags reach generation and the results: with --ignore-eos every sample runs to its budget.
#[test]
fn sampling_flags_are_used_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let (out, stdout, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .args(["--max-samples", "2", "--max-new-tokens", "5", "--temperature", "0.8", "--top-k", "20"])
        .args(["--top-p", "0.9", "--seed", "42", "--repetition-penalty", "1.2", "--ignore-eos", "--out"])
        .arg(&results));
    assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
    let settings = read_summary(&results).settings;
    assert_eq!((settings.temperature, settings.top_k, settings.top_p), (0.8, Some(20), Some(0.9)));
    assert_eq!((settings.seed, settings.repetition_penalty, settings.ignore_eos), (42, 1.2, true));
    for sample in read_samples(&results).unwrap() {
        // A stop string may still end a sample early; EOS may not.
        assert!(sample.finish.as_deref() == Some("length") || sample.finish.as_deref() == Some("stop"), "{sample:?}");
        if sample.finish.as_deref() == Some("length") {
            assert_eq!(sample.output_tokens, Some(5));
        }
    }
}

/// Faults inside a scenario fail one sample each; the run goes on and records why.
#[test]
fn scenario_faults_fail_their_sample_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("commands.txt");
    std::fs::write(&data, "hello\ntrap\nloop\nhello again\noom\n").unwrap();
    let results = dir.path().join("run");
    let (out, stdout, stderr) = run(exec_on_tiny(scenario_artifacts::FAULTY)
        .arg("--data")
        .arg(&data)
        .args(["--scenario-timeout", "1", "--scenario-memory-mib", "64", "--out"])
        .arg(&results));
    assert!(out.status.success(), "a faulty scenario must not end the run:\n{stdout}\n{stderr}");
    let samples = read_samples(&results).unwrap();
    let statuses: Vec<SampleStatus> = samples.iter().map(|s| s.status).collect();
    use SampleStatus::{Failed, Ok};
    assert_eq!(statuses, [Ok, Failed, Failed, Ok, Failed]);
    for (index, expected) in [(1, "trap"), (2, "time"), (4, "memory")] {
        let error = samples[index].error.as_ref().unwrap();
        assert_eq!(error.stage, Stage::Prompt, "{error:?}");
        assert!(error.message.to_lowercase().contains(expected), "sample {index}: {error:?}");
    }
    assert!(stderr.contains("Sample 1 (2) failed"), "{stderr}");
    let summary = read_summary(&results);
    assert_eq!(summary.status, RunStatus::Complete);
    assert_eq!((summary.results.succeeded, summary.results.failed), (2, 3));
}

/// A scenario that fails every sample stops the run early, and keeps what finished.
#[test]
fn consecutive_failures_abort_the_run_and_keep_what_finished() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("commands.txt");
    std::fs::write(&data, "hello\ntrap\nfail\ntrap\nhello\n").unwrap();
    let results = dir.path().join("run");
    let (out, _, stderr) = run(exec_on_tiny(scenario_artifacts::FAULTY)
        .arg("--data")
        .arg(&data)
        .args(["--max-consecutive-failures", "3", "--out"])
        .arg(&results));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("3 samples failed in a row"), "{stderr}");
    assert_eq!(read_samples(&results).unwrap().len(), 4);
    let summary = read_summary(&results);
    assert_eq!(summary.status, RunStatus::Aborted);
    assert_eq!((summary.results.succeeded, summary.results.failed), (1, 3));
}
