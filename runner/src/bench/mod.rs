//! `runner bench`: the llama-bench shape for ONNX Runtime. Each configuration of a sweep (models × execution
//! providers × threads × batch sizes × prompt lengths P × generated lengths N) generates exactly N tokens after
//! a synthetic prompt of exactly P tokens, W times to warm up and R times measured; the report holds every
//! repetition, mean ± sd (min, max) of prefill and decode tokens/s, TTFT, inter-token latency, end-to-end time,
//! peak memory and load time, with the provenance and background load that make the numbers comparable.
//!
//! One job per file: `options` says what to run and checks it, `plan` expands it into the ordered sweep,
//! `prompt` synthesises the prompt token ids, `measure` times one run, `report` aggregates and warns (the
//! `--json` schema), and `table` renders the terminal and Markdown tables.

mod measure;
mod options;
mod plan;
mod prompt;
mod report;
mod table;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};

pub use measure::Repetition;
pub use options::{
    BenchOptions, DEFAULT_GEN_TOKENS, DEFAULT_PROMPT_TOKENS, DEFAULT_REPETITIONS, DEFAULT_WARMUP, Ep, PromptPreset,
};
pub use plan::{Configuration, plan};
pub use prompt::{PROMPT_SEED, synthetic_prompt, token_pool};
pub use report::{BenchReport, BenchSettings, ConfigurationResult, ConfigurationSummary, ModelFacts, SCHEMA};
pub use table::render;

use crate::engine::inspect::inspect_model;
use crate::engine::{Engine, EngineError, EngineOptions, ModelError, ModelFolder, ProviderOptions};
use crate::memory;
use crate::provenance::{self, HostInfo, RunnerInfo};

/// Everything that stops a benchmark. Option errors name the flag.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{flag} needs at least one value")]
    EmptyList { flag: &'static str },
    #[error("{flag} must be at least 1")]
    Zero { flag: &'static str },
    #[error(
        "-p/--prompt-tokens {prompt} with -n/--gen-tokens {generated} needs {total} positions, but {model} has a \
         context of {context} tokens; lower -p (or --prompt-preset) or -n",
        total = .prompt + .generated
    )]
    ContextExceeded { model: String, prompt: usize, generated: usize, context: usize },
    #[error("the model's vocabulary has no ordinary (non-special) tokens to build a prompt from")]
    NoOrdinaryTokens,
    #[error("the engine returned no generation")]
    NoGeneration,
    #[error(
        "expected {expected_prompt} prompt tokens and {expected_gen} generated tokens, but the run had {prompt} and \
         {generated} (finish: {finish})"
    )]
    WrongLength { expected_prompt: usize, expected_gen: usize, prompt: usize, generated: usize, finish: String },
    #[error("--model {dir}: {source}", dir = .dir.display())]
    Model { dir: PathBuf, source: ModelError },
    #[error("cannot load model {dir}: {source}", dir = .dir.display())]
    Load { dir: PathBuf, source: Box<EngineError> },
    #[error(transparent)]
    Engine(Box<EngineError>),
    #[error("{model} {test}: {source}")]
    Run { model: String, test: String, source: Box<BenchError> },
}

// Boxed: engine errors are large, and every bench function returns this type.
impl From<EngineError> for BenchError {
    fn from(error: EngineError) -> Self {
        BenchError::Engine(Box::new(error))
    }
}

/// How a configuration's engine is loaded: the one place execution provider options reach the engine.
pub fn engine_options(model_dir: &Path, ep: Ep, threads: Option<usize>, ort_lib: Option<&Path>) -> EngineOptions {
    EngineOptions {
        model_dir: model_dir.to_path_buf(),
        ort_lib: ort_lib.map(Path::to_path_buf),
        intra_threads: threads,
        providers: ProviderOptions { ep, ..Default::default() },
        ..Default::default()
    }
}

/// A model of the sweep, read before anything runs so bad folders and lengths fail at once.
struct BenchModel {
    dir: PathBuf,
    facts: ModelFacts,
    pool: Vec<u32>,
    /// Why the precision is the folder's label rather than the graph's, when the graph could not be read.
    warning: Option<String>,
}

/// The ONNX graph and its external data files (`model.onnx.data`, `model.onnx_data`): names that extend its own.
fn model_size_bytes(model_path: &Path) -> u64 {
    let (Some(dir), Some(name)) = (model_path.parent(), model_path.file_name()) else {
        return 0;
    };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(name.as_ref()))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn open_model(dir: &Path) -> Result<BenchModel, BenchError> {
    let folder = ModelFolder::open(dir).map_err(|source| BenchError::Model { dir: dir.to_path_buf(), source })?;
    let info = &folder.info;
    let pool = token_pool(&folder.tokenizer, info.vocab, &info.eos_token_ids);
    if pool.is_empty() {
        return Err(BenchError::NoOrdinaryTokens);
    }
    // Precision and parameters come from the graph, as `runner exec` records them (`model.graph`), so the two
    // commands agree whatever label the folder carries.
    let (params, precision, warning) = match inspect_model(&folder.model_path) {
        Ok(graph) => (Some(graph.weights), graph.weight_precision, None),
        Err(e) => (
            None,
            info.precision.clone(),
            Some(format!(
                "{}: the precision could not be read from the graph ({e}); reporting the folder's label",
                info.name
            )),
        ),
    };
    let facts = ModelFacts {
        name: info.name.clone(),
        dir: dir.display().to_string(),
        size_bytes: model_size_bytes(&folder.model_path),
        params,
        precision,
        derived_from: crate::derive::DerivationRecord::read(dir).map(|d| d.source_precision),
        context_length: info.context_length,
        prompt_pool_size: pool.len(),
    };
    Ok(BenchModel { dir: dir.to_path_buf(), facts, pool, warning })
}

/// Checks every model and length before the first run: a sweep must not fail after minutes of measuring.
fn check_lengths(options: &BenchOptions, models: &[BenchModel]) -> Result<(), BenchError> {
    for model in models {
        for &prompt in &options.prompt_tokens {
            for &generated in &options.gen_tokens {
                if prompt + generated > model.facts.context_length {
                    return Err(BenchError::ContextExceeded {
                        model: model.facts.name.clone(),
                        prompt,
                        generated,
                        context: model.facts.context_length,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The engine configurations run on, and what loading it cost.
struct LoadedEngine {
    key: (usize, Ep, Option<usize>),
    engine: Engine,
    load_ms: f64,
    load_peak_rss_bytes: Option<u64>,
}

impl LoadedEngine {
    fn load(
        model: &BenchModel,
        configuration: &Configuration,
        ort_lib: Option<&Path>,
        spinning: Option<bool>,
    ) -> Result<Self, BenchError> {
        memory::reset_peak();
        let started = Instant::now();
        let mut options = engine_options(&model.dir, configuration.ep, configuration.threads, ort_lib);
        options.providers.intra_op_spinning = spinning;
        let engine = Engine::load(&options)
            .map_err(|source| BenchError::Load { dir: model.dir.clone(), source: Box::new(source) })?;
        Ok(LoadedEngine {
            key: configuration.engine_key(),
            engine,
            load_ms: started.elapsed().as_secs_f64() * 1e3,
            load_peak_rss_bytes: memory::peak_rss_bytes(),
        })
    }
}

fn progress_bar(total: usize, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} runs {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One run of the schedule: a warm-up or a measured repetition of a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    configuration: usize,
    measured: bool,
}

/// The order of the runs. In sequence, each configuration's warm-ups and repetitions run back to back.
/// Interleaved, every configuration warms up first, then repetition i of every configuration runs before
/// repetition i + 1 of any, so a disturbance of the machine spreads over all configurations instead of
/// biasing the one that happened to run at the time.
fn schedule(configurations: usize, warmup: usize, repetitions: usize, interleave: bool) -> Vec<Step> {
    let warm = |configuration| (0..warmup).map(move |_| Step { configuration, measured: false });
    let measured = |configuration| Step { configuration, measured: true };
    if interleave {
        let warmups = (0..configurations).flat_map(warm);
        let rounds = (0..repetitions).flat_map(|_| (0..configurations).map(measured));
        warmups.chain(rounds).collect()
    } else {
        (0..configurations).flat_map(|c| warm(c).chain((0..repetitions).map(move |_| measured(c)))).collect()
    }
}

/// What a configuration has measured so far.
#[derive(Default)]
struct Measured {
    repetitions: Vec<Repetition>,
    load: (f64, Option<u64>),
    load_average_start: Option<f64>,
    load_average_end: Option<f64>,
}

/// Runs the sweep `options` describes; `progress` draws a bar on stderr.
pub fn run(options: &BenchOptions, progress: bool) -> Result<BenchReport, BenchError> {
    options.validate()?;
    let started_at = timestamp(SystemTime::now());
    let load_average_start = provenance::load_average();
    let models: Vec<BenchModel> = options.models.iter().map(|dir| open_model(dir)).collect::<Result<_, _>>()?;
    check_lengths(options, &models)?;
    let configurations = plan(options);
    let prompts: Vec<Vec<u32>> = configurations
        .iter()
        .map(|c| synthetic_prompt(&models[c.model].pool, c.prompt_tokens))
        .collect::<Result<_, _>>()?;

    let steps = schedule(configurations.len(), options.warmup, options.repetitions, options.interleave);
    let bar = progress_bar(steps.len(), progress);
    // In sequence one engine is loaded at a time, so two models never share the memory being measured;
    // interleaved, every engine of the sweep stays loaded.
    let mut engines: Vec<LoadedEngine> = Vec::new();
    let mut onnxruntime = None;
    let mut measured: Vec<Measured> = configurations.iter().map(|_| Measured::default()).collect();
    let mut warmed = vec![0usize; configurations.len()];
    for step in steps {
        let configuration = &configurations[step.configuration];
        let model = &models[configuration.model];
        let key = configuration.engine_key();
        let index = match engines.iter().position(|e| e.key == key) {
            Some(index) => index,
            None => {
                if !options.interleave {
                    engines.clear();
                }
                bar.set_message(format!("loading {}", model.facts.name));
                let loaded =
                    LoadedEngine::load(model, configuration, options.ort_lib.as_deref(), options.intra_op_spinning)?;
                onnxruntime.get_or_insert_with(|| loaded.engine.runtime().clone());
                engines.push(loaded);
                engines.len() - 1
            }
        };
        let current = &mut engines[index];

        let test = configuration.test_name();
        let threads = configuration.threads.map_or_else(|| "default".to_string(), |t| t.to_string());
        let label =
            format!("{} {test} {} t={threads} b={}", model.facts.name, configuration.ep, configuration.batch_size);
        let run_error = |source: BenchError| BenchError::Run {
            model: model.facts.name.clone(),
            test: test.clone(),
            source: Box::new(source),
        };
        let prompt = &prompts[step.configuration];
        let so_far = &mut measured[step.configuration];
        if step.measured {
            bar.set_message(format!("{label} run {}/{}", so_far.repetitions.len() + 1, options.repetitions));
            if so_far.repetitions.is_empty() {
                so_far.load_average_start = provenance::load_average();
                so_far.load = (current.load_ms, current.load_peak_rss_bytes);
            }
            let repetition = measure::run_once(&mut current.engine, configuration, prompt).map_err(run_error)?;
            so_far.repetitions.push(repetition);
            so_far.load_average_end = provenance::load_average();
        } else {
            warmed[step.configuration] += 1;
            bar.set_message(format!("{label} warm-up {}/{}", warmed[step.configuration], options.warmup));
            measure::run_once(&mut current.engine, configuration, prompt).map_err(run_error)?;
        }
        bar.inc(1);
    }
    let results: Vec<ConfigurationResult> = configurations
        .iter()
        .zip(measured)
        .map(|(configuration, p)| {
            let facts = models[configuration.model].facts.clone();
            let load_average = (p.load_average_start, p.load_average_end);
            ConfigurationResult::new(configuration, facts, p.load, load_average, p.repetitions)
        })
        .collect();
    bar.finish_and_clear();

    let host = HostInfo::detect();
    let load_average_end = provenance::load_average();
    let mut warnings: Vec<String> = models.iter().filter_map(|m| m.warning.clone()).collect();
    warnings.extend(report::load_warning(load_average_start, load_average_end, host.logical_cores));
    warnings.extend(results.iter().flat_map(|r| r.warnings.iter().cloned()));
    Ok(BenchReport {
        schema: SCHEMA,
        runner: RunnerInfo::current(),
        started_at,
        finished_at: timestamp(SystemTime::now()),
        host,
        onnxruntime,
        load_average_start,
        load_average_end,
        settings: BenchSettings {
            repetitions: options.repetitions,
            warmup: options.warmup,
            interleave: options.interleave,
            intra_op_spinning: options.intra_op_spinning,
            sampling: "greedy",
            ignore_eos: true,
            prompt_seed: PROMPT_SEED,
        },
        results,
        warnings,
    })
}

#[cfg(test)]
mod tests;
