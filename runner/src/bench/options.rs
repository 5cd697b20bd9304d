//! What `runner bench` is asked to measure: the lists of models, prompt and generation lengths, batch sizes,
//! execution providers and thread counts whose cartesian product is the sweep, and how many times each
//! configuration runs. Checking what can be checked without a model happens here.

use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

use super::BenchError;

/// llama-bench's defaults: `pp512` and `tg128`, five repetitions.
pub const DEFAULT_PROMPT_TOKENS: usize = 512;
pub const DEFAULT_GEN_TOKENS: usize = 128;
pub const DEFAULT_REPETITIONS: usize = 5;
pub const DEFAULT_WARMUP: usize = 1;

/// Prompt length categories, as documented in `runner bench --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PromptPreset {
    /// 128 prompt tokens: a chat turn.
    Short,
    /// 512 prompt tokens: a few-shot question.
    Medium,
    /// 2048 prompt tokens: a document to summarise.
    Long,
}

impl PromptPreset {
    pub fn tokens(self) -> usize {
        match self {
            PromptPreset::Short => 128,
            PromptPreset::Medium => 512,
            PromptPreset::Long => 2048,
        }
    }
}

/// The execution provider of a configuration: the engine's own option type, so `runner bench --ep cuda`
/// registers the provider exactly as `runner exec --ep cuda` does (and fails the same way when it cannot).
pub use crate::engine::ExecutionProvider as Ep;

impl FromStr for Ep {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Ep::Cpu),
            "cuda" => Ok(Ep::Cuda),
            "tensorrt" => Ok(Ep::TensorRt),
            _ => Err(format!("`{value}` is not an execution provider; use cpu, cuda or tensorrt")),
        }
    }
}

/// Everything `runner bench` runs. Lists are swept as a cartesian product in the order [`super::plan`]
/// documents; none may be empty.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Model folders; each is loaded once per execution provider and thread count.
    pub models: Vec<PathBuf>,
    /// Prompt lengths P in tokens (`-p`).
    pub prompt_tokens: Vec<usize>,
    /// Generated lengths N in tokens (`-n`); EOS does not stop generation.
    pub gen_tokens: Vec<usize>,
    /// Batch sizes (`-b`).
    pub batch_sizes: Vec<usize>,
    /// Execution providers (`--ep`).
    pub eps: Vec<Ep>,
    /// ONNX Runtime intra-op threads (`-t`); `None` is ONNX Runtime's default (one per physical core).
    pub threads: Vec<Option<usize>>,
    /// Measured runs per configuration (`-r`).
    pub repetitions: usize,
    /// Unrecorded runs before them (`-w`), so caches, allocator pools and thread pools are warm.
    pub warmup: usize,
    /// Run repetition i of every configuration before repetition i + 1 of any (all models stay loaded).
    pub interleave: bool,
    pub ort_lib: Option<PathBuf>,
    /// Idle ONNX Runtime threads spin (`Some(true)`), sleep (`Some(false)`), or do ONNX Runtime's default.
    pub intra_op_spinning: Option<bool>,
}

impl BenchOptions {
    /// The checks that need no model: every list has a value, counts are positive, and the batch sizes and
    /// execution providers are ones this build can run. Errors name the flag.
    pub fn validate(&self) -> Result<(), BenchError> {
        let lists: [(&'static str, bool); 6] = [
            ("--model", self.models.is_empty()),
            ("-p/--prompt-tokens", self.prompt_tokens.is_empty()),
            ("-n/--gen-tokens", self.gen_tokens.is_empty()),
            ("-b/--batch-size", self.batch_sizes.is_empty()),
            ("--ep", self.eps.is_empty()),
            ("-t/--threads", self.threads.is_empty()),
        ];
        if let Some((flag, _)) = lists.iter().find(|(_, empty)| *empty) {
            return Err(BenchError::EmptyList { flag });
        }
        let positive: [(&'static str, &[usize]); 3] = [
            ("-p/--prompt-tokens", &self.prompt_tokens),
            ("-n/--gen-tokens", &self.gen_tokens),
            ("-b/--batch-size", &self.batch_sizes),
        ];
        for (flag, values) in positive {
            if values.contains(&0) {
                return Err(BenchError::Zero { flag });
            }
        }
        if self.threads.contains(&Some(0)) {
            return Err(BenchError::Zero { flag: "-t/--threads" });
        }
        if self.repetitions == 0 {
            return Err(BenchError::Zero { flag: "-r/--repetitions" });
        }
        Ok(())
    }
}
