//! The model folders users have, told apart by their config files: onnxruntime-genai builder output and
//! `runner import` output (`genai_config.json`: graph file, input/output name patterns, head counts, context
//! length, EOS ids; `runner import` adds `runner.json` with precision and accuracy level), and Optimum's
//! `optimum-cli export onnx --task text-generation-with-past` output (`config.json`, the transformers config,
//! beside `model.onnx`). Both carry `tokenizer.json`, and a chat template in `chat_template.jinja` or
//! `tokenizer_config.json`. Reading a folder checks every file up front so a broken folder fails with the
//! file, key and problem named, before ONNX Runtime is involved; the session then checks the graph itself.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::model_folder::{
    ATTENTION_MASK, CHAT_TEMPLATE_FILE, CONFIG_FILE, GENERATION_CONFIG_FILE, HF_CONFIG_FILE, INPUT_IDS, LOGITS,
    MODEL_FILE, PAST_KEY, PAST_VALUE, POSITION_IDS, PRESENT_KEY, PRESENT_VALUE, RUNNER_FILE, RunnerRecord,
    TOKENIZER_CONFIG_FILE, TOKENIZER_FILE,
};

/// Folder names that say a precision rather than a model (`models/NAME/int4`).
const PRECISION_FOLDERS: &[&str] = &["int4", "int8", "fp16", "fp32", "bf16"];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{file} is missing from {dir}", dir = .dir.display())]
    Missing { dir: PathBuf, file: String },
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid JSON: {source}", path = .path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {problem}", path = .path.display())]
    Config { path: PathBuf, problem: String },
    #[error("{path} is not a usable tokenizer: {reason}", path = .path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error(
        "{dir} is not a model folder runner can drive: it has neither {CONFIG_FILE} (onnxruntime-genai builder or \
         `runner import` output) nor {HF_CONFIG_FILE} with {MODEL_FILE} (an `optimum-cli export onnx --task \
         text-generation-with-past` export){hint}",
        dir = .dir.display()
    )]
    UnknownLayout { dir: PathBuf, hint: String },
}

/// Which tool made a model folder; it decides where names and shapes are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// `runner import` (genai_config.json + runner.json).
    RunnerImport,
    /// onnxruntime-genai's model builder (genai_config.json).
    GenaiBuilder,
    /// Optimum's ONNX export (config.json + model.onnx).
    Optimum,
}

/// The decoder graph's input and output names; `%d` in a pattern stands for the layer index
/// ([`crate::model_folder::layer_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoNames {
    pub input_ids: String,
    pub attention_mask: String,
    /// Fed when the graph has an input of this name (Optimum exports usually do, GQA graphs do not).
    pub position_ids: String,
    pub past_key: String,
    pub past_value: String,
    pub logits: String,
    pub present_key: String,
    pub present_value: String,
}

impl Default for IoNames {
    /// The names Optimum, onnxruntime-genai's builder and `runner import` all use.
    fn default() -> Self {
        IoNames {
            input_ids: INPUT_IDS.into(),
            attention_mask: ATTENTION_MASK.into(),
            position_ids: POSITION_IDS.into(),
            past_key: PAST_KEY.into(),
            past_value: PAST_VALUE.into(),
            logits: LOGITS.into(),
            present_key: PRESENT_KEY.into(),
            present_value: PRESENT_VALUE.into(),
        }
    }
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
    /// What the model is, from its configuration (`model.type` of `genai_config.json`, `model_type` of
    /// `config.json`): `llama`, `qwen2`, `gemma3`...; None when the configuration does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    pub layers: usize,
    /// Width of the residual stream, when the configuration gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
    /// Query heads, when the configuration gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    pub kv_heads: usize,
    pub head_size: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub eos_token_ids: Vec<u32>,
    /// Fed to rows of a batch that are shorter or already finished; an EOS id when the config names none.
    pub pad_token_id: Option<u32>,
    /// The execution provider the engine runs the model on.
    pub ep: String,
    pub format: ModelFormat,
    /// The graph's input/output names, from the config (or the standard ones).
    pub io: IoNames,
    /// What the session found in the graph: `float32` or `float16` KV cache and logits, and whether the cache
    /// is one shared past/present buffer (GroupQueryAttention) or a new present tensor each step (concat).
    pub kv_dtype: String,
    pub logits_dtype: String,
    pub kv_layout: String,
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
        let genai_config_path = dir.join(CONFIG_FILE);
        let hf_config_path = dir.join(HF_CONFIG_FILE);
        let (mut info, model_path) = if genai_config_path.is_file() {
            let config = read_json(&genai_config_path)?;
            let (info, file) = parse_genai_config(&config, &genai_config_path, dir)?;
            (info, require_path(dir, &file)?)
        } else if hf_config_path.is_file() {
            let model_path = dir.join(MODEL_FILE);
            if !model_path.is_file() {
                return Err(ModelError::UnknownLayout { dir: dir.to_path_buf(), hint: optimum_hint(dir) });
            }
            let config = read_json(&hf_config_path)?;
            let generation_path = dir.join(GENERATION_CONFIG_FILE);
            let generation = if generation_path.is_file() { Some(read_json(&generation_path)?) } else { None };
            (parse_hf_config(&config, generation.as_ref(), &hf_config_path, dir)?, model_path)
        } else {
            return Err(ModelError::UnknownLayout { dir: dir.to_path_buf(), hint: optimum_hint(dir) });
        };
        let tokenizer_path = require(dir, TOKENIZER_FILE)?;
        // One reader for runner.json: the importer's, which wrote it.
        let record = RunnerRecord::read(dir)
            .map_err(|err| ModelError::Config { path: dir.join(RUNNER_FILE), problem: err.to_string() })?;
        if let Some(record) = record {
            info.format = ModelFormat::RunnerImport;
            info.precision = record.precision.to_string();
            info.accuracy_level = Some(record.accuracy_level.into());
        }
        // A precision runner derived from another folder (`models/derived/NAME-HASH/int4-block32-acc4`) is that
        // folder's model at the precision it was derived to.
        if let Some(derived) = crate::derive::DerivationRecord::read(dir) {
            info.name = folder_model_name(Path::new(&derived.source_dir));
            info.precision = derived.options.precision.to_string();
            info.accuracy_level = derived.options.accuracy_level.map(i64::from);
        }

        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|err| ModelError::Tokenizer { path: tokenizer_path.clone(), reason: err.to_string() })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if info.vocab == 0 {
            info.vocab = tokenizer_vocab;
        }
        // Fewer tokens than the model is normal (vocabularies are padded); more means the tokenizer belongs to
        // another model, whose ids would index past the embedding table.
        if tokenizer_vocab > info.vocab {
            return Err(ModelError::Tokenizer {
                path: tokenizer_path,
                reason: format!(
                    "it has {tokenizer_vocab} tokens but the model's vocabulary has {}: it belongs to another model",
                    info.vocab
                ),
            });
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

        if info.pad_token_id.is_none() {
            info.pad_token_id = special("pad_token").and_then(|t| tokenizer.token_to_id(&t));
        }
        let eos_token =
            special("eos_token").or_else(|| info.eos_token_ids.first().and_then(|&id| tokenizer.id_to_token(id)));
        Ok(ModelFolder { info, model_path, tokenizer, chat_template, bos_token: special("bos_token"), eos_token })
    }
}

/// The graph file of the model folder `dir`: the one `genai_config.json` names (`model.onnx` when it names
/// none), else `model.onnx`; `None` when that file is missing or the config cannot be read.
pub fn graph_file(dir: &Path) -> Option<PathBuf> {
    let config = dir.join(CONFIG_FILE);
    let name = if config.is_file() {
        let config: Value = serde_json::from_str(&std::fs::read_to_string(&config).ok()?).ok()?;
        match config.get("model").and_then(|m| m.get("decoder")).and_then(|d| d.get("filename")) {
            None => MODEL_FILE.to_string(),
            Some(file) => file.as_str()?.to_string(),
        }
    } else {
        MODEL_FILE.to_string()
    };
    require_path(dir, &name).ok()
}

/// What the folder has instead of an exportable layout, for the error message.
fn optimum_hint(dir: &Path) -> String {
    let has = |f: &str| dir.join(f).is_file();
    if has("decoder_model_merged.onnx") || has("decoder_with_past_model.onnx") {
        return format!(
            "; it has Optimum's older split decoder files, which runner does not drive: re-export with \
             `--task text-generation-with-past` for a single {MODEL_FILE}"
        );
    }
    if has(HF_CONFIG_FILE) {
        return format!("; {HF_CONFIG_FILE} is there but {MODEL_FILE} is missing");
    }
    if has(MODEL_FILE) {
        return format!("; {MODEL_FILE} is there but neither config file is");
    }
    String::new()
}

/// A file the config names, which must stay inside the folder.
fn require_path(dir: &Path, file: &str) -> Result<PathBuf, ModelError> {
    let inside = Path::new(file).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Err(ModelError::Config {
            path: dir.join(CONFIG_FILE),
            problem: format!("`model.decoder.filename` must name a file inside the folder, found {file}"),
        });
    }
    require(dir, file)
}

fn require(dir: &Path, file: &str) -> Result<PathBuf, ModelError> {
    let path = dir.join(file);
    if path.is_file() { Ok(path) } else { Err(ModelError::Missing { dir: dir.to_path_buf(), file: file.to_string() }) }
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

/// Reads a positive integer at `key` of `section` (`prefix` names the section in messages).
fn positive(
    section: &Value,
    prefix: &str,
    key: &str,
    problem: &dyn Fn(String) -> ModelError,
) -> Result<Option<usize>, ModelError> {
    let Some(value) = section.get(key).filter(|v| !v.is_null()) else { return Ok(None) };
    let name = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
    value
        .as_u64()
        .filter(|&n| n > 0)
        .map(|n| Some(n as usize))
        .ok_or_else(|| problem(format!("`{name}` must be a positive integer, found {value}")))
}

/// `eos_token_id` as one id or a list of them.
fn token_ids(value: &Value) -> Option<Vec<u32>> {
    match value {
        Value::Number(n) => n.as_u64().map(|id| vec![id as u32]),
        Value::Array(ids) => ids.iter().map(|id| id.as_u64().map(|id| id as u32)).collect(),
        _ => None,
    }
    .filter(|ids: &Vec<u32>| !ids.is_empty())
}

fn base_info(dir: &Path, format: ModelFormat) -> ModelInfo {
    ModelInfo {
        name: folder_model_name(dir),
        dir: dir.to_path_buf(),
        precision: "unknown".to_string(),
        accuracy_level: None,
        architecture: None,
        layers: 0,
        hidden_size: None,
        heads: None,
        kv_heads: 0,
        head_size: 0,
        vocab: 0,
        context_length: 0,
        eos_token_ids: Vec::new(),
        pad_token_id: None,
        ep: "cpu".to_string(),
        format,
        io: IoNames::default(),
        kv_dtype: "unknown".to_string(),
        logits_dtype: "unknown".to_string(),
        kv_layout: "unknown".to_string(),
    }
}

/// onnxruntime-genai's `genai_config.json`; returns the description and the graph file it names.
fn parse_genai_config(config: &Value, path: &Path, dir: &Path) -> Result<(ModelInfo, String), ModelError> {
    let problem = |problem: String| ModelError::Config { path: path.to_path_buf(), problem };
    let model = config.get("model").ok_or_else(|| problem("no `model` section".into()))?;
    let decoder = model.get("decoder").ok_or_else(|| problem("no `model.decoder` section".into()))?;
    let required = |section: &Value, prefix: &str, key: &str| -> Result<usize, ModelError> {
        positive(section, prefix, key, &problem)?.ok_or_else(|| problem(format!("`{prefix}.{key}` is missing")))
    };
    let mut info = base_info(dir, ModelFormat::GenaiBuilder);
    info.layers = required(decoder, "model.decoder", "num_hidden_layers")?;
    info.kv_heads = required(decoder, "model.decoder", "num_key_value_heads")?;
    info.head_size = required(decoder, "model.decoder", "head_size")?;
    info.hidden_size = positive(decoder, "model.decoder", "hidden_size", &problem)?;
    info.heads = positive(decoder, "model.decoder", "num_attention_heads", &problem)?;
    info.architecture = model.get("type").and_then(Value::as_str).map(str::to_string);
    info.context_length = required(model, "model", "context_length")?;
    info.vocab = positive(model, "model", "vocab_size", &problem)?.unwrap_or(0);
    let eos = model.get("eos_token_id").ok_or_else(|| problem("`model.eos_token_id` is missing".into()))?;
    info.eos_token_ids = token_ids(eos)
        .ok_or_else(|| problem(format!("`model.eos_token_id` must be a token id or a list of them, found {eos}")))?;
    info.pad_token_id = model.get("pad_token_id").and_then(token_ids).and_then(|ids| ids.first().copied());

    let name = |section: &str, key: &str, default: &str| -> Result<String, ModelError> {
        match decoder.get(section).and_then(|s| s.get(key)) {
            None => Ok(default.to_string()),
            Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
            Some(other) => Err(problem(format!("`model.decoder.{section}.{key}` must be a name, found {other}"))),
        }
    };
    let d = IoNames::default();
    info.io = IoNames {
        input_ids: name("inputs", "input_ids", &d.input_ids)?,
        attention_mask: name("inputs", "attention_mask", &d.attention_mask)?,
        position_ids: name("inputs", "position_ids", &d.position_ids)?,
        past_key: name("inputs", "past_key_names", &d.past_key)?,
        past_value: name("inputs", "past_value_names", &d.past_value)?,
        logits: name("outputs", "logits", &d.logits)?,
        present_key: name("outputs", "present_key_names", &d.present_key)?,
        present_value: name("outputs", "present_value_names", &d.present_value)?,
    };
    for (key, pattern) in [
        ("inputs.past_key_names", &info.io.past_key),
        ("inputs.past_value_names", &info.io.past_value),
        ("outputs.present_key_names", &info.io.present_key),
        ("outputs.present_value_names", &info.io.present_value),
    ] {
        if !pattern.contains("%d") {
            return Err(problem(format!(
                "`model.decoder.{key}` must hold `%d` for the layer index, found `{pattern}`"
            )));
        }
    }
    let file = match decoder.get("filename") {
        None => MODEL_FILE.to_string(),
        Some(Value::String(file)) => file.clone(),
        Some(other) => return Err(problem(format!("`model.decoder.filename` must be a file name, found {other}"))),
    };
    Ok((info, file))
}

/// The transformers `config.json` of an Optimum export (and `generation_config.json` when present).
fn parse_hf_config(
    config: &Value,
    generation: Option<&Value>,
    path: &Path,
    dir: &Path,
) -> Result<ModelInfo, ModelError> {
    let problem = |problem: String| ModelError::Config { path: path.to_path_buf(), problem };
    // Older architectures (GPT-2, GPT-J) use their own key names.
    let first = |keys: &[&str]| -> Result<Option<usize>, ModelError> {
        for key in keys {
            if let Some(n) = positive(config, "", key, &problem)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    };
    let missing = |keys: &[&str]| problem(format!("`{}` is missing", keys.join("` / `")));
    let mut info = base_info(dir, ModelFormat::Optimum);
    let layer_keys = ["num_hidden_layers", "n_layer", "num_layers"];
    info.layers = first(&layer_keys)?.ok_or_else(|| missing(&layer_keys))?;
    let head_keys = ["num_attention_heads", "n_head"];
    let heads = first(&head_keys)?.ok_or_else(|| missing(&head_keys))?;
    info.heads = Some(heads);
    info.hidden_size = first(&["hidden_size", "n_embd", "d_model"])?;
    info.architecture = config.get("model_type").and_then(Value::as_str).map(str::to_string);
    info.kv_heads = first(&["num_key_value_heads", "multi_query_group_num"])?.unwrap_or(heads);
    info.head_size = match first(&["head_dim"])? {
        Some(head_dim) => head_dim,
        None => {
            let hidden_keys = ["hidden_size", "n_embd", "d_model"];
            let hidden = first(&hidden_keys)?.ok_or_else(|| missing(&hidden_keys))?;
            if !hidden.is_multiple_of(heads) {
                return Err(problem(format!(
                    "`hidden_size` {hidden} is not a multiple of `num_attention_heads` {heads}"
                )));
            }
            hidden / heads
        }
    };
    let context_keys = ["max_position_embeddings", "n_positions", "seq_length"];
    info.context_length = first(&context_keys)?.ok_or_else(|| missing(&context_keys))?;
    info.vocab = first(&["vocab_size"])?.unwrap_or(0);
    let mut eos = config.get("eos_token_id").and_then(token_ids).unwrap_or_default();
    if let Some(extra) = generation.and_then(|g| g.get("eos_token_id")).and_then(token_ids) {
        eos.extend(extra.into_iter().filter(|id| !eos.contains(id)).collect::<Vec<_>>());
    }
    if eos.is_empty() {
        return Err(problem(format!("`eos_token_id` is missing (nor is it in {GENERATION_CONFIG_FILE})")));
    }
    info.eos_token_ids = eos;
    info.pad_token_id = config
        .get("pad_token_id")
        .and_then(token_ids)
        .or_else(|| generation.and_then(|g| g.get("pad_token_id")).and_then(token_ids))
        .and_then(|ids| ids.first().copied());
    Ok(info)
}

/// `models/SmolLM2-135M-Instruct/int4` is named after the model, not the precision folder.
pub(crate) fn folder_model_name(dir: &Path) -> String {
    let base = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let own = base(dir).unwrap_or_else(|| dir.display().to_string());
    if PRECISION_FOLDERS.contains(&own.as_str())
        && let Some(parent) = dir.parent().and_then(base)
    {
        return parent;
    }
    own
}
