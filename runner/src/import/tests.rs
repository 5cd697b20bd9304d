//! Importer tests: real imports of tiny generated models (and of the default model when it is installed),
//! run on ONNX Runtime through the engine and compared with a float64 reference of the GGUF's weights.

use std::path::{Path, PathBuf};

use super::*;
use crate::engine::{Engine, EngineOptions};
use crate::gguf::writer::GgufWriter;
use crate::gguf::{GgmlType, GgufFile, MetaValue};
use crate::testing::reference::{compare_logits, reference_logits};
use crate::testing::{LlamaShape, tiny, write_llama_gguf, write_tiny_llama_gguf};

fn tiny_gguf(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    write_tiny_llama_gguf(&path, 42);
    path
}

fn options(precision: Precision, accuracy_level: u8) -> ImportOptions {
    ImportOptions { precision, accuracy_level, force: false, ..Default::default() }
}

fn load_engine(model_dir: &Path) -> Engine {
    Engine::load(&EngineOptions { model_dir: model_dir.to_path_buf(), intra_threads: Some(1), ..Default::default() })
        .unwrap_or_else(|e| panic!("loading {}: {e}", model_dir.display()))
}

/// Logits at every position: the prompt fed one token at a time through the KV cache, and the last
/// position again from a single prefill of all tokens.
fn ort_logits(model_dir: &Path, tokens: &[u32]) -> (Vec<Vec<f32>>, Vec<f32>) {
    let mut engine = load_engine(model_dir);
    let stepwise = tokens.iter().map(|t| engine.forward(&[*t]).unwrap()).collect();
    engine.reset().unwrap();
    let prefill = engine.forward(tokens).unwrap();
    (stepwise, prefill)
}

fn max_abs_diff(reference: &[Vec<f64>], test: &[Vec<f32>]) -> f64 {
    reference
        .iter()
        .zip(test)
        .flat_map(|(r, t)| r.iter().zip(t).map(|(r, t)| (r - f64::from(*t)).abs()))
        .fold(0.0, f64::max)
}

const TINY_TOKENS: [u32; 12] = [1, 90, 3 + 256, 7, 200, 2, 0, 45, 3 + 256 + 3, 130, 77, 1];

fn check_tiny(precision: Precision, accuracy_level: u8) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let out = dir.path().join("model");
    let summary = import_gguf(&gguf, &out, &options(precision, accuracy_level)).unwrap();
    let reference = reference_logits(&GgufFile::open(&gguf).unwrap(), &TINY_TOKENS);
    let (stepwise, prefill) = ort_logits(&out, &TINY_TOKENS);
    let (kl, top1) = compare_logits(&reference, &stepwise);
    let diff = max_abs_diff(&reference, &stepwise);
    let prefill_diff = max_abs_diff(&reference[reference.len() - 1..], &[prefill]);
    eprintln!(
        "{precision} level {accuracy_level}: max |diff| {diff:.2e} (prefill {prefill_diff:.2e}), KL {kl:.2e}, top-1 {top1}\n{summary}"
    );
    (diff.max(prefill_diff), kl, top1)
}

#[test]
fn tiny_fp32_matches_float64_reference() {
    let (diff, _, top1) = check_tiny(Precision::Fp32, 0);
    assert!(diff < 1e-4, "max abs diff {diff}");
    assert_eq!(top1, 1.0);
}

#[test]
fn tiny_int4_level0_is_exact_up_to_float32() {
    let (diff, _, top1) = check_tiny(Precision::Int4, 0);
    assert!(diff < 1e-4, "max abs diff {diff}");
    assert_eq!(top1, 1.0);
}

#[test]
fn tiny_int4_level4_stays_close() {
    let (_, kl, top1) = check_tiny(Precision::Int4, 4);
    assert!(kl < 2e-3, "mean KL {kl}");
    assert!(top1 >= 0.9, "top-1 agreement {top1}");
}

#[test]
fn tiny_int8_level0_is_within_8bit_rounding() {
    let (diff, kl, top1) = check_tiny(Precision::Int8, 0);
    assert!(diff < 5e-2, "max abs diff {diff}");
    assert!(kl < 1e-4, "mean KL {kl}");
    // The tiny random model has near-ties among its top logits; KL is the sharp measure here.
    assert!(top1 >= 0.8, "top-1 agreement {top1}");
}

#[test]
fn tiny_int8_level4_stays_close() {
    let (_, kl, top1) = check_tiny(Precision::Int8, 4);
    assert!(kl < 2e-3, "mean KL {kl}");
    assert!(top1 >= 0.9, "top-1 agreement {top1}");
}

#[test]
fn tiny_fp16_stays_close() {
    let (diff, kl, top1) = check_tiny(Precision::Fp16, 0);
    assert!(diff < 5e-2, "max abs diff {diff}");
    assert!(kl < 1e-4, "mean KL {kl}");
    assert_eq!(top1, 1.0);
}

#[test]
fn default_output_folder_is_per_model_and_precision() {
    let gguf = Path::new("/data/SmolLM2-135M-Instruct.Q4_1.gguf");
    let models = crate::paths::runner_home().join("models");
    assert_eq!(default_output_dir(gguf, Precision::Int8), models.join("SmolLM2-135M-Instruct").join("int8"));
    assert_eq!(
        default_output_dir(Path::new("llama-7b-q4_k_m.gguf"), Precision::Fp16),
        models.join("llama-7b").join("fp16")
    );
    assert_eq!(
        default_output_dir(Path::new("Qwen2-0.5B.gguf"), Precision::Fp32),
        models.join("Qwen2-0.5B").join("fp32")
    );
}

#[test]
fn folder_has_every_file_and_records_precision() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let out = dir.path().join("models").join("int4");
    let summary = import_gguf(&gguf, &out, &ImportOptions::default()).unwrap();
    let names: Vec<&str> = summary.files.iter().map(|(n, _)| n.as_str()).collect();
    for file in [
        "chat_template.jinja",
        "genai_config.json",
        "model.onnx",
        "model.onnx.data",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(names.contains(&file), "{file} missing from {names:?}");
    }
    // 2 blocks x 7 matrices in 4 bits, and the Q8_0 embedding.
    assert_eq!(summary.quantized_tensors, 2 * 7 + 1);
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let record = read("runner.json");
    assert_eq!(record["precision"], "int4");
    assert_eq!(record["accuracy_level"], 4);
    assert_eq!(record["source_sha256"].as_str().unwrap().len(), 64);
    let record = RunnerRecord::read(&out).unwrap().unwrap();
    assert_eq!((record.precision, record.accuracy_level), (Precision::Int4, 4));
    assert!(RunnerRecord::read(dir.path()).unwrap().is_none());
    let config = read("genai_config.json");
    // onnxruntime-genai refuses keys it does not know.
    let keys: Vec<&String> = config.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "search"]);
    assert_eq!(config["model"]["decoder"]["num_key_value_heads"], tiny::KV_HEADS);
    assert_eq!(config["model"]["eos_token_id"], tiny::EOS_ID);
    assert_eq!(std::fs::read_to_string(out.join("chat_template.jinja")).unwrap(), crate::testing::SMOLLM_CHAT_TEMPLATE);
    let engine = load_engine(&out);
    assert_eq!(engine.model_info().vocab, tiny::VOCAB);
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("int4")]);
}

#[test]
fn tiny_tokenizer_splits_digits_and_keeps_special_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    import_gguf(&tiny_gguf(dir.path()), &out, &ImportOptions::default()).unwrap();
    let tokenizer = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let vocab = crate::testing::tiny_vocab();
    let id = |t: &str| vocab.iter().position(|v| v == t).unwrap() as u32;
    let ids = tokenizer.encode("<|im_start|>the 42<|im_end|>", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![1, id("t"), id("he"), id("Ġ"), id("4"), id("2"), 2]);
    let ids = tokenizer.encode(" then", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![id("Ġthe"), id("n")]);
    let text = "Ünïcode ✓ and\nnew lines";
    let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
}

/// A GGUF's metadata (`meta` replacing or adding keys) and tensors, with `edit` applied, written to `path`.
pub(super) fn rewrite_tiny(
    src: &Path,
    path: &Path,
    meta: &[(&str, MetaValue)],
    edit: impl Fn(&str, GgmlType, Vec<u64>, Vec<u8>) -> (GgmlType, Vec<u64>, Vec<u8>),
) {
    let file = GgufFile::open(src).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata() {
        if !meta.iter().any(|(k, _)| *k == key.as_str()) {
            w.meta(key, value.clone());
        }
    }
    for (key, value) in meta {
        w.meta(key, value.clone());
    }
    for t in file.tensors() {
        let (ty, dims, data) = edit(&t.name, t.ggml_type, t.dims.clone(), file.tensor_bytes(t).unwrap().to_vec());
        w.tensor(&t.name, &dims, ty, data);
    }
    w.write_file(path).unwrap();
}

/// What runner cannot carry over keeps an error naming the key: rope scaling, an unknown BPE pre-tokenizer, an
/// unknown tokenizer model.
#[test]
fn unsupported_metadata_is_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_gguf(dir.path());
    let string = |s: &str| MetaValue::String(s.into());
    let cases = [
        ("llama.rope.scaling.type", string("yarn"), "yarn"),
        ("tokenizer.ggml.pre", string("kimi-k2"), "kimi-k2"),
        ("tokenizer.ggml.model", string("bert"), "bert"),
    ];
    for (key, value, named) in cases {
        let path = dir.path().join("edited.gguf");
        rewrite_tiny(&src, &path, &[(key, value)], |_, ty, dims, data| (ty, dims, data));
        let out = dir.path().join("out");
        let err = import_gguf(&path, &out, &ImportOptions::default()).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(named), "{key}: {err}");
        assert!(!out.exists());
    }
}

/// A tensor the graph never reads is refused by name, not dropped: a llama GGUF with attention-output and MLP
/// biases (llama.cpp adds them; runner's graph has no place for them) and a tensor of no known role.
#[test]
fn unused_tensors_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_gguf(dir.path());
    let file = GgufFile::open(&src).unwrap();
    let width = file.tensor("output_norm.weight").unwrap().dims[0];
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata() {
        w.meta(key, value.clone());
    }
    for t in file.tensors() {
        w.tensor(&t.name, &t.dims, t.ggml_type, file.tensor_bytes(t).unwrap().to_vec());
    }
    let extra = ["blk.0.attn_output.bias", "blk.1.ffn_down.bias", "mystery.weight"];
    for name in extra {
        w.tensor(name, &[width], GgmlType::F32, vec![0; width as usize * 4]);
    }
    let path = dir.path().join("extra.gguf");
    w.write_file(&path).unwrap();
    let out = dir.path().join("out");
    let err = import_gguf(&path, &out, &ImportOptions::default()).unwrap_err().to_string();
    assert!(
        err.contains("does not use the tensor(s) `blk.0.attn_output.bias`, `blk.1.ffn_down.bias`, `mystery.weight`"),
        "{err}"
    );
    assert!(!out.exists());
    // Without them the same file imports.
    import_gguf(&src, &out, &ImportOptions::default()).unwrap();
}

#[test]
fn other_architectures_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("falcon.gguf");
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::String("falcon".into()));
    w.write_file(&path).unwrap();
    let err = import_gguf(&path, &dir.path().join("out"), &ImportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("general.architecture") && err.contains("falcon"), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn unsupported_quant_types_name_tensor_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_gguf(dir.path());
    let path = dir.path().join("k-quant.gguf");
    rewrite_tiny(&src, &path, &[], |name, ty, dims, data| {
        if name == "blk.1.ffn_down.weight" {
            // 128 x 64 elements = 32 Q8_K super-blocks of 256: a type llama.cpp uses for activations only.
            (GgmlType::Q8K, vec![256, 32], vec![0; 32 * 292])
        } else {
            (ty, dims, data)
        }
    });
    let err = import_gguf(&path, &dir.path().join("out"), &ImportOptions::default()).unwrap_err().to_string();
    assert_eq!(err, "tensor `blk.1.ffn_down.weight` has type Q8_K, which runner cannot import yet");
}

#[test]
fn f16_and_q8_0_weights_import_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_gguf(dir.path());
    let path = dir.path().join("mixed.gguf");
    rewrite_tiny(&src, &path, &[], |name, ty, dims, data| {
        let values = || quant::dequantize(ty, &data).unwrap();
        if name.ends_with("attn_output.weight") {
            (GgmlType::Q8_0, dims, quant::quantize_q8_0(&values()))
        } else if name.ends_with("ffn_up.weight") || name == "output_norm.weight" {
            (GgmlType::F16, dims, values().iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect())
        } else {
            (ty, dims, data)
        }
    });
    let reference = reference_logits(&GgufFile::open(&path).unwrap(), &TINY_TOKENS);
    for precision in [Precision::Int4, Precision::Fp32] {
        let out = dir.path().join(precision.to_string());
        import_gguf(&path, &out, &options(precision, 0)).unwrap();
        let (stepwise, _) = ort_logits(&out, &TINY_TOKENS);
        let diff = max_abs_diff(&reference, &stepwise);
        assert!(diff < 2e-3, "{precision}: max abs diff {diff}");
    }
}

/// The types of the K-quant test model: every quantized type runner imports, fused layers mixing layouts
/// (block 0's QKV runs 4-bit/32, 8-bit/32 and 8-bit/16 side by side), and a Q6_K embedding tied to the head.
fn k_quant_type(name: &str) -> GgmlType {
    let (block, tensor) = match name.strip_prefix("blk.").and_then(|rest| rest.split_once('.')) {
        Some((block, tensor)) => (block, tensor),
        None if name == "token_embd.weight" => return GgmlType::Q6K,
        None => return GgmlType::F32,
    };
    let types = match block {
        "0" => {
            [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K, GgmlType::Q5_0, GgmlType::Q4K, GgmlType::Q5_1, GgmlType::Q6K]
        }
        _ => {
            [GgmlType::Q2K, GgmlType::Q3K, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q4_0, GgmlType::Q4_1]
        }
    };
    let order = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
    match order.iter().position(|t| tensor == format!("{t}.weight")) {
        Some(i) => types[i],
        None => GgmlType::F32,
    }
}

/// The K-quant model imported at `precision` and `level`: max |diff| to the float64 reference of its
/// dequantized weights, mean KL, top-1 agreement, the stepwise logits and the folder's record.
fn check_k_quants(precision: Precision, level: u8) -> (f64, f64, f64, Vec<Vec<f32>>, RunnerRecord) {
    check_k_quants_with(precision, level, k_quant_type)
}

fn check_k_quants_with(
    precision: Precision,
    level: u8,
    type_of: impl Fn(&str) -> GgmlType,
) -> (f64, f64, f64, Vec<Vec<f32>>, RunnerRecord) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("k-quants.gguf");
    write_llama_gguf(&gguf, 15, &LlamaShape::K_QUANT, type_of);
    let out = dir.path().join("model");
    let summary = import_gguf(&gguf, &out, &options(precision, level)).unwrap();
    let reference = reference_logits(&GgufFile::open(&gguf).unwrap(), &TINY_TOKENS);
    let (stepwise, prefill) = ort_logits(&out, &TINY_TOKENS);
    let (kl, top1) = compare_logits(&reference, &stepwise);
    let diff = max_abs_diff(&reference, &stepwise).max(max_abs_diff(&reference[reference.len() - 1..], &[prefill]));
    eprintln!("k-quants {precision} level {level}: max |diff| {diff:.2e}, KL {kl:.2e}, top-1 {top1}\n{summary}");
    (diff, kl, top1, stepwise, RunnerRecord::read(&out).unwrap().unwrap())
}

#[test]
fn k_quants_at_level_0_give_the_fp32_logits() {
    let (diff, _, top1, exact, record) = check_k_quants(Precision::Int4, 0);
    assert!(diff < 1e-4, "int4 max abs diff {diff}");
    assert_eq!(top1, 1.0);
    let (fp32_diff, _, _, fp32, _) = check_k_quants(Precision::Fp32, 0);
    assert!(fp32_diff < 1e-4, "fp32 max abs diff {fp32_diff}");
    let between = exact.iter().flatten().zip(fp32.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(between < 1e-4, "int4 level 0 against fp32: max abs diff {between}");
    // What each tensor became, in runner.json.
    let form = |name: &str| record.weights.get(name).map(String::as_str).unwrap_or("missing");
    assert_eq!(form("blk.0.attn_v.weight"), "Q6_K: MatMulNBits 8-bit, block 16, exact");
    assert_eq!(form("blk.0.attn_q.weight"), "Q4_K: MatMulNBits 4-bit, block 32, integer zero points + residual, exact");
    assert_eq!(form("blk.0.attn_output.weight"), "Q5_0: MatMulNBits 8-bit, block 32, exact");
    assert_eq!(form("blk.1.attn_k.weight"), "Q3_K: MatMulNBits 4-bit, block 16, exact");
    assert_eq!(form("token_embd.weight"), "Q6_K: GatherBlockQuantized 8-bit, block 16, exact");
    assert_eq!(form("output_norm.weight"), "F32: float32");
    assert_eq!(record.weights.len(), 2 + 9 * 2);
}

/// An embedding with float offsets (Q4_K here, as llama.cpp's Q4_K_M gives models with a separate output
/// head) is gathered as 8-bit levels with zero points plus its gathered residual, and the tied head uses the
/// same blocks: exact at level 0.
#[test]
fn k_quant_embeddings_with_offsets_gather_exactly() {
    let types = |name: &str| if name == "token_embd.weight" { GgmlType::Q4K } else { k_quant_type(name) };
    let (diff, _, top1, _, record) = check_k_quants_with(Precision::Int4, 0, types);
    assert!(diff < 1e-4, "max abs diff {diff}");
    assert_eq!(top1, 1.0);
    assert_eq!(
        record.weights["token_embd.weight"],
        "Q4_K: GatherBlockQuantized 8-bit, block 32, integer zero points + residual, exact"
    );
}

#[test]
fn k_quants_at_level_4_stay_close() {
    let (_, kl, top1, _, _) = check_k_quants(Precision::Int4, 4);
    assert!(kl < 2e-3, "mean KL {kl}");
    assert!(top1 >= 0.9, "top-1 agreement {top1}");
}

#[test]
fn k_quants_at_int8_keep_the_8bit_layouts() {
    let (_, kl, top1, _, record) = check_k_quants(Precision::Int8, 0);
    assert!(kl < 1e-4, "mean KL {kl}");
    assert!(top1 >= 0.8, "top-1 agreement {top1}");
    assert_eq!(
        record.weights["blk.0.attn_k.weight"],
        "Q5_K: MatMulNBits 8-bit, block 32, integer zero points + residual, exact"
    );
    assert_eq!(record.weights["blk.0.attn_q.weight"], "Q4_K: MatMulNBits 8-bit, block 32, requantized (lossy)");
}

#[test]
fn truncated_gguf_is_refused_without_leaving_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_gguf(dir.path());
    let bytes = std::fs::read(&src).unwrap();
    let path = dir.path().join("cut.gguf");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let err = import_gguf(&path, &out, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Gguf(crate::gguf::GgufError::Truncated { .. })), "{err}");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
}

#[test]
fn accuracy_levels_past_4_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = import_gguf(&tiny_gguf(dir.path()), &dir.path().join("out"), &options(Precision::Int4, 5)).unwrap_err();
    assert_eq!(err.to_string(), "--accuracy-level 5 is not one of MatMulNBits' levels 0 to 4");
}

#[test]
fn existing_output_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let out = dir.path().join("model");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = import_gguf(&gguf, &out, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::OutputExists { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    assert!(out.join("keep.txt").exists());
    import_gguf(&gguf, &out, &ImportOptions { force: true, ..Default::default() }).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("model.onnx").exists());
    // An empty folder is fine without --force.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    import_gguf(&gguf, &empty, &ImportOptions::default()).unwrap();
}

/// The default model, imported once per precision, compared with the float64 reference on a chat prompt.
/// Skipped (with a note) when setup has not installed the GGUF.
#[test]
fn default_model_fidelity() {
    let Some(gguf) = crate::testing::installed_default_gguf() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&gguf).unwrap();
    let prompt = "<|im_start|>user\nWhat is 12 + 30? Answer briefly.<|im_end|>\n<|im_start|>assistant\n";
    let fp32 = dir.path().join("fp32");
    let summary = import_gguf(&gguf, &fp32, &options(Precision::Fp32, 0)).unwrap();
    eprintln!("{summary}");
    let mut engine = load_engine(&fp32);
    // SmolLM2's ids for its default system prompt (as its Hugging Face tokenizer and llama.cpp give them).
    let system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
    let expected = [
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2,
        198,
    ];
    assert_eq!(engine.tokenize(system, false).unwrap(), expected);
    let digits = engine.tokenize("12345", false).unwrap();
    assert_eq!(digits, [33, 34, 35, 36, 37], "digits are split one by one");
    let text = "Ünïcode ✓ café,\n    indented code();";
    assert_eq!(engine.tokenizer().decode(&engine.tokenize(text, false).unwrap(), false).unwrap(), text);
    let tokens = engine.tokenize(prompt, false).unwrap();
    let reference = reference_logits(&file, &tokens);
    let stepwise: Vec<Vec<f32>> = tokens.iter().map(|t| engine.forward(&[*t]).unwrap()).collect();
    let (kl, top1) = compare_logits(&reference, &stepwise);
    eprintln!("default fp32: {} positions, mean KL {kl:.2e}, top-1 {top1:.3}", tokens.len());
    assert!(kl < 1e-6 && top1 == 1.0, "fp32 KL {kl} top-1 {top1}");
    drop(engine);
    std::fs::remove_dir_all(&fp32).unwrap();
    for level in [0u8, 4] {
        let out = dir.path().join(format!("int4-{level}"));
        let summary = import_gguf(&gguf, &out, &options(Precision::Int4, level)).unwrap();
        eprintln!("{summary}");
        let mut engine = load_engine(&out);
        let stepwise: Vec<Vec<f32>> = tokens.iter().map(|t| engine.forward(&[*t]).unwrap()).collect();
        let (kl, top1) = compare_logits(&reference, &stepwise);
        eprintln!("default int4 level {level}: mean KL {kl:.2e}, top-1 {top1:.3}");
        assert!(kl < 0.02 && top1 >= 0.9, "int4 level {level}: KL {kl} top-1 {top1}");
        drop(engine);
        std::fs::remove_dir_all(&out).unwrap();
    }
    // int8 requantizes the 4-bit weights' dequantized values, fp16 rounds them: both must stay near fp32.
    for (precision, level, max_kl) in
        [(Precision::Int8, 0u8, 2e-3), (Precision::Int8, 4, 0.02), (Precision::Fp16, 0, 2e-3)]
    {
        let out = dir.path().join(format!("{precision}-{level}"));
        let summary = import_gguf(&gguf, &out, &options(precision, level)).unwrap();
        eprintln!("{summary}");
        let mut engine = load_engine(&out);
        let stepwise: Vec<Vec<f32>> = tokens.iter().map(|t| engine.forward(&[*t]).unwrap()).collect();
        let (kl, top1) = compare_logits(&reference, &stepwise);
        eprintln!("default {precision} level {level}: mean KL {kl:.2e}, top-1 {top1:.3}");
        assert!(kl < max_kl && top1 >= 0.9, "{precision} level {level}: KL {kl} top-1 {top1}");
        drop(engine);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// Any GGUF named by `RUNNER_FIDELITY_GGUF` (a K-quant requantization of the default model, say), imported at
/// fp32 and int4 levels 0 and 4 and compared on a chat prompt with the float64 reference of its dequantized
/// weights and with its own fp32 import. Does nothing without the variable: the GGUFs it is for are not made
/// by the test suite.
#[test]
fn gguf_from_the_environment_keeps_its_fidelity() {
    let Some(gguf) = std::env::var_os("RUNNER_FIDELITY_GGUF").map(PathBuf::from) else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&gguf).unwrap();
    let prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
        <|im_start|>user\nExplain in two sentences why the sky is blue, then name three colours of a rainbow.<|im_end|>\n\
        <|im_start|>assistant\nThe sky looks blue because";
    let mut runs: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
    let mut tokens = Vec::new();
    for (precision, level) in [(Precision::Fp32, 0u8), (Precision::Int4, 0), (Precision::Int4, 4)] {
        let out = dir.path().join(format!("{precision}-{level}"));
        let summary = import_gguf(&gguf, &out, &options(precision, level)).unwrap();
        eprintln!("{summary}");
        let mut engine = load_engine(&out);
        if tokens.is_empty() {
            tokens = engine.tokenize(prompt, false).unwrap();
        }
        runs.push((
            format!("{precision} level {level}"),
            tokens.iter().map(|t| engine.forward(&[*t]).unwrap()).collect(),
        ));
        drop(engine);
        std::fs::remove_dir_all(&out).unwrap();
    }
    let reference = reference_logits(&file, &tokens);
    let fp32: Vec<Vec<f64>> = runs[0].1.iter().map(|l| l.iter().map(|v| f64::from(*v)).collect()).collect();
    for (name, logits) in &runs {
        let (kl, top1) = compare_logits(&reference, logits);
        let (kl_fp32, top1_fp32) = compare_logits(&fp32, logits);
        eprintln!(
            "{}: {} positions; against float64 mean KL {kl:.2e}, top-1 {top1:.3}; against the fp32 import {kl_fp32:.2e}, {top1_fp32:.3}",
            gguf.display(),
            tokens.len()
        );
        eprintln!("  ({name})");
        let max_kl = if name.ends_with("level 4") { 0.02 } else { 1e-6 };
        assert!(kl < max_kl && top1 >= 0.9, "{name}: KL {kl} top-1 {top1}");
    }
}

/// `runner import --if-outdated` (what setup runs) leaves a folder this import would write again alone, and
/// replaces one from another GGUF, precision or accuracy level, or one an older runner wrote.
#[test]
fn a_folder_is_current_only_for_the_same_source_options_and_graph_revision() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let out = dir.path().join("model");
    assert!(!is_current(&gguf, &out, &options(Precision::Int4, 4)).unwrap(), "nothing imported yet");
    import_gguf(&gguf, &out, &options(Precision::Int4, 4)).unwrap();
    assert!(is_current(&gguf, &out, &options(Precision::Int4, 4)).unwrap());
    assert!(!is_current(&gguf, &out, &options(Precision::Int4, 0)).unwrap(), "another accuracy level");
    assert!(!is_current(&gguf, &out, &options(Precision::Int8, 4)).unwrap(), "another precision");

    let other = dir.path().join("other.gguf");
    write_tiny_llama_gguf(&other, 43);
    assert!(!is_current(&other, &out, &options(Precision::Int4, 4)).unwrap(), "another GGUF");

    // A folder written before graph revisions were recorded.
    let record_path = out.join(RUNNER_FILE);
    let mut record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["graph_revision"], GRAPH_REVISION);
    record.as_object_mut().unwrap().remove("graph_revision");
    std::fs::write(&record_path, record.to_string()).unwrap();
    assert!(!is_current(&gguf, &out, &options(Precision::Int4, 4)).unwrap(), "an older graph");
}
