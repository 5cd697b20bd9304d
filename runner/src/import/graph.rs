//! The llama graph in the layout onnxruntime-genai's builder emits (and ORT runs fast): packed-QKV
//! GroupQueryAttention with rotary inside, (Skip)SimplifiedLayerNormalization, fused gate/up MLP, and
//! weights kept in their GGUF blocks as MatMulNBits (int4), requantized to 8-bit MatMulNBits (int8), or
//! dequantized to float32 or float16 (fp16 makes float16 the graph's float type: activations, KV cache and
//! logits too).
//!
//! Exact Q4_1: MatMulNBits computes `(q - zp) * d`; GGUF stores `d * q + m`. With the integer zero point
//! `zp = clip(rint(-m / d), 0, 15)` the difference per block is the constant `r = m + zp * d`, added back as
//! `blocksum(x) @ r^T` where `blocksum` sums each 32-wide block of the input.

use std::collections::HashMap;
use std::path::Path;

use half::f16;

use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::lora::{LoraTarget, Side};
use crate::onnx::proto::Dimension;
use crate::onnx::{Attr, DataType, GraphBuilder};

use super::quant::{self, QK};
use super::{Hparams, ImportError, ImportOptions, MODEL_DATA_FILE, MODEL_FILE, Precision};
use crate::engine::LOGITS_FROM_INPUT;

const MS: &str = "com.microsoft";
const OPSETS: [(&str, i64); 2] = [("", 17), (MS, 1)];

/// How many GGUF tensors ended up in each form.
#[derive(Debug, Default, Clone, Copy)]
pub struct GraphStats {
    pub quantized_tensors: usize,
    pub float_tensors: usize,
}

/// Refuses, before anything is written, a tensor whose type the importer cannot carry over.
pub fn check_tensor_types(file: &GgufFile) -> Result<(), ImportError> {
    for t in file.tensors() {
        let ok = matches!(
            t.ggml_type,
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0
        );
        if !ok {
            return Err(ImportError::TensorType { tensor: t.name.clone(), ty: t.ggml_type });
        }
    }
    Ok(())
}

/// One GGUF matrix taking part in a (possibly fused) linear layer.
struct Part<'a> {
    info: &'a TensorInfo,
    /// llama.cpp permutes Q and K rows per head for its interleaved rotary; undo it for `heads` heads.
    unpermute_heads: Option<usize>,
}

/// The form a linear layer's weights take in the graph.
enum Form {
    /// MatMulNBits bits 4 from Q4_0 / Q4_1 blocks.
    Nibbles,
    /// MatMulNBits bits 8 from Q8_0 blocks.
    Bytes,
    /// MatMulNBits bits 8 requantized from the dequantized values (asymmetric, uint8 zero points).
    Requantized,
    Float,
}

struct Emitter<'a> {
    file: &'a GgufFile,
    hp: &'a Hparams,
    options: &'a ImportOptions,
    b: GraphBuilder,
    stats: GraphStats,
    /// Block sums already computed, by input value name.
    blocksums: HashMap<String, String>,
    reduce_axes: Option<String>,
}

/// Writes `model.onnx` and `model.onnx.data` into `dir`.
pub fn write_model(
    file: &GgufFile,
    hp: &Hparams,
    dir: &Path,
    options: &ImportOptions,
    metadata: &[(String, String)],
) -> Result<GraphStats, ImportError> {
    let b = GraphBuilder::new(dir, MODEL_DATA_FILE)?;
    let mut e =
        Emitter { file, hp, options, b, stats: GraphStats::default(), blocksums: HashMap::new(), reduce_axes: None };
    e.emit()?;
    let stats = e.stats;
    e.b.finish(&dir.join(MODEL_FILE), &OPSETS, metadata)?;
    Ok(stats)
}

fn sym(name: &str) -> Dimension {
    Dimension::symbolic(name)
}

fn fixed(v: usize) -> Dimension {
    Dimension::fixed(v as i64)
}

fn read_f16(bytes: &[u8]) -> f32 {
    f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

impl<'a> Emitter<'a> {
    fn tensor(&self, name: &str) -> Result<&'a TensorInfo, ImportError> {
        let file: &'a GgufFile = self.file;
        Ok(file.tensor(name)?)
    }

    fn expect_shape(info: &TensorInfo, expected: &[usize]) -> Result<(), ImportError> {
        let expected: Vec<u64> = expected.iter().map(|v| *v as u64).collect();
        if info.dims != expected {
            return Err(ImportError::TensorShape { tensor: info.name.clone(), found: info.dims.clone(), expected });
        }
        Ok(())
    }

    /// The graph's float type: activations, KV cache, logits and float initializers.
    fn float_type(&self) -> DataType {
        if self.options.precision == Precision::Fp16 { DataType::Float16 } else { DataType::Float }
    }

    /// A float initializer in the graph's float type.
    fn float_initializer(&mut self, base: &str, dims: &[i64], values: &[f32]) -> Result<String, ImportError> {
        if self.float_type() == DataType::Float16 {
            let bytes: Vec<u8> = values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
            Ok(self.b.initializer(base, DataType::Float16, dims, &bytes)?)
        } else {
            Ok(self.b.initializer_f32(base, dims, values)?)
        }
    }

    fn emit(&mut self) -> Result<(), ImportError> {
        let hp = self.hp.clone();
        let float = self.float_type();
        let kv_dims = |t: &str| [sym("batch_size"), fixed(hp.kv_heads), sym(t), fixed(hp.head_dim)];
        self.b.input("input_ids", DataType::Int64, &[sym("batch_size"), sym("sequence_length")]);
        self.b.input("attention_mask", DataType::Int64, &[sym("batch_size"), sym("total_sequence_length")]);
        for i in 0..hp.blocks {
            self.b.input(&format!("past_key_values.{i}.key"), float, &kv_dims("past_sequence_length"));
            self.b.input(&format!("past_key_values.{i}.value"), float, &kv_dims("past_sequence_length"));
        }
        self.b.output("logits", float, &[sym("batch_size"), sym("sequence_length"), fixed(hp.vocab)]);
        for i in 0..hp.blocks {
            self.b.output(&format!("present.{i}.key"), float, &kv_dims("total_sequence_length"));
            self.b.output(&format!("present.{i}.value"), float, &kv_dims("total_sequence_length"));
        }

        // GroupQueryAttention derives positions from the mask: seqlens_k = sum(mask) - 1, total = mask width.
        let axis1 = self.b.initializer_i64("axes_1", &[1], &[1])?;
        let one = self.b.initializer_i64("one_i64", &[], &[1])?;
        let mask_sum =
            self.b.node("ReduceSum", "", &["attention_mask", &axis1], "mask_sum", vec![("keepdims", Attr::Int(0))]);
        let last = self.b.node("Sub", "", &[&mask_sum, &one], "mask_sum_minus_1", vec![]);
        let seqlens_k = self.b.node("Cast", "", &[&last], "seqlens_k", vec![("to", Attr::Int(DataType::Int32 as i64))]);
        let mask_shape = self.b.node("Shape", "", &["attention_mask"], "mask_shape", vec![]);
        let total = self.b.node("Gather", "", &[&mask_shape, &one], "total_seq_len_i64", vec![("axis", Attr::Int(0))]);
        let total_len =
            self.b.node("Cast", "", &[&total], "total_seq_len", vec![("to", Attr::Int(DataType::Int32 as i64))]);
        let (cos, sin) = self.rotary_caches()?;

        let split = self.b.initializer_i64("split_ffn", &[2], &[hp.ffn as i64, hp.ffn as i64])?;
        let (embedded, head) = self.embedding()?;
        let mut residual = embedded.clone();
        let mut pending: Option<String> = None;
        for i in 0..hp.blocks {
            let gamma = self.norm_weight(&format!("blk.{i}.attn_norm.weight"))?;
            let h = match pending.take() {
                None => self.b.node(
                    "SimplifiedLayerNormalization",
                    "",
                    &[&residual, &gamma],
                    &format!("l{i}_attn_norm"),
                    vec![
                        ("axis", Attr::Int(-1)),
                        ("epsilon", Attr::Float(hp.rms_eps as f32)),
                        ("stash_type", Attr::Int(1)),
                    ],
                ),
                Some(mlp_out) => self.skip_norm(&mlp_out, &mut residual, &gamma, &format!("l{i}_attn_norm")),
            };
            let q = self.tensor(&format!("blk.{i}.attn_q.weight"))?;
            let k = self.tensor(&format!("blk.{i}.attn_k.weight"))?;
            let v = self.tensor(&format!("blk.{i}.attn_v.weight"))?;
            Self::expect_shape(q, &[hp.embedding, hp.heads * hp.head_dim])?;
            Self::expect_shape(k, &[hp.embedding, hp.kv_heads * hp.head_dim])?;
            Self::expect_shape(v, &[hp.embedding, hp.kv_heads * hp.head_dim])?;
            let parts = [
                Part { info: q, unpermute_heads: Some(hp.heads) },
                Part { info: k, unpermute_heads: Some(hp.kv_heads) },
                Part { info: v, unpermute_heads: None },
            ];
            let qkv = self.linear(&h, &parts, &format!("l{i}_qkv"))?;
            let (q_n, kv_n) = (hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim);
            let lora_parts = [(LoraTarget::QProj, q_n), (LoraTarget::KProj, kv_n), (LoraTarget::VProj, kv_n)];
            let qkv = self.with_lora(&h, qkv, i, hp.embedding, &lora_parts)?;
            let attn = self.b.fresh(&format!("l{i}_attn"));
            let (present_k, present_v) = (format!("present.{i}.key"), format!("present.{i}.value"));
            let (past_k, past_v) = (format!("past_key_values.{i}.key"), format!("past_key_values.{i}.value"));
            self.b.node_with_outputs(
                "GroupQueryAttention",
                MS,
                &[&qkv, "", "", &past_k, &past_v, &seqlens_k, &total_len, &cos, &sin],
                &[&attn, &present_k, &present_v],
                vec![
                    ("num_heads", Attr::Int(hp.heads as i64)),
                    ("kv_num_heads", Attr::Int(hp.kv_heads as i64)),
                    ("do_rotary", Attr::Int(1)),
                    ("rotary_interleaved", Attr::Int(0)),
                    ("scale", Attr::Float((1.0 / (hp.head_dim as f64).sqrt()) as f32)),
                    ("local_window_size", Attr::Int(-1)),
                ],
            );
            let o = self.tensor(&format!("blk.{i}.attn_output.weight"))?;
            Self::expect_shape(o, &[hp.heads * hp.head_dim, hp.embedding])?;
            let attn_out = self.linear(&attn, &[Part { info: o, unpermute_heads: None }], &format!("l{i}_o"))?;
            let attn_out =
                self.with_lora(&attn, attn_out, i, hp.heads * hp.head_dim, &[(LoraTarget::OProj, hp.embedding)])?;

            let gamma = self.norm_weight(&format!("blk.{i}.ffn_norm.weight"))?;
            let h = self.skip_norm(&attn_out, &mut residual, &gamma, &format!("l{i}_ffn_norm"));
            let gate = self.tensor(&format!("blk.{i}.ffn_gate.weight"))?;
            let up = self.tensor(&format!("blk.{i}.ffn_up.weight"))?;
            let down = self.tensor(&format!("blk.{i}.ffn_down.weight"))?;
            Self::expect_shape(gate, &[hp.embedding, hp.ffn])?;
            Self::expect_shape(up, &[hp.embedding, hp.ffn])?;
            Self::expect_shape(down, &[hp.ffn, hp.embedding])?;
            let parts = [Part { info: gate, unpermute_heads: None }, Part { info: up, unpermute_heads: None }];
            let gate_up = self.linear(&h, &parts, &format!("l{i}_gate_up"))?;
            let lora_parts = [(LoraTarget::GateProj, hp.ffn), (LoraTarget::UpProj, hp.ffn)];
            let gate_up = self.with_lora(&h, gate_up, i, hp.embedding, &lora_parts)?;
            let (g, u) = (self.b.fresh(&format!("l{i}_gate")), self.b.fresh(&format!("l{i}_up")));
            self.b.node_with_outputs("Split", "", &[&gate_up, &split], &[&g, &u], vec![("axis", Attr::Int(-1))]);
            let sig = self.b.node("Sigmoid", "", &[&g], &format!("l{i}_gate_sigmoid"), vec![]);
            let silu = self.b.node("Mul", "", &[&g, &sig], &format!("l{i}_gate_silu"), vec![]);
            let act = self.b.node("Mul", "", &[&silu, &u], &format!("l{i}_act"), vec![]);
            let mlp_out = self.linear(&act, &[Part { info: down, unpermute_heads: None }], &format!("l{i}_down"))?;
            let mlp_out = self.with_lora(&act, mlp_out, i, hp.ffn, &[(LoraTarget::DownProj, hp.embedding)])?;
            pending = Some(mlp_out);
        }
        let gamma = self.norm_weight("output_norm.weight")?;
        let last_out = pending.unwrap_or_else(|| residual.clone());
        let final_h = self.b.fresh("final_norm");
        self.b.node_with_outputs(
            "SkipSimplifiedLayerNormalization",
            MS,
            &[&last_out, &residual, &gamma],
            &[&final_h],
            vec![("epsilon", Attr::Float(hp.rms_eps as f32))],
        );
        // Generation needs the logits after the last token only: `logits_from` (default 0: every position)
        // slices the positions the head runs on.
        self.b.initializer_i64(LOGITS_FROM_INPUT, &[1], &[0])?;
        self.b.input(LOGITS_FROM_INPUT, DataType::Int64, &[fixed(1)]);
        let to_end = self.b.initializer_i64("logits_to_end", &[1], &[i64::MAX])?;
        let head_input =
            self.b.node("Slice", "", &[&final_h, LOGITS_FROM_INPUT, &to_end, &axis1], "head_input", vec![]);
        self.lm_head(&head_input, head)
    }

    /// Adds the LoRA update `(input @ A) @ B` of every targeted part of a (possibly fused) projection to
    /// `product`, each part's update padded into its columns. `A` [in, r] and `B` [r, out] are graph inputs
    /// whose defaults have rank 0, so without an adapter the update is an exact zero.
    fn with_lora(
        &mut self,
        input: &str,
        product: String,
        layer: usize,
        in_features: usize,
        parts: &[(LoraTarget, usize)],
    ) -> Result<String, ImportError> {
        let targets = &self.options.lora.targets;
        if !parts.iter().any(|(t, _)| targets.contains(t)) {
            return Ok(product);
        }
        let width: usize = parts.iter().map(|(_, n)| n).sum();
        // Every part adapted: one Concat joins the updates; otherwise each is padded into its columns.
        let all = parts.iter().all(|(t, _)| targets.contains(t));
        let mut updates = Vec::new();
        let mut offset = 0;
        for &(target, out_features) in parts {
            let before = offset;
            offset += out_features;
            if !targets.contains(&target) {
                continue;
            }
            let (a, b) = (target.input_name(layer, Side::A), target.input_name(layer, Side::B));
            let rank = sym("lora_rank");
            // The initializer first: `input` reserves the name, and the initializer must carry it unchanged.
            self.b.initializer(&a, DataType::Float, &[in_features as i64, 0], &[])?;
            self.b.input(&a, DataType::Float, &[fixed(in_features), rank.clone()]);
            self.b.initializer(&b, DataType::Float, &[0, out_features as i64], &[])?;
            self.b.input(&b, DataType::Float, &[rank, fixed(out_features)]);
            let base = format!("l{layer}_{target}_lora");
            let down = self.b.node("MatMul", "", &[input, &a], &format!("{base}_a"), vec![]);
            let mut update = self.b.node("MatMul", "", &[&down, &b], &format!("{base}_b"), vec![]);
            if !all && out_features != width {
                let pads = [0, 0, before as i64, 0, 0, (width - offset) as i64];
                let pads = self.b.initializer_i64(&format!("{base}_pads"), &[6], &pads)?;
                update = self.b.node("Pad", "", &[&update, &pads], &format!("{base}_padded"), vec![]);
            }
            updates.push(update);
        }
        let mut total = updates[0].clone();
        if all && updates.len() > 1 {
            let refs: Vec<&str> = updates.iter().map(String::as_str).collect();
            let name = format!("l{layer}_lora_concat");
            total = self.b.node("Concat", "", &refs, &name, vec![("axis", Attr::Int(-1))]);
        } else {
            for update in &updates[1..] {
                total = self.b.node("Add", "", &[&total, update], &format!("l{layer}_lora_sum"), vec![]);
            }
        }
        Ok(self.b.node("Add", "", &[&product, &total], &format!("{product}_lora"), vec![]))
    }

    /// SkipSimplifiedLayerNormalization: normalizes `input + residual`, which becomes the new residual.
    fn skip_norm(&mut self, input: &str, residual: &mut String, gamma: &str, base: &str) -> String {
        let out = self.b.fresh(base);
        let sum = self.b.fresh(&format!("{base}_residual"));
        self.b.node_with_outputs(
            "SkipSimplifiedLayerNormalization",
            MS,
            &[input, residual.as_str(), gamma],
            &[&out, "", "", &sum],
            vec![("epsilon", Attr::Float(self.hp.rms_eps as f32))],
        );
        *residual = sum;
        out
    }

    fn norm_weight(&mut self, name: &str) -> Result<String, ImportError> {
        let info = self.tensor(name)?;
        Self::expect_shape(info, &[self.hp.embedding])?;
        let values = self.dequantize(info)?;
        self.stats.float_tensors += 1;
        self.float_initializer(name, &[self.hp.embedding as i64], &values)
    }

    fn dequantize(&self, info: &TensorInfo) -> Result<Vec<f32>, ImportError> {
        quant::dequantize(info.ggml_type, self.file.tensor_bytes(info)?)
            .map_err(|_| ImportError::TensorType { tensor: info.name.clone(), ty: info.ggml_type })
    }

    fn rotary_caches(&mut self) -> Result<(String, String), ImportError> {
        let (len, half) = (self.hp.context, self.hp.head_dim / 2);
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for i in 0..half {
                let angle = pos as f64 * self.hp.rope_theta.powf(-2.0 * i as f64 / self.hp.head_dim as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let dims = [len as i64, half as i64];
        Ok((self.float_initializer("cos_cache", &dims, &cos)?, self.float_initializer("sin_cache", &dims, &sin)?))
    }

    /// The token embedding, and how the tied output head can reuse it.
    fn embedding(&mut self) -> Result<(String, TiedHead), ImportError> {
        let hp = self.hp.clone();
        let info = self.tensor("token_embd.weight")?;
        Self::expect_shape(info, &[hp.embedding, hp.vocab])?;
        // int8 stores any embedding as Q8_0 blocks; int4 keeps a Q8_0 embedding as it is.
        let requantize = self.options.precision == Precision::Int8 && info.ggml_type != GgmlType::Q8_0;
        let keep_q8 =
            matches!(self.options.precision, Precision::Int4 | Precision::Int8) && info.ggml_type == GgmlType::Q8_0;
        if requantize || keep_q8 {
            let blocks = hp.embedding / QK;
            let q8_0 = if requantize { quant::quantize_q8_0(&self.dequantize(info)?) } else { Vec::new() };
            let bytes = if requantize { q8_0.as_slice() } else { self.file.tensor_bytes(info)? };
            let (data, scales) = q8_0_as_uint8(bytes);
            let data_name = self.b.initializer(
                "token_embd.qweight",
                DataType::Uint8,
                &[hp.vocab as i64, blocks as i64, QK as i64],
                &data,
            )?;
            let gather_scales =
                self.float_initializer("token_embd.scales", &[hp.vocab as i64, blocks as i64, 1], &scales)?;
            let gathered = self.b.node(
                "GatherBlockQuantized",
                MS,
                &[&data_name, "input_ids", &gather_scales],
                "embed_blocks",
                vec![
                    ("bits", Attr::Int(8)),
                    ("block_size", Attr::Int(QK as i64)),
                    ("gather_axis", Attr::Int(0)),
                    ("quantize_axis", Attr::Int(2)),
                ],
            );
            let shape = self.b.initializer_i64("embed_shape", &[3], &[0, 0, hp.embedding as i64])?;
            let embedded = self.b.node("Reshape", "", &[&gathered, &shape], "embedded", vec![]);
            self.stats.quantized_tensors += 1;
            return Ok((embedded, TiedHead::Q8 { data: data_name, scales }));
        }
        let values = self.dequantize(info)?;
        let table = self.float_initializer("token_embd.weight", &[hp.vocab as i64, hp.embedding as i64], &values)?;
        let embedded = self.b.node("Gather", "", &[&table, "input_ids"], "embedded", vec![("axis", Attr::Int(0))]);
        self.stats.float_tensors += 1;
        Ok((embedded, TiedHead::Float(values)))
    }

    fn lm_head(&mut self, h: &str, tied: TiedHead) -> Result<(), ImportError> {
        let hp = self.hp.clone();
        if self.file.tensor("output.weight").is_ok() {
            let info = self.tensor("output.weight")?;
            Self::expect_shape(info, &[hp.embedding, hp.vocab])?;
            let logits = self.linear(h, &[Part { info, unpermute_heads: None }], "lm_head")?;
            self.b.node_with_outputs("Identity", "", &[&logits], &["logits"], vec![]);
            return Ok(());
        }
        match tied {
            TiedHead::Q8 { data, scales } => {
                let blocks = hp.embedding / QK;
                let scales = self.float_initializer("lm_head.scales", &[hp.vocab as i64, blocks as i64], &scales)?;
                self.b.node_with_outputs(
                    "MatMulNBits",
                    MS,
                    &[h, &data, &scales],
                    &["logits"],
                    self.nbits_attrs(hp.embedding, hp.vocab, 8),
                );
            }
            TiedHead::Float(table) => {
                let transposed = transpose(&table, hp.vocab, hp.embedding);
                let weight =
                    self.float_initializer("lm_head.weight", &[hp.embedding as i64, hp.vocab as i64], &transposed)?;
                self.b.node_with_outputs("MatMul", "", &[h, &weight], &["logits"], vec![]);
            }
        }
        Ok(())
    }

    fn nbits_attrs(&self, k: usize, n: usize, bits: i64) -> Vec<(&'static str, Attr)> {
        vec![
            ("K", Attr::Int(k as i64)),
            ("N", Attr::Int(n as i64)),
            ("bits", Attr::Int(bits)),
            ("block_size", Attr::Int(QK as i64)),
            ("accuracy_level", Attr::Int(i64::from(self.options.accuracy_level))),
        ]
    }

    /// Sum of each 32-wide block of `input`'s last axis: `[B, S, K] -> [B, S, K / 32]`.
    fn blocksum(&mut self, input: &str, k: usize) -> Result<String, ImportError> {
        if let Some(done) = self.blocksums.get(input) {
            return Ok(done.clone());
        }
        let shape = self.b.initializer_i64("blocks_shape", &[4], &[0, 0, (k / QK) as i64, QK as i64])?;
        let axes = match &self.reduce_axes {
            Some(a) => a.clone(),
            None => {
                let a = self.b.initializer_i64("axes_last", &[1], &[-1])?;
                self.reduce_axes = Some(a.clone());
                a
            }
        };
        let blocks = self.b.node("Reshape", "", &[input, &shape], &format!("{input}_blocks"), vec![]);
        let sum = self.b.node(
            "ReduceSum",
            "",
            &[&blocks, &axes],
            &format!("{input}_blocksum"),
            vec![("keepdims", Attr::Int(0))],
        );
        self.blocksums.insert(input.to_string(), sum.clone());
        Ok(sum)
    }

    /// `input @ W^T` for the rows of `parts` stacked in order.
    fn linear(&mut self, input: &str, parts: &[Part], base: &str) -> Result<String, ImportError> {
        let k = parts[0].info.dims[0] as usize;
        let ty = parts[0].info.ggml_type;
        let same = parts.iter().all(|p| p.info.ggml_type == ty && p.info.dims[0] as usize == k);
        let form = match (self.options.precision, ty) {
            (Precision::Int4, GgmlType::Q4_0 | GgmlType::Q4_1) if same => Form::Nibbles,
            (Precision::Int4 | Precision::Int8, GgmlType::Q8_0) if same => Form::Bytes,
            (Precision::Int8, _) => Form::Requantized,
            _ => Form::Float,
        };
        let mut rows: Vec<&[u8]> = Vec::new();
        for part in parts {
            let bytes = self.file.tensor_bytes(part.info)?;
            let n = part.info.dims[1] as usize;
            let row_len = bytes.len() / n;
            let order = row_order(n, part.unpermute_heads);
            rows.extend(order.into_iter().map(|r| &bytes[r * row_len..(r + 1) * row_len]));
        }
        let n = rows.len();
        let blocks = k / QK;
        match form {
            Form::Nibbles => {
                self.stats.quantized_tensors += parts.len();
                let packed = pack_nibble_rows(&rows, ty, blocks);
                let weight = self.b.initializer(
                    &format!("{base}.qweight"),
                    DataType::Uint8,
                    &[n as i64, blocks as i64, (QK / 2) as i64],
                    &packed.data,
                )?;
                let scales =
                    self.float_initializer(&format!("{base}.scales"), &[n as i64, blocks as i64], &packed.scales)?;
                let zp = self.b.initializer(
                    &format!("{base}.zero_points"),
                    DataType::Uint8,
                    &[n as i64, blocks.div_ceil(2) as i64],
                    &packed.zero_points,
                )?;
                let attrs = self.nbits_attrs(k, n, 4);
                let product = self.b.node("MatMulNBits", MS, &[input, &weight, &scales, &zp], base, attrs);
                if packed.residual.iter().all(|r| *r == 0.0) {
                    return Ok(product);
                }
                let sums = self.blocksum(input, k)?;
                let residual =
                    self.float_initializer(&format!("{base}.residual"), &[blocks as i64, n as i64], &packed.residual)?;
                let correction = self.b.node("MatMul", "", &[&sums, &residual], &format!("{base}_correction"), vec![]);
                Ok(self.b.node("Add", "", &[&product, &correction], &format!("{base}_out"), vec![]))
            }
            Form::Bytes => {
                self.stats.quantized_tensors += parts.len();
                let mut data = Vec::with_capacity(n * k);
                let mut scales = Vec::with_capacity(n * blocks);
                for row in &rows {
                    let (d, s) = q8_0_as_uint8(row);
                    data.extend_from_slice(&d);
                    scales.extend_from_slice(&s);
                }
                let weight = self.b.initializer(
                    &format!("{base}.qweight"),
                    DataType::Uint8,
                    &[n as i64, blocks as i64, QK as i64],
                    &data,
                )?;
                let scales = self.float_initializer(&format!("{base}.scales"), &[n as i64, blocks as i64], &scales)?;
                let attrs = self.nbits_attrs(k, n, 8);
                Ok(self.b.node("MatMulNBits", MS, &[input, &weight, &scales], base, attrs))
            }
            Form::Requantized => {
                self.stats.quantized_tensors += parts.len();
                let mut values = Vec::with_capacity(k);
                let mut packed = Requantized8::with_capacity(n, k);
                for (row, part_ty) in rows.iter().zip(row_types(parts)) {
                    values.clear();
                    quant::dequantize_into(part_ty, row, &mut values)
                        .map_err(|_| ImportError::TensorType { tensor: parts[0].info.name.clone(), ty: part_ty })?;
                    packed.push_row(&values);
                }
                let weight = self.b.initializer(
                    &format!("{base}.qweight"),
                    DataType::Uint8,
                    &[n as i64, blocks as i64, QK as i64],
                    &packed.data,
                )?;
                let scales =
                    self.float_initializer(&format!("{base}.scales"), &[n as i64, blocks as i64], &packed.scales)?;
                let zp = self.b.initializer(
                    &format!("{base}.zero_points"),
                    DataType::Uint8,
                    &[n as i64, blocks as i64],
                    &packed.zero_points,
                )?;
                let attrs = self.nbits_attrs(k, n, 8);
                Ok(self.b.node("MatMulNBits", MS, &[input, &weight, &scales, &zp], base, attrs))
            }
            Form::Float => {
                self.stats.float_tensors += parts.len();
                let mut weight = Vec::with_capacity(n * k);
                for (row, part_ty) in rows.iter().zip(row_types(parts)) {
                    quant::dequantize_into(part_ty, row, &mut weight)
                        .map_err(|_| ImportError::TensorType { tensor: parts[0].info.name.clone(), ty: part_ty })?;
                }
                let transposed = transpose(&weight, n, k);
                let w = self.float_initializer(&format!("{base}.weight"), &[k as i64, n as i64], &transposed)?;
                Ok(self.b.node("MatMul", "", &[input, &w], base, vec![]))
            }
        }
    }
}

/// The GGML type of every output row of `parts`, in order.
fn row_types<'p>(parts: &'p [Part]) -> impl Iterator<Item = GgmlType> + 'p {
    parts.iter().flat_map(|p| std::iter::repeat_n(p.info.ggml_type, p.info.dims[1] as usize))
}

/// MatMulNBits 8-bit inputs, asymmetric per block of 32: `w = (q - zp) * scale` with the block's range
/// stretched to include 0, so the zero point is an integer in 0..=255 and the error is at most `scale / 2`.
struct Requantized8 {
    /// `[N, blocks, 32]`.
    data: Vec<u8>,
    /// `[N, blocks]`.
    scales: Vec<f32>,
    /// `[N, blocks]`, one byte per block.
    zero_points: Vec<u8>,
}

impl Requantized8 {
    fn with_capacity(rows: usize, k: usize) -> Self {
        let blocks = rows * k / QK;
        Self {
            data: Vec::with_capacity(rows * k),
            scales: Vec::with_capacity(blocks),
            zero_points: Vec::with_capacity(blocks),
        }
    }

    fn push_row(&mut self, values: &[f32]) {
        for block in values.chunks_exact(QK) {
            let min = block.iter().copied().fold(0f32, f32::min);
            let max = block.iter().copied().fold(0f32, f32::max);
            let scale = (max - min) / 255.0;
            if scale == 0.0 {
                self.scales.push(0.0);
                self.zero_points.push(0);
                self.data.extend(std::iter::repeat_n(0, QK));
                continue;
            }
            let zp = (-min / scale).round().clamp(0.0, 255.0);
            self.scales.push(scale);
            self.zero_points.push(zp as u8);
            self.data.extend(block.iter().map(|x| (x / scale + zp).round().clamp(0.0, 255.0) as u8));
        }
    }
}

/// How the tied output head reuses the embedding.
enum TiedHead {
    /// The embedding's Q8_0 blocks as uint8 (an initializer name) and their scales.
    Q8 {
        data: String,
        scales: Vec<f32>,
    },
    Float(Vec<f32>),
}

/// For each output row in Hugging Face order, the GGUF row holding it. llama.cpp stores Q/K as
/// `W_hf.reshape(h, 2, hd/2, K).swapaxes(1, 2)`: GGUF row `(head, i, j)` is HF row `(head, j, i)`.
pub(crate) fn row_order(rows: usize, unpermute_heads: Option<usize>) -> Vec<usize> {
    let Some(heads) = unpermute_heads else { return (0..rows).collect() };
    let head_dim = rows / heads;
    let half = head_dim / 2;
    (0..rows)
        .map(|r| {
            let (head, within) = (r / head_dim, r % head_dim);
            let (j, i) = (within / half, within % half);
            head * head_dim + 2 * i + j
        })
        .collect()
}

/// Q8_0 blocks as uint8 (`int8 + 128`, MatMulNBits' and GatherBlockQuantized's default zero point) and scales.
fn q8_0_as_uint8(bytes: &[u8]) -> (Vec<u8>, Vec<f32>) {
    let blocks = bytes.len() / quant::Q8_0_BLOCK_BYTES;
    let mut data = Vec::with_capacity(blocks * QK);
    let mut scales = Vec::with_capacity(blocks);
    for block in bytes.chunks_exact(quant::Q8_0_BLOCK_BYTES) {
        scales.push(read_f16(&block[0..2]));
        data.extend(block[2..].iter().map(|q| q.wrapping_add(128)));
    }
    (data, scales)
}

/// MatMulNBits inputs for 4-bit rows.
struct PackedNibbles {
    /// `[N, blocks, 16]`: byte `i` holds elements `2i` (low nibble) and `2i + 1` (high nibble).
    data: Vec<u8>,
    /// `[N, blocks]`.
    scales: Vec<f32>,
    /// `[N, ceil(blocks / 2)]`: even blocks in the low nibble.
    zero_points: Vec<u8>,
    /// `[blocks, N]`: what `(q - zp) * d` misses of `d * q + m`, per block.
    residual: Vec<f32>,
}

fn pack_nibble_rows(rows: &[&[u8]], ty: GgmlType, blocks: usize) -> PackedNibbles {
    let n = rows.len();
    let zp_stride = blocks.div_ceil(2);
    let mut out = PackedNibbles {
        data: Vec::with_capacity(n * blocks * QK / 2),
        scales: Vec::with_capacity(n * blocks),
        zero_points: vec![0; n * zp_stride],
        residual: vec![0.0; blocks * n],
    };
    let block_bytes = if ty == GgmlType::Q4_1 { quant::Q4_1_BLOCK_BYTES } else { quant::Q4_0_BLOCK_BYTES };
    for (r, row) in rows.iter().enumerate() {
        for (b, block) in row.chunks_exact(block_bytes).enumerate() {
            let d = read_f16(&block[0..2]);
            let (zp, qs) = if ty == GgmlType::Q4_1 {
                let m = read_f16(&block[2..4]);
                let zp = if d == 0.0 { 0.0 } else { (-f64::from(m) / f64::from(d)).round_ties_even().clamp(0.0, 15.0) };
                out.residual[b * n + r] = (f64::from(m) + zp * f64::from(d)) as f32;
                (zp as u8, &block[4..20])
            } else {
                (8, &block[2..18])
            };
            out.scales.push(d);
            out.zero_points[r * zp_stride + b / 2] |= zp << (4 * (b % 2));
            let q = |j: usize| if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
            out.data.extend((0..QK / 2).map(|i| q(2 * i) | (q(2 * i + 1) << 4)));
        }
    }
    out
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_order_undoes_llama_cpp_permutation() {
        // Two heads of size 4: HF rows [h0: a b c d][h1: e f g h]; llama.cpp stores (head, i, j) = HF (head, j, i).
        let gguf_of_hf = row_order(8, Some(2));
        assert_eq!(gguf_of_hf, vec![0, 2, 1, 3, 4, 6, 5, 7]);
        assert_eq!(row_order(3, None), vec![0, 1, 2]);
    }

    #[test]
    fn requantized_8bit_blocks_are_within_half_a_step() {
        let values: Vec<f32> = (0..96).map(|i| ((i * 13 % 41) as f32 - 9.0) * 0.07).collect();
        let mut packed = Requantized8::with_capacity(1, values.len());
        packed.push_row(&values);
        packed.push_row(&[0.0; QK]);
        packed.push_row(&[0.5; QK]);
        for (idx, want) in values.iter().chain(&[0.0; QK]).chain(&[0.5; QK]).enumerate() {
            let b = idx / QK;
            let (scale, zp) = (packed.scales[b], f32::from(packed.zero_points[b]));
            let got = (f32::from(packed.data[idx]) - zp) * scale;
            assert!((got - want).abs() <= scale / 2.0 + 1e-6, "element {idx}: {got} vs {want}");
        }
    }

    #[test]
    fn nibble_packing_reproduces_q4_1_values() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 7 % 23) as f32 - 5.0) * 0.13).collect();
        let encoded = quant::quantize_q4_1(&values);
        let expected = quant::dequantize(GgmlType::Q4_1, &encoded).unwrap();
        let packed = pack_nibble_rows(&[&encoded], GgmlType::Q4_1, 2);
        for (idx, want) in expected.iter().enumerate() {
            let (b, j) = (idx / QK, idx % QK);
            let byte = packed.data[b * 16 + j / 2];
            let q = if j % 2 == 0 { byte & 0xF } else { byte >> 4 };
            let zp = (packed.zero_points[b / 2] >> (4 * (b % 2))) & 0xF;
            let got = (f32::from(q) - f32::from(zp)) * packed.scales[b] + packed.residual[b];
            assert!((got - want).abs() < 1e-5, "element {idx}: {got} vs {want}");
        }
    }
}
