//! The command line: one subcommand per job, each handing off to the module that does it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::datasets::DataSource;
use crate::engine::{Sampling, check_repetition_penalty};
use crate::exec::{ExecOptions, exec};
use crate::import::{ImportOptions, Precision, import_gguf};
use crate::paths;
use crate::prepare::{ScenarioChoices, ScoringMode};
use crate::results::table::render_terminal;
use crate::scenario::ScenarioLimits;

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = "Benchmark LLM inference: speed and quality in one run")]
pub struct Cli {
    /// Log more (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (a WebAssembly component) against a model and record quality and speed.
    Exec(ExecArgs),
    /// Score outputs made elsewhere (another engine, an API, an earlier run) with a scenario; no model.
    Score(ScoreArgs),
    /// Turn a llama-architecture GGUF file into an ONNX Runtime model folder.
    Import(ImportArgs),
    /// Show where runner looks for the ONNX Runtime library and the default model.
    Paths {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The scenario component, e.g. scenarios/gsm8k.wasm.
    pub scenario: PathBuf,
    /// Model folder (made by `runner import`); the default model when absent.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub scenario_options: ScenarioArgs,
    /// Run at most this many samples.
    #[arg(long, value_name = "N")]
    pub max_samples: Option<usize>,
    /// Shuffle the dataset with this seed before taking samples.
    #[arg(long, value_name = "S")]
    pub shuffle_seed: Option<u64>,
    /// Tokens to generate at most per sample (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy decoding (default: greedy, or 1 when --top-k or --top-p is given).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Sample only from the K most likely tokens (0: no limit).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only from the fewest most likely tokens whose probability reaches P, in (0, 1].
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Seed of the sampler: the same seed draws the same tokens from the same logits on every machine.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Divide the logits of tokens already in the prompt or output by this when positive, multiply when
    /// negative (transformers' semantics); 1 is off.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Keep generating past EOS tokens, up to --max-new-tokens (fixed-length timing runs).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Results folder (default: results/<time>-<scenario>-<model>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the one `cargo xtask setup` installs).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's choice, one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Memory a scenario may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub scenario_memory_mib: usize,
    /// Time one scenario call may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub scenario_timeout: f64,
    /// Stop the run after this many samples fail in a row.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_consecutive_failures: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// What a run reads and how the scenario is set up; shared by `exec` and `score`.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// The dataset: a file (.jsonl, .json, .csv, .tsv, .parquet, or any format the scenario reads),
    /// hf:OWNER/NAME[:CONFIG][@REVISION] for a Hugging Face dataset, or `hf` for the scenario's default
    /// source. Default: the scenario's embedded sample.
    #[arg(long, value_name = "FILE|hf:REPO")]
    pub data: Option<String>,
    /// The split of a Hugging Face dataset (default: the scenario's, else `test`).
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<String>,
    /// Run only this subset (an MMLU subject, a LongBench task...); repeat for several. An unknown name
    /// lists the scenario's subsets.
    #[arg(long = "subset", value_name = "NAME")]
    pub subsets: Vec<String>,
    /// Few-shot examples per prompt, chosen by runner from the same subset (default: the scenario's).
    #[arg(long, value_name = "K")]
    pub few_shot: Option<u32>,
    /// How answers are scored: `generate` (the model writes an answer) or `loglikelihood` (the
    /// likeliest choice); must be one the scenario supports (default: generate when it does).
    #[arg(long, value_enum, value_name = "MODE")]
    pub scoring: Option<ScoringMode>,
    /// A task file (JSON or YAML) for scenarios that take one, e.g. `custom`.
    #[arg(long, value_name = "FILE")]
    pub task: Option<PathBuf>,
    /// A setting the scenario documents, as KEY=VALUE; repeatable.
    #[arg(long = "scenario-arg", value_name = "KEY=VALUE", value_parser = parse_scenario_arg)]
    pub scenario_args: Vec<(String, String)>,
    /// Compile the scenario afresh instead of using the precompiled-component cache.
    #[arg(long)]
    pub no_scenario_cache: bool,
}

fn parse_scenario_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl ScenarioArgs {
    fn data_source(&self) -> Result<Option<DataSource>> {
        self.data.as_deref().map(DataSource::parse).transpose().map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn choices(&self, seed: u64) -> ScenarioChoices {
        ScenarioChoices {
            subsets: self.subsets.clone(),
            few_shot: self.few_shot,
            scoring: self.scoring,
            task_file: self.task.clone(),
            args: self.scenario_args.clone(),
            seed,
        }
    }
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The scenario component, e.g. scenarios/gsm8k.wasm.
    pub scenario: PathBuf,
    /// The outputs: JSON Lines, one object per sample with its `id` (or 0-based `index` into the
    /// dataset's samples) and its `output` text.
    #[arg(long, value_name = "FILE")]
    pub outputs: PathBuf,
    #[command(flatten)]
    pub scenario_options: ScenarioArgs,
    /// Seed the scenario gets (for anything it shuffles) and few-shot order derives from.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write each sample's score to this JSON Lines file.
    #[arg(long, value_name = "FILE")]
    pub samples_out: Option<PathBuf>,
    /// Memory a scenario may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub scenario_memory_mib: usize,
    /// Time one scenario call may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub scenario_timeout: f64,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The GGUF file.
    pub gguf: PathBuf,
    /// The model folder to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// int4 keeps the GGUF's 4-bit weights exactly; fp32 dequantizes them.
    #[arg(long, value_enum, default_value_t = Precision::Int4)]
    pub precision: Precision,
    /// MatMulNBits accuracy level: 4 computes with int8 activations (fast on CPU), 0 in fp32 (exact).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub accuracy_level: u8,
    /// Replace DIR if it exists.
    #[arg(long)]
    pub force: bool,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Exec(args) => run_exec(args),
        Command::Score(args) => run_score(args),
        Command::Import(args) => run_import(args),
        Command::Paths { json } => {
            let entries = [
                ("runner_home", paths::runner_home()),
                ("ort_cpu_lib", paths::ort_dir("cpu").join(paths::ort_lib_name())),
                ("ort_gpu_lib", paths::ort_dir("gpu").join(paths::ort_lib_name())),
                ("default_gguf", paths::default_gguf()),
                ("default_model", paths::default_model()),
            ];
            if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    entries.iter().map(|(k, v)| (k.to_string(), v.display().to_string().into())).collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                for (k, v) in entries {
                    let state = if v.exists() { "" } else { "  (not installed)" };
                    println!("{k:14} {}{state}", v.display());
                }
            }
            Ok(())
        }
    }
}

fn scenario_limits(memory_mib: usize, timeout: f64) -> Result<ScenarioLimits> {
    if !(timeout > 0.0 && timeout.is_finite()) {
        anyhow::bail!("--scenario-timeout must be a positive number of seconds, got {timeout}");
    }
    if memory_mib == 0 {
        anyhow::bail!("--scenario-memory-mib must be at least 1");
    }
    Ok(ScenarioLimits {
        memory_bytes: memory_mib.saturating_mul(1 << 20),
        call_timeout: Duration::from_secs_f64(timeout.min(1e9)),
    })
}

fn run_score(args: ScoreArgs) -> Result<()> {
    let limits = scenario_limits(args.scenario_memory_mib, args.scenario_timeout)?;
    let opts = crate::score::ScoreOptions {
        scenario: args.scenario,
        outputs: args.outputs,
        data: args.scenario_options.data_source()?,
        split: args.scenario_options.split.clone(),
        choices: args.scenario_options.choices(args.seed),
        scenario_cache: !args.scenario_options.no_scenario_cache,
        samples_out: args.samples_out,
        limits,
    };
    let report = crate::score::score(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_terminal());
    }
    Ok(())
}

fn run_exec(args: ExecArgs) -> Result<()> {
    let limits = scenario_limits(args.scenario_memory_mib, args.scenario_timeout)?;
    if args.max_consecutive_failures == 0 {
        anyhow::bail!("--max-consecutive-failures must be at least 1");
    }
    // The engine's messages start with the setting's flag name.
    let sampling = Sampling::new(args.temperature, args.top_k, args.top_p).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let repetition_penalty = check_repetition_penalty(args.repetition_penalty).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let opts = ExecOptions {
        scenario: args.scenario,
        model: args.model,
        data: args.scenario_options.data_source()?,
        split: args.scenario_options.split.clone(),
        choices: args.scenario_options.choices(args.seed),
        scenario_cache: !args.scenario_options.no_scenario_cache,
        max_samples: args.max_samples,
        shuffle_seed: args.shuffle_seed,
        max_new_tokens: args.max_new_tokens,
        sampling,
        seed: args.seed,
        repetition_penalty,
        ignore_eos: args.ignore_eos,
        out: args.out,
        ort_lib: args.ort_lib,
        threads: args.threads,
        limits,
        max_consecutive_failures: args.max_consecutive_failures,
        progress: !args.no_progress,
    };
    let outcome = exec(&opts)?;
    print!("{}", render_terminal(&outcome.summary));
    println!("Results: {}", outcome.dir.display());
    if let Some(reason) = &outcome.summary.abort_reason {
        anyhow::bail!("the run stopped early: {reason}");
    }
    Ok(())
}

fn run_import(args: ImportArgs) -> Result<()> {
    let options = ImportOptions { precision: args.precision, accuracy_level: args.accuracy_level, force: args.force };
    let summary = import_gguf(&args.gguf, &args.out, &options)?;
    println!("{summary}");
    Ok(())
}
