//! A plain float64 forward pass of a llama GGUF, straight from its dequantized weights, as llama.cpp
//! defines the model (interleaved rotary on the GGUF's permuted Q/K rows). Tests compare ONNX Runtime's
//! logits for an imported model against it; it is slow and simple on purpose.

use std::collections::HashMap;

use crate::gguf::GgufFile;
use crate::import::quant::dequantize;
use crate::import::row_order;
use crate::lora::{AdapterFile, LoraTarget, Side};

/// A dequantized weight matrix: `rows` rows of `cols` contiguous values (GGML's `[cols, rows]`).
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    fn load(gguf: &GgufFile, name: &str) -> Self {
        let info = gguf.tensor(name).unwrap_or_else(|e| panic!("{e}"));
        let data = dequantize(info.ggml_type, gguf.tensor_bytes(info).unwrap()).unwrap();
        let cols = info.dims[0] as usize;
        Self { rows: data.len() / cols, cols, data }
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.cols);
        (0..self.rows).map(|r| self.row(r).iter().zip(x).map(|(w, x)| f64::from(*w) * x).sum()).collect()
    }
}

struct Block {
    attn_norm: Matrix,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: Matrix,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// Logits for every position of `tokens`, computed in float64.
pub fn reference_logits(gguf: &GgufFile, tokens: &[u32]) -> Vec<Vec<f64>> {
    reference_logits_with_lora(gguf, tokens, None)
}

/// A LoRA adapter's updates by input name: `A` [in, r] and `B` [r, out], row-major.
struct LowRank(HashMap<String, (Vec<i64>, Vec<f32>)>);

impl LowRank {
    /// Adds `(x @ A) @ B` of `target` in `layer` to `out`. `out` is in GGUF row order; the update is in Hugging
    /// Face order, so Q and K rows (`unpermute_heads`) go where llama.cpp's permutation put them.
    fn apply(&self, layer: usize, target: LoraTarget, x: &[f64], out: &mut [f64], unpermute_heads: Option<usize>) {
        let (Some((a_dims, a)), Some((b_dims, b))) =
            (self.0.get(&target.input_name(layer, Side::A)), self.0.get(&target.input_name(layer, Side::B)))
        else {
            return;
        };
        let (inner, rank, outer) = (a_dims[0] as usize, a_dims[1] as usize, b_dims[1] as usize);
        assert_eq!((inner, outer), (x.len(), out.len()));
        let down: Vec<f64> = (0..rank).map(|j| (0..inner).map(|i| x[i] * f64::from(a[i * rank + j])).sum()).collect();
        let order = row_order(outer, unpermute_heads);
        for (col, &row) in order.iter().enumerate() {
            out[row] += (0..rank).map(|j| down[j] * f64::from(b[j * outer + col])).sum::<f64>();
        }
    }
}

/// [`reference_logits`] with a LoRA adapter's low-rank updates added to the projections it targets.
pub fn reference_logits_with_lora(gguf: &GgufFile, tokens: &[u32], adapter: Option<&AdapterFile>) -> Vec<Vec<f64>> {
    let lora = LowRank(
        adapter
            .iter()
            .flat_map(|a| &a.tensors)
            .map(|t| (t.name.clone(), (t.dims.clone(), t.to_f32().expect("float adapter tensor"))))
            .collect(),
    );
    let arch = gguf.str("general.architecture").unwrap().to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let blocks = gguf.u64(&key("block_count")).unwrap() as usize;
    let heads = gguf.u64(&key("attention.head_count")).unwrap() as usize;
    let kv_heads = gguf.u64(&key("attention.head_count_kv")).unwrap() as usize;
    let theta = gguf.f64(&key("rope.freq_base")).unwrap_or(10000.0);
    let eps = gguf.f64(&key("attention.layer_norm_rms_epsilon")).unwrap();
    let embedding = Matrix::load(gguf, "token_embd.weight");
    let width = embedding.cols;
    let head_dim = width / heads;
    let output = if gguf.tensor("output.weight").is_ok() { Some(Matrix::load(gguf, "output.weight")) } else { None };
    let output_norm = Matrix::load(gguf, "output_norm.weight");
    let layers: Vec<Block> = (0..blocks)
        .map(|b| {
            let m = |n: &str| Matrix::load(gguf, &format!("blk.{b}.{n}.weight"));
            Block {
                attn_norm: m("attn_norm"),
                q: m("attn_q"),
                k: m("attn_k"),
                v: m("attn_v"),
                o: m("attn_output"),
                ffn_norm: m("ffn_norm"),
                gate: m("ffn_gate"),
                up: m("ffn_up"),
                down: m("ffn_down"),
            }
        })
        .collect();
    let rms_norm = |x: &[f64], w: &Matrix| -> Vec<f64> {
        let scale = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
        x.iter().zip(&w.data).map(|(v, w)| v * scale * f64::from(*w)).collect()
    };
    let rope = |x: &mut [f64], pos: usize| {
        for head in x.chunks_mut(head_dim) {
            for i in 0..head_dim / 2 {
                let angle = pos as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
                let (sin, cos) = angle.sin_cos();
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * cos - b * sin;
                head[2 * i + 1] = a * sin + b * cos;
            }
        }
    };
    let mut keys: Vec<Vec<Vec<f64>>> = vec![Vec::new(); blocks];
    let mut values: Vec<Vec<Vec<f64>>> = vec![Vec::new(); blocks];
    let mut all_logits = Vec::with_capacity(tokens.len());
    for (pos, &token) in tokens.iter().enumerate() {
        let mut x: Vec<f64> = embedding.row(token as usize).iter().map(|v| f64::from(*v)).collect();
        for (b, layer) in layers.iter().enumerate() {
            let h = rms_norm(&x, &layer.attn_norm);
            let mut q = layer.q.apply(&h);
            let mut k = layer.k.apply(&h);
            let mut v = layer.v.apply(&h);
            lora.apply(b, LoraTarget::QProj, &h, &mut q, Some(heads));
            lora.apply(b, LoraTarget::KProj, &h, &mut k, Some(kv_heads));
            lora.apply(b, LoraTarget::VProj, &h, &mut v, None);
            rope(&mut q, pos);
            rope(&mut k, pos);
            keys[b].push(k);
            values[b].push(v);
            let mut attn = vec![0f64; heads * head_dim];
            for head in 0..heads {
                let kv = head / (heads / kv_heads);
                let qh = &q[head * head_dim..(head + 1) * head_dim];
                let scores: Vec<f64> = keys[b]
                    .iter()
                    .map(|k| {
                        let kh = &k[kv * head_dim..(kv + 1) * head_dim];
                        qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>() / (head_dim as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for (wgt, v) in weights.iter().zip(&values[b]) {
                    let vh = &v[kv * head_dim..(kv + 1) * head_dim];
                    for (out, v) in attn[head * head_dim..(head + 1) * head_dim].iter_mut().zip(vh) {
                        *out += wgt / total * v;
                    }
                }
            }
            let mut o = layer.o.apply(&attn);
            lora.apply(b, LoraTarget::OProj, &attn, &mut o, None);
            for (x, o) in x.iter_mut().zip(o) {
                *x += o;
            }
            let h = rms_norm(&x, &layer.ffn_norm);
            let mut gate = layer.gate.apply(&h);
            let mut up = layer.up.apply(&h);
            lora.apply(b, LoraTarget::GateProj, &h, &mut gate, None);
            lora.apply(b, LoraTarget::UpProj, &h, &mut up, None);
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let mut down = layer.down.apply(&act);
            lora.apply(b, LoraTarget::DownProj, &act, &mut down, None);
            for (x, d) in x.iter_mut().zip(down) {
                *x += d;
            }
        }
        let h = rms_norm(&x, &output_norm);
        all_logits.push(output.as_ref().unwrap_or(&embedding).apply(&h));
    }
    all_logits
}

/// Mean KL and top-1 agreement of logits against a reference: the measure derived models record.
pub use crate::derive::compare_logits;
