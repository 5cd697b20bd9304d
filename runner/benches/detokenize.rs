//! Streaming detokenization with the default model's tokenizer: the text of 256 generated tokens,
//! decoded token by token as the generation loop does. Skipped with a message when the default model is
//! not installed (`cargo xtask setup`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runner::engine::StreamDecoder;
use tokenizers::Tokenizer;

const TEXT: &str = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. \
                    How many clips did Natalia sell altogether in April and May? Let's think step by step. In April \
                    she sold 48 clips. In May she sold 48 / 2 = 24 clips. Altogether: 48 + 24 = 72. The answer is \
                    72. Ünïcödé ✓ and emoji 🚀 check the byte-level pieces that only decode once complete.";

fn detokenize(c: &mut Criterion) {
    let path = runner::paths::default_model().join("tokenizer.json");
    let Ok(tokenizer) = Tokenizer::from_file(&path) else {
        eprintln!("skipping detokenize: no tokenizer at {} (run `cargo xtask setup`)", path.display());
        return;
    };
    let once = tokenizer.encode(TEXT, false).expect("tokenize").get_ids().to_vec();
    let ids: Vec<u32> = once.iter().copied().cycle().take(256).collect();
    let mut group = c.benchmark_group("detokenize");
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function("stream 256 tokens", |b| {
        b.iter(|| {
            let mut decoder = StreamDecoder::new(&tokenizer, true);
            let mut bytes = 0;
            for &id in &ids {
                bytes += decoder.push(id).expect("decode").map_or(0, |s| s.len());
            }
            bytes + decoder.flush().expect("flush").map_or(0, |s| s.len())
        })
    });
    group.bench_function("decode 256 tokens at once", |b| b.iter(|| tokenizer.decode(&ids, true).expect("decode")));
    group.finish();
}

criterion_group!(benches, detokenize);
criterion_main!(benches);
