//! LoRA tests on real ONNX Runtime and the tiny generated llama: the adapter-capable graph without an adapter
//! is the base model, a random adapter gives the float64 reference's logits, adapters switch on and off in one
//! process, and adapter files round-trip, load in ONNX Runtime and fail clearly when broken.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::engine::{Engine, EngineOptions, GenerationSettings};
use crate::gguf::GgufFile;
use crate::import::{ImportOptions, LoraOptions, Precision, import_gguf};
use crate::prompt::Prompt;
use crate::testing::reference::{reference_logits, reference_logits_with_lora};
use crate::testing::{quiet_ort_cache, tiny, write_tiny_llama_gguf};

const PROMPT_TOKENS: [u32; 7] = [1, 72, 101, 108, 108, 111, 260];

/// The tiny GGUF imported into `dir/name`, LoRA-capable for `targets` (none: the plain graph).
fn import(dir: &Path, name: &str, precision: Precision, targets: &[LoraTarget]) -> PathBuf {
    let gguf = dir.join("tiny.gguf");
    if !gguf.exists() {
        write_tiny_llama_gguf(&gguf, 11);
    }
    let out = dir.join(name);
    let lora = LoraOptions { targets: targets.to_vec(), max_rank: 16 };
    let options = ImportOptions { precision, accuracy_level: 0, force: true, lora };
    import_gguf(&gguf, &out, &options).unwrap_or_else(|e| panic!("importing {name}: {e}"));
    out
}

fn load(model: &Path) -> Engine {
    quiet_ort_cache();
    let options = EngineOptions { model_dir: model.to_path_buf(), intra_threads: Some(1), ..Default::default() };
    Engine::load(&options).unwrap_or_else(|e| panic!("loading {}: {e}", model.display()))
}

/// Logits of every position of `tokens`, one forward pass per token through the KV cache.
fn all_logits(engine: &mut Engine, tokens: &[u32]) -> Vec<Vec<f32>> {
    engine.reset().unwrap();
    tokens.iter().map(|&t| engine.forward(&[t]).unwrap()).collect()
}

/// The float64 reference's logits at the engine's precision, to compare with [`max_abs_diff`].
fn as_f32(logits: Vec<Vec<f64>>) -> Vec<Vec<f32>> {
    logits.into_iter().map(|row| row.into_iter().map(|v| v as f32).collect()).collect()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn random(model: &Path, rank: usize, targets: &[LoraTarget], seed: u64, scale: f32) -> AdapterFile {
    let slots = LoraSlots::read(model).unwrap();
    random_adapter(&slots, &RandomAdapter { rank, targets: targets.to_vec(), seed, scale }).unwrap()
}

fn write(file: &AdapterFile, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    file.write(&path).unwrap();
    path
}

#[test]
fn names_follow_peft_and_parse_back() {
    let name = LoraTarget::QProj.input_name(3, Side::A);
    assert_eq!(name, "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight");
    assert_eq!(parse_input_name(&name), Some((3, LoraTarget::QProj, Side::A)));
    let down = LoraTarget::DownProj.input_name(0, Side::B);
    assert_eq!(down, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
    assert_eq!(parse_input_name(&down), Some((0, LoraTarget::DownProj, Side::B)));
    assert_eq!(parse_input_name("base_model.model.model.layers.0.mlp.q_proj.lora_A.weight"), None);
    assert_eq!(parse_input_name("past_key_values.0.key"), None);
    assert_eq!(parse_targets("v_proj,q_proj,q_proj").unwrap(), vec![LoraTarget::QProj, LoraTarget::VProj]);
    assert_eq!(parse_targets("all").unwrap().len(), 7);
    let err = parse_targets("q_proj,qkv").unwrap_err();
    assert!(err.contains("`qkv`") && err.contains("gate_proj"), "{err}");
}

#[test]
fn adapter_file_round_trips_and_onnx_runtime_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = crate::rng::SplitMix64::new(5);
    let half: Vec<u8> = (0..6).flat_map(|i| half::f16::from_f32(i as f32 * 0.5).to_le_bytes()).collect();
    let file = AdapterFile {
        adapter_version: 3,
        model_version: 7,
        tensors: vec![
            AdapterTensor::from_f32("a.lora_A.weight", &[5, 3], &rng.values(15, 1.0)),
            AdapterTensor::from_f32("odd name ü", &[1, 1, 2], &rng.values(2, 1.0)),
            AdapterTensor { name: "h".into(), dims: vec![2, 3], data_type: format::FLOAT16, raw_data: half },
            AdapterTensor::from_f32("empty", &[4, 0], &[]),
        ],
    };
    let path = write(&file, dir.path(), "x.onnx_adapter");
    let read = AdapterFile::read(&path).unwrap();
    assert_eq!(read, file);
    read.check_tensors().unwrap();
    assert_eq!(read.tensors[2].to_f32().unwrap(), vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[4..8], b"TORT");

    // ONNX Runtime's own verifier accepts the buffer (loading the tiny model loads the library).
    let model = import(dir.path(), "plain", Precision::Int4, &[]);
    let _engine = load(&model);
    ort::session::Adapter::from_memory(&bytes, None).expect("ONNX Runtime loads the adapter runner wrote");
    ort::session::Adapter::from_file(&path, None).expect("ONNX Runtime loads the adapter file runner wrote");
}

#[test]
fn truncated_or_foreign_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = AdapterFile {
        tensors: vec![AdapterTensor::from_f32("t.lora_A.weight", &[8, 2], &[0.5; 16])],
        ..Default::default()
    };
    let bytes = file.to_bytes();
    let path = dir.path().join("cut.onnx_adapter");
    // Every truncation point either fails with the file named or (when only padding was cut) reads the same.
    for len in 0..bytes.len() {
        match AdapterFile::from_bytes(&bytes[..len], &path) {
            Err(e) => assert!(e.to_string().contains("cut.onnx_adapter"), "{e}"),
            Ok(read) => assert_eq!(read, file, "a file cut at {len} bytes read as something else"),
        }
    }
    let short = AdapterFile::from_bytes(&bytes[..bytes.len() - 70], &path).unwrap_err().to_string();
    assert!(short.contains("truncated") && short.contains("t.lora_A.weight"), "{short}");
    let mut foreign = bytes.clone();
    foreign[4..8].copy_from_slice(b"ONNX");
    let err = AdapterFile::from_bytes(&foreign, &path).unwrap_err().to_string();
    assert!(err.contains("not an ONNX Runtime adapter") && err.contains("ONNX"), "{err}");
    let mut version = bytes;
    let root = u32::from_le_bytes(version[0..4].try_into().unwrap()) as usize;
    version[root + 4..root + 8].copy_from_slice(&2i32.to_le_bytes());
    let err = AdapterFile::from_bytes(&version, &path).unwrap_err().to_string();
    assert!(err.contains("format version 2"), "{err}");
    let missing = AdapterFile::read(&dir.path().join("none.onnx_adapter")).unwrap_err().to_string();
    assert!(missing.contains("none.onnx_adapter"), "{missing}");
}

#[test]
fn lora_capable_model_without_or_with_zero_adapter_is_the_base_model() {
    let dir = tempfile::tempdir().unwrap();
    let plain = import(dir.path(), "plain", Precision::Int4, &[]);
    let capable = import(dir.path(), "lora", Precision::Int4, &LoraTarget::ALL);
    let slots = LoraSlots::read(&capable).unwrap();
    assert_eq!(slots.modules().len(), 7 * tiny::BLOCKS);
    assert_eq!(slots.max_rank, Some(16));
    assert!(LoraSlots::read(&plain).unwrap().is_empty());

    let base = all_logits(&mut load(&plain), &PROMPT_TOKENS);
    let mut engine = load(&capable);
    assert_eq!(all_logits(&mut engine, &PROMPT_TOKENS), base, "the rank-0 defaults changed the logits");

    let mut zero = random(&capable, 4, &[], 1, 1.0);
    for t in zero.tensors.iter_mut().filter(|t| t.name.ends_with("lora_B.weight")) {
        t.raw_data.iter_mut().for_each(|b| *b = 0);
    }
    let path = write(&zero, dir.path(), "zero.onnx_adapter");
    let adapter = engine.load_adapter(&path).unwrap();
    engine.set_adapter(Some(&adapter)).unwrap();
    assert_eq!(all_logits(&mut engine, &PROMPT_TOKENS), base, "a zero-B adapter changed the logits");
}

#[test]
fn random_adapter_gives_the_reference_logits_and_switches_off_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    // fp32 weights and every target: the only difference from the float64 reference is float32 rounding.
    let model = import(dir.path(), "lora", Precision::Fp32, &LoraTarget::ALL);
    let gguf = GgufFile::open(dir.path().join("tiny.gguf")).unwrap();
    let adapter_file = random(&model, 4, &[], 9, 2.0);
    let path = write(&adapter_file, dir.path(), "r4.onnx_adapter");

    let mut engine = load(&model);
    let base = all_logits(&mut engine, &PROMPT_TOKENS);
    let adapter = engine.load_adapter(&path).unwrap();
    assert_eq!(adapter.info.rank, 4);
    assert_eq!(adapter.info.targets, LoraTarget::ALL.to_vec());
    assert_eq!(adapter.info.layers, tiny::BLOCKS);
    let (width, q, kv) = (tiny::EMBEDDING, tiny::HEADS * tiny::HEAD_DIM, tiny::KV_HEADS * tiny::HEAD_DIM);
    // Rank 4 times (in + out) of q, k, v, o, gate, up, down.
    let per_layer = 4 * ((width + q) + 2 * (width + kv) + (q + width) + 3 * (width + tiny::FFN));
    assert_eq!(adapter.info.parameters, (tiny::BLOCKS * per_layer) as u64);
    let share = adapter.info.parameter_share.expect("the importer records the base parameter count");
    assert!(share > 0.0 && share < 1.0);

    engine.set_adapter(Some(&adapter)).unwrap();
    let adapted = all_logits(&mut engine, &PROMPT_TOKENS);
    let reference = as_f32(reference_logits_with_lora(&gguf, &PROMPT_TOKENS, Some(&adapter_file)));
    let error = max_abs_diff(&adapted, &reference);
    assert!(error < 2e-4, "adapter logits are {error} away from the float64 reference");
    let shift = max_abs_diff(&adapted, &base);
    assert!(shift > 100.0 * error.max(1e-5), "the adapter barely moved the logits ({shift})");
    let plain_reference = as_f32(reference_logits(&gguf, &PROMPT_TOKENS));
    assert!(max_abs_diff(&base, &plain_reference) < 2e-4);

    // Base, adapter, base again in one process: generation follows the switch, and the base comes back exactly.
    let prompt = Prompt::Text("the cat in the hat".into());
    let settings = GenerationSettings { max_new_tokens: 8, ignore_eos: true, ..Default::default() };
    engine.set_adapter(None).unwrap();
    let first = engine.generate(&prompt, &settings, &mut |_| {}).unwrap();
    engine.set_adapter(Some(&adapter)).unwrap();
    let with = engine.generate(&prompt, &settings, &mut |_| {}).unwrap();
    engine.set_adapter(None).unwrap();
    let again = engine.generate(&prompt, &settings, &mut |_| {}).unwrap();
    assert_eq!(first.output, again.output);
    assert_eq!(all_logits(&mut engine, &PROMPT_TOKENS), base);
    assert_ne!(first.output, with.output, "the adapter did not change the greedy output");
}

#[test]
fn only_targeted_parts_of_fused_projections_are_adapted() {
    let dir = tempfile::tempdir().unwrap();
    // k_proj alone sits in the middle of the fused QKV matmul, up_proj at the end of gate/up: padding matters.
    let targets = [LoraTarget::KProj, LoraTarget::UpProj];
    let model = import(dir.path(), "lora", Precision::Fp32, &targets);
    assert_eq!(LoraSlots::read(&model).unwrap().targets(), targets.to_vec());
    let gguf = GgufFile::open(dir.path().join("tiny.gguf")).unwrap();
    let adapter_file = random(&model, 3, &[], 4, 3.0);
    let path = write(&adapter_file, dir.path(), "ku.onnx_adapter");
    let mut engine = load(&model);
    let adapter = engine.load_adapter(&path).unwrap();
    engine.set_adapter(Some(&adapter)).unwrap();
    let adapted = all_logits(&mut engine, &PROMPT_TOKENS);
    let reference = as_f32(reference_logits_with_lora(&gguf, &PROMPT_TOKENS, Some(&adapter_file)));
    let error = max_abs_diff(&adapted, &reference);
    assert!(error < 2e-4, "partial-target adapter logits are {error} away from the reference");
}

#[test]
fn adapters_that_do_not_fit_the_model_are_refused_by_tensor_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path(), "lora", Precision::Int4, &[LoraTarget::QProj, LoraTarget::VProj]);
    let plain = import(dir.path(), "plain", Precision::Int4, &[]);
    let good = random(&model, 2, &[], 1, 1.0);
    let engine = load(&model);
    let refused = |file: &AdapterFile, name: &str, model: &Engine| -> String {
        let path = write(file, dir.path(), name);
        let err = model.load_adapter(&path).err().unwrap_or_else(|| panic!("{name} was accepted")).to_string();
        assert!(err.contains(name), "the error does not name the file: {err}");
        err
    };

    let mut renamed = good.clone();
    renamed.tensors[0].name = "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight".into();
    let err = refused(&renamed, "renamed.onnx_adapter", &engine);
    assert!(err.contains("mlp.gate_proj.lora_A.weight") && err.contains("not a LoRA input"), "{err}");

    let mut reshaped = good.clone();
    let a = reshaped.tensors.iter_mut().find(|t| t.name.ends_with("q_proj.lora_A.weight")).unwrap();
    a.dims = vec![(tiny::EMBEDDING / 2) as i64, 4];
    let name = a.name.clone();
    let err = refused(&reshaped, "reshaped.onnx_adapter", &engine);
    assert!(err.contains(&name) && err.contains("[64, r]"), "{err}");

    let mut unpaired = good.clone();
    unpaired.tensors.retain(|t| !t.name.ends_with("v_proj.lora_B.weight") || !t.name.contains("layers.1."));
    let err = refused(&unpaired, "unpaired.onnx_adapter", &engine);
    assert!(err.contains("layers.1.self_attn.v_proj.lora_A.weight") && err.contains("no matching"), "{err}");

    let too_big = random(&model, 16, &[], 1, 1.0);
    let mut over = too_big.clone();
    for t in &mut over.tensors {
        let values = t.to_f32().unwrap();
        let (dims, values) = if t.name.ends_with("lora_A.weight") {
            let inner = t.dims[0] as usize;
            let mut wide = Vec::new();
            for row in values.chunks(16) {
                wide.extend_from_slice(row);
                wide.push(0.0);
            }
            assert_eq!(wide.len(), inner * 17);
            (vec![inner as i64, 17], wide)
        } else {
            let mut tall = values;
            tall.extend(std::iter::repeat_n(0.0, t.dims[1] as usize));
            (vec![17, t.dims[1]], tall)
        };
        *t = AdapterTensor::from_f32(t.name.clone(), &dims, &values);
    }
    let err = refused(&over, "over.onnx_adapter", &engine);
    assert!(err.contains("rank 17") && err.contains("max rank 16"), "{err}");

    let mut truncated = good.to_bytes();
    truncated.truncate(truncated.len() / 2);
    let cut = dir.path().join("cut.onnx_adapter");
    std::fs::write(&cut, truncated).unwrap();
    let err = engine.load_adapter(&cut).err().unwrap().to_string();
    assert!(err.contains("cut.onnx_adapter") && err.contains("truncated"), "{err}");

    let plain_engine = load(&plain);
    let err = refused(&good, "good.onnx_adapter", &plain_engine);
    assert!(err.contains("no LoRA inputs") && err.contains("--lora-targets"), "{err}");
}

#[test]
fn peft_safetensors_convert_to_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path(), "lora", Precision::Int4, &LoraTarget::ALL);
    let (rank, alpha) = (4usize, 16.0);
    let scale = alpha / rank as f64;
    let direct = random(&model, rank, &[LoraTarget::QProj, LoraTarget::DownProj], 2, scale as f32);
    // The same adapter as PEFT stores it: lora_A [r, in], lora_B [out, r] without the scale.
    let mut peft_tensors = BTreeMap::new();
    for t in &direct.tensors {
        let (rows, cols) = (t.dims[0] as usize, t.dims[1] as usize);
        let values = t.to_f32().unwrap();
        let unscale = if t.name.ends_with("lora_B.weight") { scale as f32 } else { 1.0 };
        let mut transposed = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                transposed[c * rows + r] = values[r * cols + c] / unscale;
            }
        }
        peft_tensors.insert(t.name.clone(), peft::SafeTensor { shape: vec![cols, rows], values: transposed });
    }
    let peft_dir = dir.path().join("peft");
    std::fs::create_dir(&peft_dir).unwrap();
    peft::write_safetensors(&peft_dir.join("adapter_model.safetensors"), &peft_tensors).unwrap();
    std::fs::write(
        peft_dir.join("adapter_config.json"),
        format!(r#"{{"r": {rank}, "lora_alpha": {alpha}, "peft_type": "LORA"}}"#),
    )
    .unwrap();

    let (weights, config) = peft::peft_files(&peft_dir);
    let config = peft::PeftConfig::read(&config).unwrap();
    assert_eq!(config.scale(), scale);
    let converted = peft::convert(&peft::read_safetensors(&weights).unwrap(), config.scale(), &weights).unwrap();
    check_against(&converted, &LoraSlots::read(&model).unwrap(), Path::new("converted")).unwrap();
    let by_name: BTreeMap<&str, &AdapterTensor> = direct.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(converted.tensors.len(), direct.tensors.len());
    for t in &converted.tensors {
        let want = by_name[t.name.as_str()];
        assert_eq!(t.dims, want.dims, "{}", t.name);
        for (a, b) in t.to_f32().unwrap().iter().zip(want.to_f32().unwrap()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{}: {a} vs {b}", t.name);
        }
    }

    let mut foreign = peft_tensors.clone();
    foreign.insert("base_model.model.lm_head.weight".into(), peft::SafeTensor { shape: vec![1, 1], values: vec![0.0] });
    peft::write_safetensors(&weights, &foreign).unwrap();
    let err = peft::convert(&peft::read_safetensors(&weights).unwrap(), scale, &weights).unwrap_err().to_string();
    assert!(err.contains("lm_head") && err.contains("adapter_model.safetensors"), "{err}");
    std::fs::write(&weights, b"\x10\0\0\0\0\0\0\0{").unwrap();
    let err = peft::read_safetensors(&weights).unwrap_err().to_string();
    assert!(err.contains("adapter_model.safetensors") && err.contains("runs past"), "{err}");
}

#[test]
fn each_target_alone_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let gguf_path = dir.path().join("tiny.gguf");
    for target in LoraTarget::ALL {
        let model = import(dir.path(), target.name(), Precision::Fp32, &[target]);
        let gguf = GgufFile::open(&gguf_path).unwrap();
        let adapter_file = random(&model, 3, &[], 4, 3.0);
        let path = write(&adapter_file, dir.path(), "x.onnx_adapter");
        let mut engine = load(&model);
        let base = all_logits(&mut engine, &PROMPT_TOKENS);
        let adapter = engine.load_adapter(&path).unwrap();
        assert_eq!(adapter.info.targets, vec![target]);
        engine.set_adapter(Some(&adapter)).unwrap();
        let adapted = all_logits(&mut engine, &PROMPT_TOKENS);
        let reference = as_f32(reference_logits_with_lora(&gguf, &PROMPT_TOKENS, Some(&adapter_file)));
        let error = max_abs_diff(&adapted, &reference);
        assert!(error < 2e-4, "{target}: logits are {error} away from the reference");
        assert!(max_abs_diff(&adapted, &base) > 0.1, "{target}: the adapter changed nothing");
    }
}
