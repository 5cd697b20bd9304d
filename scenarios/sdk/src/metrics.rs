//! Declaring metrics and building scores: [`binary`] and [`mean`] make the `metric-info` a scenario's
//! metadata lists, [`ScoreBuilder`] the `score` of one output, and [`macro_average`] the usual scenario-level
//! figure of benchmarks with subsets (the mean over subsets of each subset's mean).

use std::collections::BTreeMap;

use crate::{Aggregation, Metric, MetricInfo, Score, ScoredSample};

/// A 0/1 metric where 1 is good (accuracy, answered), averaged over samples.
pub fn binary(name: &str, description: &str) -> MetricInfo {
    MetricInfo {
        name: name.to_string(),
        description: description.to_string(),
        higher_is_better: true,
        aggregation: Aggregation::Mean,
        binary: true,
    }
}

/// A continuous metric where higher is better (F1, ROUGE), averaged over samples.
pub fn mean(name: &str, description: &str) -> MetricInfo {
    MetricInfo { binary: false, ..binary(name, description) }
}

/// Builds a [`Score`].
#[derive(Debug, Default, Clone)]
pub struct ScoreBuilder {
    metrics: Vec<Metric>,
    extracted: Option<String>,
}

impl ScoreBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A 0/1 metric.
    pub fn flag(mut self, name: &str, value: bool) -> Self {
        self.metrics.push(Metric { name: name.to_string(), value: if value { 1.0 } else { 0.0 } });
        self
    }

    pub fn value(mut self, name: &str, value: f64) -> Self {
        self.metrics.push(Metric { name: name.to_string(), value });
        self
    }

    /// The answer the scenario read from the output, recorded next to it in the results.
    pub fn extracted(mut self, extracted: Option<String>) -> Self {
        self.extracted = extracted;
        self
    }

    pub fn build(self) -> Score {
        Score { metrics: self.metrics, extracted: self.extracted }
    }
}

/// The value of metric `name` in a list, if present.
pub fn value_of(metrics: &[Metric], name: &str) -> Option<f64> {
    metrics.iter().find(|m| m.name == name).map(|m| m.value)
}

/// For each of `names`: `NAME/SUBSET` (each subset's mean) and `NAME_macro` (the mean of those), when the
/// samples span more than one subset; nothing otherwise (the host already reports the plain mean).
pub fn macro_average(samples: &[ScoredSample], names: &[&str]) -> Vec<Metric> {
    let mut out = Vec::new();
    for name in names {
        let mut by_subset: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for sample in samples {
            if let (Some(subset), Some(value)) = (sample.subset.as_deref(), value_of(&sample.metrics, name)) {
                let entry = by_subset.entry(subset).or_default();
                entry.0 += value;
                entry.1 += 1;
            }
        }
        if by_subset.len() < 2 {
            continue;
        }
        let means: Vec<(&str, f64)> = by_subset.iter().map(|(s, (sum, n))| (*s, sum / *n as f64)).collect();
        for (subset, value) in &means {
            out.push(Metric { name: format!("{name}/{subset}"), value: *value });
        }
        let macro_mean = means.iter().map(|(_, v)| v).sum::<f64>() / means.len() as f64;
        out.push(Metric { name: format!("{name}_macro"), value: macro_mean });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(subset: &str, accuracy: f64) -> ScoredSample {
        ScoredSample {
            id: "x".into(),
            subset: Some(subset.into()),
            metrics: vec![Metric { name: "accuracy".into(), value: accuracy }],
        }
    }

    #[test]
    fn builds_scores_and_infos() {
        let score = ScoreBuilder::new().flag("accuracy", true).value("f1", 0.5).extracted(Some("B".into())).build();
        assert_eq!(value_of(&score.metrics, "accuracy"), Some(1.0));
        assert_eq!(value_of(&score.metrics, "f1"), Some(0.5));
        assert_eq!(score.extracted.as_deref(), Some("B"));
        assert!(binary("accuracy", "").binary && !mean("f1", "").binary);
    }

    #[test]
    fn macro_average_weights_subsets_equally() {
        let samples = [scored("a", 1.0), scored("a", 1.0), scored("a", 1.0), scored("b", 0.0)];
        let metrics = macro_average(&samples, &["accuracy"]);
        assert_eq!(value_of(&metrics, "accuracy/a"), Some(1.0));
        assert_eq!(value_of(&metrics, "accuracy/b"), Some(0.0));
        assert_eq!(value_of(&metrics, "accuracy_macro"), Some(0.5));
        assert!(macro_average(&samples[..3], &["accuracy"]).is_empty());
    }
}
