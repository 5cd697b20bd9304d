//! Turns a llama-family GGUF (llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2, Gemma 3) into an ONNX model folder
//! that ONNX Runtime (and onnxruntime-genai) can run: `model.onnx` + `model.onnx.data`, `tokenizer.json`,
//! `tokenizer_config.json`, `chat_template.jinja`, `genai_config.json` (onnxruntime-genai runs the folder as it is) and `runner.json`
//! (precision, accuracy level, the source's name and sha256, what each tensor became).
//!
//! The folder is built beside the destination under a temporary name and renamed into place at the end,
//! so a failed or interrupted import never leaves a folder that looks complete.

mod arch;
mod files;
mod graph;
mod hparams;
mod pre_tokenizers;
pub mod quant;
mod sentencepiece;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::gguf::{GgmlType, GgufError, GgufFile};
use crate::model_folder::{LoraTarget, MAX_RANK_KEY, MODEL_FILE, PARAMETERS_KEY, RUNNER_FILE, RunnerRecord};
use crate::onnx::OnnxWriteError;

pub use arch::Architecture;
pub(crate) use graph::row_order;
pub use hparams::{Hparams, RopeScaling};

// What the folder holds and how it is named is the model folder's contract, which the engine reads too.
pub use crate::model_folder::Precision;

/// MatMulNBits' `accuracy_level` runs from 0 (float32) to 4 (int8 activations).
pub const MAX_ACCURACY_LEVEL: u8 = 4;

/// Where `runner import` writes when no `--out` is given: `models/NAME/PRECISION` under runner's home, NAME
/// being the GGUF's file name without its extension and quantization suffix
/// (`SmolLM2-135M-Instruct.Q4_1.gguf` -> `SmolLM2-135M-Instruct`), the layout setup uses for the default model.
pub fn default_output_dir(gguf: &Path, precision: Precision) -> PathBuf {
    crate::paths::model_dir(&model_name_of(gguf)).join(precision.to_string())
}

fn model_name_of(gguf: &Path) -> String {
    let stem = gguf.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let is_quant_suffix = |suffix: &str| {
        let upper = suffix.to_ascii_uppercase();
        matches!(upper.as_str(), "F16" | "F32" | "BF16")
            || (upper.starts_with('Q') || upper.starts_with("IQ"))
                && upper.trim_start_matches('I').chars().nth(1).is_some_and(|c| c.is_ascii_digit())
    };
    match stem.rsplit_once(['.', '-']) {
        Some((name, suffix)) if !name.is_empty() && is_quant_suffix(suffix) => name.to_string(),
        _ => stem,
    }
}

/// Options of `runner import`.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub precision: Precision,
    /// MatMulNBits `accuracy_level` (int4, int8): 0 computes in float32, 4 quantizes activations to int8 (fast
    /// on CPU, what onnxruntime-genai uses there; 8-bit weights at level 0 take a slow CPU path).
    pub accuracy_level: u8,
    /// Replace a destination folder that exists and is not empty.
    pub force: bool,
    /// Projections that get LoRA inputs (none: a plain graph).
    pub lora: LoraOptions,
}

/// How `runner import` makes the graph adapter-capable; no targets: a plain graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoraOptions {
    pub targets: Vec<LoraTarget>,
    /// Adapters of a higher rank are refused when they are loaded (recorded in the model's metadata).
    pub max_rank: usize,
}

/// Default `--lora-max-rank`.
pub const DEFAULT_MAX_RANK: usize = 64;

impl Default for ImportOptions {
    fn default() -> Self {
        Self { precision: Precision::Int4, accuracy_level: 4, force: false, lora: LoraOptions::default() }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub out: PathBuf,
    pub precision: Precision,
    pub accuracy_level: u8,
    pub source_sha256: String,
    /// (file name, bytes), in the folder.
    pub files: Vec<(String, u64)>,
    /// GGUF tensors kept in their quantized blocks.
    pub quantized_tensors: usize,
    /// GGUF tensors stored as float32.
    pub float_tensors: usize,
    /// The rotary's per-frequency factors and why (Llama 3's rope_freqs, the LongRoPE set chosen), if any.
    pub rope_factors: Option<String>,
    pub seconds: f64,
}

impl ImportSummary {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(_, len)| len).sum()
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The accuracy level only means something to MatMulNBits, which the float precisions do not use.
        let level = match self.precision {
            Precision::Int4 | Precision::Int8 => format!(", accuracy level {}", self.accuracy_level),
            Precision::W8a8 | Precision::Fp16 | Precision::Fp32 => String::new(),
        };
        writeln!(
            f,
            "imported {} ({}{level}) in {:.1} s: {} tensors quantized, {} float",
            self.out.display(),
            self.precision,
            self.seconds,
            self.quantized_tensors,
            self.float_tensors
        )?;
        if let Some(rope) = &self.rope_factors {
            writeln!(f, "  rope factors: {rope}")?;
        }
        for (name, len) in &self.files {
            writeln!(f, "  {name:<24} {:>10.1} MB", *len as f64 / 1e6)?;
        }
        write!(f, "  {:<24} {:>10.1} MB", "total", self.total_bytes() as f64 / 1e6)
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: general.architecture is `{arch}`; runner can import {}", Architecture::SUPPORTED)]
    Architecture { path: PathBuf, arch: String },
    #[error("tensor `{tensor}` has type {ty}, which runner cannot import yet")]
    TensorType { tensor: String, ty: GgmlType },
    #[error("tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    TensorShape { tensor: String, found: Vec<u64>, expected: Vec<u64> },
    #[error("{path}: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error(
        "{path}: runner's {arch} graph does not use the tensor(s) {}; refusing an import that would leave them out",
        .tensors.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
    )]
    UnusedTensors { path: PathBuf, arch: String, tensors: Vec<String> },
    #[error("--accuracy-level {0} is not one of MatMulNBits' levels 0 to 4")]
    AccuracyLevel(u8),
    #[error("{path} exists and is not empty; pass --force to replace it")]
    OutputExists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Onnx(#[from] OnnxWriteError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io { path: path.to_path_buf(), source }
}

/// The revision of the graph `runner import` writes, recorded in `runner.json`; bumped when folders written
/// before would miss something runner uses. 1: the language-model head takes `logits_from`, so generation
/// computes logits for the last position only. 2: rope factors and scaling (Llama 3's `rope_freqs`, linear,
/// LongRoPE) and llama.cpp's tokenization (Phi-3's special-token rstrip, the space prefix after special tokens in
/// SentencePiece vocabularies, `default` and the other pre-tokenizers' regexes): folders of before give other
/// logits or ids for some GGUFs.
pub const GRAPH_REVISION: u32 = 2;

/// Whether `out` already holds what importing `gguf` with `options` would write: made from the same GGUF
/// (by hash), at the same precision and accuracy level, at the current [`GRAPH_REVISION`], without LoRA
/// inputs (the record does not keep them, so a LoRA import is never current). An unreadable record is not.
pub fn is_current(gguf: &Path, out: &Path, options: &ImportOptions) -> Result<bool, ImportError> {
    if !options.lora.targets.is_empty() || !out.join(MODEL_FILE).is_file() {
        return Ok(false);
    }
    let Ok(Some(record)) = RunnerRecord::read(out) else { return Ok(false) };
    Ok(record.graph_revision == GRAPH_REVISION
        && record.precision == options.precision
        && record.accuracy_level == options.accuracy_level
        && record.source_sha256 == sha256_file(gguf)?)
}

/// Imports `gguf` into the model folder `out`.
pub fn import_gguf(gguf: &Path, out: &Path, options: &ImportOptions) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    if options.accuracy_level > MAX_ACCURACY_LEVEL {
        return Err(ImportError::AccuracyLevel(options.accuracy_level));
    }
    if options.precision == Precision::W8a8 {
        return Err(ImportError::Unsupported {
            path: gguf.to_path_buf(),
            what: "--precision w8a8 is derived from the fp32 graph, not imported: import with --precision fp32,                    then `runner exec --model DIR --precision w8a8` derives it (and the default model or a .gguf given                    to exec does both)"
                .into(),
        });
    }
    check_destination(out, options.force)?;
    let file = GgufFile::open(gguf)?;
    let hparams = Hparams::read(&file)?;
    graph::check_tensor_types(&file)?;

    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_error(&parent))?;
    let temp = parent.join(format!(".{name}.importing-{}", std::process::id()));
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(io_error(&temp))?;
    }
    std::fs::create_dir(&temp).map_err(io_error(&temp))?;

    let built = build_folder(&file, &hparams, &temp, options);
    let (stats, sha256) = match built {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(e);
        }
    };
    if let Err(e) = replace_destination(&temp, out, options.force) {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }

    let mut files = Vec::new();
    for entry in std::fs::read_dir(out).map_err(io_error(out))? {
        let entry = entry.map_err(io_error(out))?;
        let len = entry.metadata().map_err(io_error(&entry.path()))?.len();
        files.push((entry.file_name().to_string_lossy().into_owned(), len));
    }
    files.sort();
    Ok(ImportSummary {
        out: out.to_path_buf(),
        precision: options.precision,
        accuracy_level: options.accuracy_level,
        source_sha256: sha256,
        files,
        quantized_tensors: stats.quantized_tensors,
        float_tensors: stats.float_tensors,
        rope_factors: stats.rope.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn check_destination(out: &Path, force: bool) -> Result<(), ImportError> {
    let occupied = match std::fs::metadata(out) {
        Err(_) => false,
        Ok(meta) if meta.is_dir() => std::fs::read_dir(out).map_err(io_error(out))?.next().is_some(),
        Ok(_) => true,
    };
    if occupied && !force {
        return Err(ImportError::OutputExists { path: out.to_path_buf() });
    }
    Ok(())
}

fn replace_destination(temp: &Path, out: &Path, force: bool) -> Result<(), ImportError> {
    // Checked again: another process may have filled the folder while this import ran.
    check_destination(out, force)?;
    match std::fs::metadata(out) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(out).map_err(io_error(out))?,
        Ok(_) => std::fs::remove_file(out).map_err(io_error(out))?,
        Err(_) => {}
    }
    std::fs::rename(temp, out).map_err(io_error(out))
}

fn build_folder(
    file: &GgufFile,
    hparams: &Hparams,
    dir: &Path,
    options: &ImportOptions,
) -> Result<(graph::GraphStats, String), ImportError> {
    let sha256 = sha256_file(file.path())?;
    let source_name = file.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut record = RunnerRecord {
        precision: options.precision,
        accuracy_level: options.accuracy_level,
        source_gguf: source_name,
        source_sha256: sha256.clone(),
        architecture: hparams.arch.clone(),
        runner_version: env!("CARGO_PKG_VERSION").to_string(),
        graph_revision: GRAPH_REVISION,
        weights: Default::default(),
    };
    let mut metadata = record.metadata_props();
    // Adapters report their size against the base model; LoRA inputs refuse adapters above the max rank.
    let parameters: u64 = file.tensors().iter().map(|t| t.dims.iter().product::<u64>()).sum();
    metadata.push((PARAMETERS_KEY.into(), parameters.to_string()));
    if !options.lora.targets.is_empty() {
        metadata.push((MAX_RANK_KEY.into(), options.lora.max_rank.to_string()));
    }
    let stats = graph::write_model(file, hparams, dir, options, &metadata)?;
    record.weights = stats.weights.clone();
    files::write_tokenizer_files(file, hparams, dir)?;
    files::write_genai_config(file, hparams, dir)?;
    files::write_json(&dir.join(RUNNER_FILE), &record)?;
    Ok((stats, sha256))
}

fn sha256_file(path: &Path) -> Result<String, ImportError> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    std::io::copy(&mut file, &mut hasher).map_err(io_error(path))?;
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod llama_cpp_tests;
#[cfg(test)]
mod tests;
