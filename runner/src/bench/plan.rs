//! The sweep: every configuration a [`BenchOptions`] asks for, in a fixed, documented order.
//!
//! The order is model, execution provider, threads (the outer three: together they decide the loaded ONNX
//! Runtime session, so each combination loads the model once), then batch size, prompt length P and generated
//! length N, the last varying fastest. `--model A --model B -p 128,512 -n 64` therefore runs
//! A/pp128/tg64, A/pp512/tg64, B/pp128/tg64, B/pp512/tg64.

use serde::Serialize;

use super::options::{BenchOptions, Ep};

/// One point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Configuration {
    /// Index into [`BenchOptions::models`].
    pub model: usize,
    pub ep: Ep,
    /// `None`: ONNX Runtime's default.
    pub threads: Option<usize>,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
}

impl Configuration {
    /// The engine a configuration runs on: configurations with the same key share one loaded model.
    pub fn engine_key(&self) -> (usize, Ep, Option<usize>) {
        (self.model, self.ep, self.threads)
    }

    /// llama-bench's test name: `pp512+tg128`.
    pub fn test_name(&self) -> String {
        format!("pp{}+tg{}", self.prompt_tokens, self.gen_tokens)
    }
}

/// The cartesian product of the option lists, in the order the module documents.
pub fn plan(options: &BenchOptions) -> Vec<Configuration> {
    let mut configurations = Vec::new();
    for model in 0..options.models.len() {
        for &ep in &options.eps {
            for &threads in &options.threads {
                for &batch_size in &options.batch_sizes {
                    for &prompt_tokens in &options.prompt_tokens {
                        for &gen_tokens in &options.gen_tokens {
                            configurations.push(Configuration {
                                model,
                                ep,
                                threads,
                                batch_size,
                                prompt_tokens,
                                gen_tokens,
                            });
                        }
                    }
                }
            }
        }
    }
    configurations
}
