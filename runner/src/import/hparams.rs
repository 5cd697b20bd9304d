//! The model's hyper-parameters, read from GGUF metadata and checked against the graph runner emits.

use crate::gguf::GgufFile;

use super::ImportError;

/// Shapes and constants of a llama model.
#[derive(Debug, Clone, PartialEq)]
pub struct Hparams {
    pub arch: String,
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
}

impl Hparams {
    pub fn read(file: &GgufFile) -> Result<Self, ImportError> {
        let arch = file.str("general.architecture")?.to_string();
        if arch != "llama" {
            return Err(ImportError::Architecture { path: file.path().to_path_buf(), arch });
        }
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
        if heads == 0 || kv_heads == 0 || embedding % heads != 0 || heads % kv_heads != 0 {
            return Err(unsupported(format!(
                "{} heads, {} kv heads and embedding {} do not make whole attention heads",
                heads, kv_heads, embedding
            )));
        }
        let head_dim = embedding / heads;
        let rope_dim =
            if file.get(&key("rope.dimension_count")).is_some() { int("rope.dimension_count")? } else { head_dim };
        if rope_dim != head_dim {
            return Err(unsupported(format!(
                "{arch}.rope.dimension_count is {rope_dim}, not the head size {head_dim} (partial rotary is not supported)"
            )));
        }
        if embedding % 32 != 0 || ffn % 32 != 0 || head_dim % 2 != 0 {
            return Err(unsupported(format!(
                "embedding {embedding} and feed-forward {ffn} must be multiples of 32 (GGML blocks)"
            )));
        }
        Ok(Self { arch, blocks, embedding, heads, kv_heads, head_dim, ffn, context, rope_theta, rms_eps, vocab })
    }
}
