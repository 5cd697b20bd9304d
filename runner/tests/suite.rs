//! The scenario suite through the real `runner` binary: every scenario written on the SDK (gsm8k, math500,
//! sst2, xsum, prompts, custom) runs two samples of its embedded dataset on a tiny generated model through
//! the real engine; sst2 also by log-likelihood; custom with a YAML task file over a CSV file; and
//! `runner score` finds each reference answer correct.

use std::path::PathBuf;

use common::{exec, read_summary, run_text as run, runner};
use runner::import::Precision;
use runner::results::writer::read_samples;
use runner::results::{RunStatus, RunSummary, SampleRecord, SampleStatus};

mod common;

/// The tiny int4 model the tests of this file share.
fn tiny_model() -> PathBuf {
    common::tiny_model(11, Precision::Int4)
}

/// Runs two embedded samples of `scenario` with `extra` flags and returns the samples and the summary.
fn exec_two(scenario: &str, extra: &[&str]) -> (Vec<SampleRecord>, RunSummary) {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let (out, text) = run(exec(scenario, &tiny_model())
        .args(["--max-samples", "2", "--max-new-tokens", "4"])
        .args(extra)
        .arg("--out")
        .arg(&results));
    assert!(out.status.success(), "exec {scenario} failed:\n{text}");
    assert!(text.contains("embedded") || extra.contains(&"--data"), "the embedded sample is labelled:\n{text}");
    let samples = read_samples(&results).unwrap();
    let summary = read_summary(&results);
    assert_eq!(samples.len(), 2, "{text}");
    assert_eq!(summary.status, RunStatus::Complete);
    assert!(summary.scenario.hash.starts_with("sha256:"));
    for sample in &samples {
        assert_eq!(sample.status, SampleStatus::Ok, "{scenario}: {sample:?}");
        assert!(sample.prompt_text.as_ref().is_some_and(|p| !p.is_empty()));
        // Log-likelihood runs generate nothing, so they record no output tokens.
        assert!(sample.output_tokens.unwrap_or(0) <= 4);
    }
    (samples, summary)
}

fn assert_metrics(samples: &[SampleRecord], summary: &RunSummary, names: &[&str]) {
    for sample in samples {
        for name in names {
            let value = sample.metrics.get(*name).unwrap_or_else(|| panic!("{name} missing: {sample:?}"));
            assert!((0.0..=1.0).contains(value), "{name} = {value}");
        }
    }
    for name in names {
        assert_eq!(summary.results.metrics[*name].count, 2, "{name}");
    }
}

#[test]
fn gsm8k_runs_its_embedded_sample() {
    let (samples, summary) = exec_two(scenario_artifacts::GSM8K, &[]);
    assert_metrics(&samples, &summary, &["accuracy", "answered"]);
    assert_eq!(samples[0].reference, "25");
}

#[test]
fn math500_runs_a_selected_subject() {
    let (samples, summary) = exec_two(scenario_artifacts::MATH500, &["--subset", "number_theory"]);
    assert_metrics(&samples, &summary, &["accuracy", "answered"]);
    assert!(samples.iter().all(|s| s.subset.as_deref() == Some("number_theory")), "{samples:?}");
}

#[test]
fn sst2_runs_by_generation() {
    let (samples, summary) = exec_two(scenario_artifacts::SST2, &[]);
    assert_metrics(&samples, &summary, &["accuracy", "answered"]);
}

#[test]
fn sst2_runs_by_loglikelihood() {
    let (samples, summary) = exec_two(scenario_artifacts::SST2, &["--scoring", "loglikelihood"]);
    assert_metrics(&samples, &summary, &["accuracy"]);
    // A log-likelihood run always picks one of the two labels.
    for sample in &samples {
        assert!(matches!(sample.extracted.as_deref(), Some("positive" | "negative")), "{sample:?}");
        assert_eq!(sample.metrics["answered"], 1.0);
    }
}

#[test]
fn xsum_runs_its_embedded_sample() {
    let (samples, summary) = exec_two(scenario_artifacts::XSUM, &[]);
    assert_metrics(&samples, &summary, &["rouge1", "rouge2", "rougeL"]);
}

#[test]
fn prompts_runs_without_metrics() {
    let (samples, summary) = exec_two(scenario_artifacts::PROMPTS, &["--subset", "short"]);
    assert!(samples.iter().all(|s| s.metrics.is_empty() && s.subset.as_deref() == Some("short")));
    assert!(summary.results.metrics.is_empty(), "{:?}", summary.results.metrics);
}

#[test]
fn custom_runs_its_embedded_sample_and_a_task_file_over_csv() {
    let (samples, summary) = exec_two(scenario_artifacts::CUSTOM, &[]);
    assert_metrics(&samples, &summary, &["contains"]);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mine.csv");
    std::fs::write(&data, "question,gold\nCapital of Italy?,Rome\nCapital of Spain?,Madrid\n").unwrap();
    let task = dir.path().join("task.yaml");
    std::fs::write(&task, "template: \"Q: {question}\\nA:\"\nreference_field: gold\nmetric: f1\n").unwrap();
    let (samples, summary) =
        exec_two(scenario_artifacts::CUSTOM, &["--data", data.to_str().unwrap(), "--task", task.to_str().unwrap()]);
    assert_metrics(&samples, &summary, &["f1"]);
    assert!(samples[0].prompt_text.as_ref().unwrap().contains("Q: Capital of Italy?\nA:"), "{:?}", samples[0]);
    assert_eq!(samples[1].reference, "Madrid");

    // A wrong key in the task file is named with the file.
    std::fs::write(&task, "templat: \"{question}\"\n").unwrap();
    let (out, text) = run(exec(scenario_artifacts::CUSTOM, &tiny_model())
        .arg("--data")
        .arg(&data)
        .arg("--task")
        .arg(&task)
        .arg("--out")
        .arg(dir.path().join("bad")));
    assert!(!out.status.success());
    assert!(text.contains("task.yaml") && text.contains("templat"), "{text}");
}

/// `runner score` with the reference answers as outputs: every sample scores correct.
fn score_gold(scenario: &str, outputs: &[String], metric: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outputs.jsonl");
    let lines: Vec<String> = outputs
        .iter()
        .enumerate()
        .map(|(index, output)| serde_json::json!({"index": index, "output": output}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (out, text) = run(runner().arg("score").arg(scenario).arg("--outputs").arg(&file).arg("--json"));
    assert!(out.status.success(), "score failed:\n{text}");
    let json_start = text.find('{').unwrap();
    let report: serde_json::Value = serde_json::Deserializer::from_str(&text[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap_or_else(|e| panic!("score --json prints JSON: {e}\n{text}"));
    assert_eq!(report["scored"], outputs.len(), "{report}");
    assert_eq!(report["metrics"][metric]["mean"], 1.0, "{report}");
}

#[test]
fn score_finds_the_reference_answers_correct() {
    let gsm8k = ["25", "140", "320", "150", "72", "80", "45", "27", "225", "-11"];
    score_gold(scenario_artifacts::GSM8K, &gsm8k.map(|n| format!("Working...\nThe answer is {n}.")), "accuracy");
    let sst2 = ["positive", "negative"].repeat(5);
    score_gold(
        scenario_artifacts::SST2,
        &sst2.iter().map(|l| format!("The sentiment is {l}.")).collect::<Vec<_>>(),
        "accuracy",
    );
    let custom = ["Tokyo", "8", "Mars", "Au", "cold", "worm"];
    score_gold(scenario_artifacts::CUSTOM, &custom.map(|a| format!("It is {a}.")), "contains");
}

/// `runner score` cuts each output at the scenario's stop strings before scoring, as `runner exec` cuts
/// what it generates: the recorded output ends before the stop string and its finish is `stop`.
#[test]
fn score_cuts_outputs_made_elsewhere_at_the_scenarios_stop_strings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("questions.csv");
    std::fs::write(&data, "question,gold\nCapital of France?,Paris\nCapital of Japan?,Tokyo\n").unwrap();
    let task = dir.path().join("task.yaml");
    std::fs::write(
        &task,
        "template: \"Q: {question}\\nA:\"\nreference_field: gold\nmetric: exact_match\nstop: [\"\\n\"]\n",
    )
    .unwrap();
    let outputs = dir.path().join("outputs.jsonl");
    std::fs::write(&outputs, "{\"index\": 0, \"output\": \"Paris\\nQ: Capital of Spain?\\nA: Madrid\"}\n{\"index\": 1, \"output\": \"Tokyo\"}\n")
        .unwrap();
    let samples = dir.path().join("scored.jsonl");
    let (out, text) = run(runner()
        .arg("score")
        .arg(scenario_artifacts::CUSTOM)
        .arg("--data")
        .arg(&data)
        .arg("--task")
        .arg(&task)
        .arg("--outputs")
        .arg(&outputs)
        .arg("--samples-out")
        .arg(&samples));
    assert!(out.status.success(), "score failed:\n{text}");
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(&samples).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((records[0]["output"].as_str(), records[0]["finish"].as_str()), (Some("Paris"), Some("stop")));
    assert_eq!((records[1]["output"].as_str(), records[1].get("finish")), (Some("Tokyo"), None));
    assert!(records.iter().all(|r| r["metrics"]["exact_match"] == 1.0), "{records:?}");
}
