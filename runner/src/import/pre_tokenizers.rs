//! The byte-level BPE pre-tokenizers a GGUF names in `tokenizer.ggml.pre`, as `tokenizer.json` pre-tokenizers
//! that split text where llama.cpp splits it. The regexes are llama.cpp's (src/llama-vocab.cpp), which spell
//! the original tokenizers' case-insensitive contractions `(?i:'s|...)` out as `'[sS]|...`.

use serde_json::{Value, json};

/// Llama 3's split: contractions, letters with one leading non-letter, digits in runs of up to three.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split: Llama 3's with every digit on its own.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` names runner reads, for error messages.
pub const KNOWN: &str = "gpt-2, default, smollm, llama-bpe (llama3, llama-v3), qwen2 (deepseek-r1-qwen)";

/// The pre-tokenizer of `tokenizer.json` for the GGUF pre-tokenizer `pre`, or `None` when runner does not know it.
pub fn for_gguf_name(pre: &str) -> Option<Value> {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    match pre {
        // SmolLM's pre-tokenizer splits every digit on its own before GPT-2's byte-level regex.
        "smollm" => Some(json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level,
        ]})),
        "gpt-2" | "default" => Some(byte_level),
        "llama-bpe" | "llama3" | "llama-v3" => Some(regex_then_bytes(LLAMA3)),
        "qwen2" | "deepseek-r1-qwen" => Some(regex_then_bytes(QWEN2)),
        _ => None,
    }
}

/// Split on `regex` (each match a piece of its own), then map bytes to GPT-2's symbols without its regex.
fn regex_then_bytes(regex: &str) -> Value {
    json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
    ]})
}
