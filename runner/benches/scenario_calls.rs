//! The scenario calls of every sample through the real gsm8k WebAssembly component: build-prompt and
//! score, each one call into the sandbox (what the "scenario overhead" target of issue 7 bounds).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use runner::datasets::{Layout, LoadedData};
use runner::scenario::{Scenario, ScenarioLimits};

fn scenario_calls(c: &mut Criterion) {
    let mut scenario =
        Scenario::load(Path::new(scenario_artifacts::GSM8K), ScenarioLimits::default()).expect("load gsm8k");
    let embedded = scenario.embedded_dataset().expect("embedded dataset").expect("gsm8k carries a sample");
    let layout = Layout::of(scenario.metadata());
    let loaded =
        LoadedData::bytes("file", embedded.file_name.clone(), &embedded.file_name, None, embedded.data, &layout)
            .expect("decodes");
    let samples = scenario.parse_dataset(&loaded.info, &loaded.input).expect("parses");
    let sample = &samples[0];
    let answer = "6 * 14 = 84, and 84 - 59 = 25. So the answer is 25.";

    let mut group = c.benchmark_group("gsm8k component");
    group.bench_function("build-prompt", |b| b.iter(|| scenario.build_prompt(sample, &[], false).expect("prompt")));
    group.bench_function("build-prompt, 8 few-shot examples", |b| {
        b.iter(|| scenario.build_prompt(sample, &samples[1..9], false).expect("prompt"))
    });
    group.bench_function("score", |b| b.iter(|| scenario.score_text(sample, answer).expect("score")));
    group.finish();
}

criterion_group!(benches, scenario_calls);
criterion_main!(benches);
