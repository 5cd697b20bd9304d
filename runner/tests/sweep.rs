//! Sweeps and experiments: layered run configurations, unknown keys and wrong types named with their file,
//! path-safe unique run names, include/exclude and shard selection (library API); and through the real
//! `runner` binary: a sweep of the default model in fp32/int8/int4 over two scenarios from one experiment
//! folder, a sweep killed with SIGKILL and resumed giving the same results as an uninterrupted one, shards
//! merged into the unsharded sweep, and a failing run recorded while the sweep goes on.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{read_summary, run_text as run, runner};
use runner::experiment::file::Experiment;
use runner::experiment::{PlanInput, PlannedRun, RunConfig, Selection, Shard, plan, sanitize_name};
use runner::import::Precision;
use runner::results::SampleRecord;
use runner::results::writer::read_samples;
use runner::sweep::{RunState, SWEEP_CSV, SWEEP_FILE, SweepFile};

mod common;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn plan_of(dir: &Path, input: PlanInput) -> Result<Vec<PlannedRun>, String> {
    let experiment = Experiment::load(dir).map_err(|e| e.to_string())?;
    plan(&PlanInput { experiment: Some(experiment), ..input }).map_err(|e| e.to_string())
}

fn names(runs: &[PlannedRun]) -> Vec<&str> {
    runs.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn layers_apply_in_order_and_paths_resolve_against_their_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("experiment.yaml"),
        "description: layering\n\
         defaults:\n  scenario: ../scenarios/gsm8k.wasm\n  max_samples: 5\n  max_new_tokens: 32\n  seed: 3\n\
         matrix:\n  precision: [int4, fp32]\n\
         runs:\n  - {name: explicit, max_new_tokens: 8, chat_template: false, data: data/x.jsonl}\n",
    );
    write(&dir.path().join("runs/extra.json"), r#"[{"scenario": "sst2.wasm", "batch_size": 2}]"#);
    let command_line = RunConfig { seed: Some(9), ..Default::default() };
    let runs = plan_of(dir.path(), PlanInput { command_line, ..Default::default() }).unwrap();
    assert_eq!(runs.len(), 4, "{runs:#?}");
    let by_name: BTreeMap<&str, &RunConfig> = runs.iter().map(|r| (r.name.as_str(), &r.config)).collect();
    let explicit = by_name["explicit"];
    // built-in < defaults < entry < command line
    assert_eq!(explicit.max_new_tokens, Some(8));
    assert_eq!(explicit.max_samples, Some(5));
    assert_eq!(explicit.seed, Some(9));
    assert_eq!(explicit.repetition_penalty, Some(1.0));
    assert_eq!(explicit.chat_template, Some(false));
    let root = dir.path().parent().unwrap();
    assert_eq!(explicit.scenario.as_deref(), Some(root.join("scenarios/gsm8k.wasm").as_path()));
    assert_eq!(explicit.data.as_deref(), Some(dir.path().join("data/x.jsonl").to_str().unwrap()));
    let extra = runs.iter().find(|r| r.config.batch_size == Some(2)).unwrap();
    assert_eq!(extra.config.scenario.as_deref(), Some(dir.path().join("runs/sst2.wasm").as_path()));
    assert_eq!(extra.config.max_new_tokens, Some(32));
    let matrix: Vec<&PlannedRun> = runs.iter().filter(|r| r.config.precision.is_some()).collect();
    assert_eq!(matrix.len(), 2);
    // Names come from the keys that vary between runs, scenario first; the plan is sorted by name.
    let sorted = {
        let mut n = names(&runs);
        n.sort();
        n
    };
    assert_eq!(names(&runs), sorted);
    assert!(by_name.keys().any(|n| n.starts_with("gsm8k-") && n.contains("int4")), "{:?}", names(&runs));
    assert!(by_name.keys().any(|n| n.starts_with("sst2-") && n.contains("b2")), "{:?}", names(&runs));
}

#[test]
fn command_line_lists_multiply_and_names_follow_what_varies() {
    let lists = vec![
        ("scenario", vec![serde_json::json!("scenarios/gsm8k.wasm"), serde_json::json!("scenarios/sst2.wasm")]),
        ("model", vec![]),
        ("precision", vec![serde_json::json!("int4"), serde_json::json!("int8"), serde_json::json!("fp32")]),
        ("ep", vec![serde_json::json!("cpu")]),
        ("batch_size", vec![serde_json::json!(1), serde_json::json!(4)]),
    ];
    let runs = plan(&PlanInput { command_line_lists: lists, ..Default::default() }).unwrap();
    assert_eq!(runs.len(), 12);
    assert!(names(&runs).contains(&"gsm8k-int4-b1"), "{:?}", names(&runs));
    assert!(names(&runs).contains(&"sst2-fp32-b4"), "{:?}", names(&runs));
    let one = plan(&PlanInput {
        command_line: RunConfig { scenario: Some("scenarios/gsm8k.wasm".into()), ..Default::default() },
        ..Default::default()
    })
    .unwrap();
    assert_eq!(names(&one), ["gsm8k"]);
}

#[test]
fn unknown_keys_and_wrong_types_name_the_file_entry_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("experiment.yaml");
    write(&file, "runs:\n  - {scenario: a.wasm}\n  - {scenario: b.wasm}\n  - {scenario: c.wasm, precison: int4}\n");
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    let expected =
        format!("{}: runs[2]: unknown key `precison` (known: name, scenario, model, precision,", file.display());
    assert!(err.starts_with(&expected), "{err}");

    write(&file, "defaults:\n  scenario: a.wasm\n  max_samples: two\n");
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains(&format!("{}: defaults: key `max_samples`", file.display())), "{err}");
    assert!(err.contains("expected a non-negative integer"), "{err}");

    write(&file, "matrix:\n  precision: [int4, int3]\n");
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains("matrix.precision[1]: key `precision`") && err.contains("int3"), "{err}");

    write(&file, "defaults: {scenario: a.wasm}\nrunz: []\n");
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains("unknown key `runz`") && err.contains("defaults, matrix, runs"), "{err}");

    write(&file, "defaults: {scenario: a.wasm, scoring: likelihood}\n");
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains("key `scoring`") && err.contains("generate, loglikelihood"), "{err}");

    std::fs::remove_file(&file).unwrap();
    write(&dir.path().join("runs/bad.json"), r#"{"scenario": "a.wasm", "temperature": "hot"}"#);
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains("bad.json: key `temperature`") && err.contains("expected a number"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = plan_of(empty.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains("no experiment file"), "{err}");
}

#[test]
fn names_are_path_safe_and_unique() {
    for hostile in ["../../etc", "..", ".", "/abs/path", "a/b\\c", "", "ok name!"] {
        let safe = sanitize_name(hostile);
        let components: Vec<Component> = Path::new(&safe).components().collect();
        assert!(matches!(components.as_slice(), [Component::Normal(_)]), "{hostile:?} -> {safe:?}");
        assert!(!safe.starts_with('.'), "{safe}");
        assert!(safe.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{safe}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("experiment.yaml");
    write(&file, "defaults: {scenario: a.wasm}\nruns:\n  - {name: ../../etc}\n  - {name: other}\n");
    let runs = plan_of(dir.path(), PlanInput::default()).unwrap();
    let sweep = Path::new("/sweep");
    for run in &runs {
        assert!(sweep.join(&run.name).parent() == Some(sweep), "{}", run.name);
    }
    write(&file, "defaults: {scenario: a.wasm}\nruns:\n  - {name: same, seed: 1}\n  - {name: same, seed: 2}\n");
    let err = plan_of(dir.path(), PlanInput::default()).unwrap_err();
    assert!(err.contains("two runs are named `same`"), "{err}");
    assert!(err.contains("runs[0]") && err.contains("runs[1]"), "{err}");
}

#[test]
fn include_exclude_and_shards_select_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("experiment.yaml"),
        "matrix:\n  scenario: [gsm8k.wasm, sst2.wasm]\n  precision: [int4, int8, fp32]\nexclude:\n  - {precision: int8, scenario: sst2.wasm}\n",
    );
    let all = plan_of(dir.path(), PlanInput::default()).unwrap();
    assert_eq!(names(&all), ["gsm8k-fp32", "gsm8k-int4", "gsm8k-int8", "sst2-fp32", "sst2-int4"]);
    let selection = Selection { include: vec!["gsm8k-*".into()], exclude: vec!["*-fp32".into()] };
    let some = plan_of(dir.path(), PlanInput { selection, ..Default::default() }).unwrap();
    assert_eq!(names(&some), ["gsm8k-int4", "gsm8k-int8"]);
    let bad = Selection { include: vec!["gsm8k-[".into()], ..Default::default() };
    let err = plan_of(dir.path(), PlanInput { selection: bad, ..Default::default() }).unwrap_err();
    assert!(err.starts_with("--include \"gsm8k-[\""), "{err}");

    let shards: Vec<Vec<PlannedRun>> = (0..3).map(|i| Shard { index: i, count: 3 }.select(&all)).collect::<Vec<_>>();
    assert_eq!(names(&shards[0]), ["gsm8k-fp32", "sst2-fp32"]);
    let mut union: Vec<&str> = shards.iter().flat_map(|s| names(s)).collect();
    union.sort();
    assert_eq!(union, names(&all));
    assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
    for bad in ["2/2", "0/0", "a/b", "1", "-1/2"] {
        assert!(bad.parse::<Shard>().unwrap_err().contains("0-based"), "{bad}");
    }
}

#[test]
fn merge_refuses_sweeps_with_different_plans() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: u64| PlannedRun {
        name: name.into(),
        config: RunConfig { scenario: Some("x.wasm".into()), seed: Some(seed), ..Default::default() },
    };
    SweepFile::new(&[run("x", 1)], None, None, None).write(&a.path().join(SWEEP_FILE)).unwrap();
    SweepFile::new(&[run("x", 2)], None, None, None).write(&b.path().join(SWEEP_FILE)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = runner::sweep::merge::merge(&[a.path().into(), b.path().into()], out.path()).unwrap_err().to_string();
    assert!(err.contains("not shards of one sweep") && err.contains("run `x` has another configuration"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Through the binary.

/// A tiny model as setup lays a model out: `tiny.gguf` beside its `int4/` and `fp32/` imports.
fn tiny_models() -> PathBuf {
    common::tiny_model(5, Precision::Int4);
    let fp32 = common::tiny_model(5, Precision::Fp32);
    fp32.parent().unwrap().to_path_buf()
}

/// What must not change between two runs of one configuration: per sample, its id, output and metrics.
/// One sample's outcome: index, id, output and metrics (timings left out: they differ between runs).
type Outcome = (usize, String, Option<String>, BTreeMap<String, f64>);

fn outcomes(dir: &Path) -> Vec<Outcome> {
    let mut samples: Vec<SampleRecord> = read_samples(dir).unwrap();
    samples.sort_by_key(|s| s.index);
    samples.into_iter().map(|s| (s.index, s.id, s.output, s.metrics)).collect()
}

fn sweep_of(dir: &Path) -> SweepFile {
    SweepFile::read(&dir.join(SWEEP_FILE)).unwrap()
}

/// The tiny-model sweep of the kill and shard tests: gsm8k and sst2 × int4 and fp32.
fn tiny_sweep(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = runner();
    cmd.arg("exec")
        .args([scenario_artifacts::GSM8K, scenario_artifacts::SST2])
        .arg("--model")
        .arg(tiny_models())
        .args(["--precision", "int4,fp32", "--no-progress", "--max-new-tokens", "12", "--ignore-eos"])
        .args(["--max-samples", "3", "--shuffle-seed", "4"])
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

fn assert_same_results(a: &Path, b: &Path) {
    let (sa, sb) = (sweep_of(a), sweep_of(b));
    assert_eq!(sa.plan_difference(&sb), None);
    for run in &sa.runs {
        assert_eq!(run.status, RunState::Complete, "{}: {run:?}", a.display());
        let (ra, rb) = (a.join(&run.dir), b.join(&run.dir));
        assert_eq!(outcomes(&ra), outcomes(&rb), "{}", run.name);
        assert_eq!(
            read_summary(&ra).results.metrics.keys().collect::<Vec<_>>(),
            read_summary(&rb).results.metrics.keys().collect::<Vec<_>>()
        );
    }
    assert!(sb.runs.iter().all(|r| r.status == RunState::Complete), "{}", b.display());
}

#[test]
fn a_sweep_killed_mid_run_and_resumed_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let (out, text) = run(&mut tiny_sweep(&whole, &[]));
    assert!(out.status.success(), "{text}");
    let sweep = sweep_of(&whole);
    assert_eq!(sweep.runs.len(), 4);
    assert!(std::fs::read_to_string(whole.join(SWEEP_CSV)).unwrap().lines().count() == 5);
    for run in &sweep.runs {
        let summary = read_summary(&whole.join(&run.dir));
        assert_eq!(summary.run_name.as_deref(), Some(run.name.as_str()));
        assert_eq!(summary.config.as_ref(), Some(&run.config));
        assert!(run.headline.as_ref().is_some_and(|h| h.samples == 3));
    }
    // The same --max-samples and --shuffle-seed select the same samples in every run of a scenario.
    let ids = |name: &str| read_summary(&whole.join(name)).dataset.selected_ids;
    assert_eq!(ids("gsm8k-int4"), ids("gsm8k-fp32"));
    assert_eq!(ids("sst2-int4"), ids("sst2-fp32"));
    assert_eq!(ids("gsm8k-int4").len(), 3);

    let killed = dir.path().join("killed");
    let mut child = tiny_sweep(&killed, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // SIGKILL once some run has written a sample.
    loop {
        let written = std::fs::read_dir(&killed)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path().join("samples.jsonl")).is_ok_and(|s| s.lines().count() >= 1));
        if written {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the sweep wrote no sample");
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let interrupted = sweep_of(&killed);
    assert!(interrupted.runs.iter().any(|r| r.status != RunState::Complete), "{interrupted:?}");

    // Another configuration is refused.
    let (out, text) = run(&mut tiny_sweep(&killed, &["--resume", "--seed", "1"]));
    assert!(!out.status.success() && text.contains("holds another sweep's plan"), "{text}");
    // Without --resume the folder is not reused.
    let (out, text) = run(&mut tiny_sweep(&killed, &[]));
    assert!(!out.status.success() && text.contains("--resume"), "{text}");

    let (out, text) = run(&mut tiny_sweep(&killed, &["--resume"]));
    assert!(out.status.success(), "{text}");
    assert_same_results(&whole, &killed);
    for run in &sweep_of(&killed).runs {
        assert_eq!(read_samples(&killed.join(&run.dir)).unwrap().len(), 3, "{}: no sample twice", run.name);
    }
}

#[test]
fn shards_merge_into_the_unsharded_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let (out, text) = run(&mut tiny_sweep(&whole, &[]));
    assert!(out.status.success(), "{text}");
    let (a, b) = (dir.path().join("shard0"), dir.path().join("shard1"));
    let (out, text) = run(&mut tiny_sweep(&a, &["--shard", "0/2"]));
    assert!(out.status.success(), "{text}");
    let (out, text) = run(&mut tiny_sweep(&b, &["--shard", "1/2"]));
    assert!(out.status.success(), "{text}");
    // Each shard's folder holds the whole plan with its own runs done.
    let half = sweep_of(&a);
    assert_eq!(half.runs.len(), 4);
    assert_eq!(half.runs.iter().filter(|r| r.status == RunState::Complete).count(), 2);
    assert!(a.join("sweep.shard-0-of-2.json").is_file());

    // One shard alone: the merge names each run the other shard owes, with that shard, and fails.
    let (out, text) = run(runner().arg("merge").arg(&a).arg("--out").arg(dir.path().join("half")));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let owed: Vec<&str> =
        half.runs.iter().filter(|r| r.status != RunState::Complete).map(|r| r.name.as_str()).collect();
    for name in &owed {
        assert!(text.contains(&format!("{name} (shard 1, pending)")), "{name} is not named:\n{text}");
    }

    let merged = dir.path().join("merged");
    let (out, text) = run(runner().arg("merge").arg(&a).arg(&b).arg("--out").arg(&merged));
    assert!(out.status.success(), "{text}");
    assert_same_results(&whole, &merged);

    // Two shards sharing one folder rebuild one sweep.json.
    let shared = dir.path().join("shared");
    for shard in ["1/2", "0/2"] {
        let (out, text) = run(&mut tiny_sweep(&shared, &["--shard", shard]));
        assert!(out.status.success(), "{text}");
    }
    assert_same_results(&whole, &shared);
}

#[test]
fn a_failing_run_is_recorded_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("exp");
    write(
        &experiment.join("experiment.yaml"),
        &format!(
            "defaults:\n  scenario: {}\n  max_samples: 1\n  max_new_tokens: 2\n\
             runs:\n  - {{name: good, model: {}}}\n  - {{name: broken, model: no-such-model}}\n",
            scenario_artifacts::GSM8K,
            tiny_models().join("int4").display()
        ),
    );
    let out_dir = dir.path().join("out");
    let (out, text) =
        run(runner().arg("exec").arg("--experiment").arg(&experiment).arg("--no-progress").arg("--out").arg(&out_dir));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("1 of the runs failed") && text.contains("broken"), "{text}");
    let sweep = sweep_of(&out_dir);
    let status: BTreeMap<&str, RunState> = sweep.runs.iter().map(|r| (r.name.as_str(), r.status)).collect();
    assert_eq!(status, BTreeMap::from([("broken", RunState::Failed), ("good", RunState::Complete)]));
    let broken = sweep.runs.iter().find(|r| r.name == "broken").unwrap();
    assert!(broken.error.as_ref().is_some_and(|e| e.contains("no-such-model")), "{broken:?}");
    // The relative model path resolved against the experiment file.
    assert!(broken.config["model"].as_str().unwrap().ends_with("exp/no-such-model"), "{broken:?}");
}

/// The default model's precisions, in a runner home of the test's own: the installed GGUF and imports are
/// linked in (so nothing is written to the user's home), missing precisions are imported on demand there.
fn default_model_home() -> Option<tempfile::TempDir> {
    let gguf = runner::testing::installed_default_gguf()?;
    let installed = runner::paths::runner_home();
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models").join(runner::paths::DEFAULT_MODEL);
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(&gguf, models.join(gguf.file_name().unwrap())).unwrap();
    for precision in ["int4", "int8", "fp32"] {
        let folder = gguf.parent().unwrap().join(precision);
        if folder.join("model.onnx").is_file() {
            std::os::unix::fs::symlink(&folder, models.join(precision)).unwrap();
        }
    }
    std::os::unix::fs::symlink(installed.join("onnxruntime"), home.path().join("onnxruntime")).unwrap();
    Some(home)
}

#[test]
fn default_model_sweep_over_precisions_and_scenarios_from_one_experiment_folder() {
    let Some(home) = default_model_home() else { return };
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("precisions");
    write(
        &experiment.join("experiment.yaml"),
        &format!(
            "description: the default model at three precisions on two scenarios\n\
             defaults:\n  max_samples: 2\n  max_new_tokens: 8\n\
             matrix:\n  scenario: [{}, {}]\n  precision: [fp32, int8, int4]\n",
            scenario_artifacts::GSM8K,
            scenario_artifacts::SST2
        ),
    );
    let out_dir = dir.path().join("sweep");
    let (out, text) = run(runner()
        .env("RUNNER_HOME", home.path())
        .arg("exec")
        .arg("--experiment")
        .arg(&experiment)
        .arg("--no-progress")
        .arg("--out")
        .arg(&out_dir));
    assert!(out.status.success(), "{text}");
    let sweep = sweep_of(&out_dir);
    let names: Vec<&str> = sweep.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["gsm8k-fp32", "gsm8k-int4", "gsm8k-int8", "sst2-fp32", "sst2-int4", "sst2-int8"]);
    for run in &sweep.runs {
        assert_eq!(run.status, RunState::Complete, "{run:?}");
        let summary = read_summary(&out_dir.join(&run.dir));
        let precision = run.config["precision"].as_str().unwrap();
        // The precision measured from the graph is the one asked for.
        assert_eq!(summary.model.graph.as_ref().unwrap().weight_precision, precision, "{}", run.name);
        assert!(summary.model.dir.ends_with(precision), "{}", summary.model.dir);
        assert_eq!(summary.dataset.selected, 2);
        assert_eq!(summary.config.as_ref().unwrap()["max_new_tokens"], 8);
    }
    let ids = |name: &str| read_summary(&out_dir.join(name)).dataset.selected_ids;
    assert_eq!(ids("gsm8k-fp32"), ids("gsm8k-int4"));
    assert_eq!(ids("sst2-int8"), ids("sst2-int4"));
    assert!(text.contains("gsm8k-int8") && text.contains("accuracy"), "the comparison table:\n{text}");

    // One command with flags describes the same plan.
    let (out, flags_plan) = run(runner()
        .env("RUNNER_HOME", home.path())
        .arg("exec")
        .args([scenario_artifacts::GSM8K, scenario_artifacts::SST2])
        .args(["--precision", "fp32,int8,int4", "--max-samples", "2", "--max-new-tokens", "8", "--dry-run"]));
    assert!(out.status.success(), "{flags_plan}");
    let flag_names: Vec<&str> =
        flags_plan.lines().filter_map(|l| l.split('\t').next()).filter(|n| !n.is_empty()).collect();
    assert_eq!(flag_names, names);
}

fn docs(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

/// The Slurm script people copy exists once (`cargo xtask slurm` submits that file to a real cluster): the
/// docs name it and hold no second copy, and bash parses it.
#[test]
fn the_documented_slurm_script_is_one_file_that_bash_parses() {
    let guide = docs("docs/experiments.md");
    assert!(guide.contains("(slurm/runner-sweep.sbatch)"), "docs/experiments.md must link the script");
    assert!(!guide.contains("#SBATCH"), "docs/experiments.md holds a second copy of the Slurm script");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/slurm/runner-sweep.sbatch");
    let text = docs("docs/slurm/runner-sweep.sbatch");
    for needed in ["--resume", "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}", "#SBATCH --array="] {
        assert!(text.contains(needed), "the script lacks {needed}");
    }
    let out = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(out.status.success(), "bash -n: {}", String::from_utf8_lossy(&out.stderr));
}

/// The Kubernetes indexed Job in docs/experiments.md is valid YAML for an Indexed Job whose pods shard by
/// `JOB_COMPLETION_INDEX` (the variable Kubernetes sets in Indexed mode) over as many shards as completions,
/// with --resume so a restarted pod continues its shard.
#[test]
fn the_documented_kubernetes_job_shards_by_its_completion_index() {
    let guide = docs("docs/experiments.md");
    let start = guide.find("```yaml\napiVersion: batch/v1").expect("the Kubernetes example") + "```yaml\n".len();
    let yaml = &guide[start..start + guide[start..].find("```").unwrap()];
    let job: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!((job["kind"].as_str(), job["spec"]["completionMode"].as_str()), (Some("Job"), Some("Indexed")));
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"][0].as_str().unwrap();
    assert!(args.contains(&format!("--shard \"${{JOB_COMPLETION_INDEX}}/{completions}\"")), "{args}");
    assert!(args.contains("--resume"), "{args}");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
}
