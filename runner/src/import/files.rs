//! The model folder's text files: `tokenizer.json` (BPE rebuilt from the GGUF vocabulary so the `tokenizers`
//! crate reproduces llama.cpp's ids), `tokenizer_config.json`, `chat_template.jinja`, onnxruntime-genai's
//! `genai_config.json`, and runner's own `runner.json` (precision, accuracy level, source hash, what each tensor
//! became: `model_folder::RunnerRecord`, which the engine reads too). The runner record is a file of its own
//! because onnxruntime-genai refuses unknown keys in `genai_config.json` (0.18: `Unknown value "runner"`).

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::gguf::{GgufFile, MetaValue};

use super::{Hparams, ImportError};
use crate::model_folder::{
    ATTENTION_MASK, CHAT_TEMPLATE_FILE, CONFIG_FILE, INPUT_IDS, LOGITS, MODEL_FILE, PAST_KEY, PAST_VALUE, PRESENT_KEY,
    PRESENT_VALUE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE,
};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Token texts llama.cpp's vocabulary loader makes control tokens whatever their GGUF type (its end-of-turn,
/// end-of-generation and fill-in-the-middle detection in src/llama-vocab.cpp): it then splits them out of text
/// as special tokens, so runner's tokenizer must too. Converters write, for instance, a SentencePiece model's
/// user-defined `<|im_end|>` as a normal token.
const LLAMA_CPP_CONTROL_TEXTS: [&str; 57] = [
    "</s>",
    "<EOT>",
    "<MID>",
    "<PAD>",
    "<PRE>",
    "<REPO>",
    "<SUF>",
    "<end_of_turn>",
    "<end_of_utterance>",
    "<eos>",
    "<fim-middle>",
    "<fim-pad>",
    "<fim-prefix>",
    "<fim-repo>",
    "<fim-suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<fim_prefix>",
    "<fim_suffix>",
    "<reponame>",
    "<turn|>",
    "<|calls|>",
    "<|call|>",
    "<|code_middle|>",
    "<|code_prefix|>",
    "<|code_suffix|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<|end|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|file_sep|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
    "<|fim_prefix|>",
    "<|fim_repo|>",
    "<|fim_suffix|>",
    "<|flush|>",
    "<|im_end|>",
    "<|middle|>",
    "<|prefix|>",
    "<|repo_name|>",
    "<|return|>",
    "<|suffix|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "<\u{ff5c}fim\u{2581}begin\u{ff5c}>",
    "<\u{ff5c}fim\u{2581}end\u{ff5c}>",
    "<\u{ff5c}fim\u{2581}hole\u{ff5c}>",
    "[EOS]",
    "[EOT]",
    "[PAD]",
    "[e~[",
    "_<EOT>",
    "\u{2581}<MID>",
    "\u{2581}<PRE>",
    "\u{2581}<SUF>",
];

/// Phi-3's special tokens that keep the whitespace after them (llama.cpp's exceptions to its Phi-3 rule).
const PHI3_KEPT_WHITESPACE: [&str; 3] = ["<unk>", "<s>", "<|endoftext|>"];

/// Whether the added tokens drop the whitespace after them, as llama.cpp's vocabulary loader decides by the model's
/// name (src/llama-vocab.cpp): a `general.name` containing `phi3` or `phi-3` (any case) gives every special token
/// (control, user-defined, unknown) RSTRIP, and `</s>` too, but not `<unk>`, `<s>` and `<|endoftext|>`. llama.cpp
/// looks those four up by text and fails to load a vocabulary without them: so does runner. (llama.cpp strips
/// what C's `isspace` calls space, `tokenizers` what Unicode does; they part on non-ASCII spaces only.)
fn phi3_rstrip(file: &GgufFile, tokens: &[&str]) -> Result<bool, ImportError> {
    let name = file.get("general.name").and_then(|v| v.as_str()).unwrap_or_default().to_lowercase();
    if !name.contains("phi3") && !name.contains("phi-3") {
        return Ok(false);
    }
    for needed in ["</s>"].iter().chain(&PHI3_KEPT_WHITESPACE) {
        if !tokens.contains(needed) {
            return Err(unsupported(
                file,
                format!(
                    "general.name `{name}` names Phi-3, whose special-token rules llama.cpp applies by name, but the vocabulary has no `{needed}` (llama.cpp refuses it too)"
                ),
            ));
        }
    }
    Ok(true)
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ImportError> {
    let text = serde_json::to_string_pretty(value).expect("serializing plain data cannot fail");
    std::fs::write(path, text + "\n").map_err(super::io_error(path))
}

fn unsupported(file: &GgufFile, what: String) -> ImportError {
    ImportError::Unsupported { path: file.path().to_path_buf(), what }
}

fn token_id(file: &GgufFile, key: &str) -> Option<u64> {
    file.get(key).and_then(|v| v.as_u64())
}

fn token_types(file: &GgufFile, vocab: usize) -> Vec<i64> {
    match file.array("tokenizer.ggml.token_type") {
        Ok(types) => types.iter().map(|t| t.as_f64().map_or(1, |v| v as i64)).collect(),
        Err(_) => vec![1; vocab],
    }
}

/// The parts of a byte-level BPE `tokenizer.json` (GPT-2's byte symbols, the GGUF's merges, the pre-tokenizer
/// `tokenizer.ggml.pre` names).
fn byte_level_bpe(file: &GgufFile, tokens: &[&str]) -> Result<Value, ImportError> {
    let pre = file.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default");
    let Some((pre_tokenizer, ignore_merges)) = super::pre_tokenizers::for_gguf_name(pre) else {
        return Err(unsupported(
            file,
            format!("tokenizer.ggml.pre is `{pre}`; runner knows the pre-tokenizers {}", super::pre_tokenizers::KNOWN),
        ));
    };
    let merges = file.str_array("tokenizer.ggml.merges")?;
    let vocab: Map<String, Value> = tokens.iter().enumerate().map(|(id, t)| (t.to_string(), json!(id))).collect();
    Ok(json!({
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
            "vocab": vocab, "merges": merges,
        },
    }))
}

/// Writes `tokenizer.json`, `tokenizer_config.json` and (when the GGUF has one) `chat_template.jinja`.
pub fn write_tokenizer_files(file: &GgufFile, hp: &Hparams, dir: &Path) -> Result<(), ImportError> {
    let model = file.str("tokenizer.ggml.model")?;
    let tokens = file.str_array("tokenizer.ggml.tokens")?;
    let types = token_types(file, tokens.len());
    let mut tokenizer = match model {
        "gpt2" => byte_level_bpe(file, &tokens)?,
        "llama" => {
            let scores: Vec<f64> = match file.array("tokenizer.ggml.scores") {
                Ok(scores) => scores.iter().map(|s| s.as_f64().unwrap_or(0.0)).collect(),
                Err(_) => vec![0.0; tokens.len()],
            };
            let add_space_prefix = file.get("tokenizer.ggml.add_space_prefix") != Some(&MetaValue::Bool(false));
            let unk = token_id(file, "tokenizer.ggml.unknown_token_id").and_then(|id| tokens.get(id as usize).copied());
            super::sentencepiece::tokenizer_parts(&tokens, &scores, &types, add_space_prefix, unk)
        }
        other => {
            return Err(unsupported(
                file,
                format!(
                    "tokenizer.ggml.model is `{other}`; runner imports byte-level BPE (`gpt2`) and SentencePiece (`llama`) tokenizers"
                ),
            ));
        }
    };
    let rstrip = phi3_rstrip(file, &tokens)?;
    let mut added = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        let ty = types.get(id).copied().unwrap_or(1);
        let control = ty == TOKEN_TYPE_CONTROL || LLAMA_CPP_CONTROL_TEXTS.contains(token);
        if control || ty == TOKEN_TYPE_USER_DEFINED {
            added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": rstrip && !PHI3_KEPT_WHITESPACE.contains(token),
                "normalized": false, "special": control,
            }));
        }
    }
    tokenizer["version"] = json!("1.0");
    tokenizer["truncation"] = Value::Null;
    tokenizer["padding"] = Value::Null;
    tokenizer["added_tokens"] = json!(added);
    let path = dir.join(TOKENIZER_FILE);
    std::fs::write(&path, serde_json::to_string(&tokenizer).expect("plain JSON")).map_err(super::io_error(&path))?;

    let name_of =
        |key: &str| token_id(file, key).and_then(|id| tokens.get(id as usize)).map(|t| Value::String(t.to_string()));
    let template = file.get("tokenizer.chat_template").and_then(|v| v.as_str());
    let pre = file.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default");
    let mut config = json!({
        "add_bos_token": file.get("tokenizer.ggml.add_bos_token").map_or(json!(model == "llama" || (model == "gpt2" && super::pre_tokenizers::adds_bos(pre))), |v| json!(v == &MetaValue::Bool(true))),
        "add_eos_token": false,
        "bos_token": name_of("tokenizer.ggml.bos_token_id"),
        "eos_token": name_of("tokenizer.ggml.eos_token_id"),
        "pad_token": name_of("tokenizer.ggml.padding_token_id"),
        "unk_token": name_of("tokenizer.ggml.unknown_token_id"),
        "clean_up_tokenization_spaces": false,
        "model_max_length": hp.context,
        "tokenizer_class": if model == "llama" { "LlamaTokenizer" } else { "GPT2Tokenizer" },
    });
    if let Some(template) = template {
        config["chat_template"] = json!(template);
        let path = dir.join(CHAT_TEMPLATE_FILE);
        std::fs::write(&path, template).map_err(super::io_error(&path))?;
    }
    write_json(&dir.join(TOKENIZER_CONFIG_FILE), &config)
}

/// Writes onnxruntime-genai's `genai_config.json`.
pub fn write_genai_config(file: &GgufFile, hp: &Hparams, dir: &Path) -> Result<(), ImportError> {
    let eos = token_id(file, "tokenizer.ggml.eos_token_id").unwrap_or(0);
    let bos = token_id(file, "tokenizer.ggml.bos_token_id").unwrap_or(eos);
    let pad = token_id(file, "tokenizer.ggml.padding_token_id").unwrap_or(eos);
    let config = json!({
        "model": {
            "bos_token_id": bos,
            "context_length": hp.context,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": MODEL_FILE,
                "head_size": hp.head_dim,
                "hidden_size": hp.embedding,
                "inputs": {
                    "input_ids": INPUT_IDS,
                    "attention_mask": ATTENTION_MASK,
                    "past_key_names": PAST_KEY,
                    "past_value_names": PAST_VALUE,
                },
                "outputs": {
                    "logits": LOGITS,
                    "present_key_names": PRESENT_KEY,
                    "present_value_names": PRESENT_VALUE,
                },
                "num_attention_heads": hp.heads,
                "num_hidden_layers": hp.blocks,
                "num_key_value_heads": hp.kv_heads,
            },
            "eos_token_id": eos,
            "pad_token_id": pad,
            "type": hp.arch,
            "vocab_size": hp.vocab,
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": false, "early_stopping": true, "length_penalty": 1.0,
            "max_length": hp.context, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
            "num_return_sequences": 1, "past_present_share_buffer": false, "repetition_penalty": 1.0,
            "temperature": 1.0, "top_k": 1, "top_p": 1.0,
        },
    });
    write_json(&dir.join(CONFIG_FILE), &config)
}
