//! The ONNX Runtime session of a decoder model and its KV cache.
//!
//! The I/O contract is the one `runner import` (and onnxruntime-genai's builder) emits: `input_ids` [B,S],
//! `attention_mask` [B,T], `past_key_values.{i}.key|value` [B,kv,P,hd] in; `logits` [B,S,V] and
//! `present.{i}.key|value` [B,kv,T,hd] out. The cache is GroupQueryAttention's shared past/present buffer:
//! one [1,kv,capacity,hd] tensor per past input is bound, through IO binding, both as that input and as the
//! matching present output, so ONNX Runtime appends each step's keys and values in place and nothing is
//! reallocated or copied per step. Only the last position's logits are read, as a slice of the output.

use std::path::Path;

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, Session};
use ort::value::{DynValue, Tensor};

use super::model::ModelInfo;

const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const LOGITS: &str = "logits";
/// The cache never starts smaller than this many positions, so short runs do not regrow it step by step.
const MIN_CAPACITY: usize = 64;

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
    binding: IoBinding,
    /// `past_key_values.{i}.key`, `past_key_values.{i}.value` for every layer, in that order.
    past_names: Vec<String>,
    /// `present.{i}.key`, `present.{i}.value`, matching `past_names`.
    present_names: Vec<String>,
    kv_heads: usize,
    head_size: usize,
    context_length: usize,
    /// One shared past/present buffer per entry of `past_names`, each [1, kv, capacity, hd].
    cache: Vec<Tensor<f32>>,
    capacity: usize,
    past_len: usize,
    cpu: MemoryInfo<'static>,
    /// The active LoRA adapter's tensors, bound as inputs (empty: the model's rank-0 defaults, the base model).
    /// Bound, not put on RunOptions: ONNX Runtime ignores RunOptions adapters when it runs an IO binding.
    adapter: AdapterInputs,
}

/// LoRA adapter tensors by graph input name, shared by every session that applies the adapter.
pub type AdapterInputs = std::sync::Arc<Vec<(String, Tensor<f32>)>>;

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

        let binding = session.create_binding().map_err(|err| load_error(err.to_string()))?;
        let cpu = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)
            .map_err(|err| load_error(err.to_string()))?;
        Ok(DecoderSession {
            session,
            binding,
            past_names,
            present_names,
            kv_heads: info.kv_heads,
            head_size: info.head_size,
            context_length: info.context_length,
            cache: Vec::new(),
            capacity: 0,
            past_len: 0,
            cpu,
            adapter: AdapterInputs::default(),
        })
    }

    /// Empties the KV cache for a new sequence that will hold up to `expected_len` tokens (it grows if needed).
    pub fn reset(&mut self, expected_len: usize) -> Result<(), SessionError> {
        self.past_len = 0;
        let wanted = expected_len.max(MIN_CAPACITY).min(self.context_length);
        if wanted > self.capacity || self.cache.is_empty() {
            self.allocate(wanted)?;
        }
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
        if total > self.capacity || self.cache.is_empty() {
            self.allocate(total.max(self.capacity * 2).min(self.context_length))?;
        }
        // Small owned tensors: IO binding would copy borrowed ones anyway.
        let input_ids = Tensor::from_array(([1, tokens.len()], tokens.to_vec())).map_err(run_error(phase))?;
        let mask = Tensor::from_array(([1, total], vec![1i64; total])).map_err(run_error(phase))?;
        self.binding.bind_input(INPUT_IDS, &input_ids).map_err(run_error(phase))?;
        self.binding.bind_input(ATTENTION_MASK, &mask).map_err(run_error(phase))?;
        // Rebound every run: a bound logits buffer would be reused, and its shape changes with `tokens`.
        self.binding.bind_output_to_device(LOGITS, &self.cpu).map_err(run_error(phase))?;

        let mut outputs = self.session.run_binding(&self.binding).map_err(run_error(phase))?;
        let logits =
            outputs.remove(LOGITS).ok_or_else(|| SessionError::Run { phase, message: "no logits output".into() })?;
        drop(outputs);
        self.past_len = total;

        let (shape, _) = logits.try_extract_tensor::<f32>().map_err(run_error(phase))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims.len() != 3 || dims[0] != 1 || dims[1] != tokens.len() as i64 || dims[2] <= 0 {
            return Err(SessionError::LogitsShape { shape: dims, tokens: tokens.len() });
        }
        let vocab = dims[2] as usize;
        Ok(LastLogits { value: logits, offset: (tokens.len() - 1) * vocab, vocab })
    }

    /// Applies `adapter` to every later forward pass; an empty one restores the base model.
    pub fn set_adapter(&mut self, adapter: AdapterInputs) -> Result<(), SessionError> {
        self.adapter = adapter;
        if !self.cache.is_empty() {
            self.bind_inputs("activating the adapter")?;
        }
        Ok(())
    }

    /// (Re)allocates the shared buffers with room for `capacity` positions, keeping what the cache holds, and
    /// binds them as both past inputs and present outputs.
    fn allocate(&mut self, capacity: usize) -> Result<(), SessionError> {
        let phase = "allocating the KV cache";
        let shape = [1, self.kv_heads, capacity, self.head_size];
        let mut cache = Vec::with_capacity(self.past_names.len());
        for index in 0..self.past_names.len() {
            let mut buffer = Tensor::<f32>::new(self.session.allocator(), shape).map_err(run_error(phase))?;
            if self.past_len > 0 {
                let (_, new) = buffer.extract_tensor_mut();
                let (_, old) = self.cache[index].extract_tensor();
                let row = self.past_len * self.head_size;
                for head in 0..self.kv_heads {
                    let from = head * self.capacity * self.head_size;
                    let to = head * capacity * self.head_size;
                    new[to..to + row].copy_from_slice(&old[from..from + row]);
                }
            }
            cache.push(buffer);
        }
        self.cache = cache;
        self.capacity = capacity;
        self.bind_inputs(phase)
    }

    /// Binds the cache buffers as past inputs and present outputs, and the adapter's tensors, afresh.
    fn bind_inputs(&mut self, phase: &'static str) -> Result<(), SessionError> {
        self.binding.clear();
        for ((past, present), buffer) in self.past_names.iter().zip(&self.present_names).zip(self.cache.iter_mut()) {
            self.binding.bind_input(past.as_str(), &*buffer).map_err(run_error(phase))?;
            self.binding.bind_output(present.as_str(), &mut *buffer).map_err(run_error(phase))?;
        }
        for (name, tensor) in self.adapter.iter() {
            self.binding.bind_input(name.as_str(), tensor).map_err(run_error(phase))?;
        }
        Ok(())
    }
}
