//! SentencePiece vocabularies (`tokenizer.ggml.model = llama`: Llama 2, Mistral, Gemma, ...) as a `tokenizer.json`
//! the `tokenizers` crate runs the way llama.cpp's SPM tokenizer does, as Hugging Face's Llama fast tokenizer
//! expresses it: every stretch of text between special tokens gets a leading `▁` (llama.cpp's
//! `add_space_prefix`), even one that starts with a space, and spaces become `▁`; then BPE merges pieces in the
//! order of the merged piece's score (llama.cpp merges the adjacent pair whose result scores highest), and
//! characters outside the vocabulary fall back to their `<0xXX>` byte tokens.

use std::collections::HashMap;

use serde_json::{Value, json};

/// GGUF token types (llama.cpp's `llama_token_type`) that SentencePiece pieces take part in merges with.
const TOKEN_TYPE_NORMAL: i64 = 1;

/// The SentencePiece word-boundary mark that stands for a space.
const SPACE_MARK: &str = "\u{2581}";

/// The `model`, `normalizer`, `pre_tokenizer` and `decoder` of a SentencePiece `tokenizer.json`, from the GGUF's
/// pieces, their scores and token types; `add_space_prefix` is `tokenizer.ggml.add_space_prefix` (default true).
pub fn tokenizer_parts(
    tokens: &[&str],
    scores: &[f64],
    types: &[i64],
    add_space_prefix: bool,
    unk: Option<&str>,
) -> Value {
    let mut vocab = serde_json::Map::new();
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token.to_string(), json!(id));
    }
    // llama.cpp prefixes every stretch of text between special tokens with a space, even one that starts with a
    // space; `tokenizers`' Metaspace prepends only to a stretch that does not. The normalizer runs on each stretch
    // the added tokens leave (and not on empty ones), so Prepend does what llama.cpp does.
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": SPACE_MARK});
    let normalizer = if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE_MARK}, replace]})
    } else {
        replace
    };
    json!({
        "normalizer": normalizer,
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE_MARK}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": usize::from(add_space_prefix), "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges(tokens, scores, types),
        },
    })
}

/// Every split of a normal piece into two normal pieces, as a merge ranked by the whole piece's score (highest
/// first, then by id), which is the order llama.cpp merges in.
fn merges(tokens: &[&str], scores: &[f64], types: &[i64]) -> Vec<[String; 2]> {
    let is_normal = |id: usize| types.get(id).copied().unwrap_or(TOKEN_TYPE_NORMAL) == TOKEN_TYPE_NORMAL;
    let ids: HashMap<&str, usize> =
        tokens.iter().enumerate().filter(|(id, _)| is_normal(*id)).map(|(id, t)| (*t, id)).collect();
    let mut ranked: Vec<(f64, usize, usize, usize, [String; 2])> = Vec::new();
    for (&piece, &id) in &ids {
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                ranked.push((scores.get(id).copied().unwrap_or(0.0), id, l, r, [left.to_string(), right.to_string()]));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
    ranked.into_iter().map(|(.., pair)| pair).collect()
}
