//! The command line: one subcommand per job, each handing off to the module that does it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};

use crate::baseline;
use crate::bench::{self, BenchOptions, Ep, PromptPreset};
use crate::datasets::DataSource;
use crate::engine::providers::parse_bytes;
use crate::engine::{
    ExecutionProvider, GraphOptimization, Mode, PromptOptions, ProviderOptions, Sampling, ThinkSplit,
    check_repetition_penalty,
};
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
// Parsed once per process: the size of the exec flags does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run a scenario (a WebAssembly component) against a model and record quality and speed.
    // Boxed: the exec flags dwarf the other subcommands'.
    Exec(Box<ExecArgs>),
    /// Score outputs made elsewhere (another engine, an API, an earlier run) with a scenario; no model.
    Score(ScoreArgs),
    /// Turn a llama-architecture GGUF file into an ONNX Runtime model folder.
    Import(ImportArgs),
    /// Measure prefill and decode speed like llama-bench: exactly P prompt tokens, exactly N generated tokens,
    /// R repetitions; comma lists sweep every combination.
    Bench(BenchArgs),
    /// Make, inspect and convert LoRA adapters (ONNX Runtime .onnx_adapter files).
    Adapter(crate::lora::command::AdapterArgs),
    /// Compare results folders side by side: tables on the terminal, or Markdown, HTML, JSON or CSV.
    Report(crate::report::cli::ReportArgs),
    /// Compare two runs sample by sample: metric differences with paired tests, speed ratios.
    Compare(crate::compare::CompareArgs),
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
    #[command(flatten)]
    pub providers: ProviderArgs,
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
    /// A system prompt: chat prompts get it as their system message (in front of the scenario's own
    /// system message, if it has one); text prompts get it as a first paragraph followed by a blank line.
    #[arg(long, value_name = "TEXT")]
    pub system_prompt: Option<String>,
    /// Give prompts to the model as plain text instead of through its chat template (base models).
    /// A single user message is sent as written; a conversation becomes `User: …` / `Assistant: …`
    /// paragraphs ending with `Assistant:`; system messages come first as plain paragraphs.
    #[arg(long)]
    pub no_chat_template: bool,
    /// Reasoning models: where thinking starts and ends, as OPEN,CLOSE (e.g. `<think>,</think>`); `auto`
    /// takes a known pair from the model's tokenizer, else `<think>,</think>`; `off` scores the whole output.
    /// Thinking is kept in the results and counted apart; the scenario scores the answer after it.
    #[arg(long, value_name = "OPEN,CLOSE|auto|off", default_value = "auto")]
    pub think_markers: String,
    /// Write a Chrome trace (chrome://tracing, Perfetto) of the run: runner's spans per sample (scenario
    /// calls, render, tokenize, prefill, every decode step and sampling) and ONNX Runtime's per-operator
    /// profile on one timeline. Profiling slows inference: use it on short runs, not for speed numbers.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// On GPU runs, sample the GPU's memory, utilisation and power through NVML every MS milliseconds
    /// (0 turns it off); the board's energy counter gives joules per generated token.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub gpu_sample_ms: u64,
    /// A LoRA adapter (.onnx_adapter) applied at run time; the model must be LoRA-capable
    /// (`runner import --lora-targets`). The run is compared with the same run without the adapter (per-token,
    /// end-to-end and TTFT overhead, accuracy delta with a paired test): a cached base run with the same
    /// settings is reused, else one is made in OUT-base.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
}

/// Execution provider and session flags, shared by the commands that run a model.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Execution provider and mode")]
pub struct ProviderArgs {
    /// Execution provider. cuda and tensorrt need the GPU build of ONNX Runtime (`cargo xtask setup --gpu`);
    /// a provider that cannot register is an error, never a silent fallback to the CPU.
    #[arg(long, value_enum, default_value_t = ExecutionProvider::Cpu)]
    pub ep: ExecutionProvider,
    /// Execution mode, as eager/compiled frameworks name them: eager = --graph-opt disable (nodes run as
    /// written), compiled = --graph-opt all (fused, optimized graph; the default), kernelized = compiled plus
    /// CUDA graphs (--ep cuda, sets --cuda-graph) or TensorRT engines (--ep tensorrt).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// ONNX Runtime graph optimisation: disable (eager), basic (constant folding), extended (+ fusions),
    /// all (+ layout optimisations; compiled) [default: all].
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub graph_opt: Option<GraphOptimization>,
    /// ONNX Runtime inter-op threads; more than 1 runs independent nodes in parallel (parallel execution mode).
    #[arg(long, value_name = "N")]
    pub inter_threads: Option<usize>,
    /// Save the optimized graph in DIR once and load it from there next time (keyed by the model's bytes, the
    /// ONNX Runtime build, the provider options, the optimisation level and the CPU).
    #[arg(long, value_name = "DIR")]
    pub optimized_model_cache: Option<PathBuf>,
    /// GPU ordinal (--ep cuda / tensorrt).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub device_id: u32,
    /// Capture each decode step as a CUDA graph and replay it (--ep cuda / tensorrt): the kernelized mode.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Allow TF32 tensor cores for float32 matmuls (--ep cuda).
    #[arg(long)]
    pub tf32: bool,
    /// Cap on GPU memory, e.g. 8GiB or 512MiB (--ep cuda: the CUDA arena; --ep tensorrt: also the TensorRT workspace).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub gpu_mem_limit: Option<u64>,
    /// Let TensorRT build fp16 kernels (--ep tensorrt).
    #[arg(long)]
    pub trt_fp16: bool,
    /// Let TensorRT build int8 kernels (--ep tensorrt; needs a calibrated or QDQ model).
    #[arg(long)]
    pub trt_int8: bool,
    /// Keep built TensorRT engines in DIR and reuse them (--ep tensorrt).
    #[arg(long, value_name = "DIR")]
    pub trt_engine_cache: Option<PathBuf>,
    /// Keep TensorRT's kernel timing cache in DIR (--ep tensorrt).
    #[arg(long, value_name = "DIR")]
    pub trt_timing_cache: Option<PathBuf>,
}

impl ProviderArgs {
    /// The session settings these flags ask for, checked; errors name the flag.
    pub fn to_options(&self) -> Result<ProviderOptions> {
        let mut options = ProviderOptions {
            ep: self.ep,
            device_id: self.device_id,
            cuda_graph: self.cuda_graph,
            tf32: self.tf32,
            gpu_mem_limit: self.gpu_mem_limit,
            trt_fp16: self.trt_fp16,
            trt_int8: self.trt_int8,
            trt_engine_cache: self.trt_engine_cache.clone(),
            trt_timing_cache: self.trt_timing_cache.clone(),
            graph_opt: self.graph_opt.unwrap_or_default(),
            inter_threads: self.inter_threads,
            optimized_model_cache: self.optimized_model_cache.clone(),
        };
        if let Some(mode) = self.mode {
            options.apply_mode(mode, self.graph_opt.is_some())?;
        }
        options.validate()?;
        Ok(options)
    }
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
    /// The model folder to write [default: models/NAME/PRECISION under runner's home, NAME being the GGUF's
    /// file name without its quantization suffix].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// int4 keeps the GGUF's 4-bit weights exactly (MatMulNBits); int8 requantizes them to 8-bit
    /// MatMulNBits (block 32); fp16 makes weights, activations, KV cache and logits float16; fp32 dequantizes.
    #[arg(long, value_enum, default_value_t = Precision::Int4)]
    pub precision: Precision,
    /// MatMulNBits accuracy level (int4, int8): 4 computes with int8 activations (fast on CPU), 0 in fp32 (exact).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub accuracy_level: u8,
    /// Replace DIR if it exists.
    #[arg(long)]
    pub force: bool,
    /// Projections that get LoRA inputs so adapters can be applied at run time, comma-separated, as PEFT names
    /// them: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or `all` (default: none, a plain graph).
    #[arg(long, value_name = "LIST")]
    pub lora_targets: Option<String>,
    /// The highest adapter rank the model accepts.
    #[arg(long, value_name = "R", default_value_t = crate::lora::DEFAULT_MAX_RANK)]
    pub lora_max_rank: usize,
}

/// `runner bench`'s flags. Lists are comma-separated (`-p 128,512`) or repeated (`-p 128 -p 512`); the sweep
/// is their cartesian product, ordered model, --ep, -t, -b, -p, -n (the last varying fastest).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model folder; repeat the flag to compare models (default: the default model).
    #[arg(long, value_name = "DIR")]
    pub model: Vec<PathBuf>,
    /// Prompt lengths in tokens (default 512). The prompt is synthetic: ordinary (non-special) vocabulary
    /// tokens drawn with a fixed seed, the same ids on every run and machine.
    #[arg(short = 'p', long, value_name = "P,...", value_delimiter = ',', value_parser = positive())]
    pub prompt_tokens: Vec<usize>,
    /// Prompt lengths by category: short = 128, medium = 512, long = 2048 tokens; added to -p's values.
    #[arg(long, value_name = "PRESET,...", value_delimiter = ',', value_enum)]
    pub prompt_preset: Vec<PromptPreset>,
    /// Tokens to generate (default 128), exactly: EOS does not stop generation. Decoding is greedy; decode
    /// tokens/s (`tgN`) counts the N - 1 tokens after the first, which prefill produces (TTFT).
    #[arg(short = 'n', long, value_name = "N,...", value_delimiter = ',', value_parser = positive())]
    pub gen_tokens: Vec<usize>,
    /// Batch sizes (default 1).
    #[arg(short = 'b', long, value_name = "B,...", value_delimiter = ',', value_parser = positive())]
    pub batch_size: Vec<usize>,
    /// Execution providers (default cpu).
    #[arg(long, value_name = "EP,...", value_delimiter = ',', value_parser = clap::builder::ValueParser::new(parse_ep))]
    pub ep: Vec<Ep>,
    /// ONNX Runtime intra-op thread counts (default: ONNX Runtime's choice, one per physical core).
    #[arg(short = 't', long, value_name = "T,...", value_delimiter = ',', value_parser = positive())]
    pub threads: Vec<usize>,
    /// Measured repetitions of each configuration.
    #[arg(short = 'r', long, value_name = "R", default_value_t = bench::DEFAULT_REPETITIONS, value_parser = positive())]
    pub repetitions: usize,
    /// Unrecorded warm-up runs before each configuration's repetitions.
    #[arg(short = 'w', long, value_name = "W", default_value_t = bench::DEFAULT_WARMUP)]
    pub warmup: usize,
    /// Run the configurations round-robin, one repetition each per round (after all warm-ups), so a busy
    /// spell of the machine spreads over every configuration instead of biasing one; all models stay loaded.
    #[arg(long)]
    pub interleave: bool,
    /// Write every repetition and the summaries as JSON to FILE (`-` for stdout: the tables then go to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Print the tables as Markdown, for pasting into reports.
    #[arg(long)]
    pub markdown: bool,
    /// The ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the one `cargo xtask setup` installs).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Counts of at least 1; clap names the flag when a value is not one.
fn positive() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(1..)
}

fn parse_ep(value: &str) -> Result<Ep, String> {
    value.parse()
}

impl BenchArgs {
    /// The options these flags ask for, defaults filled in.
    pub fn options(&self) -> BenchOptions {
        let or = |values: &[usize], default: usize| if values.is_empty() { vec![default] } else { values.to_vec() };
        let mut prompt_tokens = self.prompt_tokens.clone();
        prompt_tokens.extend(self.prompt_preset.iter().map(|p| p.tokens()));
        BenchOptions {
            models: if self.model.is_empty() { vec![paths::default_model()] } else { self.model.clone() },
            prompt_tokens: or(&prompt_tokens, bench::DEFAULT_PROMPT_TOKENS),
            gen_tokens: or(&self.gen_tokens, bench::DEFAULT_GEN_TOKENS),
            batch_sizes: or(&self.batch_size, 1),
            eps: if self.ep.is_empty() { vec![Ep::Cpu] } else { self.ep.clone() },
            threads: if self.threads.is_empty() { vec![None] } else { self.threads.iter().map(|&t| Some(t)).collect() },
            repetitions: self.repetitions,
            warmup: self.warmup,
            interleave: self.interleave,
            ort_lib: self.ort_lib.clone(),
        }
    }
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
        Command::Score(args) => run_score(args),
        Command::Import(args) => run_import(args),
        Command::Bench(args) => run_bench(args),
        Command::Adapter(args) => crate::lora::command::run(args),
        Command::Report(args) => crate::report::cli::run(args),
        Command::Compare(args) => crate::compare::run(args),
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
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    // The engine's messages start with the setting's flag name.
    let sampling = Sampling::new(args.temperature, args.top_k, args.top_p).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let repetition_penalty = check_repetition_penalty(args.repetition_penalty).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let think = ThinkSplit::parse(&args.think_markers).map_err(|e| anyhow::anyhow!("--{e}"))?;
    if args.system_prompt.as_deref().is_some_and(|s| s.trim().is_empty()) {
        anyhow::bail!("--system-prompt is empty; leave it out for no system prompt");
    }
    if let Some(trace) = &args.trace
        && trace.is_dir()
    {
        anyhow::bail!("--trace {} is a folder; give a file name such as trace.json", trace.display());
    }
    let providers = args.providers.to_options()?;
    let gpu_device = providers.device_id;
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
        batch_size: args.batch_size,
        out: args.out,
        ort_lib: args.ort_lib,
        threads: args.threads,
        providers,
        limits,
        max_consecutive_failures: args.max_consecutive_failures,
        progress: !args.no_progress,
        prompt: PromptOptions { system_prompt: args.system_prompt, no_chat_template: args.no_chat_template },
        think,
        trace: args.trace,
        gpu_sample_interval: (args.gpu_sample_ms > 0).then(|| Duration::from_millis(args.gpu_sample_ms)),
        gpu_device,
        adapter: args.adapter,
    };
    let outcome = match opts.adapter {
        // An adapter run is compared with its base run: a cached one, or one made beside it.
        Some(_) => baseline::exec_with_baseline_in(&baseline::Registry::from_env(), &opts, baseline::base_out_beside)?,
        None => exec(&opts)?,
    };
    print!("{}", render_terminal(&outcome.summary));
    println!("Results: {}", outcome.dir.display());
    if let Some((path, trace)) = &outcome.trace {
        println!("{}", crate::results::table::describe_trace(path, trace));
    }
    if let Some(reason) = &outcome.summary.abort_reason {
        anyhow::bail!("the run stopped early: {reason}");
    }
    Ok(())
}

fn run_import(args: ImportArgs) -> Result<()> {
    let targets = match &args.lora_targets {
        Some(list) => crate::lora::parse_targets(list).map_err(|e| anyhow::anyhow!("--lora-targets: {e}"))?,
        None => Vec::new(),
    };
    if args.lora_max_rank == 0 {
        anyhow::bail!("--lora-max-rank must be at least 1");
    }
    let lora = crate::lora::LoraOptions { targets, max_rank: args.lora_max_rank };
    let options =
        ImportOptions { precision: args.precision, accuracy_level: args.accuracy_level, force: args.force, lora };
    let out = args.out.unwrap_or_else(|| crate::import::default_output_dir(&args.gguf, args.precision));
    let summary = import_gguf(&args.gguf, &out, &options)?;
    println!("{summary}");
    Ok(())
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let options = args.options();
    let report = bench::run(&options, !args.no_progress)?;
    let tables = bench::render(&report, args.markdown);
    let json = || serde_json::to_string_pretty(&report).context("cannot serialise the benchmark report");
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            eprint!("{tables}");
            println!("{}", json()?);
        }
        Some(path) => {
            std::fs::write(path, json()? + "\n").with_context(|| format!("--json: cannot write {}", path.display()))?;
            print!("{tables}");
            eprintln!("Wrote {}", path.display());
        }
        None => print!("{tables}"),
    }
    Ok(())
}
