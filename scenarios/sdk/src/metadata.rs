//! Writing a scenario's `describe` and `embedded-dataset` without their boilerplate: [`MetadataBuilder`]
//! fills what most scenarios leave at the usual values (generation scoring, no subsets, zero-shot, no
//! temperature, no pinned revision) and takes the rest in named steps; [`embedded`] wraps a bundled sample.
//! `config::check` then refuses options against the same metadata, so declared and accepted agree.

use crate::{EmbeddedDataset, GenerationDefaults, HfDataset, Metadata, MetricInfo, ScoringModes, SubsetInfo};

/// Builds a scenario's [`Metadata`]. Until set: scoring by generation, 256 new tokens with no stop
/// sequence, no subsets, no default source, no few-shot examples.
#[derive(Debug, Clone)]
pub struct MetadataBuilder {
    metadata: Metadata,
}

impl MetadataBuilder {
    /// A scenario's name, version (its crate's: `env!("CARGO_PKG_VERSION")`) and one-line description.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        MetadataBuilder {
            metadata: Metadata {
                name: name.to_string(),
                version: version.to_string(),
                description: description.to_string(),
                defaults: GenerationDefaults { max_new_tokens: 256, stop: Vec::new(), temperature: None },
                metrics: Vec::new(),
                subsets: Vec::new(),
                default_source: None,
                scoring_modes: ScoringModes::GENERATE,
                default_few_shot: 0,
                headerless_columns: Vec::new(),
            },
        }
    }

    /// Greedy generation of at most `max_new_tokens`, ending early at any of `stop`.
    pub fn generation(mut self, max_new_tokens: u32, stop: &[&str]) -> Self {
        self.metadata.defaults.max_new_tokens = max_new_tokens;
        self.metadata.defaults.stop = stop.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The sampling temperature the benchmark is defined with (none: greedy); the host samples with it
    /// unless the user chooses (`--temperature`, `--top-k`, `--top-p`).
    pub fn temperature(mut self, temperature: Option<f32>) -> Self {
        self.metadata.defaults.temperature = temperature;
        self
    }

    /// The metrics each score reports (see [`crate::metrics::binary`] and [`crate::metrics::mean`]).
    pub fn metrics(mut self, metrics: impl IntoIterator<Item = MetricInfo>) -> Self {
        self.metadata.metrics.extend(metrics);
        self
    }

    /// The subsets a run may select, as (name, description).
    pub fn subsets<N: Into<String>, D: Into<String>>(mut self, subsets: impl IntoIterator<Item = (N, D)>) -> Self {
        self.metadata.subsets.extend(
            subsets
                .into_iter()
                .map(|(name, description)| SubsetInfo { name: name.into(), description: description.into() }),
        );
        self
    }

    /// The Hugging Face Hub dataset a run without `--data` may fetch: `repo`, its `config`, `split`.
    pub fn hub(mut self, repo: &str, config: Option<&str>, split: &str) -> Self {
        self.metadata.default_source = Some(HfDataset {
            repo: repo.to_string(),
            config: config.map(str::to_string),
            split: split.to_string(),
            revision: None,
        });
        self
    }

    /// Pins the Hub source (set by [`hub`](Self::hub) before) to a revision, such as
    /// `refs/convert/parquet` for a dataset whose main branch holds only a loading script.
    pub fn revision(mut self, revision: &str) -> Self {
        if let Some(source) = self.metadata.default_source.as_mut() {
            source.revision = Some(revision.to_string());
        }
        self
    }

    /// The scoring modes the scenario offers.
    pub fn scoring(mut self, modes: ScoringModes) -> Self {
        self.metadata.scoring_modes = modes;
        self
    }

    /// The few-shot examples a run uses unless `--few-shot` says otherwise.
    pub fn few_shot(mut self, count: u32) -> Self {
        self.metadata.default_few_shot = count;
        self
    }

    /// The columns of the benchmark's original header-less CSV/TSV files, in order (MMLU's
    /// `question, A, B, C, D, answer`): the host reads such files' rows under these names.
    pub fn headerless_columns(mut self, columns: &[&str]) -> Self {
        self.metadata.headerless_columns = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    pub fn build(self) -> Metadata {
        self.metadata
    }
}

/// A bundled sample dataset, decoded by `file_name`'s extension like a `--data` file.
pub fn embedded(label: &str, file_name: &str, data: &[u8]) -> Option<EmbeddedDataset> {
    Some(EmbeddedDataset { label: label.to_string(), file_name: file_name.to_string(), data: data.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{binary, mean};

    #[test]
    fn defaults_are_the_usual_values_and_steps_set_the_rest() {
        let plain = MetadataBuilder::new("s", "1.2.3", "d").build();
        assert_eq!((plain.name.as_str(), plain.version.as_str(), plain.description.as_str()), ("s", "1.2.3", "d"));
        assert_eq!(
            (plain.defaults.max_new_tokens, plain.defaults.stop.len(), plain.defaults.temperature),
            (256, 0, None)
        );
        assert!(plain.scoring_modes == ScoringModes::GENERATE && plain.default_few_shot == 0);
        assert!(plain.metrics.is_empty() && plain.subsets.is_empty() && plain.default_source.is_none());
        let full = MetadataBuilder::new("s", "1", "d")
            .generation(16, &["\n"])
            .metrics([binary("accuracy", "a"), mean("f1", "f")])
            .subsets([("easy", "Easy ones".to_string())])
            .hub("org/data", Some("main"), "test")
            .scoring(ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)
            .few_shot(5)
            .headerless_columns(&["q", "a"])
            .build();
        assert_eq!((full.defaults.max_new_tokens, full.defaults.stop.clone()), (16, vec!["\n".to_string()]));
        assert_eq!(full.metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["accuracy", "f1"]);
        assert_eq!((full.subsets[0].name.as_str(), full.subsets[0].description.as_str()), ("easy", "Easy ones"));
        let source = full.default_source.unwrap();
        assert_eq!(
            (source.repo.as_str(), source.config.as_deref(), source.split.as_str()),
            ("org/data", Some("main"), "test")
        );
        assert!(source.revision.is_none() && full.scoring_modes.contains(ScoringModes::LOGLIKELIHOOD));
        assert_eq!(full.default_few_shot, 5);
        assert_eq!(full.headerless_columns, ["q", "a"]);
        assert!(plain.headerless_columns.is_empty());
        let pinned = MetadataBuilder::new("s", "1", "d").hub("org/data", None, "test").revision("refs/pr/1").build();
        assert_eq!(pinned.default_source.unwrap().revision.as_deref(), Some("refs/pr/1"));
        let sample = embedded("label", "sample.jsonl", b"{}").unwrap();
        assert_eq!(
            (sample.label.as_str(), sample.file_name.as_str(), sample.data.as_slice()),
            ("label", "sample.jsonl", &b"{}"[..])
        );
    }
}
