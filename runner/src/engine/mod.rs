//! The inference engine: loads an ONNX model folder (`runner import` output, onnxruntime-genai builder output
//! or an Optimum export), renders prompts with the model's chat template, runs prefill and a KV-cached decode
//! loop on ONNX Runtime's CPU execution provider for one prompt or a batch, streams the decoded text and
//! times every phase; it also scores continuations of a context (log-likelihoods for multiple choice).
//!
//! One job per file: `ortlib` finds and loads the ONNX Runtime library, `model` reads the model folder,
//! `chat` renders chat templates, `session` drives the ONNX Runtime session and its KV cache, `sampling`
//! picks tokens from logits (greedy or seeded sampling), `detok` turns tokens into text as they arrive, and `generate` ties them into
//! the generation loop behind [`Engine`]. `providers` builds the session for an execution provider and
//! its options, `inspect` reads what precision a graph really is, `reasoning` splits a reasoning model's
//! thinking from its answer, and `adapter` loads a LoRA adapter file, checked by `crate::lora`, into the
//! ONNX Runtime values the session binds.

mod adapter;
mod chat;
mod detok;
mod generate;
pub mod inspect;
pub mod model;
mod ortlib;
pub mod providers;
mod reasoning;
mod sampling;
mod session;

use std::path::PathBuf;

pub use adapter::LoadedAdapter;
pub use chat::{ChatTemplate, PromptOptions, TemplateError, plain_text, with_system_prompt};
pub use detok::StreamDecoder;
pub use generate::{
    ContinuationScore, Engine, FinishReason, Generation, GenerationSettings, Timings, TokenTiming, cut_at_stop_strings,
};
pub use model::{IoNames, ModelError, ModelFolder, ModelFormat, ModelInfo};
pub use ortlib::{OrtLibError, OrtRuntime, load_runtime};
pub use providers::{ExecutionProvider, GraphOptimization, Mode, ProviderError, ProviderOptions, SessionRecord};
pub use reasoning::{MarkerSource, ReasoningError, ReasoningSplit, ThinkMarkers, ThinkSplit, split as split_reasoning};
pub use sampling::{LogitsProcessor, Sampling, SamplingError, check_repetition_penalty};
pub use session::{AdapterInputs, DecoderSession, FloatType, KvLayout, Logits, LogitsWanted, SessionError};

/// What [`Engine::load`] needs: the model folder and how to run it.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// A model folder: `runner import`, onnxruntime-genai builder or Optimum output.
    pub model_dir: PathBuf,
    /// The ONNX Runtime library to load (`--ort-lib`); when absent, `ORT_DYLIB_PATH`, then the installed one.
    pub ort_lib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads; when absent, ONNX Runtime's default (one per physical core).
    pub intra_threads: Option<usize>,
    /// Execution provider, graph optimisation and the rest of the session's settings.
    pub providers: ProviderOptions,
    /// Profile every operator: ONNX Runtime writes its Chrome-trace JSON to a file whose name starts with
    /// this prefix (see [`Engine::end_profiling`]). Profiling costs time, so it is off unless asked for.
    pub profiling: Option<PathBuf>,
}

/// Everything that can go wrong loading a model or generating with it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    OrtLib(#[from] OrtLibError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Adapter(#[from] crate::lora::LoraError),
    #[error("tokenizing the prompt failed: {0}")]
    Tokenize(String),
    #[error("decoding generated tokens failed: {0}")]
    Detokenize(String),
    #[error("the prompt is {prompt_tokens} tokens, which does not fit the model's context of {context_length} tokens")]
    PromptTooLong { prompt_tokens: usize, context_length: usize },
    #[error("the model returned no usable logits (empty or all NaN), so no token can be chosen")]
    NoLogits,
    #[error("the prompt is empty after tokenization")]
    EmptyPrompt,
}

impl From<ProviderError> for EngineError {
    /// A library that cannot be loaded is reported as such, whichever provider asked for it.
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::OrtLib(err) => EngineError::OrtLib(err),
            other => EngineError::Provider(other),
        }
    }
}

#[cfg(test)]
mod tests;
