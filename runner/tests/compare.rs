//! `runner compare` and cached baselines as a user meets them: real results folders made by `runner exec` on
//! tiny generated models with the real GSM8K component, compared sample by sample; and `runner exec
//! --adapter`, which makes the base run once and reuses it from the baseline cache afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{read_summary, run};
use runner::results::writer::{SAMPLES_FILE, SUMMARY_FILE, SUMMARY_MARKDOWN_FILE};
use runner::results::{RunStatus, RunSummary};
use runner::stats::paired::{PairedComparison, PairedTest};

mod common;

/// The runner binary with runner's cache in `cache`: the baseline tests look at what its registry holds.
fn runner(cache: &Path) -> Command {
    let mut cmd = common::runner();
    cmd.env("RUNNER_CACHE_DIR", cache);
    cmd
}

/// Two runs of the same three embedded GSM8K samples on the tiny model in int4 and int8, made once.
struct Runs {
    dir: tempfile::TempDir,
    int4: PathBuf,
    int8: PathBuf,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let gguf = dir.path().join("tiny.gguf");
        runner::testing::write_tiny_llama_gguf(&gguf, 7);
        let mut folders = Vec::new();
        for precision in ["int4", "int8"] {
            let model = dir.path().join(format!("tiny-{precision}"));
            let (out, stdout, stderr) =
                run(runner(&cache).arg("import").arg(&gguf).args(["--precision", precision, "--out"]).arg(&model));
            assert!(out.status.success(), "import failed:\n{stdout}\n{stderr}");
            let results = dir.path().join(format!("run-{precision}"));
            let (out, stdout, stderr) = run(runner(&cache)
                .arg("exec")
                .arg(scenario_artifacts::GSM8K)
                .arg("--model")
                .arg(&model)
                .args(["--no-progress", "--threads", "1", "--max-samples", "3", "--max-new-tokens", "4", "--out"])
                .arg(&results));
            assert!(out.status.success(), "exec failed:\n{stdout}\n{stderr}");
            folders.push(results);
        }
        let int8 = folders.pop().unwrap();
        let int4 = folders.pop().unwrap();
        Runs { dir, int4, int8 }
    })
}

fn compare(a: &Path, b: &Path, extra: &[&str]) -> (Output, String, String) {
    run(runner(&runs().dir.path().join("cache")).arg("compare").arg(a).arg(b).args(extra))
}

#[test]
fn compares_two_precisions_sample_by_sample() {
    let r = runs();
    let (out, stdout, stderr) = compare(&r.int4, &r.int8, &["--json"]);
    assert!(out.status.success(), "compare failed:\n{stdout}\n{stderr}");
    let comparison: PairedComparison = serde_json::from_str(&stdout).unwrap();
    assert_eq!((comparison.shared_samples, comparison.only_in_a, comparison.only_in_b), (3, 0, 0));
    // The runs differ in model folder and precision; the folder names already say the precision.
    assert_eq!((comparison.a.label.as_str(), comparison.b.label.as_str()), ("tiny-int4", "tiny-int8"));
    let summary: RunSummary = read_summary(&r.int4);
    assert!(summary.background_cpu.is_some_and(|share| (0.0..=1.0).contains(&share)), "{:?}", summary.background_cpu);
    let accuracy = comparison.metrics.iter().find(|m| m.metric == "accuracy").expect("GSM8K scores accuracy");
    assert_eq!(accuracy.n, 3);
    assert!(accuracy.binary);
    let PairedTest::McnemarExact { a_only, b_only } = accuracy.test else { panic!("{:?}", accuracy.test) };
    assert_eq!(accuracy.p_value, runner::stats::mcnemar::exact_p_value(a_only, b_only));
    assert!(accuracy.verdict.contains("int8") && accuracy.verdict.contains("McNemar p ="), "{}", accuracy.verdict);
    let measures: Vec<&str> = comparison.speed.iter().map(|s| s.measure.as_str()).collect();
    assert!(measures.contains(&"TTFT") && measures.contains(&"e2e latency"), "{measures:?}");
    for s in &comparison.speed {
        assert!(s.ratio >= 1.0 && s.ratio_std_err >= 0.0 && s.verdict.contains("times faster"), "{s:?}");
    }

    let (out, table, stderr) = compare(&r.int4, &r.int8, &[]);
    assert!(out.status.success(), "{stderr}");
    assert!(table.contains("3 shared samples") && table.contains("accuracy") && table.contains("McNemar"), "{table}");
    assert!(table.contains("times faster"), "{table}");
}

#[test]
fn runs_with_nothing_in_common_are_refused_naming_both() {
    let r = runs();
    let work = tempfile::tempdir().unwrap();
    // The int8 run with its sample ids changed: the same files, no shared samples.
    let other = work.path().join("renamed");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(r.int8.join(SUMMARY_FILE), other.join(SUMMARY_FILE)).unwrap();
    let samples = std::fs::read_to_string(r.int8.join(SAMPLES_FILE)).unwrap().replace("\"id\":\"", "\"id\":\"x-");
    std::fs::write(other.join(SAMPLES_FILE), samples).unwrap();
    let (out, _, stderr) = compare(&r.int4, &other, &[]);
    assert!(!out.status.success());
    assert!(stderr.contains("share no sample ids"), "{stderr}");
    assert!(stderr.contains(&r.int4.display().to_string()) && stderr.contains(&other.display().to_string()));

    // Shared samples, but every one failed in run B: nothing was scored by both.
    let failed = work.path().join("failed");
    std::fs::create_dir(&failed).unwrap();
    std::fs::copy(r.int8.join(SUMMARY_FILE), failed.join(SUMMARY_FILE)).unwrap();
    let samples = std::fs::read_to_string(r.int8.join(SAMPLES_FILE))
        .unwrap()
        .replace("\"status\":\"ok\"", "\"status\":\"failed\"");
    std::fs::write(failed.join(SAMPLES_FILE), samples).unwrap();
    let (out, _, stderr) = compare(&r.int4, &failed, &[]);
    assert!(!out.status.success());
    assert!(stderr.contains("no metric both scored") && stderr.contains(&failed.display().to_string()), "{stderr}");

    let (out, _, stderr) = compare(&r.int4, &work.path().join("missing"), &[]);
    assert!(!out.status.success());
    assert!(stderr.contains("RUN_B") && stderr.contains("missing"), "{stderr}");
}

#[test]
fn adapter_runs_make_their_base_run_once_then_reuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let gguf = dir.path().join("tiny.gguf");
    runner::testing::write_tiny_llama_gguf(&gguf, 7);
    let model = dir.path().join("tiny-lora");
    let (out, stdout, stderr) = run(runner(&cache).arg("import").arg(&gguf).arg("--out").arg(&model).args([
        "--lora-targets",
        "q_proj,v_proj",
        "--lora-max-rank",
        "8",
    ]));
    assert!(out.status.success(), "import failed:\n{stdout}\n{stderr}");
    let adapter = dir.path().join("r4.onnx_adapter");
    let (out, stdout, stderr) = run(runner(&cache)
        .args(["adapter", "init", "--model"])
        .arg(&model)
        .args(["--rank", "4", "--seed", "3", "--scale", "2", "--out"])
        .arg(&adapter));
    assert!(out.status.success(), "adapter init failed:\n{stdout}\n{stderr}");
    let exec = |out_dir: &Path| {
        run(runner(&cache)
            .arg("exec")
            .arg(scenario_artifacts::GSM8K)
            .arg("--model")
            .arg(&model)
            .args(["--no-progress", "--threads", "1", "--max-samples", "2", "--max-new-tokens", "4", "--adapter"])
            .arg(&adapter)
            .arg("--out")
            .arg(out_dir))
    };

    let first = dir.path().join("first");
    let (out, stdout, stderr) = exec(&first);
    assert!(out.status.success(), "exec --adapter failed:\n{stdout}\n{stderr}");
    let base = dir.path().join("first-base");
    let base_summary = read_summary(&base);
    assert_eq!(base_summary.status, RunStatus::Complete);
    assert!(base_summary.adapter.is_none(), "the base run has no adapter");
    let summary = read_summary(&first);
    let comparison = summary.adapter_comparison.expect("the adapter run is compared with its base");
    assert!(!comparison.base_reused);
    assert_eq!(comparison.base_dir, base);
    assert!(comparison.itl_overhead_pct.is_some() && comparison.ttft_overhead_pct.is_some());
    assert!(comparison.e2e_overhead_pct.is_some());
    let info = summary.adapter.unwrap();
    assert_eq!((comparison.adapter_parameters, comparison.adapter_size_bytes), (info.parameters, info.size_bytes));
    assert!(comparison.parameter_share.is_some_and(|s| s > 0.0 && s < 1.0));
    let accuracy = comparison.accuracy.iter().find(|m| m.metric == "accuracy").expect("accuracy delta");
    assert_eq!(accuracy.n, 2);
    assert!(matches!(accuracy.test, PairedTest::McnemarExact { .. }));
    assert!(stdout.contains("adapter overhead"), "the terminal summary shows the comparison:\n{stdout}");
    let markdown = std::fs::read_to_string(first.join(SUMMARY_MARKDOWN_FILE)).unwrap();
    assert!(markdown.contains("Adapter against its base run: adapter overhead"), "{markdown}");

    // The second adapter run finds the base run in the registry: no new base folder, base samples untouched.
    let base_samples = std::fs::read(base.join(SAMPLES_FILE)).unwrap();
    let base_modified = std::fs::metadata(base.join(SAMPLES_FILE)).unwrap().modified().unwrap();
    let second = dir.path().join("second");
    let (out, stdout, stderr) = exec(&second);
    assert!(out.status.success(), "second exec --adapter failed:\n{stdout}\n{stderr}");
    assert!(!dir.path().join("second-base").exists(), "the cached base run was not reused");
    let comparison = read_summary(&second).adapter_comparison.unwrap();
    assert!(comparison.base_reused);
    assert_eq!(comparison.base_dir, std::fs::canonicalize(&base).unwrap());
    assert_eq!(std::fs::read(base.join(SAMPLES_FILE)).unwrap(), base_samples);
    assert_eq!(std::fs::metadata(base.join(SAMPLES_FILE)).unwrap().modified().unwrap(), base_modified);
    let registered = std::fs::read_dir(cache.join("baselines")).unwrap().count();
    assert_eq!(registered, 1, "one base run registered under one key");
}
