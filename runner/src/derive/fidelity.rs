//! How close a derived model stays to its source: both run the same tokens, one at a time through the KV
//! cache (the decode path a benchmark times), and their next-token distributions are compared at every
//! position by mean KL(source || derived) and top-1 agreement. The tokens are a fixed probe text (prose,
//! numbers, code) followed by the source's own greedy continuation of it, so the comparison also covers text
//! the model writes itself.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DeriveError, FidelityRuntime};
use crate::engine::{Engine, EngineOptions};

/// The probe: a little of what benchmarks ask, in one paragraph.
pub const PROBE_TEXT: &str = "The quick brown fox jumps over the lazy dog. In July 1969 Apollo 11 landed on the Moon, \
and 12 times 12 is 144. Water boils at 100 degrees Celsius at sea level.\ndef add(a, b):\n    return a + b\n\
Question: Why is the sky blue? Answer:";
/// Tokens of the source's greedy continuation appended to the probe.
pub const GREEDY_TOKENS: usize = 32;

/// A derived model against its source, on [`PROBE_TEXT`] and the source's greedy continuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// What was compared, in words.
    pub method: String,
    pub probe_tokens: usize,
    pub greedy_tokens: usize,
    /// Positions compared (probe and continuation).
    pub positions: usize,
    /// Mean KL(source || derived) of the next-token distributions, in nats.
    pub mean_kl: f64,
    /// Share of positions whose most likely next token is the same.
    pub top1_agreement: f64,
}

/// Mean KL(p_ref || p_test) over positions and the share of positions whose argmax agrees.
pub fn compare_logits(reference: &[Vec<f64>], test: &[Vec<f32>]) -> (f64, f64) {
    assert_eq!(reference.len(), test.len());
    let log_softmax = |v: Vec<f64>| {
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        v.into_iter().map(|x| x - lse).collect::<Vec<f64>>()
    };
    let argmax = |v: &[f64]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    let (mut kl, mut agree) = (0.0, 0usize);
    for (r, t) in reference.iter().zip(test) {
        let lp = log_softmax(r.clone());
        let lq = log_softmax(t.iter().map(|v| f64::from(*v)).collect());
        kl += lp.iter().zip(&lq).map(|(p, q)| p.exp() * (p - q)).sum::<f64>();
        agree += usize::from(argmax(&lp) == argmax(&lq));
    }
    (kl / reference.len() as f64, agree as f64 / reference.len() as f64)
}

fn engine(dir: &Path, runtime: &FidelityRuntime) -> Result<Engine, DeriveError> {
    let options = EngineOptions {
        model_dir: dir.to_path_buf(),
        ort_lib: runtime.ort_lib.clone(),
        intra_threads: runtime.threads,
        ..Default::default()
    };
    Engine::load(&options).map_err(|e| DeriveError::Fidelity(format!("loading {}: {e}", dir.display())))
}

/// Logits after each of `tokens`, fed one at a time from an empty cache.
fn stepwise(engine: &mut Engine, tokens: &[u32]) -> Result<Vec<Vec<f32>>, DeriveError> {
    let fail = |e: crate::engine::EngineError| DeriveError::Fidelity(e.to_string());
    engine.reset().map_err(fail)?;
    tokens.iter().map(|&t| engine.forward(&[t]).map_err(fail)).collect()
}

/// The derived model `derived` against its source `source` (see the module's description).
pub fn measure_fidelity(source: &Path, derived: &Path, runtime: &FidelityRuntime) -> Result<Fidelity, DeriveError> {
    // The library the run loads next: one process loads one, so the measurement must not pick another.
    crate::engine::load_runtime(runtime.ort_lib.as_deref(), runtime.gpu)
        .map_err(|e| DeriveError::Fidelity(e.to_string()))?;
    let fail = |e: crate::engine::EngineError| DeriveError::Fidelity(e.to_string());
    let mut source_engine = engine(source, runtime)?;
    let context = source_engine.model_info().context_length;
    let mut tokens = source_engine.tokenize(PROBE_TEXT, true).map_err(fail)?;
    tokens.truncate(context.saturating_sub(GREEDY_TOKENS + 1).max(1));
    let probe_tokens = tokens.len();
    let mut reference = stepwise(&mut source_engine, &tokens)?;
    for _ in 0..GREEDY_TOKENS {
        let last = reference.last().expect("the probe has tokens");
        let next = (0..last.len()).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap_or(0) as u32;
        tokens.push(next);
        reference.push(source_engine.forward(&[next]).map_err(fail)?);
    }
    drop(source_engine);
    let test = stepwise(&mut engine(derived, runtime)?, &tokens)?;
    let reference: Vec<Vec<f64>> = reference.into_iter().map(|row| row.into_iter().map(f64::from).collect()).collect();
    let (mean_kl, top1_agreement) = compare_logits(&reference, &test);
    Ok(Fidelity {
        method: "next-token distributions of the derived model against its source, fed the same tokens one at a \
                 time: the probe text, then the source's greedy continuation (teacher-forced)"
            .into(),
        probe_tokens,
        greedy_tokens: tokens.len() - probe_tokens,
        positions: tokens.len(),
        mean_kl,
        top1_agreement,
    })
}
