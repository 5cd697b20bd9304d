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
use crate::engine::{ExecutionProvider, GraphOptimization, Mode, ProviderOptions, ThinkSplit};
use crate::exec::ExecOptions;
use crate::experiment::file::Experiment;
use crate::experiment::{PlanInput, RunConfig, Selection, Shard, plan};
use crate::import::{ImportOptions, Precision, import_gguf};
use crate::paths;
use crate::prepare::{ScenarioChoices, ScoringMode};
use crate::results::summary::RunVerdict;
use crate::results::table::render_terminal;
use crate::scenario::ScenarioLimits;
use crate::scenario::fewshot::FewShotOrder;
use crate::sweep::{SweepOptions, run_sweep};
use crate::terminal::escape_block;

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
    /// Merge sweep folders (shards run with `exec --shard I/N`, possibly on other machines) into one sweep.
    Merge(MergeArgs),
    /// Compare two runs sample by sample: metric differences with paired tests, speed ratios.
    Compare(crate::compare::CompareArgs),
    /// Compare results folders side by side: tables on the terminal, or Markdown, HTML, JSON or CSV.
    Report(crate::report::cli::ReportArgs),
    /// Show where runner looks for the ONNX Runtime library and the default model.
    Paths {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `runner exec`'s flags. The scenario, --model, --precision, --ep and --batch-size take several values: every
/// combination runs (a sweep, in its own folder per run); `--experiment DIR` reads the runs from files.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The scenario components, e.g. scenarios/gsm8k.wasm; several make a sweep (optional with --experiment).
    #[arg(value_parser = text_path())]
    pub scenario: Vec<PathBuf>,
    /// Model folder (`runner import` output, an onnxruntime-genai builder folder or an Optimum
    /// text-generation-with-past export), a folder of precision subfolders (int4/, fp32/...), a .gguf file
    /// (imported on demand), or a Hugging Face Hub reference hf:OWNER/REPO[/SUBFOLDER][@REVISION], fetched
    /// into the HF cache (HF_HUB_OFFLINE=1: cache only); the default model when absent. Repeat to compare models.
    #[arg(long, value_name = "DIR|FILE.gguf|hf:REPO", value_parser = text_path())]
    pub model: Vec<PathBuf>,
    /// The model's precision, comma list or repeated (int4,int8,fp16,fp32): the default model and .gguf files use
    /// their import of that precision (imported on demand), a folder of precision subfolders the subfolder; a
    /// model folder whose graph is another float precision (fp32/fp16) gets it derived (int4/int8: MatMulNBits
    /// block 32 with zero points, accuracy level 4; fp16: the whole graph), cached under models/derived/ in
    /// runner's home with its fidelity against the source (mean KL, top-1) in derived.json and summary.json.
    #[arg(long, value_enum, value_name = "P,...", value_delimiter = ',')]
    pub precision: Vec<Precision>,
    /// An experiment folder: experiment.yaml|yml|json (`defaults:`, `matrix:`, `runs:`, `include:`,
    /// `exclude:`) and runs/*.yaml|json; flags given on the command line override its values
    /// (docs/experiments.md).
    #[arg(long, value_name = "DIR")]
    pub experiment: Option<PathBuf>,
    /// Run only the runs whose name matches this glob (e.g. 'gsm8k-*'); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip the runs whose name matches this glob; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Run one slice of the sweep: the runs whose index in the sorted plan is I modulo N (0-based I < N).
    /// Shards may share the sweep folder or run apart and be joined with `runner merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Print the runs the flags and experiment describe (names and effective configurations) and stop.
    #[arg(long)]
    pub dry_run: bool,
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
    /// Stop generating at this string, instead of the scenario's stop strings; repeat for several. `\n`, `\t`
    /// and `\\` stand for a line break, a tab and a backslash.
    #[arg(long = "stop", value_name = "TEXT", value_parser = stop_string)]
    pub stop: Vec<String>,
    /// Sampling temperature; 0 is greedy decoding (default: greedy, or 1 when --top-k or --top-p is given).
    #[arg(long, value_name = "T", value_parser = finite_f32)]
    pub temperature: Option<f32>,
    /// Sample only from the K most likely tokens (0: no limit).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only from the fewest most likely tokens whose probability reaches P, in (0, 1].
    #[arg(long, value_name = "P", value_parser = finite_f32)]
    pub top_p: Option<f32>,
    /// Seed of the sampler: the same seed draws the same tokens from the same logits on every machine
    /// [default: 0].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Divide the logits of tokens already in the prompt or output by this when positive, multiply when
    /// negative (transformers' semantics); 1 is off [default: 1].
    #[arg(long, value_name = "X", value_parser = finite_f32)]
    pub repetition_penalty: Option<f32>,
    /// Keep generating past EOS tokens, up to --max-new-tokens (fixed-length timing runs).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Generate this many samples together as one batch (left/right padding as the model needs, each
    /// sample stopping on its own); results stay one line per sample, in dataset order. A comma list sweeps
    /// batch sizes [default: 1].
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = positive())]
    pub batch_size: Vec<usize>,
    /// Results folder (default: results/<time>-<scenario>-<model>); for a sweep (several runs, --experiment or
    /// --shard) the sweep folder, one results folder per run inside (default: results/<time>-sweep).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the one `cargo xtask setup` installs).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's choice, one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Log-likelihood runs on the CPU: N sessions score questions side by side, each with its share of
    /// --threads (default 1). On a few cores, two one-thread sessions score short contexts faster than one
    /// two-thread session, whose threads wait on each other at every small operator
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
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
    #[arg(long, value_name = "FILE", value_parser = text_path())]
    pub adapter: Option<PathBuf>,
    /// Continue the run or sweep in --out DIR after it was interrupted (killed, power loss, full disk): its
    /// finished samples (and a sweep's complete runs) are kept and never run twice, a half-written last line
    /// is dropped (and reported), the rest run. Refused, naming what differs, when the configuration is not the one the folder was started
    /// with. A folder that does not exist or holds no samples starts the run.
    #[arg(long, help_heading = "Results")]
    pub resume: bool,
    /// Run this many samples first (the selection's first ones) through the whole pipeline and discard
    /// them, so caches and the allocator are warm when measuring starts.
    /// (default 0; also the `warmup` run key)
    #[arg(long, value_name = "N", help_heading = "Results")]
    pub warmup: Option<usize>,
    /// Run the selection R times; each sample line records its `repetition` (0..R). Quality metrics are
    /// computed over repetition 0 only (each sample counts once); timing, token and memory distributions use
    /// every repetition.
    /// (default 1; also the `repeat` run key)
    #[arg(long, value_name = "R", value_parser = positive(), help_heading = "Results")]
    pub repeat: Option<usize>,
    /// Also put each sample's prompt (as the model saw it), output, reference and extracted answer in
    /// samples.csv (by default it holds metrics, token counts, timings and errors only).
    #[arg(long, help_heading = "Results")]
    pub csv_text: bool,
}

/// Execution provider and session flags, shared by the commands that run a model.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Execution provider and mode")]
pub struct ProviderArgs {
    /// Execution provider; a comma list sweeps providers [default: cpu]. cuda and tensorrt need the GPU build
    /// of ONNX Runtime (`cargo xtask setup --gpu`); a provider that cannot register is an error, never a silent
    /// fallback to the CPU.
    #[arg(long, value_enum, value_name = "EP,...", value_delimiter = ',')]
    pub ep: Vec<ExecutionProvider>,
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
    /// Idle ONNX Runtime threads sleep instead of spinning between operators: faster when other processes
    /// keep the cores busy, slower on a quiet machine (default: ONNX Runtime's, which spins).
    #[arg(long)]
    pub no_spin: bool,
}

impl ProviderArgs {
    /// The session settings these flags ask for on provider `ep`, checked; errors name the flag.
    pub fn to_options(&self, ep: ExecutionProvider) -> Result<ProviderOptions> {
        let mut options = ProviderOptions {
            ep,
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
            intra_op_spinning: self.no_spin.then_some(false),
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
    #[arg(long, value_name = "FILE|hf:REPO", value_parser = DataSpecParser)]
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
    /// The split few-shot examples come from: a file or a folder (MMLU's dev/). Default: the `dev` folder
    /// beside a --data folder named test, val or validation; else the evaluated dataset (never the sample).
    #[arg(long, value_name = "FILE|DIR", value_parser = text_path())]
    pub few_shot_data: Option<PathBuf>,
    /// Which examples: `first` takes the subset's first K in file order (lm-eval's first_n, MMLU's own
    /// code); `seeded` draws K by --seed and the sample's id. Default: first with a few-shot split, else
    /// seeded.
    #[arg(long, value_enum, value_name = "ORDER")]
    pub few_shot_order: Option<FewShotOrder>,
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

/// A float flag that must be a number: NaN and infinities would pass every range check and then vanish when
/// the run's configuration is written as JSON (which has no NaN), silently running the default instead.
fn finite_f32(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err("not a finite number".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A path flag that becomes part of a run's configuration, which results record as JSON text: a name that is
/// not valid UTF-8 could not be recorded, so it is refused here, naming the flag (and so is an empty one).
fn text_path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|text| match text.into_string() {
        Ok(path) if path.trim().is_empty() => Err("the path is empty".to_string()),
        Ok(path) => Ok(PathBuf::from(path)),
        Err(text) => Err(format!("{} is not valid UTF-8; results record paths as text", text.to_string_lossy())),
    })
}

/// A `--stop` value with `\n`, `\t` and `\\` unescaped: a line break is the most common stop string and the
/// hardest to type on a command line.
fn stop_string(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    if out.is_empty() { Err("the stop string is empty".to_string()) } else { Ok(out) }
}

fn parse_scenario_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl ScenarioArgs {
    fn data_source(&self) -> Result<Option<DataSource>> {
        self.data.as_deref().map(DataSource::parse).transpose().map_err(|e| anyhow::anyhow!("--data: {e}"))
    }

    fn choices(&self, seed: u64) -> ScenarioChoices {
        ScenarioChoices {
            subsets: self.subsets.clone(),
            few_shot: self.few_shot,
            few_shot_data: self.few_shot_data.clone(),
            few_shot_order: self.few_shot_order,
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
pub struct MergeArgs {
    /// The sweep folders to merge (shards of one sweep: the same plan).
    #[arg(required = true, value_name = "SWEEP_DIR")]
    pub dirs: Vec<PathBuf>,
    /// The merged sweep folder (may be one of the inputs); runs from the others are copied into it.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The GGUF file.
    pub gguf: PathBuf,
    /// The model folder to write [default: models/NAME/PRECISION under runner's home, NAME being the GGUF's
    /// file name without its quantization suffix].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// int4 keeps the GGUF's quantized blocks exactly as MatMulNBits (4-bit for Q4_0/Q4_1/Q4_K/Q2_K/Q3_K, 8-bit
    /// for Q5_0/Q5_1/Q5_K/Q6_K/Q8_0); int8 keeps the 8-bit ones and requantizes the rest to 8-bit MatMulNBits
    /// (block 32); fp16 makes weights, activations, KV cache and logits float16; fp32 dequantizes.
    #[arg(long, value_enum, default_value_t = Precision::Int4)]
    pub precision: Precision,
    /// MatMulNBits accuracy level (int4, int8): 4 computes with int8 activations (fast on CPU), 0 in fp32 (exact).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub accuracy_level: u8,
    /// Replace DIR if it exists.
    #[arg(long)]
    pub force: bool,
    /// Replace DIR only when it is not what this import would write (another GGUF, precision or accuracy
    /// level, or a graph from an older runner); otherwise leave it and say so. What setup uses.
    #[arg(long)]
    pub if_outdated: bool,
    /// Projections that get LoRA inputs so adapters can be applied at run time, comma-separated, as PEFT names
    /// them: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or `all` (default: none, a plain graph).
    #[arg(long, value_name = "LIST")]
    pub lora_targets: Option<String>,
    /// The highest adapter rank the model accepts.
    #[arg(long, value_name = "R", default_value_t = crate::import::DEFAULT_MAX_RANK)]
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
    /// Idle ONNX Runtime threads sleep instead of spinning between operators: faster when other processes
    /// keep the cores busy, slower on a quiet machine (default: ONNX Runtime's, which spins).
    #[arg(long)]
    pub no_spin: bool,
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
            intra_op_spinning: self.no_spin.then_some(false),
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

/// `--data`: refuses an empty value and names the flag for one that is not UTF-8 (clap's own message for
/// that does not say which argument it was).
#[derive(Clone)]
struct DataSpecParser;

impl clap::builder::TypedValueParser for DataSpecParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let problem = match value.to_str() {
            Some(text) if !text.trim().is_empty() => return Ok(text.to_string()),
            Some(_) => "is empty; give a file, hf:OWNER/NAME[:CONFIG][@REVISION] or hf",
            None => "is not valid UTF-8; rename the file or link it under a UTF-8 name",
        };
        let message = format!("--data {} {problem}\n", value.to_string_lossy());
        Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd))
    }
}

/// The command line as clap parses it, with negative numbers accepted as values everywhere, so `--seed -1`
/// is refused by the flag's own parser with the flag named, not taken for an unknown flag `-1`.
fn parse_command_line() -> Cli {
    fn negative_numbers_are_values(command: clap::Command) -> clap::Command {
        #[allow(deprecated)]
        command.allow_negative_numbers(true).mut_subcommands(negative_numbers_are_values)
    }
    use clap::{CommandFactory, FromArgMatches};
    let matches = negative_numbers_are_values(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

pub fn run() -> Result<()> {
    let cli = parse_command_line();
    init_logging(cli.verbose);
    match cli.command {
        Command::Exec(args) => run_exec(*args),
        Command::Score(args) => run_score(args),
        Command::Import(args) => run_import(args),
        Command::Bench(args) => run_bench(args),
        Command::Adapter(args) => crate::lora::command::run(args),
        Command::Merge(args) => run_merge(args),
        Command::Compare(args) => crate::compare::run(args),
        Command::Report(args) => crate::report::cli::run(args),
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
        print!("{}", escape_block(&report.render_terminal()));
    }
    Ok(())
}

/// The run keys the command line sets explicitly: scalars layered over every run, lists multiplied in.
fn command_line_layers(args: &ExecArgs) -> (RunConfig, Vec<(&'static str, Vec<serde_json::Value>)>) {
    let scenario = &args.scenario_options;
    let config = RunConfig {
        adapter: args.adapter.clone(),
        chat_template: args.no_chat_template.then_some(false),
        system_prompt: args.system_prompt.clone(),
        data: scenario.data.clone(),
        split: scenario.split.clone(),
        subsets: (!scenario.subsets.is_empty()).then(|| scenario.subsets.clone()),
        few_shot: scenario.few_shot,
        few_shot_data: scenario.few_shot_data.clone(),
        few_shot_order: scenario.few_shot_order,
        scoring: scenario.scoring.map(|s| scoring_name(s).to_string()),
        max_samples: args.max_samples,
        shuffle_seed: args.shuffle_seed,
        max_new_tokens: args.max_new_tokens,
        stop: (!args.stop.is_empty()).then(|| args.stop.clone()),
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        repetition_penalty: args.repetition_penalty,
        ignore_eos: args.ignore_eos.then_some(true),
        threads: args.threads,
        workers: args.workers,
        warmup: args.warmup,
        repeat: args.repeat,
        ..Default::default()
    };
    let paths = |paths: &[PathBuf]| paths.iter().map(|p| serde_json::Value::String(p.display().to_string())).collect();
    let lists = vec![
        ("scenario", paths(&args.scenario)),
        ("model", paths(&args.model)),
        ("precision", args.precision.iter().map(|p| serde_json::json!(p)).collect()),
        ("ep", args.providers.ep.iter().map(|e| serde_json::json!(e)).collect()),
        ("batch_size", args.batch_size.iter().map(|b| serde_json::json!(b)).collect()),
    ];
    (config, lists)
}

fn scoring_name(mode: ScoringMode) -> &'static str {
    match mode {
        ScoringMode::Generate => "generate",
        ScoringMode::Loglikelihood => "loglikelihood",
    }
}

/// The exec options of one run: its effective configuration, checked, plus the flags that are not run keys.
fn exec_options(args: &ExecArgs, config: &RunConfig) -> Result<ExecOptions> {
    let limits = scenario_limits(args.scenario_memory_mib, args.scenario_timeout)?;
    config.check()?;
    // The engine's messages start with the setting's flag name.
    let think = ThinkSplit::parse(&args.think_markers).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let providers = args.providers.to_options(config.execution_provider())?;
    let gpu_device = providers.device_id;
    Ok(ExecOptions {
        run: config.clone(),
        run_name: None,
        task_file: args.scenario_options.task.clone(),
        scenario_args: args.scenario_options.scenario_args.clone(),
        scenario_cache: !args.scenario_options.no_scenario_cache,
        out: args.out.clone(),
        ort_lib: args.ort_lib.clone(),
        providers,
        limits,
        max_consecutive_failures: args.max_consecutive_failures,
        progress: !args.no_progress,
        think,
        trace: args.trace.clone(),
        gpu_sample_interval: (args.gpu_sample_ms > 0).then(|| Duration::from_millis(args.gpu_sample_ms)),
        gpu_device,
        resume: args.resume,
        csv_text: args.csv_text,
    })
}

fn run_exec(args: ExecArgs) -> Result<()> {
    scenario_limits(args.scenario_memory_mib, args.scenario_timeout)?;
    if args.max_consecutive_failures == 0 {
        anyhow::bail!("--max-consecutive-failures must be at least 1");
    }
    if let Some(trace) = &args.trace
        && trace.is_dir()
    {
        anyhow::bail!("--trace {} is a folder; give a file name such as trace.json", trace.display());
    }
    if args.scenario.is_empty() && args.experiment.is_none() {
        anyhow::bail!("no SCENARIO given: pass a scenario component (e.g. scenarios/gsm8k.wasm) or --experiment DIR");
    }
    let experiment = match &args.experiment {
        Some(dir) => Some(Experiment::load(dir)?),
        None => None,
    };
    let (command_line, command_line_lists) = command_line_layers(&args);
    let input = PlanInput {
        experiment: experiment.clone(),
        command_line,
        command_line_lists,
        selection: Selection { include: args.include.clone(), exclude: args.exclude.clone() },
    };
    let plan = plan(&input)?;
    if plan.is_empty() {
        anyhow::bail!("no run is left after --include/--exclude and the experiment's include/exclude");
    }
    if args.dry_run {
        for (i, run) in plan.iter().enumerate() {
            let shard =
                args.shard.map_or(String::new(), |s| if s.owns(i) { " (this shard)".into() } else { String::new() });
            println!("{}{shard}\t{}", run.name, run.config.to_json());
        }
        return Ok(());
    }
    let is_sweep = experiment.is_some() || plan.len() > 1 || args.shard.is_some();
    if !is_sweep {
        let mut config = plan[0].config.clone();
        config.name = None;
        let opts = exec_options(&args, &config)?;
        if args.resume && opts.out.is_none() {
            anyhow::bail!("--resume needs --out DIR: the results folder to continue");
        }
        // An adapter run is compared with its base run: a cached one, or one made beside it.
        let outcome = baseline::run(&opts, baseline::base_out_beside)?;
        print!("{}", escape_block(&render_terminal(&outcome.summary)));
        println!("Results: {}", outcome.dir.display());
        if let Some((path, trace)) = &outcome.trace {
            println!("{}", crate::results::table::describe_trace(path, trace));
        }
        return match outcome.summary.verdict() {
            RunVerdict::Passed => Ok(()),
            partial @ RunVerdict::SomeSamplesFailed { .. } => Err(SamplesFailed(partial.to_string()).into()),
            RunVerdict::Interrupted { reason } => Err(Interrupted(reason).into()),
            failed => Err(anyhow::anyhow!("{failed}")),
        };
    }
    let out = match &args.out {
        Some(out) => out.clone(),
        None if args.resume => anyhow::bail!("--resume needs --out DIR: the sweep folder to continue"),
        None => {
            let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            let what = args
                .experiment
                .as_deref()
                .and_then(|e| e.file_name())
                .map_or("sweep".to_string(), |n| crate::experiment::sanitize_name(&n.to_string_lossy()));
            PathBuf::from("results").join(format!("{stamp}-{what}"))
        }
    };
    let sweep_options = SweepOptions {
        out: out.clone(),
        experiment: args.experiment.clone(),
        description: experiment.as_ref().and_then(|e| e.description.clone()),
        shard: args.shard,
        resume: args.resume,
    };
    let options_for = |run: &crate::experiment::PlannedRun| -> Result<ExecOptions> {
        let mut options = exec_options(&args, &run.config)?;
        // One trace per run, in the run's folder.
        if let Some(trace) = &args.trace {
            let dir = out.join(&run.name);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            options.trace = Some(dir.join(trace.file_name().unwrap_or(std::ffi::OsStr::new("trace.json"))));
        }
        Ok(options)
    };
    let report = run_sweep(&plan, &sweep_options, &options_for)?;
    print!("{}", escape_block(&crate::sweep::render_table(&report.sweep)));
    println!("Sweep: {} ({} and {})", report.dir.display(), crate::sweep::SWEEP_FILE, crate::sweep::SWEEP_CSV);
    if let Some(name) = &report.interrupted {
        return Err(Interrupted(format!(
            "the sweep stopped during {name}; every finished sample and run is kept, and `--resume` with \
             the same --out continues it"
        ))
        .into());
    }
    if !report.failed.is_empty() {
        anyhow::bail!("{} of the runs failed or stopped early: {}", report.failed.len(), report.failed.join(", "));
    }
    if !report.partial.is_empty() {
        let message = format!(
            "{} of the runs finished with failed samples (their other samples' results stand): {}",
            report.partial.len(),
            report.partial.join(", ")
        );
        return Err(SamplesFailed(message).into());
    }
    Ok(())
}

/// The exit status of a run or sweep that finished but in which some samples failed; `main` exits with
/// it. runner's exit statuses (README, "Exit status"): 0 when every run and every sample succeeded; 1 on an
/// error, a run that failed or stopped early, or a run in which no sample succeeded; 2 for a usage error;
/// 3 when every run finished but some samples failed; 130 when Ctrl-C or SIGTERM stopped a run.
pub const EXIT_SAMPLES_FAILED: i32 = 3;

/// Returned when a signal stopped a run or sweep (exit status [`crate::interrupt::EXIT_INTERRUPTED`]): not an
/// error, since every finished sample was kept and `--resume` continues.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// Returned when every run finished but some samples failed: an outcome to report with
/// [`EXIT_SAMPLES_FAILED`], not an error, since every result was kept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SamplesFailed(pub String);

fn run_merge(args: MergeArgs) -> Result<()> {
    let merged = crate::sweep::merge::merge(&args.dirs, &args.out)?;
    print!("{}", escape_block(&crate::sweep::render_table(&merged)));
    let missing = crate::sweep::merge::incomplete_runs(&merged);
    println!("Merged {} sweep folders into {}", args.dirs.len(), args.out.display());
    if !missing.is_empty() {
        anyhow::bail!(
            "{} runs are not complete in any input: {}; rerun their shards with --resume and merge again",
            missing.len(),
            missing.join(", ")
        );
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
    let lora = crate::import::LoraOptions { targets, max_rank: args.lora_max_rank };
    let force = args.force || args.if_outdated;
    let options = ImportOptions { precision: args.precision, accuracy_level: args.accuracy_level, force, lora };
    let out = args.out.unwrap_or_else(|| crate::import::default_output_dir(&args.gguf, args.precision));
    if args.if_outdated && crate::import::is_current(&args.gguf, &out, &options)? {
        println!("{} is up to date (made from {} by this runner's graph)", out.display(), args.gguf.display());
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::RUN_KEYS;

    /// Every run key has its `runner exec` flag, and the command line layer carries it: a key added to
    /// `RunConfig` (and `RUN_KEYS`, which a test ties to the struct) fails here until the flag sets it.
    #[test]
    fn every_run_key_is_set_by_its_exec_flag() {
        let cli = Cli::try_parse_from([
            "runner",
            "exec",
            "a.wasm",
            "--model",
            "m",
            "--precision",
            "int4",
            "--ep",
            "cpu",
            "--batch-size",
            "2",
            "--adapter",
            "x.onnx_adapter",
            "--no-chat-template",
            "--system-prompt",
            "hi",
            "--data",
            "d.jsonl",
            "--split",
            "test",
            "--subset",
            "s",
            "--few-shot",
            "1",
            "--few-shot-data",
            "dev",
            "--few-shot-order",
            "first",
            "--scoring",
            "generate",
            "--max-samples",
            "3",
            "--shuffle-seed",
            "4",
            "--max-new-tokens",
            "5",
            "--stop",
            "X",
            "--temperature",
            "0.5",
            "--top-k",
            "3",
            "--top-p",
            "0.9",
            "--seed",
            "1",
            "--repetition-penalty",
            "1.1",
            "--ignore-eos",
            "--threads",
            "2",
            "--workers",
            "2",
            "--warmup",
            "1",
            "--repeat",
            "2",
        ])
        .unwrap();
        let Command::Exec(args) = cli.command else { panic!("an exec command line") };
        let (config, lists) = command_line_layers(&args);
        let mut set: Vec<String> = config.to_json().as_object().unwrap().keys().cloned().collect();
        set.extend(lists.iter().filter(|(_, values)| !values.is_empty()).map(|(key, _)| key.to_string()));
        set.sort();
        let mut keys: Vec<String> = RUN_KEYS.iter().filter(|k| **k != "name").map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(set, keys, "every run key but `name` (a sweep's) comes from a flag");
        // And the layer reaches the run: the checked options carry exactly this configuration.
        let planned = config.layered(&RunConfig { scenario: Some("a.wasm".into()), ..Default::default() });
        assert!(planned.check().is_ok());
    }
}
