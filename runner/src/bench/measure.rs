//! One timed run of a configuration: generate exactly N tokens after the P-token synthetic prompt (EOS does
//! not stop it, greedy decoding, no stop strings) and turn the engine's timings into a [`Repetition`].

use std::time::Duration;

use serde::Serialize;

use super::BenchError;
use super::plan::Configuration;
use crate::engine::{Engine, Generation, GenerationSettings, Sampling};
use crate::memory;

/// What one measured run gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repetition {
    /// Tokens in the prompt the model saw (per sequence).
    pub prompt_tokens: usize,
    /// Tokens generated (per sequence).
    pub generated_tokens: usize,
    /// The prompt's forward pass.
    pub prefill_ms: f64,
    /// Prompt tokens over prefill time (all sequences of the batch).
    pub prefill_tokens_per_s: f64,
    /// From the call to the first generated token.
    pub ttft_ms: f64,
    /// Tokens after the first over the time of their decode steps (all sequences of the batch); absent when
    /// only one token was generated.
    pub decode_tokens_per_s: Option<f64>,
    /// Every decode step (the inter-token latencies), N - 1 of them.
    pub itl_ms: Vec<f64>,
    /// Share of the decode steps' time spent outside ONNX Runtime's `run` (binding, reading logits, sampling,
    /// detokenizing), in percent: the harness's own overhead.
    pub harness_overhead_pct: Option<f64>,
    /// The whole generation.
    pub e2e_ms: f64,
    /// Peak resident memory of the process during this run (Linux VmHWM, reset before it); with
    /// `--interleave` it includes every model of the sweep, as they all stay loaded.
    pub peak_rss_bytes: Option<u64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Percent of the time between tokens (`steps`) spent outside ONNX Runtime's `run`.
pub fn harness_overhead_pct(steps: &[Duration], runs: &[Duration]) -> Option<f64> {
    let total: Duration = steps.iter().sum();
    let inside: Duration = runs.iter().sum();
    (steps.len() == runs.len() && !total.is_zero())
        .then(|| 100.0 * total.saturating_sub(inside).as_secs_f64() / total.as_secs_f64())
}

/// Fixed-length greedy generation: exactly `gen_tokens`, EOS or not.
pub fn settings(gen_tokens: usize) -> GenerationSettings {
    GenerationSettings {
        max_new_tokens: gen_tokens,
        sampling: Sampling::ArgMax,
        ignore_eos: true,
        ..Default::default()
    }
}

/// Runs `prompt` at the configuration's batch size; each sequence of the batch gets the same prompt.
fn generate(
    engine: &mut Engine,
    batch_size: usize,
    prompt: &[u32],
    settings: &GenerationSettings,
) -> Result<Vec<Generation>, BenchError> {
    match batch_size {
        1 => Ok(vec![engine.generate_from_tokens(prompt, settings)?]),
        _ => Ok(engine.generate_batch_from_tokens(&vec![prompt.to_vec(); batch_size], settings)?),
    }
}

/// One measured (or warm-up) run of `configuration`. A run that does not see exactly P prompt tokens and
/// produce exactly N tokens per sequence is an error, not a number.
pub fn run_once(engine: &mut Engine, configuration: &Configuration, prompt: &[u32]) -> Result<Repetition, BenchError> {
    memory::reset_peak();
    let generations = generate(engine, configuration.batch_size, prompt, &settings(configuration.gen_tokens))?;
    let peak_rss_bytes = memory::peak_rss_bytes();
    let Some(first) = generations.first() else {
        return Err(BenchError::NoGeneration);
    };
    for g in &generations {
        if g.prompt_tokens != configuration.prompt_tokens || g.output_tokens != configuration.gen_tokens {
            return Err(BenchError::WrongLength {
                expected_prompt: configuration.prompt_tokens,
                expected_gen: configuration.gen_tokens,
                prompt: g.prompt_tokens,
                generated: g.output_tokens,
                finish: format!("{:?}", g.finish),
            });
        }
    }
    // The sequences of a batch share their forward passes, so the first one's timings are the batch's.
    let t = &first.timings;
    let sequences = generations.len() as f64;
    // Token to token: a decode step's run, sampling, and the detokenizing and stop strings between steps.
    let intervals: Vec<Duration> = t.sampled.windows(2).map(|pair| pair[1].at.saturating_sub(pair[0].at)).collect();
    let decode_total: Duration = intervals.iter().sum();
    let prefill_s = t.prefill.as_secs_f64();
    Ok(Repetition {
        prompt_tokens: first.prompt_tokens,
        generated_tokens: first.output_tokens,
        prefill_ms: ms(t.prefill),
        prefill_tokens_per_s: if prefill_s > 0.0 { sequences * first.prompt_tokens as f64 / prefill_s } else { 0.0 },
        ttft_ms: ms(t.ttft),
        decode_tokens_per_s: (!intervals.is_empty() && !decode_total.is_zero())
            .then(|| sequences * intervals.len() as f64 / decode_total.as_secs_f64()),
        itl_ms: intervals.iter().map(|&d| ms(d)).collect(),
        harness_overhead_pct: harness_overhead_pct(&intervals, &t.decode_runs),
        e2e_ms: ms(t.e2e),
        peak_rss_bytes,
    })
}
