//! `runner exec`: one benchmark run. Loads the scenario component and the model, selects the dataset's
//! samples, runs each through the per-sample pipeline (`exec::sample`: prompt, generate, score) and records it
//! at once. Aggregates and provenance go to `summary.json` at the start (status "running") and at the end,
//! so a run that dies keeps everything it finished.
//!
//! This module owns the run: its options, setup (scenario, dataset, model, adapter, GPU monitor, trace),
//! the loop over batches with its progress bar and failure limit, and the closing summary.

pub mod resume;
mod sample;
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{
    Engine, EngineOptions, GenerationSettings, MarkerSource, PromptOptions, ProviderOptions, ThinkMarkers, ThinkSplit,
};
use crate::experiment::RunConfig;
use crate::gpu_monitor::GpuMonitor;
use crate::hub::{Hub, HubRef, RepoType};
use crate::interrupt;
use crate::memory;
use crate::paths;
use crate::prepare::{self, ReadyScenario, ScoringMode};
use crate::provenance::{self, HostInfo, RunnerInfo};
use crate::results::MetricSpec;
use crate::results::csv;
use crate::results::summary::{
    DatasetRecord, FewShotSourceRecord, MemoryRecord, ModelRecord, RuntimeRecord, ScenarioRecord, SettingsRecord,
};
use crate::results::writer::{WriterError, holds_samples, scan_samples};
use crate::results::{Aggregates, RunStatus, RunSummary, RunWriter, SampleRecord, SampleStatus};
use crate::rng::SplitMix64;
use crate::scenario::fewshot::{FewShot, FewShotOrder};
use crate::scenario::{ComponentCache, Sample, ScenarioLimits, ScoredSample};
use crate::terminal::{escape, escape_block};
use crate::trace::{OrtProfile, TraceRecorder, TraceSummary};
use sample::{SampleProbes, run_batch};

/// Everything `runner exec` can be told: the run's settings (`run`, every run key) and how to carry the run
/// out (where results go, the sandbox's limits, progress, tracing), which are not part of what it measures.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The run's settings, layered from the built-in defaults, an experiment file and the command line: the
    /// one place they live. Read through its typed accessors ([`crate::experiment::effective`]); recorded
    /// as summary.json's `config`.
    pub run: RunConfig,
    /// The run's name in a sweep, recorded as `run_name`.
    pub run_name: Option<String>,
    /// A task file for scenarios that take one (`--task`).
    pub task_file: Option<PathBuf>,
    /// `--scenario-arg KEY=VALUE` settings, in order.
    pub scenario_args: Vec<(String, String)>,
    /// Use (and fill) the precompiled-component cache.
    pub scenario_cache: bool,
    /// The results folder; `results/<time>-<scenario>-<model>` when absent.
    pub out: Option<PathBuf>,
    pub ort_lib: Option<PathBuf>,
    /// Session settings for the run's execution provider (`run.ep`).
    pub providers: ProviderOptions,
    pub limits: ScenarioLimits,
    /// Stop the run after this many samples in a row failed: something systematic is wrong.
    pub max_consecutive_failures: usize,
    pub progress: bool,
    /// How thinking is split from answers (`--think-markers`).
    pub think: ThinkSplit,
    /// Write a Chrome trace of the run, with ONNX Runtime's per-operator profile, to this file.
    pub trace: Option<PathBuf>,
    /// How often the GPU is sampled on GPU runs; `None` turns GPU monitoring off.
    pub gpu_sample_interval: Option<Duration>,
    /// The CUDA device id the execution provider runs on, for GPU monitoring.
    pub gpu_device: u32,
    /// Continue the run in `out`: keep its finished samples, run the rest (same configuration only). A folder
    /// that does not exist or holds no samples starts the run fresh.
    pub resume: bool,
    /// Put prompts, outputs, references and extracted answers in `samples.csv` too.
    pub csv_text: bool,
}

/// A finished (or aborted) run.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// What `--trace` wrote.
    pub trace: Option<(PathBuf, TraceSummary)>,
}

/// The samples a run uses, in run order: shuffled with the seed when one is given (the same seed picks
/// the same samples on every machine), then cut to `max_samples`.
pub fn select_samples(count: usize, shuffle_seed: Option<u64>, max_samples: Option<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if let Some(seed) = shuffle_seed {
        // The portable generator: the selection must not change when a dependency's algorithm does.
        let mut rng = SplitMix64::new(seed);
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order.truncate(max_samples.unwrap_or(count));
    order
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `results/20261122T164501Z-gsm8k-SmolLM2-135M-Instruct-int4`: sortable, and says what ran.
fn default_out_dir(started: SystemTime, scenario: &str, model_dir: &Path) -> PathBuf {
    let stamp: String = timestamp(started).chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let model: Vec<String> = model_dir
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let name = format!("{stamp}-{scenario}-{}", model.join("-"));
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    PathBuf::from("results").join(safe)
}

/// How each declared metric adds up, for the host's aggregates.
pub fn metric_specs(metrics: &[crate::scenario::MetricInfo]) -> BTreeMap<String, MetricSpec> {
    metrics
        .iter()
        .map(|m| {
            let spec = MetricSpec {
                higher_is_better: m.higher_is_better,
                binary: m.binary,
                sum: m.aggregation == crate::scenario::Aggregation::Sum,
            };
            (m.name.clone(), spec)
        })
        .collect()
}

/// The scenario's own run-level figures over the samples that were scored.
pub fn scenario_aggregate(ready: &mut ReadyScenario, records: &[SampleRecord]) -> Result<BTreeMap<String, f64>> {
    let scored: Vec<ScoredSample> = records
        .iter()
        .filter(|r| r.status == SampleStatus::Ok)
        .map(|r| ScoredSample {
            id: r.id.clone(),
            subset: r.subset.clone(),
            metrics: r
                .metrics
                .iter()
                .map(|(name, value)| crate::scenario::Metric { name: name.clone(), value: *value })
                .collect(),
        })
        .collect();
    let metrics = ready.scenario.aggregate(&scored).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(metrics.into_iter().map(|m| (m.name, m.value)).collect())
}

fn progress_bar(total: usize, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// When the run started, by the clock, the monotonic clock and the machine's load.
struct RunClock {
    started_at: SystemTime,
    started: Instant,
    load_average_start: Option<f64>,
    cpu_start: Option<provenance::CpuTimes>,
}

/// A loaded model and what was measured or decided while loading it.
struct LoadedModel {
    engine: Engine,
    memory: MemoryRecord,
    session: crate::engine::SessionRecord,
    /// The graph's precision as measured, when it could be read.
    graph: Option<crate::engine::inspect::GraphReport>,
    think: Option<(ThinkMarkers, MarkerSource)>,
    adapter: Option<crate::engine::LoadedAdapter>,
}

/// Runs one benchmark run: the scenario and its data, the model, the first summary, the samples, the
/// closing summary. Everything finished is on disk as it finishes; an error after the results folder is
/// open leaves a summary that says so.
pub fn exec(opts: &ExecOptions) -> Result<RunOutcome> {
    let clock = RunClock {
        started_at: SystemTime::now(),
        started: Instant::now(),
        load_average_start: provenance::load_average(),
        cpu_start: provenance::CpuTimes::now(),
    };
    opts.run.check()?;
    let scenario_path = opts.run.scenario.clone().context("no scenario given")?;
    let mut trace = opts.trace.as_ref().map(|path| (path, TraceRecorder::new()));
    if let Some((path, _)) = &trace {
        // Fail before the run, not after it, when the trace cannot be written.
        std::fs::write(path, b"").with_context(|| format!("cannot write the trace file {}", path.display()))?;
    }

    let scenario_load_started = Instant::now();
    let cache = opts.scenario_cache.then(ComponentCache::from_env);
    let scenario = prepare::load_scenario(&scenario_path, opts.limits, cache.as_ref())?;
    let choices = opts.run.scenario_choices(opts.task_file.clone(), opts.scenario_args.clone())?;
    let mut ready = prepare::configure(scenario, &choices)?;
    // After `configure`: a scenario's defaults may follow its options.
    let meta = ready.scenario.metadata().clone();
    let workers = opts.run.workers();
    if workers > 1 && ready.scoring != ScoringMode::Loglikelihood {
        bail!(
            "--workers {workers}: sessions side by side score log-likelihood runs (--scoring loglikelihood); a \
             generation run shares its steps with --batch-size instead"
        );
    }
    if workers > 1 && opts.trace.is_some() {
        bail!("--trace follows one session's operators; leave out --workers {workers} to trace the run");
    }
    let dataset_started = Instant::now();
    let data = opts.run.data_source()?;
    let dataset =
        prepare::load_dataset(&mut ready, data.as_ref(), opts.run.split.as_deref(), choices.few_shot_data.as_deref())?;
    if let Some((_, recorder)) = trace.as_mut() {
        let args = serde_json::json!({"scenario": scenario_path.display().to_string()});
        recorder.span("scenario load", "load", scenario_load_started, dataset_started, args);
        let args = serde_json::json!({"dataset": dataset.label, "samples": dataset.samples.len()});
        recorder.span("dataset load", "scenario", dataset_started, Instant::now(), args);
    }
    let selection = select_samples(dataset.samples.len(), opts.run.shuffle_seed, opts.run.max_samples);

    let model_dir = resolve_model_dir(&opts.run, opts.ort_lib.as_deref())?;
    let out_dir = opts.out.clone().unwrap_or_else(|| default_out_dir(clock.started_at, &meta.name, &model_dir));
    if opts.resume && opts.out.is_none() {
        bail!("--resume needs --out DIR: the results folder of the run to continue");
    }
    if !opts.resume && holds_samples(&out_dir) {
        // Refused before the model loads; `RunWriter::create` checks again.
        return Err(WriterError::Exists(out_dir).into());
    }
    let mut model = load_model(opts, &model_dir, trace.as_mut().map(|(_, recorder)| recorder))?;
    // The other workers' sessions, counted in the memory after load.
    let mut engines = Vec::with_capacity(workers);
    for _ in 1..workers {
        let mut engine = open_engine(opts, &model_dir)?;
        engine.set_adapter(model.adapter.as_ref())?;
        engines.push(engine);
    }
    if workers > 1 {
        model.memory.after_load_bytes = memory::current_rss_bytes();
        model.memory.peak_after_load_bytes = memory::peak_rss_bytes();
    }
    let settings = opts.run.generation(&meta)?;
    let mut summary = initial_summary(opts, &clock, &mut ready, &dataset, &selection, &model_dir, &model, &settings)?;
    let LoadedModel { engine, think, .. } = model;
    engines.insert(0, engine);

    let specs = metric_specs(&meta.metrics);
    let repeat = opts.run.repeat();
    let (mut writer, mut records) = open_results(opts, &out_dir, &mut summary, repeat)?;
    if !records.is_empty() {
        summary.results = aggregate(&records, &specs, &mut ready);
    }
    writer.write_summary(&summary)?;
    if opts.resume {
        // The kept samples' table, before anything else is written.
        csv::write(&out_dir, &sorted(&records), opts.csv_text)?;
    }
    let mut gpu = start_gpu_monitor(opts, &summary.runtime.execution_provider);
    if dataset.source == "embedded" {
        eprintln!("Using the scenario's {}; pass --data FILE for a real dataset.", dataset.label);
    }
    if let Some(split) = dataset.few_shot.as_ref().filter(|split| split.found_beside_data) {
        eprintln!(
            "Few-shot examples come from {} (the dev split beside the data, {} order); --few-shot-data picks another.",
            escape(&split.label),
            few_shot_order(opts, &dataset).name()
        );
    }

    let prompt = opts.run.prompt_options()?;
    let samples = SampleRun {
        opts,
        dataset: &dataset,
        selection: &selection,
        few_shot: FewShot::new(dataset.few_shot_pool(), opts.run.seed(), few_shot_order(opts, &dataset)),
        few_shot_count: ready.few_shot,
        settings: &settings,
        prompt: &prompt,
        think: think.as_ref(),
        bar: progress_bar(selection.len() * repeat, opts.progress),
    };
    samples.bar.set_position(records.len() as u64);
    for engine in &mut engines {
        samples.warm_up(&mut ready, engine);
    }
    // From here until the summary is closed, a first Ctrl-C stops the run after the samples in progress.
    let _samples_running = interrupt::SamplesRunning::start();
    let stopped = samples.run(
        &mut ready,
        &mut engines,
        &mut writer,
        &mut records,
        &mut summary,
        trace.as_mut().map(|(_, recorder)| recorder),
        gpu.as_mut(),
        repeat,
    );
    if let Err(e) = stopped {
        // A results file that cannot be written: stop at once, with a summary of exactly what it holds.
        summary.status = RunStatus::Aborted;
        summary.abort_reason = Some(e.to_string());
        let closed = close_run(opts, &writer, &mut summary, &records, &specs, &mut ready, clock.started);
        let error = anyhow::Error::new(e);
        return Err(match closed {
            Ok(()) => error,
            Err(also) => error.context(format!("the summary could not be written either: {also:#}")),
        });
    }

    if summary.status == RunStatus::Running {
        summary.status = RunStatus::Complete;
    }
    summary.gpu = gpu.and_then(GpuMonitor::finish);
    summary.background_cpu =
        clock.cpu_start.zip(provenance::CpuTimes::now()).and_then(|(s, e)| e.background_share_since(&s));
    close_run(opts, &writer, &mut summary, &records, &specs, &mut ready, clock.started)?;
    let trace = match trace {
        Some((path, recorder)) => Some((path.clone(), write_trace(path, recorder, &mut engines[0])?)),
        None => None,
    };
    Ok(RunOutcome { dir: writer.dir().to_path_buf(), summary, trace })
}

/// How few-shot examples are picked: as asked, else in file order from a few-shot split (lm-eval's
/// `first_n`), else seeded from the dataset itself.
fn few_shot_order(opts: &ExecOptions, dataset: &prepare::Dataset) -> FewShotOrder {
    opts.run.few_shot_order.unwrap_or(if dataset.few_shot.is_some() {
        FewShotOrder::First
    } else {
        FewShotOrder::Seeded
    })
}

/// The model folder the run's `model` and `precision` keys name: a Hub reference fetched into the cache, a
/// folder (or a precision derived from it), or the default model.
fn resolve_model_dir(run: &RunConfig, ort_lib: Option<&Path>) -> Result<PathBuf> {
    let model = run.model_folder(ort_lib)?;
    let model_dir = match model.as_deref().and_then(Path::to_str).filter(|m| HubRef::is_hub_ref(m)) {
        Some(reference) => {
            let reference = HubRef::parse(reference, RepoType::Model).map_err(|e| anyhow!("--model: {e}"))?;
            Hub::from_env().resolve(&reference, &[]).with_context(|| format!("cannot get model {reference}"))?
        }
        None => model.clone().unwrap_or_else(paths::default_model),
    };
    if !model_dir.is_dir() {
        let hint = if model.is_none() {
            "the default model is installed by `cargo xtask setup`; or pass --model DIR"
        } else {
            "pass a model folder (`runner import MODEL.gguf --out DIR`, an Optimum or onnxruntime-genai export) \
             or a Hub reference hf:OWNER/REPO[/SUBFOLDER][@REVISION]"
        };
        bail!("model folder {} does not exist: {hint}", model_dir.display());
    }
    Ok(model_dir)
}

/// One session on the model folder, with the run's provider and each session's threads.
fn open_engine(opts: &ExecOptions, model_dir: &Path) -> Result<Engine> {
    Engine::load(&EngineOptions {
        model_dir: model_dir.to_path_buf(),
        ort_lib: opts.ort_lib.clone(),
        intra_threads: opts.run.session_threads()?,
        providers: opts.providers.clone(),
        profiling: opts.trace.as_ref().map(|path| ort_profile_prefix(path)),
    })
    .with_context(|| format!("cannot load model {}", model_dir.display()))
}

/// Loads the engine on the model folder, measuring memory around it, then what depends on the loaded
/// model: the measured precision of its graph, the think markers its tokenizer allows, the adapter.
fn load_model(opts: &ExecOptions, model_dir: &Path, trace: Option<&mut TraceRecorder>) -> Result<LoadedModel> {
    let mut memory_record = MemoryRecord { before_load_bytes: memory::current_rss_bytes(), ..Default::default() };
    let model_load_started = Instant::now();
    let mut engine = open_engine(opts, model_dir)?;
    let model_load_ended = Instant::now();
    memory_record.after_load_bytes = memory::current_rss_bytes();
    memory_record.peak_after_load_bytes = memory::peak_rss_bytes();
    if let Some(recorder) = trace {
        let args = serde_json::json!({"model": model_dir.display().to_string()});
        recorder.model_load(model_load_started, model_load_ended, args);
        recorder.memory(model_load_ended, "after load", memory_record.after_load_bytes);
    }
    let session = engine.session_record().clone();
    if let Some(warning) = session.node_assignment.as_ref().and_then(|n| n.fallback_warning()) {
        eprintln!("Warning: {warning}");
    }
    if let Some(reason) = &session.node_assignment_error {
        eprintln!("Warning: which provider ran each node is unknown: {reason}");
    }
    let graph = match crate::engine::inspect::inspect_model(&folder_model_file(&session, model_dir)) {
        Ok(report) => Some(report),
        Err(e) => {
            eprintln!("Warning: the model's precision could not be read from its graph: {e}");
            None
        }
    };
    let think = opts.think.resolve(engine.tokenizer());
    if let Some((markers, _)) = &think {
        let special = markers.special_in(engine.tokenizer());
        if !special.is_empty() {
            eprintln!(
                "Warning: the think markers {} are special tokens of this model's tokenizer, which the engine drops \
                 from the output; thinking cannot be split from answers (pass --think-markers off to say so)",
                special.join(", ")
            );
        }
    }
    let adapter = match &opts.run.adapter {
        Some(path) => {
            let adapter = engine.load_adapter(path)?;
            engine.set_adapter(Some(&adapter))?;
            Some(adapter)
        }
        None => None,
    };
    Ok(LoadedModel { engine, memory: memory_record, session, graph, think, adapter })
}

/// The run's summary before its first sample: what ran (scenario, dataset and selection, model, runtime,
/// settings as they took effect) and its fingerprint, which resume and the baseline registry compare.
#[allow(clippy::too_many_arguments)]
fn initial_summary(
    opts: &ExecOptions,
    clock: &RunClock,
    ready: &mut ReadyScenario,
    dataset: &prepare::Dataset,
    selection: &[usize],
    model_dir: &Path,
    model: &LoadedModel,
    settings: &GenerationSettings,
) -> Result<RunSummary> {
    let meta = ready.scenario.metadata().clone();
    let engine = &model.engine;
    let mut summary = RunSummary {
        status: RunStatus::Running,
        abort_reason: None,
        runner: RunnerInfo::current(),
        started_at: timestamp(clock.started_at),
        finished_at: None,
        wall_seconds: 0.0,
        setup_seconds: clock.started.elapsed().as_secs_f64(),
        scenario: ScenarioRecord {
            name: meta.name.clone(),
            version: meta.version.clone(),
            description: meta.description.clone(),
            path: opts.run.scenario.as_deref().unwrap_or(Path::new("")).display().to_string(),
            hash: ready.scenario.hash().to_string(),
            default_few_shot: Some(meta.default_few_shot as usize),
        },
        dataset: DatasetRecord {
            source: dataset.source.to_string(),
            label: dataset.label.clone(),
            hash: dataset.hash.clone(),
            total: dataset.samples.len(),
            selected: selection.len(),
            shuffle_seed: opts.run.shuffle_seed,
            max_samples: opts.run.max_samples,
            selected_ids: selection.iter().map(|&i| dataset.samples[i].id.clone()).collect(),
            subsets: opts.run.subsets.clone().unwrap_or_default(),
            few_shot_source: dataset.few_shot.as_ref().map(|split| FewShotSourceRecord {
                label: split.label.clone(),
                hash: split.hash.clone(),
                total: split.samples.len(),
            }),
            warnings: dataset.warnings.clone(),
        },
        model: ModelRecord {
            dir: model_dir.display().to_string(),
            hash: provenance::hash_dir(model_dir)?,
            info: serde_json::to_value(engine.model_info()).context("cannot record the model's description")?,
            graph: model.graph.clone(),
            derivation: crate::derive::DerivationRecord::read(model_dir),
        },
        runtime: RuntimeRecord {
            onnxruntime_library: engine.runtime().library.display().to_string(),
            onnxruntime_version: engine.runtime().version.clone(),
            execution_provider: opts.providers.ep.to_string(),
            intra_threads: opts.run.session_threads()?,
            workers: (opts.run.workers() > 1).then_some(opts.run.workers()),
            session: Some(model.session.clone()),
        },
        settings: SettingsRecord {
            max_new_tokens: settings.max_new_tokens,
            stop: settings.stop.clone(),
            temperature: settings.sampling.temperature(),
            top_k: settings.sampling.top_k(),
            top_p: settings.sampling.top_p(),
            seed: settings.seed,
            repetition_penalty: settings.repetition_penalty,
            ignore_eos: settings.ignore_eos,
            batch_size: opts.run.batch_size(),
            scenario_memory_bytes: opts.limits.memory_bytes,
            scenario_call_timeout_ms: opts.limits.call_timeout.as_millis() as u64,
            system_prompt: opts.run.system_prompt.clone(),
            no_chat_template: opts.run.chat_template == Some(false),
            think_markers: model.think.as_ref().map(|(markers, _)| markers.clone()),
            think_markers_source: model.think.as_ref().map(|(_, source)| *source),
            few_shot: ready.few_shot,
            few_shot_order: (ready.few_shot > 0).then(|| few_shot_order(opts, dataset).name().to_string()),
            scoring: match ready.scoring {
                ScoringMode::Generate => "generate".to_string(),
                ScoringMode::Loglikelihood => "loglikelihood".to_string(),
            },
            scenario_args: opts.scenario_args.clone(),
            warmup: opts.run.warmup(),
            repeat: opts.run.repeat(),
        },
        adapter: model.adapter.as_ref().map(|a| a.info.clone()),
        host: HostInfo::detect(),
        fingerprint: String::new(),
        resumed_at: Vec::new(),
        load_average_start: clock.load_average_start,
        load_average_end: None,
        memory: model.memory.clone(),
        gpu: None,
        background_cpu: None,
        adapter_comparison: None,
        results: Aggregates::default(),
        config: Some(opts.run.to_json()),
        run_name: opts.run_name.clone(),
    };
    summary.fingerprint = resume::fingerprint(&summary);
    Ok(summary)
}

/// The loop over a run's samples: batches of the selection (warm-up first, not recorded), each sample's
/// record appended as it finishes, the progress bar, and the stop after too many failures in a row.
struct SampleRun<'a> {
    opts: &'a ExecOptions,
    dataset: &'a prepare::Dataset,
    selection: &'a [usize],
    few_shot: FewShot,
    few_shot_count: usize,
    settings: &'a GenerationSettings,
    prompt: &'a PromptOptions,
    think: Option<&'a (ThinkMarkers, MarkerSource)>,
    bar: ProgressBar,
}

impl SampleRun<'_> {
    /// A sample's few-shot examples, as positions in the pool: never the sample itself when the pool is the
    /// evaluated dataset.
    fn examples_of(&self, sample_index: usize) -> Vec<usize> {
        let own = self.dataset.few_shot.is_none().then_some(sample_index);
        self.few_shot.examples(&self.dataset.samples[sample_index], own, self.few_shot_count)
    }

    fn prepare_batch(&self, chunk: &[(usize, usize)]) -> Vec<(usize, &Sample, Vec<Sample>)> {
        let pool = self.dataset.few_shot_pool();
        chunk
            .iter()
            .map(|&(index, sample_index)| {
                let examples: Vec<Sample> =
                    self.examples_of(sample_index).into_iter().map(|i| pool[i].clone()).collect();
                (index, &self.dataset.samples[sample_index], examples)
            })
            .collect()
    }

    /// Runs the selection's first samples (round again when it is shorter) through the whole pipeline and
    /// discards them: caches, allocator and CPU warm up. No trace and no GPU readings.
    fn warm_up(&self, ready: &mut ReadyScenario, engine: &mut Engine) {
        let warmup = self.opts.run.warmup();
        if warmup == 0 || self.selection.is_empty() {
            return;
        }
        self.bar.set_message(format!("warming up on {warmup} samples (not recorded)"));
        let chunks: Vec<(usize, usize)> = self.selection.iter().copied().enumerate().cycle().take(warmup).collect();
        for chunk in chunks.chunks(self.opts.run.batch_size()) {
            let batch = self.prepare_batch(chunk);
            let mut probes = self.probes(None, None);
            run_batch(&batch, ready, engine, self.settings, &mut probes);
        }
        self.bar.set_message("");
    }

    /// What each sample of a batch is measured with; the trace and the GPU monitor are lent per batch.
    fn probes<'p>(&'p self, trace: Option<&'p mut TraceRecorder>, gpu: Option<&'p mut GpuMonitor>) -> SampleProbes<'p> {
        SampleProbes {
            prompt: self.prompt,
            think: self.think,
            trace,
            gpu,
            peak_scope: None,
            request_budgets: self.opts.run.max_new_tokens.is_none(),
        }
    }

    /// The selection's samples not already in `records`, each repetition in turn. Log-likelihood batches pad
    /// every context to the batch's longest, so they are formed from samples of about one length, longest
    /// first (as lm-evaluation-harness orders its requests): a batch of random lengths computes several
    /// times the tokens it scores. Records keep their selection order (`index`).
    fn work(&self, records: &[SampleRecord], by_length: bool, repeat: usize) -> Vec<Vec<(usize, usize)>> {
        let done: BTreeSet<(usize, usize)> = records.iter().map(|r| (r.repetition, r.index)).collect();
        let pool = self.dataset.few_shot_pool();
        let text = |s: &Sample| s.fields.iter().map(|f| f.value.len()).sum::<usize>();
        let prompt_size = |sample_index: usize| -> usize {
            text(&self.dataset.samples[sample_index])
                + self.examples_of(sample_index).into_iter().map(|i| text(&pool[i])).sum::<usize>()
        };
        (0..repeat)
            .map(|repetition| {
                let mut todo: Vec<(usize, usize)> = self
                    .selection
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(index, _)| !done.contains(&(repetition, *index)))
                    .collect();
                if by_length {
                    todo.sort_by_cached_key(|&(_, sample_index)| std::cmp::Reverse(prompt_size(sample_index)));
                }
                todo
            })
            .collect()
    }

    /// Runs every sample still to run and appends its record; stops early (status aborted, with the reason)
    /// after too many failures in a row, and before the next batch once a signal asked it to (status
    /// interrupted). An error is a record that could not be written. With more than one engine (`--workers`),
    /// the engines score the batches side by side ([`workers::run_on_sessions`]).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ready: &mut ReadyScenario,
        engines: &mut [Engine],
        writer: &mut RunWriter,
        records: &mut Vec<SampleRecord>,
        summary: &mut RunSummary,
        mut trace: Option<&mut TraceRecorder>,
        mut gpu: Option<&mut GpuMonitor>,
        repeat: usize,
    ) -> Result<(), WriterError> {
        let batch_size = self.opts.run.batch_size();
        let mut tally = Tally::new(self, ready, records);
        // Batches never span two repetitions, so each repetition is batched as an uninterrupted run batches
        // it (a resumed run only differs where its interruption split a batch).
        let by_length = ready.scoring == ScoringMode::Loglikelihood && batch_size > 1;
        let work = self.work(records, by_length, repeat);
        let batches = work.iter().enumerate().flat_map(|(r, w)| w.chunks(batch_size).map(move |c| (r, c)));
        if engines.len() > 1 {
            return workers::run_on_sessions(self, batches, ready, engines, &mut tally, writer, records, summary);
        }
        let engine = &mut engines[0];
        for (repetition, chunk) in batches {
            // Checked before a batch, not after: a signal during the last batch lets the run complete.
            if interrupt::requested() {
                tally.interrupted(records, summary);
                return Ok(());
            }
            let batch = self.prepare_batch(chunk);
            let mut probes = self.probes(trace.as_deref_mut(), gpu.as_deref_mut());
            let mut batch_records = run_batch(&batch, ready, engine, self.settings, &mut probes);
            batch_records.iter_mut().for_each(|r| r.repetition = repetition);
            // One sample the kernel refused the reset makes the run's peaks cumulative.
            if summary.memory.peak_scope != Some(memory::PeakScope::Cumulative) {
                summary.memory.peak_scope = probes.peak_scope;
            }
            for record in batch_records {
                if tally.accept(record, writer, records, summary)? == Flow::Stop {
                    return Ok(());
                }
            }
        }
        self.bar.finish_and_clear();
        Ok(())
    }
}

/// Whether the loop over batches goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// What the loop over batches keeps as records arrive: failures in a row (the abort limit), the first
/// metric's running mean (the progress bar's message), and the bar.
struct Tally<'r> {
    run: &'r SampleRun<'r>,
    first_metric: Option<String>,
    consecutive_failures: usize,
    correct_so_far: (f64, usize),
}

impl<'r> Tally<'r> {
    fn new(run: &'r SampleRun<'r>, ready: &ReadyScenario, records: &[SampleRecord]) -> Self {
        let first_metric = ready.scenario.metadata().metrics.first().map(|m| m.name.clone());
        let correct_so_far = records
            .iter()
            .filter(|r| r.repetition == 0)
            .filter_map(|r| first_metric.as_ref().and_then(|m| r.metrics.get(m)))
            .fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
        Tally { run, first_metric, consecutive_failures: 0, correct_so_far }
    }

    /// Marks the run interrupted by a signal before its next batch.
    fn interrupted(&self, records: &[SampleRecord], summary: &mut RunSummary) {
        summary.status = RunStatus::Interrupted;
        summary.abort_reason = Some(format!(
            "stopped by a signal after {} of {} samples; `--resume` with the same --out continues it",
            records.len(),
            self.run.selection.len() * self.run.opts.run.repeat()
        ));
        self.run.bar.finish_and_clear();
    }

    /// Appends a finished record (written first, so it is never lost), reports a failure, moves the bar,
    /// and says to stop once too many samples failed in a row (the run then aborted, with the reason).
    fn accept(
        &mut self,
        record: SampleRecord,
        writer: &mut RunWriter,
        records: &mut Vec<SampleRecord>,
        summary: &mut RunSummary,
    ) -> Result<Flow, WriterError> {
        let bar = &self.run.bar;
        let opts = self.run.opts;
        if let Some(error) = &record.error {
            self.consecutive_failures += 1;
            bar.suspend(|| {
                eprintln!(
                    "Sample {} ({}) failed during {:?}: {}",
                    record.index,
                    escape(&record.id),
                    error.stage,
                    escape_block(&error.message)
                )
            });
        } else {
            self.consecutive_failures = 0;
        }
        let first = self.first_metric.as_ref().and_then(|m| record.metrics.get(m)).filter(|_| record.repetition == 0);
        if let Some(first) = first {
            self.correct_so_far = (self.correct_so_far.0 + first, self.correct_so_far.1 + 1);
        }
        let tps = record.timings.decode_tokens_per_s.map_or(String::new(), |t| format!(" | {t:.0} tok/s"));
        if let Some(name) = self.first_metric.as_ref().filter(|_| self.correct_so_far.1 > 0) {
            bar.set_message(format!(
                "{} {:.3}{tps}",
                escape(name),
                self.correct_so_far.0 / self.correct_so_far.1 as f64
            ));
        }
        self.keep(record, writer, records)?;
        if self.consecutive_failures >= opts.max_consecutive_failures {
            summary.status = RunStatus::Aborted;
            summary.abort_reason = Some(format!(
                "{} samples failed in a row (the limit is --max-consecutive-failures {}); the last error: {}",
                self.consecutive_failures,
                opts.max_consecutive_failures,
                records.last().and_then(|r| r.error.as_ref()).map_or("", |e| e.message.as_str())
            ));
            bar.finish_and_clear();
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// Writes a finished record, then keeps it and moves the bar.
    fn keep(
        &self,
        record: SampleRecord,
        writer: &mut RunWriter,
        records: &mut Vec<SampleRecord>,
    ) -> Result<(), WriterError> {
        if let Err(e) = writer.append(&record) {
            self.run.bar.finish_and_clear();
            return Err(e);
        }
        self.run.bar.inc(1);
        records.push(record);
        Ok(())
    }
}

/// Opens the results folder: a new one, or with `--resume` the run already there, checked against this
/// run's configuration (refused when it differs), its torn last line cut away and reported. Returns the
/// writer and the samples kept.
fn open_results(
    opts: &ExecOptions,
    out_dir: &Path,
    summary: &mut RunSummary,
    repeat: usize,
) -> Result<(RunWriter, Vec<SampleRecord>)> {
    if !opts.resume {
        return Ok((RunWriter::create(out_dir)?, Vec::new()));
    }
    // Checked before anything in the folder changes: a refused resume leaves it as it was.
    let scan = scan_samples(out_dir)?;
    if !scan.records.is_empty() {
        let stored = resume::check_configuration(out_dir, summary)?;
        resume::finished_samples(out_dir, &scan.records, &summary.dataset.selected_ids, repeat)?;
        summary.resumed_at = stored.resumed_at;
        summary.resumed_at.push(std::mem::replace(&mut summary.started_at, stored.started_at));
    }
    let (writer, existing) = RunWriter::resume(out_dir)?;
    if let Some(torn) = &existing.torn_tail {
        eprintln!("Warning: {torn}");
    }
    if !existing.records.is_empty() {
        let total = summary.dataset.selected * repeat;
        eprintln!(
            "Resuming {}: {} finished samples kept, {} to run.",
            out_dir.display(),
            existing.records.len(),
            total.saturating_sub(existing.records.len())
        );
    }
    Ok((writer, existing.records))
}

/// The host's aggregates over `records` (quality over the first repetition, timings over all) and the
/// scenario's own; a failing scenario aggregate becomes a warning.
fn aggregate(records: &[SampleRecord], specs: &BTreeMap<String, MetricSpec>, ready: &mut ReadyScenario) -> Aggregates {
    let mut results = Aggregates::from_records(records, specs);
    let first_pass: Vec<SampleRecord> = records.iter().filter(|r| r.repetition == 0).cloned().collect();
    match scenario_aggregate(ready, &first_pass) {
        Ok(metrics) => results.scenario_metrics = metrics,
        Err(e) => results.warnings.push(format!("the scenario's `aggregate` failed: {e}")),
    }
    results
}

/// Records in (repetition, index) order.
fn sorted(records: &[SampleRecord]) -> Vec<SampleRecord> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| (r.repetition, r.index));
    sorted
}

/// Writes the run's closing summary (JSON and Markdown) over `records`, which are exactly what
/// `samples.jsonl` holds, and rebuilds `samples.csv` from `samples.jsonl`.
fn close_run(
    opts: &ExecOptions,
    writer: &RunWriter,
    summary: &mut RunSummary,
    records: &[SampleRecord],
    specs: &BTreeMap<String, MetricSpec>,
    ready: &mut ReadyScenario,
    started: Instant,
) -> Result<()> {
    summary.results = aggregate(records, specs, ready);
    if let Some(warning) = summary.results.warnings.iter().find(|w| w.starts_with("the scenario's `aggregate`")) {
        eprintln!("Warning: {}", escape(warning));
    }
    // The run's peak includes loading the model, which can briefly need more than any sample.
    summary.results.peak_rss_bytes = summary.results.peak_rss_bytes.max(summary.memory.peak_after_load_bytes);
    summary.finished_at = Some(timestamp(SystemTime::now()));
    summary.wall_seconds = started.elapsed().as_secs_f64();
    summary.load_average_end = provenance::load_average();
    writer.write_summary(summary)?;
    writer.write_markdown(&crate::results::table::render_markdown(summary)?)?;
    let written = scan_samples(writer.dir())?;
    csv::write(writer.dir(), &sorted(&written.records), opts.csv_text)?;
    Ok(())
}

/// Where ONNX Runtime writes its profile for `--trace FILE`: beside FILE, merged into it and removed at the end.
fn ort_profile_prefix(trace: &Path) -> PathBuf {
    let name = trace.file_name().map_or("trace".into(), |n| n.to_string_lossy().into_owned());
    trace.with_file_name(format!(".{name}.onnxruntime"))
}

fn write_trace(path: &Path, recorder: TraceRecorder, engine: &mut Engine) -> Result<TraceSummary> {
    let (file, start_ns) = engine.end_profiling().context("cannot end ONNX Runtime's profiling")?;
    // ONNX Runtime names the file relative to the working directory, as the prefix was given.
    let profile = OrtProfile { file, start_ns };
    recorder.write(path, Some(&profile)).with_context(|| format!("cannot write the trace {}", path.display()))
}

/// NVML monitoring of the GPU the execution provider runs on; `None` on CPU runs, when turned off, or
/// without an NVIDIA GPU (then results carry no GPU fields, and the reason is logged).
fn start_gpu_monitor(opts: &ExecOptions, execution_provider: &str) -> Option<GpuMonitor> {
    let interval = opts.gpu_sample_interval?;
    if execution_provider == "cpu" {
        return None;
    }
    match GpuMonitor::start_nvml(opts.gpu_device, interval) {
        Ok(monitor) => Some(monitor),
        Err(reason) => {
            eprintln!("GPU monitoring is unavailable, so results carry no GPU fields: {reason}");
            None
        }
    }
}

/// The model file the folder holds: the precision is measured there, not in an optimized-model cache copy.
fn folder_model_file(record: &crate::engine::SessionRecord, model_dir: &Path) -> PathBuf {
    match &record.optimized_model_cache {
        Some(cache) if cache.hit => model_dir.join(crate::model_folder::MODEL_FILE),
        _ => record.model_file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_seeded_and_bounded() {
        assert_eq!(select_samples(5, None, None), [0, 1, 2, 3, 4]);
        assert_eq!(select_samples(5, None, Some(2)), [0, 1]);
        let a = select_samples(100, Some(7), Some(10));
        assert_eq!(a, select_samples(100, Some(7), Some(10)));
        assert_ne!(a, select_samples(100, Some(8), Some(10)));
        assert_ne!(a, (0..10).collect::<Vec<_>>());
        let mut all = select_samples(100, Some(7), None);
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn default_out_dir_names_time_scenario_and_model() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let dir =
            default_out_dir(t, "gsm8k", Path::new("/home/u/.local/share/runner/models/SmolLM2-135M-Instruct/int4"));
        assert_eq!(dir, PathBuf::from("results/20261118T110640Z-gsm8k-SmolLM2-135M-Instruct-int4"));
    }
}
