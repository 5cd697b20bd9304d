//! What a layered [`RunConfig`] means for the run: each key's typed, checked value with the built-in default
//! filled in. `runner exec` keeps a run's settings in its `RunConfig` alone ([`crate::exec::ExecOptions::run`]);
//! the engine and the scenario get their values from here, so a setting is defined once, as a run key, and
//! read through one accessor. Errors start with the flag's name (`--temperature …`): the command line and an
//! experiment file set the same keys.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use super::RunConfig;
use crate::datasets::DataSource;
use crate::derive::FidelityRuntime;
use crate::engine::{ExecutionProvider, GenerationSettings, PromptOptions, Sampling, check_repetition_penalty};
use crate::experiment::model::resolve_model;
use crate::prepare::{ScenarioChoices, ScoringMode};
use crate::scenario::Metadata;

impl RunConfig {
    /// Checks every key whose value can be wrong only once layered (sampling ranges, an empty system prompt,
    /// the scoring mode, the data source), so a run is refused before it starts rather than midway.
    pub fn check(&self) -> Result<()> {
        self.sampling()?;
        self.repetition_penalty()?;
        self.prompt_options()?;
        self.scoring_mode()?;
        self.data_source()?;
        self.session_threads()?;
        if self.workers() > 1 && self.execution_provider() != ExecutionProvider::Cpu {
            bail!(
                "--workers runs several CPU sessions side by side; on {} use --batch-size instead",
                self.execution_provider()
            );
        }
        if self.scenario.is_none() {
            bail!("no scenario given");
        }
        Ok(())
    }

    /// Sessions scoring side by side (1: one session).
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or(1)
    }

    /// Each session's intra-op threads: `threads` as given for one session; with workers, each one's share of
    /// `threads` (of the logical cores when `threads` is unset), so the run uses the cores it was given.
    pub fn session_threads(&self) -> Result<Option<usize>> {
        let workers = self.workers();
        if workers == 0 {
            bail!("--workers must be at least 1");
        }
        if workers == 1 {
            return Ok(self.threads);
        }
        let threads = self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads < workers {
            bail!("--workers {workers} needs at least one thread each; --threads is {threads}");
        }
        Ok(Some(threads / workers))
    }

    /// How tokens are chosen when a sampling key is set; `None` leaves it to the scenario's declared
    /// temperature, else greedy (decided by [`RunConfig::generation`] once the scenario is loaded).
    pub fn sampling(&self) -> Result<Option<Sampling>> {
        match (self.temperature, self.top_k, self.top_p) {
            (None, None, None) => Ok(None),
            (temperature, top_k, top_p) => {
                Ok(Some(Sampling::new(temperature, top_k, top_p).map_err(|e| anyhow!("--{e}"))?))
            }
        }
    }

    /// 1 is off.
    pub fn repetition_penalty(&self) -> Result<f32> {
        check_repetition_penalty(self.repetition_penalty.unwrap_or(1.0)).map_err(|e| anyhow!("--{e}"))
    }

    /// Seeds sampling, the scenario and seeded few-shot examples.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    pub fn ignore_eos(&self) -> bool {
        self.ignore_eos.unwrap_or(false)
    }

    /// Samples generated (or scored) together; 1 is one at a time.
    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(1).max(1)
    }

    /// Samples run first and discarded.
    pub fn warmup(&self) -> usize {
        self.warmup.unwrap_or(0)
    }

    /// Passes over the selection, at least 1.
    pub fn repeat(&self) -> usize {
        self.repeat.unwrap_or(1).max(1)
    }

    pub fn execution_provider(&self) -> ExecutionProvider {
        self.ep.unwrap_or_default()
    }

    /// The system prompt and whether chat prompts go through the chat template.
    pub fn prompt_options(&self) -> Result<PromptOptions> {
        if self.system_prompt.as_deref().is_some_and(|s| s.trim().is_empty()) {
            bail!("--system-prompt is empty; leave it out for no system prompt");
        }
        Ok(PromptOptions {
            system_prompt: self.system_prompt.clone(),
            no_chat_template: self.chat_template == Some(false),
        })
    }

    /// The scoring mode asked for; `None` takes the scenario's default.
    pub fn scoring_mode(&self) -> Result<Option<ScoringMode>> {
        self.scoring
            .as_deref()
            .map(|name| {
                <ScoringMode as clap::ValueEnum>::from_str(name, true)
                    .map_err(|_| anyhow!("--scoring: expected generate or loglikelihood, got {name:?}"))
            })
            .transpose()
    }

    /// The dataset; `None` is the scenario's embedded sample (or its default source).
    pub fn data_source(&self) -> Result<Option<DataSource>> {
        self.data.as_deref().map(DataSource::parse).transpose().map_err(|e| anyhow!("--data: {e}"))
    }

    /// The model folder `model` and `precision` name (the default model's import of that precision, a
    /// `.gguf` imported on demand, a precision subfolder, a precision derived from a float folder); `None` is the
    /// default model as installed. `ort_lib` is the run's `--ort-lib`: with the run's provider it says which ONNX
    /// Runtime library measures a derived model's fidelity.
    pub fn model_folder(&self, ort_lib: Option<&Path>) -> Result<Option<PathBuf>> {
        let runtime = FidelityRuntime {
            ort_lib: ort_lib.map(Path::to_path_buf),
            gpu: self.ep.is_some_and(|ep| ep.is_gpu()),
            threads: self.threads,
        };
        Ok(resolve_model(self.model.as_deref(), self.precision, &runtime)?)
    }

    /// What the scenario is told: subsets, few-shot examples, scoring mode and seed, with the task file and
    /// `--scenario-arg`s, which are not run keys.
    pub fn scenario_choices(&self, task_file: Option<PathBuf>, args: Vec<(String, String)>) -> Result<ScenarioChoices> {
        Ok(ScenarioChoices {
            subsets: self.subsets.clone().unwrap_or_default(),
            few_shot: self.few_shot,
            few_shot_data: self.few_shot_data.clone(),
            few_shot_order: self.few_shot_order,
            scoring: self.scoring_mode()?,
            task_file,
            args,
            seed: self.seed(),
        })
    }

    /// The generation settings for a scenario: the keys set here, else the scenario's declared defaults
    /// (token budget, stop strings, temperature), else greedy.
    pub fn generation(&self, scenario: &Metadata) -> Result<GenerationSettings> {
        let sampling = match (self.sampling()?, scenario.defaults.temperature) {
            (Some(sampling), _) => sampling,
            (None, Some(temperature)) => Sampling::new(Some(temperature), None, None)
                .map_err(|e| anyhow!("scenario {} declares {e}", scenario.name))?,
            (None, None) => Sampling::ArgMax,
        };
        Ok(GenerationSettings {
            max_new_tokens: self.max_new_tokens.unwrap_or(scenario.defaults.max_new_tokens as usize),
            stop: self.stop.clone().unwrap_or_else(|| scenario.defaults.stop.clone()),
            sampling,
            seed: self.seed(),
            repetition_penalty: self.repetition_penalty()?,
            ignore_eos: self.ignore_eos(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_keys_take_the_built_in_defaults() {
        let config = RunConfig::default();
        assert_eq!((config.seed(), config.batch_size(), config.warmup(), config.repeat()), (0, 1, 0, 1));
        assert!(!config.ignore_eos());
        assert_eq!(config.repetition_penalty().unwrap(), 1.0);
        assert!(config.sampling().unwrap().is_none());
        assert_eq!(config.execution_provider(), ExecutionProvider::Cpu);
    }

    #[test]
    fn bad_values_are_named_by_their_flag() {
        let config = RunConfig { temperature: Some(-1.0), ..Default::default() };
        assert!(config.sampling().unwrap_err().to_string().starts_with("--temperature"));
        let config = RunConfig { system_prompt: Some(" ".into()), ..Default::default() };
        assert!(config.prompt_options().unwrap_err().to_string().starts_with("--system-prompt"));
        let config = RunConfig { scoring: Some("vibes".into()), ..Default::default() };
        assert!(config.scoring_mode().unwrap_err().to_string().starts_with("--scoring"));
        let config = RunConfig { repetition_penalty: Some(0.0), ..Default::default() };
        assert!(config.repetition_penalty().unwrap_err().to_string().starts_with("--repetition"));
        let config = RunConfig { scenario: Some("x.wasm".into()), ..Default::default() };
        assert!(config.check().is_ok());
    }
}
