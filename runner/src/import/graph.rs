//! The llama-family graph (llama, Qwen2's QKV biases, Qwen3's Q/K norms, Phi-3's fused projections, Gemma's
//! embedding scale, post-norms, GELU gate, soft-capping and sliding windows) in the layout onnxruntime-genai's
//! builder emits (and ORT runs fast): packed-QKV GroupQueryAttention with rotary inside, (Skip)SimplifiedLayerNormalization, fused gate/up MLP, and
//! weights kept in their GGUF blocks as MatMulNBits (int4; int8 for the 8-bit layouts), requantized to 8-bit
//! MatMulNBits (int8), or dequantized to float32 or float16 (fp16 makes float16 the graph's float type:
//! activations, KV cache and logits too).
//!
//! Exact blocks: MatMulNBits computes `(q - zp) * scale` per block. A type with an integer zero (Q4_0, Q5_0,
//! Q8_0, Q3_K, Q6_K) shifts its levels onto MatMulNBits' default zero point. A type with a float offset,
//! `scale * q + m` (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K), gets the integer zero point `zp = clip(rint(-m / scale))`
//! and the per-block constant it misses, `r = m + zp * scale`, added back as `blocksum(x) @ r^T` where
//! `blocksum` sums each block of the input. A fused layer whose parts need different layouts (Q4_K queries
//! beside Q6_K values) runs one MatMulNBits per run of equal layouts and concatenates them.
//!
//! What each tensor became is returned in [`GraphStats::weights`], recorded in `runner.json` and, summed up,
//! in the ONNX model's metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use half::f16;

use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::model_folder::{
    ATTENTION_MASK, INPUT_IDS, LOGITS, LOGITS_FROM_INPUT, LoraTarget, MODEL_DATA_FILE, MODEL_FILE, PAST_KEY,
    PAST_VALUE, PRESENT_KEY, PRESENT_VALUE, Side, layer_name,
};
use crate::onnx::proto::Dimension;
use crate::onnx::{Attr, DataType, GraphBuilder};

use super::hparams::RopeScaling;
use super::quant::{self, IntLayout, Offset, QK};
use super::{Architecture, Hparams, ImportError, ImportOptions, Precision};

const MS: &str = "com.microsoft";
const OPSETS: [(&str, i64); 2] = [("", 17), (MS, 1)];

/// How many GGUF tensors ended up in each form, and what each became.
#[derive(Debug, Default, Clone)]
pub struct GraphStats {
    pub quantized_tensors: usize,
    pub float_tensors: usize,
    /// Tensor name -> its GGUF type and form in the graph, e.g. `Q6_K: MatMulNBits 8-bit, block 16, exact`.
    pub weights: BTreeMap<String, String>,
    /// The rotary's per-frequency factors, where the model has some: which tensor and why.
    pub rope: Option<String>,
}

impl GraphStats {
    /// The forms with their tensor counts, for the model's metadata: `Q4_K: MatMulNBits 4-bit, ... x 60; ...`.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for form in self.weights.values() {
            *counts.entry(form.as_str()).or_default() += 1;
        }
        counts.iter().map(|(form, n)| format!("{form} x {n}")).collect::<Vec<_>>().join("; ")
    }
}

/// Refuses, before anything is written, a tensor whose type the importer cannot carry over.
pub fn check_tensor_types(file: &GgufFile) -> Result<(), ImportError> {
    for t in file.tensors() {
        let ok = matches!(t.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16)
            || quant::int_layout(t.ggml_type).is_some();
        if !ok {
            return Err(ImportError::TensorType { tensor: t.name.clone(), ty: t.ggml_type });
        }
    }
    Ok(())
}

/// Refuses a GGUF that holds a tensor the graph never read (every tensor read is recorded in `stats.weights`), so
/// a part of the model runner does not implement (a bias, rope factors, an expert) cannot be dropped silently.
/// The tensors llama.cpp itself loads and leaves unused for the language model are recorded as left out.
fn check_every_tensor_used(file: &GgufFile, hp: &Hparams, stats: &mut GraphStats) -> Result<(), ImportError> {
    let exempt = hp.architecture.tensors_llama_cpp_leaves_unused();
    let mut unused = Vec::new();
    for t in file.tensors() {
        if stats.weights.contains_key(&t.name) {
            continue;
        }
        if exempt.contains(&t.name.as_str()) {
            let form = format!("{}: left out (llama.cpp does not use it for logits either)", t.ggml_type);
            stats.weights.insert(t.name.clone(), form);
        } else {
            unused.push(t.name.clone());
        }
    }
    if unused.is_empty() {
        return Ok(());
    }
    Err(ImportError::UnusedTensors { path: file.path().to_path_buf(), arch: hp.arch.clone(), tensors: unused })
}

/// One GGUF matrix taking part in a (possibly fused) linear layer.
struct Part<'a> {
    info: &'a TensorInfo,
    /// llama.cpp permutes Q and K rows per head for its interleaved rotary; undo it for `heads` heads.
    unpermute_heads: Option<usize>,
}

/// The form a linear layer's weights take in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// MatMulNBits over the GGUF's own levels and scales, in the type's [`IntLayout`]: lossless.
    Exact(IntLayout),
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
    let mut stats = std::mem::take(&mut e.stats);
    check_every_tensor_used(file, hp, &mut stats)?;
    let mut metadata = metadata.to_vec();
    metadata.push(("runner.weights".into(), stats.summary()));
    e.b.finish(&dir.join(MODEL_FILE), &OPSETS, &metadata)?;
    Ok(stats)
}

fn sym(name: &str) -> Dimension {
    Dimension::symbolic(name)
}

fn fixed(v: usize) -> Dimension {
    Dimension::fixed(v as i64)
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
        self.b.input(INPUT_IDS, DataType::Int64, &[sym("batch_size"), sym("sequence_length")]);
        self.b.input(ATTENTION_MASK, DataType::Int64, &[sym("batch_size"), sym("total_sequence_length")]);
        for i in 0..hp.blocks {
            self.b.input(&layer_name(PAST_KEY, i), float, &kv_dims("past_sequence_length"));
            self.b.input(&layer_name(PAST_VALUE, i), float, &kv_dims("past_sequence_length"));
        }
        self.b.output(LOGITS, float, &[sym("batch_size"), sym("sequence_length"), fixed(hp.vocab)]);
        for i in 0..hp.blocks {
            self.b.output(&layer_name(PRESENT_KEY, i), float, &kv_dims("total_sequence_length"));
            self.b.output(&layer_name(PRESENT_VALUE, i), float, &kv_dims("total_sequence_length"));
        }

        // GroupQueryAttention derives positions from the mask: seqlens_k = sum(mask) - 1, total = mask width.
        let axis1 = self.b.initializer_i64("axes_1", &[1], &[1])?;
        let one = self.b.initializer_i64("one_i64", &[], &[1])?;
        let mask_sum =
            self.b.node("ReduceSum", "", &[ATTENTION_MASK, &axis1], "mask_sum", vec![("keepdims", Attr::Int(0))]);
        let last = self.b.node("Sub", "", &[&mask_sum, &one], "mask_sum_minus_1", vec![]);
        let seqlens_k = self.b.node("Cast", "", &[&last], "seqlens_k", vec![("to", Attr::Int(DataType::Int32 as i64))]);
        let mask_shape = self.b.node("Shape", "", &[ATTENTION_MASK], "mask_shape", vec![]);
        let total = self.b.node("Gather", "", &[&mask_shape, &one], "total_seq_len_i64", vec![("axis", Attr::Int(0))]);
        let total_len =
            self.b.node("Cast", "", &[&total], "total_seq_len", vec![("to", Attr::Int(DataType::Int32 as i64))]);
        let factors = self.rope_factors()?;
        let (cos, sin) = self.rotary_caches(hp.rope_theta, hp.rope_freq_scale, factors.as_deref(), "")?;
        // Sliding-window blocks may turn at a base and scale of their own (Gemma 3's local layers).
        let local_differs = hp.rope_theta_local != hp.rope_theta || hp.rope_freq_scale_local != hp.rope_freq_scale;
        let local_rotary = if hp.windows.iter().any(Option::is_some) && local_differs {
            self.rotary_caches(hp.rope_theta_local, hp.rope_freq_scale_local, factors.as_deref(), "_local")?
        } else {
            (cos.clone(), sin.clone())
        };

        let split = self.b.initializer_i64("split_ffn", &[2], &[hp.ffn as i64, hp.ffn as i64])?;
        let (embedded, head) = self.embedding()?;
        let embedded = if hp.architecture.scales_embedding() { self.scale_embedding(&embedded)? } else { embedded };
        let mut residual = embedded.clone();
        let mut pending: Option<String> = None;
        for i in 0..hp.blocks {
            let gamma = self.norm_weight(&format!("blk.{i}.attn_norm.weight"))?;
            let h = match pending.take() {
                None => self.rms_norm(&residual, &gamma, &format!("l{i}_attn_norm")),
                Some(mlp_out) => self.skip_norm(&mlp_out, &mut residual, &gamma, &format!("l{i}_attn_norm")),
            };
            let qkv = self.qkv_projection(&h, i)?;
            let (q_n, kv_n) = (hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim);
            let lora_parts = [(LoraTarget::QProj, q_n), (LoraTarget::KProj, kv_n), (LoraTarget::VProj, kv_n)];
            let qkv = self.with_lora(&h, qkv, i, hp.embedding, &lora_parts)?;
            let qkv = self.qkv_bias(qkv, i)?;
            let qkv = if hp.architecture.has_qk_norm() { self.qk_norm(&qkv, i)? } else { qkv };
            let attn = self.b.fresh(&format!("l{i}_attn"));
            let (cos, sin) = if hp.windows[i].is_some() { &local_rotary } else { &(cos.clone(), sin.clone()) };
            let mut attrs = vec![
                ("num_heads", Attr::Int(hp.heads as i64)),
                ("kv_num_heads", Attr::Int(hp.kv_heads as i64)),
                ("do_rotary", Attr::Int(1)),
                ("rotary_interleaved", Attr::Int(0)),
                ("scale", Attr::Float(hp.attention_scale as f32)),
                // local_window_size = llama.cpp's n_swa gives llama.cpp's mask: the Gemma fixtures, whose window is
                // shorter than their text, part from llama.cpp from the window's end on with n_swa - 1.
                ("local_window_size", Attr::Int(hp.windows[i].map_or(-1, |w| w as i64))),
            ];
            if let Some(cap) = hp.attention_softcap {
                attrs.push(("softcap", Attr::Float(cap as f32)));
            }
            let (present_k, present_v) = (layer_name(PRESENT_KEY, i), layer_name(PRESENT_VALUE, i));
            let (past_k, past_v) = (layer_name(PAST_KEY, i), layer_name(PAST_VALUE, i));
            self.b.node_with_outputs(
                "GroupQueryAttention",
                MS,
                &[&qkv, "", "", &past_k, &past_v, &seqlens_k, &total_len, cos, sin],
                &[&attn, &present_k, &present_v],
                attrs,
            );
            let o = self.tensor(&format!("blk.{i}.attn_output.weight"))?;
            Self::expect_shape(o, &[hp.heads * hp.head_dim, hp.embedding])?;
            let attn_out = self.linear(&attn, &[Part { info: o, unpermute_heads: None }], &format!("l{i}_o"))?;
            let attn_out =
                self.with_lora(&attn, attn_out, i, hp.heads * hp.head_dim, &[(LoraTarget::OProj, hp.embedding)])?;
            let attn_out = self.post_norm(attn_out, &format!("blk.{i}.post_attention_norm.weight"))?;

            let gamma = self.norm_weight(&format!("blk.{i}.ffn_norm.weight"))?;
            let h = self.skip_norm(&attn_out, &mut residual, &gamma, &format!("l{i}_ffn_norm"));
            let down = self.tensor(&format!("blk.{i}.ffn_down.weight"))?;
            Self::expect_shape(down, &[hp.ffn, hp.embedding])?;
            let gate_up = self.gate_up_projection(&h, i)?;
            let lora_parts = [(LoraTarget::GateProj, hp.ffn), (LoraTarget::UpProj, hp.ffn)];
            let gate_up = self.with_lora(&h, gate_up, i, hp.embedding, &lora_parts)?;
            let (g, u) = (self.b.fresh(&format!("l{i}_gate")), self.b.fresh(&format!("l{i}_up")));
            self.b.node_with_outputs("Split", "", &[&gate_up, &split], &[&g, &u], vec![("axis", Attr::Int(-1))]);
            let gate = if hp.architecture.gelu_gate() {
                self.b.node("FastGelu", MS, &[&g], &format!("l{i}_gate_gelu"), vec![])
            } else {
                let sig = self.b.node("Sigmoid", "", &[&g], &format!("l{i}_gate_sigmoid"), vec![]);
                self.b.node("Mul", "", &[&g, &sig], &format!("l{i}_gate_silu"), vec![])
            };
            let act = self.b.node("Mul", "", &[&gate, &u], &format!("l{i}_act"), vec![]);
            let mlp_out = self.linear(&act, &[Part { info: down, unpermute_heads: None }], &format!("l{i}_down"))?;
            let mlp_out = self.with_lora(&act, mlp_out, i, hp.ffn, &[(LoraTarget::DownProj, hp.embedding)])?;
            let mlp_out = self.post_norm(mlp_out, &format!("blk.{i}.post_ffw_norm.weight"))?;
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
        let Some(cap) = hp.final_softcap else { return self.lm_head(&head_input, head, LOGITS) };
        self.lm_head(&head_input, head, "logits_uncapped")?;
        self.soft_cap("logits_uncapped", cap, LOGITS)
    }

    /// RMS norm over the last axis with weight `gamma`, statistics in float32.
    fn rms_norm(&mut self, input: &str, gamma: &str, base: &str) -> String {
        let attrs = vec![
            ("axis", Attr::Int(-1)),
            ("epsilon", Attr::Float(self.hp.rms_eps as f32)),
            ("stash_type", Attr::Int(1)),
        ];
        self.b.node("SimplifiedLayerNormalization", "", &[input, gamma], base, attrs)
    }

    /// Gemma's post-norm of a block's attention or MLP output (`weight`), where the architecture has one.
    fn post_norm(&mut self, output: String, weight: &str) -> Result<String, ImportError> {
        if !self.hp.architecture.has_post_norms() {
            return Ok(output);
        }
        let gamma = self.norm_weight(weight)?;
        Ok(self.rms_norm(&output, &gamma, &format!("{output}_post_norm")))
    }

    /// Gemma's embedding times sqrt(embedding width).
    fn scale_embedding(&mut self, embedded: &str) -> Result<String, ImportError> {
        let factor = (self.hp.embedding as f32).sqrt();
        let factor = self.float_initializer("embedding_scale", &[], &[factor])?;
        Ok(self.b.node("Mul", "", &[embedded, &factor], "embedded_scaled", vec![]))
    }

    /// `cap * tanh(input / cap)` into `output` (Gemma 2's final logits).
    fn soft_cap(&mut self, input: &str, cap: f64, output: &str) -> Result<(), ImportError> {
        let cap = self.float_initializer("final_softcap", &[], &[cap as f32])?;
        let scaled = self.b.node("Div", "", &[input, &cap], "logits_over_cap", vec![]);
        let squashed = self.b.node("Tanh", "", &[&scaled], "logits_tanh", vec![]);
        self.b.node_with_outputs("Mul", "", &[&squashed, &cap], &[output], vec![]);
        Ok(())
    }

    /// The packed `[Q | K | V]` projection of layer `i`: one fused GGUF tensor (Phi-3's `attn_qkv`) or three,
    /// Q and K rows put back in Hugging Face's order where llama.cpp permuted them.
    fn qkv_projection(&mut self, h: &str, i: usize) -> Result<String, ImportError> {
        let hp = self.hp.clone();
        let (q_n, kv_n) = (hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim);
        if hp.architecture.fuses_qkv() {
            let qkv = self.tensor(&format!("blk.{i}.attn_qkv.weight"))?;
            Self::expect_shape(qkv, &[hp.embedding, q_n + 2 * kv_n])?;
            return self.linear(h, &[Part { info: qkv, unpermute_heads: None }], &format!("l{i}_qkv"));
        }
        let q = self.tensor(&format!("blk.{i}.attn_q.weight"))?;
        let k = self.tensor(&format!("blk.{i}.attn_k.weight"))?;
        let v = self.tensor(&format!("blk.{i}.attn_v.weight"))?;
        Self::expect_shape(q, &[hp.embedding, q_n])?;
        Self::expect_shape(k, &[hp.embedding, kv_n])?;
        Self::expect_shape(v, &[hp.embedding, kv_n])?;
        let permuted = hp.architecture.permutes_qk_rows();
        let parts = [
            Part { info: q, unpermute_heads: permuted.then_some(hp.heads) },
            Part { info: k, unpermute_heads: permuted.then_some(hp.kv_heads) },
            Part { info: v, unpermute_heads: None },
        ];
        self.linear(h, &parts, &format!("l{i}_qkv"))
    }

    /// The packed `[gate | up]` projection of layer `i`: Phi-3's `ffn_up` holds both, others have two tensors.
    fn gate_up_projection(&mut self, h: &str, i: usize) -> Result<String, ImportError> {
        let hp = self.hp.clone();
        if hp.architecture.fuses_gate_up() {
            let gate_up = self.tensor(&format!("blk.{i}.ffn_up.weight"))?;
            Self::expect_shape(gate_up, &[hp.embedding, 2 * hp.ffn])?;
            return self.linear(h, &[Part { info: gate_up, unpermute_heads: None }], &format!("l{i}_gate_up"));
        }
        let gate = self.tensor(&format!("blk.{i}.ffn_gate.weight"))?;
        let up = self.tensor(&format!("blk.{i}.ffn_up.weight"))?;
        Self::expect_shape(gate, &[hp.embedding, hp.ffn])?;
        Self::expect_shape(up, &[hp.embedding, hp.ffn])?;
        let parts = [Part { info: gate, unpermute_heads: None }, Part { info: up, unpermute_heads: None }];
        self.linear(h, &parts, &format!("l{i}_gate_up"))
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
        self.vector(name, self.hp.embedding)
    }

    /// A 1-D tensor of `width` values (norm weights, biases) as a float initializer.
    fn vector(&mut self, name: &str, width: usize) -> Result<String, ImportError> {
        let info = self.tensor(name)?;
        Self::expect_shape(info, &[width])?;
        let values = self.dequantize(info)?;
        self.record_float(info);
        self.float_initializer(name, &[width as i64], &values)
    }

    /// Adds `blk.N.attn_{q,k,v}.bias` to the packed QKV product. Architectures that have them (Qwen2) must;
    /// a llama GGUF may carry them too (HF's `attention_bias`), which llama.cpp then applies as well.
    fn qkv_bias(&mut self, qkv: String, layer: usize) -> Result<String, ImportError> {
        let hp = self.hp.clone();
        let name = |part: &str| format!("blk.{layer}.attn_{part}.bias");
        if !hp.architecture.has_qkv_bias() && self.file.tensor(&name("q")).is_err() {
            return Ok(qkv);
        }
        let permuted = hp.architecture.permutes_qk_rows();
        let mut bias = Vec::new();
        for (part, heads, unpermute) in
            [("q", hp.heads, permuted), ("k", hp.kv_heads, permuted), ("v", hp.kv_heads, false)]
        {
            let info = self.tensor(&name(part))?;
            Self::expect_shape(info, &[heads * hp.head_dim])?;
            let values = self.dequantize(info)?;
            self.record_float(info);
            bias.extend(row_order(values.len(), unpermute.then_some(heads)).into_iter().map(|r| values[r]));
        }
        let bias = self.float_initializer(&format!("blk.{layer}.attn_qkv.bias"), &[bias.len() as i64], &bias)?;
        Ok(self.b.node("Add", "", &[&qkv, &bias], &format!("l{layer}_qkv_biased"), vec![]))
    }

    /// Qwen3's RMS norm over each head of Q and K (`blk.N.attn_{q,k}_norm.weight`, one weight per head
    /// element), applied to the packed QKV before GroupQueryAttention's rotary, as the model applies it.
    fn qk_norm(&mut self, qkv: &str, layer: usize) -> Result<String, ImportError> {
        let hp = self.hp.clone();
        let (q_n, kv_n) = (hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim);
        let sizes =
            self.b.initializer_i64(&format!("l{layer}_qkv_sizes"), &[3], &[q_n as i64, kv_n as i64, kv_n as i64])?;
        let base = format!("l{layer}");
        let (q, k, v) = (
            self.b.fresh(&format!("{base}_q")),
            self.b.fresh(&format!("{base}_k")),
            self.b.fresh(&format!("{base}_v")),
        );
        self.b.node_with_outputs("Split", "", &[qkv, &sizes], &[&q, &k, &v], vec![("axis", Attr::Int(-1))]);
        let mut normed = Vec::new();
        for (part, value, heads) in [("q", &q, hp.heads), ("k", &k, hp.kv_heads)] {
            let gamma = self.vector(&format!("blk.{layer}.attn_{part}_norm.weight"), hp.head_dim)?;
            let per_head = self.b.initializer_i64(
                &format!("{base}_{part}_heads_shape"),
                &[4],
                &[0, 0, heads as i64, hp.head_dim as i64],
            )?;
            let flat = self.b.initializer_i64(
                &format!("{base}_{part}_flat_shape"),
                &[3],
                &[0, 0, (heads * hp.head_dim) as i64],
            )?;
            let split = self.b.node("Reshape", "", &[value, &per_head], &format!("{base}_{part}_heads"), vec![]);
            let norm = self.rms_norm(&split, &gamma, &format!("{base}_{part}_norm"));
            normed.push(self.b.node("Reshape", "", &[&norm, &flat], &format!("{base}_{part}_normed"), vec![]));
        }
        Ok(self.b.node(
            "Concat",
            "",
            &[&normed[0], &normed[1], &v],
            &format!("{base}_qkv_normed"),
            vec![("axis", Attr::Int(-1))],
        ))
    }

    /// Counts and records a tensor stored in the graph's float type.
    fn record_float(&mut self, info: &TensorInfo) {
        self.stats.float_tensors += 1;
        let float = if self.float_type() == DataType::Float16 { "float16" } else { "float32" };
        self.stats.weights.insert(info.name.clone(), format!("{}: {float}", info.ggml_type));
    }

    /// Counts and records a tensor kept in (or requantized to) integer blocks.
    fn record_quantized(&mut self, info: &TensorInfo, form: String) {
        self.stats.quantized_tensors += 1;
        self.stats.weights.insert(info.name.clone(), format!("{}: {form}", info.ggml_type));
    }

    fn dequantize(&self, info: &TensorInfo) -> Result<Vec<f32>, ImportError> {
        quant::dequantize(info.ggml_type, self.file.tensor_bytes(info)?)
            .map_err(|_| ImportError::TensorType { tensor: info.name.clone(), ty: info.ggml_type })
    }

    /// The rotary's per-frequency divisors (llama.cpp's `freq_factors`: frequency `i` turns at
    /// `theta^(-2i/d) / factors[i]`), from the tensors llama.cpp reads for this architecture: Llama's
    /// `rope_freqs.weight` (Llama 3's rope, which llama.cpp's converter stores as one factor per frequency), or
    /// LongRoPE's `rope_factors_long`/`rope_factors_short` (Phi-3 always; Llama with scaling `longrope`).
    fn rope_factors(&mut self) -> Result<Option<Vec<f32>>, ImportError> {
        let hp = self.hp.clone();
        let long_rope = hp.architecture == Architecture::Phi3
            || (hp.architecture == Architecture::Llama && hp.rope_scaling == RopeScaling::LongRope);
        if !long_rope {
            if hp.architecture != Architecture::Llama || self.file.tensor("rope_freqs.weight").is_err() {
                return Ok(None);
            }
            return self.factor_tensor("rope_freqs.weight", "divides the rotary frequencies (cos/sin caches)");
        }
        // llama.cpp picks the long factors when the context of a sequence exceeds the original context, the short
        // ones otherwise, once for the whole context. runner's caches are fixed at import and cover the model's
        // whole context (`context_length`), the context runner runs with: it picks what llama.cpp picks at that
        // n_ctx, so the long factors for Phi-3 128k (131072 > 4096). llama.cpp run at a smaller n_ctx (4096 and
        // under) uses the short ones, and Hugging Face switches by the length of the sequence so far: on prompts
        // within the original context those differ from runner. The choice is recorded in runner.json.
        let (context, original) = (hp.context, hp.rope_original_context);
        let use_long = context > original;
        let (chosen, other) = if use_long { ("long", "short") } else { ("short", "long") };
        let comparison = if use_long { ">" } else { "<=" };
        let why = format!(
            "the context {context} {comparison} the original {original}, as llama.cpp at n_ctx {comparison} {original}"
        );
        let other_name = format!("rope_factors_{other}.weight");
        if let Ok(info) = self.file.tensor(&other_name) {
            let form = format!("{}: left out (LongRoPE {other} factors; {why} uses the {chosen} ones)", info.ggml_type);
            self.stats.weights.insert(other_name, form);
        }
        let name = format!("rope_factors_{chosen}.weight");
        if self.file.tensor(&name).is_err() {
            return Ok(None);
        }
        self.factor_tensor(&name, &format!("divides the rotary frequencies (LongRoPE {chosen} factors: {why})"))
    }

    /// The rotary divisors in tensor `name` (one per frequency), recorded as `what`.
    fn factor_tensor(&mut self, name: &str, what: &str) -> Result<Option<Vec<f32>>, ImportError> {
        let info = self.tensor(name)?;
        Self::expect_shape(info, &[self.hp.head_dim / 2])?;
        let factors = self.dequantize(info)?;
        self.stats.weights.insert(name.into(), format!("{}: {what}", info.ggml_type));
        self.stats.rope = Some(format!("{name}: {what}"));
        Ok(Some(factors))
    }

    /// cos/sin caches for GroupQueryAttention's rotary at base `theta`, named `cos_cache{suffix}`/`sin_cache{suffix}`,
    /// as llama.cpp's rope computes them (without YaRN): angle `pos * freq_scale * theta^(-2i/d) / factors[i]`,
    /// cos and sin times the attention factor.
    fn rotary_caches(
        &mut self,
        theta: f64,
        freq_scale: f64,
        factors: Option<&[f32]>,
        suffix: &str,
    ) -> Result<(String, String), ImportError> {
        let (len, half) = (self.hp.context, self.hp.head_dim / 2);
        let mscale = self.hp.rope_attn_factor;
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for i in 0..half {
                let divisor = factors.map_or(1.0, |f| f64::from(f[i]));
                let freq = theta.powf(-2.0 * i as f64 / self.hp.head_dim as f64) / divisor;
                let angle = pos as f64 * freq_scale * freq;
                cos.push((angle.cos() * mscale) as f32);
                sin.push((angle.sin() * mscale) as f32);
            }
        }
        let dims = [len as i64, half as i64];
        let cos = self.float_initializer(&format!("cos_cache{suffix}"), &dims, &cos)?;
        Ok((cos, self.float_initializer(&format!("sin_cache{suffix}"), &dims, &sin)?))
    }

    /// The token embedding, and how the tied output head can reuse it.
    fn embedding(&mut self) -> Result<(String, TiedHead), ImportError> {
        let hp = self.hp.clone();
        let info = self.tensor("token_embd.weight")?;
        Self::expect_shape(info, &[hp.embedding, hp.vocab])?;
        // Kept blocks are gathered as 8-bit levels (4-bit ones widen exactly), with zero points and the gathered
        // per-block residual where the type has float offsets; int8 requantizes other embeddings to Q8_0 blocks.
        let bytes = self.file.tensor_bytes(info)?;
        let packed = match self.form_of(info.ggml_type) {
            Form::Exact(layout) => {
                let layout = IntLayout { bits: 8, block: layout.block };
                let rows: Vec<&[u8]> = bytes.chunks_exact(bytes.len() / hp.vocab).collect();
                let packed = pack_rows(&rows, &vec![info.ggml_type; hp.vocab], layout, hp.embedding);
                Some((packed, layout, Self::exact_label(layout, quant::has_float_offsets(info.ggml_type))))
            }
            Form::Requantized => {
                let q8_0 = quant::quantize_q8_0(&self.dequantize(info)?);
                let rows: Vec<&[u8]> = q8_0.chunks_exact(q8_0.len() / hp.vocab).collect();
                let layout = IntLayout { bits: 8, block: QK };
                let packed = pack_rows(&rows, &vec![GgmlType::Q8_0; hp.vocab], layout, hp.embedding);
                Some((packed, layout, "requantized to Q8_0 (lossy)".to_string()))
            }
            Form::Float => None,
        };
        if let Some((packed, layout, label)) = packed {
            let (vocab, blocks) = (hp.vocab as i64, (hp.embedding / layout.block) as i64);
            let dims = [vocab, blocks, layout.block as i64];
            let data_name = self.b.initializer("token_embd.qweight", DataType::Uint8, &dims, &packed.data)?;
            let gather_scales = self.float_initializer("token_embd.scales", &[vocab, blocks, 1], &packed.scales)?;
            let mut inputs = vec![data_name.clone(), INPUT_IDS.to_string(), gather_scales];
            if let Some(zero_points) = &packed.zero_points {
                let dims = [vocab, blocks, 1];
                inputs.push(self.b.initializer("token_embd.zero_points", DataType::Uint8, &dims, zero_points)?);
            }
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let mut gathered = self.b.node(
                "GatherBlockQuantized",
                MS,
                &inputs,
                "embed_blocks",
                vec![
                    ("bits", Attr::Int(8)),
                    ("block_size", Attr::Int(layout.block as i64)),
                    ("gather_axis", Attr::Int(0)),
                    ("quantize_axis", Attr::Int(2)),
                ],
            );
            if let Some(residual) = &packed.residual {
                // Stored [blocks, vocab] for the head's correction; the gather wants [vocab, blocks].
                let by_token = transpose(residual, blocks as usize, hp.vocab);
                let table = self.float_initializer("token_embd.residual", &[vocab, blocks], &by_token)?;
                let picked =
                    self.b.node("Gather", "", &[&table, INPUT_IDS], "embed_residual", vec![("axis", Attr::Int(0))]);
                let last = self.b.initializer_i64("axes_last_embed", &[1], &[-1])?;
                let column = self.b.node("Unsqueeze", "", &[&picked, &last], "embed_residual_column", vec![]);
                gathered = self.b.node("Add", "", &[&gathered, &column], "embed_blocks_exact", vec![]);
            }
            let shape = self.b.initializer_i64("embed_shape", &[3], &[0, 0, hp.embedding as i64])?;
            let embedded = self.b.node("Reshape", "", &[&gathered, &shape], "embedded", vec![]);
            self.record_quantized(info, format!("GatherBlockQuantized {label}"));
            return Ok((embedded, TiedHead::Blocks(StoredBlocks { weight: data_name, packed, layout })));
        }
        let values = self.dequantize(info)?;
        let table = self.float_initializer("token_embd.weight", &[hp.vocab as i64, hp.embedding as i64], &values)?;
        let embedded = self.b.node("Gather", "", &[&table, INPUT_IDS], "embedded", vec![("axis", Attr::Int(0))]);
        self.record_float(info);
        Ok((embedded, TiedHead::Float(values)))
    }

    /// The output head over `h`, written to `output`.
    fn lm_head(&mut self, h: &str, tied: TiedHead, output: &str) -> Result<(), ImportError> {
        let hp = self.hp.clone();
        if self.file.tensor("output.weight").is_ok() {
            let info = self.tensor("output.weight")?;
            Self::expect_shape(info, &[hp.embedding, hp.vocab])?;
            let logits = self.linear(h, &[Part { info, unpermute_heads: None }], "lm_head")?;
            self.b.node_with_outputs("Identity", "", &[&logits], &[output], vec![]);
            return Ok(());
        }
        match tied {
            TiedHead::Blocks(blocks) => {
                self.nbits_product(h, &blocks, hp.embedding, "lm_head", Some(output))?;
            }
            TiedHead::Float(table) => {
                let transposed = transpose(&table, hp.vocab, hp.embedding);
                let weight =
                    self.float_initializer("lm_head.weight", &[hp.embedding as i64, hp.vocab as i64], &transposed)?;
                self.b.node_with_outputs("MatMul", "", &[h, &weight], &[output], vec![]);
            }
        }
        Ok(())
    }

    fn nbits_attrs(&self, k: usize, n: usize, layout: IntLayout) -> Vec<(&'static str, Attr)> {
        vec![
            ("K", Attr::Int(k as i64)),
            ("N", Attr::Int(n as i64)),
            ("bits", Attr::Int(i64::from(layout.bits))),
            ("block_size", Attr::Int(layout.block as i64)),
            ("accuracy_level", Attr::Int(i64::from(self.options.accuracy_level))),
        ]
    }

    /// Sum of each `block`-wide block of `input`'s last axis: `[B, S, K] -> [B, S, K / block]`.
    fn blocksum(&mut self, input: &str, k: usize, block: usize) -> Result<String, ImportError> {
        let key = format!("{input}/{block}");
        if let Some(done) = self.blocksums.get(&key) {
            return Ok(done.clone());
        }
        let shape = self.b.initializer_i64("blocks_shape", &[4], &[0, 0, (k / block) as i64, block as i64])?;
        let axes = match &self.reduce_axes {
            Some(a) => a.clone(),
            None => {
                let a = self.b.initializer_i64("axes_last", &[1], &[-1])?;
                self.reduce_axes = Some(a.clone());
                a
            }
        };
        let blocks = self.b.node("Reshape", "", &[input, &shape], &format!("{input}_blocks{block}"), vec![]);
        let sum = self.b.node(
            "ReduceSum",
            "",
            &[&blocks, &axes],
            &format!("{input}_blocksum{block}"),
            vec![("keepdims", Attr::Int(0))],
        );
        self.blocksums.insert(key, sum.clone());
        Ok(sum)
    }

    /// `input @ W^T` with MatMulNBits over `blocks` (`k` wide), plus the residual correction where the blocks
    /// have one; the last node writes `output` when given.
    fn nbits_product(
        &mut self,
        input: &str,
        blocks: &StoredBlocks,
        k: usize,
        base: &str,
        output: Option<&str>,
    ) -> Result<String, ImportError> {
        let StoredBlocks { weight, packed, layout } = blocks;
        let layout = *layout;
        let (n, blocks) = (packed.scales.len() * layout.block / k, (k / layout.block) as i64);
        let scales = self.float_initializer(&format!("{base}.scales"), &[n as i64, blocks], &packed.scales)?;
        let mut inputs = vec![input.to_string(), weight.clone(), scales];
        if let Some(zero_points) = &packed.zero_points {
            let dims = [n as i64, (zero_points.len() / n) as i64];
            inputs.push(self.b.initializer(&format!("{base}.zero_points"), DataType::Uint8, &dims, zero_points)?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attrs = self.nbits_attrs(k, n, layout);
        let Some(residual) = &packed.residual else {
            return Ok(self.node_named("MatMulNBits", MS, &inputs, base, attrs, output));
        };
        let product = self.b.node("MatMulNBits", MS, &inputs, base, attrs);
        let sums = self.blocksum(input, k, layout.block)?;
        let residual = self.float_initializer(&format!("{base}.residual"), &[blocks, n as i64], residual)?;
        let correction = self.b.node("MatMul", "", &[&sums, &residual], &format!("{base}_correction"), vec![]);
        Ok(self.node_named("Add", "", &[&product, &correction], &format!("{base}_out"), vec![], output))
    }

    /// A node whose output is `output` when given (a graph output), a fresh name from `base` otherwise.
    fn node_named(
        &mut self,
        op: &str,
        domain: &str,
        inputs: &[&str],
        base: &str,
        attrs: Vec<(&str, Attr)>,
        output: Option<&str>,
    ) -> String {
        match output {
            Some(out) => {
                self.b.node_with_outputs(op, domain, inputs, &[out], attrs);
                out.to_string()
            }
            None => self.b.node(op, domain, inputs, base, attrs),
        }
    }

    /// How weights of type `ty` go into the graph at this import's precision: int4 keeps every quantized type's
    /// blocks; int8 keeps those whose layout is 8-bit and requantizes the rest.
    fn form_of(&self, ty: GgmlType) -> Form {
        match (self.options.precision, quant::int_layout(ty)) {
            (Precision::Int4, Some(layout)) => Form::Exact(layout),
            (Precision::Int8, Some(layout)) if layout.bits == 8 => Form::Exact(layout),
            (Precision::Int8, _) => Form::Requantized,
            _ => Form::Float,
        }
    }

    fn exact_label(layout: IntLayout, offsets: bool) -> String {
        let offsets = if offsets { ", integer zero points + residual" } else { "" };
        format!("{}-bit, block {}{offsets}, exact", layout.bits, layout.block)
    }

    /// `input @ W^T` for the rows of `parts` stacked in order: one product per run of parts that take the same
    /// form, concatenated when there are several.
    fn linear(&mut self, input: &str, parts: &[Part], base: &str) -> Result<String, ImportError> {
        let mut runs: Vec<(Form, &[Part])> = Vec::new();
        let mut start = 0;
        for i in 1..=parts.len() {
            let form = self.form_of(parts[start].info.ggml_type);
            if i == parts.len() || self.form_of(parts[i].info.ggml_type) != form {
                runs.push((form, &parts[start..i]));
                start = i;
            }
        }
        if let [(form, run)] = runs[..] {
            return self.linear_run(input, run, form, base);
        }
        let mut outputs = Vec::new();
        for (i, (form, run)) in runs.into_iter().enumerate() {
            outputs.push(self.linear_run(input, run, form, &format!("{base}_part{i}"))?);
        }
        let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        Ok(self.b.node("Concat", "", &refs, &format!("{base}_concat"), vec![("axis", Attr::Int(-1))]))
    }

    /// `input @ W^T` for `parts` that all take `form`.
    fn linear_run(&mut self, input: &str, parts: &[Part], form: Form, base: &str) -> Result<String, ImportError> {
        let k = parts[0].info.dims[0] as usize;
        let mut rows: Vec<&[u8]> = Vec::new();
        for part in parts {
            let bytes = self.file.tensor_bytes(part.info)?;
            let n = part.info.dims[1] as usize;
            let row_len = bytes.len() / n;
            let order = row_order(n, part.unpermute_heads);
            rows.extend(order.into_iter().map(|r| &bytes[r * row_len..(r + 1) * row_len]));
        }
        let types: Vec<GgmlType> = row_types(parts).collect();
        let n = rows.len();
        match form {
            Form::Exact(layout) => {
                let packed = pack_rows(&rows, &types, layout, k);
                for part in parts {
                    let offsets = quant::has_float_offsets(part.info.ggml_type);
                    self.record_quantized(part.info, format!("MatMulNBits {}", Self::exact_label(layout, offsets)));
                }
                let blocks = k / layout.block;
                let weight = self.b.initializer(
                    &format!("{base}.qweight"),
                    DataType::Uint8,
                    &[n as i64, blocks as i64, (layout.block * usize::from(layout.bits) / 8) as i64],
                    &packed.data,
                )?;
                self.nbits_product(input, &StoredBlocks { weight, packed, layout }, k, base, None)
            }
            Form::Requantized => {
                for part in parts {
                    self.record_quantized(part.info, "MatMulNBits 8-bit, block 32, requantized (lossy)".into());
                }
                let blocks = k / QK;
                let mut values = Vec::with_capacity(k);
                let mut packed = quant::NbitsBlocks::new(8, QK, k);
                for (row, part_ty) in rows.iter().zip(&types) {
                    values.clear();
                    quant::dequantize_into(*part_ty, row, &mut values)
                        .map_err(|_| ImportError::TensorType { tensor: parts[0].info.name.clone(), ty: *part_ty })?;
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
                let attrs = self.nbits_attrs(k, n, IntLayout { bits: 8, block: QK });
                Ok(self.b.node("MatMulNBits", MS, &[input, &weight, &scales, &zp], base, attrs))
            }
            Form::Float => {
                for part in parts {
                    self.record_float(part.info);
                }
                let mut weight = Vec::with_capacity(n * k);
                for (row, part_ty) in rows.iter().zip(&types) {
                    quant::dequantize_into(*part_ty, row, &mut weight)
                        .map_err(|_| ImportError::TensorType { tensor: parts[0].info.name.clone(), ty: *part_ty })?;
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

/// How the tied output head reuses the embedding.
enum TiedHead {
    /// The embedding's 8-bit blocks.
    Blocks(StoredBlocks),
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

/// Packed blocks whose levels are already the graph initializer `weight`.
struct StoredBlocks {
    weight: String,
    packed: PackedBlocks,
    layout: IntLayout,
}

/// MatMulNBits inputs for rows of quantized blocks in one [`IntLayout`].
struct PackedBlocks {
    /// `[N, blocks, block * bits / 8]`; at 4 bits byte `i` holds elements `2i` (low nibble) and `2i + 1`.
    data: Vec<u8>,
    /// `[N, blocks]`.
    scales: Vec<f32>,
    /// `[N, blocks]` at 8 bits, `[N, ceil(blocks / 2)]` at 4 (even blocks in the low nibble); `None` when every
    /// block uses the default zero point `2^(bits - 1)`.
    zero_points: Option<Vec<u8>>,
    /// `[blocks, N]`: what `(q - zp) * scale` misses of `scale * q + m`, per block; `None` when nothing is.
    residual: Option<Vec<f32>>,
}

/// Packs `rows` (row `r` of type `types[r]`, all of `layout`, `k` elements each) for MatMulNBits. Integer zeros
/// move the levels onto the default zero point; float offsets get an integer zero point and a residual.
fn pack_rows(rows: &[&[u8]], types: &[GgmlType], layout: IntLayout, k: usize) -> PackedBlocks {
    let (n, blocks, bits) = (rows.len(), k / layout.block, u32::from(layout.bits));
    let (default_zero, top) = (1u8 << (bits - 1), ((1u32 << bits) - 1) as f64);
    let zp_stride = if bits == 4 { blocks.div_ceil(2) } else { blocks };
    let mut data = Vec::with_capacity(n * blocks * layout.block * bits as usize / 8);
    let mut scales = Vec::with_capacity(n * blocks);
    let mut zero_points = vec![0u8; n * zp_stride];
    let mut residual = vec![0f32; blocks * n];
    let (mut any_zp, mut any_residual) = (false, false);
    let mut levels = Vec::with_capacity(layout.block);
    for (r, (row, ty)) in rows.iter().zip(types).enumerate() {
        let mut b = 0;
        quant::for_each_block(*ty, row, |block| {
            assert_eq!(block.len, layout.block, "{ty} blocks in a layout of {}", layout.block);
            levels.clear();
            let zp = match block.offset {
                Offset::Zero(z) => {
                    levels.extend(block.levels().iter().map(|q| q.wrapping_add(default_zero).wrapping_sub(z)));
                    default_zero
                }
                Offset::Min(m) => {
                    levels.extend_from_slice(block.levels());
                    let (m, scale) = (f64::from(m), f64::from(block.scale));
                    let zp = if scale == 0.0 { 0.0 } else { (-m / scale).round_ties_even().clamp(0.0, top) };
                    residual[b * n + r] = (m + zp * scale) as f32;
                    any_residual |= residual[b * n + r] != 0.0;
                    zp as u8
                }
            };
            any_zp |= zp != default_zero;
            if bits == 4 {
                zero_points[r * zp_stride + b / 2] |= zp << (4 * (b % 2));
                data.extend(levels.chunks_exact(2).map(|pair| pair[0] | (pair[1] << 4)));
            } else {
                zero_points[r * zp_stride + b] = zp;
                data.extend_from_slice(&levels);
            }
            scales.push(block.scale);
            b += 1;
        })
        .expect("rows of a type with an IntLayout decode");
        assert_eq!(b, blocks, "a {ty} row of {k} elements");
    }
    PackedBlocks {
        data,
        scales,
        zero_points: any_zp.then_some(zero_points),
        residual: any_residual.then_some(residual),
    }
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
    fn packed_blocks_reproduce_every_type() {
        let mut rng = crate::rng::SplitMix64::new(9);
        let k = 512;
        let pairs = [
            (GgmlType::Q4_0, GgmlType::Q4_1),
            (GgmlType::Q4K, GgmlType::Q4_0),
            (GgmlType::Q2K, GgmlType::Q3K),
            (GgmlType::Q5_0, GgmlType::Q5_1),
            (GgmlType::Q5K, GgmlType::Q8_0),
            (GgmlType::Q6K, GgmlType::Q6K),
        ];
        for (a, b) in pairs {
            let layout = quant::int_layout(a).unwrap();
            assert_eq!(quant::int_layout(b), Some(layout), "{a} and {b}");
            let rows = [quant::random_blocks(a, k, 0.3, &mut rng), quant::random_blocks(b, k, 0.3, &mut rng)];
            let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
            let packed = pack_rows(&refs, &[a, b], layout, k);
            let blocks = k / layout.block;
            for (r, (row, ty)) in rows.iter().zip([a, b]).enumerate() {
                let expected = quant::dequantize(ty, row).unwrap();
                for (idx, want) in expected.iter().enumerate() {
                    let (blk, j) = (idx / layout.block, idx % layout.block);
                    let at = (r * blocks + blk) * layout.block + j;
                    let (q, zp) = if layout.bits == 4 {
                        let zp = packed
                            .zero_points
                            .as_ref()
                            .map_or(8, |z| z[r * blocks.div_ceil(2) + blk / 2] >> (4 * (blk % 2)) & 0xF);
                        (packed.data[at / 2] >> (4 * (at % 2)) & 0xF, zp)
                    } else {
                        (packed.data[at], packed.zero_points.as_ref().map_or(128, |z| z[r * blocks + blk]))
                    };
                    let residual = packed.residual.as_ref().map_or(0.0, |res| res[blk * 2 + r]);
                    let got = (f32::from(q) - f32::from(zp)) * packed.scales[r * blocks + blk] + residual;
                    assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "{ty} element {idx}: {got} vs {want}");
                }
            }
        }
    }
}
