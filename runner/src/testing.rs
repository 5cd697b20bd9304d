//! Test support shared by unit and integration tests: tiny generated models and fixtures, so tests
//! run the real engine without a downloaded model. Not part of runner's public interface.

use std::path::{Path, PathBuf};

use crate::gguf::writer::GgufWriter;
use crate::gguf::{GgmlType, MetaValue};
use crate::import::quant::{quantize_q4_1, quantize_q8_0, random_blocks};
use crate::import::{ImportOptions, Precision, import_gguf};

pub mod contracts;
pub mod reference;

/// Shape of the model `write_tiny_llama_gguf` writes: the default model's layout, scaled down.
pub mod tiny {
    pub const BLOCKS: usize = 2;
    pub const EMBEDDING: usize = 64;
    pub const HEADS: usize = 4;
    pub const KV_HEADS: usize = 2;
    pub const HEAD_DIM: usize = 16;
    pub const FFN: usize = 128;
    // Room for a real scenario prompt: the byte-level tiny vocabulary spends a token on nearly every byte.
    pub const CONTEXT: usize = 1024;
    pub const ROPE_THETA: f32 = 10000.0;
    pub const RMS_EPS: f32 = 1e-5;
    /// `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`: ids 0, 1, 2.
    pub const CONTROL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    pub const BOS_ID: u32 = 1;
    pub const EOS_ID: u32 = 2;
    /// Merges after the 256 byte-level symbols; each adds one token.
    pub const MERGES: [&str; 8] = ["Ġ t", "h e", "i n", "Ġt he", "e r", "a n", "Ġ a", "o n"];
    /// Control tokens + byte symbols + one token per merge.
    pub const VOCAB: usize = 3 + 256 + MERGES.len();
}

/// SmolLM2's ChatML chat template, as its GGUF carries it.
pub const SMOLLM_CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Fixtures come from the same portable generator as the rest of runner, so they are the same everywhere.
pub use crate::rng::SplitMix64;

/// GPT-2's byte-to-symbol map: printable bytes stand for themselves, the others are shifted past 255.
pub fn byte_level_symbol(byte: u8) -> char {
    let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable {
        return char::from(byte);
    }
    let rank = (0..byte).filter(|b| !matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)).count() as u32;
    char::from_u32(256 + rank).expect("below the surrogate range")
}

/// The tiny model's vocabulary: control tokens, the 256 byte-level symbols, then one token per merge.
pub fn tiny_vocab() -> Vec<String> {
    let mut tokens: Vec<String> = tiny::CONTROL_TOKENS.iter().map(|t| t.to_string()).collect();
    tokens.extend((0..=255u8).map(|b| byte_level_symbol(b).to_string()));
    tokens.extend(tiny::MERGES.iter().map(|m| m.replace(' ', "")));
    tokens
}

/// The sizes of a generated llama model.
#[derive(Debug, Clone, Copy)]
pub struct LlamaShape {
    pub blocks: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
}

impl LlamaShape {
    /// The tiny model's shape ([`tiny`]).
    pub const TINY: Self = Self {
        blocks: tiny::BLOCKS,
        embedding: tiny::EMBEDDING,
        heads: tiny::HEADS,
        kv_heads: tiny::KV_HEADS,
        ffn: tiny::FFN,
    };
    /// Wide enough that every row is whole K-quant super-blocks of 256 (the tiny model's 64 is not).
    pub const K_QUANT: Self = Self { blocks: 2, embedding: 256, heads: 4, kv_heads: 2, ffn: 512 };

    pub fn head_dim(&self) -> usize {
        self.embedding / self.heads
    }
}

/// Writes a tiny random llama GGUF shaped like the default model (SmolLM2: ChatML, gpt2 byte-level BPE,
/// Q4_1 block weights, Q8_0 embedding tied to the output head, F32 norms) but with 2 blocks of width 64,
/// so importer and engine tests run in milliseconds. The same `seed` gives the same file.
///
/// Panics when the file cannot be written: this is test support, and the test should fail loudly.
pub fn write_tiny_llama_gguf(path: &Path, seed: u64) {
    let types = |name: &str| if name == "token_embd.weight" { GgmlType::Q8_0 } else { GgmlType::Q4_1 };
    write_llama_gguf(path, seed, &LlamaShape::TINY, types);
}

/// Writes a random llama GGUF of `shape` with the tiny model's vocabulary, each weight (and the embedding) in
/// `type_of(tensor name)`: Q4_1 and Q8_0 quantized from random values, F32 as they are, other quantized types
/// as random valid blocks.
pub fn write_llama_gguf(path: &Path, seed: u64, shape: &LlamaShape, type_of: impl Fn(&str) -> GgmlType) {
    use tiny::{BOS_ID, CONTEXT, EOS_ID, MERGES, RMS_EPS, ROPE_THETA, VOCAB};
    let LlamaShape { blocks, embedding, heads, kv_heads, ffn } = *shape;
    let head_dim = shape.head_dim();
    let mut rng = SplitMix64::new(seed);
    let mut w = GgufWriter::new();
    let u32v = |v: usize| MetaValue::U32(v as u32);
    let string = |s: &str| MetaValue::String(s.to_string());
    w.meta("general.architecture", string("llama"))
        .meta("general.name", string("tiny-llama"))
        .meta("general.file_type", MetaValue::U32(3))
        .meta("llama.block_count", u32v(blocks))
        .meta("llama.context_length", u32v(CONTEXT))
        .meta("llama.embedding_length", u32v(embedding))
        .meta("llama.feed_forward_length", u32v(ffn))
        .meta("llama.attention.head_count", u32v(heads))
        .meta("llama.attention.head_count_kv", u32v(kv_heads))
        .meta("llama.rope.freq_base", MetaValue::F32(ROPE_THETA))
        .meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(RMS_EPS))
        .meta("llama.rope.dimension_count", u32v(head_dim))
        .meta("llama.vocab_size", u32v(VOCAB))
        .meta("tokenizer.ggml.model", string("gpt2"))
        .meta("tokenizer.ggml.pre", string("smollm"))
        .meta("tokenizer.ggml.tokens", MetaValue::Array(tiny_vocab().into_iter().map(MetaValue::String).collect()))
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array((0..VOCAB).map(|i| MetaValue::I32(if i < 3 { 3 } else { 1 })).collect()),
        )
        .meta("tokenizer.ggml.merges", MetaValue::Array(MERGES.iter().map(|m| string(m)).collect()))
        .meta("tokenizer.ggml.bos_token_id", MetaValue::U32(BOS_ID))
        .meta("tokenizer.ggml.eos_token_id", MetaValue::U32(EOS_ID))
        .meta("tokenizer.ggml.unknown_token_id", MetaValue::U32(0))
        .meta("tokenizer.ggml.padding_token_id", MetaValue::U32(EOS_ID))
        .meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(false))
        .meta("tokenizer.chat_template", string(SMOLLM_CHAT_TEMPLATE));

    // Encoded values keep the tiny model's random stream (and files) as they were before other types existed.
    let encode = |rng: &mut SplitMix64, ty: GgmlType, len: usize, amplitude: f32| match ty {
        GgmlType::Q4_1 => quantize_q4_1(&rng.values(len, amplitude)),
        GgmlType::Q8_0 => quantize_q8_0(&rng.values(len, amplitude)),
        GgmlType::F32 => rng.values(len, amplitude).iter().flat_map(|v| v.to_le_bytes()).collect(),
        other => random_blocks(other, len, amplitude, rng),
    };
    let matrix = |w: &mut GgufWriter, rng: &mut SplitMix64, name: String, inner: usize, outer: usize| {
        let ty = type_of(&name);
        w.tensor(&name, &[inner as u64, outer as u64], ty, encode(rng, ty, inner * outer, 1.0 / (inner as f32).sqrt()));
    };
    let norm = |w: &mut GgufWriter, rng: &mut SplitMix64, name: String| {
        let values: Vec<f32> = (0..embedding).map(|_| 1.0 + 0.2 * rng.next_signed()).collect();
        w.tensor(&name, &[embedding as u64], GgmlType::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect());
    };
    // Small enough that the tied head gives soft distributions, so KL comparisons mean something.
    let ty = type_of("token_embd.weight");
    let table = encode(&mut rng, ty, VOCAB * embedding, 0.15);
    w.tensor("token_embd.weight", &[embedding as u64, VOCAB as u64], ty, table);
    for b in 0..blocks {
        norm(&mut w, &mut rng, format!("blk.{b}.attn_norm.weight"));
        matrix(&mut w, &mut rng, format!("blk.{b}.attn_q.weight"), embedding, heads * head_dim);
        matrix(&mut w, &mut rng, format!("blk.{b}.attn_k.weight"), embedding, kv_heads * head_dim);
        matrix(&mut w, &mut rng, format!("blk.{b}.attn_v.weight"), embedding, kv_heads * head_dim);
        matrix(&mut w, &mut rng, format!("blk.{b}.attn_output.weight"), heads * head_dim, embedding);
        norm(&mut w, &mut rng, format!("blk.{b}.ffn_norm.weight"));
        matrix(&mut w, &mut rng, format!("blk.{b}.ffn_gate.weight"), embedding, ffn);
        matrix(&mut w, &mut rng, format!("blk.{b}.ffn_up.weight"), embedding, ffn);
        matrix(&mut w, &mut rng, format!("blk.{b}.ffn_down.weight"), ffn, embedding);
    }
    norm(&mut w, &mut rng, "output_norm.weight".to_string());
    w.write_file(path).unwrap_or_else(|e| panic!("cannot write tiny GGUF {}: {e}", path.display()));
}

/// Writes the tiny GGUF to `dir/tiny.gguf` and imports it into `dir/<precision>` (accuracy level 4 for int4),
/// returning the model folder: a real model folder for engine and exec tests, made in milliseconds.
pub fn write_tiny_model_folder(dir: &Path, seed: u64, precision: Precision) -> PathBuf {
    let gguf = dir.join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, seed);
    let out = dir.join(precision.to_string());
    let options = ImportOptions { precision, accuracy_level: 4, force: true, ..Default::default() };
    import_gguf(&gguf, &out, &options).unwrap_or_else(|e| panic!("importing the tiny model: {e}"));
    out
}

/// ONNX Runtime writes a telemetry file under `$XDG_CACHE_HOME` when it starts: tests call this before
/// loading it, to keep that file out of the user's home.
pub fn quiet_ort_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: set once, before this test process loads ONNX Runtime through the tests that call this.
        unsafe { std::env::set_var("XDG_CACHE_HOME", std::env::temp_dir().join("runner-test-cache")) };
    });
}

/// The default model's GGUF for tests that need the real model. Where setup has not installed it, a
/// developer's run skips such tests with a note, but CI (which runs setup first) fails: a skipped real-model
/// test must not pass unnoticed there.
pub fn installed_default_gguf() -> Option<std::path::PathBuf> {
    let gguf = crate::paths::default_gguf();
    if gguf.is_file() {
        return Some(gguf);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the default model's GGUF is not installed at {} although CI runs `cargo xtask setup` first",
        gguf.display()
    );
    eprintln!("skipped: the default model's GGUF is not installed at {} (run `cargo xtask setup`)", gguf.display());
    None
}

/// A `derived.json` record of a model runner derived at `precision` from a folder of `source_precision`,
/// with placeholder provenance and fidelity: for tests of what names a derived model.
pub fn derivation_record(precision: &str, source_precision: &str) -> crate::derive::DerivationRecord {
    serde_json::from_value(serde_json::json!({
        "revision": 1, "source_dir": format!("models/Tiny/{source_precision}"),
        "source_hash": format!("sha256:{}", "c".repeat(64)), "source_precision": source_precision,
        "options": {"precision": precision},
        "rewrite": {"quantized_matmuls": 1, "quantized_weights": 1, "shared_weights_kept": 0,
                    "converted_tensors": 0, "float32_nodes": [], "clamped_values": 0},
        "fidelity": {"method": "probe", "probe_tokens": 7, "greedy_tokens": 3, "positions": 10,
                     "mean_kl": 0.4, "top1_agreement": 0.7},
        "runner_version": "0.1.0", "seconds": 1.0
    }))
    .expect("a derivation record")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    #[test]
    fn byte_level_symbols_are_distinct_and_match_gpt2() {
        let symbols: std::collections::BTreeSet<char> = (0..=255u8).map(byte_level_symbol).collect();
        assert_eq!(symbols.len(), 256);
        assert_eq!(byte_level_symbol(b' '), 'Ġ');
        assert_eq!(byte_level_symbol(b'\n'), 'Ċ');
        assert_eq!(byte_level_symbol(b'a'), 'a');
    }

    #[test]
    fn tiny_gguf_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_tiny_llama_gguf(&path, 7);
        let gguf = GgufFile::open(&path).unwrap();
        assert_eq!(gguf.str("general.architecture").unwrap(), "llama");
        assert_eq!(gguf.str_array("tokenizer.ggml.tokens").unwrap().len(), tiny::VOCAB);
        assert_eq!(gguf.tensor("blk.1.ffn_down.weight").unwrap().ggml_type, GgmlType::Q4_1);
        assert_eq!(gguf.tensor("token_embd.weight").unwrap().ggml_type, GgmlType::Q8_0);
        assert_eq!(gguf.tensors().len(), 2 + 9 * tiny::BLOCKS);
        let again = dir.path().join("again.gguf");
        write_tiny_llama_gguf(&again, 7);
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
    }

    #[test]
    fn tiny_model_folder_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let folder = write_tiny_model_folder(dir.path(), 1, Precision::Int4);
        assert_eq!(folder, dir.path().join("int4"));
        assert!(folder.join("model.onnx").is_file() && folder.join("tokenizer.json").is_file());
    }
}
