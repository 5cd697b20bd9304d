//! The `runner` binary as a user runs it: a whole benchmark on a tiny generated model with the real
//! GSM8K component, the faulty fixture component, and the errors a user meets first (no ONNX Runtime
//! library, a broken model folder, a bad dataset row, a bad flag).

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{exec, read_summary, run, runner};
use runner::import::Precision;
use runner::results::writer::{SAMPLES_FILE, SUMMARY_FILE, SUMMARY_MARKDOWN_FILE, read_samples};
use runner::results::{RunStatus, SampleRecord, SampleStatus, Stage};

mod common;

/// The tiny int4 model the tests of this file share.
fn tiny_model() -> PathBuf {
    common::tiny_model(7, Precision::Int4)
}

fn exec_on_tiny(scenario: &str) -> Command {
    exec(scenario, &tiny_model())
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
    common::copy_model(&tiny_model(), &model);
    std::fs::write(model.join("model.onnx"), b"not a protobuf").unwrap();
    let (out, _, stderr) = run(exec(scenario_artifacts::GSM8K, &model).arg("--out").arg(dir.path().join("run")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("model.onnx") || stderr.contains(&model.display().to_string()), "{stderr}");

    let (out, _, stderr) = run(&mut exec(scenario_artifacts::GSM8K, &dir.path().join("absent")));
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
    // A list flag: each value is checked as it is parsed (a usage error, exit 2).
    let (out, _, stderr) = run(runner().args(["exec", "x.wasm", "--batch-size", "0"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--batch-size") && stderr.contains("'0'"), "{stderr}");
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
        // The generated ids are recorded, one per output token, for token-by-token comparisons.
        let ids = sample.output_token_ids.as_ref().expect("samples.jsonl records the output token ids");
        assert_eq!(Some(ids.len()), sample.output_tokens, "{sample:?}");
        assert!(ids.iter().all(|&id| (id as usize) < runner::testing::tiny::VOCAB), "{ids:?}");
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
    // Finished, but some samples failed: exit status 3, the results kept.
    assert_eq!(out.status.code(), Some(3), "a faulty scenario must not end the run:\n{stdout}\n{stderr}");
    assert!(stderr.contains("3 of 5 samples failed"), "{stderr}");
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

/// The three ends of a run, told apart by the exit status, for one run and for a sweep alike: 0 when every
/// sample succeeded, 3 when some failed, 1 when none succeeded (the sweep records that run as failed).
#[test]
fn exit_status_tells_every_sample_passed_from_some_failed_from_none_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let run_lines = |lines: &str, out: &str, extra: &[&str]| {
        let data = dir.path().join(format!("{out}.txt"));
        std::fs::write(&data, lines).unwrap();
        let results = dir.path().join(out);
        let (status, _, stderr) = run(exec_on_tiny(scenario_artifacts::FAULTY)
            .arg("--data")
            .arg(&data)
            .args(["--max-consecutive-failures", "100", "--out"])
            .arg(&results)
            .args(extra));
        (status.status.code(), stderr, results)
    };
    let (code, stderr, _) = run_lines("hello\nhello again\n", "passed", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr, _) = run_lines("hello\ntrap\n", "partial", &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("Warning: 1 of 2 samples failed"), "{stderr}");
    let (code, stderr, results) = run_lines("trap\ntrap\n", "none", &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Error: no sample succeeded: all 2 samples failed"), "{stderr}");
    assert_eq!(read_summary(&results).results.failed, 2, "the failed samples are recorded");

    // A sweep of two runs (two batch sizes) that both fail every sample: each is `failed` in sweep.json.
    let (code, stderr, sweep) = run_lines("trap\n", "sweep-none", &["--batch-size", "1,2"]);
    assert_eq!(code, Some(1), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("sweep.json")).unwrap()).unwrap();
    let statuses: Vec<&str> = state["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed"], "{state}");
    assert!(state["runs"][0]["error"].as_str().unwrap().contains("no sample succeeded"), "{state}");
    let (code, stderr, _) = run_lines("hello\ntrap\n", "sweep-partial", &["--batch-size", "1,2"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("2 of the runs finished with failed samples"), "{stderr}");
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

/// A run records the precision measured from the graph, the session's mode and where every node ran.
#[test]
fn exec_records_graph_precision_mode_and_node_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let (out, stdout, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .args(["--max-samples", "1", "--max-new-tokens", "2", "--mode", "eager", "--inter-threads", "1", "--out"])
        .arg(&results));
    assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
    let summary = read_summary(&results);
    let graph = summary.model.graph.expect("the graph's precision is recorded");
    assert_eq!(graph.weight_precision, "int4");
    assert!(graph.label.contains("MatMulNBits 4-bit block 32"), "{}", graph.label);
    let session = summary.runtime.session.expect("the session is recorded");
    assert_eq!(summary.runtime.execution_provider, "cpu");
    assert_eq!((session.mode.to_string(), session.graph_optimization.to_string()), ("eager".into(), "disable".into()));
    let nodes = session.node_assignment.expect("node assignment");
    assert_eq!(nodes.nodes_per_provider.keys().collect::<Vec<_>>(), ["CPUExecutionProvider"]);
    assert!(nodes.not_on_requested.is_empty());
    assert!(stdout.contains("eager mode") && stdout.contains("CPUExecutionProvider"), "{stdout}");
    assert!(stdout.contains(&graph.label), "{stdout}");
    let markdown = std::fs::read_to_string(results.join(SUMMARY_MARKDOWN_FILE)).unwrap();
    assert!(
        markdown.contains("| precision (from the graph) | int4 (") && markdown.contains("eager mode"),
        "{markdown}"
    );
}

/// No GPU runtime here: asking for a GPU provider is an error that names the provider and what is missing,
/// never a run that silently falls back to the CPU.
#[test]
fn gpu_providers_without_a_gpu_runtime_are_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .env("RUNNER_HOME", home.path())
        .args(["--ep", "cuda", "--out"])
        .arg(home.path().join("run")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--ep cuda needs the GPU build of ONNX Runtime"), "{stderr}");
    assert!(stderr.contains("1.31.1-gpu") && stderr.contains("cargo xtask setup --gpu"), "{stderr}");
    assert!(!home.path().join("run").join(SAMPLES_FILE).exists());

    let cpu_lib = runner::paths::ort_dir("cpu").join(runner::paths::ort_lib_name());
    let (out, _, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .args(["--ep", "tensorrt", "--trt-fp16", "--ort-lib"])
        .arg(&cpu_lib)
        .arg("--out")
        .arg(home.path().join("run2")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("TensorRT execution provider (--ep tensorrt") && stderr.contains("failed to register"),
        "{stderr}"
    );
    assert!(stderr.contains("not enabled in this build") && stderr.contains("cargo xtask setup --gpu"), "{stderr}");
}

#[test]
fn provider_flags_are_checked_by_name() {
    for (args, code, needle) in [
        (&["--trt-fp16"][..], 1, "--trt-fp16 applies to --ep tensorrt only"),
        (&["--mode", "kernelized"][..], 1, "--mode kernelized needs a GPU provider"),
        (&["--mode", "eager", "--graph-opt", "all"][..], 1, "--graph-opt all"),
        (&["--cuda-graph"][..], 1, "--cuda-graph"),
        (&["--ep", "cuda", "--gpu-mem-limit", "8parsecs"][..], 2, "--gpu-mem-limit"),
        (&["--ep", "rocm"][..], 2, "--ep"),
        (&["--graph-opt", "max"][..], 2, "--graph-opt"),
    ] {
        let (out, _, stderr) = run(runner().args(["exec", "x.wasm"]).args(args));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Without --out, an import lands in models/NAME/PRECISION under runner's home.
#[test]
fn import_defaults_to_a_folder_per_precision() {
    let home = tempfile::tempdir().unwrap();
    let gguf = home.path().join("tiny-llama.Q4_1.gguf");
    runner::testing::write_tiny_llama_gguf(&gguf, 7);
    for precision in ["int8", "fp16"] {
        let (out, stdout, stderr) =
            run(runner().env("RUNNER_HOME", home.path()).arg("import").arg(&gguf).args(["--precision", precision]));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let folder = home.path().join("models").join("tiny-llama").join(precision);
        assert!(folder.join("model.onnx").is_file(), "{stdout}");
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("runner.json")).unwrap()).unwrap();
        assert_eq!(record["precision"], precision);
    }
}

/// w8a8 is derived, never imported: `import --precision w8a8` says how to get it, and `exec` on a GGUF at w8a8
/// imports fp32 and derives w8a8 from it (DynamicQuantizeMatMul), recording the derivation and its fidelity.
#[test]
fn exec_derives_w8a8_from_a_ggufs_fp32_import() {
    let home = tempfile::tempdir().unwrap();
    let gguf = home.path().join("tiny-llama.Q4_1.gguf");
    runner::testing::write_tiny_llama_gguf(&gguf, 7);
    let (out, _, stderr) =
        run(runner().env("RUNNER_HOME", home.path()).arg("import").arg(&gguf).args(["--precision", "w8a8"]));
    assert!(!out.status.success());
    assert!(stderr.contains("--precision w8a8 is derived") && stderr.contains("--precision fp32"), "{stderr}");

    let ort_lib = runner::paths::ort_dir("cpu").join(runner::paths::ort_lib_name());
    let results = home.path().join("run");
    let (out, stdout, stderr) = run(runner()
        .env("RUNNER_HOME", home.path())
        .arg("exec")
        .arg(scenario_artifacts::GSM8K)
        .arg("--model")
        .arg(&gguf)
        .args(["--precision", "w8a8", "--max-samples", "2", "--max-new-tokens", "4", "--no-progress"])
        .arg("--ort-lib")
        .arg(&ort_lib)
        .arg("--out")
        .arg(&results));
    assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("The fp32 import of") && stderr.contains("Deriving w8a8 from"), "{stderr}");
    let summary = read_summary(&results);
    let graph = summary.model.graph.as_ref().unwrap();
    assert_eq!(graph.weight_precision, "w8a8");
    assert!(graph.label.starts_with("w8a8 (DynamicQuantizeMatMul 8-bit: "), "{}", graph.label);
    let record = summary.model.derivation.as_ref().expect("summary.json records the derivation");
    assert_eq!((record.options.precision, record.source_precision.as_str()), (Precision::W8a8, "fp32"));
    assert!(record.source_dir.ends_with("fp32"), "{}", record.source_dir);
    assert!(record.fidelity.mean_kl < 5e-4 && record.fidelity.top1_agreement >= 0.9, "{:?}", record.fidelity);
    assert!(
        stdout.contains("(DynamicQuantizeMatMul, 7-bit weights per channel, head float) from the fp32 graph"),
        "{stdout}"
    );
    assert_eq!(summary.results.succeeded, 2);
}

#[test]
fn lora_import_adapter_init_info_and_exec_with_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    runner::testing::write_tiny_llama_gguf(&gguf, 7);
    let model = dir.path().join("tiny-lora");
    let (out, stdout, stderr) = run(runner().arg("import").arg(&gguf).arg("--out").arg(&model).args([
        "--lora-targets",
        "q_proj,v_proj,down_proj",
        "--lora-max-rank",
        "8",
    ]));
    assert!(out.status.success(), "import failed:\n{stdout}\n{stderr}");

    let adapter = dir.path().join("r4.onnx_adapter");
    let (out, stdout, stderr) = run(runner()
        .args(["adapter", "init", "--model"])
        .arg(&model)
        .args(["--rank", "4", "--seed", "3", "--scale", "2", "--out"])
        .arg(&adapter));
    assert!(out.status.success(), "adapter init failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("rank        4") && stdout.contains("q_proj, v_proj, down_proj"), "{stdout}");

    let (out, stdout, stderr) =
        run(runner().args(["adapter", "info"]).arg(&adapter).arg("--model").arg(&model).arg("--json"));
    assert!(out.status.success(), "adapter info failed:\n{stdout}\n{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["rank"], 4);
    assert_eq!(info["tensors"], 2 * 3 * 2);
    assert_eq!(info["size_bytes"], std::fs::metadata(&adapter).unwrap().len());
    assert!(info["parameter_share"].as_f64().unwrap() > 0.0);

    let results = dir.path().join("run");
    let (out, stdout, stderr) = run(exec(scenario_artifacts::GSM8K, &model)
        .args(["--max-samples", "2", "--max-new-tokens", "4", "--adapter"])
        .arg(&adapter)
        .arg("--out")
        .arg(&results));
    assert!(out.status.success(), "exec --adapter failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("LoRA rank 4"), "the terminal summary names the adapter:\n{stdout}");
    let summary = read_summary(&results);
    let recorded = summary.adapter.expect("the summary records the adapter");
    assert_eq!(recorded.rank, 4);
    assert_eq!(recorded.path, adapter);
    assert_eq!(recorded.hash, info["hash"].as_str().unwrap());
    let markdown = std::fs::read_to_string(results.join(SUMMARY_MARKDOWN_FILE)).unwrap();
    assert!(markdown.contains("| adapter |") && markdown.contains("LoRA rank 4"), "{markdown}");

    // The plain model has no LoRA inputs: the error says so and how to make one.
    let (out, _, stderr) = run(exec_on_tiny(scenario_artifacts::GSM8K)
        .args(["--max-samples", "1", "--adapter"])
        .arg(&adapter)
        .arg("--out")
        .arg(dir.path().join("refused")));
    assert!(!out.status.success());
    assert!(stderr.contains("no LoRA inputs") && stderr.contains("r4.onnx_adapter"), "{stderr}");
    let (out, _, stderr) = run(runner()
        .arg("import")
        .arg(&gguf)
        .arg("--out")
        .arg(dir.path().join("bad"))
        .args(["--lora-targets", "q_proj,qkv_proj"]));
    assert!(!out.status.success());
    assert!(stderr.contains("--lora-targets") && stderr.contains("qkv_proj"), "{stderr}");
}

/// `--batch-size 4` gives every sample the output it gets alone, one line per sample in dataset order.
#[test]
fn batched_exec_keeps_per_sample_results_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    runner::testing::write_tiny_llama_gguf(&gguf, 7);
    // Accuracy level 0: float activations, so batched and single-row kernels round alike.
    let model = dir.path().join("model");
    let (out, _, stderr) =
        run(runner().arg("import").arg(&gguf).arg("--out").arg(&model).args(["--accuracy-level", "0"]));
    assert!(out.status.success(), "{stderr}");
    let data = dir.path().join("questions.jsonl");
    let rows: Vec<String> = (1..=6)
        .map(|i| {
            format!("{{\"question\": \"What is {i} plus {}{}?\", \"answer\": \"#### {}\"}}", i * 7, "0".repeat(i), i)
        })
        .collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    let mut samples = Vec::new();
    for batch in ["1", "4"] {
        let results = dir.path().join(format!("run-{batch}"));
        let (out, stdout, stderr) = run(exec(scenario_artifacts::GSM8K, &model)
            .arg("--data")
            .arg(&data)
            .args(["--max-new-tokens", "10", "--batch-size", batch, "--out"])
            .arg(&results));
        assert!(out.status.success(), "batch {batch}:\n{stdout}\n{stderr}");
        let summary = read_summary(&results);
        assert_eq!(summary.settings.batch_size, batch.parse::<usize>().unwrap());
        let records = read_samples(&results).unwrap();
        // Throughput counts a batch's time once: six samples ran as batches of 4 and 2 (or six of 1), and
        // each row of a batch recorded the whole batch's time.
        let batches: Vec<&[SampleRecord]> = match batch {
            "4" => vec![&records[..4], &records[4..]],
            _ => records.chunks(1).collect(),
        };
        let model_seconds: f64 = batches.iter().map(|b| b[0].timings.generate_ms / 1e3).sum();
        for b in &batches {
            assert!(b.iter().all(|r| r.timings.generate_ms == b[0].timings.generate_ms), "{b:?}");
        }
        let tokens: usize = records.iter().filter_map(|r| r.output_tokens).sum();
        let r = &summary.results;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b;
        assert!(
            close(r.samples_per_s.unwrap(), 6.0 / model_seconds),
            "{:?} vs {}",
            r.samples_per_s,
            6.0 / model_seconds
        );
        assert!(close(r.output_tokens_per_s.unwrap(), tokens as f64 / model_seconds), "{:?}", r.output_tokens_per_s);
        assert_eq!(stdout.contains("(batches of 4, each batch's time counted once)"), batch == "4", "{stdout}");
        samples.push(records);
    }
    assert_eq!(samples[1].len(), 6);
    for (one, four) in samples[0].iter().zip(&samples[1]) {
        assert_eq!((one.index, &one.id), (four.index, &four.id));
        assert_eq!(one.output, four.output, "sample {}", one.index);
        assert_eq!(one.prompt_tokens, four.prompt_tokens);
        assert_eq!(four.status, SampleStatus::Ok);
    }
}

/// A scenario fault inside a batch fails that sample only.
#[test]
fn faults_inside_a_batch_fail_their_sample_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("commands.txt");
    std::fs::write(&data, "hello\ntrap\nhello again\nfail\nhello\n").unwrap();
    let results = dir.path().join("run");
    let (out, stdout, stderr) = run(exec_on_tiny(scenario_artifacts::FAULTY)
        .arg("--data")
        .arg(&data)
        .args(["--batch-size", "3", "--out"])
        .arg(&results));
    assert_eq!(out.status.code(), Some(3), "finished with failed samples:\n{stdout}\n{stderr}");
    let samples = read_samples(&results).unwrap();
    let indices: Vec<usize> = samples.iter().map(|s| s.index).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4]);
    let statuses: Vec<SampleStatus> = samples.iter().map(|s| s.status).collect();
    use SampleStatus::{Failed, Ok};
    assert_eq!(statuses, [Ok, Failed, Ok, Failed, Ok]);
}

/// `--model hf:OWNER/REPO/SUBFOLDER` resolves from the standard HF cache offline; an uncached one says
/// which repository is missing and how to get it.
#[test]
fn hub_model_references_resolve_offline_from_the_hf_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let commit = "1111111111111111111111111111111111111111";
    let repo = cache.join("models--someone--tiny-onnx");
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        let blob = format!("blob-{name}");
        runner::hub::store_file(&repo, commit, &format!("cpu/int4/{name}"), &blob, &bytes[..], None).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let hub_env = |cmd: &mut Command| {
        cmd.env("HF_HUB_CACHE", &cache).env("HF_HUB_OFFLINE", "1").env_remove("HF_HOME");
    };

    let results = dir.path().join("run");
    let mut cmd = exec(scenario_artifacts::GSM8K, Path::new("hf:someone/tiny-onnx/cpu/int4"));
    hub_env(cmd.args(["--max-samples", "1", "--max-new-tokens", "3", "--out"]).arg(&results));
    let (out, stdout, stderr) = run(&mut cmd);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary = read_summary(&results);
    assert!(summary.model.dir.ends_with(&format!("snapshots/{commit}/cpu/int4")), "{}", summary.model.dir);

    let mut cmd = exec(scenario_artifacts::GSM8K, Path::new("hf:someone/other-model@v1"));
    hub_env(cmd.arg("--out").arg(dir.path().join("run2")));
    let (out, _, stderr) = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    for needle in ["someone/other-model", "`v1`", "HF_HUB_OFFLINE", "hf download someone/other-model"] {
        assert!(stderr.contains(needle), "{needle:?} missing from:\n{stderr}");
    }
}

/// `--precision int4` on fp32 folders that are not the default model (an Optimum export, an onnxruntime-genai
/// layout) derives int4 into `models/derived/` under runner's home, records the derivation and its fidelity in
/// summary.json, and reuses it on the next run; a sweep of two fp32 folders by three precisions runs, deriving
/// what it lacks.
#[test]
fn exec_derives_other_precisions_of_fp32_folders_and_records_them() {
    use runner::import::Precision;
    use runner::testing::contracts::{OptimumOptions, write_genai_folder, write_optimum_folder};

    let home = tempfile::tempdir().unwrap();
    // runner's home is the test's own (the derived folders go there): the library is named, not looked up.
    let ort_lib = runner::paths::ort_dir("cpu").join(runner::paths::ort_lib_name());
    let optimum = write_optimum_folder(&home.path().join("a"), 7, OptimumOptions { position_ids: true, fp16: false });
    let genai = write_genai_folder(&home.path().join("b"), 7, Precision::Fp32);
    let exec = |models: &[&Path], precision: &str, out: &Path| {
        let mut cmd = runner();
        cmd.env("RUNNER_HOME", home.path()).arg("exec").arg(scenario_artifacts::GSM8K);
        for model in models {
            cmd.arg("--model").arg(model);
        }
        cmd.args(["--precision", precision, "--max-samples", "1", "--max-new-tokens", "2", "--no-progress"])
            .arg("--ort-lib")
            .arg(&ort_lib)
            .arg("--out")
            .arg(out);
        run(&mut cmd)
    };

    let results = home.path().join("run");
    let (out, stdout, stderr) = exec(&[&optimum], "int4", &results);
    assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("Deriving int4 from") && stderr.contains("mean KL"), "{stderr}");
    let summary = read_summary(&results);
    let derived = Path::new(&summary.model.dir);
    assert!(derived.starts_with(home.path().join("models").join("derived")), "{}", derived.display());
    assert_eq!(summary.model.graph.as_ref().unwrap().weight_precision, "int4");
    assert_eq!(
        (summary.model.info["name"].as_str(), summary.model.info["precision"].as_str()),
        (Some("optimum"), Some("int4"))
    );
    let record = summary.model.derivation.as_ref().expect("summary.json records the derivation");
    let options = &record.options;
    assert_eq!((options.precision, options.block_size, options.accuracy_level), (Precision::Int4, Some(32), Some(4)));
    assert_eq!((record.source_dir.as_str(), record.source_precision.as_str()), (optimum.to_str().unwrap(), "fp32"));
    assert!(record.source_hash.starts_with("sha256:") && record.fidelity.positions > 32, "{record:?}");
    assert!(record.fidelity.mean_kl < 0.03 && record.fidelity.top1_agreement >= 0.55, "{:?}", record.fidelity);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(results.join(SUMMARY_FILE)).unwrap()).unwrap();
    assert!(json["model"]["derivation"]["fidelity"]["mean_kl"].is_number(), "{}", json["model"]);
    // People read it too: the terminal's header and summary.md name the source and the fidelity.
    assert!(stdout.contains("derived"), "{stdout}");
    let markdown = std::fs::read_to_string(results.join("summary.md")).unwrap();
    let line = markdown.lines().find(|l| l.starts_with("| derived |")).unwrap_or_else(|| panic!("{markdown}"));
    assert!(
        line.contains("int4 (MatMulNBits block 32, accuracy level 4) from the fp32 graph in")
            && line.contains(&record.source_hash)
            && line.contains("mean KL"),
        "{line}"
    );

    let again = home.path().join("again");
    let (out, stdout, stderr) = exec(&[&optimum], "int4", &again);
    assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("Deriving"), "the second run derives again:\n{stderr}");
    assert_eq!(read_summary(&again).model.dir, summary.model.dir);

    let sweep = home.path().join("sweep");
    let (out, stdout, stderr) = exec(&[&optimum, &genai], "fp32,int8,int4", &sweep);
    assert!(out.status.success(), "sweep failed:\n{stdout}\n{stderr}");
    // (the folder the run names, what was derived from it): fp32 runs use the folders as they are.
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(&sweep).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join(SUMMARY_FILE).is_file() {
            let model = read_summary(&dir).model;
            runs.push(match model.derivation {
                Some(d) => (d.source_dir, d.options.precision.to_string()),
                None => (model.dir, "as is".to_string()),
            });
        }
    }
    runs.sort();
    let mut expected = Vec::new();
    for source in [&optimum, &genai] {
        for precision in ["as is", "int4", "int8"] {
            expected.push((source.to_str().unwrap().to_string(), precision.to_string()));
        }
    }
    expected.sort();
    assert_eq!(runs, expected);
}
