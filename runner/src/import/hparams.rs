//! The model's hyper-parameters, read from GGUF metadata and checked against the graph runner emits.

use crate::gguf::{GgufFile, MetaValue};

use super::ImportError;
use super::arch::Architecture;

/// Shapes and constants of a llama-family model.
#[derive(Debug, Clone, PartialEq)]
pub struct Hparams {
    /// `general.architecture` as the GGUF names it.
    pub arch: String,
    pub architecture: Architecture,
    pub blocks: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub context: usize,
    pub rope_theta: f64,
    pub rms_eps: f64,
    pub vocab: usize,
    /// What attention scores are multiplied by: 1/sqrt(head size), except where a model says otherwise.
    pub attention_scale: f64,
    /// Per block: the sliding window it attends within (`None`: the whole context).
    pub windows: Vec<Option<usize>>,
    /// The rotary base of sliding-window blocks (Gemma 3's local layers use 10000, its global ones 1e6).
    pub rope_theta_local: f64,
    /// `cap * tanh(score / cap)` on attention scores (Gemma 2).
    pub attention_softcap: Option<f64>,
    /// `cap * tanh(logit / cap)` on the output logits (Gemma 2).
    pub final_softcap: Option<f64>,
    /// The rope scaling `{arch}.rope.scaling.type` names (llama.cpp reads a missing key as `linear`).
    pub rope_scaling: RopeScaling,
    /// llama.cpp's `freq_scale`, 1 / `{arch}.rope.scaling.factor` (1 without a factor, or with scaling `none`):
    /// every rotary angle of a full-attention block is multiplied by it (linear scaling, "position
    /// interpolation").
    pub rope_freq_scale: f64,
    /// The same for sliding-window blocks: Gemma 3's local layers turn unscaled (llama.cpp's
    /// `rope_freq_scale_train_swa` = 1, as Hugging Face scales only Gemma 3's global rotary); Gemma 2's scale like
    /// its global ones.
    pub rope_freq_scale_local: f64,
    /// `{arch}.rope.scaling.attn_factor` (default 1): multiplies cos and sin, so attention scores by its square
    /// (Phi-3 LongRoPE's `sqrt(1 + ln(context / original) / ln(original))`).
    pub rope_attn_factor: f64,
    /// `{arch}.rope.scaling.original_context_length` (default: the context): LongRoPE's long factors apply past it.
    pub rope_original_context: usize,
}

/// The rope scaling types runner applies (llama.cpp's `llama_rope_scaling_type`, less YaRN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeScaling {
    /// `none`: no frequency scale, whatever the factor says.
    None,
    /// `linear` (also what a GGUF without the key gets): angles times `freq_scale`. Llama 3's rope (`llama3` in
    /// Hugging Face's config) is stored this way too, with its per-frequency factors in `rope_freqs.weight`.
    Linear,
    /// `longrope` (Phi-3): per-frequency factors `rope_factors_long`/`rope_factors_short` and an attention factor.
    LongRope,
}

impl Hparams {
    pub fn read(file: &GgufFile) -> Result<Self, ImportError> {
        let arch = file.str("general.architecture")?.to_string();
        let Some(architecture) = Architecture::from_gguf_name(&arch) else {
            return Err(ImportError::Architecture { path: file.path().to_path_buf(), arch });
        };
        let key = |k: &str| format!("{arch}.{k}");
        let int = |k: &str| -> Result<usize, ImportError> { Ok(file.u64(&key(k))? as usize) };
        let blocks = int("block_count")?;
        let embedding = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let kv_heads = int("attention.head_count_kv").or_else(|_| int("attention.head_count"))?;
        let ffn = int("feed_forward_length")?;
        let context = int("context_length")?;
        let rope_theta =
            if file.get(&key("rope.freq_base")).is_some() { file.f64(&key("rope.freq_base"))? } else { 10000.0 };
        let rms_eps = file.f64(&key("attention.layer_norm_rms_epsilon"))?;
        let vocab = file.array("tokenizer.ggml.tokens")?.len();
        let unsupported = |what: String| ImportError::Unsupported { path: file.path().to_path_buf(), what };
        // Qwen3 and others may give heads a size of their own (`attention.key_length`), not embedding / heads.
        let key_length =
            if file.get(&key("attention.key_length")).is_some() { Some(int("attention.key_length")?) } else { None };
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || (key_length.is_none() && embedding % heads != 0) {
            return Err(unsupported(format!(
                "{} heads, {} kv heads and embedding {} do not make whole attention heads",
                heads, kv_heads, embedding
            )));
        }
        let head_dim = key_length.unwrap_or(embedding / heads);
        if file.get(&key("attention.value_length")).is_some() && int("attention.value_length")? != head_dim {
            return Err(unsupported(format!("{arch}.attention.value_length differs from key_length {head_dim}")));
        }
        let rope_dim =
            if file.get(&key("rope.dimension_count")).is_some() { int("rope.dimension_count")? } else { head_dim };
        if rope_dim != head_dim {
            return Err(unsupported(format!(
                "{arch}.rope.dimension_count is {rope_dim}, not the head size {head_dim} (partial rotary is not supported)"
            )));
        }
        if embedding % 32 != 0 || ffn % 32 != 0 || head_dim % 2 != 0 || (heads * head_dim) % 32 != 0 {
            return Err(unsupported(format!(
                "embedding {embedding} and feed-forward {ffn} must be multiples of 32 (GGML blocks)"
            )));
        }
        let float_or = |k: &str, default: f64| -> Result<f64, ImportError> {
            if file.get(&key(k)).is_some() { Ok(file.f64(&key(k))?) } else { Ok(default) }
        };
        let rope_scaling = match file.get(&key("rope.scaling.type")) {
            None => RopeScaling::Linear,
            Some(_) => match file.str(&key("rope.scaling.type"))? {
                "none" => RopeScaling::None,
                "linear" => RopeScaling::Linear,
                "longrope" => RopeScaling::LongRope,
                other => {
                    return Err(unsupported(format!(
                        "{arch}.rope.scaling.type is `{other}`; runner applies the rope scalings none, linear and longrope"
                    )));
                }
            },
        };
        // llama.cpp: `rope.scaling.factor`, else the older `rope.scale_linear`; 0 or missing means 1.
        let factor = float_or("rope.scaling.factor", float_or("rope.scale_linear", 0.0)?)?;
        let rope_freq_scale = if factor == 0.0 || rope_scaling == RopeScaling::None { 1.0 } else { factor.recip() };
        let rope_freq_scale_local = if architecture == Architecture::Gemma3 { 1.0 } else { rope_freq_scale };
        let rope_attn_factor = float_or("rope.scaling.attn_factor", 1.0)?;
        let rope_original_context = match file.get(&key("rope.scaling.original_context_length")) {
            Some(_) => int("rope.scaling.original_context_length")?,
            None => context,
        };
        let windows = sliding_windows(file, &arch, architecture, blocks)?;
        // llama.cpp's Gemma 2 defaults when the GGUF leaves them out: caps of 50 and 30.
        let (attention_softcap, final_softcap) = match architecture {
            Architecture::Gemma2 => {
                (Some(float_or("attn_logit_softcapping", 50.0)?), Some(float_or("final_logit_softcapping", 30.0)?))
            }
            Architecture::Gemma3 => (None, Some(float_or("final_logit_softcapping", 0.0)?)),
            _ => (None, None),
        };
        let final_softcap = final_softcap.filter(|cap| *cap > 0.0);
        // Gemma's 27B models scale queries by 1/sqrt(embedding / heads), the others by 1/sqrt(head size)
        // (llama.cpp tells them apart by their block count, as gemma_pytorch's config does by name).
        let is_27b = matches!((architecture, blocks), (Architecture::Gemma2, 46) | (Architecture::Gemma3, 62));
        let attention_scale =
            if is_27b { (embedding as f64 / heads as f64).sqrt().recip() } else { (head_dim as f64).sqrt().recip() };
        // llama.cpp: Gemma 2's local base defaults to its global one, Gemma 3's to 10000.
        let local_default = if architecture == Architecture::Gemma3 { 10000.0 } else { rope_theta };
        let rope_theta_local = float_or("rope.freq_base_swa", local_default)?;
        Ok(Self {
            rope_scaling,
            rope_freq_scale,
            rope_freq_scale_local,
            rope_attn_factor,
            rope_original_context,
            attention_scale,
            windows,
            rope_theta_local,
            attention_softcap,
            final_softcap,
            arch,
            architecture,
            blocks,
            embedding,
            heads,
            kv_heads,
            head_dim,
            ffn,
            context,
            rope_theta,
            rms_eps,
            vocab,
        })
    }
}

/// Each block's sliding window, as llama.cpp decides it: `{arch}.attention.sliding_window` for the blocks that
/// `{arch}.attention.sliding_window_pattern` (a period, or one flag per block) or the architecture's default
/// pattern marks local. Gemma 2 falls back on a 4096-token window, as llama.cpp does.
fn sliding_windows(
    file: &GgufFile,
    arch: &str,
    architecture: Architecture,
    blocks: usize,
) -> Result<Vec<Option<usize>>, ImportError> {
    let Some(default_pattern) = architecture.default_window_pattern() else { return Ok(vec![None; blocks]) };
    let window_key = format!("{arch}.attention.sliding_window");
    let window = match file.get(&window_key) {
        Some(_) => file.u64(&window_key)? as usize,
        None if architecture == Architecture::Gemma2 => 4096,
        None => 0,
    };
    if window == 0 {
        return Ok(vec![None; blocks]);
    }
    let pattern_key = format!("{arch}.attention.sliding_window_pattern");
    let local: Vec<bool> = match file.get(&pattern_key) {
        Some(MetaValue::Array(flags)) => flags.iter().map(|f| *f == MetaValue::Bool(true)).collect(),
        Some(_) => {
            let n = file.u64(&pattern_key)? as usize;
            (0..blocks).map(|i| n == 0 || i % n < n - 1).collect()
        }
        None => (0..blocks).map(|i| i % default_pattern < default_pattern - 1).collect(),
    };
    if local.len() != blocks {
        return Err(ImportError::Unsupported {
            path: file.path().to_path_buf(),
            what: format!("{pattern_key} has {} flags for {blocks} blocks", local.len()),
        });
    }
    Ok(local.into_iter().map(|is_local| is_local.then_some(window)).collect())
}
