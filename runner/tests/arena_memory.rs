//! A large batched prefill gives its working memory back when it ends. ONNX Runtime's CPU arena keeps every
//! region it grows, and a prefill's attention grows with the square of its length, so without this a
//! batch-16 generation run's resident size climbed with each new longest prompt (MATH-500 at fp16: 2.2 to
//! 4.7 GiB) and each sample's reported peak told the run's history, not its own need.
//!
//! It reads the whole process's resident size, so it lives in a test binary of its own with a single test.

use runner::engine::{Engine, EngineOptions, GenerationSettings};
use runner::import::Precision;
use runner::memory::current_rss_bytes;
use runner::testing::{quiet_ort_cache, tiny, write_tiny_model_folder};

const MIB: u64 = 1 << 20;

#[test]
fn a_large_prefill_gives_its_working_memory_back() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = write_tiny_model_folder(dir.path(), 7, Precision::Fp32);
    quiet_ort_cache();
    let mut engine = Engine::load(&EngineOptions { model_dir, intra_threads: Some(1), ..Default::default() }).unwrap();

    // 16 rows of 1,000 tokens: the tiny model's attention scores alone are 16 x 4 heads x 1,000^2 floats
    // (244 MiB), while its weights and this batch's KV cache are a few MiB.
    let (batch, len) = (16, 1000.min(tiny::CONTEXT - 1));
    let prompts: Vec<Vec<u32>> =
        (0..batch).map(|b| (0..len).map(|i| ((i * 31 + b * 7) % tiny::VOCAB) as u32).collect()).collect();
    let settings = GenerationSettings { max_new_tokens: 1, ..Default::default() };

    let before = current_rss_bytes().expect("/proc/self/status has VmRSS");
    for round in 0..3 {
        let generations = engine.generate_batch_from_tokens(&prompts, &settings).unwrap();
        assert_eq!(generations.len(), batch);
        let after = current_rss_bytes().unwrap();
        assert!(
            after < before + 96 * MIB,
            "round {round}: resident size went from {} to {} MiB across a prefill and stayed there",
            before / MIB,
            after / MIB
        );
    }
}
