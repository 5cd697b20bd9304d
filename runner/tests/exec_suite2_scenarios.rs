//! The multiple-choice, long-context and Python scenarios (mmlu, mmlu-pro, arc, openbookqa, longbench,
//! boolq) run end to end through `runner exec` on a tiny generated model: each one's embedded sample is
//! decoded by the host, prompted, generated and scored by the real component, and its own aggregate
//! (per-subset figures, macro-average) reaches the summary. The tiny model answers at random; what is
//! checked is that every sample completes and is scored, not its accuracy.

use std::path::PathBuf;

use common::{exec, read_summary};
use runner::import::Precision;
use runner::results::writer::read_samples;
use runner::results::{RunStatus, RunSummary, SampleStatus};

mod common;

/// The tiny int4 model the tests of this file share.
fn tiny_model() -> PathBuf {
    common::tiny_model(11, Precision::Int4)
}

/// Runs the scenario's embedded sample (its first `samples` items) and returns the samples' metrics and
/// the summary, after checking that every sample finished and was scored with `metric`.
fn exec_embedded(scenario: &str, samples: usize, metric: &str, flags: &[&str]) -> RunSummary {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let out = exec(scenario, &tiny_model())
        .args(["--max-new-tokens", "6", "--max-samples", &samples.to_string()])
        .args(flags)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{scenario} failed:\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("embedded sample"), "the embedded dataset is labelled:\n{stderr}");
    let records = read_samples(&results).unwrap();
    assert_eq!(records.len(), samples);
    for record in &records {
        assert_eq!(record.status, SampleStatus::Ok, "{scenario}: {record:?}");
        assert!(record.metrics.contains_key(metric), "{scenario}: {record:?}");
        assert!(!record.prompt_text.as_deref().unwrap_or_default().is_empty());
    }
    let summary = read_summary(&results);
    assert_eq!(summary.status, RunStatus::Complete);
    summary
}

#[test]
fn mmlu_runs_its_embedded_sample_with_few_shot_examples() {
    // Samples 1-2 are elementary mathematics; the host picks their few-shot examples from the same subject.
    let summary = exec_embedded(scenario_artifacts::MMLU, 2, "accuracy", &["--few-shot", "2"]);
    assert!(summary.results.metrics.contains_key("accuracy"));
}

#[test]
fn mmlu_runs_one_selected_subject() {
    let dir = tempfile::tempdir().unwrap();
    let out = exec(scenario_artifacts::MMLU, &tiny_model())
        .args(["--max-new-tokens", "4", "--subset", "astronomy", "--out"])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = read_samples(&dir.path().join("run")).unwrap();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.subset.as_deref() == Some("astronomy")));
    let out = exec(scenario_artifacts::MMLU, &tiny_model())
        .args(["--subset", "cooking", "--out"])
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cooking"));
}

#[test]
fn mmlu_pro_runs_its_embedded_sample() {
    exec_embedded(scenario_artifacts::MMLU_PRO, 2, "accuracy", &["--few-shot", "0"]);
}

/// MMLU-Pro's public test file has one row whose `answer_index` disagrees with `answer`: the run keeps it,
/// scored against `answer` as lm-eval's mmlu_pro is, and records the scenario's warning in the results.
#[test]
fn a_flawed_mmlu_pro_row_is_kept_and_recorded_in_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("test.jsonl");
    let row = |id: u32, answer: &str, index: u32| {
        format!(
            "{{\"question_id\": {id}, \"question\": \"Question {id}?\", \"options\": [\"a\", \"b\", \"c\", \"d\"], \
             \"answer\": \"{answer}\", \"answer_index\": {index}, \"category\": \"math\"}}\n"
        )
    };
    std::fs::write(&data, [row(10, "A", 0), row(11, "C", 1), row(12, "D", 3)].concat()).unwrap();
    let results = dir.path().join("run");
    let out = exec(scenario_artifacts::MMLU_PRO, &tiny_model())
        .arg("--data")
        .arg(&data)
        .args(["--scoring", "loglikelihood", "--few-shot", "0", "--out"])
        .arg(&results)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = read_summary(&results);
    assert_eq!(summary.dataset.total, 3, "the flawed row is not dropped");
    let warnings = &summary.dataset.warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("record 2") && warnings[0].contains("question_id 11"), "{warnings:?}");
    let records = read_samples(&results).unwrap();
    let flawed = records.iter().find(|r| r.id == "11").expect("the flawed row ran");
    assert_eq!(flawed.reference, "C", "scored against `answer`");
    assert!(stdout.contains("dataset warnings") && stdout.contains("question_id 11"), "{stdout}");
    let markdown = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(markdown.contains("| dataset warnings |"), "{markdown}");
}

#[test]
fn arc_runs_both_subsets_and_aggregates_them() {
    // The embedded sample's first four questions are easy, the last four challenge: all eight cover both.
    let summary = exec_embedded(scenario_artifacts::ARC, 8, "accuracy", &[]);
    for name in ["accuracy/easy", "accuracy/challenge", "accuracy_macro"] {
        assert!(summary.results.scenario_metrics.contains_key(name), "{name}: {:?}", summary.results.scenario_metrics);
    }
}

#[test]
fn openbookqa_runs_its_embedded_sample_with_facts() {
    exec_embedded(scenario_artifacts::OPENBOOKQA, 2, "accuracy", &["--scenario-arg", "fact=include"]);
}

#[test]
fn longbench_runs_its_embedded_sample_cut_to_the_context() {
    let summary =
        exec_embedded(scenario_artifacts::LONGBENCH, 6, "score", &["--scenario-arg", "max_context_chars=700"]);
    assert!(summary.results.scenario_metrics.contains_key("score_macro"), "{:?}", summary.results.scenario_metrics);
}

#[test]
fn the_python_boolq_scenario_runs_through_exec() {
    // Looked up by name: the constant exists only when componentize-py built it (`BOOLQ: Option<&str>`).
    let Some((_, boolq)) = scenario_artifacts::ALL.iter().find(|(name, _)| *name == "boolq") else {
        let reason =
            "boolq is not among the built components: componentize-py is missing (cargo xtask setup installs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must build the Python scenario: {reason}");
        eprintln!("skipped: {reason}");
        return;
    };
    exec_embedded(boolq, 2, "accuracy", &[]);
}

/// MMLU's original release, laid out as it ships: one header-less `question,A,B,C,D,answer` CSV per subject
/// in `data/test/` and `data/dev/`. Every row is a question (none is taken for a header), each file's subject
/// comes from its name, and the few-shot examples are that subject's dev questions in file order (as the
/// original code and lm-eval take them), never test questions.
#[test]
fn mmlu_reads_the_original_release_with_examples_from_its_dev_split() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("test")).unwrap();
    std::fs::create_dir_all(data.join("dev")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(data.join(path), text).unwrap();
    write(
        "test/astronomy_test.csv",
        "Which planet is largest?,Mars,Jupiter,Venus,Mercury,B\n\
         \"Which body, seen at night, has phases?\",The Moon,A comet,\"Jupiter's \"\"red spot\"\"\",None,A\n\
         What is a light-year?,A speed,A distance,A time,A mass,B\n",
    );
    write(
        "test/virology_test.csv",
        "What carries genetic code in HIV?,RNA,DNA,Protein,Lipid,A\nIs a virus alive?,Yes,No,Debated,Never,C\n",
    );
    let dev = |subject: &str| (1..=5).map(|i| format!("Dev {subject} question {i}?,w,x,y,z,A\n")).collect::<String>();
    write("dev/astronomy_dev.csv", &dev("astronomy"));
    write("dev/virology_dev.csv", &dev("virology"));
    std::fs::write(data.join("dev/notes.txt"), "not a dataset file").unwrap();

    let run = |name: &str, flags: &[&str]| {
        let results = dir.path().join(name);
        let out = exec(scenario_artifacts::MMLU, &tiny_model())
            .arg("--data")
            .arg(data.join("test"))
            .args(["--scoring", "loglikelihood", "--out"])
            .arg(&results)
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let summary = read_summary(&results);
        (read_samples(&results).unwrap(), summary, stderr)
    };

    let (records, summary, stderr) = run("all", &["--few-shot", "2"]);
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["astronomy_test/1", "astronomy_test/2", "astronomy_test/3", "virology_test/1", "virology_test/2"],
        "every row is a question, named by its file and row"
    );
    assert_eq!(summary.dataset.total, 5);
    assert!(stderr.contains("Few-shot examples come from") && stderr.contains("dev"), "{stderr}");
    let source = summary.dataset.few_shot_source.as_ref().expect("the dev split is recorded");
    assert_eq!((source.total, summary.settings.few_shot_order.as_deref()), (10, Some("first")));
    for record in &records {
        let subject = record.subset.as_deref().unwrap();
        assert_eq!(subject, if record.id.starts_with("astronomy") { "astronomy" } else { "virology" });
        let prompt = record.prompt_text.as_deref().unwrap();
        assert!(prompt.contains(&format!("Dev {subject} question 1?")), "{prompt}");
        assert!(prompt.contains(&format!("Dev {subject} question 2?")), "{prompt}");
        assert!(!prompt.contains(&format!("Dev {subject} question 3?")), "the first two, in file order: {prompt}");
        assert_eq!(prompt.matches("Answer:").count(), 3, "two examples and the question: {prompt}");
        assert_eq!(record.choices.as_ref().unwrap().len(), 4);
    }
    let quoted = records[1].prompt_text.as_deref().unwrap();
    assert!(
        quoted.contains("Which body, seen at night, has phases?\nA. The Moon\nB. A comet\nC. Jupiter's \"red spot\"")
    );

    // One subject: only its file is read; seeded order still draws from dev, never from test.
    let (records, summary, _) =
        run("virology", &["--subset", "virology", "--few-shot", "2", "--few-shot-order", "seeded"]);
    assert_eq!(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["virology_test/1", "virology_test/2"]);
    assert_eq!(summary.settings.few_shot_order.as_deref(), Some("seeded"));
    for record in &records {
        let prompt = record.prompt_text.as_deref().unwrap();
        assert_eq!(prompt.matches("Dev virology question").count(), 2, "{prompt}");
        assert!(!prompt.contains("Is a virus alive?") || record.id == "virology_test/2", "{prompt}");
    }

    // A header row that names the release's columns is a header, not a question.
    write(
        "test/astronomy_test.csv",
        "question,A,B,C,D,answer\nWhich planet is largest?,Mars,Jupiter,Venus,Mercury,B\n",
    );
    let (records, _, _) = run("header", &["--subset", "astronomy", "--few-shot", "0"]);
    assert_eq!(records.len(), 1);
}

/// `--stop` replaces the scenario's stop strings (`\n` typed as two characters is a line break): outputs
/// end before the first line break, the run records the strings, and its reproduce command names them.
#[test]
fn stop_strings_from_the_command_line_replace_the_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("run");
    let out = exec(scenario_artifacts::XSUM, &tiny_model())
        .args(["--max-new-tokens", "40", "--max-samples", "3", "--ignore-eos", "--stop", r"\n"])
        .args(["--stop", "zz", "--out"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = read_summary(&results);
    assert_eq!(summary.settings.stop, ["\n", "zz"]);
    for record in read_samples(&results).unwrap() {
        let output = record.output.unwrap_or_default();
        assert!(!output.contains('\n') && !output.contains("zz"), "{output:?}");
    }
    let command = runner::report::reproduce::reproduce_command(&summary);
    assert!(command.contains(r"--stop '\n' --stop zz"), "{command}");
}

/// A scenario's declared temperature is the run's default (the custom scenario takes it from its task file):
/// the run samples at it and records it; a user's `--temperature` still wins.
#[test]
fn a_scenarios_temperature_is_the_default_and_the_users_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prompts.jsonl");
    std::fs::write(&data, "{\"prompt\": \"the cat\"}\n{\"prompt\": \"the dog\"}\n").unwrap();
    let task = dir.path().join("task.yaml");
    std::fs::write(&task, "temperature: 0.7\nmax_new_tokens: 4\n").unwrap();
    let run = |name: &str, flags: &[&str]| -> RunSummary {
        let results = dir.path().join(name);
        let out = exec(scenario_artifacts::CUSTOM, &tiny_model())
            .arg("--data")
            .arg(&data)
            .arg("--task")
            .arg(&task)
            .arg("--out")
            .arg(&results)
            .args(flags)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        read_summary(&results)
    };
    assert_eq!(run("declared", &[]).settings.temperature, 0.7);
    assert_eq!(run("user", &["--temperature", "0"]).settings.temperature, 0.0);
}

/// `--batch-size` in a log-likelihood run scores its questions together (contexts of every length, answers
/// of several tokens: ARC's embedded sample) and records, per question, what one-at-a-time scoring records:
/// the same choices and log-likelihoods, and the run's log-likelihood speed.
#[test]
fn a_batched_log_likelihood_run_scores_each_question_as_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, batch: &str| -> (Vec<runner::results::SampleRecord>, RunSummary) {
        let results = dir.path().join(name);
        let out = exec(scenario_artifacts::ARC, &tiny_model())
            .args(["--scoring", "loglikelihood", "--batch-size", batch, "--out"])
            .arg(&results)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let summary = read_summary(&results);
        let mut records = read_samples(&results).unwrap();
        records.sort_by_key(|r| r.index);
        (records, summary)
    };
    let (single, _) = run("one", "1");
    let (batched, summary) = run("three", "3");
    assert_eq!(single.len(), 8);
    for (a, b) in single.iter().zip(&batched) {
        assert_eq!((&a.id, a.status, a.prompt_tokens), (&b.id, b.status, b.prompt_tokens));
        let (a, b) = (a.choices.as_ref().unwrap(), b.choices.as_ref().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!((&x.text, x.tokens), (&y.text, y.tokens));
            assert!((x.logprob - y.logprob).abs() < 2e-3, "{} alone, {} batched", x.logprob, y.logprob);
        }
    }
    assert!(summary.results.samples_per_s.is_some_and(|r| r > 0.0));
    assert!(summary.results.scored_tokens_per_s.is_some());
}

/// `--workers 2` scores a log-likelihood run's questions on two one-thread sessions side by side, one at a
/// time or in batches, and records what one one-thread session records: every question once, the same
/// choices and token counts, and log-likelihoods within the int8-activation tolerance (each question follows a
/// different neighbour in a session's prefix cache, so its chunks differ; on the machines measured they are
/// bit-identical, which this does not require). The summary names the sessions, each one's threads and a peak
/// memory that covers the run so far (the sessions share the process).
#[test]
fn a_log_likelihood_run_on_two_workers_scores_as_one_session_does() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, flags: &[&str]| -> (Vec<runner::results::SampleRecord>, RunSummary) {
        let results = dir.path().join(name);
        let out = exec(scenario_artifacts::ARC, &tiny_model())
            .args(["--scoring", "loglikelihood"])
            .args(flags)
            .arg("--out")
            .arg(&results)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut records = read_samples(&results).unwrap();
        records.sort_by_key(|r| r.index);
        (records, read_summary(&results))
    };
    let (alone, _) = run("one", &["--threads", "1"]);
    assert_eq!(alone.len(), 8);
    for (name, flags) in [
        ("two", &["--threads", "2", "--workers", "2"][..]),
        ("two-batched", &["--threads", "2", "--workers", "2", "--batch-size", "3"]),
    ] {
        let (side_by_side, summary) = run(name, flags);
        assert_eq!(side_by_side.len(), alone.len(), "{name}");
        for (a, b) in alone.iter().zip(&side_by_side) {
            assert_eq!((a.index, &a.id, a.status, a.prompt_tokens), (b.index, &b.id, b.status, b.prompt_tokens));
            let scores = |r: &runner::results::SampleRecord| -> Vec<(String, u32, f64)> {
                r.choices.iter().flatten().map(|c| (c.text.clone(), c.tokens, c.logprob)).collect()
            };
            let (x, y) = (scores(a), scores(b));
            assert_eq!(x.len(), y.len(), "{name} {}", a.id);
            for (x, y) in x.iter().zip(&y) {
                assert!(x.0 == y.0 && x.1 == y.1 && (x.2 - y.2).abs() < 2e-3, "{name} {}: {x:?} / {y:?}", a.id);
            }
        }
        assert_eq!((summary.runtime.workers, summary.runtime.intra_threads), (Some(2), Some(1)), "{name}");
        assert_eq!(summary.memory.peak_scope, Some(runner::memory::PeakScope::Cumulative), "{name}");
        assert!(summary.results.samples_per_s.is_some_and(|r| r > 0.0), "{name}");
    }
}

/// `--workers` is refused where it cannot apply, before the model loads: a generation run, more workers
/// than threads, none.
#[test]
fn workers_are_refused_where_they_cannot_apply() {
    let refused = |flags: &[&str], expected: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (out, _, stderr) = common::run(
            exec(scenario_artifacts::ARC, &tiny_model()).args(flags).arg("--out").arg(dir.path().join("run")),
        );
        assert!(!out.status.success(), "{flags:?} ran");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!dir.path().join("run").join("samples.jsonl").exists());
    };
    refused(
        &["--scoring", "generate", "--workers", "2", "--threads", "2"],
        "--workers 2: sessions side by side score log-likelihood runs",
    );
    refused(
        &["--scoring", "loglikelihood", "--workers", "3", "--threads", "2"],
        "--workers 3 needs at least one thread each",
    );
    refused(&["--scoring", "loglikelihood", "--workers", "0"], "--workers must be at least 1");
}
