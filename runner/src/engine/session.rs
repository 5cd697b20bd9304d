//! The ONNX Runtime session of a decoder model and its KV cache.
//!
//! The I/O contract is the one `runner import` (and onnxruntime-genai's builder) emits: `input_ids` [B,S],
//! `attention_mask` [B,T], `past_key_values.{i}.key|value` [B,kv,P,hd] in; `logits` [B,S,V] and
//! `present.{i}.key|value` [B,kv,T,hd] out. The cache is GroupQueryAttention's shared past/present buffer:
//! one [1,kv,capacity,hd] tensor per past input is bound, through IO binding, both as that input and as the
//! matching present output, so ONNX Runtime appends each step's keys and values in place and nothing is
//! reallocated or copied per step. Only the last position's logits are read, as a slice of the output.
//! The cache and logits are float32 or float16, as the graph declares them (float16 logits are converted
//! to float32 for sampling).

use std::path::Path;

use half::f16;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::PrimitiveTensorElementType;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::model::ModelInfo;
use super::providers::{self, ProviderError, ProviderOptions, SessionRecord};

const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const LOGITS: &str = "logits";
/// The cache never starts smaller than this many positions, so short runs do not regrow it step by step.
const MIN_CAPACITY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{path}: `{name}` is {found}; runner drives float32 or float16 KV caches and logits", path = .path.display())]
    FloatType { path: std::path::PathBuf, name: String, found: String },
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

/// The shared past/present buffers, in the graph's float type.
enum KvCache {
    F32(Vec<Tensor<f32>>),
    F16(Vec<Tensor<f16>>),
}

/// A loaded decoder with a KV cache for one sequence (batch size 1).
pub struct DecoderSession {
    session: Session,
    record: SessionRecord,
    binding: IoBinding,
    /// `past_key_values.{i}.key`, `past_key_values.{i}.value` for every layer, in that order.
    past_names: Vec<String>,
    /// `present.{i}.key`, `present.{i}.value`, matching `past_names`.
    present_names: Vec<String>,
    kv_heads: usize,
    head_size: usize,
    context_length: usize,
    /// One shared past/present buffer per entry of `past_names`, each [1, kv, capacity, hd].
    cache: KvCache,
    capacity: usize,
    past_len: usize,
    cpu: MemoryInfo<'static>,
    /// The active LoRA adapter's tensors, bound as inputs (empty: the model's rank-0 defaults, the base model).
    /// Bound, not put on RunOptions: ONNX Runtime ignores RunOptions adapters when it runs an IO binding.
    adapter: AdapterInputs,
}

/// LoRA adapter tensors by graph input name, shared by every session that applies the adapter.
pub type AdapterInputs = std::sync::Arc<Vec<(String, Tensor<f32>)>>;

/// The last position's logits, borrowed from a float32 `logits` output without copying it, or converted
/// from a float16 one.
pub struct LastLogits {
    value: DynValue,
    offset: usize,
    vocab: usize,
    converted: Option<Vec<f32>>,
}

impl LastLogits {
    pub fn as_slice(&self) -> &[f32] {
        if let Some(converted) = &self.converted {
            return converted;
        }
        // Shape and type were checked when this was built.
        match self.value.try_extract_tensor::<f32>() {
            Ok((_, data)) => &data[self.offset..self.offset + self.vocab],
            Err(_) => &[],
        }
    }
}

fn float_type(dtype: &ValueType) -> Option<TensorElementType> {
    match dtype {
        ValueType::Tensor { ty: ty @ (TensorElementType::Float32 | TensorElementType::Float16), .. } => Some(*ty),
        _ => None,
    }
}

impl DecoderSession {
    pub fn new(
        environment: &ort::environment::Environment,
        model_path: &Path,
        info: &ModelInfo,
        intra_threads: Option<usize>,
        providers: &ProviderOptions,
        profiling: Option<&Path>,
    ) -> Result<DecoderSession, SessionError> {
        let load_error = |message: String| SessionError::Load { path: model_path.to_path_buf(), message };
        let providers::BuiltSession { session, record } =
            providers::build_session(environment, model_path, intra_threads, providers, profiling)?;

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
        let past_type = session.inputs().iter().find(|o| o.name() == past_names[0]).map(|o| o.dtype().clone());
        let cache = match past_type.as_ref().and_then(float_type) {
            Some(TensorElementType::Float16) => KvCache::F16(Vec::new()),
            Some(_) => KvCache::F32(Vec::new()),
            None => {
                return Err(SessionError::FloatType {
                    path: model_path.to_path_buf(),
                    name: past_names[0].clone(),
                    found: past_type.map_or("missing".into(), |t| t.to_string()),
                });
            }
        };

        let binding = session.create_binding().map_err(|err| load_error(err.to_string()))?;
        let cpu = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)
            .map_err(|err| load_error(err.to_string()))?;
        Ok(DecoderSession {
            session,
            record,
            binding,
            past_names,
            present_names,
            kv_heads: info.kv_heads,
            head_size: info.head_size,
            context_length: info.context_length,
            cache,
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
        if wanted > self.capacity || self.cache_is_empty() {
            self.allocate(wanted)?;
        }
        Ok(())
    }

    /// How the session was built: provider, options, node assignment.
    pub fn record(&self) -> &SessionRecord {
        &self.record
    }

    /// Stops ONNX Runtime's profiling and writes its file; returns the file's name and when profiling started
    /// (nanoseconds on ONNX Runtime's clock, which its events' `ts` count from).
    pub fn end_profiling(&mut self) -> Result<(String, u64), SessionError> {
        let phase = "ending profiling";
        let start_ns = self.session.profiling_start_ns().map_err(run_error(phase))?;
        let file = self.session.end_profiling().map_err(run_error(phase))?;
        Ok((file, start_ns))
    }

    fn cache_is_empty(&self) -> bool {
        match &self.cache {
            KvCache::F32(c) => c.is_empty(),
            KvCache::F16(c) => c.is_empty(),
        }
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
        if total > self.capacity || self.cache_is_empty() {
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

        let (dims, half): (Vec<i64>, Option<&[f16]>) = match logits.try_extract_tensor::<f32>() {
            Ok((shape, _)) => (shape.iter().copied().collect(), None),
            Err(_) => {
                let (shape, data) = logits.try_extract_tensor::<f16>().map_err(run_error(phase))?;
                (shape.iter().copied().collect(), Some(data))
            }
        };
        if dims.len() != 3 || dims[0] != 1 || dims[1] != tokens.len() as i64 || dims[2] <= 0 {
            return Err(SessionError::LogitsShape { shape: dims, tokens: tokens.len() });
        }
        let vocab = dims[2] as usize;
        let offset = (tokens.len() - 1) * vocab;
        let converted = half.map(|data| data[offset..offset + vocab].iter().map(|v| v.to_f32()).collect());
        Ok(LastLogits { value: logits, offset, vocab, converted })
    }

    /// Applies `adapter` to every later forward pass; an empty one restores the base model.
    pub fn set_adapter(&mut self, adapter: AdapterInputs) -> Result<(), SessionError> {
        self.adapter = adapter;
        if !self.cache_is_empty() {
            self.bind_inputs("activating the adapter")?;
        }
        Ok(())
    }

    /// (Re)allocates the shared buffers with room for `capacity` positions, keeping what the cache holds, and
    /// binds them as both past inputs and present outputs.
    fn allocate(&mut self, capacity: usize) -> Result<(), SessionError> {
        let phase = "allocating the KV cache";
        self.binding.clear();
        let cache = match &self.cache {
            KvCache::F32(old) => KvCache::F32(self.regrow(old, capacity).map_err(run_error(phase))?),
            KvCache::F16(old) => KvCache::F16(self.regrow(old, capacity).map_err(run_error(phase))?),
        };
        self.cache = cache;
        self.capacity = capacity;
        self.bind_inputs(phase)
    }

    /// New buffers of `capacity` positions holding what `old` holds.
    fn regrow<T: PrimitiveTensorElementType + Copy + std::fmt::Debug>(
        &self,
        old: &[Tensor<T>],
        capacity: usize,
    ) -> Result<Vec<Tensor<T>>, ort::Error> {
        let shape = [1, self.kv_heads, capacity, self.head_size];
        let mut cache = Vec::with_capacity(self.past_names.len());
        for index in 0..self.past_names.len() {
            let mut buffer = Tensor::<T>::new(self.session.allocator(), shape)?;
            if self.past_len > 0 {
                let (_, new) = buffer.extract_tensor_mut();
                let (_, old) = old[index].extract_tensor();
                let row = self.past_len * self.head_size;
                for head in 0..self.kv_heads {
                    let from = head * self.capacity * self.head_size;
                    let to = head * capacity * self.head_size;
                    new[to..to + row].copy_from_slice(&old[from..from + row]);
                }
            }
            cache.push(buffer);
        }
        Ok(cache)
    }

    /// Binds the cache buffers as past inputs and present outputs, and the adapter's tensors, afresh.
    fn bind_inputs(&mut self, phase: &'static str) -> Result<(), SessionError> {
        self.binding.clear();
        match &mut self.cache {
            KvCache::F32(buffers) => bind_cache(&mut self.binding, &self.past_names, &self.present_names, buffers),
            KvCache::F16(buffers) => bind_cache(&mut self.binding, &self.past_names, &self.present_names, buffers),
        }
        .map_err(run_error(phase))?;
        for (name, tensor) in self.adapter.iter() {
            self.binding.bind_input(name.as_str(), tensor).map_err(run_error(phase))?;
        }
        Ok(())
    }
}

/// Binds each buffer as its layer's past input and present output.
fn bind_cache<T: PrimitiveTensorElementType + std::fmt::Debug>(
    binding: &mut IoBinding,
    past_names: &[String],
    present_names: &[String],
    buffers: &mut [Tensor<T>],
) -> Result<(), ort::Error> {
    for ((past, present), buffer) in past_names.iter().zip(present_names).zip(buffers.iter_mut()) {
        binding.bind_input(past.as_str(), &*buffer)?;
        binding.bind_output(present.as_str(), &mut *buffer)?;
    }
    Ok(())
}
