//! The model folder's contract: what `runner import` writes and the engine, inspection and `runner adapter`
//! read, kept in one place that depends on nothing else in runner, so that none of them has to import
//! another for it. It names the folder's files, holds the `runner.json` record (how `runner import` made
//! the folder, and at which precision) and the metadata keys it puts in `model.onnx`, and names the decoder
//! graph's inputs and outputs: token ids, attention mask, position ids, the KV cache of every layer, the
//! logits and the `logits_from` input, and the LoRA inputs, named after PEFT's state-dict keys.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------------------
// Files.

pub const MODEL_FILE: &str = "model.onnx";
/// The external data of the ONNX graph `runner import` writes.
pub const MODEL_DATA_FILE: &str = "model.onnx.data";
/// onnxruntime-genai's configuration: graph file, input/output name patterns, head counts, EOS ids.
pub const CONFIG_FILE: &str = "genai_config.json";
/// The transformers config Optimum exports beside `model.onnx`.
pub const HF_CONFIG_FILE: &str = "config.json";
/// transformers' generation defaults; its `eos_token_id` list is often longer than config.json's.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// How `runner import` made the folder (precision, accuracy level, source); optional.
pub const RUNNER_FILE: &str = "runner.json";

// ---------------------------------------------------------------------------------------------------------
// Graph inputs and outputs.

/// The decoder graph's inputs and outputs as `runner import` names them, which are also the names Optimum
/// and onnxruntime-genai's builder use unless `genai_config.json` says otherwise. A per-layer pattern's `%d`
/// stands for the layer index ([`layer_name`]).
pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
/// Optional: Optimum exports usually take it; `runner import` graphs (GroupQueryAttention) do not.
pub const POSITION_IDS: &str = "position_ids";
pub const PAST_KEY: &str = "past_key_values.%d.key";
pub const PAST_VALUE: &str = "past_key_values.%d.value";
pub const LOGITS: &str = "logits";
pub const PRESENT_KEY: &str = "present.%d.key";
pub const PRESENT_VALUE: &str = "present.%d.value";
/// The optional input (int64 [1], default 0) from which chunk position on the graph computes logits.
pub const LOGITS_FROM_INPUT: &str = "logits_from";

/// `pattern` with its `%d` replaced by `layer`.
pub fn layer_name(pattern: &str, layer: usize) -> String {
    pattern.replace("%d", &layer.to_string())
}

// ---------------------------------------------------------------------------------------------------------
// `model.onnx` metadata and `runner.json`.

/// Metadata keys `runner import` writes into `model.onnx` for adapters: the LoRA max rank (adapters of a
/// higher rank are refused) and the base model's parameter count (an adapter's size is reported against it).
pub const MAX_RANK_KEY: &str = "runner.lora_max_rank";
pub const PARAMETERS_KEY: &str = "runner.parameters";

/// How weights (and, for fp16, activations) are stored in the imported model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Keep the GGUF's own blocks, bit for bit, as MatMulNBits: 4-bit for Q4_0, Q4_1, Q4_K (and Q2_K, Q3_K),
    /// 8-bit for Q5_0, Q5_1, Q8_0, Q5_K and Q6_K. At the default accuracy level 4 the matrix products quantize
    /// activations to int8 (float32 between them); level 0 keeps them float32.
    #[default]
    Int4,
    /// MatMulNBits 8-bit (block 32, asymmetric with uint8 zero points) requantized from the dequantized
    /// weights; types whose blocks fit 8 bits (Q5_0, Q5_1, Q8_0, Q5_K, Q6_K) are kept exactly. Activations as for int4: int8 inside the matrix products
    /// at accuracy level 4, float32 at level 0.
    Int8,
    /// int8 weights (one scale per output channel, symmetric) and int8 activations quantized per tensor at
    /// run time: ONNX Runtime's `DynamicQuantizeMatMul`, whose integer GEMM has AMX and AVX-512 VNNI kernels
    /// (MatMulNBits has neither). Derived from the fp32 graph (a GGUF is imported to fp32 first); the derived
    /// folder records its fidelity against it.
    W8a8,
    /// Everything in float16: weights, activations, KV cache and logits (the graph's float type).
    Fp16,
    /// Dequantize every weight to float32.
    Fp32,
}

impl Precision {
    pub const ALL: [Precision; 5] =
        [Precision::Int4, Precision::Int8, Precision::W8a8, Precision::Fp16, Precision::Fp32];
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Int4 => "int4",
            Precision::Int8 => "int8",
            Precision::W8a8 => "w8a8",
            Precision::Fp16 => "fp16",
            Precision::Fp32 => "fp32",
        })
    }
}

/// How the folder was made, for results to report: `runner.json`, also in the ONNX model's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerRecord {
    pub precision: Precision,
    pub accuracy_level: u8,
    pub source_gguf: String,
    pub source_sha256: String,
    pub architecture: String,
    pub runner_version: String,
    /// `import::GRAPH_REVISION` when the folder was written (0: before revisions were recorded).
    #[serde(default)]
    pub graph_revision: u32,
    /// What each GGUF tensor became: its type and its form in the graph (empty before this was recorded).
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, String>,
}

impl RunnerRecord {
    /// The record of the model folder `dir`; `None` when the folder was not made by `runner import`.
    pub fn read(dir: &Path) -> Result<Option<Self>, RecordError> {
        let path = dir.join(RUNNER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RecordError::Read { path, source }),
        };
        serde_json::from_str(&text).map(Some).map_err(|source| RecordError::Invalid { path, source })
    }

    pub fn metadata_props(&self) -> Vec<(String, String)> {
        vec![
            ("runner.precision".into(), self.precision.to_string()),
            ("runner.accuracy_level".into(), self.accuracy_level.to_string()),
            ("runner.source_gguf".into(), self.source_gguf.clone()),
            ("runner.source_sha256".into(), self.source_sha256.clone()),
        ]
    }
}

/// Why a folder's `runner.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid runner record: {source}")]
    Invalid { path: PathBuf, source: serde_json::Error },
}

// ---------------------------------------------------------------------------------------------------------
// LoRA inputs.

/// A projection LoRA can target, named as in Hugging Face / PEFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LoraTarget::QProj => "q_proj",
            LoraTarget::KProj => "k_proj",
            LoraTarget::VProj => "v_proj",
            LoraTarget::OProj => "o_proj",
            LoraTarget::GateProj => "gate_proj",
            LoraTarget::UpProj => "up_proj",
            LoraTarget::DownProj => "down_proj",
        }
    }

    /// The module path inside a decoder layer.
    fn module(self) -> &'static str {
        match self {
            LoraTarget::QProj | LoraTarget::KProj | LoraTarget::VProj | LoraTarget::OProj => "self_attn",
            LoraTarget::GateProj | LoraTarget::UpProj | LoraTarget::DownProj => "mlp",
        }
    }

    /// The graph input (and adapter tensor) name of this target's `A` or `B` in `layer`.
    pub fn input_name(self, layer: usize, side: Side) -> String {
        format!("{PEFT_PREFIX}{layer}.{}.{}.lora_{side}.weight", self.module(), self.name())
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LoraTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LoraTarget::ALL.into_iter().find(|t| t.name() == s.trim()).ok_or_else(|| {
            let known: Vec<&str> = LoraTarget::ALL.iter().map(|t| t.name()).collect();
            format!("`{s}` is not a LoRA target; use {}", known.join(", "))
        })
    }
}

/// The prefix of every LoRA input name, up to the layer index.
pub const PEFT_PREFIX: &str = "base_model.model.model.layers.";

/// Which matrix of a LoRA pair an input holds: `A` [in, r] or `B` [r, out].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    A,
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// What a LoRA input name says: layer, target and side.
pub fn parse_input_name(name: &str) -> Option<(usize, LoraTarget, Side)> {
    let rest = name.strip_prefix(PEFT_PREFIX)?;
    let (layer, rest) = rest.split_once('.')?;
    let layer = layer.parse().ok()?;
    let (side, rest) = if let Some(rest) = rest.strip_suffix(".lora_A.weight") {
        (Side::A, rest)
    } else {
        (Side::B, rest.strip_suffix(".lora_B.weight")?)
    };
    let (module, target) = rest.split_once('.')?;
    let target: LoraTarget = target.parse().ok()?;
    (target.module() == module).then_some((layer, target, side))
}
