//! The per-sample pipeline of `runner exec`: ask the scenario for a prompt, generate with the engine (or
//! score the choices' log-likelihoods), ask the scenario for a score, and close the sample's record. Each
//! failure is recorded against the stage where it happened and never ends the run; batches share one
//! generation and fall back to one sample at a time when it fails.
//!
//! Around each sample it measures what the engine cannot see: resident memory at each stage, the GPU
//! (NVML) over each generation, and, with `--trace`, the spans that place the scenario calls on the run's
//! timeline. It applies the run's prompt options and splits a reasoning model's thinking from the answer.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::ms;
use crate::engine::{
    ContinuationScore, Engine, Generation, GenerationSettings, MarkerSource, PromptOptions, ThinkMarkers,
    split_reasoning,
};
use crate::gpu_monitor::{GpuMark, GpuMonitor};
use crate::memory;
use crate::prepare::{ReadyScenario, ScoringMode};
use crate::prompt::Prompt;
use crate::results::{ChoiceRecord, SampleError, SampleRecord, SampleStatus, SampleTimings, Stage};
use crate::scenario::{ChoiceLikelihood, ModelOutput, Sample, Scenario};
use crate::trace::TraceRecorder;

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
        sampling_ms: t.sampled.iter().map(|s| ms(s.sampling)).sum(),
        detokenize_ms: ms(t.detokenize),
        score_ms: 0.0,
        generate_ms: ms(t.e2e),
        model_share_ms: Some(ms(t.e2e) / t.batch_size.max(1) as f64),
        e2e_ms: 0.0,
        decode_tokens_per_s: (!t.decode_steps.is_empty() && !decode_total.is_zero())
            .then(|| t.decode_steps.len() as f64 / decode_total.as_secs_f64()),
        prefill_tokens_per_s: (!t.prefill.is_zero()).then(|| g.prompt_tokens as f64 / t.prefill.as_secs_f64()),
    }
}

/// What a run measures around its samples, beyond the engine's own timings.
pub(super) struct SampleProbes<'a> {
    pub prompt: &'a PromptOptions,
    /// The markers thinking is split at, and where they came from; `None` when splitting is off.
    pub think: Option<&'a (ThinkMarkers, MarkerSource)>,
    pub trace: Option<&'a mut TraceRecorder>,
    pub gpu: Option<&'a mut GpuMonitor>,
    /// Set by the sample: whether its peak memory is its own or the run's so far.
    pub peak_scope: Option<memory::PeakScope>,
    /// Whether a request's own token budget applies (the user gave no `--max-new-tokens`).
    pub request_budgets: bool,
}

/// The log-likelihood of each choice after the rendered prompt, as the contract reports it.
fn likelihoods(scores: &[ContinuationScore]) -> Vec<ChoiceLikelihood> {
    scores
        .iter()
        .map(|s| ChoiceLikelihood {
            logprob: s.logprob_sum,
            tokens: u32::try_from(s.token_count).unwrap_or(u32::MAX),
            greedy: s.greedy_match,
        })
        .collect()
}

/// A log-likelihood sample's rendered context and its choices' scores, or why there are none.
pub(super) type Scored = Result<(String, Vec<ContinuationScore>), String>;

/// A log-likelihood request as an engine takes it: the prompt as the model gets it, and the choices.
pub(super) type LikelihoodRequest = (Prompt, Vec<String>);

/// Records a log-likelihood sample's context and choices, with its model time, and returns what the scenario
/// scores. With `sessions` scoring side by side, the sample's share of the run's model time is its own time
/// over their number: throughput counts the time the sessions overlapped once.
fn record_likelihoods(
    prompted: &mut PromptedSample,
    scored: Scored,
    model_time: Duration,
    sessions: usize,
) -> Result<ModelOutput, String> {
    let record = &mut prompted.record;
    record.timings.generate_ms = ms(model_time);
    if sessions > 1 {
        record.timings.model_share_ms = Some(ms(model_time) / sessions as f64);
    }
    let (context, scores) = scored?;
    record.prompt_text = Some(context);
    record.prompt_tokens = Some(scores.first().map_or(0, |s| s.context_tokens));
    let choices = likelihoods(&scores);
    record.choices = Some(
        std::mem::take(&mut prompted.choices)
            .into_iter()
            .zip(&choices)
            .map(|(text, c)| ChoiceRecord { text, logprob: c.logprob, tokens: c.tokens, greedy: c.greedy })
            .collect(),
    );
    Ok(ModelOutput { text: String::new(), choices })
}

/// One sample's choices scored on its own: the prompt rendered (chat template applied) and scored.
fn score_one(engine: &mut Engine, prompt: &Prompt, choices: &[String]) -> Scored {
    let context = engine.render(prompt).map_err(|e| format!("{e:#}"))?;
    let scores = engine.continuation_logprobs(&context, choices).map_err(|e| format!("{e:#}"))?;
    Ok((context, scores))
}

/// Scores requests on one engine: together (one prefill over their contexts, one step per choice
/// position), or one at a time when the batch fails, so an error lands on its sample. Each result comes
/// with its sample's model time: in a batch, its share of the batch's.
pub(super) fn score_requests(engine: &mut Engine, requests: &[LikelihoodRequest]) -> Vec<(Scored, Duration)> {
    let one_at_a_time = |engine: &mut Engine| -> Vec<(Scored, Duration)> {
        requests
            .iter()
            .map(|request| {
                let started = Instant::now();
                (score_one(engine, &request.0, &request.1), started.elapsed())
            })
            .collect()
    };
    if requests.len() < 2 {
        return one_at_a_time(engine);
    }
    let started = Instant::now();
    let rendered: Result<Vec<(String, Vec<String>)>, String> = requests
        .iter()
        .map(|(prompt, choices)| engine.render(prompt).map(|context| (context, choices.clone())))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e:#}"));
    let batch = rendered.and_then(|requests| {
        let scores = engine.continuation_logprobs_batch(&requests).map_err(|e| format!("{e:#}"))?;
        Ok(requests.into_iter().map(|(context, _)| context).zip(scores).collect::<Vec<_>>())
    });
    match batch {
        Ok(scored) => {
            let share = started.elapsed() / scored.len().max(1) as u32;
            scored.into_iter().map(|result| (Ok(result), share)).collect()
        }
        Err(_) => one_at_a_time(engine),
    }
}

/// The requests of a batch's samples waiting for the model.
pub(super) fn likelihood_requests(waiting: &[(PromptedSample, &Sample)]) -> Vec<LikelihoodRequest> {
    waiting.iter().map(|(p, _)| (p.model_prompt.clone(), p.choices.clone())).collect()
}

/// Records a batch's scored log-likelihood samples, scores them with the scenario and closes their records;
/// returns the batch's records (those whose prompt failed too) in index order.
pub(super) fn close_likelihoods(
    mut finished: Vec<SampleRecord>,
    waiting: Vec<(PromptedSample, &Sample)>,
    scored: Vec<(Scored, Duration)>,
    sessions: usize,
    ready: &mut ReadyScenario,
    probes: &mut SampleProbes,
) -> Vec<SampleRecord> {
    for ((mut prompted, sample), (result, model_time)) in waiting.into_iter().zip(scored) {
        let output = record_likelihoods(&mut prompted, result, model_time, sessions);
        finished.push(score_sample(prompted, sample, output, &mut ready.scenario, probes));
    }
    finished.sort_by_key(|r| r.index);
    finished
}

/// A sample whose prompt is built, waiting for the model.
pub(super) struct PromptedSample {
    record: SampleRecord,
    started: Instant,
    prompt_time: Duration,
    /// The prompt as the model gets it (system prompt and plain-text options applied).
    model_prompt: Prompt,
    choices: Vec<String>,
    /// The request's own token budget (LongBench's per-task budgets).
    max_new_tokens: Option<usize>,
}

impl PromptedSample {
    /// The run's generation settings with this request's budget when it has one that applies.
    fn settings(&self, run: &GenerationSettings, request_budgets: bool) -> GenerationSettings {
        match self.max_new_tokens.filter(|_| request_budgets) {
            Some(max_new_tokens) => GenerationSettings { max_new_tokens, ..run.clone() },
            None => run.clone(),
        }
    }
}

/// What asking for a sample's prompt gave: the sample waiting for the model, or its finished record when the
/// prompt failed (the failure recorded).
enum Prompted {
    Ready(PromptedSample),
    Failed(SampleRecord),
}

/// Starts a sample's record and asks the scenario for its prompt.
fn prompt_sample(
    index: usize,
    sample: &Sample,
    examples: &[Sample],
    ready: &mut ReadyScenario,
    probes: &mut SampleProbes,
) -> Prompted {
    let loglikelihood = ready.scoring == ScoringMode::Loglikelihood;
    let started = Instant::now();
    let mut record = SampleRecord::begin(index, sample.id.clone(), sample.subset.clone(), sample.reference.clone());
    let prompt_started = Instant::now();
    let request = ready.scenario.build_prompt(sample, examples, loglikelihood);
    let prompt_ended = Instant::now();
    let prompt_time = prompt_ended - prompt_started;
    record.timings.prompt_ms = ms(prompt_time);
    if let Some(trace) = probes.trace.as_deref_mut() {
        trace.span("build-prompt", "scenario", prompt_started, prompt_ended, serde_json::Value::Null);
    }
    match request {
        Err(e) => {
            fail(&mut record, Stage::Prompt, e.to_string());
            Prompted::Failed(finish(record, started, probes))
        }
        Ok(request) => {
            let model_prompt = probes.prompt.apply(request.prompt.clone());
            record.prompt = Some(request.prompt);
            Prompted::Ready(PromptedSample {
                record,
                started,
                prompt_time,
                model_prompt,
                choices: request.choices,
                max_new_tokens: request.max_new_tokens,
            })
        }
    }
}

fn fail(record: &mut SampleRecord, stage: Stage, message: String) {
    record.error = Some(SampleError { stage, message });
}

/// Runs one sample through prompt, generation (or choice log-likelihoods) and scoring. Every failure is
/// recorded against the stage where it happened; nothing here ends the run.
fn run_sample(
    index: usize,
    sample: &Sample,
    examples: &[Sample],
    ready: &mut ReadyScenario,
    engine: &mut Engine,
    settings: &GenerationSettings,
    probes: &mut SampleProbes,
) -> SampleRecord {
    probes.peak_scope = Some(memory::reset_peak());
    let mut prompted = match prompt_sample(index, sample, examples, ready, probes) {
        Prompted::Ready(prompted) => prompted,
        Prompted::Failed(finished) => return finished,
    };
    let prompt_time = prompted.prompt_time;
    let settings = &prompted.settings(settings, probes.request_budgets);
    let output = if ready.scoring == ScoringMode::Loglikelihood {
        let started = Instant::now();
        let scored = score_one(engine, &prompted.model_prompt, &prompted.choices);
        record_likelihoods(&mut prompted, scored, started.elapsed(), 1)
    } else {
        let record = &mut prompted.record;
        let gpu_mark = probes.gpu.as_deref().map(GpuMonitor::mark);
        // The first streamed text comes right after prefill and the first token: the engine's loop is left
        // alone, and this is the closest point outside it.
        let mut after_prefill: Option<(Instant, Option<u64>)> = None;
        let generation_started = Instant::now();
        let generation = engine.generate(&prompted.model_prompt, settings, &mut |_| {
            if after_prefill.is_none() {
                after_prefill = Some((Instant::now(), memory::current_rss_bytes()));
            }
        });
        record.rss_after_prefill_bytes = after_prefill.and_then(|(_, rss)| rss);
        if let (Some(trace), Some((at, rss))) = (probes.trace.as_deref_mut(), after_prefill) {
            trace.memory(at, "after prefill", rss);
        }
        generation
            .map_err(|e| format!("{e:#}"))
            .map(|g| record_generation(record, g, prompt_time, generation_started, gpu_mark, engine, probes))
    };
    score_sample(prompted, sample, output, &mut ready.scenario, probes)
}

/// Runs samples as one batch: generations share a prefill and decode steps, log-likelihood samples one
/// prefill over their contexts and one step per choice position. A batch that fails is retried one sample
/// at a time, so the error lands on its sample. The samples of a batch share its memory peak and GPU
/// readings; a log-likelihood sample's model time is its share of the batch's.
pub(super) fn run_batch(
    samples: &[(usize, &Sample, Vec<Sample>)],
    ready: &mut ReadyScenario,
    engine: &mut Engine,
    settings: &GenerationSettings,
    probes: &mut SampleProbes,
) -> Vec<SampleRecord> {
    if samples.len() > 1 && ready.scoring == ScoringMode::Loglikelihood {
        return run_loglikelihood_batch(samples, ready, engine, probes);
    }
    if samples.len() == 1 {
        return samples
            .iter()
            .map(|(index, sample, examples)| run_sample(*index, sample, examples, ready, engine, settings, probes))
            .collect();
    }
    probes.peak_scope = Some(memory::reset_peak());
    let (mut finished, waiting) = prompt_batch(samples, ready, probes);
    let prompts: Vec<Prompt> = waiting.iter().map(|(p, _)| p.model_prompt.clone()).collect();
    let each_settings: Vec<GenerationSettings> =
        waiting.iter().map(|(p, _)| p.settings(settings, probes.request_budgets)).collect();
    let gpu_mark = probes.gpu.as_deref().map(GpuMonitor::mark);
    let generation_started = Instant::now();
    let one_at_a_time = |engine: &mut Engine| -> Vec<Result<Generation, String>> {
        prompts
            .iter()
            .zip(&each_settings)
            .map(|(p, s)| engine.generate(p, s, &mut |_| {}).map_err(|e| format!("{e:#}")))
            .collect()
    };
    // A batch shares one budget; requests with budgets of their own that differ generate one at a time.
    let generations = if each_settings.windows(2).all(|pair| pair[0] == pair[1]) && !each_settings.is_empty() {
        match engine.generate_batch(&prompts, &each_settings[0]) {
            Ok(generations) => generations.into_iter().map(Ok).collect(),
            Err(_) => one_at_a_time(engine),
        }
    } else {
        one_at_a_time(engine)
    };
    for ((mut prompted, sample), generation) in waiting.into_iter().zip(generations) {
        let output = generation.map(|g| {
            let prompt_time = prompted.prompt_time;
            record_generation(&mut prompted.record, g, prompt_time, generation_started, gpu_mark, engine, probes)
        });
        finished.push(score_sample(prompted, sample, output, &mut ready.scenario, probes));
    }
    finished.sort_by_key(|r| r.index);
    finished
}

/// Asks the scenario for every prompt of a batch: the samples waiting for the model, and the finished
/// records of those whose prompt failed.
pub(super) fn prompt_batch<'s>(
    samples: &[(usize, &'s Sample, Vec<Sample>)],
    ready: &mut ReadyScenario,
    probes: &mut SampleProbes,
) -> (Vec<SampleRecord>, Vec<(PromptedSample, &'s Sample)>) {
    let mut finished = Vec::new();
    let mut waiting = Vec::new();
    for (index, sample, examples) in samples {
        match prompt_sample(*index, sample, examples, ready, probes) {
            Prompted::Ready(prompted) => waiting.push((prompted, *sample)),
            Prompted::Failed(record) => finished.push(record),
        }
    }
    (finished, waiting)
}

/// [`run_batch`] for log-likelihood samples.
fn run_loglikelihood_batch(
    samples: &[(usize, &Sample, Vec<Sample>)],
    ready: &mut ReadyScenario,
    engine: &mut Engine,
    probes: &mut SampleProbes,
) -> Vec<SampleRecord> {
    probes.peak_scope = Some(memory::reset_peak());
    let (finished, waiting) = prompt_batch(samples, ready, probes);
    let scored = score_requests(engine, &likelihood_requests(&waiting));
    close_likelihoods(finished, waiting, scored, 1, ready, probes)
}

/// Records a generation in the sample's record (timings, tokens, trace, GPU, the reasoning split) and
/// returns what the scenario scores: the answer after any thinking.
fn record_generation(
    record: &mut SampleRecord,
    g: Generation,
    prompt_time: Duration,
    generation_started: Instant,
    gpu_mark: Option<GpuMark>,
    engine: &Engine,
    probes: &mut SampleProbes,
) -> ModelOutput {
    let generation_ended = Instant::now();
    record.rss_after_generation_bytes = memory::current_rss_bytes();
    if let Some(trace) = probes.trace.as_deref_mut() {
        let args = serde_json::json!({
            "sample": record.index, "id": record.id, "prompt_tokens": g.prompt_tokens,
            "output_tokens": g.output_tokens, "finish": g.finish, "batch_size": g.timings.batch_size,
        });
        trace.generation(generation_started, &g.timings, args);
        trace.memory(generation_ended, "after generation", record.rss_after_generation_bytes);
    }
    if let (Some(gpu), Some(mark)) = (probes.gpu.as_deref_mut(), gpu_mark) {
        record.gpu = gpu.generation(mark, g.output_tokens);
    }
    record.timings = sample_timings(prompt_time, &g);
    record.prompt_tokens = Some(g.prompt_tokens);
    record.output_tokens = Some(g.output_tokens);
    record.output_token_ids = Some(g.output_ids.clone());
    record.finish = serde_json::to_value(g.finish).ok().and_then(|v| v.as_str().map(String::from));
    let answer = match probes.think {
        None => g.output,
        Some((markers, source)) => {
            let split = split_reasoning(&g.output, markers, markers.opened_by(&g.prompt_text));
            if split.thinking.is_some() || *source != MarkerSource::Default {
                let thinking_tokens = split.thinking_tokens(engine.tokenizer()).min(g.output_tokens);
                record.thinking_tokens = Some(thinking_tokens);
                record.answer_tokens = Some(g.output_tokens - thinking_tokens);
            }
            record.thinking = split.thinking;
            record.thinking_unclosed = split.unclosed;
            split.answer
        }
    };
    record.prompt_text = Some(g.prompt_text);
    ModelOutput { text: answer, choices: Vec::new() }
}

/// Scores the model's output (or records why there is none) and closes the sample's record.
fn score_sample(
    prompted: PromptedSample,
    sample: &Sample,
    output: Result<ModelOutput, String>,
    scenario: &mut Scenario,
    probes: &mut SampleProbes,
) -> SampleRecord {
    let PromptedSample { mut record, started, .. } = prompted;
    let output = match output {
        Ok(output) => output,
        Err(message) => {
            fail(&mut record, Stage::Generate, message);
            return finish(record, started, probes);
        }
    };
    let score_started = Instant::now();
    let score = scenario.score(sample, &output);
    let score_ended = Instant::now();
    record.timings.score_ms = ms(score_ended - score_started);
    if let Some(trace) = probes.trace.as_deref_mut() {
        trace.span("score", "scenario", score_started, score_ended, serde_json::Value::Null);
    }
    if record.choices.is_none() {
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
    finish(record, started, probes)
}

/// Closes a sample's record: its end-to-end time, its memory peak and its span in the trace.
fn finish(mut record: SampleRecord, started: Instant, probes: &mut SampleProbes) -> SampleRecord {
    let ended = Instant::now();
    record.timings.e2e_ms = ms(ended - started);
    record.peak_rss_bytes = memory::peak_rss_bytes();
    if let Some(trace) = probes.trace.as_deref_mut() {
        let args = serde_json::json!({"sample": record.index, "id": record.id, "status": record.status});
        trace.span("sample", "sample", started, ended, args);
    }
    record
}
