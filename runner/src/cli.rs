//! The command line: one subcommand per job, each handing off to the module that does it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::engine::{Sampling, check_repetition_penalty};
use crate::exec::{ExecOptions, exec};
use crate::import::{ImportOptions, Precision, import_gguf};
use crate::paths;
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
    // Boxed: the exec flags dwarf the other subcommands'.
    Exec(Box<ExecArgs>),
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
    /// Model folder (`runner import` output, an onnxruntime-genai builder folder or an Optimum
    /// text-generation-with-past export), or a Hugging Face Hub reference
    /// hf:OWNER/REPO[/SUBFOLDER][@REVISION], fetched into the HF cache (HF_HUB_OFFLINE=1: cache only);
    /// the default model when absent.
    #[arg(long, value_name = "DIR|hf:REPO")]
    pub model: Option<PathBuf>,
    /// Dataset file; the scenario's embedded sample when absent.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
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
    /// Generate this many samples together as one batch (left/right padding as the model needs, each
    /// sample stopping on its own); results stay one line per sample, in dataset order.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch_size: usize,
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
        Command::Exec(args) => run_exec(*args),
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

fn run_exec(args: ExecArgs) -> Result<()> {
    if !(args.scenario_timeout > 0.0 && args.scenario_timeout.is_finite()) {
        anyhow::bail!("--scenario-timeout must be a positive number of seconds, got {}", args.scenario_timeout);
    }
    if args.max_consecutive_failures == 0 {
        anyhow::bail!("--max-consecutive-failures must be at least 1");
    }
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    // The engine's messages start with the setting's flag name.
    let sampling = Sampling::new(args.temperature, args.top_k, args.top_p).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let repetition_penalty = check_repetition_penalty(args.repetition_penalty).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let opts = ExecOptions {
        scenario: args.scenario,
        model: args.model,
        data: args.data,
        max_samples: args.max_samples,
        shuffle_seed: args.shuffle_seed,
        max_new_tokens: args.max_new_tokens,
        sampling,
        seed: args.seed,
        repetition_penalty,
        ignore_eos: args.ignore_eos,
        batch_size: args.batch_size,
        out: args.out,
        ort_lib: args.ort_lib,
        threads: args.threads,
        limits: ScenarioLimits {
            memory_bytes: args.scenario_memory_mib.saturating_mul(1 << 20),
            call_timeout: Duration::from_secs_f64(args.scenario_timeout),
        },
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
