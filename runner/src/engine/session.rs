//! The ONNX Runtime session of a decoder model and its KV cache.
//!
//! The I/O contract is the one `runner import` (and onnxruntime-genai's builder) emits: `input_ids` [B,S],
//! `attention_mask` [B,T], `past_key_values.{i}.key|value` [B,kv,P,hd] in; `logits` [B,S,V] and
//! `present.{i}.key|value` [B,kv,T,hd] out. Each step's `present` tensors become the next step's `past`
//! by moving the values ONNX Runtime allocated (no copy on our side), and only the last position's logits
//! are read, as a slice of the output tensor.

use std::borrow::Cow;
use std::path::Path;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};

use super::model::ModelInfo;

const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const LOGITS: &str = "logits";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("ONNX Runtime could not load {path}: {message}", path = .path.display())]
    Load { path: std::path::PathBuf, message: String },
    #[error("{path} has no {kind} named `{name}`; runner needs the input/output layout `runner import` writes (found {kind}s: {found})", path = .path.display())]
    MissingTensor { path: std::path::PathBuf, kind: &'static str, name: String, found: String },
    #[error("ONNX Runtime failed during {phase}: {message}")]
    Run { phase: &'static str, message: String },
    #[error("`logits` has shape {shape:?}; expected [1, {tokens}, vocab]")]
    LogitsShape { shape: Vec<i64>, tokens: usize },
    #[error("the KV cache is full: {context_length} tokens is the model's context length")]
    ContextFull { context_length: usize },
}

fn run_error(phase: &'static str) -> impl FnOnce(ort::Error) -> SessionError {
    move |err| SessionError::Run { phase, message: err.to_string() }
}

/// A loaded decoder with a KV cache for one sequence (batch size 1).
pub struct DecoderSession {
    session: Session,
    /// `past_key_values.{i}.key`, `past_key_values.{i}.value` for every layer, in that order.
    past_names: Vec<String>,
    /// `present.{i}.key`, `present.{i}.value`, matching `past_names`.
    present_names: Vec<String>,
    kv_heads: usize,
    head_size: usize,
    context_length: usize,
    /// The cache: one tensor per entry of `past_names`, each [1, kv, past_len, hd].
    past: Vec<DynValue>,
    past_len: usize,
    /// All ones, as long as the context; each step passes a prefix of it.
    mask: Vec<i64>,
}

/// The last position's logits, borrowed from the `logits` output without copying it.
pub struct LastLogits {
    value: DynValue,
    offset: usize,
    vocab: usize,
}

impl LastLogits {
    pub fn as_slice(&self) -> &[f32] {
        // Shape and type were checked when this was built.
        match self.value.try_extract_tensor::<f32>() {
            Ok((_, data)) => &data[self.offset..self.offset + self.vocab],
            Err(_) => &[],
        }
    }
}

impl DecoderSession {
    pub fn new(
        environment: &ort::environment::Environment,
        model_path: &Path,
        info: &ModelInfo,
        intra_threads: Option<usize>,
    ) -> Result<DecoderSession, SessionError> {
        let load_error = |message: String| SessionError::Load { path: model_path.to_path_buf(), message };
        let mut builder = Session::builder(environment)
            .map_err(|err| load_error(err.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|err| load_error(err.to_string()))?;
        if let Some(threads) = intra_threads {
            builder = builder.with_intra_threads(threads).map_err(|err| load_error(err.to_string()))?;
        }
        let session = builder.commit_from_file(model_path).map_err(|err| load_error(err.to_string()))?;

        let past_names: Vec<String> = (0..info.layers)
            .flat_map(|i| [format!("past_key_values.{i}.key"), format!("past_key_values.{i}.value")])
            .collect();
        let present_names: Vec<String> =
            (0..info.layers).flat_map(|i| [format!("present.{i}.key"), format!("present.{i}.value")]).collect();
        let inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let check = |kind: &'static str, have: &[&str], name: &str| {
            if have.contains(&name) {
                Ok(())
            } else {
                Err(SessionError::MissingTensor {
                    path: model_path.to_path_buf(),
                    kind,
                    name: name.to_string(),
                    found: have.join(", "),
                })
            }
        };
        for name in [INPUT_IDS, ATTENTION_MASK].into_iter().chain(past_names.iter().map(String::as_str)) {
            check("input", &inputs, name)?;
        }
        for name in [LOGITS].into_iter().chain(present_names.iter().map(String::as_str)) {
            check("output", &outputs, name)?;
        }

        let mut decoder = DecoderSession {
            session,
            past_names,
            present_names,
            kv_heads: info.kv_heads,
            head_size: info.head_size,
            context_length: info.context_length,
            past: Vec::new(),
            past_len: 0,
            mask: vec![1; info.context_length],
        };
        decoder.reset()?;
        Ok(decoder)
    }

    /// Empties the KV cache for a new sequence.
    pub fn reset(&mut self) -> Result<(), SessionError> {
        self.past.clear();
        for _ in &self.past_names {
            let empty = Tensor::<f32>::from_array(([1, self.kv_heads, 0, self.head_size], Vec::<f32>::new()))
                .map_err(run_error("creating the empty KV cache"))?;
            self.past.push(empty.into_dyn());
        }
        self.past_len = 0;
        Ok(())
    }

    /// Tokens the cache holds.
    pub fn past_len(&self) -> usize {
        self.past_len
    }

    /// Runs `tokens` after what the cache holds, appends them to the cache and returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[i64], phase: &'static str) -> Result<LastLogits, SessionError> {
        let total = self.past_len + tokens.len();
        if total > self.context_length {
            return Err(SessionError::ContextFull { context_length: self.context_length });
        }
        let input_ids = TensorRef::from_array_view(([1, tokens.len()], tokens)).map_err(run_error(phase))?;
        let mask = TensorRef::from_array_view(([1, total], &self.mask[..total])).map_err(run_error(phase))?;
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(2 + self.past.len());
        inputs.push((Cow::Borrowed(INPUT_IDS), input_ids.into()));
        inputs.push((Cow::Borrowed(ATTENTION_MASK), mask.into()));
        for (name, value) in self.past_names.iter().zip(&self.past) {
            inputs.push((Cow::Borrowed(name.as_str()), value.into()));
        }
        let mut outputs = self.session.run(inputs).map_err(run_error(phase))?;

        let logits =
            outputs.remove(LOGITS).ok_or_else(|| SessionError::Run { phase, message: "no logits output".into() })?;
        let mut presents = Vec::with_capacity(self.present_names.len());
        for name in &self.present_names {
            presents.push(
                outputs
                    .remove(name.as_str())
                    .ok_or_else(|| SessionError::Run { phase, message: format!("no {name} output") })?,
            );
        }
        drop(outputs);
        self.past = presents;
        self.past_len = total;

        let (shape, _) = logits.try_extract_tensor::<f32>().map_err(run_error(phase))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims.len() != 3 || dims[0] != 1 || dims[1] != tokens.len() as i64 || dims[2] <= 0 {
            return Err(SessionError::LogitsShape { shape: dims, tokens: tokens.len() });
        }
        let vocab = dims[2] as usize;
        Ok(LastLogits { value: logits, offset: (tokens.len() - 1) * vocab, vocab })
    }
}
