//! What runner records for one sample: the prompt and output, the reference and score, the timings and
//! token counts, or the error that stopped it. One `SampleRecord` is one line of `samples.jsonl`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gpu_monitor::GenerationGpu;
use crate::prompt::Prompt;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleStatus {
    Ok,
    Failed,
}

/// The step of a sample that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The scenario's `build-prompt`.
    Prompt,
    /// Tokenizing, prefill and decoding.
    Generate,
    /// The scenario's `score`.
    Score,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleError {
    pub stage: Stage,
    pub message: String,
}

/// Per-phase times of one sample, in milliseconds. A phase that is absent took no time (published records
/// leave out the zeros: a log-likelihood run has no decode steps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleTimings {
    /// The scenario building the prompt (WebAssembly call).
    pub prompt_ms: f64,
    /// Chat template rendering.
    pub render_ms: f64,
    pub tokenize_ms: f64,
    pub prefill_ms: f64,
    /// From the start of generation to the first generated token.
    pub ttft_ms: f64,
    /// Every decode step after the first token: the inter-token latencies.
    pub itl_ms: Vec<f64>,
    /// Choosing tokens from logits (penalties, sampling), summed over the generation; part of TTFT and of
    /// the inter-token latencies above.
    pub sampling_ms: f64,
    pub detokenize_ms: f64,
    /// The scenario scoring the output (WebAssembly call).
    pub score_ms: f64,
    /// Generation from start to the last token (render to detokenize). In a batch this is the batch's
    /// time: every row's output is ready when the batch ends. (A log-likelihood sample's is its share.)
    pub generate_ms: f64,
    /// This sample's share of the model's time: its batch's generation divided among the rows that shared
    /// it. Throughput is samples and tokens over the sum of these, so a batch's time counts once. Absent in
    /// records written before runner kept it, and in log-likelihood records, whose `generate_ms` is already
    /// their share, unless sessions scored side by side (`--workers N`): then it is `generate_ms / N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_share_ms: Option<f64>,
    /// The whole sample: prompt, generation and scoring.
    pub e2e_ms: f64,
    /// Tokens after the first, per second of decoding; absent when fewer than two tokens were generated.
    pub decode_tokens_per_s: Option<f64>,
    /// Prompt tokens per second of prefill.
    pub prefill_tokens_per_s: Option<f64>,
}

impl SampleTimings {
    /// This sample's share of the model's time (see `model_share_ms`); `generate_ms` where it was not kept.
    pub fn model_time_ms(&self) -> f64 {
        self.model_share_ms.unwrap_or(self.generate_ms)
    }
}

/// One choice of a log-likelihood run: the continuation and how likely the model found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRecord {
    /// The continuation; absent in published (archived) records, which keep no dataset text.
    #[serde(default)]
    pub text: String,
    /// Sum of the natural-log probabilities of its tokens.
    pub logprob: f64,
    pub tokens: u32,
    /// Whether greedy decoding would have produced it (absent in published records when it would not).
    #[serde(default)]
    pub greedy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Position in the run's selection, from 0.
    pub index: usize,
    /// Which pass over the selection this is (`--repeat`), from 0; absent in the file for the first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repetition: usize,
    pub id: String,
    /// The sample's subset (MMLU subject, LongBench task...), when the dataset has subsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    pub status: SampleStatus,
    /// The expected answer; empty in published (archived) records, which keep no dataset text.
    #[serde(default)]
    pub reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Prompt>,
    /// The prompt as the model saw it, after the chat template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_text: Option<String>,
    /// What the model answered: the generated text without its thinking blocks (reasoning models), which is
    /// what the scenario scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A reasoning model's thinking, split from the answer at the run's think markers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Generated tokens inside thinking blocks (markers included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<usize>,
    /// Generated tokens of the answer: output tokens minus thinking tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_tokens: Option<usize>,
    /// The output ended inside a thinking block: all of it is thinking and the answer is empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thinking_unclosed: bool,
    /// The choices and their log-likelihoods, in log-likelihood runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<ChoiceRecord>>,
    /// The answer the scenario read from the output, when it extracts one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<usize>,
    /// The generated token ids, in order, so outputs can be compared token by token with other engines
    /// (a stop string's tokens included although the output text ends before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_token_ids: Option<Vec<u32>>,
    pub timings: SampleTimings,
    /// Peak resident memory of the process while this sample ran (since the run started where the kernel
    /// does not allow resetting the peak: see the summary's `memory.peak_scope`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory when the first output text streamed: after prefill and the first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_prefill_bytes: Option<u64>,
    /// Resident memory when generation ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_generation_bytes: Option<u64>,
    /// The GPU during this generation (NVIDIA GPUs only; absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GenerationGpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<SampleError>,
}

impl SampleRecord {
    /// A sample's record before any stage ran: who it is and what it expects, failed until scoring says
    /// otherwise, every measurement still absent.
    pub fn begin(index: usize, id: String, subset: Option<String>, reference: String) -> Self {
        SampleRecord {
            index,
            repetition: 0,
            id,
            subset,
            status: SampleStatus::Failed,
            reference,
            prompt: None,
            prompt_text: None,
            output: None,
            thinking: None,
            thinking_tokens: None,
            answer_tokens: None,
            thinking_unclosed: false,
            choices: None,
            extracted: None,
            metrics: BTreeMap::new(),
            finish: None,
            prompt_tokens: None,
            output_tokens: None,
            output_token_ids: None,
            timings: SampleTimings::default(),
            peak_rss_bytes: None,
            rss_after_prefill_bytes: None,
            rss_after_generation_bytes: None,
            gpu: None,
            error: None,
        }
    }
}
