//! `runner bench` as a user runs it on a tiny generated model: the table on stdout, `--json FILE` with every
//! repetition, `--json -` keeping stdout pure JSON, `--markdown`, and flag errors before anything loads.

use std::process::Output;

use runner::import::Precision;

mod common;

/// `runner bench --model TINY --no-progress ARGS`.
fn bench(args: &[&str]) -> (Output, String, String) {
    let (out, stdout, stderr) = common::run(
        common::runner()
            .arg("bench")
            .arg("--model")
            .arg(common::tiny_model(3, Precision::Int4))
            .arg("--no-progress")
            .args(args),
    );
    // Nothing here runs a guest, so no thread of runner's may panic.
    assert!(!stderr.contains("panicked"), "runner panicked:\n{stderr}");
    (out, stdout, stderr)
}

#[test]
fn bench_prints_the_table_and_writes_every_repetition_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let json_arg = json_path.to_str().unwrap();
    let (out, stdout, stderr) = bench(&["-p", "9,17", "-n", "5", "-r", "2", "-w", "0", "-t", "1", "--json", json_arg]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for needle in ["pp9", "pp17", "tg5", "t/s", "pp17+tg5", "ITL p99 ms"] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(report["schema"], "runner.bench/1");
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (result, prompt_tokens) in results.iter().zip([9, 17]) {
        assert_eq!(result["prompt_tokens"], prompt_tokens);
        assert_eq!(result["threads"], 1);
        let repetitions = result["repetitions"].as_array().unwrap();
        assert_eq!(repetitions.len(), 2);
        for rep in repetitions {
            assert_eq!(rep["prompt_tokens"], prompt_tokens);
            assert_eq!(rep["generated_tokens"], 5);
            assert_eq!(rep["itl_ms"].as_array().unwrap().len(), 4);
        }
    }
}

#[test]
fn json_to_stdout_moves_the_tables_to_stderr_and_markdown_pastes() {
    let (out, stdout, stderr) = bench(&["-p", "4", "-n", "3", "-r", "1", "--json", "-", "--markdown"]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is only the JSON report");
    assert_eq!(report["results"][0]["test"], "pp4+tg3");
    assert!(stderr.lines().any(|l| l.starts_with("| model")), "{stderr}");
}

#[test]
fn bad_sweeps_fail_before_running_and_name_the_flag() {
    let (out, _, stderr) = bench(&["-p", "128,abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--prompt-tokens") && stderr.contains("abc"), "{stderr}");
    let (out, _, stderr) = bench(&["-b", "1,0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--batch-size"), "{stderr}");
    let (out, _, stderr) = bench(&["--prompt-preset", "long", "-n", "128"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("-p/--prompt-tokens 2048 with -n/--gen-tokens 128"), "{stderr}");
    // No GPU runtime here: the provider is registered as exec would, and refusing it is an error, not a CPU run.
    let (out, _, stderr) = bench(&["--ep", "cuda"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.to_lowercase().contains("cuda"), "{stderr}");
}
