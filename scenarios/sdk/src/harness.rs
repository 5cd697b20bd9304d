//! Running a scenario natively in unit tests, the way the host drives it: `describe`, `configure`, decode
//! its embedded dataset (or test data in a published format) like the host and `parse-dataset`, keep the
//! selected subsets' samples as the host does (the scenario returns every subset's), `build-prompt` with
//! few-shot examples, `score`, `aggregate`. Failures panic with the scenario's own error, so a test reads
//! as a few lines. Few-shot examples are the first ones of the same subset in
//! dataset order (the host picks them in a seeded order). Scenarios keep their configuration in
//! thread-local state, and Rust runs each test on its own thread, so tests do not see each other's options.

use std::marker::PhantomData;

use crate::{
    ChoiceLikelihood, ConfigError, DatasetError, DatasetInfo, DatasetInput, Guest, Metadata, Metric, ModelOutput,
    NamedFile, Options, Prompt, Record, Request, Role, Sample, Score, ScoredSample, ScoringMode, ScoringModes, decode,
};

/// A configured scenario `S`.
pub struct Harness<S: Guest> {
    metadata: Metadata,
    options: Options,
    scenario: PhantomData<S>,
}

/// The options a plain run uses: no subsets, the default few-shot count, generation when supported.
pub fn default_options(metadata: &Metadata) -> Options {
    let scoring_mode = if metadata.scoring_modes.contains(ScoringModes::GENERATE) {
        ScoringMode::Generate
    } else {
        ScoringMode::Loglikelihood
    };
    Options { subsets: Vec::new(), few_shot: None, scoring_mode, seed: 0, task_file: None, args: Vec::new() }
}

/// A task file for [`Options::task_file`].
pub fn task_file(name: &str, text: &str) -> NamedFile {
    NamedFile { name: name.to_string(), data: text.as_bytes().to_vec() }
}

impl<S: Guest> Default for Harness<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Guest> Harness<S> {
    /// The scenario configured with [`default_options`]; panics if it refuses them.
    pub fn new() -> Self {
        let metadata = S::describe();
        let options = default_options(&metadata);
        Self::with_options(options).unwrap_or_else(|e| panic!("configure refused the default options: {e:?}"))
    }

    /// The scenario configured with `options`, or the scenario's `config-error`.
    pub fn with_options(options: Options) -> Result<Self, ConfigError> {
        let metadata = S::describe();
        S::configure(options.clone())?;
        Ok(Harness { metadata, options, scenario: PhantomData })
    }

    /// The scenario configured with the default options changed by `change`.
    pub fn configured(change: impl FnOnce(&mut Options)) -> Result<Self, ConfigError> {
        let mut options = default_options(&S::describe());
        change(&mut options);
        Self::with_options(options)
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The embedded dataset's samples of the selected subsets; panics when there is none or it does not parse.
    pub fn embedded(&self) -> Vec<Sample> {
        let embedded = S::embedded_dataset().expect("the scenario carries no embedded dataset");
        assert!(!embedded.label.is_empty(), "the embedded dataset has no label");
        self.parse(&embedded.file_name, &embedded.data)
            .unwrap_or_else(|e| panic!("the embedded dataset {} does not parse: {e:?}", embedded.file_name))
    }

    /// Decodes `data` like the host (by `file_name`'s extension) and parses it; the selected subsets'
    /// samples, as a run sees them.
    pub fn parse(&self, file_name: &str, data: &[u8]) -> Result<Vec<Sample>, DatasetError> {
        Ok(self.selected(self.parse_every(file_name, data)?))
    }

    /// What `parse-dataset` itself returns for `data` decoded like the host: every subset's samples, the
    /// ones a run does not select included.
    pub fn parse_every(&self, file_name: &str, data: &[u8]) -> Result<Vec<Sample>, DatasetError> {
        let records = decode::decode(file_name, data)?;
        let info = DatasetInfo { name: file_name.to_string(), subset: None };
        parse_checked::<S>(info, DatasetInput::Records(records))
    }

    /// Parses records as if the host had decoded them from `name` (a Parquet file, a Hub split...); the
    /// selected subsets' samples, as a run sees them.
    pub fn parse_records(
        &self,
        name: &str,
        subset: Option<&str>,
        records: Vec<Record>,
    ) -> Result<Vec<Sample>, DatasetError> {
        let info = DatasetInfo { name: name.to_string(), subset: subset.map(str::to_string) };
        Ok(self.selected(parse_checked::<S>(info, DatasetInput::Records(records))?))
    }

    /// The samples of the selected subsets (all when none is selected): the host's filter, which keeps a
    /// sample without a subset only when no subset is selected.
    pub fn selected(&self, mut samples: Vec<Sample>) -> Vec<Sample> {
        let selected = &self.options.subsets;
        if !selected.is_empty() {
            samples.retain(|s| s.subset.as_ref().is_some_and(|subset| selected.contains(subset)));
        }
        samples
    }

    /// Parses bytes the host did not decode (an unknown extension); the selected subsets' samples.
    pub fn parse_raw(&self, name: &str, data: &[u8]) -> Result<Vec<Sample>, DatasetError> {
        let info = DatasetInfo { name: name.to_string(), subset: None };
        Ok(self.selected(S::parse_dataset(info, DatasetInput::Raw(data.to_vec()))?))
    }

    /// The few-shot examples the host would pass for `samples[index]`: same subset, not itself.
    pub fn examples_for(&self, samples: &[Sample], index: usize) -> Vec<Sample> {
        let wanted = self.options.few_shot.unwrap_or(self.metadata.default_few_shot) as usize;
        samples
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != index && s.subset == samples[index].subset)
            .map(|(_, s)| s.clone())
            .take(wanted)
            .collect()
    }

    /// The request for `samples[index]` with its few-shot examples; panics on a scenario error or an
    /// empty prompt (the host refuses those too).
    pub fn request(&self, samples: &[Sample], index: usize) -> Request {
        let examples = self.examples_for(samples, index);
        let request = S::build_prompt(samples[index].clone(), examples)
            .unwrap_or_else(|e| panic!("build-prompt failed for sample {}: {e}", samples[index].id));
        assert!(!prompt_text(&request.prompt).trim().is_empty(), "empty prompt for sample {}", samples[index].id);
        request
    }

    /// The prompt of `samples[index]` as one text (chat messages as `role: content` lines).
    pub fn prompt(&self, samples: &[Sample], index: usize) -> String {
        prompt_text(&self.request(samples, index).prompt)
    }

    /// Scores a generated output; panics on a scenario error.
    pub fn score(&self, sample: &Sample, output: &str) -> Score {
        S::score(sample.clone(), ModelOutput { text: output.to_string(), choices: Vec::new() })
            .unwrap_or_else(|e| panic!("score failed for sample {}: {e}", sample.id))
    }

    /// Scores a log-likelihood run: one log-probability per choice (one token each, not greedy).
    pub fn score_choices(&self, sample: &Sample, logprobs: &[f64]) -> Score {
        let choices = logprobs.iter().map(|&logprob| ChoiceLikelihood { logprob, tokens: 1, greedy: false }).collect();
        S::score(sample.clone(), ModelOutput { text: String::new(), choices })
            .unwrap_or_else(|e| panic!("score failed for sample {}: {e}", sample.id))
    }

    /// Aggregates scored samples; panics on a scenario error.
    pub fn aggregate(&self, scored: &[(Sample, Score)]) -> Vec<Metric> {
        let samples = scored
            .iter()
            .map(|(sample, score)| ScoredSample {
                id: sample.id.clone(),
                subset: sample.subset.clone(),
                metrics: score.metrics.clone(),
            })
            .collect();
        S::aggregate(samples).unwrap_or_else(|e| panic!("aggregate failed: {e}"))
    }

    /// Asserts that every metric a score reports is declared in the metadata.
    pub fn assert_declared(&self, score: &Score) {
        for metric in &score.metrics {
            assert!(
                self.metadata.metrics.iter().any(|m| m.name == metric.name),
                "metric {} is not declared in describe()",
                metric.name
            );
        }
    }
}

/// The value of metric `name` in a score; panics when the score lacks it.
pub fn metric(score: &Score, name: &str) -> f64 {
    crate::metrics::value_of(&score.metrics, name)
        .unwrap_or_else(|| panic!("the score has no metric {name}: {:?}", score.metrics))
}

/// A prompt as one text: text prompts as they are, chat messages as `role: content` lines.
pub fn prompt_text(prompt: &Prompt) -> String {
    match prompt {
        Prompt::Text(text) => text.clone(),
        Prompt::Chat(messages) => messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                format!("{role}: {}", m.content)
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The value of field `name` of a sample; panics when absent.
pub fn field<'a>(sample: &'a Sample, name: &str) -> &'a str {
    crate::records::field(sample, name).unwrap_or_else(|e| panic!("{e}"))
}

/// `parse-dataset`'s samples, their ids checked.
fn parse_checked<S: Guest>(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
    let samples = S::parse_dataset(info, input)?;
    check_samples(&samples);
    Ok(samples)
}

/// Sample ids must be unique and non-empty: the host keys results by them.
fn check_samples(samples: &[Sample]) {
    let mut ids = std::collections::BTreeSet::new();
    for sample in samples {
        assert!(!sample.id.is_empty(), "a sample has an empty id");
        assert!(ids.insert(sample.id.as_str()), "sample id {} appears twice", sample.id);
    }
}
