//! `runner exec`: one benchmark run. Loads the scenario component and the model, selects the dataset's
//! samples, and for each one asks the scenario for a prompt, generates with the engine, asks the scenario
//! for a score, and records the sample at once. Aggregates and provenance go to `summary.json` at the
//! start (status "running") and at the end, so a run that dies keeps everything it finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::datasets::DataSource;
use crate::engine::{Engine, EngineOptions, Generation, GenerationSettings, Sampling};
use crate::memory;
use crate::paths;
use crate::prepare::{self, ReadyScenario, ScenarioChoices, ScoringMode};
use crate::prompt::Prompt;
use crate::provenance::{self, HostInfo, RunnerInfo};
use crate::results::MetricSpec;
use crate::results::summary::{DatasetRecord, ModelRecord, RuntimeRecord, ScenarioRecord, SettingsRecord};
use crate::results::{
    Aggregates, ChoiceRecord, RunStatus, RunSummary, RunWriter, SampleError, SampleRecord, SampleStatus, SampleTimings,
    Stage,
};
use crate::rng::SplitMix64;
use crate::scenario::fewshot::FewShot;
use crate::scenario::{ChoiceLikelihood, ComponentCache, ModelOutput, Sample, ScenarioLimits, ScoredSample};

/// Everything `runner exec` can be told.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub scenario: PathBuf,
    /// A model folder; the default model when absent.
    pub model: Option<PathBuf>,
    /// The dataset; the scenario's embedded sample (or its default source) when absent.
    pub data: Option<DataSource>,
    /// The split of a Hugging Face dataset; the scenario's default-source split when absent.
    pub split: Option<String>,
    /// Subsets, few-shot count, scoring mode, task file and scenario arguments.
    pub choices: ScenarioChoices,
    /// Use (and fill) the precompiled-component cache.
    pub scenario_cache: bool,
    pub max_samples: Option<usize>,
    pub shuffle_seed: Option<u64>,
    /// Overrides the scenario's default.
    pub max_new_tokens: Option<usize>,
    /// How tokens are chosen; greedy by default.
    pub sampling: Sampling,
    /// Seeds every sample's generation afresh.
    pub seed: u64,
    /// 1 is off.
    pub repetition_penalty: f32,
    /// Generate `max_new_tokens` whatever EOS tokens come (stop strings still stop).
    pub ignore_eos: bool,
    /// The results folder; `results/<time>-<scenario>-<model>` when absent.
    pub out: Option<PathBuf>,
    pub ort_lib: Option<PathBuf>,
    pub threads: Option<usize>,
    pub limits: ScenarioLimits,
    /// Stop the run after this many samples in a row failed: something systematic is wrong.
    pub max_consecutive_failures: usize,
    pub progress: bool,
}

/// A finished (or aborted) run.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: RunSummary,
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

fn sample_timings(prompt_time: Duration, g: &Generation) -> SampleTimings {
    let t = &g.timings;
    let decode_total: Duration = t.decode_steps.iter().sum();
    SampleTimings {
        prompt_ms: ms(prompt_time),
        render_ms: ms(t.render),
        tokenize_ms: ms(t.tokenize),
        prefill_ms: ms(t.prefill),
        ttft_ms: ms(t.ttft),
        itl_ms: t.decode_steps.iter().map(|d| ms(*d)).collect(),
        detokenize_ms: ms(t.detokenize),
        score_ms: 0.0,
        generate_ms: ms(t.e2e),
        e2e_ms: 0.0,
        decode_tokens_per_s: (!t.decode_steps.is_empty() && !decode_total.is_zero())
            .then(|| t.decode_steps.len() as f64 / decode_total.as_secs_f64()),
        prefill_tokens_per_s: (!t.prefill.is_zero()).then(|| g.prompt_tokens as f64 / t.prefill.as_secs_f64()),
    }
}

/// The log-likelihood of each choice after the prompt (as the model sees it, chat template applied),
/// for log-likelihood scoring; also returns the rendered prompt.
fn choice_likelihoods(
    engine: &mut Engine,
    prompt: &Prompt,
    choices: &[String],
) -> Result<(String, Vec<ChoiceLikelihood>)> {
    let context = engine.render(prompt)?;
    let scores = engine.continuation_logprobs(&context, choices)?;
    let likelihoods = scores
        .into_iter()
        .map(|s| ChoiceLikelihood {
            logprob: s.logprob_sum,
            tokens: u32::try_from(s.token_count).unwrap_or(u32::MAX),
            greedy: s.greedy_match,
        })
        .collect();
    Ok((context, likelihoods))
}

/// Runs one sample through prompt, generation (or choice log-likelihoods) and scoring. Every failure
/// is recorded against the stage where it happened; nothing here ends the run.
fn run_sample(
    index: usize,
    sample: &Sample,
    examples: &[Sample],
    ready: &mut ReadyScenario,
    engine: &mut Engine,
    settings: &GenerationSettings,
) -> SampleRecord {
    let loglikelihood = ready.scoring == ScoringMode::Loglikelihood;
    let scenario = &mut ready.scenario;
    let started = Instant::now();
    memory::reset_peak();
    let mut record = SampleRecord {
        index,
        id: sample.id.clone(),
        subset: sample.subset.clone(),
        status: SampleStatus::Failed,
        reference: sample.reference.clone(),
        prompt: None,
        prompt_text: None,
        output: None,
        choices: None,
        extracted: None,
        metrics: BTreeMap::new(),
        finish: None,
        prompt_tokens: None,
        output_tokens: None,
        timings: SampleTimings::default(),
        peak_rss_bytes: None,
        error: None,
    };
    let fail = |record: &mut SampleRecord, stage, message: String| {
        record.error = Some(SampleError { stage, message });
    };

    let prompt_started = Instant::now();
    let request = scenario.build_prompt(sample, examples, loglikelihood);
    let prompt_time = prompt_started.elapsed();
    record.timings.prompt_ms = ms(prompt_time);
    let request = match request {
        Err(e) => {
            fail(&mut record, Stage::Prompt, e.to_string());
            return finish(record, started);
        }
        Ok(request) => request,
    };
    let output = if loglikelihood {
        let generate_started = Instant::now();
        let likelihoods = choice_likelihoods(engine, &request.prompt, &request.choices);
        record.timings.generate_ms = ms(generate_started.elapsed());
        record.prompt = Some(request.prompt);
        match likelihoods {
            Err(e) => {
                fail(&mut record, Stage::Generate, format!("{e:#}"));
                return finish(record, started);
            }
            Ok((context, choices)) => {
                record.prompt_text = Some(context);
                record.choices = Some(
                    request
                        .choices
                        .into_iter()
                        .zip(&choices)
                        .map(|(text, c)| ChoiceRecord { text, logprob: c.logprob, tokens: c.tokens, greedy: c.greedy })
                        .collect(),
                );
                ModelOutput { text: String::new(), choices }
            }
        }
    } else {
        let generation = engine.generate(&request.prompt, settings, &mut |_| {});
        record.prompt = Some(request.prompt);
        match generation {
            Err(e) => {
                fail(&mut record, Stage::Generate, format!("{e:#}"));
                return finish(record, started);
            }
            Ok(g) => {
                record.timings = sample_timings(prompt_time, &g);
                record.prompt_tokens = Some(g.prompt_tokens);
                record.output_tokens = Some(g.output_tokens);
                record.finish = serde_json::to_value(g.finish).ok().and_then(|v| v.as_str().map(String::from));
                record.prompt_text = Some(g.prompt_text);
                ModelOutput { text: g.output, choices: Vec::new() }
            }
        }
    };
    let score_started = Instant::now();
    let score = scenario.score(sample, &output);
    record.timings.score_ms = ms(score_started.elapsed());
    if !loglikelihood {
        record.output = Some(output.text);
    }
    match score {
        Err(e) => fail(&mut record, Stage::Score, e.to_string()),
        Ok(score) => {
            record.status = SampleStatus::Ok;
            record.extracted = score.extracted;
            record.metrics = score.metrics.into_iter().map(|m| (m.name, m.value)).collect();
        }
    }
    finish(record, started)
}

fn finish(mut record: SampleRecord, started: Instant) -> SampleRecord {
    record.timings.e2e_ms = ms(started.elapsed());
    record.peak_rss_bytes = memory::peak_rss_bytes();
    record
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

pub fn exec(opts: &ExecOptions) -> Result<RunOutcome> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let load_average_start = provenance::load_average();

    let cache = opts.scenario_cache.then(ComponentCache::from_env);
    let scenario = prepare::load_scenario(&opts.scenario, opts.limits, cache.as_ref())?;
    let meta = scenario.metadata().clone();
    let mut ready = prepare::configure(scenario, &opts.choices)?;
    let dataset = prepare::load_dataset(&mut ready, opts.data.as_ref(), opts.split.as_deref())?;
    let few_shot = FewShot::new(&dataset.samples, opts.choices.seed);
    let selection = select_samples(dataset.samples.len(), opts.shuffle_seed, opts.max_samples);

    let model_dir = opts.model.clone().unwrap_or_else(paths::default_model);
    if !model_dir.is_dir() {
        let hint = if opts.model.is_none() {
            "the default model is installed by `cargo xtask setup`; or pass --model DIR"
        } else {
            "pass a folder made by `runner import MODEL.gguf --out DIR`"
        };
        bail!("model folder {} does not exist: {hint}", model_dir.display());
    }
    let mut engine = Engine::load(&EngineOptions {
        model_dir: model_dir.clone(),
        ort_lib: opts.ort_lib.clone(),
        intra_threads: opts.threads,
    })
    .with_context(|| format!("cannot load model {}", model_dir.display()))?;
    let model_hash = provenance::hash_dir(&model_dir)?;
    let settings = GenerationSettings {
        max_new_tokens: opts.max_new_tokens.unwrap_or(meta.defaults.max_new_tokens as usize),
        stop: meta.defaults.stop.clone(),
        sampling: opts.sampling,
        seed: opts.seed,
        repetition_penalty: opts.repetition_penalty,
        ignore_eos: opts.ignore_eos,
    };

    let out_dir = opts.out.clone().unwrap_or_else(|| default_out_dir(started_at, &meta.name, &model_dir));
    let mut writer = RunWriter::create(&out_dir)?;
    let specs = metric_specs(&meta.metrics);

    let mut summary = RunSummary {
        status: RunStatus::Running,
        abort_reason: None,
        runner: RunnerInfo::current(),
        started_at: timestamp(started_at),
        finished_at: None,
        wall_seconds: 0.0,
        setup_seconds: started.elapsed().as_secs_f64(),
        scenario: ScenarioRecord {
            name: meta.name.clone(),
            version: meta.version.clone(),
            description: meta.description.clone(),
            path: opts.scenario.display().to_string(),
            hash: ready.scenario.hash().to_string(),
        },
        dataset: DatasetRecord {
            source: dataset.source.to_string(),
            label: dataset.label.clone(),
            hash: dataset.hash.clone(),
            total: dataset.samples.len(),
            selected: selection.len(),
            shuffle_seed: opts.shuffle_seed,
            max_samples: opts.max_samples,
            selected_ids: selection.iter().map(|&i| dataset.samples[i].id.clone()).collect(),
            subsets: opts.choices.subsets.clone(),
        },
        model: ModelRecord {
            dir: model_dir.display().to_string(),
            hash: model_hash,
            info: serde_json::to_value(engine.model_info()).context("cannot record the model's description")?,
        },
        runtime: RuntimeRecord {
            onnxruntime_library: engine.runtime().library.display().to_string(),
            onnxruntime_version: engine.runtime().version.clone(),
            execution_provider: "cpu".to_string(),
            intra_threads: opts.threads,
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
            scenario_memory_bytes: opts.limits.memory_bytes,
            scenario_call_timeout_ms: opts.limits.call_timeout.as_millis() as u64,
            few_shot: ready.few_shot,
            scoring: match ready.scoring {
                ScoringMode::Generate => "generate".to_string(),
                ScoringMode::Loglikelihood => "loglikelihood".to_string(),
            },
            scenario_args: opts.choices.args.clone(),
        },
        host: HostInfo::detect(),
        load_average_start,
        load_average_end: None,
        results: Aggregates::default(),
    };
    writer.write_summary(&summary)?;
    if dataset.source == "embedded" {
        eprintln!("Using the scenario's {}; pass --data FILE for a real dataset.", dataset.label);
    }

    let bar = progress_bar(selection.len(), opts.progress);
    let mut records = Vec::with_capacity(selection.len());
    let mut consecutive_failures = 0;
    let mut correct_so_far = (0.0, 0usize);
    for (index, &sample_index) in selection.iter().enumerate() {
        let sample = &dataset.samples[sample_index];
        let examples: Vec<Sample> = few_shot
            .examples(&dataset.samples, sample_index, ready.few_shot)
            .into_iter()
            .map(|i| dataset.samples[i].clone())
            .collect();
        let record = run_sample(index, sample, &examples, &mut ready, &mut engine, &settings);
        writer.append(&record)?;
        if let Some(error) = &record.error {
            consecutive_failures += 1;
            bar.suspend(|| {
                eprintln!("Sample {} ({}) failed during {:?}: {}", index, record.id, error.stage, error.message)
            });
        } else {
            consecutive_failures = 0;
        }
        if let Some(first) = meta.metrics.first().and_then(|m| record.metrics.get(&m.name)) {
            correct_so_far = (correct_so_far.0 + first, correct_so_far.1 + 1);
        }
        let tps = record.timings.decode_tokens_per_s.map_or(String::new(), |t| format!(" | {t:.0} tok/s"));
        if let Some(first) = meta.metrics.first().filter(|_| correct_so_far.1 > 0) {
            bar.set_message(format!("{} {:.3}{tps}", first.name, correct_so_far.0 / correct_so_far.1 as f64));
        }
        bar.inc(1);
        records.push(record);
        if consecutive_failures >= opts.max_consecutive_failures {
            summary.status = RunStatus::Aborted;
            summary.abort_reason = Some(format!(
                "{consecutive_failures} samples failed in a row (the limit is --max-consecutive-failures {}); \
                 the last error: {}",
                opts.max_consecutive_failures,
                records.last().and_then(|r| r.error.as_ref()).map_or("", |e| e.message.as_str())
            ));
            break;
        }
    }
    bar.finish_and_clear();

    if summary.status == RunStatus::Running {
        summary.status = RunStatus::Complete;
    }
    summary.results = Aggregates::from_records(&records, &specs);
    match scenario_aggregate(&mut ready, &records) {
        Ok(metrics) => summary.results.scenario_metrics = metrics,
        Err(e) => {
            eprintln!("The scenario's own aggregate failed: {e}");
            summary.results.warnings.push(format!("the scenario's `aggregate` failed: {e}"));
        }
    }
    summary.finished_at = Some(timestamp(SystemTime::now()));
    summary.wall_seconds = started.elapsed().as_secs_f64();
    summary.load_average_end = provenance::load_average();
    writer.write_summary(&summary)?;
    writer.write_markdown(&crate::results::table::render_markdown(&summary)?)?;
    Ok(RunOutcome { dir: writer.dir().to_path_buf(), summary })
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
