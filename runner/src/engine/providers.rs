//! How a model runs on ONNX Runtime: the execution provider (CPU, CUDA, TensorRT) and its options, graph
//! optimisation, threads, and an optimized-model cache; builds the session from them and finds out, from a
//! profiled probe run, which provider every node really ran on, so a "CUDA" result that ran on the CPU
//! cannot pass unnoticed.
//!
//! The "modes" other tools talk about map onto these settings: **eager** is `--graph-opt disable` (every
//! node runs as the exporter wrote it), **compiled** is `--graph-opt all` (constant folding, operator fusion,
//! layout changes; the default), **kernelized** is CUDA graphs (`--cuda-graph`: the whole step replayed as
//! one captured graph) or TensorRT (`--ep tensorrt`: the graph compiled into TensorRT engines).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ortlib::{self, LoadedRuntime, OrtLibError};

/// Which ONNX Runtime execution provider runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda,
    /// TensorRT, with CUDA for the nodes TensorRT does not take.
    #[value(name = "tensorrt")]
    #[serde(rename = "tensorrt")]
    TensorRt,
}

impl ExecutionProvider {
    /// The name ONNX Runtime gives the provider (in profiles and node assignments).
    pub fn ort_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
            ExecutionProvider::TensorRt => "TensorrtExecutionProvider",
        }
    }

    /// The provider's name in messages: `CPU`, `CUDA`, `TensorRT`.
    pub fn display_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPU",
            ExecutionProvider::Cuda => "CUDA",
            ExecutionProvider::TensorRt => "TensorRT",
        }
    }

    /// Needs the GPU build of ONNX Runtime (`cargo xtask setup --gpu`).
    pub fn is_gpu(self) -> bool {
        self != ExecutionProvider::Cpu
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
            ExecutionProvider::TensorRt => "tensorrt",
        })
    }
}

/// ONNX Runtime's graph optimisation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GraphOptimization {
    /// No graph rewriting: the eager mode.
    Disable,
    /// Constant folding and redundant-node removal.
    Basic,
    /// Basic plus operator fusions (attention, layer norm, GELU...).
    Extended,
    /// Extended plus layout optimisations: the compiled mode.
    #[default]
    All,
}

impl GraphOptimization {
    fn ort_level(self) -> GraphOptimizationLevel {
        match self {
            GraphOptimization::Disable => GraphOptimizationLevel::Disable,
            GraphOptimization::Basic => GraphOptimizationLevel::Level1,
            GraphOptimization::Extended => GraphOptimizationLevel::Level2,
            GraphOptimization::All => GraphOptimizationLevel::All,
        }
    }
}

impl fmt::Display for GraphOptimization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GraphOptimization::Disable => "disable",
            GraphOptimization::Basic => "basic",
            GraphOptimization::Extended => "extended",
            GraphOptimization::All => "all",
        })
    }
}

/// The execution modes of eager/compiled frameworks, as ONNX Runtime settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `--graph-opt disable`: nodes run as written.
    Eager,
    /// `--graph-opt all`: fused and optimized graph.
    Compiled,
    /// Compiled plus CUDA graphs (`--ep cuda`) or TensorRT engines (`--ep tensorrt`).
    Kernelized,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Eager => "eager",
            Mode::Compiled => "compiled",
            Mode::Kernelized => "kernelized",
        })
    }
}

/// Everything about how the session runs, besides the intra-op thread count (`EngineOptions::intra_threads`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderOptions {
    pub ep: ExecutionProvider,
    /// GPU ordinal for CUDA / TensorRT.
    pub device_id: u32,
    /// Capture the decode step as a CUDA graph and replay it (CUDA and TensorRT).
    pub cuda_graph: bool,
    /// Let CUDA use TF32 tensor cores for float32 matmuls.
    pub tf32: bool,
    /// Cap on the CUDA memory arena, in bytes.
    pub gpu_mem_limit: Option<u64>,
    pub trt_fp16: bool,
    pub trt_int8: bool,
    /// Where TensorRT keeps built engines between runs.
    pub trt_engine_cache: Option<PathBuf>,
    /// Where TensorRT keeps its kernel timing cache.
    pub trt_timing_cache: Option<PathBuf>,
    pub graph_opt: GraphOptimization,
    /// Inter-op threads; more than one runs independent nodes in parallel.
    pub inter_threads: Option<usize>,
    /// Keep the optimized graph here and load it next time instead of optimizing again.
    pub optimized_model_cache: Option<PathBuf>,
    /// Whether idle intra-op threads busy-wait for the next operator (`session.intra_op.allow_spinning`);
    /// `None` keeps ONNX Runtime's default (they spin). Spinning saves the wake-up of every parallel operator
    /// on a quiet machine, but on a machine whose cores are taken by other processes the spinning threads
    /// steal the time slices the working one needs: decode of the default model halved on a loaded 2-core
    /// machine (6.7 against 13.5 tokens/s, 2 threads, load average 13).
    pub intra_op_spinning: Option<bool>,
}

/// Why the options do not make sense together; the message names the flags.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct OptionsError(pub String);

impl ProviderOptions {
    /// Applies `--mode` on top of the explicit flags: it sets what it implies and refuses what contradicts it.
    /// `graph_opt_given` says whether `--graph-opt` was given explicitly.
    pub fn apply_mode(&mut self, mode: Mode, graph_opt_given: bool) -> Result<(), OptionsError> {
        let wanted = if mode == Mode::Eager { GraphOptimization::Disable } else { GraphOptimization::All };
        if graph_opt_given && self.graph_opt != wanted {
            return Err(OptionsError(format!(
                "--mode {mode} means --graph-opt {wanted}, but --graph-opt {} was given",
                self.graph_opt
            )));
        }
        self.graph_opt = wanted;
        match mode {
            Mode::Kernelized => match self.ep {
                ExecutionProvider::Cpu => {
                    return Err(OptionsError(
                        "--mode kernelized needs a GPU provider: --ep cuda (CUDA graphs) or --ep tensorrt".into(),
                    ));
                }
                ExecutionProvider::Cuda => self.cuda_graph = true,
                ExecutionProvider::TensorRt => {}
            },
            Mode::Eager | Mode::Compiled if self.cuda_graph => {
                return Err(OptionsError(format!("--mode {mode} contradicts --cuda-graph (that is kernelized)")));
            }
            _ => {}
        }
        Ok(())
    }

    /// Refuses options that the chosen provider would ignore, naming the flag.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let ep = self.ep;
        let need = |ok: bool, flag: &str, which: &str| {
            if ok { Ok(()) } else { Err(OptionsError(format!("{flag} applies to {which} only, not to --ep {ep}"))) }
        };
        let gpu = ep.is_gpu();
        need(gpu || self.device_id == 0, "--device-id", "--ep cuda and --ep tensorrt")?;
        need(gpu || !self.cuda_graph, "--cuda-graph", "--ep cuda and --ep tensorrt")?;
        need(gpu || self.gpu_mem_limit.is_none(), "--gpu-mem-limit", "--ep cuda and --ep tensorrt")?;
        need(ep == ExecutionProvider::Cuda || !self.tf32, "--tf32", "--ep cuda")?;
        let trt = ep == ExecutionProvider::TensorRt;
        need(trt || !self.trt_fp16, "--trt-fp16", "--ep tensorrt")?;
        need(trt || !self.trt_int8, "--trt-int8", "--ep tensorrt")?;
        need(trt || self.trt_engine_cache.is_none(), "--trt-engine-cache", "--ep tensorrt")?;
        need(trt || self.trt_timing_cache.is_none(), "--trt-timing-cache", "--ep tensorrt")?;
        if self.inter_threads == Some(0) {
            return Err(OptionsError("--inter-threads must be at least 1".into()));
        }
        if self.gpu_mem_limit == Some(0) {
            return Err(OptionsError("--gpu-mem-limit must be more than 0 bytes".into()));
        }
        Ok(())
    }

    /// The mode these settings amount to.
    pub fn mode(&self) -> Mode {
        if self.cuda_graph || self.ep == ExecutionProvider::TensorRt {
            Mode::Kernelized
        } else if self.graph_opt == GraphOptimization::Disable {
            Mode::Eager
        } else {
            Mode::Compiled
        }
    }

    /// The provider options as ONNX Runtime's keys, for results.
    pub fn ep_options(&self) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            options.insert(k.to_string(), v);
        };
        match self.ep {
            ExecutionProvider::Cpu => {}
            ExecutionProvider::Cuda | ExecutionProvider::TensorRt => {
                set("device_id", self.device_id.to_string());
                if let Some(limit) = self.gpu_mem_limit {
                    set("gpu_mem_limit", limit.to_string());
                }
                if self.ep == ExecutionProvider::Cuda {
                    set("enable_cuda_graph", u8::from(self.cuda_graph).to_string());
                    set("use_tf32", u8::from(self.tf32).to_string());
                } else {
                    set("trt_cuda_graph_enable", u8::from(self.cuda_graph).to_string());
                    set("trt_fp16_enable", u8::from(self.trt_fp16).to_string());
                    set("trt_int8_enable", u8::from(self.trt_int8).to_string());
                    if let Some(dir) = &self.trt_engine_cache {
                        set("trt_engine_cache_enable", "1".into());
                        set("trt_engine_cache_path", dir.display().to_string());
                    }
                    if let Some(dir) = &self.trt_timing_cache {
                        set("trt_timing_cache_enable", "1".into());
                        set("trt_timing_cache_path", dir.display().to_string());
                    }
                }
            }
        }
        options
    }

    fn dispatches(&self) -> Vec<ExecutionProviderDispatch> {
        let cuda = || {
            let mut cuda = ep::CUDA::default().with_device_id(self.device_id as i32).with_tf32(self.tf32);
            if self.ep == ExecutionProvider::Cuda {
                cuda = cuda.with_cuda_graph(self.cuda_graph);
            }
            if let Some(limit) = self.gpu_mem_limit {
                cuda = cuda.with_memory_limit(limit as usize);
            }
            cuda.build().error_on_failure()
        };
        match self.ep {
            ExecutionProvider::Cpu => Vec::new(),
            ExecutionProvider::Cuda => vec![cuda()],
            ExecutionProvider::TensorRt => {
                let mut trt = ep::TensorRT::default()
                    .with_device_id(self.device_id as i32)
                    .with_fp16(self.trt_fp16)
                    .with_int8(self.trt_int8)
                    .with_cuda_graph(self.cuda_graph);
                if let Some(dir) = &self.trt_engine_cache {
                    trt = trt.with_engine_cache(true).with_engine_cache_path(dir.display());
                }
                if let Some(dir) = &self.trt_timing_cache {
                    trt = trt.with_timing_cache(true).with_timing_cache_path(dir.display());
                }
                if let Some(limit) = self.gpu_mem_limit {
                    trt = trt.with_max_workspace_size(limit as usize);
                }
                vec![trt.build().error_on_failure(), cuda()]
            }
        }
    }
}

/// Parses a byte size: `8GiB`, `512MiB`, `2GB`, `1048576`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a size such as 8GiB, 512MiB or 1000000"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit `{other}` in `{text}` (use B, KB, MB, GB, KiB, MiB or GiB)")),
    };
    Ok((value * scale).round() as u64)
}

/// Which nodes ran on which provider, from ONNX Runtime's profile of one probe run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeAssignment {
    /// Nodes that ran, by provider name (`CPUExecutionProvider`...).
    pub nodes_per_provider: BTreeMap<String, usize>,
    /// Operator types per provider.
    pub ops_per_provider: BTreeMap<String, BTreeMap<String, usize>>,
    /// Nodes that did not run on the requested provider: (node name, operator, provider).
    pub not_on_requested: Vec<PlacedNode>,
    pub requested: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedNode {
    pub node: String,
    pub op: String,
    pub provider: String,
}

impl NodeAssignment {
    /// Reads ONNX Runtime's profile JSON (Chrome trace events): every `Node` event's `args.provider`.
    pub fn from_profile(json: &str, requested: ExecutionProvider) -> Result<NodeAssignment, String> {
        let events: Vec<serde_json::Value> =
            serde_json::from_str(json).map_err(|e| format!("the profile is not a JSON event list: {e}"))?;
        let mut seen = BTreeMap::new();
        for event in &events {
            if event.get("cat").and_then(|c| c.as_str()) != Some("Node") {
                continue;
            }
            let Some(args) = event.get("args") else { continue };
            let (Some(provider), Some(name)) =
                (args.get("provider").and_then(|p| p.as_str()), event.get("name").and_then(|n| n.as_str()))
            else {
                continue;
            };
            let node = name.strip_suffix("_kernel_time").unwrap_or(name);
            let op = args.get("op_name").and_then(|o| o.as_str()).unwrap_or("?");
            seen.entry(node.to_string()).or_insert_with(|| (op.to_string(), provider.to_string()));
        }
        if seen.is_empty() {
            return Err("the profile has no node events".into());
        }
        let mut assignment = NodeAssignment { requested: requested.ort_name().to_string(), ..Default::default() };
        for (node, (op, provider)) in seen {
            *assignment.nodes_per_provider.entry(provider.clone()).or_default() += 1;
            *assignment.ops_per_provider.entry(provider.clone()).or_default().entry(op.clone()).or_default() += 1;
            if provider != assignment.requested {
                assignment.not_on_requested.push(PlacedNode { node, op, provider });
            }
        }
        Ok(assignment)
    }

    pub fn total_nodes(&self) -> usize {
        self.nodes_per_provider.values().sum()
    }

    /// Nodes of a GPU run that ran on the CPU.
    pub fn cpu_fallbacks(&self) -> Vec<&PlacedNode> {
        if self.requested == ExecutionProvider::Cpu.ort_name() {
            return Vec::new();
        }
        self.not_on_requested.iter().filter(|n| n.provider == ExecutionProvider::Cpu.ort_name()).collect()
    }

    /// "CPUExecutionProvider 411" or "CUDAExecutionProvider 380, CPUExecutionProvider 31".
    pub fn describe(&self) -> String {
        let mut counts: Vec<(&String, &usize)> = self.nodes_per_provider.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1));
        counts.iter().map(|(p, n)| format!("{p} {n}")).collect::<Vec<_>>().join(", ")
    }

    /// A warning for the terminal when a GPU run put nodes on the CPU.
    pub fn fallback_warning(&self) -> Option<String> {
        let fallbacks = self.cpu_fallbacks();
        if fallbacks.is_empty() {
            return None;
        }
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        for node in &fallbacks {
            *ops.entry(node.op.as_str()).or_default() += 1;
        }
        let ops: Vec<String> = ops.iter().map(|(op, n)| format!("{op} x{n}")).collect();
        Some(format!(
            "{} of {} nodes ran on CPUExecutionProvider, not {}: {}",
            fallbacks.len(),
            self.total_nodes(),
            self.requested,
            ops.join(", ")
        ))
    }
}

/// Whether the optimized-model cache was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizedModelCache {
    /// The cached optimized model.
    pub path: PathBuf,
    /// True when this load used the cached file; false when it wrote it.
    pub hit: bool,
}

/// How the session was built, for results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub ep: ExecutionProvider,
    /// The providers registered, in priority order (ONNX Runtime names; CPU is always last).
    pub providers: Vec<String>,
    /// Provider options, as ONNX Runtime's keys.
    pub ep_options: BTreeMap<String, String>,
    pub graph_optimization: GraphOptimization,
    pub mode: Mode,
    pub intra_threads: Option<usize>,
    pub inter_threads: Option<usize>,
    /// Idle threads spin between operators (null: ONNX Runtime's default, which spins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intra_op_spinning: Option<bool>,
    /// The ONNX file ONNX Runtime loaded (the cached optimized model on a cache hit).
    pub model_file: PathBuf,
    pub optimized_model_cache: Option<OptimizedModelCache>,
    /// Node placement from a profiled probe run; absent when the probe could not run (see `node_assignment_error`).
    pub node_assignment: Option<NodeAssignment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_assignment_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("--ep {ep} needs the GPU build of ONNX Runtime: {source}; install it with `cargo xtask setup --gpu`")]
    GpuRuntime { ep: ExecutionProvider, source: OrtLibError },
    #[error(
        "the {name} execution provider (--ep {ep}, {ort_name}) failed to register: {message}; {hint}",
        name = .ep.display_name(),
        ort_name = .ep.ort_name()
    )]
    Register { ep: ExecutionProvider, message: String, hint: String },
    #[error(transparent)]
    OrtLib(#[from] OrtLibError),
    #[error("ONNX Runtime rejected the session option {option}: {message}")]
    Option { option: &'static str, message: String },
    #[error("ONNX Runtime could not load {path}: {message}{}", crate::engine::session::external_data_hint(path, message), path = .path.display())]
    Load { path: PathBuf, message: String },
    #[error("optimized-model cache {path}: {message}", path = .path.display())]
    Cache { path: PathBuf, message: String },
}

/// Loads ONNX Runtime for `options`: the GPU build when the provider needs one.
pub(crate) fn load_runtime(
    explicit: Option<&Path>,
    options: &ProviderOptions,
) -> Result<&'static LoadedRuntime, ProviderError> {
    ortlib::load(explicit, options.ep.is_gpu()).map_err(|source| match source {
        OrtLibError::NotFound { .. } | OrtLibError::Load { .. } if options.ep.is_gpu() => {
            ProviderError::GpuRuntime { ep: options.ep, source }
        }
        other => ProviderError::OrtLib(other),
    })
}

fn option_error(option: &'static str) -> impl FnOnce(ort::Error<SessionBuilder>) -> ProviderError {
    move |err| ProviderError::Option { option, message: err.to_string() }
}

/// A built session and how it was built.
pub struct BuiltSession {
    pub session: Session,
    pub record: SessionRecord,
}

/// Builds the session for `model_path`: registers the provider (an error if it cannot), applies graph
/// optimisation and threads, uses or fills the optimized-model cache, and probes the node assignment.
/// `probe_shapes` gives the probe run the shape of inputs whose symbolic dimensions only the model's own
/// configuration can fill (the past key/values, whose head size genai's builder leaves as `kv_cache_dim`).
pub fn build_session(
    environment: &ort::environment::Environment,
    model_path: &Path,
    intra_threads: Option<usize>,
    options: &ProviderOptions,
    profiling: Option<&Path>,
    probe_shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<BuiltSession, ProviderError> {
    let load_error = |message: String| ProviderError::Load { path: model_path.to_path_buf(), message };
    let mut builder = Session::builder(environment).map_err(|e| load_error(e.to_string()))?;
    let dispatches = options.dispatches();
    if !dispatches.is_empty() {
        builder = builder.with_execution_providers(&dispatches).map_err(|err| ProviderError::Register {
            ep: options.ep,
            message: err.to_string().trim_end_matches('.').to_string(),
            hint: register_hint(options.ep, &err.to_string()),
        })?;
    }
    if let Some(threads) = intra_threads {
        builder = builder.with_intra_threads(threads).map_err(option_error("intra_threads"))?;
    }
    if let Some(threads) = options.inter_threads {
        builder = builder.with_inter_threads(threads).map_err(option_error("inter_threads"))?;
        if threads > 1 {
            builder = builder.with_parallel_execution(true).map_err(option_error("execution_mode"))?;
        }
    }

    if let Some(spin) = options.intra_op_spinning {
        builder = builder.with_intra_op_spinning(spin).map_err(option_error("session.intra_op.allow_spinning"))?;
        builder = builder.with_inter_op_spinning(spin).map_err(option_error("session.inter_op.allow_spinning"))?;
    }
    if let Some(prefix) = profiling {
        builder = builder.with_profiling(prefix).map_err(option_error("profiling"))?;
    }

    let mut cache = None;
    let mut load_path = model_path.to_path_buf();
    let mut level = options.graph_opt;
    let mut pending_cache: Option<(PathBuf, PathBuf)> = None;
    if let Some(dir) = &options.optimized_model_cache {
        let cached = cached_model_path(dir, model_path, options)?;
        if cached.is_file() {
            // The cached graph is already optimized at the requested level: optimizing it again only costs time.
            load_path = cached.clone();
            level = GraphOptimization::Disable;
            cache = Some(OptimizedModelCache { path: cached, hit: true });
        } else {
            std::fs::create_dir_all(dir)
                .map_err(|e| ProviderError::Cache { path: dir.clone(), message: e.to_string() })?;
            let file_name = cached.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
            builder = builder
                .with_optimized_model_path(&temp)
                .map_err(option_error("optimized_model_path"))?
                // Weights go to a data file of the cache's own, so the cached model does not depend on the folder.
                .with_config_entry(
                    "session.optimized_model_external_initializers_file_name",
                    format!("{file_name}.data"),
                )
                .map_err(option_error("optimized_model_external_initializers_file_name"))?
                .with_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
                .map_err(option_error("optimized_model_external_initializers_min_size_in_bytes"))?;
            pending_cache = Some((temp, cached));
        }
    }
    builder = builder.with_optimization_level(level.ort_level()).map_err(option_error("graph_optimization_level"))?;
    let mut session = builder.commit_from_file(&load_path).map_err(|e| load_error(e.to_string()))?;
    if let Some((temp, cached)) = pending_cache {
        std::fs::rename(&temp, &cached)
            .map_err(|e| ProviderError::Cache { path: cached.clone(), message: e.to_string() })?;
        cache = Some(OptimizedModelCache { path: cached, hit: false });
    }

    let (node_assignment, node_assignment_error) = match probe_node_assignment(&mut session, options, probe_shapes) {
        Ok(assignment) => (Some(assignment), None),
        Err(reason) => (None, Some(reason)),
    };
    let mut providers: Vec<String> = match options.ep {
        ExecutionProvider::Cpu => Vec::new(),
        ExecutionProvider::Cuda => vec![ExecutionProvider::Cuda.ort_name().into()],
        ExecutionProvider::TensorRt => {
            vec![ExecutionProvider::TensorRt.ort_name().into(), ExecutionProvider::Cuda.ort_name().into()]
        }
    };
    providers.push(ExecutionProvider::Cpu.ort_name().into());
    let record = SessionRecord {
        ep: options.ep,
        providers,
        ep_options: options.ep_options(),
        graph_optimization: options.graph_opt,
        mode: options.mode(),
        intra_threads,
        inter_threads: options.inter_threads,
        intra_op_spinning: options.intra_op_spinning,
        model_file: load_path,
        optimized_model_cache: cache,
        node_assignment,
        node_assignment_error,
    };
    Ok(BuiltSession { session, record })
}

fn register_hint(ep: ExecutionProvider, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("not enabled in this build") || lower.contains("libonnxruntime_providers") {
        format!(
            "this ONNX Runtime library has no {} provider: install the GPU build with `cargo xtask setup --gpu` \
             (or pass --ort-lib to onnxruntime-gpu's libonnxruntime.so.{})",
            ep.display_name(),
            crate::paths::ORT_VERSION
        )
    } else if lower.contains("cannot open shared object") || lower.contains(".so") {
        "a CUDA / cuDNN / TensorRT library is missing: CUDA 13, cuDNN 9 (and TensorRT 10 for --ep tensorrt) must be \
         on the loader path (e.g. LD_LIBRARY_PATH)"
            .into()
    } else {
        "check the GPU, its driver and the CUDA libraries (`nvidia-smi`), and --device-id".into()
    }
}

/// `DIR/<model stem>-<key>.onnx`, the key covering the model's bytes, ONNX Runtime's build, the provider and
/// its options, the optimisation level and the CPU (level `all` writes CPU-specific layouts).
fn cached_model_path(dir: &Path, model_path: &Path, options: &ProviderOptions) -> Result<PathBuf, ProviderError> {
    let cache_error =
        |path: &Path, e: std::io::Error| ProviderError::Cache { path: path.to_path_buf(), message: e.to_string() };
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(model_path).map_err(|e| cache_error(model_path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| cache_error(model_path, e))?;
    hasher.update(&bytes);
    // External data is fingerprinted by name, size and modification time: hashing gigabytes on every load
    // would cost more than the cache saves.
    if let Some(folder) = model_path.parent() {
        let mut entries: Vec<_> = std::fs::read_dir(folder)
            .map_err(|e| cache_error(folder, e))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".data"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let meta = entry.metadata().map_err(|e| cache_error(&entry.path(), e))?;
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            hasher.update(format!("{:?} {} {:?}\n", entry.file_name(), meta.len(), modified).as_bytes());
        }
    }
    hasher.update(ort::info().as_bytes());
    hasher
        .update(format!("{}|{:?}|{}|{}", options.ep, options.ep_options(), options.graph_opt, cpu_model()).as_bytes());
    let key = format!("{:x}", hasher.finalize());
    let stem = model_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    Ok(dir.join(format!("{stem}-{}-{}.onnx", options.graph_opt, &key[..16])))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| info.lines().find(|l| l.starts_with("model name")).map(str::to_owned))
        .unwrap_or_default()
}

/// Runs the session once on the smallest inputs its signature allows (batch 1, one token, empty past) with
/// ONNX Runtime's run profiling on, and reads which provider each node ran on. The profile goes to a
/// temporary folder that is removed afterwards. The run also warms the session up.
fn probe_node_assignment(
    session: &mut Session,
    options: &ProviderOptions,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<NodeAssignment, String> {
    let mut inputs: Vec<(String, SessionInputValue<'static>)> = Vec::new();
    for input in session.inputs() {
        // A mask of ones: an all-zero mask describes no token at all.
        let fill = i64::from(input.name().contains("mask"));
        let value = probe_input(input.dtype(), fill, shapes.get(input.name()))
            .map_err(|e| format!("input `{}`: {e}", input.name()))?;
        inputs.push((input.name().to_string(), value.into()));
    }
    let dir = probe_dir()?;
    let result = (|| {
        let mut run_options = RunOptions::new().map_err(|e| e.to_string())?;
        if options.cuda_graph {
            // A probe must neither capture nor replay the CUDA graph the real run will use.
            run_options.set("gpu_graph_id", "-1").map_err(|e| e.to_string())?;
        }
        run_options.enable_profiling(dir.join("probe")).map_err(|e| e.to_string())?;
        session.run_with_options(inputs, &run_options).map_err(|e| format!("the probe run failed: {e}"))?;
        drop(run_options);
        let profile = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .ok_or_else(|| "ONNX Runtime wrote no profile for the probe run".to_string())?;
        let text = std::fs::read_to_string(&profile).map_err(|e| format!("{}: {e}", profile.display()))?;
        NodeAssignment::from_profile(&text, options.ep)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn probe_dir() -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "runner-probe-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// An input of the declared type filled with `fill` (0 or 1), of the `known` shape when the model's
/// configuration gives one; otherwise symbolic dimensions are 1, except past lengths, which are 0.
fn probe_input(dtype: &ValueType, fill: i64, known: Option<&Vec<usize>>) -> Result<DynValue, String> {
    let ValueType::Tensor { ty, shape, dimension_symbols } = dtype else {
        return Err("not a tensor".into());
    };
    let dims: Vec<usize> = match known {
        Some(dims) => dims.clone(),
        None => shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d >= 0 {
                    d as usize
                } else {
                    let symbol = dimension_symbols.get(i).map(String::as_str).unwrap_or("");
                    usize::from(!symbol.contains("past") || symbol.contains('+'))
                }
            })
            .collect(),
    };
    let count: usize = dims.iter().product();
    let value: DynValue = match ty {
        TensorElementType::Float32 => Tensor::from_array((dims, vec![fill as f32; count])).map(Into::into),
        TensorElementType::Float16 => {
            Tensor::from_array((dims, vec![half::f16::from_f32(fill as f32); count])).map(Into::into)
        }
        TensorElementType::Int64 => Tensor::from_array((dims, vec![fill; count])).map(Into::into),
        TensorElementType::Int32 => Tensor::from_array((dims, vec![fill as i32; count])).map(Into::into),
        TensorElementType::Uint8 => Tensor::from_array((dims, vec![fill as u8; count])).map(Into::into),
        TensorElementType::Bool => Tensor::from_array((dims, vec![fill != 0; count])).map(Into::into),
        other => return Err(format!("element type {other:?} is not one the probe can fill")),
    }
    .map_err(|e| e.to_string())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use prost::Message;

    use super::*;
    use crate::engine::{Engine, EngineOptions};
    use crate::model_folder::Precision;
    use crate::onnx::proto::ModelProto;
    use crate::testing::{quiet_ort_cache, write_tiny_model_folder};

    fn load(model: &Path, providers: ProviderOptions) -> Result<Engine, crate::engine::EngineError> {
        quiet_ort_cache();
        Engine::load(&EngineOptions {
            model_dir: model.to_path_buf(),
            intra_threads: Some(1),
            providers,
            ..Default::default()
        })
    }

    fn nodes_in(model: &Path) -> usize {
        let bytes = std::fs::read(model.join(crate::model_folder::MODEL_FILE)).unwrap();
        ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap().node.len()
    }

    const TOKENS: [u32; 6] = [1, 90, 259, 7, 200, 45];

    fn logits(engine: &mut Engine) -> Vec<f32> {
        engine.reset().unwrap();
        engine.forward(&TOKENS[..4]).unwrap();
        engine.forward(&TOKENS[4..]).unwrap()
    }

    #[test]
    fn cpu_run_puts_every_node_on_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model_folder(dir.path(), 3, Precision::Int4);
        let options = ProviderOptions { graph_opt: GraphOptimization::Disable, ..Default::default() };
        let engine = load(&model, options).unwrap();
        let record = engine.session_record();
        assert_eq!(record.node_assignment_error, None);
        let nodes = record.node_assignment.as_ref().unwrap();
        // Without optimisation every node of the file runs, and all of them on the CPU.
        assert_eq!(nodes.nodes_per_provider, BTreeMap::from([("CPUExecutionProvider".to_string(), nodes_in(&model))]));
        assert!(nodes.not_on_requested.is_empty() && nodes.fallback_warning().is_none());
        assert_eq!(nodes.ops_per_provider["CPUExecutionProvider"]["GroupQueryAttention"], 2);
        assert_eq!(
            (record.ep, record.mode, record.providers.as_slice()),
            (ExecutionProvider::Cpu, Mode::Eager, &["CPUExecutionProvider".to_string()][..])
        );
    }

    #[test]
    fn sleeping_threads_give_the_same_logits_and_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model_folder(dir.path(), 3, Precision::Fp32);
        let mut spinning = load(&model, ProviderOptions::default()).unwrap();
        assert_eq!(spinning.session_record().intra_op_spinning, None);
        let want = logits(&mut spinning);
        drop(spinning);
        let options = ProviderOptions { intra_op_spinning: Some(false), ..Default::default() };
        let mut sleeping = load(&model, options).unwrap();
        assert_eq!(sleeping.session_record().intra_op_spinning, Some(false));
        assert_eq!(logits(&mut sleeping), want);
    }

    #[test]
    fn graph_optimisation_levels_agree_and_fuse() {
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model_folder(dir.path(), 3, Precision::Fp32);
        let mut reference = None;
        let mut node_counts = Vec::new();
        for level in
            [GraphOptimization::Disable, GraphOptimization::Basic, GraphOptimization::Extended, GraphOptimization::All]
        {
            let mut engine = load(&model, ProviderOptions { graph_opt: level, ..Default::default() }).unwrap();
            assert_eq!(engine.session_record().graph_optimization, level);
            node_counts.push(engine.session_record().node_assignment.as_ref().unwrap().total_nodes());
            let got = logits(&mut engine);
            let want = reference.get_or_insert_with(|| got.clone());
            let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{level}: max |diff| {diff} against --graph-opt disable");
        }
        assert_eq!(node_counts[0], nodes_in(&model));
        assert!(node_counts[3] < node_counts[0], "optimisation fused nothing: {node_counts:?}");
    }

    #[test]
    fn optimized_model_cache_is_written_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model_folder(dir.path(), 3, Precision::Int4);
        let cache = dir.path().join("cache");
        let options = ProviderOptions { optimized_model_cache: Some(cache.clone()), ..Default::default() };
        let mut first = load(&model, options.clone()).unwrap();
        let written = first.session_record().optimized_model_cache.clone().unwrap();
        assert!(!written.hit && written.path.is_file() && written.path.starts_with(&cache), "{written:?}");
        let first_logits = logits(&mut first);
        drop(first);

        let mut second = load(&model, options.clone()).unwrap();
        let record = second.session_record().clone();
        let used = record.optimized_model_cache.unwrap();
        assert_eq!((used.hit, &used.path), (true, &written.path));
        assert_eq!(record.model_file, written.path);
        let diff = first_logits.iter().zip(&logits(&mut second)).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "cached model differs by {diff}");
        // Only the cached model and its data: no temporary files left behind.
        let mut names: Vec<String> =
            std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

        // Another optimisation level is another cache entry.
        let other = ProviderOptions { graph_opt: GraphOptimization::Basic, ..options };
        let third = load(&model, other).unwrap();
        let entry = third.session_record().optimized_model_cache.clone().unwrap();
        assert!(!entry.hit && entry.path != written.path);
    }

    #[test]
    fn cuda_without_a_gpu_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model_folder(dir.path(), 3, Precision::Int4);
        quiet_ort_cache();
        // The CPU library is what this process has loaded: CUDA must fail to register, not fall back.
        crate::engine::load_runtime(None, false).unwrap();
        for ep in [ExecutionProvider::Cuda, ExecutionProvider::TensorRt] {
            let err = match load(&model, ProviderOptions { ep, ..Default::default() }) {
                Ok(_) => panic!("--ep {ep} ran on a machine without a GPU runtime"),
                Err(e) => e.to_string(),
            };
            eprintln!("--ep {ep}: {err}");
            assert!(err.contains(&format!("--ep {ep}")) && err.contains(ep.ort_name()), "{err}");
            assert!(err.contains("cargo xtask setup --gpu") || err.contains("CUDA"), "{err}");
        }
    }

    #[test]
    fn modes_map_to_settings_and_bad_combinations_name_the_flag() {
        let mut options = ProviderOptions::default();
        options.apply_mode(Mode::Eager, false).unwrap();
        assert_eq!((options.graph_opt, options.mode()), (GraphOptimization::Disable, Mode::Eager));
        let mut options = ProviderOptions { ep: ExecutionProvider::Cuda, ..Default::default() };
        options.apply_mode(Mode::Kernelized, false).unwrap();
        assert!(options.cuda_graph && options.mode() == Mode::Kernelized);
        assert_eq!(options.ep_options()["enable_cuda_graph"], "1");
        let err = ProviderOptions::default().apply_mode(Mode::Kernelized, false).unwrap_err();
        assert!(err.0.contains("--mode kernelized") && err.0.contains("--ep cuda"), "{err}");
        let mut options = ProviderOptions { graph_opt: GraphOptimization::Basic, ..Default::default() };
        assert!(options.apply_mode(Mode::Compiled, true).unwrap_err().0.contains("--graph-opt basic"));
        for (options, flag) in [
            (ProviderOptions { trt_fp16: true, ..Default::default() }, "--trt-fp16"),
            (ProviderOptions { cuda_graph: true, ..Default::default() }, "--cuda-graph"),
            (ProviderOptions { ep: ExecutionProvider::TensorRt, tf32: true, ..Default::default() }, "--tf32"),
            (ProviderOptions { gpu_mem_limit: Some(1 << 30), ..Default::default() }, "--gpu-mem-limit"),
            (ProviderOptions { inter_threads: Some(0), ..Default::default() }, "--inter-threads"),
        ] {
            assert!(options.validate().unwrap_err().0.contains(flag), "{flag}");
        }
        assert_eq!(parse_bytes("8GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("8 parsecs").unwrap_err().contains("parsecs"));
    }

    #[test]
    fn profile_events_become_a_node_assignment() {
        let profile = r#"[
            {"cat":"Session","name":"model_run","args":{}},
            {"cat":"Node","name":"a_fence_before","args":{"op_name":"MatMul"}},
            {"cat":"Node","name":"a_kernel_time","args":{"op_name":"MatMul","provider":"CUDAExecutionProvider"}},
            {"cat":"Node","name":"b_kernel_time","args":{"op_name":"Shape","provider":"CPUExecutionProvider"}},
            {"cat":"Node","name":"c_kernel_time","args":{"op_name":"Gather","provider":"CPUExecutionProvider"}}
        ]"#;
        let nodes = NodeAssignment::from_profile(profile, ExecutionProvider::Cuda).unwrap();
        assert_eq!(nodes.total_nodes(), 3);
        assert_eq!(nodes.nodes_per_provider["CPUExecutionProvider"], 2);
        assert_eq!(nodes.cpu_fallbacks().len(), 2);
        let warning = nodes.fallback_warning().unwrap();
        assert!(warning.starts_with("2 of 3 nodes ran on CPUExecutionProvider"), "{warning}");
        assert!(warning.contains("Gather x1") && warning.contains("Shape x1"), "{warning}");
        assert!(NodeAssignment::from_profile("[]", ExecutionProvider::Cpu).is_err());
    }
}
