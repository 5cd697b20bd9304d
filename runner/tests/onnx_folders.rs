//! runner on model folders the real tools wrote: `tests/fixtures/onnx/`, tiny seeded random-weight models of
//! ten architectures built by onnxruntime-genai's builder (fp32, int4, one fp16) and exported by Optimum
//! (`cargo xtask onnx-fixtures` made them; its `manifest.json` says which tool failed where). Every folder
//! loads and generates; fp32 builder folders give genai's own greedy tokens and logits, which genai recorded
//! in `expected.json` beside them (Gemma2 and Gemma3 with prompts longer than their real 4096- and 512-token
//! windows); Optimum exports agree with the builder folder of the same weights; int4 folders and the
//! precisions runner derives are held to their fp32 source by mean KL and top-1 agreement, never by identical
//! text (int8 activations at accuracy level 4 run on kernels ONNX Runtime picks per CPU).

mod common;

use std::path::{Path, PathBuf};

use runner::derive::{DeriveOptions, FidelityRuntime, derive_into, measure_fidelity};
use runner::engine::{Engine, EngineOptions, GenerationSettings};
use runner::import::Precision;
use serde::Deserialize;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// Every fixture folder's name, sorted: `ARCH-TOOL-PRECISION`.
fn folders() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 20, "the fixtures are missing: {names:?}");
    names
}

fn engine(folder: &Path) -> Engine {
    runner::testing::quiet_ort_cache();
    let options = EngineOptions { model_dir: folder.to_path_buf(), intra_threads: Some(1), ..Default::default() };
    Engine::load(&options).unwrap_or_else(|e| panic!("loading {}: {e}", folder.display()))
}

/// What genai did on a builder folder (`expected.json`).
#[derive(Deserialize)]
struct Expected {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    prompt_ids: Vec<u32>,
    max_new_tokens: usize,
    /// genai's greedy tokens, a final EOS left out (as runner leaves it out of `output_ids`).
    genai_tokens: Vec<u32>,
    /// genai's logits after the prompt.
    genai_prompt_logits: Vec<f32>,
    /// genai's logits that chose its last token (or the EOS it stopped at).
    genai_final_logits: Vec<f32>,
}

fn expected(folder: &Path) -> Option<Expected> {
    let text = std::fs::read_to_string(folder.join("expected.json")).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}/expected.json: {e}", folder.display())))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// genai's logits against runner's: the same fp32 graph on the same library, summed in another order
/// (genai feeds a shared-buffer cache, runner its own), so they agree to float32 rounding, not bit for bit.
const LOGITS_TOLERANCE: f32 = 2e-3;

/// Runs `case` on `engine` and checks it against genai: the greedy tokens exactly, the logits after the
/// prompt, and (fed the prompt and then the generated tokens one at a time through the KV cache) the logits
/// that chose the last token.
fn check_case(name: &str, engine: &mut Engine, case: &Case) {
    let settings = GenerationSettings { max_new_tokens: case.max_new_tokens, ..Default::default() };
    let generation = engine.generate_from_tokens(&case.prompt_ids, &settings).unwrap();
    assert_eq!(generation.output_ids, case.genai_tokens, "{name} {}: greedy tokens against genai's", case.name);

    engine.reset().unwrap();
    let prompt_logits = engine.forward(&case.prompt_ids).unwrap();
    let diff = max_abs_diff(&prompt_logits, &case.genai_prompt_logits);
    assert!(diff < LOGITS_TOLERANCE, "{name} {}: logits after the prompt differ from genai's by {diff}", case.name);
    let stopped_at_eos = case.genai_tokens.len() < case.max_new_tokens;
    let fed = if stopped_at_eos { case.genai_tokens.len() } else { case.genai_tokens.len() - 1 };
    let mut logits = prompt_logits;
    for &token in &case.genai_tokens[..fed] {
        logits = engine.forward(&[token]).unwrap();
    }
    let diff = max_abs_diff(&logits, &case.genai_final_logits);
    assert!(diff < LOGITS_TOLERANCE, "{name} {}: last step's logits differ from genai's by {diff}", case.name);
    eprintln!("{name} {}: {} greedy tokens as genai's, logits within {diff:.1e}", case.name, case.genai_tokens.len());
}

/// The builder's fp16 folder for the CPU provider: attention through MultiHeadAttention with `repeat_kv`, on
/// which ONNX Runtime 1.31 fails at the second step (a Cast it inserts reuses a buffer of the prompt's shape).
/// genai fails on it the same way; runner must report the failure, not panic.
const BROKEN_BY_ONNX_RUNTIME: &str = "llama-genai-fp16";

#[test]
fn every_fixture_loads_and_generates() {
    for name in folders().into_iter().filter(|n| n != BROKEN_BY_ONNX_RUNTIME) {
        let mut engine = engine(&fixtures().join(&name));
        let info = engine.model_info().clone();
        let prompt = engine.tokenize("The quick brown fox", false).unwrap();
        let settings = GenerationSettings { max_new_tokens: 8, ignore_eos: true, ..Default::default() };
        let generation = engine.generate_from_tokens(&prompt, &settings).unwrap();
        assert_eq!(generation.output_ids.len(), 8, "{name}");
        eprintln!("{name}: {} {} kv {} context {}", info.name, info.precision, info.kv_dtype, info.context_length);
    }
}

#[test]
fn fp32_builder_folders_give_genais_greedy_tokens_and_logits() {
    let mut checked = Vec::new();
    for name in folders().into_iter().filter(|n| n.contains("-genai-") && !n.ends_with("int4")) {
        let folder = fixtures().join(&name);
        let Some(expected) = expected(&folder) else { continue };
        let mut engine = engine(&folder);
        for case in &expected.cases {
            check_case(&name, &mut engine, case);
        }
        checked.push(name);
    }
    assert!(checked.len() >= 10, "builder folders with genai's tokens: {checked:?}");
}

#[test]
fn gemma_folders_run_past_their_real_windows_as_genai_does() {
    for (name, window) in [("gemma3-genai-fp32", 512), ("gemma2-genai-fp32", 4096)] {
        let folder = fixtures().join(name);
        let expected = expected(&folder).unwrap();
        let case = expected.cases.iter().find(|c| c.name == "past_window").unwrap();
        assert!(case.prompt_ids.len() > window, "{name}: the prompt must be longer than the window");
        let mut engine = engine(&folder);
        assert!(engine.model_info().context_length > case.prompt_ids.len() + case.max_new_tokens);
        check_case(name, &mut engine, case);
    }
}

#[test]
fn optimum_exports_agree_with_the_builder_folder_of_the_same_weights() {
    let mut checked = 0;
    for name in folders().into_iter().filter(|n| n.contains("-optimum-")) {
        let builder = fixtures().join(name.replace("-optimum-", "-genai-"));
        let expected = expected(&builder).unwrap();
        let mut engine = engine(&fixtures().join(&name));
        for case in &expected.cases {
            check_case(&name, &mut engine, case);
        }
        checked += 1;
    }
    assert!(checked >= 3, "Optimum exports checked: {checked}");
}

/// One thread, as the other tests: fidelity needs no speed.
fn runtime() -> FidelityRuntime {
    runner::testing::quiet_ort_cache();
    FidelityRuntime { threads: Some(1), ..Default::default() }
}

/// A sanity bound for int4 on these tiny random models (block 32, accuracy level 4), which int4 hurts far
/// more than trained ones: genai's own int4 folders measured mean KL 0.36 to 0.85 nats where the weights were
/// drawn wide (std 0.25, peaked distributions) and about 1e-3 for Gemma and Granite, whose embeddings are
/// scaled up; a graph whose weights were mangled (wrong nibble order, a lost scale) lands far beyond it.
const INT4_MAX_KL: f64 = 1.2;

#[test]
fn builder_int4_folders_stay_close_to_their_fp32_sibling() {
    let mut far = Vec::new();
    let mut checked = 0;
    for name in folders().into_iter().filter(|n| n.ends_with("-genai-int4")) {
        let fp32 = fixtures().join(name.replace("-int4", "-fp32"));
        let f = measure_fidelity(&fp32, &fixtures().join(&name), &runtime()).unwrap();
        eprintln!(
            "{name} against fp32: mean KL {:.3e}, top-1 {:.3} ({} positions)",
            f.mean_kl, f.top1_agreement, f.positions
        );
        if f.mean_kl >= INT4_MAX_KL {
            far.push(format!("{name}: mean KL {} top-1 {}", f.mean_kl, f.top1_agreement));
        }
        checked += 1;
    }
    assert!(far.is_empty(), "{far:#?}");
    assert!(checked >= 10, "int4 folders checked: {checked}");
}

#[test]
fn the_builders_cpu_fp16_folder_fails_in_onnx_runtime_and_runner_says_so() {
    let mut engine = engine(&fixtures().join(BROKEN_BY_ONNX_RUNTIME));
    assert_eq!(engine.model_info().kv_dtype, "float16");
    let settings = GenerationSettings { max_new_tokens: 4, ignore_eos: true, ..Default::default() };
    let err = engine.generate_from_tokens(&[1, 60, 61], &settings).unwrap_err().to_string();
    assert!(err.contains("decode") && err.contains("repeat_kv"), "{err}");
}

/// Derives `precision` from the fixture `source` into this binary's scratch folder, checks the derived folder
/// runs at that precision, and returns its fidelity against the source.
fn derive_checked(source: &str, precision: Precision) -> runner::derive::Fidelity {
    let options = DeriveOptions::for_precision(precision);
    let out = common::scratch().join("derived").join(source).join(options.label());
    let record = derive_into(&fixtures().join(source), "sha256:fixture", &out, &options, &runtime())
        .unwrap_or_else(|e| panic!("deriving {precision} from {source}: {e}"));
    let f = record.fidelity;
    eprintln!("{source} derived {}: mean KL {:.3e}, top-1 {:.3}", options.label(), f.mean_kl, f.top1_agreement);
    let mut engine = engine(&out);
    assert_eq!(engine.model_info().precision, precision.to_string());
    let settings = GenerationSettings { max_new_tokens: 4, ignore_eos: true, ..Default::default() };
    assert_eq!(engine.generate_from_tokens(&[1, 60, 61], &settings).unwrap().output_ids.len(), 4);
    f
}

/// int8, w8a8 and fp16 derived from `source` stay close to it; int4 derived by runner is no further from the fp32
/// weights than genai's own int4 build of the same model (`builder_int4`), with a little slack for the two
/// quantizers' different roundings.
fn check_derivations(source: &str, builder_int4: &str, far: &mut Vec<String>) {
    let genai = measure_fidelity(&fixtures().join(source), &fixtures().join(builder_int4), &runtime()).unwrap();
    let int4 = derive_checked(source, Precision::Int4);
    let int8 = derive_checked(source, Precision::Int8);
    let fp16 = derive_checked(source, Precision::Fp16);
    let w8a8 = derive_checked(source, Precision::W8a8);
    eprintln!("{source}: genai's {builder_int4} mean KL {:.3e}, top-1 {:.3}", genai.mean_kl, genai.top1_agreement);
    if int4.mean_kl > 1.25 * genai.mean_kl + 2e-3 {
        far.push(format!("{source} int4: mean KL {} against genai int4's {}", int4.mean_kl, genai.mean_kl));
    }
    if int8.mean_kl > 0.05 {
        far.push(format!("{source} int8: mean KL {}", int8.mean_kl));
    }
    if w8a8.mean_kl > 0.05 {
        far.push(format!("{source} w8a8: mean KL {}", w8a8.mean_kl));
    }
    if fp16.mean_kl > 1e-3 || fp16.top1_agreement < 0.95 {
        far.push(format!("{source} fp16: mean KL {} top-1 {}", fp16.mean_kl, fp16.top1_agreement));
    }
}

#[test]
fn precisions_derived_from_builder_fp32_folders_stay_as_close_as_genais_int4() {
    let mut far = Vec::new();
    for arch in ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "granite", "smollm3", "olmo"] {
        check_derivations(&format!("{arch}-genai-fp32"), &format!("{arch}-genai-int4"), &mut far);
    }
    assert!(far.is_empty(), "{far:#?}");
}

#[test]
fn precisions_derived_from_optimum_exports_stay_as_close_as_genais_int4() {
    let mut far = Vec::new();
    for arch in ["llama", "qwen2", "qwen3"] {
        check_derivations(&format!("{arch}-optimum-fp32"), &format!("{arch}-genai-int4"), &mut far);
    }
    assert!(far.is_empty(), "{far:#?}");
}

#[test]
fn runner_exec_runs_builder_folders_and_an_optimum_export() {
    for name in ["qwen3-genai-int4", "gemma3-genai-fp32", "qwen2-optimum-fp32"] {
        let out = common::scratch().join("exec").join(name);
        let mut cmd = common::exec(scenario_artifacts::GSM8K, &fixtures().join(name));
        cmd.args(["--max-samples", "2", "--max-new-tokens", "8", "--threads", "1", "--out"]).arg(&out);
        let (output, text) = common::run_text(&mut cmd);
        assert_eq!(output.status.code(), Some(0), "{name}: {text}");
        let summary = common::read_summary(&out);
        let arch = name.split('-').next().unwrap();
        // Builder and Optimum folders record no precision; the summary measures it from the graph.
        let graph = summary.model.graph.as_ref().expect("the graph is inspected");
        assert_eq!(graph.weight_precision, name.rsplit('-').next().unwrap(), "{name}");
        assert!(summary.model.dir.contains(arch), "{name}: {}", summary.model.dir);
        // Provenance on folders runner did not write (issue 14.3): the node-assignment probe fills the past
        // dimensions the builder names (`kv_cache_dim`), the model says what it is, and each sample keeps
        // its output token ids.
        let session = summary.runtime.session.as_ref().expect("the session is recorded");
        let nodes = session.node_assignment.as_ref().unwrap_or_else(|| panic!("{name}: no node assignment"));
        assert!(nodes.nodes_per_provider.values().sum::<usize>() > 0, "{name}: {nodes:?}");
        let recorded = summary.model.info.get("architecture").and_then(|a| a.as_str()).unwrap_or_default();
        assert!(recorded.contains(arch), "{name}: architecture {recorded:?}");
        let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
        for line in samples.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let ids = record["output_token_ids"].as_array().unwrap_or_else(|| panic!("{name}: {line}"));
            assert_eq!(Some(ids.len() as u64), record["output_tokens"].as_u64(), "{name}: {line}");
        }
    }
}

/// runner's derived int4 against onnxruntime-genai's own int4 on real weights: the default model's GGUF
/// dequantized by transformers, saved as a Hugging Face folder and built by genai's builder at fp32 and int4
/// (`reports/derivation.md` says how) into `RUNNER_GENAI_BUILDS/{genai-fp32,genai-int4}`; both int4 models
/// are measured against the fp32 build on the same probe. Ignored: it needs those 600 MB of builds.
#[test]
#[ignore = "needs RUNNER_GENAI_BUILDS: genai builder folders of the default model (reports/derivation.md)"]
fn derived_int4_against_genais_int4_on_the_default_models_weights() {
    let builds = PathBuf::from(std::env::var_os("RUNNER_GENAI_BUILDS").expect("RUNNER_GENAI_BUILDS names the builds"));
    let (fp32, genai_int4) = (builds.join("genai-fp32"), builds.join("genai-int4"));
    let options = DeriveOptions::for_precision(Precision::Int4);
    let derived = common::scratch().join("real").join(options.label());
    let record = derive_into(&fp32, "sha256:real", &derived, &options, &runtime()).unwrap();
    let genai = measure_fidelity(&fp32, &genai_int4, &runtime()).unwrap();
    let both = [("runner derived int4", &record.fidelity), ("genai builder int4", &genai)];
    for (who, f) in both {
        eprintln!("{who}: mean KL {:.4e}, top-1 {:.4} over {} positions", f.mean_kl, f.top1_agreement, f.positions);
    }
    // These fp32 weights are Q4_1 blocks dequantized: a second 4-bit rounding loses far more than the exact
    // import (3.4e-3 / 98%); runner's derivation from runner's own fp32 import measured 0.46 / 0.72.
    for (who, f) in both {
        assert!(f.mean_kl < 1.0 && f.top1_agreement > 0.55, "{who}: {f:?}");
    }
    // runner's block-32 asymmetric int4 with float embeddings against genai's (which also quantizes the
    // embedding table to 4 bits): measured 0.46 against 0.53.
    assert!(
        record.fidelity.mean_kl <= 1.25 * genai.mean_kl + 2e-3,
        "derived {:?} against genai {genai:?}",
        record.fidelity
    );
}
