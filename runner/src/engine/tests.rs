//! Engine tests on real ONNX Runtime and real model folders: the tiny generated llama imported by
//! `runner import`, and the default model (SmolLM2-135M-Instruct) when setup has installed its GGUF.

use std::path::{Path, PathBuf};

use super::*;
use crate::import::{ImportOptions, Precision, import_gguf};
use crate::prompt::{ChatMessage, Prompt, Role};
use crate::testing::{tiny, write_tiny_llama_gguf};

use crate::testing::quiet_ort_cache;

fn load(model_dir: &Path) -> Engine {
    quiet_ort_cache();
    let options = EngineOptions { model_dir: model_dir.to_path_buf(), intra_threads: Some(1), ..Default::default() };
    Engine::load(&options).unwrap_or_else(|e| panic!("loading {}: {e}", model_dir.display()))
}

/// A tiny model folder in `dir`, imported from the generated GGUF.
fn tiny_model(dir: &Path, precision: Precision) -> PathBuf {
    let gguf = dir.join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, 7);
    let out = dir.join("model");
    import_gguf(&gguf, &out, &ImportOptions { precision, accuracy_level: 0, force: false, ..Default::default() })
        .unwrap();
    out
}

fn text(prompt: &str) -> Prompt {
    Prompt::Text(prompt.to_string())
}

fn settings(max_new_tokens: usize, stop: &[&str]) -> GenerationSettings {
    GenerationSettings { max_new_tokens, stop: stop.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

/// Greedy tokens computed one forward pass at a time, independently of `generate`.
fn greedy_tokens(engine: &mut Engine, prompt: &str, count: usize) -> Vec<u32> {
    let ids = engine.tokenize(prompt, true).unwrap();
    engine.reset().unwrap();
    let mut logits = engine.forward(&ids).unwrap();
    let mut tokens = Vec::new();
    for _ in 0..count {
        let token = LogitsProcessor::default().sample(&logits).unwrap();
        tokens.push(token);
        logits = engine.forward(&[token]).unwrap();
    }
    tokens
}

const TINY_PROMPT: &str = "the cat in the hat";

#[test]
fn tiny_generation_stops_at_max_tokens_with_timings() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Int4));
    let greedy = greedy_tokens(&mut engine, TINY_PROMPT, 40);
    // Stop before the first EOS the model would produce, so the budget is what ends generation.
    let budget = greedy.iter().position(|&t| t == tiny::EOS_ID).unwrap_or(greedy.len()).min(12);
    assert!(budget >= 2, "the tiny model emits EOS at once: {greedy:?}");

    let mut streamed = String::new();
    let generation =
        engine.generate(&text(TINY_PROMPT), &settings(budget, &[]), &mut |t| streamed.push_str(t)).unwrap();
    assert_eq!(generation.finish, FinishReason::Length);
    assert_eq!(generation.output_tokens, budget);
    assert_eq!(generation.prompt_tokens, engine.tokenize(TINY_PROMPT, true).unwrap().len());
    assert_eq!(generation.prompt_text, TINY_PROMPT);
    assert_eq!(generation.output, engine.tokenizer().decode(&greedy[..budget], true).unwrap());
    assert_eq!(streamed, generation.output);

    let t = &generation.timings;
    assert!(t.prefill > std::time::Duration::ZERO);
    assert!(t.ttft >= t.prefill && t.e2e >= t.ttft);
    assert_eq!(t.decode_steps.len(), budget - 1);
    assert!(t.decode_steps.iter().all(|d| *d > std::time::Duration::ZERO));
    assert!(t.e2e >= t.decode_steps.iter().sum::<std::time::Duration>());
    // Each step's time inside ONNX Runtime's run is part of that step: the rest is the harness's overhead.
    assert_eq!(t.decode_runs.len(), t.decode_steps.len());
    assert!(
        t.decode_runs.iter().zip(&t.decode_steps).all(|(run, step)| *run > std::time::Duration::ZERO && run <= step)
    );
}

#[test]
fn tiny_generation_stops_at_eos() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Fp32);
    let greedy = greedy_tokens(&mut load(&model), TINY_PROMPT, 10);
    // Craft the EOS: declare the token greedy decoding emits fifth as the model's EOS.
    let eos = greedy[4];
    let expected = greedy.iter().position(|&t| t == eos).unwrap();
    let config_path = model.join("genai_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model"]["eos_token_id"] = serde_json::json!([eos]);
    std::fs::write(&config_path, config.to_string()).unwrap();

    let mut engine = load(&model);
    let generation = engine.generate(&text(TINY_PROMPT), &settings(50, &[]), &mut |_| {}).unwrap();
    assert_eq!(generation.finish, FinishReason::Eos);
    assert_eq!(generation.output_tokens, expected);
    assert_eq!(generation.output, engine.tokenizer().decode(&greedy[..expected], true).unwrap());
}

#[test]
fn tiny_stop_string_truncates_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Int4));
    let full = engine.generate(&text(TINY_PROMPT), &settings(30, &[]), &mut |_| {}).unwrap();
    let chars: Vec<char> = full.output.chars().collect();
    assert!(chars.len() >= 8, "too little output to test stop strings: {:?}", full.output);
    let stop: String = chars[4..6].iter().collect();
    let cut = full.output.find(&stop).unwrap();

    let mut streamed = String::new();
    let stopped = engine
        .generate(&text(TINY_PROMPT), &settings(30, &["never appears", &stop]), &mut |t| streamed.push_str(t))
        .unwrap();
    assert_eq!(stopped.finish, FinishReason::Stop);
    assert_eq!(stopped.output, full.output[..cut]);
    assert_eq!(streamed, stopped.output);
    assert!(stopped.output_tokens <= full.output_tokens);
}

fn sampled(max_new_tokens: usize, seed: u64) -> GenerationSettings {
    GenerationSettings {
        max_new_tokens,
        sampling: Sampling::new(Some(1.0), Some(50), Some(0.95)).unwrap(),
        seed,
        ignore_eos: true,
        ..Default::default()
    }
}

#[test]
fn tiny_sampling_is_reproducible_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Fp32));
    let run = |engine: &mut Engine, settings: &GenerationSettings| {
        engine.generate(&text(TINY_PROMPT), settings, &mut |_| {}).unwrap()
    };
    let first = run(&mut engine, &sampled(24, 1));
    let again = run(&mut engine, &sampled(24, 1));
    assert_eq!(first.output, again.output);
    assert_eq!((first.output_tokens, first.finish), (24, FinishReason::Length));
    let other = run(&mut engine, &sampled(24, 2));
    assert_ne!(first.output, other.output, "seeds 1 and 2 drew the same 24 tokens");
    let greedy = run(&mut engine, &GenerationSettings { ignore_eos: true, ..settings(24, &[]) });
    assert_ne!(first.output, greedy.output, "sampling at temperature 1 drew the greedy tokens");
    // Temperature 0 is greedy decoding whatever the seed.
    let cold = GenerationSettings { sampling: Sampling::new(Some(0.0), Some(50), None).unwrap(), ..sampled(24, 3) };
    assert_eq!(run(&mut engine, &cold).output, greedy.output);
}

#[test]
fn tiny_ignore_eos_generates_to_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Fp32);
    let greedy = greedy_tokens(&mut load(&model), TINY_PROMPT, 16);
    // Declare the token greedy decoding emits third the model's EOS, so generation would stop there.
    let eos = greedy[2];
    let config_path = model.join("genai_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model"]["eos_token_id"] = serde_json::json!([eos]);
    std::fs::write(&config_path, config.to_string()).unwrap();

    let mut engine = load(&model);
    let stopped = engine.generate(&text(TINY_PROMPT), &settings(16, &[]), &mut |_| {}).unwrap();
    assert_eq!(stopped.finish, FinishReason::Eos);
    assert_eq!(stopped.output_tokens, greedy.iter().position(|&t| t == eos).unwrap());
    let fixed = GenerationSettings { ignore_eos: true, ..settings(16, &[]) };
    let generation = engine.generate(&text(TINY_PROMPT), &fixed, &mut |_| {}).unwrap();
    assert_eq!(generation.finish, FinishReason::Length);
    assert_eq!(generation.output_tokens, 16);
    assert_eq!(generation.timings.decode_steps.len(), 15);
    assert_eq!(generation.output, engine.tokenizer().decode(&greedy, true).unwrap());
}

/// `generate` penalizes the prompt's tokens and its own output: checked against the penalty applied by hand.
#[test]
fn tiny_repetition_penalty_covers_prompt_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Fp32));
    let penalty = 1.8;
    let mut context = engine.tokenize(TINY_PROMPT, true).unwrap();
    engine.reset().unwrap();
    let mut logits = engine.forward(&context).unwrap();
    let mut expected = Vec::new();
    for _ in 0..12 {
        for (id, logit) in logits.iter_mut().enumerate() {
            if context.contains(&(id as u32)) {
                *logit = if *logit < 0.0 { *logit * penalty } else { *logit / penalty };
            }
        }
        let token = LogitsProcessor::default().sample(&logits).unwrap();
        expected.push(token);
        context.push(token);
        logits = engine.forward(&[token]).unwrap();
    }
    let greedy = greedy_tokens(&mut engine, TINY_PROMPT, 12);
    assert_ne!(expected, greedy, "the penalty changed nothing: test on a stronger penalty");

    let penalized = GenerationSettings { repetition_penalty: penalty, ignore_eos: true, ..settings(12, &[]) };
    let generation = engine.generate(&text(TINY_PROMPT), &penalized, &mut |_| {}).unwrap();
    assert_eq!(generation.output, engine.tokenizer().decode(&expected, true).unwrap());
}

#[test]
fn tiny_chat_prompt_uses_the_chat_template() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Int4));
    let prompt = Prompt::Chat(vec![ChatMessage { role: Role::User, content: "hi".into() }]);
    let generation = engine.generate(&prompt, &settings(3, &[]), &mut |_| {}).unwrap();
    assert!(generation.prompt_text.starts_with("<|im_start|>system\n"), "{:?}", generation.prompt_text);
    assert!(generation.prompt_text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
    assert!(generation.output_tokens <= 3);
    let info = engine.model_info();
    assert_eq!((info.layers, info.kv_heads, info.head_size), (tiny::BLOCKS, tiny::KV_HEADS, tiny::HEAD_DIM));
    assert_eq!((info.vocab, info.context_length, info.ep.as_str()), (tiny::VOCAB, tiny::CONTEXT, "cpu"));
    assert_eq!(info.eos_token_ids, vec![tiny::EOS_ID]);
    assert_eq!(engine.runtime().version, crate::paths::ORT_VERSION);
}

/// The KV cache (shared past/present buffer, regrown past its first capacity) gives the same logits as
/// running the whole sequence again without a cache.
#[test]
fn tiny_kv_cache_decode_matches_full_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Fp32));
    let tokens: Vec<u32> = (0..100u32).map(|i| (i * 37 + 11) % tiny::VOCAB as u32).collect();
    engine.reset().unwrap();
    let mut cached = vec![engine.forward(&tokens[..5]).unwrap()];
    for &token in &tokens[5..] {
        cached.push(engine.forward(&[token]).unwrap());
    }
    for (end, cached_logits) in (5..=tokens.len()).zip(&cached) {
        engine.reset().unwrap();
        let full = engine.forward(&tokens[..end]).unwrap();
        let diff = full.iter().zip(cached_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "position {end}: max |diff| {diff}");
    }
}

/// An imported graph runs its head on the positions generation needs only, and on every position when
/// scoring asks; both give the same logits where they overlap. Ragged rows with a wide spread run in two
/// steps, so the head still runs once per row.
#[test]
fn imported_graphs_compute_logits_for_the_last_position_unless_every_position_is_wanted() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Fp32);
    quiet_ort_cache();
    let folder = ModelFolder::open(&model).unwrap();
    let loaded = providers::load_runtime(None, &ProviderOptions::default()).unwrap();
    let mut session =
        DecoderSession::new(&loaded.environment, &folder.model_path, &folder.info, Some(1), &Default::default(), None)
            .unwrap();
    let (short, long): (Vec<i64>, Vec<i64>) = ((1..4).collect(), (1..7).collect());

    session.reset_batch(1, 8).unwrap();
    let every = session.extend(&[&long], "test", false, LogitsWanted::Every).unwrap();
    assert_eq!(every.positions(), 6);
    let last = session.extend(&[&long], "test", false, LogitsWanted::Last).unwrap();
    assert_eq!(last.positions(), 1, "the head ran on every prompt position");
    assert!(max_diff(&every.at(0, 5), &last.last(0)) < 1e-5);

    // Right-padded rows of 3 and 6 tokens: the head starts at the shorter row's last token.
    session.reset_batch(2, 8).unwrap();
    let ragged = session.extend(&[&short, &long], "test", true, LogitsWanted::Last).unwrap();
    assert_eq!(ragged.positions(), 4);
    assert!(max_diff(&every.at(0, 2), &ragged.last(0)) < 1e-4, "the short row's logits");
    assert!(max_diff(&every.at(0, 5), &ragged.last(1)) < 1e-4, "the long row's logits");

    // Rows 2 and 7 tokens long: the spread is wide enough that the rows run without their last token first,
    // then the last tokens as one step; the head runs on each row's last position only.
    let (two, seven): (Vec<i64>, Vec<i64>) = ((1..3).collect(), (1..8).collect());
    session.reset_batch(1, 8).unwrap();
    let every = session.extend(&[&seven], "test", false, LogitsWanted::Every).unwrap();
    session.reset_batch(2, 8).unwrap();
    let split = session.extend(&[&two, &seven], "test", true, LogitsWanted::Last).unwrap();
    assert_eq!(split.positions(), 1, "the head ran on more than each row's last position");
    assert!(max_diff(&every.at(0, 1), &split.last(0)) < 1e-4, "the short row's logits");
    assert!(max_diff(&every.at(0, 6), &split.last(1)) < 1e-4, "the long row's logits");
    // The cache holds both rows whole: the next step continues them.
    assert_eq!(session.next_len(), 8);
}

#[test]
fn tiny_prompt_longer_than_context_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_model(dir.path(), Precision::Int4));
    let long = "the ".repeat(tiny::CONTEXT);
    let err = engine.generate(&text(&long), &settings(4, &[]), &mut |_| {}).unwrap_err();
    assert!(matches!(err, EngineError::PromptTooLong { .. }), "{err}");
}

#[test]
fn stream_decoder_never_splits_characters() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Int4);
    let tokenizer = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    // The tiny vocabulary is mostly single bytes: every non-ASCII character spans several tokens.
    let text = "héllo wörld ✓ 🎉 then in the hat";
    let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
    assert!(ids.len() > text.chars().count() / 2);
    let mut decoder = StreamDecoder::new(&tokenizer, true);
    let mut pieces = Vec::new();
    for &id in &ids {
        if let Some(piece) = decoder.push(id).unwrap() {
            pieces.push(piece);
        }
    }
    assert!(decoder.flush().unwrap().is_none());
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(pieces.contains(&"🎉".to_string()), "{pieces:?}");
    assert_eq!(pieces.concat(), text);
}

#[test]
fn stream_decoder_flushes_an_incomplete_character() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Int4);
    let tokenizer = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    let ids = tokenizer.encode("a🎉", false).unwrap().get_ids().to_vec();
    let mut decoder = StreamDecoder::new(&tokenizer, true);
    let mut pieces = Vec::new();
    // Leave out the emoji's last byte: generation ended mid-character.
    for &id in &ids[..ids.len() - 1] {
        pieces.extend(decoder.push(id).unwrap());
    }
    assert_eq!(pieces, vec!["a".to_string()]);
    assert_eq!(decoder.flush().unwrap().as_deref(), Some("\u{FFFD}"));
}

#[test]
fn missing_ort_library_gives_an_actionable_error() {
    let missing = Path::new("/nonexistent/libonnxruntime.so.1.31.1");
    let err = load_runtime(Some(missing), false).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("/nonexistent/libonnxruntime.so.1.31.1"), "{message}");
    assert!(message.contains("cargo xtask setup"), "{message}");
    assert!(message.contains("ORT_DYLIB_PATH") && message.contains("onnxruntime==1.31.1"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Int4);
    let options = EngineOptions { model_dir: model, ort_lib: Some(missing.into()), ..Default::default() };
    let err = Engine::load(&options).err().expect("a missing library must fail");
    assert!(matches!(err, EngineError::OrtLib(OrtLibError::NotFound { .. })), "{err}");
}

#[test]
fn a_file_that_is_not_onnx_runtime_is_refused() {
    quiet_ort_cache();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let err = load_runtime(Some(&fake), false).unwrap_err();
    // Before ONNX Runtime is loaded the file fails to open; after, the process already has another library.
    assert!(matches!(err, OrtLibError::Load { .. } | OrtLibError::AlreadyLoaded { .. }), "{err}");
    assert!(err.to_string().contains(&fake.display().to_string()), "{err}");
}

#[test]
fn model_folder_problems_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Int4);
    let open_err = |dir: &Path| match ModelFolder::open(dir) {
        Ok(_) => panic!("{} should not open", dir.display()),
        Err(err) => err.to_string(),
    };
    for file in ["model.onnx", "tokenizer.json", "genai_config.json"] {
        let broken = dir.path().join(format!("without-{file}"));
        std::fs::create_dir(&broken).unwrap();
        for entry in std::fs::read_dir(&model).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != file {
                std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
            }
        }
        let message = open_err(&broken);
        if file == "genai_config.json" {
            // Without either config file the folder has no layout runner knows: the message lists both.
            assert!(
                message.contains("genai_config.json") && message.contains("config.json with model.onnx"),
                "{message}"
            );
            continue;
        }
        assert_eq!(message, format!("{file} is missing from {}", broken.display()));
        // Engine::load reports the folder before touching ONNX Runtime.
        let options = EngineOptions { model_dir: broken, ..Default::default() };
        assert!(matches!(Engine::load(&options), Err(EngineError::Model(ModelError::Missing { .. }))));
    }

    let config_path = model.join("genai_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model"]["decoder"]["num_hidden_layers"] = serde_json::json!("two");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let message = open_err(&model);
    assert!(message.contains("genai_config.json") && message.contains("num_hidden_layers"), "{message}");

    std::fs::write(&config_path, "{ not json").unwrap();
    assert!(open_err(&model).contains("genai_config.json is not valid JSON"));
    assert!(open_err(&dir.path().join("no-such-folder")).contains("no-such-folder"));
}

/// The default model, imported once per test (into a temp dir) at both precisions.
struct DefaultModels {
    _dir: tempfile::TempDir,
    int4: PathBuf,
    fp32: PathBuf,
}

fn default_models() -> Option<DefaultModels> {
    let gguf = crate::testing::installed_default_gguf()?;
    let dir = tempfile::tempdir().unwrap();
    let int4 = dir.path().join("int4");
    let fp32 = dir.path().join("fp32");
    import_gguf(&gguf, &int4, &ImportOptions::default()).unwrap();
    import_gguf(
        &gguf,
        &fp32,
        &ImportOptions { precision: Precision::Fp32, accuracy_level: 0, force: false, ..Default::default() },
    )
    .unwrap();
    Some(DefaultModels { _dir: dir, int4, fp32 })
}

/// Logits at every position of `tokens`, each fed through the KV cache one at a time.
fn stepwise_logits(engine: &mut Engine, tokens: &[u32]) -> Vec<Vec<f32>> {
    engine.reset().unwrap();
    tokens.iter().map(|t| engine.forward(&[*t]).unwrap()).collect()
}

/// fp32 is an exact path and is held bit for bit: `generate` gives the tokens of a plain forward loop, and
/// answers a plain question fluently. int4 at the default accuracy level 4 computes with int8 activations,
/// and ONNX Runtime picks those kernels per CPU (AVX2, AVX-512 VNNI, AMX): on an AMX Xeon its greedy text
/// parts from fp32's at token 11 of this prompt ("Rayleigh Scavding" against "Rayleigh scattering"), with
/// the same fidelity as on an AVX2 EPYC. So int4 is held to fp32 by mean KL and top-1 agreement along
/// fp32's own greedy path, never by identical text.
#[test]
fn default_model_int4_stays_close_to_fp32_and_fp32_answers_fluently() {
    let Some(models) = default_models() else { return };
    let question = |q: &str| Prompt::Chat(vec![ChatMessage { role: Role::User, content: q.to_string() }]);
    let prompt = question("Explain in two sentences why the sky is blue.");
    let run = |engine: &mut Engine, prompt: &Prompt, tokens: usize| {
        let prompt_text = engine.render(prompt).unwrap();
        let greedy_ids = greedy_tokens(engine, &prompt_text, tokens);
        let generation = engine.generate(prompt, &settings(tokens, &[]), &mut |_| {}).unwrap();
        (prompt_text, greedy_ids, generation)
    };

    let mut fp32_engine = load(&models.fp32);
    let (prompt_text, fp32_ids, fp32) = run(&mut fp32_engine, &prompt, 16);
    assert_eq!(fp32.output_tokens, 16);
    assert_eq!(fp32.output, fp32_engine.tokenizer().decode(&fp32_ids, true).unwrap());
    eprintln!("fp32: {:?}", fp32.output);

    let mut int4_engine = load(&models.int4);
    assert_eq!(int4_engine.model_info().precision, "int4");
    let (_, int4_ids, int4) = run(&mut int4_engine, &prompt, 16);
    assert_eq!(int4.output_tokens, 16);
    // The same model on the same machine runs the same kernels: generate is the forward loop.
    assert_eq!(int4.output, int4_engine.tokenizer().decode(&int4_ids, true).unwrap());
    eprintln!("int4: {:?}", int4.output);

    // Teacher-forced on fp32's path: the prompt and fp32's 16 tokens (the last one's logits are not needed).
    let mut path = fp32_engine.tokenize(&prompt_text, true).unwrap();
    path.extend(&fp32_ids[..fp32_ids.len() - 1]);
    let reference: Vec<Vec<f64>> = stepwise_logits(&mut fp32_engine, &path)
        .into_iter()
        .map(|row| row.into_iter().map(f64::from).collect())
        .collect();
    let (kl, top1) = compare_logits(&reference, &stepwise_logits(&mut int4_engine, &path));
    eprintln!("int4 against fp32 over {} positions: mean KL {kl:.2e}, top-1 {top1:.3}", path.len());
    // Measured: KL 3.4e-3 and top-1 0.98 against a float64 reference on both CPU families.
    assert!(kl < 0.02 && top1 >= 0.9, "int4 level 4 against fp32: mean KL {kl}, top-1 {top1}");

    let (_, _, france) = run(&mut fp32_engine, &question("What is the capital of France?"), 32);
    assert_eq!(france.output, "The capital of France is Paris.");
    assert_eq!(france.finish, FinishReason::Eos);
}

// ---- Model folders of other exporters, batches and continuation scores ----

use crate::gguf::GgufFile;
use crate::testing::contracts::{OptimumOptions, set_attention_window, write_genai_folder, write_optimum_folder};
use crate::testing::reference::{compare_logits, reference_logits};

/// Greedy tokens after `prompt` by the float64 reference forward pass of the tiny GGUF.
fn reference_greedy(gguf: &GgufFile, prompt: &[u32], count: usize) -> Vec<u32> {
    let mut tokens = prompt.to_vec();
    for _ in 0..count {
        let logits = reference_logits(gguf, &tokens);
        let last = logits.last().unwrap();
        let best = (0..last.len()).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap();
        tokens.push(best as u32);
    }
    tokens[prompt.len()..].to_vec()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// Logits at every position fed one token at a time through the cache, and each prefix fed whole.
fn cached_and_full(engine: &mut Engine, tokens: &[u32]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let cached = stepwise_logits(engine, tokens);
    let full = (1..=tokens.len())
        .map(|end| {
            engine.reset().unwrap();
            engine.forward(&tokens[..end]).unwrap()
        })
        .collect();
    (cached, full)
}

#[test]
fn optimum_exports_with_and_without_position_ids_generate_the_reference_greedy_text() {
    for position_ids in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let model = write_optimum_folder(dir.path(), 7, OptimumOptions { position_ids, fp16: false });
        let gguf = GgufFile::open(dir.path().join("tiny.gguf")).unwrap();
        let mut engine = load(&model);
        let info = engine.model_info().clone();
        assert_eq!(info.format, ModelFormat::Optimum);
        assert_eq!((info.kv_layout.as_str(), info.kv_dtype.as_str()), ("concat", "float32"));
        assert_eq!((info.layers, info.kv_heads, info.head_size), (tiny::BLOCKS, tiny::KV_HEADS, tiny::HEAD_DIM));
        assert_eq!((info.context_length, info.eos_token_ids.clone()), (tiny::CONTEXT, vec![tiny::EOS_ID]));
        assert_eq!(
            (info.architecture.as_deref(), info.hidden_size, info.heads),
            (Some("llama"), Some(tiny::EMBEDDING), Some(tiny::HEADS)),
            "what the model is, from config.json"
        );

        let prompt = engine.tokenize(TINY_PROMPT, true).unwrap();
        let expected = reference_greedy(&gguf, &prompt, 10);
        let fixed = GenerationSettings { ignore_eos: true, ..settings(10, &[]) };
        let generation = engine.generate(&text(TINY_PROMPT), &fixed, &mut |_| {}).unwrap();
        assert_eq!(
            generation.output,
            engine.tokenizer().decode(&expected, true).unwrap(),
            "position_ids {position_ids}: greedy text differs from the reference"
        );

        let tokens: Vec<u32> = prompt.iter().chain(&expected).copied().collect();
        let reference = reference_logits(&gguf, &tokens);
        let (cached, full) = cached_and_full(&mut engine, &tokens);
        for (position, ((cached, full), reference)) in cached.iter().zip(&full).zip(&reference).enumerate() {
            let reference: Vec<f32> = reference.iter().map(|v| *v as f32).collect();
            assert!(max_diff(cached, full) < 1e-4, "position {position}: cached vs full {}", max_diff(cached, full));
            assert!(
                max_diff(full, &reference) < 1e-3,
                "position {position}: vs reference {}",
                max_diff(full, &reference)
            );
        }
    }
}

#[test]
fn optimum_fp16_cache_and_logits_run_and_track_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_optimum_folder(dir.path(), 7, OptimumOptions { position_ids: true, fp16: true });
    let gguf = GgufFile::open(dir.path().join("tiny.gguf")).unwrap();
    let mut engine = load(&model);
    let info = engine.model_info();
    assert_eq!((info.kv_dtype.as_str(), info.logits_dtype.as_str()), ("float16", "float16"));
    let tokens = engine.tokenize("the cat in the hat sat on the mat", true).unwrap();
    let reference = reference_logits(&gguf, &tokens);
    let (cached, full) = cached_and_full(&mut engine, &tokens);
    for (position, ((cached, full), reference)) in cached.iter().zip(&full).zip(&reference).enumerate() {
        let reference: Vec<f32> = reference.iter().map(|v| *v as f32).collect();
        // Keys, values and logits rounded to fp16 (11-bit mantissa) on logits of magnitude ~1.
        assert!(max_diff(cached, full) < 2e-2, "position {position}: cached vs full {}", max_diff(cached, full));
        assert!(max_diff(full, &reference) < 3e-2, "position {position}: vs reference {}", max_diff(full, &reference));
    }
    let generation = engine.generate(&text(TINY_PROMPT), &settings(6, &[]), &mut |_| {}).unwrap();
    assert!(generation.output_tokens > 0 || generation.finish == FinishReason::Eos);
}

#[test]
fn genai_builder_names_come_from_genai_config() {
    let dir = tempfile::tempdir().unwrap();
    let genai = write_genai_folder(dir.path(), 7, Precision::Int4);
    let imported = dir.path().join("int4");
    let mut engine = load(&genai);
    let info = engine.model_info().clone();
    assert_eq!(info.format, ModelFormat::GenaiBuilder);
    assert_eq!(
        (info.kv_layout.as_str(), info.io.past_key.as_str(), info.io.logits.as_str()),
        ("shared_buffer", "past_key_%d", "lm_logits")
    );
    assert_eq!(info.precision, "unknown", "no runner.json, so no recorded precision");
    assert_eq!(
        (info.architecture.as_deref(), info.hidden_size, info.heads),
        (Some("llama"), Some(tiny::EMBEDDING), Some(tiny::HEADS)),
        "what the model is, from genai_config.json"
    );
    // The probe that records which provider ran each node fills `kv_cache_dim` from the configuration.
    let record = engine.session_record();
    assert_eq!(record.node_assignment_error, None);
    assert!(
        record.node_assignment.as_ref().is_some_and(|n| n.nodes_per_provider.values().sum::<usize>() > 0),
        "{record:?}"
    );
    let fixed = GenerationSettings { ignore_eos: true, ..settings(12, &[]) };
    let renamed = engine.generate(&text(TINY_PROMPT), &fixed, &mut |_| {}).unwrap();
    let original = load(&imported).generate(&text(TINY_PROMPT), &fixed, &mut |_| {}).unwrap();
    assert_eq!(renamed.output, original.output);

    // A pattern the graph does not have is named with the config file it came from.
    let config_path = genai.join("genai_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model"]["decoder"]["outputs"]["present_value_names"] = serde_json::json!("present.%d.value");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let options = EngineOptions { model_dir: genai.clone(), intra_threads: Some(1), ..Default::default() };
    let message = Engine::load(&options).err().expect("a missing output must fail").to_string();
    assert!(message.contains("present.0.value") && message.contains("genai_config.json"), "{message}");
    assert!(message.contains("present_key_0"), "the graph's outputs are listed: {message}");
}

/// Sliding-window attention in a window-sized cache, as genai's builder writes Gemma2 (window 4096) and
/// Gemma3 (512), here 300 on the tiny model: ONNX Runtime's GroupQueryAttention refuses a shared KV buffer
/// smaller than the window, whatever the prompt and budget need ("KV cache capacity (64) must be at least
/// local_window_size (512)"). Within the window the result is that of the same graph without one.
#[test]
fn a_sliding_window_graph_gets_a_kv_buffer_that_holds_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let genai = write_genai_folder(dir.path(), 7, Precision::Int4);
    let fixed = GenerationSettings { ignore_eos: true, ..settings(12, &[]) };
    let unwindowed = load(&genai).generate(&text(TINY_PROMPT), &fixed, &mut |_| {}).unwrap();
    assert_eq!(set_attention_window(&genai.join("decoder.onnx"), 300), tiny::BLOCKS);
    let scan = crate::onnx::scan::scan_graph(&genai.join("decoder.onnx")).unwrap();
    assert_eq!(scan.window_cache, Some(300));
    let mut engine = load(&genai);
    assert_eq!(engine.session_record().node_assignment_error, None, "the probe run fills the window too");
    let windowed = engine.generate(&text(TINY_PROMPT), &fixed, &mut |_| {}).unwrap();
    assert_eq!(windowed.output, unwindowed.output);
    // A batch allocates its buffer anew for two rows: the window holds there too.
    let batch = engine.generate_batch(&[text(TINY_PROMPT), text("a longer prompt than the first one")], &fixed);
    assert!(batch.unwrap().iter().all(|g| g.output_tokens == 12));
}

#[test]
fn folders_runner_cannot_drive_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_optimum_folder(dir.path(), 3, OptimumOptions { position_ids: true, fp16: false });
    let open_err = |dir: &Path| ModelFolder::open(dir).err().expect("must not open").to_string();
    let config_path = model.join("config.json");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();

    let mut broken = config.clone();
    broken.as_object_mut().unwrap().remove("max_position_embeddings");
    std::fs::write(&config_path, broken.to_string()).unwrap();
    let message = open_err(&model);
    assert!(message.contains("config.json") && message.contains("max_position_embeddings"), "{message}");

    // More layers than the graph has: the first missing past input is named.
    let mut broken = config.clone();
    broken["num_hidden_layers"] = serde_json::json!(tiny::BLOCKS + 1);
    std::fs::write(&config_path, broken.to_string()).unwrap();
    let options = EngineOptions { model_dir: model.clone(), intra_threads: Some(1), ..Default::default() };
    quiet_ort_cache();
    let message = Engine::load(&options).err().expect("must not load").to_string();
    assert!(message.contains(&format!("past_key_values.{}.key", tiny::BLOCKS)), "{message}");

    // Head counts that disagree with the graph's fixed dims.
    let mut broken = config.clone();
    broken["num_key_value_heads"] = serde_json::json!(tiny::KV_HEADS * 2);
    std::fs::write(&config_path, broken.to_string()).unwrap();
    let message = Engine::load(&options).err().expect("must not load").to_string();
    assert!(message.contains("num_key_value_heads") && message.contains("past_key_values.0.key"), "{message}");

    std::fs::remove_file(&config_path).unwrap();
    let message = open_err(&model);
    assert!(message.contains("model.onnx is there but neither config file is"), "{message}");
}

fn batch_prompts() -> Vec<Prompt> {
    ["the cat", "in the hat the cat sat on a mat and then", "a", "the other one, on the hat"]
        .iter()
        .map(|p| text(p))
        .collect()
}

/// Greedy generations of `prompts` one at a time and as one batch must be the same text.
fn assert_batch_matches_single(
    engine: &mut Engine,
    prompts: &[Prompt],
    settings: &GenerationSettings,
) -> Vec<Generation> {
    let single: Vec<Generation> = prompts.iter().map(|p| engine.generate(p, settings, &mut |_| {}).unwrap()).collect();
    let batched = engine.generate_batch(prompts, settings).unwrap();
    assert_eq!(batched.len(), prompts.len());
    for (index, (one, many)) in single.iter().zip(&batched).enumerate() {
        assert_eq!(one.output, many.output, "prompt {index}: batch output differs");
        assert_eq!((one.output_tokens, one.finish), (many.output_tokens, many.finish), "prompt {index}");
        assert_eq!(one.prompt_tokens, many.prompt_tokens);
        // One timing per sampled token (an EOS is sampled too): the first is TTFT, the rest decode steps.
        let sampled = many.output_tokens + usize::from(many.finish == FinishReason::Eos);
        assert_eq!(many.timings.decode_steps.len() + 1, sampled, "prompt {index}");
    }
    batched
}

#[test]
fn batches_of_four_give_the_single_prompt_greedy_text_on_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    let imported = tiny_model(dir.path(), Precision::Fp32);
    let with_positions =
        write_optimum_folder(&dir.path().join("a"), 7, OptimumOptions { position_ids: true, fp16: false });
    let without_positions =
        write_optimum_folder(&dir.path().join("b"), 7, OptimumOptions { position_ids: false, fp16: false });
    let fixed = GenerationSettings { ignore_eos: true, ..settings(12, &[]) };
    let prompts = batch_prompts();
    for (model, expected_batch) in [(&imported, 4), (&with_positions, 4), (&without_positions, 1)] {
        let mut engine = load(model);
        let batched = assert_batch_matches_single(&mut engine, &prompts, &fixed);
        // Without position ids, prompts of different lengths cannot share a batch.
        assert!(batched.iter().all(|g| g.timings.batch_size == expected_batch), "{}", model.display());
        assert!(batched.iter().all(|g| g.output_tokens == 12 && g.timings.ttft >= g.timings.prefill));
    }
    // The same model: equal prompts batch even without position ids.
    let mut engine = load(&without_positions);
    let same = vec![text("the cat"), text("a b c d"), text("the hat")];
    let lengths: Vec<usize> =
        same.iter().map(|p| engine.tokenize(&engine.render(p).unwrap(), true).unwrap().len()).collect();
    let batched = assert_batch_matches_single(&mut engine, &same, &fixed);
    for (generation, length) in batched.iter().zip(&lengths) {
        let peers = lengths.iter().filter(|l| *l == length).count();
        assert_eq!(generation.timings.batch_size, peers);
    }
}

/// Rows stop on their own: an EOS or stop string ends one row while the others go on.
#[test]
fn batch_rows_stop_independently() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), Precision::Fp32);
    let prompts = batch_prompts();
    let mut engine = load(&model);
    let free = engine.generate_batch(&prompts, &GenerationSettings { ignore_eos: true, ..settings(16, &[]) }).unwrap();
    // A stop string taken from the second row's output stops that row early, and only rows containing it.
    let chars: Vec<char> = free[1].output.chars().collect();
    let stop: String = chars[3..5].iter().collect();
    let stopped = GenerationSettings { ignore_eos: true, ..settings(16, &[&stop]) };
    let batched = assert_batch_matches_single(&mut engine, &prompts, &stopped);
    assert_eq!(batched[1].finish, FinishReason::Stop);
    for (free, stopped) in free.iter().zip(&batched) {
        assert!(free.output.starts_with(&stopped.output));
        assert_eq!(stopped.finish == FinishReason::Stop, free.output.contains(&stop));
    }
}

/// A batch that drops a finished row runs only the rows left, on both cache layouts, and each goes on exactly
/// as it would have: three rows, the middle (longest) one dropped after the prompt, then two decode steps whose
/// logits equal those of the same two rows run as a batch of two from the start.
#[test]
fn a_batch_that_drops_a_row_goes_on_with_the_others_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let imported = tiny_model(dir.path(), Precision::Fp32);
    let optimum = write_optimum_folder(&dir.path().join("o"), 7, OptimumOptions { position_ids: true, fp16: false });
    quiet_ort_cache();
    let loaded = providers::load_runtime(None, &ProviderOptions::default()).unwrap();
    let rows: [Vec<i64>; 3] = [(1..4).collect(), (1..9).collect(), (2..7).collect()];
    for model in [&imported, &optimum] {
        let folder = ModelFolder::open(model).unwrap();
        let open = || {
            let options = Default::default();
            DecoderSession::new(&loaded.environment, &folder.model_path, &folder.info, Some(1), &options, None).unwrap()
        };
        let mut three = open();
        three.reset_batch(3, 16).unwrap();
        let all: Vec<&[i64]> = rows.iter().map(Vec::as_slice).collect();
        three.extend(&all, "test", true, LogitsWanted::Last).unwrap();
        three.retain_rows(&[true, false, true]).unwrap();
        let mut two = open();
        two.reset_batch(2, 16).unwrap();
        two.extend(&[&rows[0], &rows[2]], "test", true, LogitsWanted::Last).unwrap();
        for step in [[5i64, 6], [7, 8]] {
            let dropped = three.extend(&[&step[..1], &step[1..]], "test", true, LogitsWanted::Last).unwrap();
            let fresh = two.extend(&[&step[..1], &step[1..]], "test", true, LogitsWanted::Last).unwrap();
            for row in 0..2 {
                let diff = max_diff(&dropped.last(row), &fresh.last(row));
                assert!(diff < 1e-5, "{}: row {row} after dropping a row: max |diff| {diff}", model.display());
            }
        }
        assert_eq!(three.past_len(), two.past_len());
        let wrong_count = three.retain_rows(&[true]).unwrap_err().to_string();
        assert!(wrong_count.contains("one flag per row"), "{wrong_count}");
        let none_left = three.retain_rows(&[false, false]).unwrap_err().to_string();
        assert!(none_left.contains("at least one row"), "{none_left}");
    }
}

#[test]
fn continuation_logprobs_match_the_reference_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let imported = tiny_model(dir.path(), Precision::Fp32);
    let optimum = write_optimum_folder(&dir.path().join("o"), 7, OptimumOptions { position_ids: true, fp16: false });
    let gguf = GgufFile::open(dir.path().join("tiny.gguf")).unwrap();
    for model in [&imported, &optimum] {
        let mut engine = load(model);
        let context = "the cat in the ";
        let context_ids = engine.tokenize(context.trim_end(), true).unwrap();
        let greedy = reference_greedy(&gguf, &context_ids, 3);
        let greedy_text = engine.tokenizer().decode(&greedy, true).unwrap();
        let continuations: Vec<String> =
            vec!["hat".into(), "dog sat".into(), greedy_text.trim_start().to_string(), String::new()];
        let scores = engine.continuation_logprobs(context, &continuations).unwrap();
        assert_eq!(scores.len(), 4);
        for (continuation, score) in continuations.iter().zip(&scores) {
            let whole =
                engine.tokenize(&format!("{}{}", context.trim_end(), format_args!(" {continuation}")), true).unwrap();
            let continuation_ids =
                if continuation.is_empty() { Vec::new() } else { whole[context_ids.len()..].to_vec() };
            assert_eq!(score.token_count, continuation_ids.len(), "{continuation:?}");
            let all: Vec<u32> = context_ids.iter().chain(&continuation_ids).copied().collect();
            let reference = reference_logits(&gguf, &all);
            let mut expected = 0.0;
            for (offset, &token) in continuation_ids.iter().enumerate() {
                let row = &reference[context_ids.len() - 1 + offset];
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                expected += row[token as usize] - lse;
            }
            assert!(
                (score.logprob_sum - expected).abs() < 1e-3,
                "{continuation:?}: {} vs {expected}",
                score.logprob_sum
            );
        }
        assert!(scores[0].logprob_sum < 0.0 && scores[3].logprob_sum == 0.0 && scores[3].token_count == 0);
        assert!(scores[2].greedy_match, "the reference's greedy continuation must match: {greedy_text:?}");
        assert!(!scores[1].greedy_match || !scores[0].greedy_match);
    }
}

#[test]
fn default_model_batch_of_four_matches_batch_of_one() {
    let Some(gguf) = crate::testing::installed_default_gguf() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Accuracy level 0: int4 weights with float activations. At level 4 MatMulNBits quantizes activations to
    // int8 and its batched kernel rounds differently from the single-row one, so near-tied greedy picks can
    // flip after a few dozen tokens (measured: 1 of these 4 prompts, from the 47th character); that is
    // arithmetic, not padding, and fp32 and level 0 show the padding is exact.
    let int4 = dir.path().join("int4");
    let options = ImportOptions { precision: Precision::Int4, accuracy_level: 0, force: false, ..Default::default() };
    import_gguf(&gguf, &int4, &options).unwrap();
    let mut engine = load(&int4);
    let prompts: Vec<Prompt> = [
        "What is 7 times 8?",
        "Write a haiku about autumn leaves falling in a quiet park at dusk.",
        "Name three primary colors.",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    ]
    .iter()
    .map(|q| Prompt::Chat(vec![ChatMessage { role: Role::User, content: q.to_string() }]))
    .collect();
    let batched = assert_batch_matches_single(&mut engine, &prompts, &settings(48, &[]));
    for generation in &batched {
        eprintln!("batch {}: {:?}", generation.timings.batch_size, generation.output);
    }
}

/// Contexts of unequal length, continuations of unequal length and count, scored as one batch on both cache
/// layouts (GroupQueryAttention's shared buffer and an Optimum export's concatenated cache): every score
/// equals the same request scored alone (fp32, so the only difference is padding, which must not leak).
#[test]
fn continuation_logprobs_of_a_batch_equal_each_request_scored_alone() {
    let dir = tempfile::tempdir().unwrap();
    let imported = tiny_model(dir.path(), Precision::Fp32);
    let optimum = write_optimum_folder(&dir.path().join("o"), 7, OptimumOptions { position_ids: true, fp16: false });
    let requests: Vec<(String, Vec<String>)> = vec![
        ("the cat in the ".into(), vec!["hat".into(), "dog sat on it".into(), "a".into()]),
        ("a".into(), vec![" b c d e f".into(), String::new()]),
        (
            "the dog sat on the mat and the cat".into(),
            vec![" sat".into(), " in the hat".into(), " on".into(), " x".into()],
        ),
    ];
    for model in [&imported, &optimum] {
        let mut engine = load(model);
        let batched = engine.continuation_logprobs_batch(&requests).unwrap();
        assert_eq!(batched.len(), requests.len());
        for ((context, continuations), batch_scores) in requests.iter().zip(&batched) {
            let alone = engine.continuation_logprobs(context, continuations).unwrap();
            assert_eq!(alone.len(), batch_scores.len());
            for (a, b) in alone.iter().zip(batch_scores) {
                assert_eq!(
                    (a.token_count, a.context_tokens, a.greedy_match),
                    (b.token_count, b.context_tokens, b.greedy_match)
                );
                assert!(
                    (a.logprob_sum - b.logprob_sum).abs() < 1e-4,
                    "{context:?}: {} alone, {} batched",
                    a.logprob_sum,
                    b.logprob_sum
                );
            }
        }
    }
}

/// Consecutive contexts that share a start (a benchmark's header and few-shot examples) reuse the cached
/// keys and values of the shared part: every score equals the one a fresh engine gives, on a shared-buffer
/// import; after a generation the cache is reused as well, or set up afresh.
#[test]
fn contexts_sharing_a_start_score_as_they_score_alone() {
    let dir = tempfile::tempdir().unwrap();
    let imported = tiny_model(dir.path(), Precision::Fp32);
    let shots = "the cat sat on the mat. the dog sat on the hat. the cat in the hat sat. ";
    let contexts = [
        format!("{shots}the dog in the "),
        format!("{shots}the cat on the "),
        format!("{shots}the cat on the "),
        "the cat".to_string(),
        format!("{shots}a dog"),
    ];
    let continuations: Vec<String> = vec!["hat".into(), "mat sat".into(), "dog".into()];
    let mut reused = load(&imported);
    for (step, context) in contexts.iter().enumerate() {
        if step == 3 {
            // A generation in between leaves other tokens in the cache.
            reused.generate(&text("the dog"), &settings(3, &[]), &mut |_| {}).unwrap();
        }
        let got = reused.continuation_logprobs(context, &continuations).unwrap();
        let want = load(&imported).continuation_logprobs(context, &continuations).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.token_count, g.context_tokens), (w.token_count, w.context_tokens));
            assert!(
                (g.logprob_sum - w.logprob_sum).abs() < 1e-4,
                "{context:?}: {} reused, {} fresh",
                g.logprob_sum,
                w.logprob_sum
            );
        }
    }
}
