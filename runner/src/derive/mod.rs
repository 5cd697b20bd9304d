//! Other precisions of a float model folder, derived by runner: `--precision int4|int8|fp16|fp32` on a folder
//! whose graph is fp32 (or fp16) and not of that precision. Any folder the engine drives works (onnxruntime-genai
//! builder output, an Optimum export, `runner import` output); the derived folder is the same folder with the
//! graph rewritten and every other file copied:
//!
//! - **int4 / int8**: every `MatMul` whose `B` is a 2-D float initializer (the projections and the LM head)
//!   becomes com.microsoft `MatMulNBits` (bits 4 or 8, block size [`BLOCK_SIZE`] as onnxruntime-genai's builder
//!   uses, asymmetric: unsigned levels with a packed uint8 zero point per block, ONNX Runtime's quantizer default,
//!   accuracy level [`ACCURACY_LEVEL`]: int8 activations inside the products). Gather embeddings and everything
//!   else stay as they are; a weight another node also reads (a tied embedding) keeps its float initializer for
//!   that node. Inputs, outputs and the KV cache are unchanged.
//! - **w8a8**: the same `MatMul`s but the LM head's become com.microsoft `DynamicQuantizeMatMul` over int8 weights, symmetric per
//!   output column, with activations quantized to uint8 per tensor at run time: ONNX Runtime's integer GEMM, which
//!   has AMX and AVX-512 VNNI kernels where MatMulNBits has none (on an AMX Xeon, 2.8x the fp32 prefill rate).
//!   From fp32 graphs only (the operator takes float32 activations).
//! - **fp16**: the whole graph in float16, as onnxruntime-genai's builder and `runner import --precision fp16`
//!   write it (weights, activations, KV cache, logits), except what float16 cannot hold: the rotary angles (the
//!   float ancestry of every `Cos` / `Sin`, e.g. `positions x inv_freq`) and float `Range`s stay float32 with
//!   Casts at their edges; constants beyond float16's range (mask fills such as -1e9) become ±1e4.
//! - **fp32** from an fp16 graph: the reverse widening, exact.
//!
//! Derived folders are cached under `models/derived/NAME-HASH/LABEL` in runner's home ([`derived_dir`]),
//! keyed by the hash of the source folder's files and the options; `derived.json` records both, and the
//! fidelity of the derived model against its source ([`Fidelity`]): mean KL and top-1 agreement on a fixed
//! probe text and the source's greedy continuation of it, teacher-forced.

mod fidelity;
mod rewrite;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use fidelity::{Fidelity, PROBE_TEXT, compare_logits, measure_fidelity};
pub use rewrite::RewriteStats;

use crate::engine::inspect::GraphReport;
use crate::import::Precision;

/// Where a derived folder records how it was made.
pub const DERIVED_FILE: &str = "derived.json";
/// Bumped when derivation changes what it writes, so folders derived before are made again.
pub const DERIVE_REVISION: u32 = 1;
/// MatMulNBits block size: onnxruntime-genai's builder default (`int4_block_size`), and the GGUF blocks'.
pub const BLOCK_SIZE: usize = 32;
/// MatMulNBits `accuracy_level`: 4 quantizes activations to int8 inside the products (the fast CPU path, as
/// runner's imports and onnxruntime-genai use on CPU).
pub const ACCURACY_LEVEL: u8 = 4;

/// How a derived model is made. Part of the cache key: other options make another folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeriveOptions {
    pub precision: Precision,
    /// MatMulNBits block size (int4, int8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
    /// MatMulNBits accuracy level (int4, int8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_level: Option<u8>,
}

impl DeriveOptions {
    /// runner's options for `precision`: block 32 and accuracy level 4 for int4 / int8 (whose levels are always
    /// asymmetric, with zero points).
    pub fn for_precision(precision: Precision) -> Self {
        let quantized = matches!(precision, Precision::Int4 | Precision::Int8);
        Self {
            precision,
            block_size: quantized.then_some(BLOCK_SIZE),
            accuracy_level: quantized.then_some(ACCURACY_LEVEL),
        }
    }

    /// The same options with another accuracy level (level 0 keeps the products in float).
    pub fn with_accuracy_level(mut self, level: u8) -> Self {
        if self.accuracy_level.is_some() {
            self.accuracy_level = Some(level);
        }
        self
    }

    /// The derived folder's name: `int4-block32-acc4`, `fp16`.
    pub fn label(&self) -> String {
        let mut label = self.precision.to_string();
        if let Some(block) = self.block_size {
            label.push_str(&format!("-block{block}"));
        }
        if let Some(level) = self.accuracy_level {
            label.push_str(&format!("-acc{level}"));
        }
        label
    }
}

/// What `derived.json` holds, and what a run's summary records of a derived model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivationRecord {
    /// [`DERIVE_REVISION`] when the folder was made.
    pub revision: u32,
    pub source_dir: String,
    /// The source folder's hash (`sha256:` over its files' names and contents, as a run records a model).
    pub source_hash: String,
    /// The source graph's weight precision, measured (`fp32`, `fp16`).
    pub source_precision: String,
    pub options: DeriveOptions,
    pub rewrite: RewriteStats,
    /// The derived model against its source.
    pub fidelity: Fidelity,
    pub runner_version: String,
    /// Time spent deriving, fidelity included.
    pub seconds: f64,
}

impl DerivationRecord {
    /// How a model's precision is named where its source matters: "int4 from fp32" for a derived model (an
    /// int4 rounded from fp32 weights is another model than a GGUF's own int4 blocks), the precision alone
    /// otherwise.
    pub fn precision_label(precision: &str, source_precision: Option<&str>) -> String {
        match source_precision {
            Some(source) => format!("{precision} from {source}"),
            None => precision.to_string(),
        }
    }

    /// The record in model folder `dir`; `None` when the folder was not derived (or the record is unreadable).
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(DERIVED_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Why a derivation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX model: {source}", path = .path.display())]
    Decode { path: PathBuf, source: prost::DecodeError },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Write(#[from] crate::onnx::OnnxWriteError),
    #[error("{0}")]
    Model(#[from] crate::engine::ModelError),
    #[error("measuring the derived model's fidelity: {0}")]
    Fidelity(String),
    #[error("hashing the source folder: {0}")]
    Hash(String),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DeriveError + '_ {
    move |source| DeriveError::Io { path: path.to_path_buf(), source }
}

/// Which ONNX Runtime library measures fidelity: the one the run will load (`--ort-lib`, and the GPU build for a
/// GPU provider), since a process loads one. The measurement itself runs on the CPU provider.
#[derive(Debug, Clone, Default)]
pub struct FidelityRuntime {
    pub ort_lib: Option<PathBuf>,
    pub gpu: bool,
    /// ONNX Runtime intra-op threads for the measurement; its default when absent.
    pub threads: Option<usize>,
}

/// Whether a graph measured as `report` can be a derivation's source: float weights, no quantized operators.
pub fn is_float_source(report: &GraphReport) -> bool {
    report.quantized_ops.is_empty() && matches!(report.weight_precision.as_str(), "fp32" | "fp16")
}

/// The cache folder of `options` derived from the source folder `source` whose files hash to `source_hash`:
/// `models/derived/NAME-HASH12/LABEL` under runner's home, NAME being the source's model name.
pub fn derived_dir(source: &Path, source_hash: &str, options: &DeriveOptions) -> PathBuf {
    let hex = source_hash.trim_start_matches("sha256:");
    let name = crate::engine::model::folder_model_name(source);
    let name: String = name.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    crate::paths::runner_home()
        .join("models")
        .join("derived")
        .join(format!("{name}-{}", &hex[..hex.len().min(12)]))
        .join(options.label())
}

/// What [`derive_model`] gave.
#[derive(Debug, Clone)]
pub struct Derived {
    pub dir: PathBuf,
    pub record: DerivationRecord,
    /// Whether the cached folder was current and used as it was.
    pub reused: bool,
}

/// The model folder `options` derives from the float model folder `source`: the cached one when it is current
/// (same source hash, options and [`DERIVE_REVISION`]), else derived now, its fidelity measured, and cached.
pub fn derive_model(source: &Path, options: &DeriveOptions, runtime: &FidelityRuntime) -> Result<Derived, DeriveError> {
    let source_hash = crate::provenance::hash_dir(source).map_err(|e| DeriveError::Hash(format!("{e:#}")))?;
    let out = derived_dir(source, &source_hash, options);
    derive_cached(source, &source_hash, &out, options, runtime)
}

/// [`derive_model`] into the cache folder `out`.
pub fn derive_cached(
    source: &Path,
    source_hash: &str,
    out: &Path,
    options: &DeriveOptions,
    runtime: &FidelityRuntime,
) -> Result<Derived, DeriveError> {
    let current = |dir: &Path| {
        DerivationRecord::read(dir).filter(|r| {
            r.revision == DERIVE_REVISION
                && r.source_hash == source_hash
                && &r.options == options
                && crate::engine::model::graph_file(dir).is_some()
        })
    };
    if let Some(record) = current(out) {
        return Ok(Derived { dir: out.to_path_buf(), record, reused: true });
    }
    let parent = out.parent().expect("a cache folder has a parent");
    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    let name = out.file_name().map_or("derived".into(), |n| n.to_string_lossy().into_owned());
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("Deriving {} from {} into {} ...", options.precision, source.display(), out.display());
    let made = derive_into(source, source_hash, &partial, options, runtime);
    let record = match made {
        Ok(record) => record,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    // Another process may have finished the same folder meanwhile: theirs is as good as this one.
    if out.exists() && current(out).is_none() {
        let _ = std::fs::remove_dir_all(out);
    }
    if let Err(e) = std::fs::rename(&partial, out) {
        let _ = std::fs::remove_dir_all(&partial);
        if current(out).is_none() {
            return Err(DeriveError::Io { path: out.to_path_buf(), source: e });
        }
    }
    let f = &record.fidelity;
    eprintln!(
        "Derived {} ({:.1} s): against its source over {} positions, mean KL {:.2e}, top-1 agreement {:.1}%",
        out.display(),
        record.seconds,
        f.positions,
        f.mean_kl,
        100.0 * f.top1_agreement
    );
    Ok(Derived { dir: out.to_path_buf(), record, reused: false })
}

/// Derives `options` from `source` into the new folder `out` and measures its fidelity; writes `derived.json`.
pub fn derive_into(
    source: &Path,
    source_hash: &str,
    out: &Path,
    options: &DeriveOptions,
    runtime: &FidelityRuntime,
) -> Result<DerivationRecord, DeriveError> {
    let started = Instant::now();
    let (source_precision, rewrite) = write_derived_folder(source, out, options)?;
    let fidelity = measure_fidelity(source, out, runtime)?;
    let record = DerivationRecord {
        revision: DERIVE_REVISION,
        source_dir: source.display().to_string(),
        source_hash: source_hash.to_string(),
        source_precision,
        options: options.clone(),
        rewrite,
        fidelity,
        runner_version: env!("CARGO_PKG_VERSION").to_string(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = out.join(DERIVED_FILE);
    let text = serde_json::to_string_pretty(&record).expect("serializing plain data cannot fail");
    std::fs::write(&path, text + "\n").map_err(io_error(&path))?;
    Ok(record)
}

/// Writes the derived folder (graph and copied files, no fidelity); returns the source's measured weight
/// precision and what the rewrite did. Refuses sources that are not float graphs or already `options.precision`.
pub fn write_derived_folder(
    source: &Path,
    out: &Path,
    options: &DeriveOptions,
) -> Result<(String, RewriteStats), DeriveError> {
    let graph = crate::engine::model::graph_file(source).ok_or_else(|| {
        DeriveError::Unsupported(format!("{} holds no model graph runner can find", source.display()))
    })?;
    let report = crate::engine::inspect::inspect_model(&graph).map_err(|e| DeriveError::Unsupported(e.to_string()))?;
    if !is_float_source(&report) {
        return Err(DeriveError::Unsupported(format!(
            "{} holds a {} model ({}); runner derives other precisions from fp32 or fp16 graphs only",
            source.display(),
            report.weight_precision,
            report.label
        )));
    }
    if report.weight_precision == options.precision.to_string() {
        return Err(DeriveError::Unsupported(format!(
            "{} is already {}: nothing to derive",
            source.display(),
            options.precision
        )));
    }
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let (stats, data_files) = rewrite::rewrite_model(&graph, out, options)?;
    copy_other_files(source, out, &graph, &data_files, options)?;
    Ok((report.weight_precision, stats))
}

/// Copies the folder's files other than the graph and its external data: tokenizer, configs, chat template.
/// `runner.json` (a `runner import` record) is rewritten to say the derived precision.
fn copy_other_files(
    source: &Path,
    out: &Path,
    graph: &Path,
    data_files: &[String],
    options: &DeriveOptions,
) -> Result<(), DeriveError> {
    for entry in std::fs::read_dir(source).map_err(io_error(source))? {
        let entry = entry.map_err(io_error(source))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let skip = path == graph
            || data_files.contains(&name)
            || name == DERIVED_FILE
            || !entry.file_type().map_err(io_error(&path))?.is_file();
        if skip {
            continue;
        }
        let target = out.join(&name);
        if name == crate::model_folder::RUNNER_FILE {
            let mut record: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).map_err(io_error(&path))?)
                    .map_err(|e| DeriveError::Unsupported(format!("{}: {e}", path.display())))?;
            record["precision"] = serde_json::json!(options.precision);
            record["accuracy_level"] = serde_json::json!(options.accuracy_level.unwrap_or(0));
            // What each GGUF tensor became describes the source graph, not this one.
            record["weights"] = serde_json::json!({});
            let text = serde_json::to_string_pretty(&record).expect("serializing plain data cannot fail");
            std::fs::write(&target, text + "\n").map_err(io_error(&target))?;
        } else {
            std::fs::copy(&path, &target).map_err(io_error(&target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
