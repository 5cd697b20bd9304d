//! Sampling over the default model's 49152-token vocabulary: greedy argmax, top-k and top-p with
//! temperature, and greedy with a repetition penalty over a 512-token context. One call is one token.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use runner::engine::{LogitsProcessor, Sampling};

const VOCAB: usize = 49152;

/// Logits shaped like a language model's: a long flat tail and a few tokens far above it.
fn logits(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..VOCAB)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32;
            if i % 4099 == 7 { 12.0 + noise } else { noise * 6.0 - 3.0 }
        })
        .collect()
}

fn sampling(c: &mut Criterion) {
    let logits = logits(1);
    let mut group = c.benchmark_group("sample one token, vocabulary 49152");
    let configurations = [
        ("greedy", Sampling::ArgMax),
        ("top-k 50, temperature 0.8", Sampling::new(Some(0.8), Some(50), None).expect("valid")),
        ("top-p 0.9, temperature 0.8", Sampling::new(Some(0.8), None, Some(0.9)).expect("valid")),
        ("top-k 50 + top-p 0.9", Sampling::new(Some(0.8), Some(50), Some(0.9)).expect("valid")),
    ];
    for (name, sampling) in configurations {
        let mut processor = LogitsProcessor::new(sampling, 7);
        group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| processor.sample(&logits)));
    }
    let context: Vec<u32> = (0..512u32).map(|i| (i * 97) % VOCAB as u32).collect();
    let mut penalised = LogitsProcessor::new(Sampling::ArgMax, 7).with_repetition_penalty(1.1);
    penalised.add_context(&context);
    group.bench_function(BenchmarkId::from_parameter("greedy, repetition penalty, 512 context"), |b| {
        b.iter(|| penalised.sample(&logits))
    });
    group.finish();
}

criterion_group!(benches, sampling);
criterion_main!(benches);
