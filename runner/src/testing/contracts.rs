//! Tiny model folders that follow other exporters' input/output contracts, with the weights of the tiny
//! llama GGUF (so `testing::reference` gives their exact logits):
//! - [`write_optimum_folder`]: what `optimum-cli export onnx --task text-generation-with-past` writes for a
//!   llama: `config.json` + `generation_config.json` + `model.onnx`, inputs `input_ids`, `attention_mask`,
//!   optionally `position_ids`, `past_key_values.{i}.key|value` [B, kv, past, hd]; outputs `logits` and
//!   `present.{i}.key|value` [B, kv, past+S, hd] made by Concat: plain ONNX ops (MatMul attention with a
//!   causal + padding mask, rotary from a cos/sin table), fp32 or fp16 KV cache and logits. Without
//!   `position_ids` the graph numbers positions from the past length, as transformers does for such models.
//! - [`write_genai_folder`]: onnxruntime-genai builder output whose input/output names are not the usual
//!   ones, so a test proves the names come from `genai_config.json`.

use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::json;

use super::tiny;
use crate::gguf::GgufFile;
use crate::import::Precision;
use crate::import::quant::dequantize;
use crate::onnx::proto::{Dimension, ModelProto};
use crate::onnx::{Attr, DataType, GraphBuilder};

/// Which variant of the Optimum contract to write.
#[derive(Debug, Clone, Copy)]
pub struct OptimumOptions {
    pub position_ids: bool,
    /// float16 KV cache and logits (the graph computes in float32 between casts).
    pub fp16: bool,
}

/// A large negative bias instead of -inf, as transformers uses: rows of pads stay finite.
const MASKED: f32 = -1e9;

/// Writes `dir/tiny.gguf` (from `seed`) and an Optimum-style folder `dir/optimum` of the same weights;
/// returns the folder. Panics on failure: this is test support.
pub fn write_optimum_folder(dir: &Path, seed: u64, options: OptimumOptions) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let imported = super::write_tiny_model_folder(dir, seed, Precision::Fp32);
    let out = dir.join("optimum");
    std::fs::create_dir_all(&out).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(imported.join(file), out.join(file)).unwrap();
    }
    let gguf = GgufFile::open(dir.join("tiny.gguf")).unwrap();
    OptimumGraph::write(&gguf, &out, options);
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": tiny::BLOCKS,
        "num_attention_heads": tiny::HEADS,
        "num_key_value_heads": tiny::KV_HEADS,
        "hidden_size": tiny::EMBEDDING,
        "intermediate_size": tiny::FFN,
        "max_position_embeddings": tiny::CONTEXT,
        "vocab_size": tiny::VOCAB,
        "rms_norm_eps": tiny::RMS_EPS,
        "rope_theta": tiny::ROPE_THETA,
        "bos_token_id": tiny::BOS_ID,
        "eos_token_id": tiny::EOS_ID,
        "torch_dtype": if options.fp16 { "float16" } else { "float32" },
        "use_cache": true,
    });
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let generation = json!({"bos_token_id": tiny::BOS_ID, "eos_token_id": [tiny::EOS_ID]});
    std::fs::write(out.join("generation_config.json"), generation.to_string()).unwrap();
    out
}

/// Renames for [`write_genai_folder`]: (usual pattern, the folder's pattern).
pub const GENAI_RENAMES: [(&str, &str); 4] = [
    ("past_key_values.%d.key", "past_key_%d"),
    ("past_key_values.%d.value", "past_value_%d"),
    ("present.%d.key", "present_key_%d"),
    ("present.%d.value", "present_value_%d"),
];

/// Gives every GroupQueryAttention node of `model_file` a sliding window of `window` positions kept in a
/// window-sized cache (`local_window_size` and `sliding_window_cache=1`), as onnxruntime-genai's builder
/// writes Gemma2/Gemma3's sliding-window layers; returns how many nodes it changed.
pub fn set_attention_window(model_file: &Path, window: i64) -> usize {
    let mut model = ModelProto::decode(&*std::fs::read(model_file).unwrap()).unwrap();
    let mut changed = 0;
    for node in model.graph.as_mut().unwrap().node.iter_mut().filter(|n| n.op_type == "GroupQueryAttention") {
        node.attribute.retain(|a| a.name != "local_window_size" && a.name != "sliding_window_cache");
        node.attribute.push(Attr::Int(window).into_proto("local_window_size"));
        node.attribute.push(Attr::Int(1).into_proto("sliding_window_cache"));
        changed += 1;
    }
    std::fs::write(model_file, model.encode_to_vec()).unwrap();
    changed
}

/// Writes the tiny model as onnxruntime-genai builder output in `dir/genai`: the imported graph (GQA,
/// shared buffer) with past/present renamed per [`GENAI_RENAMES`], `logits` renamed `lm_logits`, the names
/// recorded in `genai_config.json`, a graph file named `decoder.onnx`, no `runner.json`, and the past
/// key/values' head size declared as the builder declares it (`kv_cache_dim`).
pub fn write_genai_folder(dir: &Path, seed: u64, precision: Precision) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let imported = super::write_tiny_model_folder(dir, seed, precision);
    let out = dir.join("genai");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(&imported).unwrap() {
        let name = entry.unwrap().file_name();
        if name != "runner.json" && name != "model.onnx" {
            std::fs::copy(imported.join(&name), out.join(&name)).unwrap();
        }
    }
    let mut renames: Vec<(String, String)> = vec![("logits".into(), "lm_logits".into())];
    for layer in 0..tiny::BLOCKS {
        for (from, to) in GENAI_RENAMES {
            renames.push((from.replace("%d", &layer.to_string()), to.replace("%d", &layer.to_string())));
        }
    }
    let rename = |name: &mut String| {
        if let Some((_, to)) = renames.iter().find(|(from, _)| from == name) {
            *name = to.clone();
        }
    };
    let mut model = ModelProto::decode(&*std::fs::read(imported.join("model.onnx")).unwrap()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    graph.input.iter_mut().for_each(|v| rename(&mut v.name));
    graph.output.iter_mut().for_each(|v| rename(&mut v.name));
    for node in &mut graph.node {
        node.input.iter_mut().chain(node.output.iter_mut()).for_each(&rename);
    }
    // genai 0.18's builder declares the past key/values' head size as the symbol `kv_cache_dim`.
    for input in graph.input.iter_mut().filter(|v| v.name.starts_with("past_key_") || v.name.starts_with("past_value_"))
    {
        let shape = input.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()).and_then(|t| t.shape.as_mut());
        if let Some(head_size) = shape.and_then(|shape| shape.dim.get_mut(3)) {
            *head_size = sym("kv_cache_dim");
        }
    }
    std::fs::write(out.join("decoder.onnx"), model.encode_to_vec()).unwrap();

    let config_path = out.join("genai_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let decoder = &mut config["model"]["decoder"];
    decoder["filename"] = json!("decoder.onnx");
    decoder["inputs"]["past_key_names"] = json!(GENAI_RENAMES[0].1);
    decoder["inputs"]["past_value_names"] = json!(GENAI_RENAMES[1].1);
    decoder["outputs"]["present_key_names"] = json!(GENAI_RENAMES[2].1);
    decoder["outputs"]["present_value_names"] = json!(GENAI_RENAMES[3].1);
    decoder["outputs"]["logits"] = json!("lm_logits");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    out
}

/// Emits the Optimum-contract llama graph.
struct OptimumGraph<'a> {
    gguf: &'a GgufFile,
    b: GraphBuilder,
}

fn sym(name: &str) -> Dimension {
    Dimension::symbolic(name)
}

fn fixed(value: usize) -> Dimension {
    Dimension::fixed(value as i64)
}

impl<'a> OptimumGraph<'a> {
    fn write(gguf: &'a GgufFile, dir: &Path, options: OptimumOptions) {
        let mut g = OptimumGraph { gguf, b: GraphBuilder::new(dir, "model.onnx_data").unwrap() };
        g.emit(options);
        g.b.finish(&dir.join("model.onnx"), &[("", 17)], &[]).unwrap();
    }

    /// A GGUF matrix as a [in, out] initializer for `MatMul(x, W)`; Q/K rows un-permuted from llama.cpp's
    /// interleaved rotary order to the half-split order this graph rotates in.
    fn weight(&mut self, name: &str, unpermute_heads: Option<usize>) -> String {
        let info = self.gguf.tensor(name).unwrap();
        let data = dequantize(info.ggml_type, self.gguf.tensor_bytes(info).unwrap()).unwrap();
        let cols = info.dims[0] as usize;
        let rows = data.len() / cols;
        let source_row = |r: usize| match unpermute_heads {
            Some(heads) => {
                let hd = rows / heads;
                let half = hd / 2;
                let (head, within) = (r / hd, r % hd);
                let (j, i) = (within / half, within % half);
                head * hd + 2 * i + j
            }
            None => r,
        };
        let mut transposed = vec![0f32; rows * cols];
        for r in 0..rows {
            let from = source_row(r);
            for c in 0..cols {
                transposed[c * rows + r] = data[from * cols + c];
            }
        }
        self.b.initializer_f32(name, &[cols as i64, rows as i64], &transposed).unwrap()
    }

    fn vector(&mut self, name: &str) -> String {
        let info = self.gguf.tensor(name).unwrap();
        let data = dequantize(info.ggml_type, self.gguf.tensor_bytes(info).unwrap()).unwrap();
        self.b.initializer_f32(name, &[data.len() as i64], &data).unwrap()
    }

    fn ints(&mut self, base: &str, values: &[i64]) -> String {
        self.b.initializer_i64(base, &[values.len() as i64], values).unwrap()
    }

    fn op(&mut self, op: &str, inputs: &[&str], out: &str) -> String {
        self.b.node(op, "", inputs, out, vec![])
    }

    fn rms_norm(&mut self, x: &str, weight: &str, eps: &str) -> String {
        let squared = self.op("Mul", &[x, x], "sq");
        let mean = self.b.node(
            "ReduceMean",
            "",
            &[&squared],
            "ms",
            vec![("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))],
        );
        let shifted = self.op("Add", &[&mean, eps], "ms_eps");
        let root = self.op("Sqrt", &[&shifted], "rms");
        let normed = self.op("Div", &[x, &root], "normed");
        self.op("Mul", &[&normed, weight], "scaled")
    }

    /// [B, S, heads*hd] -> [B, heads, S, hd].
    fn heads(&mut self, x: &str, heads: usize) -> String {
        let shape = self.ints("heads_shape", &[0, 0, heads as i64, tiny::HEAD_DIM as i64]);
        let split = self.op("Reshape", &[x, &shape], "split_heads");
        self.b.node("Transpose", "", &[&split], "by_head", vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))])
    }

    fn rotate(&mut self, x: &str, cos: &str, sin: &str) -> String {
        let half = (tiny::HEAD_DIM / 2) as i64;
        let (zero, mid, end, axis) = (
            self.ints("zero", &[0]),
            self.ints("half", &[half]),
            self.ints("end", &[tiny::HEAD_DIM as i64]),
            self.ints("axis3", &[3]),
        );
        let first = self.op("Slice", &[x, &zero, &mid, &axis], "x1");
        let second = self.op("Slice", &[x, &mid, &end, &axis], "x2");
        let negated = self.op("Neg", &[&second], "neg_x2");
        let rotated = self.b.node("Concat", "", &[&negated, &first], "rot", vec![("axis", Attr::Int(3))]);
        let a = self.op("Mul", &[x, cos], "x_cos");
        let b = self.op("Mul", &[&rotated, sin], "rot_sin");
        self.op("Add", &[&a, &b], "roped")
    }

    fn emit(&mut self, options: OptimumOptions) {
        use tiny::*;
        let kv_type = if options.fp16 { DataType::Float16 } else { DataType::Float };
        let kv_dims = |t: &str| [sym("batch_size"), fixed(KV_HEADS), sym(t), fixed(HEAD_DIM)];
        self.b.input("input_ids", DataType::Int64, &[sym("batch_size"), sym("sequence_length")]);
        self.b.input("attention_mask", DataType::Int64, &[sym("batch_size"), sym("total_sequence_length")]);
        if options.position_ids {
            self.b.input("position_ids", DataType::Int64, &[sym("batch_size"), sym("sequence_length")]);
        }
        for i in 0..BLOCKS {
            for kind in ["key", "value"] {
                self.b.input(&format!("past_key_values.{i}.{kind}"), kv_type, &kv_dims("past_sequence_length"));
            }
        }
        self.b.output("logits", kv_type, &[sym("batch_size"), sym("sequence_length"), fixed(VOCAB)]);
        for i in 0..BLOCKS {
            for kind in ["key", "value"] {
                self.b.output(&format!("present.{i}.{kind}"), kv_type, &kv_dims("total_sequence_length"));
            }
        }

        // Scalars and lengths: S new tokens, T = mask width, P = T - S cached.
        let one = self.b.initializer_i64("one", &[], &[1]).unwrap();
        let zero = self.b.initializer_i64("zero_scalar", &[], &[0]).unwrap();
        let eps = self.b.initializer_f32("eps", &[], &[RMS_EPS]).unwrap();
        let one_f = self.b.initializer_f32("one_f", &[], &[1.0]).unwrap();
        let zero_f = self.b.initializer_f32("zero_f", &[], &[0.0]).unwrap();
        let masked = self.b.initializer_f32("masked", &[], &[MASKED]).unwrap();
        let scale = self.b.initializer_f32("scale", &[], &[1.0 / (HEAD_DIM as f32).sqrt()]).unwrap();
        let ids_shape = self.op("Shape", &["input_ids"], "ids_shape");
        let new_len = self.b.node("Gather", "", &[&ids_shape, &one], "new_len", vec![("axis", Attr::Int(0))]);
        let mask_shape = self.op("Shape", &["attention_mask"], "mask_shape");
        let total = self.b.node("Gather", "", &[&mask_shape, &one], "total_len", vec![("axis", Attr::Int(0))]);
        let past_len = self.op("Sub", &[&total, &new_len], "past_len");

        // Rotary tables [CONTEXT, hd/2], gathered at each token's position.
        let half = HEAD_DIM / 2;
        let mut cos_table = Vec::with_capacity(CONTEXT * half);
        let mut sin_table = Vec::with_capacity(CONTEXT * half);
        for pos in 0..CONTEXT {
            for i in 0..half {
                let angle = pos as f64 * f64::from(ROPE_THETA).powf(-2.0 * i as f64 / HEAD_DIM as f64);
                cos_table.push(angle.cos() as f32);
                sin_table.push(angle.sin() as f32);
            }
        }
        let cos_table = self.b.initializer_f32("cos_table", &[CONTEXT as i64, half as i64], &cos_table).unwrap();
        let sin_table = self.b.initializer_f32("sin_table", &[CONTEXT as i64, half as i64], &sin_table).unwrap();
        let positions = if options.position_ids {
            "position_ids".to_string()
        } else {
            self.op("Range", &[&past_len, &total, &one], "positions")
        };
        let mut tables = Vec::new();
        for table in [&cos_table, &sin_table] {
            let rows = self.b.node("Gather", "", &[table, &positions], "rope_rows", vec![("axis", Attr::Int(0))]);
            let full = self.b.node("Concat", "", &[&rows, &rows], "rope_full", vec![("axis", Attr::Int(-1))]);
            // [B, S, hd] -> [B, 1, S, hd] to broadcast over heads; a [S, hd] table broadcasts as it is.
            let table = if options.position_ids {
                let axes = self.ints("axes1", &[1]);
                self.op("Unsqueeze", &[&full, &axes], "rope_bcast")
            } else {
                full
            };
            tables.push(table);
        }
        let (cos, sin) = (tables[0].clone(), tables[1].clone());

        // Attention bias [B, 1, 1, S, T]: padding from the mask, causality from absolute positions.
        let mask_f =
            self.b.node("Cast", "", &["attention_mask"], "mask_f", vec![("to", Attr::Int(DataType::Float as i64))]);
        let unmasked = self.op("Sub", &[&one_f, &mask_f], "unmasked");
        let pad_bias = self.op("Mul", &[&unmasked, &masked], "pad_bias");
        let axes = self.ints("axes123", &[1, 2, 3]);
        let pad_bias = self.op("Unsqueeze", &[&pad_bias, &axes], "pad_bias5");
        let key_pos = self.op("Range", &[&zero, &total, &one], "key_pos");
        let query_pos = self.op("Range", &[&past_len, &total, &one], "query_pos");
        let axes = self.ints("axes1_q", &[1]);
        let query_pos = self.op("Unsqueeze", &[&query_pos, &axes], "query_col");
        let allowed = self.op("LessOrEqual", &[&key_pos, &query_pos], "allowed");
        let causal = self.op("Where", &[&allowed, &zero_f, &masked], "causal_bias");
        let bias = self.op("Add", &[&pad_bias, &causal], "bias");

        let embedding = {
            let info = self.gguf.tensor("token_embd.weight").unwrap();
            dequantize(info.ggml_type, self.gguf.tensor_bytes(info).unwrap()).unwrap()
        };
        let table = self.b.initializer_f32("embed", &[VOCAB as i64, EMBEDDING as i64], &embedding).unwrap();
        let mut x = self.b.node("Gather", "", &[&table, "input_ids"], "embedded", vec![("axis", Attr::Int(0))]);
        let group = HEADS / KV_HEADS;
        for i in 0..BLOCKS {
            let norm = self.vector(&format!("blk.{i}.attn_norm.weight"));
            let h = self.rms_norm(&x, &norm, &eps);
            let wq = self.weight(&format!("blk.{i}.attn_q.weight"), Some(HEADS));
            let wk = self.weight(&format!("blk.{i}.attn_k.weight"), Some(KV_HEADS));
            let wv = self.weight(&format!("blk.{i}.attn_v.weight"), None);
            let q = self.op("MatMul", &[&h, &wq], "q");
            let q = self.heads(&q, HEADS);
            let q = self.rotate(&q, &cos, &sin);
            let k = self.op("MatMul", &[&h, &wk], "k");
            let k = self.heads(&k, KV_HEADS);
            let k = self.rotate(&k, &cos, &sin);
            let v = self.op("MatMul", &[&h, &wv], "v");
            let v = self.heads(&v, KV_HEADS);

            let mut all = Vec::new();
            for (kind, new) in [("key", k), ("value", v)] {
                let new = if options.fp16 {
                    self.b.node("Cast", "", &[&new], "kv16", vec![("to", Attr::Int(DataType::Float16 as i64))])
                } else {
                    new
                };
                let present = format!("present.{i}.{kind}");
                let past = format!("past_key_values.{i}.{kind}");
                self.b.node_with_outputs("Concat", "", &[&past, &new], &[&present], vec![("axis", Attr::Int(2))]);
                let full = if options.fp16 {
                    self.b.node("Cast", "", &[&present], "kv32", vec![("to", Attr::Int(DataType::Float as i64))])
                } else {
                    present
                };
                let axes = self.ints("axes2", &[2]);
                all.push(self.op("Unsqueeze", &[&full, &axes], "kv5"));
            }
            // Grouped heads: q [B, kv, group, S, hd] against k/v [B, kv, 1, T, hd].
            let q_shape = self.ints("q5_shape", &[0, KV_HEADS as i64, group as i64, -1, HEAD_DIM as i64]);
            let q5 = self.op("Reshape", &[&q, &q_shape], "q5");
            let keys_t =
                self.b.node("Transpose", "", &[&all[0]], "k5t", vec![("perm", Attr::Ints(vec![0, 1, 2, 4, 3]))]);
            let scores = self.op("MatMul", &[&q5, &keys_t], "scores");
            let scores = self.op("Mul", &[&scores, &scale], "scaled_scores");
            let scores = self.op("Add", &[&scores, &bias], "masked_scores");
            let probs = self.b.node("Softmax", "", &[&scores], "probs", vec![("axis", Attr::Int(-1))]);
            let attended = self.op("MatMul", &[&probs, &all[1]], "attended");
            let merge = self.ints("merge_shape", &[0, HEADS as i64, -1, HEAD_DIM as i64]);
            let attended = self.op("Reshape", &[&attended, &merge], "attended4");
            let attended =
                self.b.node("Transpose", "", &[&attended], "by_token", vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
            let flat = self.ints("flat_shape", &[0, 0, (HEADS * HEAD_DIM) as i64]);
            let attended = self.op("Reshape", &[&attended, &flat], "attended_flat");
            let wo = self.weight(&format!("blk.{i}.attn_output.weight"), None);
            let out = self.op("MatMul", &[&attended, &wo], "attn_out");
            x = self.op("Add", &[&x, &out], "residual");

            let norm = self.vector(&format!("blk.{i}.ffn_norm.weight"));
            let h = self.rms_norm(&x, &norm, &eps);
            let (wg, wu, wd) = (
                self.weight(&format!("blk.{i}.ffn_gate.weight"), None),
                self.weight(&format!("blk.{i}.ffn_up.weight"), None),
                self.weight(&format!("blk.{i}.ffn_down.weight"), None),
            );
            let gate = self.op("MatMul", &[&h, &wg], "gate");
            let up = self.op("MatMul", &[&h, &wu], "up");
            let sig = self.op("Sigmoid", &[&gate], "sig");
            let silu = self.op("Mul", &[&gate, &sig], "silu");
            let act = self.op("Mul", &[&silu, &up], "act");
            let down = self.op("MatMul", &[&act, &wd], "down");
            x = self.op("Add", &[&x, &down], "residual");
        }
        let norm = self.vector("output_norm.weight");
        let h = self.rms_norm(&x, &norm, &eps);
        let mut head = vec![0f32; VOCAB * EMBEDDING];
        for v in 0..VOCAB {
            for e in 0..EMBEDDING {
                head[e * VOCAB + v] = embedding[v * EMBEDDING + e];
            }
        }
        let head = self.b.initializer_f32("lm_head", &[EMBEDDING as i64, VOCAB as i64], &head).unwrap();
        if options.fp16 {
            let logits = self.op("MatMul", &[&h, &head], "logits32");
            self.b.node_with_outputs(
                "Cast",
                "",
                &[&logits],
                &["logits"],
                vec![("to", Attr::Int(DataType::Float16 as i64))],
            );
        } else {
            self.b.node_with_outputs("MatMul", "", &[&h, &head], &["logits"], vec![]);
        }
    }
}
