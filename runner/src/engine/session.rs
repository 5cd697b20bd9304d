//! The ONNX Runtime session of a decoder model and its KV cache, for one or more sequences at once.
//!
//! Names come from the model folder's config ([`IoNames`]); what the session checks and detects itself is
//! the graph: every input it must feed exists (and nothing else is required), past/present exist for every
//! layer, head counts and head size agree with fixed graph dims, and the KV cache and logits are float32
//! or float16 (fp16 logits are widened to f32 for sampling, row by row, only when read).
//!
//! Two cache layouts, told apart by the graph's operators:
//! - **Shared buffer** (GroupQueryAttention, as `runner import` and onnxruntime-genai's builder emit): one
//!   [B, kv, capacity, hd] tensor per past input is bound, through IO binding, both as that input and as the
//!   matching present output, so ONNX Runtime appends keys and values in place: nothing is copied per step.
//!   GroupQueryAttention reads each row's length from the attention mask (`seqlens_k = sum(mask) - 1`) and
//!   keeps a row's tokens at positions `0..len`, so a batch's prompts are **right**-padded.
//! - **Concat** (Optimum exports, plain attention): each step's present is a new [B, kv, past+S, hd] tensor;
//!   it is bound as the next step's past as it is (ownership moves, no copy). Prompts are **left**-padded,
//!   the mask zeroes the pads, and `position_ids` (when the graph takes them) count only real tokens.
//!
//! Graphs from `runner import` also take an optional `logits_from` input (an initializer that defaults to 0):
//! the language-model head runs only on chunk positions from it on. Generation wants the logits after each
//! row's last token only, so a prefill of P tokens runs the head once per row instead of P times (a
//! [P, hidden] x [hidden, vocab] product and a [P, vocab] output saved); scoring a continuation still asks
//! for every position.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use half::f16;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, NoSelectedOutputs, RunOptions, Session};
use ort::value::{
    DynTensor, DynValue, PrimitiveTensorElementType, Tensor, TensorElementType, TensorValueTypeMarker, Value, ValueType,
};

use super::model::{IoNames, ModelInfo};
use super::providers::{self, ProviderError, ProviderOptions, SessionRecord};
use crate::model_folder::{CONFIG_FILE, LOGITS_FROM_INPUT, layer_name};

/// The cache never starts smaller than this many positions, so short runs do not regrow it step by step.
const MIN_CAPACITY: usize = 64;
/// Rows of a first chunk whose lengths differ by this many tokens or more run in two steps
/// ([`DecoderSession::extend_ragged_in_two`]): the one-token second step costs about what the head saves on
/// a few positions of every row.
const RAGGED_SPLIT_MIN_SPREAD: usize = 4;
/// A run over at least this many tokens (rows x chunk) gives its working memory back to the system when it
/// ends. ONNX Runtime's CPU arena keeps every region it ever grew, and a batched prefill's attention grows
/// with the square of its length: 224 MATH-500 problems at batch 16 held 2.68 GiB after the longest prefill,
/// where each batch alone needs 1.2-1.6, and the reported peak then told the run's history, not its need.
/// Small runs (decode steps, one question's context) keep the arena: giving it back would cost every step.
const SHRINK_ARENA_MIN_TOKENS: usize = 2048;
/// The operator whose presence means the graph shares past and present buffers.
const SHARED_BUFFER_OP: &str = "com.microsoft:GroupQueryAttention";

/// Which chunk positions a run needs logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsWanted {
    /// After each row's last real token: what generation samples from.
    Last,
    /// After every token of the chunk: what scoring a continuation reads.
    Every,
    /// After every token from this chunk position on: a context's last token and a continuation run in
    /// the same pass.
    From(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("ONNX Runtime could not load {path}: {message}{}", external_data_hint(path, message), path = .path.display())]
    Load { path: PathBuf, message: String },
    #[error("{path} has no {kind} named `{name}` (named by {source_of_name}; the graph's {kind}s: {found})", path = .path.display())]
    MissingTensor { path: PathBuf, kind: &'static str, name: String, source_of_name: String, found: String },
    #[error("{path}: {problem}", path = .path.display())]
    Graph { path: PathBuf, problem: String },
    #[error("ONNX Runtime failed during {phase}: {message}")]
    Run { phase: &'static str, message: String },
    #[error("`{name}` has shape {shape:?}; expected [{batch}, {tokens}, vocab]")]
    LogitsShape { name: String, shape: Vec<i64>, batch: usize, tokens: usize },
    #[error("the KV cache is full: {context_length} tokens is the model's context length")]
    ContextFull { context_length: usize },
    #[error("internal: {0}")]
    Usage(&'static str),
}

/// ONNX Runtime names only the graph when an external weights file is short; name the file that is.
pub(crate) fn external_data_hint(model: &Path, message: &str) -> String {
    if !message.contains("External") && !message.contains("external data") {
        return String::new();
    }
    let Some(dir) = model.parent() else { return String::new() };
    let mut data_files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".data") || name.ends_with("_data"))
        .collect();
    data_files.sort();
    if data_files.is_empty() {
        return " (the graph's external weights file is missing)".to_string();
    }
    format!(
        " ({} in {} is shorter than the graph says: truncated, or from another export)",
        data_files.join(", "),
        dir.display()
    )
}

fn run_error(phase: &'static str) -> impl Fn(ort::Error) -> SessionError {
    move |err| SessionError::Run { phase, message: err.to_string() }
}

/// How the graph keeps its KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvLayout {
    SharedBuffer,
    Concat,
}

impl KvLayout {
    pub fn name(self) -> &'static str {
        match self {
            KvLayout::SharedBuffer => "shared_buffer",
            KvLayout::Concat => "concat",
        }
    }
}

/// The float type of the KV cache or the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
}

impl FloatType {
    fn from_ort(ty: TensorElementType) -> Option<FloatType> {
        match ty {
            TensorElementType::Float32 => Some(FloatType::F32),
            TensorElementType::Float16 => Some(FloatType::F16),
            _ => None,
        }
    }

    fn ort(self) -> TensorElementType {
        match self {
            FloatType::F32 => TensorElementType::Float32,
            FloatType::F16 => TensorElementType::Float16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FloatType::F32 => "float32",
            FloatType::F16 => "float16",
        }
    }
}

/// Logits of one run: [batch, tokens, vocab], read row by row without copying f32 data.
pub struct Logits {
    value: DynValue,
    dtype: FloatType,
    tokens: usize,
    vocab: usize,
    /// The chunk position of the first position computed (the head may skip the ones before).
    from: usize,
    /// Per row, the chunk position of its last real token.
    last: Vec<usize>,
}

impl Logits {
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// How many chunk positions per row these logits cover.
    pub fn positions(&self) -> usize {
        self.tokens
    }

    /// Logits of `row` after chunk position `position`, which must be one the run computed (every position
    /// unless it asked for [`LogitsWanted::Last`] or [`LogitsWanted::From`] on a graph that trims; f16
    /// widened to f32).
    pub fn at(&self, row: usize, position: usize) -> Cow<'_, [f32]> {
        let Some(computed) = position.checked_sub(self.from).filter(|&p| p < self.tokens) else {
            return Cow::Borrowed(&[]);
        };
        let start = (row * self.tokens + computed) * self.vocab;
        // Shape and type were checked when this was built.
        match self.dtype {
            FloatType::F32 => match self.value.try_extract_tensor::<f32>() {
                Ok((_, data)) => Cow::Borrowed(&data[start..start + self.vocab]),
                Err(_) => Cow::Borrowed(&[]),
            },
            FloatType::F16 => match self.value.try_extract_tensor::<f16>() {
                Ok((_, data)) => Cow::Owned(data[start..start + self.vocab].iter().map(|v| v.to_f32()).collect()),
                Err(_) => Cow::Borrowed(&[]),
            },
        }
    }

    /// Logits after the last real token of `row`: what the next token is sampled from.
    pub fn last(&self, row: usize) -> Cow<'_, [f32]> {
        self.at(row, self.last[row])
    }
}

/// A loaded decoder with a KV cache for a batch of sequences.
pub struct DecoderSession {
    session: Session,
    record: SessionRecord,
    binding: IoBinding,
    path: PathBuf,
    io: IoNames,
    feeds_position_ids: bool,
    /// Whether the graph takes [`LOGITS_FROM_INPUT`].
    trims_logits: bool,
    /// The value [`LOGITS_FROM_INPUT`] is bound to (`None` after the binding was cleared).
    logits_from_bound: Option<usize>,
    /// The past inputs (key, value per layer) and the matching present outputs.
    past_names: Vec<String>,
    present_names: Vec<String>,
    pub layout: KvLayout,
    pub kv_type: FloatType,
    pub logits_type: FloatType,
    kv_heads: usize,
    head_size: usize,
    context_length: usize,
    pad_token: i64,
    batch: usize,
    /// Real tokens each row holds in the cache.
    row_lens: Vec<usize>,
    /// The tokens a one-row cache holds, in order (kept only for one row): what a next context may share.
    held: Vec<i64>,
    /// Positions the cache holds per row, pads included (concat: every row's mask width).
    width: usize,
    /// Concat: the attention mask over the cache, `batch` rows of `width`.
    mask: Vec<i64>,
    /// The largest window of the graph's window-sized KV caches (0: none); a shared buffer is never smaller.
    local_window: usize,
    /// Shared buffer: one [B, kv, capacity, hd] tensor per past input.
    cache: Vec<DynTensor>,
    capacity: usize,
    /// Concat: the previous step's present outputs, the next step's past inputs.
    past: Vec<DynValue>,
    cpu: MemoryInfo<'static>,
    /// Run options that shrink the CPU arena at the end of the run ([`SHRINK_ARENA_MIN_TOKENS`]).
    shrink_arena: RunOptions<NoSelectedOutputs>,
    /// The active LoRA adapter's tensors, bound as inputs (empty: the model's rank-0 defaults, the base model).
    /// Bound, not put on RunOptions: ONNX Runtime ignores RunOptions adapters when it runs an IO binding.
    adapter: AdapterInputs,
    /// How long the last forward pass spent inside ONNX Runtime's `run`: the rest of a step is the harness's.
    last_run: Duration,
}

/// LoRA adapter tensors by graph input name, shared by every session that applies the adapter.
pub type AdapterInputs = std::sync::Arc<Vec<(String, Tensor<f32>)>>;

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
        let graph_error = |problem: String| SessionError::Graph { path: model_path.to_path_buf(), problem };
        let scan = crate::onnx::scan::scan_graph(model_path).map_err(|err| load_error(err.to_string()))?;
        let ops = &scan.ops;
        let io = info.io.clone();
        // The probe run's past key/values: one row, the configuration's heads and head size, and no past
        // positions, or as many as a window-sized cache must hold.
        let probe_capacity = scan.window_cache.unwrap_or(0);
        let probe_shapes = (0..info.layers)
            .flat_map(|i| [layer_name(&io.past_key, i), layer_name(&io.past_value, i)])
            .map(|name| (name, vec![1, info.kv_heads, probe_capacity, info.head_size]))
            .collect();
        let providers::BuiltSession { session, record } =
            providers::build_session(environment, model_path, intra_threads, providers, profiling, &probe_shapes)?;

        let source_of_name = match info.format {
            super::model::ModelFormat::Optimum => "Optimum's naming".to_string(),
            _ => format!("{}", info.dir.join(CONFIG_FILE).display()),
        };
        let past_names: Vec<String> =
            (0..info.layers).flat_map(|i| [layer_name(&io.past_key, i), layer_name(&io.past_value, i)]).collect();
        let present_names: Vec<String> =
            (0..info.layers).flat_map(|i| [layer_name(&io.present_key, i), layer_name(&io.present_value, i)]).collect();
        let find = |kind: &'static str, name: &str| -> Result<ValueType, SessionError> {
            let outlets = if kind == "input" { session.inputs() } else { session.outputs() };
            outlets.iter().find(|o| o.name() == name).map(|o| o.dtype().clone()).ok_or_else(|| {
                SessionError::MissingTensor {
                    path: model_path.to_path_buf(),
                    kind,
                    name: name.to_string(),
                    source_of_name: source_of_name.clone(),
                    found: outlets.iter().map(|o| o.name()).collect::<Vec<_>>().join(", "),
                }
            })
        };
        for name in [&io.input_ids, &io.attention_mask] {
            let ty = find("input", name)?;
            if ty.tensor_type() != Some(TensorElementType::Int64) {
                return Err(graph_error(format!("input `{name}` is {ty:?}; runner feeds int64 token ids and masks")));
            }
        }
        let feeds_position_ids = session.inputs().iter().any(|o| o.name() == io.position_ids);
        let trims_logits = session.overridable_initializers().iter().any(|i| i.name() == LOGITS_FROM_INPUT);
        // An input runner would not feed makes every run fail: name it now.
        let known: Vec<&str> = [io.input_ids.as_str(), io.attention_mask.as_str(), io.position_ids.as_str()]
            .into_iter()
            .chain(past_names.iter().map(String::as_str))
            .collect();
        if let Some(other) = session.inputs().iter().find(|o| !known.contains(&o.name())) {
            return Err(graph_error(format!(
                "input `{}` is not one runner can feed (it feeds {}, {}, {} and the past key/values of {} layers)",
                other.name(),
                io.input_ids,
                io.attention_mask,
                io.position_ids,
                info.layers
            )));
        }

        let mut kv_type = None;
        for (index, name) in past_names.iter().enumerate() {
            let ty = find("input", name)?;
            find("output", &present_names[index])?;
            let element = ty.tensor_type().and_then(FloatType::from_ort).ok_or_else(|| {
                graph_error(format!("past input `{name}` is {ty:?}; runner drives float32 or float16 KV caches"))
            })?;
            if *kv_type.get_or_insert(element) != element {
                return Err(graph_error(format!(
                    "past input `{name}` is {}, unlike the first layer's",
                    element.name()
                )));
            }
            let dims: Vec<i64> = ty.tensor_shape().map(|s| s.iter().copied().collect()).unwrap_or_default();
            let expect = [(1, info.kv_heads, "num_key_value_heads"), (3, info.head_size, "head size")];
            if dims.len() != 4 {
                return Err(graph_error(format!(
                    "past input `{name}` has rank {}; expected [batch, kv_heads, past, head_size]",
                    dims.len()
                )));
            }
            for (axis, want, what) in expect {
                if dims[axis] > 0 && dims[axis] as usize != want {
                    return Err(graph_error(format!(
                        "past input `{name}` has {} at axis {axis}, but the config's {what} is {want}",
                        dims[axis]
                    )));
                }
            }
        }
        let kv_type = kv_type.ok_or_else(|| graph_error("the config declares no layers".into()))?;
        let logits_ty = find("output", &io.logits)?;
        let logits_type = logits_ty.tensor_type().and_then(FloatType::from_ort).ok_or_else(|| {
            graph_error(format!("output `{}` is {logits_ty:?}; expected float32 or float16", io.logits))
        })?;
        let layout = if ops.contains(SHARED_BUFFER_OP) { KvLayout::SharedBuffer } else { KvLayout::Concat };

        let binding = session.create_binding().map_err(|err| load_error(err.to_string()))?;
        let cpu = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)
            .map_err(|err| load_error(err.to_string()))?;
        let mut shrink_arena = RunOptions::new().map_err(|err| load_error(err.to_string()))?;
        shrink_arena.set("memory.enable_memory_arena_shrinkage", "cpu:0").map_err(|err| load_error(err.to_string()))?;
        let pad_token = i64::from(info.pad_token_id.or(info.eos_token_ids.first().copied()).unwrap_or(0));
        Ok(DecoderSession {
            session,
            binding,
            path: model_path.to_path_buf(),
            io,
            feeds_position_ids,
            trims_logits,
            logits_from_bound: None,
            past_names,
            present_names,
            layout,
            kv_type,
            logits_type,
            kv_heads: info.kv_heads,
            head_size: info.head_size,
            context_length: info.context_length,
            pad_token,
            batch: 0,
            row_lens: Vec::new(),
            held: Vec::new(),
            width: 0,
            mask: Vec::new(),
            cache: Vec::new(),
            local_window: scan.window_cache.unwrap_or(0),
            capacity: 0,
            past: Vec::new(),
            cpu,
            shrink_arena,
            adapter: AdapterInputs::default(),
            last_run: Duration::ZERO,
            record,
        })
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

    /// Applies `adapter` to every later forward pass; an empty one restores the base model.
    pub fn set_adapter(&mut self, adapter: AdapterInputs) -> Result<(), SessionError> {
        self.adapter = adapter;
        self.bind_inputs("activating the adapter")
    }

    /// Binds the shared cache buffers (if any) as past inputs and present outputs, and the adapter's tensors,
    /// afresh. Everything else is bound per run.
    fn bind_inputs(&mut self, phase: &'static str) -> Result<(), SessionError> {
        self.binding.clear();
        self.logits_from_bound = None;
        if self.layout == KvLayout::SharedBuffer {
            for ((past, present), buffer) in self.past_names.iter().zip(&self.present_names).zip(self.cache.iter_mut())
            {
                self.binding.bind_input(past.as_str(), &*buffer).map_err(run_error(phase))?;
                self.binding.bind_output(present.as_str(), &mut *buffer).map_err(run_error(phase))?;
            }
        }
        for (name, tensor) in self.adapter.iter() {
            self.binding.bind_input(name.as_str(), tensor).map_err(run_error(phase))?;
        }
        Ok(())
    }

    /// Whether some attention keeps its KV in a window-sized cache: ONNX Runtime refuses left-padded rows
    /// there ("seqlens_k[0] = 12 is too small for sequence_length 26"), so batches hold equal lengths only.
    pub fn has_window_cache(&self) -> bool {
        self.local_window > 0
    }

    /// Whether the graph takes position ids (models without them cannot tell a left pad from a token).
    pub fn feeds_position_ids(&self) -> bool {
        self.feeds_position_ids
    }

    /// Empties the KV cache for `batch` new sequences of up to `expected_len` tokens each (it grows if needed).
    pub fn reset_batch(&mut self, batch: usize, expected_len: usize) -> Result<(), SessionError> {
        if batch == 0 {
            return Err(SessionError::Usage("a batch needs at least one sequence"));
        }
        let resized = batch != self.batch;
        self.batch = batch;
        self.row_lens = vec![0; batch];
        self.held.clear();
        self.width = 0;
        self.mask.clear();
        match self.layout {
            KvLayout::SharedBuffer => {
                // A window-sized cache needs room for its whole window, whatever the run needs.
                let wanted = expected_len.max(MIN_CAPACITY).min(self.context_length).max(self.local_window);
                if resized || wanted > self.capacity || self.cache.is_empty() {
                    self.allocate(wanted)?;
                }
            }
            KvLayout::Concat => {
                let phase = "allocating the KV cache";
                self.past = (0..self.past_names.len())
                    .map(|_| empty_kv(self.kv_type, [batch, self.kv_heads, 0, self.head_size]))
                    .collect::<Result<_, _>>()
                    .map_err(run_error(phase))?;
            }
        }
        Ok(())
    }

    /// [`DecoderSession::reset_batch`] for one sequence.
    pub fn reset(&mut self, expected_len: usize) -> Result<(), SessionError> {
        self.reset_batch(1, expected_len)
    }

    /// Forgets what rows were given after `lens[b]` tokens (a shared buffer only: the positions after are
    /// simply written over). How a batch of continuations is scored one position at a time on graphs that
    /// take no multi-token step on a batch with a past (GroupQueryAttention).
    pub fn rewind(&mut self, lens: &[usize]) -> Result<(), SessionError> {
        if self.layout != KvLayout::SharedBuffer {
            return Err(SessionError::Usage("only a shared-buffer cache can be rewound"));
        }
        if lens.len() != self.batch || lens.iter().zip(&self.row_lens).any(|(new, old)| new > old) {
            return Err(SessionError::Usage("rewind needs one length per row, none longer than the row"));
        }
        self.row_lens = lens.to_vec();
        self.width = self.past_len();
        if let [len] = lens {
            self.held.truncate(*len);
        }
        Ok(())
    }

    /// Keeps the rows `keep` marks, in order, and drops the others with their cached keys and values: a batch
    /// whose rows finish at different times then runs only the rows still generating (static batching would
    /// feed a finished row pads until the batch's longest row ends: on MATH-500 at batch 16, where outputs run
    /// from a few tokens to 1,024, 47 % of the rows' steps were pads). Each kept row's real positions are
    /// copied into a cache sized for the remaining rows; the copy costs about one decode step's KV reads.
    pub fn retain_rows(&mut self, keep: &[bool]) -> Result<(), SessionError> {
        if keep.len() != self.batch {
            return Err(SessionError::Usage("retain_rows needs one flag per row"));
        }
        let kept: Vec<usize> = keep.iter().enumerate().filter_map(|(row, &k)| k.then_some(row)).collect();
        if kept.is_empty() {
            return Err(SessionError::Usage("a batch keeps at least one row"));
        }
        if kept.len() == self.batch {
            return Ok(());
        }
        let phase = "dropping finished rows";
        let lens: Vec<usize> = kept.iter().map(|&row| self.row_lens[row]).collect();
        match self.layout {
            KvLayout::SharedBuffer => {
                // A shared buffer keeps its capacity; only each row's real positions are worth copying.
                let layout = RowLayout { heads: self.kv_heads, positions: self.capacity, head_size: self.head_size };
                let cache = self.cache.iter().map(|old| self.gathered(old, &kept, &lens, layout, layout));
                self.cache = cache.collect::<Result<_, _>>().map_err(run_error(phase))?;
            }
            KvLayout::Concat => {
                // Every position of a kept row stays: its pads are where its mask says they are.
                let width = self.width;
                let layout = RowLayout { heads: self.kv_heads, positions: width, head_size: self.head_size };
                let whole = vec![width; kept.len()];
                let past =
                    self.past.iter().map(|old| Ok(self.gathered(old, &kept, &whole, layout, layout)?.into_dyn()));
                self.past = past.collect::<Result<_, ort::Error>>().map_err(run_error(phase))?;
                self.mask =
                    kept.iter().flat_map(|&row| self.mask[row * width..(row + 1) * width].iter().copied()).collect();
            }
        }
        self.batch = kept.len();
        self.row_lens = lens;
        // `held` follows one row from its first token; rows that end up alone here were never followed.
        self.held.clear();
        if self.layout == KvLayout::SharedBuffer {
            self.width = self.past_len();
            self.bind_inputs(phase)?;
        }
        Ok(())
    }

    /// A new KV tensor laid out as `to` holding batch rows `rows` of `old` (laid out as `from`), the first
    /// `lens[i]` positions of each: the cache regrown, or shrunk to the rows still generating.
    fn gathered<Old: TensorValueTypeMarker + ?Sized>(
        &self,
        old: &Value<Old>,
        rows: &[usize],
        lens: &[usize],
        from: RowLayout,
        to: RowLayout,
    ) -> Result<DynTensor, ort::Error> {
        let mut new = DynTensor::new(self.session.allocator(), self.kv_type.ort(), to.shape(rows.len()))?;
        match self.kv_type {
            FloatType::F32 => gather_rows::<f32, _>(old, &mut new, rows, lens, from, to)?,
            FloatType::F16 => gather_rows::<f16, _>(old, &mut new, rows, lens, from, to)?,
        }
        Ok(new)
    }

    /// The tokens the cache holds when a context that starts with them may reuse them: one row, a shared
    /// buffer (which can be rewound to the shared part) and no window-sized cache (whose early positions
    /// are written over once the window is full).
    pub fn held_tokens(&self) -> Option<&[i64]> {
        (self.batch == 1 && self.layout == KvLayout::SharedBuffer && self.local_window == 0)
            .then_some(self.held.as_slice())
    }

    /// Tokens the cache holds for the longest row.
    pub fn past_len(&self) -> usize {
        self.row_lens.iter().copied().max().unwrap_or(0)
    }

    /// Positions a next step would need: the longest row plus one for shared buffers, the common width plus
    /// one for concat caches (pads count there).
    pub fn next_len(&self) -> usize {
        match self.layout {
            KvLayout::SharedBuffer => self.past_len() + 1,
            KvLayout::Concat => self.width + 1,
        }
    }

    /// Runs `tokens` after what the cache holds (one sequence), appends them and returns the logits after
    /// the last of them.
    pub fn forward(&mut self, tokens: &[i64], phase: &'static str) -> Result<Logits, SessionError> {
        self.extend(&[tokens], phase, true, LogitsWanted::Last)
    }

    /// Runs `rows[b]` after row `b`'s cached tokens, one slice per sequence of the batch. Rows of unequal
    /// length are padded (right for shared buffers, which only allows it on an empty cache; left for concat).
    /// With `keep` false the cache is left as it was (scoring continuations of a shared context). The
    /// logits returned cover at least the positions `wanted` names ([`Logits::last`] and, for
    /// [`LogitsWanted::Every`], [`Logits::at`] every position); a graph without [`LOGITS_FROM_INPUT`] always
    /// returns them all.
    pub fn extend(
        &mut self,
        rows: &[&[i64]],
        phase: &'static str,
        keep: bool,
        wanted: LogitsWanted,
    ) -> Result<Logits, SessionError> {
        if self.batch == 0 {
            // Never reset: start an empty cache for these rows.
            self.reset_batch(rows.len(), 0)?;
        }
        if rows.len() != self.batch {
            return Err(SessionError::Usage("extend needs one row per sequence after reset_batch"));
        }
        if rows.iter().any(|r| r.is_empty()) {
            return Err(SessionError::Usage("every row needs at least one token"));
        }
        let batch = self.batch;
        let chunk = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let ragged = rows.iter().any(|r| r.len() != chunk);
        let shortest = rows.iter().map(|r| r.len()).min().unwrap_or(0);
        if ragged
            && keep
            && wanted == LogitsWanted::Last
            && self.trims_logits
            && self.layout == KvLayout::SharedBuffer
            && self.past_len() == 0
            && shortest >= 2
            && chunk - shortest >= RAGGED_SPLIT_MIN_SPREAD
        {
            return self.extend_ragged_in_two(rows, phase);
        }
        let new_lens: Vec<usize> = self.row_lens.iter().zip(rows).map(|(len, r)| len + r.len()).collect();
        let longest = new_lens.iter().copied().max().unwrap_or(0);
        let mut input_ids = Vec::with_capacity(batch * chunk);
        let mut last = Vec::with_capacity(batch);
        let (mask, mask_width, positions) = match self.layout {
            KvLayout::SharedBuffer => {
                if ragged && self.past_len() > 0 {
                    return Err(SessionError::Usage("rows of unequal length only on an empty shared-buffer cache"));
                }
                if longest > self.context_length {
                    return Err(SessionError::ContextFull { context_length: self.context_length });
                }
                if longest > self.capacity {
                    self.allocate(longest.max(self.capacity * 2).min(self.context_length))?;
                }
                for row in rows {
                    input_ids.extend_from_slice(row);
                    input_ids.extend(std::iter::repeat_n(self.pad_token, chunk - row.len()));
                    last.push(row.len() - 1);
                }
                // On an empty cache the mask is as wide as the chunk, which GroupQueryAttention reads as a
                // first prompt; later it is as wide as the longest row. Each row's sum is its length.
                let width = if self.past_len() == 0 { chunk } else { longest };
                let mut mask = Vec::with_capacity(batch * width);
                for &len in &new_lens {
                    mask.extend(std::iter::repeat_n(1i64, len));
                    mask.extend(std::iter::repeat_n(0i64, width - len));
                }
                (mask, width, None)
            }
            KvLayout::Concat => {
                let width = self.width + chunk;
                if width > self.context_length {
                    return Err(SessionError::ContextFull { context_length: self.context_length });
                }
                let mut mask = Vec::with_capacity(batch * width);
                let mut positions = Vec::with_capacity(batch * chunk);
                for (b, row) in rows.iter().enumerate() {
                    let pads = chunk - row.len();
                    input_ids.extend(std::iter::repeat_n(self.pad_token, pads));
                    input_ids.extend_from_slice(row);
                    mask.extend_from_slice(&self.mask[b * self.width..(b + 1) * self.width]);
                    mask.extend(std::iter::repeat_n(0i64, pads));
                    mask.extend(std::iter::repeat_n(1i64, row.len()));
                    // transformers' convention: real tokens count from 0, pads sit at position 1.
                    positions.extend(std::iter::repeat_n(1i64, pads));
                    positions.extend((self.row_lens[b]..new_lens[b]).map(|p| p as i64));
                    last.push(chunk - 1);
                }
                (mask, width, Some(positions))
            }
        };

        let input_ids = Tensor::from_array(([batch, chunk], input_ids)).map_err(run_error(phase))?;
        // Only a concat cache keeps its mask for the next step; otherwise the tensor takes it.
        let kept_mask = (self.layout == KvLayout::Concat && keep).then(|| mask.clone());
        let mask_tensor = Tensor::from_array(([batch, mask_width], mask)).map_err(run_error(phase))?;
        self.binding.bind_input(self.io.input_ids.as_str(), &input_ids).map_err(run_error(phase))?;
        self.binding.bind_input(self.io.attention_mask.as_str(), &mask_tensor).map_err(run_error(phase))?;
        if self.feeds_position_ids {
            let positions = positions.unwrap_or_else(|| {
                // Shared-buffer graphs rarely take position ids; give each row its own count anyway.
                rows.iter()
                    .zip(&self.row_lens)
                    .flat_map(|(r, &len)| (0..chunk).map(move |i| (len + i.min(r.len() - 1)) as i64))
                    .collect()
            });
            let positions = Tensor::from_array(([batch, chunk], positions)).map_err(run_error(phase))?;
            self.binding.bind_input(self.io.position_ids.as_str(), &positions).map_err(run_error(phase))?;
        }
        if self.layout == KvLayout::Concat {
            for (name, past) in self.past_names.iter().zip(&self.past) {
                self.binding.bind_input(name.as_str(), past).map_err(run_error(phase))?;
            }
            // Rebound every run so ONNX Runtime allocates fresh presents instead of reusing the ones that are
            // now bound as past.
            for name in &self.present_names {
                self.binding.bind_output_to_device(name.as_str(), &self.cpu).map_err(run_error(phase))?;
            }
        }
        // The head runs from the earliest position any row needs; rows' `last` count from there.
        let from = match wanted {
            LogitsWanted::Last if self.trims_logits => last.iter().copied().min().unwrap_or(0),
            LogitsWanted::From(position) if self.trims_logits => position.min(chunk - 1),
            _ => 0,
        };
        if self.trims_logits {
            // The binding keeps its value between runs: bound again only when it changes (after a prefill, the
            // decode steps all start at 0).
            if self.logits_from_bound != Some(from) {
                let from_tensor = Tensor::from_array(([1usize], vec![from as i64])).map_err(run_error(phase))?;
                self.binding.bind_input(LOGITS_FROM_INPUT, &from_tensor).map_err(run_error(phase))?;
                self.logits_from_bound = Some(from);
            }
        }
        let kept_tokens = chunk - from;
        // Rebound every run: a bound logits buffer would be reused, and its shape changes with the chunk.
        self.binding.bind_output_to_device(self.io.logits.as_str(), &self.cpu).map_err(run_error(phase))?;

        let run_start = Instant::now();
        let mut outputs = if batch * chunk >= SHRINK_ARENA_MIN_TOKENS {
            self.session.run_binding_with_options(&self.binding, &self.shrink_arena)
        } else {
            self.session.run_binding(&self.binding)
        }
        .map_err(run_error(phase))?;
        self.last_run = run_start.elapsed();
        let logits = outputs
            .remove(self.io.logits.as_str())
            .ok_or_else(|| SessionError::Run { phase, message: format!("no `{}` output", self.io.logits) })?;
        let presents: Vec<Option<DynValue>> = if self.layout == KvLayout::Concat && keep {
            self.present_names.iter().map(|name| outputs.remove(name.as_str())).collect()
        } else {
            Vec::new()
        };
        drop(outputs);

        let dims: Vec<i64> = match logits.dtype() {
            ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
            _ => Vec::new(),
        };
        if dims.len() != 3 || dims[0] != batch as i64 || dims[1] != kept_tokens as i64 || dims[2] <= 0 {
            return Err(SessionError::LogitsShape {
                name: self.io.logits.clone(),
                shape: dims,
                batch,
                tokens: kept_tokens,
            });
        }
        if keep {
            if self.layout == KvLayout::Concat {
                self.past = presents
                    .into_iter()
                    .zip(&self.present_names)
                    .map(|(value, name)| {
                        value.ok_or_else(|| SessionError::Run { phase, message: format!("no `{name}` output") })
                    })
                    .collect::<Result<_, _>>()?;
                self.mask = kept_mask.unwrap_or_default();
                self.width = mask_width;
            } else {
                self.width = longest;
            }
            self.row_lens = new_lens;
            if batch == 1 {
                self.held.extend_from_slice(rows[0]);
            }
        }
        Ok(Logits { value: logits, dtype: self.logits_type, tokens: kept_tokens, vocab: dims[2] as usize, from, last })
    }

    /// A ragged first chunk of a shared buffer, as two runs. Right-padded rows end at different positions
    /// and `logits_from` is one start for all rows, so in one run the head would cover every position from
    /// the shortest row's last token on: for 16 prompts of 50 to 500 tokens, 450 positions a row (1.4 GB
    /// of fp32 logits for a 49k vocabulary, and a head product the size of the prefill's own). Instead the
    /// rows run without their last token (the head on one position), then the last tokens as a one-token
    /// step, which reads each row's logits where it ends.
    fn extend_ragged_in_two(&mut self, rows: &[&[i64]], phase: &'static str) -> Result<Logits, SessionError> {
        let heads: Vec<&[i64]> = rows.iter().map(|r| &r[..r.len() - 1]).collect();
        let longest_head = heads.iter().map(|h| h.len()).max().unwrap_or(1);
        self.extend(&heads, phase, true, LogitsWanted::From(longest_head - 1))?;
        let first_run = self.last_run;
        let tails: Vec<&[i64]> = rows.iter().map(|r| &r[r.len() - 1..]).collect();
        let logits = self.extend(&tails, phase, true, LogitsWanted::Last)?;
        self.last_run += first_run;
        Ok(logits)
    }

    /// (Re)allocates the shared buffers with room for `capacity` positions per row, keeping what the cache
    /// holds, and binds them as both past inputs and present outputs.
    fn allocate(&mut self, capacity: usize) -> Result<(), SessionError> {
        let phase = "allocating the KV cache";
        let keep = self.past_len().min(capacity);
        let from = RowLayout { heads: self.kv_heads, positions: self.capacity, head_size: self.head_size };
        let to = RowLayout { positions: capacity, ..from };
        let rows: Vec<usize> = (0..self.batch).collect();
        let lens = vec![keep; self.batch];
        let mut cache = Vec::with_capacity(self.past_names.len());
        for index in 0..self.past_names.len() {
            let buffer = match self.cache.get(index) {
                Some(old) if keep > 0 => self.gathered(old, &rows, &lens, from, to),
                _ => DynTensor::new(self.session.allocator(), self.kv_type.ort(), to.shape(self.batch)),
            };
            cache.push(buffer.map_err(run_error(phase))?);
        }
        self.cache = cache;
        self.capacity = capacity;
        self.bind_inputs(phase)
    }

    /// Time the last forward pass spent inside ONNX Runtime's `run` (binding and reading outputs excluded).
    pub fn last_run(&self) -> Duration {
        self.last_run
    }

    /// The model file this session runs.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The shape of one batch row of a KV tensor ([B, heads, positions, head_size]).
#[derive(Debug, Clone, Copy)]
struct RowLayout {
    heads: usize,
    positions: usize,
    head_size: usize,
}

impl RowLayout {
    fn shape(self, batch: usize) -> [usize; 4] {
        [batch, self.heads, self.positions, self.head_size]
    }

    /// Where head `head` of batch row `row` starts.
    fn offset(self, row: usize, head: usize) -> usize {
        (row * self.heads + head) * self.positions * self.head_size
    }
}

/// Copies batch rows `rows` of `old` (laid out as `from`) into rows 0.. of `new` (laid out as `to`), the first
/// `lens[i]` positions of each head.
fn gather_rows<T: PrimitiveTensorElementType + Copy, Old: TensorValueTypeMarker + ?Sized>(
    old: &Value<Old>,
    new: &mut DynTensor,
    rows: &[usize],
    lens: &[usize],
    from: RowLayout,
    to: RowLayout,
) -> Result<(), ort::Error> {
    let (_, old) = old.try_extract_tensor::<T>()?;
    let (_, new) = new.try_extract_tensor_mut::<T>()?;
    for (to_row, (&from_row, &len)) in rows.iter().zip(lens).enumerate() {
        let span = len * from.head_size;
        for head in 0..from.heads {
            let (at, into) = (from.offset(from_row, head), to.offset(to_row, head));
            new[into..into + span].copy_from_slice(&old[at..at + span]);
        }
    }
    Ok(())
}

/// A [B, kv, 0, hd] past: what the first step of a concat cache sees.
fn empty_kv(kv_type: FloatType, shape: [usize; 4]) -> Result<DynValue, ort::Error> {
    Ok(match kv_type {
        FloatType::F32 => Tensor::<f32>::from_array((shape, Vec::<f32>::new()))?.into_dyn(),
        FloatType::F16 => Tensor::<f16>::from_array((shape, Vec::<f16>::new()))?.into_dyn(),
    })
}
