//! What a LoRA adapter costs and changes against its base model: inference overhead per token, end to end
//! and to the first token (in %), its size in parameters and on disk, and the accuracy delta with the paired
//! test of `stats::paired`. Computed from two results folders: the adapter run and its base run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Distribution;
use super::paired::{self, MetricDifference};
use crate::files::human_bytes;
use crate::results::folder::RunFolder;

/// An adapter run against its base run (same model, settings and samples, no adapter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterComparison {
    /// The base run's results folder.
    pub base_dir: PathBuf,
    /// The base run was found in the baseline cache rather than run for this comparison.
    pub base_reused: bool,
    /// The key base and adapter run share (`crate::baseline::run_key`).
    pub run_key: String,
    /// Mean inter-token latency with the adapter over without, minus one, in %: the per-token cost. The
    /// cleanest figure: it does not depend on how many tokens either run generated.
    pub itl_overhead_pct: Option<f64>,
    /// Mean end-to-end sample latency, in %. The adapter changes outputs, so their lengths can differ: read
    /// this with the per-token figure.
    pub e2e_overhead_pct: Option<f64>,
    /// Mean time to first token (prefill on the same prompts), in %.
    pub ttft_overhead_pct: Option<f64>,
    pub base_itl_ms: Option<f64>,
    pub adapter_itl_ms: Option<f64>,
    pub adapter_parameters: u64,
    /// Adapter parameters over the base model's, when the model folder records its parameter count.
    pub parameter_share: Option<f64>,
    pub adapter_size_bytes: u64,
    /// Each metric with the adapter (b) against the base (a), paired on shared samples.
    pub accuracy: Vec<MetricDifference>,
    /// One line: "adapter adds 3.2% per token, 2.9% end to end, 1.0% to the first token; ...".
    pub verdict: String,
}

impl AdapterComparison {
    /// `None` when the adapter run records no adapter.
    pub fn of(base: &RunFolder, adapter: &RunFolder, base_reused: bool, run_key: String) -> Option<Self> {
        let info = adapter.summary.adapter.as_ref()?;
        let (rb, ra) = (&base.summary.results, &adapter.summary.results);
        let overhead = |b: &Option<Distribution>, a: &Option<Distribution>| match (b, a) {
            (Some(b), Some(a)) if b.mean > 0.0 => Some((a.mean / b.mean - 1.0) * 100.0),
            _ => None,
        };
        let comparison = paired::compare(base, adapter);
        let mut result = AdapterComparison {
            base_dir: base.dir.clone(),
            base_reused,
            run_key,
            itl_overhead_pct: overhead(&rb.itl_ms, &ra.itl_ms),
            e2e_overhead_pct: overhead(&rb.e2e_ms, &ra.e2e_ms),
            ttft_overhead_pct: overhead(&rb.ttft_ms, &ra.ttft_ms),
            base_itl_ms: rb.itl_ms.as_ref().map(|d| d.mean),
            adapter_itl_ms: ra.itl_ms.as_ref().map(|d| d.mean),
            adapter_parameters: info.parameters,
            parameter_share: info.parameter_share,
            adapter_size_bytes: info.size_bytes,
            accuracy: comparison.metrics,
            verdict: String::new(),
        };
        result.verdict = result.describe();
        Some(result)
    }

    fn describe(&self) -> String {
        let pct = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| format!("{v:+.1}%"));
        let mut line = format!(
            "adapter overhead {} per token, {} end to end, {} to the first token",
            pct(self.itl_overhead_pct),
            pct(self.e2e_overhead_pct),
            pct(self.ttft_overhead_pct)
        );
        let share = self.parameter_share.map_or(String::new(), |s| format!(" ({:.3}% of the model)", s * 100.0));
        line.push_str(&format!(
            "; {} parameters{share}, {} on disk",
            self.adapter_parameters,
            human_bytes(self.adapter_size_bytes)
        ));
        if let Some(first) = self.accuracy.first() {
            let delta = if first.binary {
                format!("{:+.1} points", first.difference * 100.0)
            } else {
                format!("{:+.4}", first.difference)
            };
            line.push_str(&format!(
                "; {} {delta} ({} {}, {})",
                first.metric,
                first.test.name(),
                paired::format_p(first.p_value),
                if first.significant { "significant" } else { "not significant" }
            ));
        }
        line.push_str(if self.base_reused { "; base run reused from the cache" } else { "; base run made for this" });
        line
    }
}
