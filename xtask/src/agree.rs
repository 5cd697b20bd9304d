//! `cargo xtask agree [--install-peers] [--limit N] [--tasks arc_easy,mmlu,...]`: runner against the
//! lm-evaluation-harness on the same weights and the same questions, compared question by question, written
//! to `reports/agreement/`.
//!
//! - lm-eval's side: the default model's GGUF, loaded by transformers with `gguf_file=` and dequantized to
//!   fp32, through lm-eval's `hf` model. The tasks are lm-eval's own definitions (prompt, choices, target,
//!   metrics), generated into the target folder over the files in `../shared/datasets` (the loaders in
//!   `xtask/peers/agree_tasks.py` only change the layout to the Hub's fields).
//! - runner's side: `runner exec` of the scenario component, `--precision fp32` (the same dequantized
//!   weights), `--scoring loglikelihood`, on the same file.
//! - Pairs each question (by its position in the file; MMLU by subject and row), then compares the
//!   `acc`/`acc_norm` verdicts, every choice's log-likelihood and both tools' wall time.
//!
//! `--resume` continues a task's earlier run instead of starting it again: a finished runner half is kept, and
//! lm-eval, which runs MMLU's 57 subjects in groups (about three hours of one thread for the full test), starts
//! at the first group without results.
//!
//! Each run updates its tasks in `reports/agreement/results.json` (numbers and ids only: no dataset text
//! leaves the target folder) and renders `reports/agreement/README.md` from it, with `findings.md` beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::agree_gsm8k;
use crate::bench::{humantime_now, load_average, machine, round, runner_home, target_dir, venv_python};
use crate::shell::{output, repo_root, run_command, step};

/// The peers, pinned where the figures depend on them: lm-eval's task machinery is 0.4.x, and torch's CPU
/// build is the one PyPI serves (its CUDA libraries come along, unused).
const PEERS: [&str; 7] =
    ["lm-eval==0.4.13", "torch", "transformers", "accelerate", "gguf", "sentencepiece", "protobuf"];
const MODEL: &str = "SmolLM2-135M-Instruct";
/// Each tool at its best on a CPU: lm-eval batches its requests (16), runner scores one question at a time,
/// which lets each context reuse the keys and values of the start it shares with the one before (a
/// subject's header and few-shot examples); its batches measured no faster on two cores.
const BATCH: usize = 16;
const RUNNER_BATCH: usize = 1;
/// Both tools on one thread. On this 2-core machine, shared with sweeps and builds, torch's OpenMP threads
/// spin at their barriers: at 2 threads lm-eval scored 80 ARC requests in 72 s, at 1 thread in 18 s. One
/// thread each keeps the two wall times comparable.
const THREADS: usize = 1;
/// lm-eval runs at most this many task names per process, each group into a folder of its own, so a run that
/// stops keeps the groups it finished (`--resume`); each process pays lm-eval's start (about half a minute).
const LM_EVAL_GROUP: usize = 8;
/// Written into a finished group's folder (and runner's): the process's wall time in seconds.
const WALL_FILE: &str = "wall_seconds";
const TASK_LOADERS: &str = "xtask/peers/agree_tasks.py";
const REPORT_DIR: &str = "reports/agreement";
/// A verdict that parts on a log-likelihood gap below this is a near-tie: float32 sums in another order
/// (torch's kernels against ONNX Runtime's) move log-likelihoods by about 1e-4.
const NEAR_TIE: f64 = 2e-3;

/// One benchmark as both tools define it.
#[derive(Debug, Clone, Copy)]
struct Task {
    name: &'static str,
    scenario: &'static str,
    /// The file (or MMLU's test folder) under the datasets folder.
    data: &'static str,
    few_shot: usize,
    /// runner's metric and lm-eval's, compared verdict by verdict.
    metrics: &'static [(&'static str, &'static str)],
    /// How lm-eval's task reads the file: a function of `agree_tasks.py`, and the task's YAML body.
    loader: &'static str,
    yaml: &'static str,
}

const ACC: &[(&str, &str)] = &[("accuracy", "acc")];
const ACC_NORM: &[(&str, &str)] = &[("accuracy", "acc"), ("accuracy_norm", "acc_norm")];

/// lm-eval's `arc_easy.yaml`, `openbookqa.yaml`, `glue/sst2/default.yaml` and `mmlu/default/_default_template_yaml`
/// (0.4.x), their `dataset_path` replaced by the loader. The metric lists are theirs.
const TASKS: [Task; 5] = [
    Task {
        name: "arc_easy",
        scenario: "arc",
        data: "arc-easy/ARC-Easy-Test.jsonl",
        few_shot: 0,
        metrics: ACC_NORM,
        loader: "arc",
        yaml: "doc_to_text: \"Question: {{question}}\\nAnswer:\"\ndoc_to_target: gold\ndoc_to_choice: choices\n\
               metric_list:\n  - metric: acc\n  - metric: acc_norm\n",
    },
    Task {
        name: "openbookqa",
        scenario: "openbookqa",
        data: "openbookqa/test.tsv",
        few_shot: 0,
        metrics: ACC_NORM,
        loader: "openbookqa",
        yaml: "doc_to_text: question_stem\ndoc_to_target: gold\ndoc_to_choice: choices\n\
               metric_list:\n  - metric: acc\n  - metric: acc_norm\n",
    },
    Task {
        name: "sst2",
        scenario: "sst2",
        data: "sst2/dev.tsv",
        few_shot: 0,
        metrics: ACC,
        loader: "sst2",
        yaml: "doc_to_text: \"{{sentence}}\\nQuestion: Is this sentence positive or negative?\\nAnswer:\"\n\
               doc_to_target: label\ndoc_to_choice: [\"negative\", \"positive\"]\nmetric_list:\n  - metric: acc\n",
    },
    Task {
        name: "mmlu",
        scenario: "mmlu",
        data: "mmlu/test",
        few_shot: 0,
        metrics: ACC,
        loader: "mmlu",
        yaml: MMLU_YAML,
    },
    Task {
        name: "mmlu_5shot",
        scenario: "mmlu",
        data: "mmlu/test",
        few_shot: 5,
        metrics: ACC,
        loader: "mmlu",
        yaml: MMLU_YAML,
    },
];

const MMLU_YAML: &str = "fewshot_split: dev\nfewshot_config:\n  sampler: first_n\n\
    doc_to_text: \"{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:\"\n\
    doc_to_choice: [\"A\", \"B\", \"C\", \"D\"]\ndoc_to_target: answer\nmetric_list:\n  - metric: acc\n";

const DEFAULT_TASKS: [&str; 5] = ["arc_easy", "openbookqa", "sst2", "mmlu", "mmlu_5shot"];
/// The check of lm-eval's gsm8k filters on the same outputs ([`agree_gsm8k`]): run when named.
const GSM8K: &str = "gsm8k";
const DATA_GSM8K: &str = "gsm8k/test.jsonl";

#[derive(Debug, Clone)]
pub struct AgreeOptions {
    pub install_peers: bool,
    /// The first N questions of each file (MMLU: of each subject), as lm-eval's `--limit`.
    pub limit: Option<usize>,
    pub tasks: Vec<String>,
    /// Only render the page again from `results.json` (after editing `findings.md`).
    pub render_only: bool,
    /// A runner GSM8K run whose outputs the gsm8k filter check scores, instead of a new one.
    pub gsm8k_run: Option<PathBuf>,
    /// Keep what an earlier run of the same task and selection finished.
    pub resume: bool,
}

impl AgreeOptions {
    pub fn parse(flags: &[&str]) -> Result<Self> {
        let mut options = AgreeOptions {
            install_peers: false,
            limit: None,
            tasks: DEFAULT_TASKS.iter().map(|t| t.to_string()).collect(),
            render_only: false,
            gsm8k_run: None,
            resume: false,
        };
        let mut flags = flags.iter();
        while let Some(flag) = flags.next() {
            match *flag {
                "--install-peers" => options.install_peers = true,
                "--render-only" => options.render_only = true,
                "--resume" => options.resume = true,
                "--gsm8k-run" => {
                    options.gsm8k_run = Some(PathBuf::from(flags.next().context("--gsm8k-run needs a run folder")?));
                }
                "--limit" => {
                    let value = flags.next().context("--limit needs a number")?;
                    let limit = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--limit {value}: not a count of at least 1"))?;
                    options.limit = Some(limit);
                }
                "--tasks" => {
                    let value = flags.next().context("--tasks needs a comma list")?;
                    options.tasks = value.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
                    for name in &options.tasks {
                        if !TASKS.iter().any(|t| t.name == name) && name != GSM8K {
                            bail!("--tasks: `{name}` is not one of {}, {GSM8K}", DEFAULT_TASKS.join(", "));
                        }
                    }
                }
                other => bail!(
                    "unknown flag `{other}` for `cargo xtask agree` (--install-peers, --limit N, --tasks LIST, \
                     --gsm8k-run DIR, --resume, --render-only)"
                ),
            }
        }
        Ok(options)
    }
}

fn work_dir() -> PathBuf {
    target_dir().join("agree")
}

/// The Python with lm-eval: `RUNNER_AGREE_PYTHON`, else the virtual environment `--install-peers` makes.
fn peers_python() -> PathBuf {
    venv_python("RUNNER_AGREE_PYTHON", "agree-venv")
}

fn install_peers() -> Result<()> {
    if !peers_python().is_file() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(target_dir().join("agree-venv")))?;
    }
    run_command(Command::new(peers_python()).args(["-m", "pip", "install", "--quiet"]).args(PEERS))
}

/// The real benchmark files: `RUNNER_DATASETS`, else `shared/datasets` beside the repository.
fn datasets_dir() -> PathBuf {
    std::env::var_os("RUNNER_DATASETS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/datasets"))
}

/// Private copies of runner and the scenario components (`RUNNER_BIN`, `RUNNER_SCENARIOS` name others than
/// the release build and `scenarios/`): builds sharing the folders must not swap them mid-run.
fn copy_tools() -> Result<PathBuf> {
    let bin = work_dir().join("bin");
    std::fs::create_dir_all(&bin)?;
    let runner =
        std::env::var_os("RUNNER_BIN").map(PathBuf::from).unwrap_or_else(|| target_dir().join("release/runner"));
    if !runner.is_file() {
        bail!("no runner binary at {} (build it, or set RUNNER_BIN)", runner.display());
    }
    std::fs::copy(&runner, bin.join("runner")).with_context(|| format!("copying {}", runner.display()))?;
    let scenarios =
        std::env::var_os("RUNNER_SCENARIOS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("scenarios"));
    for scenario in TASKS.iter().map(|t| t.scenario).chain([GSM8K]) {
        let component = scenarios.join(format!("{scenario}.wasm"));
        if !component.is_file() {
            bail!("{} is missing: run `cargo xtask setup` (or set RUNNER_SCENARIOS)", component.display());
        }
        std::fs::copy(&component, bin.join(format!("{scenario}.wasm")))?;
    }
    Ok(bin)
}

/// Splits CSV text into records, each with its line ending, keeping quoted newlines inside their record.
fn csv_records(text: &str) -> Vec<&str> {
    let mut records = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => {
                records.push(&text[start..=at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        records.push(&text[start..]);
    }
    records
}

/// MMLU's first `limit` questions of each subject, as a test folder beside a link to the real dev folder:
/// runner's `--max-samples` counts the whole folder, lm-eval's `--limit` each subject, and this way both read
/// the same questions under the same file names and rows.
fn mmlu_selection(source: &Path, limit: Option<usize>) -> Result<PathBuf> {
    let Some(limit) = limit else { return Ok(source.to_path_buf()) };
    let folder = work_dir().join(format!("data/mmlu-first-{limit}"));
    let test = folder.join("test");
    std::fs::create_dir_all(&test)?;
    for entry in std::fs::read_dir(source)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let kept: String = csv_records(&text).into_iter().take(limit).collect();
        std::fs::write(test.join(path.file_name().context("a file")?), kept)?;
    }
    let dev = folder.join("dev");
    if !dev.exists() {
        std::os::unix::fs::symlink(source.with_file_name("dev"), &dev)?;
    }
    Ok(test)
}

/// The 57 subjects, from the test folder's file names.
fn mmlu_subjects(test: &Path) -> Result<Vec<String>> {
    let mut subjects: Vec<String> = std::fs::read_dir(test)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix("_test.csv").map(str::to_string))
        .collect();
    subjects.sort();
    Ok(subjects)
}

/// Writes the task YAMLs (and the loaders) into a folder for `--include_path`; returns the task names.
fn write_lm_eval_tasks(task: &Task, data: &Path, dir: &Path) -> Result<Vec<String>> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::copy(repo_root().join(TASK_LOADERS), dir.join("agree_tasks.py"))?;
    let write = |name: &str, kwargs: String, extra: &str| -> Result<()> {
        let yaml = format!(
            "task: {name}\ncustom_dataset: !function agree_tasks.{}\ndataset_kwargs:\n{kwargs}\
             output_type: multiple_choice\ntest_split: test\n{extra}{}metadata:\n  version: 1.0\n",
            task.loader, task.yaml
        );
        std::fs::write(dir.join(format!("{name}.yaml")), yaml)?;
        Ok(())
    };
    if task.loader != "mmlu" {
        let name = format!("agree_{}", task.name);
        write(&name, format!("  path: {}\n", yaml_string(data)), "")?;
        return Ok(vec![name]);
    }
    let dev = data.with_file_name("dev");
    let mut names = Vec::new();
    for subject in mmlu_subjects(data)? {
        let name = format!("agree_{}_{subject}", task.name);
        let kwargs = format!(
            "  path: {}\n  fewshot_path: {}\n",
            yaml_string(&data.join(format!("{subject}_test.csv"))),
            yaml_string(&dev.join(format!("{subject}_dev.csv")))
        );
        let description = format!(
            "description: \"The following are multiple choice questions (with answers) about {}.\\n\\n\"\n",
            subject.replace('_', " ")
        );
        write(&name, kwargs, &description)?;
        names.push(name);
    }
    Ok(names)
}

fn yaml_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("a string serializes")
}

/// Runs lm-eval on the tasks, [`LM_EVAL_GROUP`] names per process, each group into `out/group-NN`;
/// with `resume`, groups that finished before are kept. Returns the wall time of every group summed.
fn run_lm_eval(
    task: &Task,
    names: &[String],
    include: &Path,
    limit: Option<usize>,
    out: &Path,
    resume: bool,
) -> Result<f64> {
    if !resume {
        let _ = std::fs::remove_dir_all(out);
    }
    let mut seconds = 0.0;
    for (i, group) in names.chunks(LM_EVAL_GROUP).enumerate() {
        let dir = out.join(format!("group-{i:02}"));
        if let Some(wall) = finished_wall(&dir) {
            eprintln!("lm-eval group {i} ({} to {}): kept from the earlier run", group[0], group[group.len() - 1]);
            seconds += wall;
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let wall = run_lm_eval_group(task, group, include, limit, &dir)?;
        std::fs::write(dir.join(WALL_FILE), format!("{wall}\n"))?;
        seconds += wall;
    }
    Ok(seconds)
}

/// The wall time a finished half left in its folder, if it finished.
fn finished_wall(dir: &Path) -> Option<f64> {
    std::fs::read_to_string(dir.join(WALL_FILE)).ok()?.trim().parse().ok()
}

/// One lm-eval process over `names`; returns its wall time in seconds.
fn run_lm_eval_group(task: &Task, names: &[String], include: &Path, limit: Option<usize>, out: &Path) -> Result<f64> {
    let model_dir = runner_home().join("models").join(MODEL);
    let gguf = format!("{MODEL}.Q4_1.gguf");
    if !model_dir.join(&gguf).is_file() {
        bail!("{} has no {gguf}: run `cargo xtask setup` first", model_dir.display());
    }
    let mut cmd = Command::new(peers_python());
    cmd.args(["-m", "lm_eval", "--model", "hf", "--model_args"])
        .arg(format!("pretrained={},gguf_file={gguf},dtype=float32", model_dir.display()))
        .arg("--tasks")
        .arg(names.join(","))
        .arg("--include_path")
        .arg(include)
        .args(["--device", "cpu", "--batch_size", &BATCH.to_string(), "--log_samples"])
        .args(["--num_fewshot", &task.few_shot.to_string()])
        .arg("--output_path")
        .arg(out)
        // Nothing to fetch: the weights and files are local, and the machine reaches no hub.
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1")
        .env("OMP_NUM_THREADS", THREADS.to_string())
        .env("MKL_NUM_THREADS", THREADS.to_string());
    // MMLU's selection is already the first N of each subject's file.
    if let Some(limit) = limit.filter(|_| task.loader != "mmlu") {
        cmd.args(["--limit", &limit.to_string()]);
    }
    let started = Instant::now();
    run_command(&mut cmd)?;
    Ok(started.elapsed().as_secs_f64())
}

/// runner's half; with `resume`, a half that finished is kept and one that stopped continues (runner's own
/// `--resume`, its wall time then that of the last attempt). Returns the wall time in seconds.
fn run_runner(bin: &Path, task: &Task, data: &Path, limit: Option<usize>, out: &Path, resume: bool) -> Result<f64> {
    let wall_file = out.with_file_name(format!("runner-{WALL_FILE}"));
    if resume {
        if let Some(wall) = std::fs::read_to_string(&wall_file).ok().and_then(|t| t.trim().parse().ok()) {
            eprintln!("runner: kept from the earlier run");
            return Ok(wall);
        }
    } else {
        let _ = std::fs::remove_dir_all(out);
        let _ = std::fs::remove_file(&wall_file);
    }
    let mut cmd = Command::new(bin.join("runner"));
    cmd.arg("exec").arg(bin.join(format!("{}.wasm", task.scenario)));
    cmd.args(["--precision", "fp32", "--scoring", "loglikelihood", "--no-progress"]).arg("--data").arg(data);
    cmd.args(["--few-shot", &task.few_shot.to_string(), "--batch-size", &RUNNER_BATCH.to_string()]);
    cmd.args(["--threads", &THREADS.to_string()]).arg("--out").arg(out);
    if let Some(limit) = limit.filter(|_| task.loader != "mmlu") {
        cmd.args(["--max-samples", &limit.to_string()]);
    }
    if resume && out.join("samples.jsonl").is_file() {
        cmd.arg("--resume");
    }
    let started = Instant::now();
    run_command(&mut cmd)?;
    let wall = started.elapsed().as_secs_f64();
    std::fs::write(&wall_file, format!("{wall}\n"))?;
    Ok(wall)
}

pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {} is not JSON", path.display())))
        .collect()
}

/// One question as one tool saw it.
#[derive(Debug, Clone, Default)]
struct Answer {
    id: String,
    /// Each choice's log-likelihood, in the dataset's order.
    lls: Vec<f64>,
    /// Each choice's length in characters, without the space before it (lm-eval's `len(choice)`).
    lengths: Vec<usize>,
    verdicts: BTreeMap<String, bool>,
    prompt: Option<String>,
}

/// The pairing key: (subject or "", row in the file, 0-based).
type Key = (String, usize);

fn runner_answers(out: &Path, task: &Task) -> Result<BTreeMap<Key, Answer>> {
    let mut answers = BTreeMap::new();
    for record in read_jsonl(&out.join("samples.jsonl"))? {
        if record["status"] != "ok" {
            bail!("runner sample {} did not finish: {}", record["id"], record["status"]);
        }
        let id = record["id"].as_str().context("a runner sample without an id")?.to_string();
        let key = if task.loader == "mmlu" {
            // `SUBJECT_test/ROW`, ROW counted from 1 as the file's lines are.
            let (stem, row) = id.rsplit_once('/').with_context(|| format!("MMLU id {id} is not FILE/ROW"))?;
            let subject = stem.strip_suffix("_test").unwrap_or(stem).to_string();
            let row: usize = row.parse().with_context(|| format!("MMLU id {id}: row is not a number"))?;
            (subject, row.checked_sub(1).with_context(|| format!("MMLU id {id}: rows count from 1"))?)
        } else {
            (String::new(), record["index"].as_u64().context("a runner sample without an index")? as usize)
        };
        let choices = record["choices"].as_array().context("a runner sample without choices")?;
        let answer = Answer {
            lls: choices.iter().map(|c| c["logprob"].as_f64().unwrap_or(f64::NAN)).collect(),
            lengths: choices.iter().map(|c| choice_length(c["text"].as_str().unwrap_or(""))).collect(),
            verdicts: task
                .metrics
                .iter()
                .filter_map(|(metric, _)| Some((metric.to_string(), record["metrics"][metric].as_f64()? > 0.5)))
                .collect(),
            prompt: record["prompt_text"].as_str().map(str::to_string),
            id,
        };
        answers.insert(key, answer);
    }
    Ok(answers)
}

fn choice_length(continuation: &str) -> usize {
    continuation.strip_prefix(' ').unwrap_or(continuation).chars().count()
}

/// The first number inside a (nested) JSON array: lm-eval logs a choice's response as `[ll, is_greedy]`,
/// filtered or not, and nests it once more in `resps`.
fn first_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Array(items) => items.first().and_then(first_number),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// lm-eval's request arguments: `[context, continuation]` or `{"arg_0": context, "arg_1": continuation}`.
fn request_args(request: &Value) -> (Option<&str>, Option<&str>) {
    match request {
        Value::Array(items) => (items.first().and_then(Value::as_str), items.get(1).and_then(Value::as_str)),
        Value::Object(map) => (map.get("arg_0").and_then(Value::as_str), map.get("arg_1").and_then(Value::as_str)),
        _ => (None, None),
    }
}

fn lm_eval_answers(out: &Path, task: &Task, names: &[String]) -> Result<BTreeMap<Key, Answer>> {
    let mut files = Vec::new();
    collect_files(out, &mut files)?;
    let mut answers = BTreeMap::new();
    for name in names {
        let prefix = format!("samples_{name}_");
        let file = files
            .iter()
            .filter(|f| f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
            .max()
            .with_context(|| format!("lm-eval wrote no samples for {name} under {}", out.display()))?;
        let subject = if task.loader == "mmlu" {
            name.strip_prefix(&format!("agree_{}_", task.name)).unwrap_or(name).to_string()
        } else {
            String::new()
        };
        for record in read_jsonl(file)? {
            let doc_id = record["doc_id"].as_u64().context("an lm-eval sample without doc_id")? as usize;
            let arguments: Vec<&Value> = match &record["arguments"] {
                Value::Array(items) => items.iter().collect(),
                Value::Object(map) => map.values().collect(),
                _ => Vec::new(),
            };
            let responses = record["filtered_resps"].as_array().or(record["resps"].as_array());
            let answer = Answer {
                id: record["doc"]["id"].as_str().map_or_else(|| doc_id.to_string(), str::to_string),
                lls: responses.into_iter().flatten().map(|r| first_number(r).unwrap_or(f64::NAN)).collect(),
                lengths: arguments.iter().map(|a| choice_length(request_args(a).1.unwrap_or(""))).collect(),
                verdicts: task
                    .metrics
                    .iter()
                    .filter_map(|(metric, theirs)| Some((metric.to_string(), first_number(&record[theirs])? > 0.5)))
                    .collect(),
                prompt: arguments.first().and_then(|a| request_args(a).0).map(str::to_string),
            };
            answers.insert((subject.clone(), doc_id), answer);
        }
    }
    Ok(answers)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn argmax(values: &[f64]) -> usize {
    // The first of equal values, as numpy's argmax (lm-eval) and runner both pick.
    values.iter().enumerate().fold(0, |best, (i, v)| if *v > values[best] { i } else { best })
}

/// The gap between the two best scores: how far a verdict is from flipping.
fn top_gap(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted.get(1).map_or(f64::INFINITY, |second| sorted[0] - second)
}

fn per_char(answer: &Answer) -> Vec<f64> {
    answer.lls.iter().zip(&answer.lengths).map(|(ll, len)| ll / (*len).max(1) as f64).collect()
}

/// Both tools' answers to the same questions, compared.
fn compare(task: &Task, ours: &BTreeMap<Key, Answer>, theirs: &BTreeMap<Key, Answer>) -> Result<Value> {
    let unpaired = ours.keys().filter(|k| !theirs.contains_key(*k)).count()
        + theirs.keys().filter(|k| !ours.contains_key(*k)).count();
    if unpaired > 0 {
        bail!(
            "{}: {unpaired} questions only one tool scored (runner {}, lm-eval {}): the selections differ",
            task.name,
            ours.len(),
            theirs.len()
        );
    }
    // Where the file has ids, they must be the same question's (ARC, OpenBookQA); otherwise the position pairs.
    let id_mismatches = ours
        .iter()
        .filter(|(k, a)| task.loader != "mmlu" && theirs[*k].id != a.id && theirs[*k].id != k.1.to_string())
        .count();
    if id_mismatches > 0 {
        bail!("{}: {id_mismatches} paired questions carry different ids", task.name);
    }
    let n = ours.len();
    let mut max_ll = 0.0f64;
    let mut sum_ll = 0.0;
    let mut lls = 0usize;
    let mut same_prompts = 0usize;
    for (key, a) in ours {
        let b = &theirs[key];
        if a.lls.len() != b.lls.len() {
            bail!("{}: question {} has {} choices in runner, {} in lm-eval", task.name, a.id, a.lls.len(), b.lls.len());
        }
        for (x, y) in a.lls.iter().zip(&b.lls) {
            max_ll = max_ll.max((x - y).abs());
            sum_ll += (x - y).abs();
            lls += 1;
        }
        if a.prompt.is_some() && a.prompt == b.prompt {
            same_prompts += 1;
        }
    }
    let mut metrics = Vec::new();
    for (metric, theirs_name) in task.metrics {
        let mut runner_right = 0usize;
        let mut lm_eval_right = 0usize;
        let mut agree = 0usize;
        let mut disagreements = Vec::new();
        for (key, a) in ours {
            let b = &theirs[key];
            let (Some(&va), Some(&vb)) = (a.verdicts.get(*metric), b.verdicts.get(*metric)) else {
                bail!("{}: question {} lacks a `{metric}` verdict", task.name, a.id);
            };
            runner_right += va as usize;
            lm_eval_right += vb as usize;
            if va == vb {
                agree += 1;
                continue;
            }
            let (sa, sb) =
                if *metric == "accuracy_norm" { (per_char(a), per_char(b)) } else { (a.lls.clone(), b.lls.clone()) };
            let gap = top_gap(&sa).min(top_gap(&sb));
            disagreements.push(json!({
                "id": a.id, "runner_lls": a.lls.iter().map(|v| round(*v, 5)).collect::<Vec<_>>(),
                "lm_eval_lls": b.lls.iter().map(|v| round(*v, 5)).collect::<Vec<_>>(),
                "runner_pick": argmax(&sa), "lm_eval_pick": argmax(&sb), "runner_right": va, "lm_eval_right": vb,
                "gap": round(gap, 6), "near_tie": gap < NEAR_TIE,
            }));
        }
        let runner_acc = runner_right as f64 / n.max(1) as f64;
        let lm_eval_acc = lm_eval_right as f64 / n.max(1) as f64;
        metrics.push(json!({
            "runner": metric, "lm_eval": theirs_name,
            "runner_acc": round(runner_acc, 4), "lm_eval_acc": round(lm_eval_acc, 4),
            "diff_points": round(100.0 * (runner_acc - lm_eval_acc), 2),
            "agreement_pct": round(100.0 * agree as f64 / n.max(1) as f64, 2),
            "disagreements": disagreements,
        }));
    }
    Ok(json!({
        "questions": n, "metrics": metrics, "max_ll_diff": max_ll, "mean_ll_diff": sum_ll / lls.max(1) as f64,
        "identical_prompts": same_prompts,
    }))
}

fn versions() -> Value {
    let script = "import importlib.metadata as m, json\n\
                  print(json.dumps({p: m.version(p) for p in ['lm_eval', 'torch', 'transformers', 'accelerate', 'gguf']}))";
    output(Command::new(peers_python()).args(["-c", script]))
        .ok()
        .and_then(|text| serde_json::from_str(text.trim()).ok())
        .unwrap_or(Value::Null)
}

pub fn run(options: &AgreeOptions) -> Result<()> {
    let root = repo_root();
    let results_path = root.join(REPORT_DIR).join("results.json");
    let mut page: Value = std::fs::read_to_string(&results_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({"tasks": {}}));
    if !options.render_only {
        if options.install_peers {
            step("install lm-eval", install_peers)?;
        }
        if !peers_python().is_file() {
            bail!("no lm-eval environment at {}: run with --install-peers", peers_python().display());
        }
        let bin = step("copy runner and the scenarios", copy_tools)?;
        page["versions"] = versions();
        // Each task records its own machine: runs of one page come from different sessions, and this kind of
        // machine is an AMD EPYC one day and an Intel Xeon the next.
        if let Some(page) = page.as_object_mut() {
            page.remove("machine");
        }
        let this_machine = machine(std::thread::available_parallelism().map_or(1, |n| n.get()));
        for name in &options.tasks {
            let result = match TASKS.iter().find(|t| t.name == name) {
                Some(task) => step(&format!("agree {name}"), || run_task(&bin, task, options.limit, options.resume))?,
                None => step(&format!("agree {name}"), || {
                    let data = datasets_dir().join("gsm8k/test.jsonl");
                    let work = work_dir().join(GSM8K);
                    let mut result = agree_gsm8k::run(
                        &bin,
                        &peers_python(),
                        &data,
                        &work,
                        options.limit,
                        options.gsm8k_run.as_deref(),
                    )?;
                    result["data_sha256"] = json!(sha256(&data));
                    result["limit"] = json!(options.limit);
                    Ok(result)
                })?,
            };
            let mut result = result;
            result["machine"] = this_machine.clone();
            page["tasks"][name] = result;
            page["generated_at"] = json!(humantime_now());
            // Written after each task, so a long run that stops keeps what it finished.
            std::fs::create_dir_all(results_path.parent().expect("a folder"))?;
            std::fs::write(&results_path, serde_json::to_string_pretty(&page)? + "\n")?;
            write_page(&root, &page)?;
        }
    }
    write_page(&root, &page)
}

fn run_task(bin: &Path, task: &Task, limit: Option<usize>, resume: bool) -> Result<Value> {
    let source = datasets_dir().join(task.data);
    if !source.exists() {
        bail!("{} is missing (set RUNNER_DATASETS to the folder of the benchmark files)", source.display());
    }
    let data = if task.loader == "mmlu" { mmlu_selection(&source, limit)? } else { source };
    let work = work_dir().join(task.name);
    let resume = resumable(&work, limit, resume)?;
    let names = write_lm_eval_tasks(task, &data, &work.join("lm-eval-tasks"))?;
    let load_before = load_average();
    let runner_s = run_runner(bin, task, &data, limit, &work.join("runner"), resume)?;
    let lm_eval_s = run_lm_eval(task, &names, &work.join("lm-eval-tasks"), limit, &work.join("lm-eval"), resume)?;
    let ours = runner_answers(&work.join("runner"), task)?;
    let theirs = lm_eval_answers(&work.join("lm-eval"), task, &names)?;
    let mut result = compare(task, &ours, &theirs)?;
    result["few_shot"] = json!(task.few_shot);
    result["limit"] = json!(limit);
    result["batch_size"] = json!({"lm_eval": BATCH, "runner": RUNNER_BATCH});
    result["runner_wall_s"] = json!(round(runner_s, 1));
    result["lm_eval_wall_s"] = json!(round(lm_eval_s, 1));
    result["load_average"] = json!([load_before, load_average()]);
    // Inputs named by what they are, never by this machine's paths (issue 13).
    result["data"] = json!(task.data);
    result["data_sha256"] = json!(sha256(&datasets_dir().join(task.data)));
    result["runner_version"] =
        json!(output(Command::new(bin.join("runner")).arg("--version")).ok().map(|v| v.trim().to_string()));
    Ok(result)
}

/// Whether `--resume` may continue what the task's folder holds: an earlier run of the same selection
/// (`--limit`). A different selection is refused rather than mixed in. Records this run's selection.
fn resumable(work: &Path, limit: Option<usize>, resume: bool) -> Result<bool> {
    let file = work.join("selection");
    let this = limit.map_or("all".to_string(), |l| format!("first {l}"));
    let earlier = std::fs::read_to_string(&file).ok().map(|t| t.trim().to_string());
    if let Some(earlier) = earlier.as_deref().filter(|e| resume && *e != this) {
        bail!(
            "--resume: the earlier run in {} took {earlier} questions of each file, this one {this}; run \
             without --resume to start again",
            work.display()
        );
    }
    std::fs::create_dir_all(work)?;
    std::fs::write(&file, format!("{this}\n"))?;
    Ok(resume && earlier.is_some())
}

/// The file's sha256; for MMLU's folder, that of its `SHA256SUMS` beside it (which lists every CSV's).
fn sha256(path: &Path) -> Option<String> {
    let file = if path.is_dir() { path.with_file_name("SHA256SUMS") } else { path.to_path_buf() };
    let text = output(Command::new("sha256sum").arg(&file)).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

/// `reports/agreement/README.md` from the results and the hand-written `findings.md`.
fn write_page(root: &Path, page: &Value) -> Result<()> {
    let dir = root.join(REPORT_DIR);
    std::fs::create_dir_all(&dir)?;
    let text = render(page, std::fs::read_to_string(dir.join("findings.md")).ok().as_deref());
    std::fs::write(dir.join("README.md"), text)?;
    eprintln!("wrote {}", dir.join("README.md").display());
    Ok(())
}

fn render(page: &Value, findings: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Agreement with the lm-evaluation-harness\n");
    let _ = writeln!(
        md,
        "runner and lm-eval on the same weights ({MODEL}'s GGUF dequantized to fp32: runner's `--precision fp32` \
         import, transformers' `gguf_file=` load), the same files and the same questions, compared question by \
         question. Made by `cargo xtask agree` ({}). Targets (issue 13): each verdict agrees on ≥ 99.5 % of \
         questions, each accuracy within 0.3 points.\n",
        page["generated_at"].as_str().unwrap_or("-")
    );
    if let Some(v) = page["versions"].as_object() {
        let list: Vec<String> = v.iter().map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?"))).collect();
        let _ = writeln!(
            md,
            "Peers: {}. Each task's machine is in the table (its load average at the task's start and end is in \
             results.json); both tools on {THREADS} thread (batch sizes in the table), 0-shot unless the task says.\n",
            list.join(", "),
        );
    }
    if let Some(findings) = findings {
        let _ = writeln!(md, "{}\n", findings.trim());
    }
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "| task | questions | metric | runner | lm-eval | difference (points) | verdicts agree | max \\|Δ log-likelihood\\| | identical prompts | runner wall | lm-eval wall | batch (runner, lm-eval) | machine |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let tasks = page["tasks"].as_object().cloned().unwrap_or_default();
    let ordered = DEFAULT_TASKS.iter().filter_map(|name| tasks.get(*name).map(|t| (*name, t)));
    for (name, task) in ordered.clone() {
        let n = task["questions"].as_u64().unwrap_or(0);
        let selection = match (task["limit"].as_u64(), name.starts_with("mmlu")) {
            (Some(l), true) => format!("{n} (first {l} of each subject)"),
            (Some(l), false) => format!("{n} (first {l})"),
            (None, _) => format!("{n} (all)"),
        };
        for metric in task["metrics"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {name} | {selection} | `{}` / `{}` | {} | {} | {:+.2} | {:.2} % | {:.1e} | {} / {n} | {:.0} s | {:.0} s | {} | {} |",
                metric["runner"].as_str().unwrap_or("?"),
                metric["lm_eval"].as_str().unwrap_or("?"),
                pct(metric["runner_acc"].as_f64().unwrap_or(0.0)),
                pct(metric["lm_eval_acc"].as_f64().unwrap_or(0.0)),
                metric["diff_points"].as_f64().unwrap_or(0.0),
                metric["agreement_pct"].as_f64().unwrap_or(0.0),
                task["max_ll_diff"].as_f64().unwrap_or(0.0),
                task["identical_prompts"],
                task["runner_wall_s"].as_f64().unwrap_or(0.0),
                task["lm_eval_wall_s"].as_f64().unwrap_or(0.0),
                match &task["batch_size"] {
                    Value::Object(b) => format!("{}, {}", b["runner"], b["lm_eval"]),
                    both => format!("{both}, {both}"),
                },
                task["machine"]["cpu"].as_str().unwrap_or("?"),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nWall time is each whole process, start-up included (lm-eval's is about half a minute of imports and \
         model loading). Accuracies are over the questions listed (MMLU: every question counts once, not the \
         subject average).\n"
    );
    let _ = writeln!(md, "Reproduce (the files from `../shared/datasets`, named here by sha256):\n");
    for (name, task) in ordered.clone() {
        let limit = task["limit"].as_u64().map_or(String::new(), |l| format!(" --limit {l}"));
        let _ = writeln!(
            md,
            "- `cargo xtask agree --install-peers --tasks {name}{limit}`: `{}` (sha256 {}{}), {}",
            task["data"].as_str().unwrap_or("?"),
            task["data_sha256"].as_str().unwrap_or("?"),
            if task["data"].as_str().is_some_and(|d| d.ends_with("/test")) {
                " of the folder's SHA256SUMS"
            } else {
                ""
            },
            task["runner_version"].as_str().unwrap_or("runner ?")
        );
    }
    let _ = writeln!(md);
    if let Some(gsm8k) = tasks.get(GSM8K) {
        agree_gsm8k::render(&mut md, gsm8k);
        let limit = gsm8k["limit"].as_u64().map_or(String::new(), |l| format!(" --limit {l}"));
        let _ = writeln!(
            md,
            "Reproduce: `cargo xtask agree --install-peers --tasks gsm8k{limit}` (add `--gsm8k-run DIR` to score \
             an existing run's outputs): `{DATA_GSM8K}` (sha256 {}).\n",
            gsm8k["data_sha256"].as_str().unwrap_or("?")
        );
    }
    let _ = writeln!(md, "## Disagreements\n");
    let _ = writeln!(
        md,
        "Every question whose verdict differs: both tools' log-likelihood per choice (in the file's order), the \
         choice each picked, and the gap between the two best scores (per character for `acc_norm`), the smaller \
         of the two tools'. A gap under {NEAR_TIE:.0e} is a near-tie. Ids only: no dataset text.\n"
    );
    for (name, task) in ordered {
        for metric in task["metrics"].as_array().into_iter().flatten() {
            let list = metric["disagreements"].as_array().cloned().unwrap_or_default();
            let _ = writeln!(
                md,
                "### {name}, `{}`: {} of {}\n",
                metric["lm_eval"].as_str().unwrap_or("?"),
                list.len(),
                task["questions"]
            );
            if list.is_empty() {
                continue;
            }
            // A long list (a task the two define differently) folds away so the page stays readable.
            let folded = list.len() > 20;
            if folded {
                let _ = writeln!(md, "<details><summary>{} questions</summary>\n", list.len());
            }
            let _ = writeln!(
                md,
                "| id | runner log-likelihoods | lm-eval log-likelihoods | picks (runner, lm-eval) | gap | near-tie |"
            );
            let _ = writeln!(md, "|---|---|---|---|---:|---|");
            for d in &list {
                let lls = |v: &Value| {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| format!("{:.4}", x.as_f64().unwrap_or(f64::NAN)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {}, {} | {:.2e} | {} |",
                    d["id"].as_str().unwrap_or("?"),
                    lls(&d["runner_lls"]),
                    lls(&d["lm_eval_lls"]),
                    d["runner_pick"],
                    d["lm_eval_pick"],
                    d["gap"].as_f64().unwrap_or(0.0),
                    if d["near_tie"].as_bool() == Some(true) { "yes" } else { "**no**" }
                );
            }
            if folded {
                let _ = writeln!(md, "\n</details>");
            }
            let _ = writeln!(md);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_named() {
        let options = AgreeOptions::parse(&["--limit", "20", "--tasks", "mmlu,arc_easy"]).unwrap();
        assert_eq!(options.limit, Some(20));
        assert_eq!(options.tasks, ["mmlu", "arc_easy"]);
        assert_eq!(AgreeOptions::parse(&[]).unwrap().tasks.len(), TASKS.len());
        for bad in [&["--limit", "0"][..], &["--tasks", "hellaswag"], &["--fast"]] {
            let err = AgreeOptions::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad[bad.len() - 1]) || err.contains(bad[0]), "{err}");
        }
    }

    #[test]
    fn resume_continues_only_the_same_selection_and_keeps_finished_halves() {
        let work = std::env::temp_dir().join(format!("agree-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        assert!(!resumable(&work, None, true).unwrap(), "nothing earlier to continue");
        assert!(resumable(&work, None, true).unwrap());
        let err = resumable(&work, Some(30), true).unwrap_err().to_string();
        assert!(err.contains("took all questions") && err.contains("this one first 30"), "{err}");
        assert!(!resumable(&work, Some(30), false).unwrap(), "a fresh run starts again");
        assert!(resumable(&work, Some(30), true).unwrap());
        let group = work.join("lm-eval/group-00");
        assert_eq!(finished_wall(&group), None);
        std::fs::create_dir_all(&group).unwrap();
        std::fs::write(group.join(WALL_FILE), "812.5\n").unwrap();
        assert_eq!(finished_wall(&group), Some(812.5));
        let _ = std::fs::remove_dir_all(&work);
    }

    #[test]
    fn csv_records_keep_quoted_newlines_inside_their_record() {
        let text = "\"a\nb\",1,2,3,4,A\nplain,1,2,3,4,B\n\"q \"\"x\"\"\",1,2,3,4,C";
        let records = csv_records(text);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0], "\"a\nb\",1,2,3,4,A\n");
        assert_eq!(records.concat(), text);
    }

    #[test]
    fn lm_eval_responses_and_arguments_read_in_both_layouts() {
        assert_eq!(first_number(&json!([[-1.5, false]])), Some(-1.5));
        assert_eq!(first_number(&json!(["-2.25", "False"])), Some(-2.25));
        assert_eq!(request_args(&json!(["ctx", " a"])), (Some("ctx"), Some(" a")));
        assert_eq!(request_args(&json!({"arg_0": "ctx", "arg_1": " b"})), (Some("ctx"), Some(" b")));
        assert_eq!(choice_length(" é!"), 2, "characters, without the space before the choice");
    }

    fn answer(lls: &[f64], lengths: &[usize], right: bool) -> Answer {
        Answer {
            id: "q1".into(),
            lls: lls.to_vec(),
            lengths: lengths.to_vec(),
            verdicts: BTreeMap::from([("accuracy".to_string(), right)]),
            prompt: Some("p".into()),
        }
    }

    #[test]
    fn a_near_tie_that_flips_is_listed_with_its_gap() {
        let task = TASKS[2];
        let key: Key = (String::new(), 0);
        let ours = BTreeMap::from([(key.clone(), answer(&[-1.0, -1.0005], &[8, 8], true))]);
        let theirs = BTreeMap::from([(key, answer(&[-1.0003, -1.0001], &[8, 8], false))]);
        let result = compare(&task, &ours, &theirs).unwrap();
        let metric = &result["metrics"][0];
        assert_eq!(metric["agreement_pct"], 0.0);
        assert_eq!(metric["diff_points"], 100.0);
        let d = &metric["disagreements"][0];
        assert_eq!((d["runner_pick"].as_u64(), d["lm_eval_pick"].as_u64()), (Some(0), Some(1)));
        assert_eq!(d["near_tie"], true);
        assert!((result["max_ll_diff"].as_f64().unwrap() - 0.0004).abs() < 1e-9);
        let mut result = result;
        result["machine"] = json!({"cpu": "Intel(R) Xeon(R) Processor", "logical_cores": 2});
        let page = json!({"tasks": {"sst2": result}, "generated_at": "now"});
        let text = render(&page, Some("A finding."));
        assert!(text.contains("| q1 |") && text.contains("A finding."), "{text}");
        assert!(text.contains(" | Intel(R) Xeon(R) Processor |\n"), "each task names its machine: {text}");
    }

    #[test]
    fn different_selections_are_refused() {
        let task = TASKS[2];
        let ours = BTreeMap::from([((String::new(), 0), answer(&[-1.0, -2.0], &[1, 1], true))]);
        let theirs = BTreeMap::from([((String::new(), 1), answer(&[-1.0, -2.0], &[1, 1], true))]);
        assert!(compare(&task, &ours, &theirs).unwrap_err().to_string().contains("selections differ"));
    }

    #[test]
    fn the_mmlu_tasks_are_lm_evals_template_per_subject() {
        let dir = std::env::temp_dir().join(format!("agree-test-{}", std::process::id()));
        let test = dir.join("test");
        std::fs::create_dir_all(&test).unwrap();
        std::fs::write(test.join("abstract_algebra_test.csv"), "q,1,2,3,4,A\n").unwrap();
        let names = write_lm_eval_tasks(&TASKS[3], &test, &dir.join("tasks")).unwrap();
        assert_eq!(names, ["agree_mmlu_abstract_algebra"]);
        let yaml = std::fs::read_to_string(dir.join("tasks/agree_mmlu_abstract_algebra.yaml")).unwrap();
        assert!(yaml.contains("about abstract algebra.\\n\\n\""), "{yaml}");
        assert!(yaml.contains("sampler: first_n") && yaml.contains("fewshot_path:"), "{yaml}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
