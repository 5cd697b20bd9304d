//! The model folder `runner import` writes: `model.onnx` (+ `model.onnx.data`), `tokenizer.json`,
//! `tokenizer_config.json`, `chat_template.jinja`, `genai_config.json` (onnxruntime-genai's format) and
//! `runner.json` (precision and accuracy level). Reading it checks every file up front so a broken folder
//! fails with the file and the problem named, before ONNX Runtime is involved.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tokenizers::Tokenizer;

pub const MODEL_FILE: &str = "model.onnx";
pub const CONFIG_FILE: &str = "genai_config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// How `runner import` made the folder (precision, accuracy level, source); optional.
pub const RUNNER_FILE: &str = "runner.json";

/// Folder names that say a precision rather than a model (`models/NAME/int4`).
const PRECISION_FOLDERS: &[&str] = &["int4", "int8", "fp16", "fp32", "bf16"];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{file} is missing from {dir}", dir = .dir.display())]
    Missing { dir: PathBuf, file: &'static str },
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid JSON: {source}", path = .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {problem}", path = .path.display())]
    Config { path: PathBuf, problem: String },
    #[error("{path} is not a usable tokenizer: {reason}", path = .path.display())]
    Tokenizer { path: PathBuf, reason: String },
}

/// What a model folder is, for results and for sizing the KV cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub dir: PathBuf,
    /// `int4`, `fp32`... as the importer recorded it; `unknown` when it did not.
    pub precision: String,
    /// MatMulNBits accuracy level the importer used, when it recorded one.
    pub accuracy_level: Option<i64>,
    pub layers: usize,
    pub kv_heads: usize,
    pub head_size: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub eos_token_ids: Vec<u32>,
    /// The execution provider the engine runs the model on.
    pub ep: String,
}

/// A model folder, read and checked: its description, tokenizer and chat template source.
pub struct ModelFolder {
    pub info: ModelInfo,
    pub model_path: PathBuf,
    pub tokenizer: Tokenizer,
    /// The Jinja chat template, when the folder has one.
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

impl ModelFolder {
    pub fn open(dir: &Path) -> Result<ModelFolder, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::Read {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder"),
            });
        }
        let model_path = require(dir, MODEL_FILE)?;
        let config_path = require(dir, CONFIG_FILE)?;
        let tokenizer_path = require(dir, TOKENIZER_FILE)?;
        let config = read_json(&config_path)?;
        let mut info = parse_config(&config, &config_path, dir)?;
        // One reader for runner.json: the importer's, which wrote it.
        let record = crate::import::RunnerRecord::read(dir)
            .map_err(|err| ModelError::Config { path: dir.join(RUNNER_FILE), problem: err.to_string() })?;
        if let Some(record) = record {
            info.precision = record.precision.to_string();
            info.accuracy_level = Some(record.accuracy_level.into());
        }

        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|err| ModelError::Tokenizer { path: tokenizer_path.clone(), reason: err.to_string() })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if info.vocab == 0 {
            info.vocab = tokenizer_vocab;
        }

        let tokenizer_config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let tokenizer_config =
            if tokenizer_config_path.is_file() { Some(read_json(&tokenizer_config_path)?) } else { None };
        let special = |key: &str| tokenizer_config.as_ref().and_then(|c| special_token(c.get(key)?));

        let template_path = dir.join(CHAT_TEMPLATE_FILE);
        let chat_template = if template_path.is_file() {
            Some(
                std::fs::read_to_string(&template_path)
                    .map_err(|source| ModelError::Read { path: template_path, source })?,
            )
        } else {
            tokenizer_config.as_ref().and_then(|c| c.get("chat_template")?.as_str().map(str::to_owned))
        };

        let eos_token =
            special("eos_token").or_else(|| info.eos_token_ids.first().and_then(|&id| tokenizer.id_to_token(id)));
        Ok(ModelFolder { info, model_path, tokenizer, chat_template, bos_token: special("bos_token"), eos_token })
    }
}

fn require(dir: &Path, file: &'static str) -> Result<PathBuf, ModelError> {
    let path = dir.join(file);
    if path.is_file() { Ok(path) } else { Err(ModelError::Missing { dir: dir.to_path_buf(), file }) }
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.to_path_buf(), source })
}

/// HF writes special tokens either as strings or as `{"content": ...}` objects.
fn special_token(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => map.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn parse_config(config: &Value, path: &Path, dir: &Path) -> Result<ModelInfo, ModelError> {
    let problem = |problem: String| ModelError::Config { path: path.to_path_buf(), problem };
    let model = config.get("model").ok_or_else(|| problem("no `model` section".into()))?;
    let decoder = model.get("decoder").ok_or_else(|| problem("no `model.decoder` section".into()))?;
    let count = |section: &Value, prefix: &str, key: &str| -> Result<usize, ModelError> {
        let value = section.get(key).ok_or_else(|| problem(format!("`{prefix}.{key}` is missing")))?;
        value
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| problem(format!("`{prefix}.{key}` must be a positive integer, found {value}")))
    };
    let layers = count(decoder, "model.decoder", "num_hidden_layers")?;
    let kv_heads = count(decoder, "model.decoder", "num_key_value_heads")?;
    let head_size = count(decoder, "model.decoder", "head_size")?;
    let context_length = count(model, "model", "context_length")?;
    let vocab = model.get("vocab_size").and_then(Value::as_u64).unwrap_or(0) as usize;

    let eos = model.get("eos_token_id").ok_or_else(|| problem("`model.eos_token_id` is missing".into()))?;
    let eos_token_ids = match eos {
        Value::Number(n) => n.as_u64().map(|id| vec![id as u32]),
        Value::Array(ids) => ids.iter().map(|id| id.as_u64().map(|id| id as u32)).collect(),
        _ => None,
    }
    .filter(|ids| !ids.is_empty())
    .ok_or_else(|| problem(format!("`model.eos_token_id` must be a token id or a list of them, found {eos}")))?;

    let info = ModelInfo {
        name: folder_model_name(dir),
        dir: dir.to_path_buf(),
        precision: "unknown".to_string(),
        accuracy_level: None,
        layers,
        kv_heads,
        head_size,
        vocab,
        context_length,
        eos_token_ids,
        ep: "cpu".to_string(),
    };
    Ok(info)
}

/// `models/SmolLM2-135M-Instruct/int4` is named after the model, not the precision folder.
fn folder_model_name(dir: &Path) -> String {
    let base = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let own = base(dir).unwrap_or_else(|| dir.display().to_string());
    if PRECISION_FOLDERS.contains(&own.as_str())
        && let Some(parent) = dir.parent().and_then(base)
    {
        return parent;
    }
    own
}
