//! Everything between "here is a scenario file" and "here are the samples to run", shared by
//! `runner exec` and `runner score`: loading the component (through the precompiled cache), checking the
//! user's subset / scoring / few-shot choices against what the scenario declares, `configure`, finding and
//! decoding the dataset (a file, a Hugging Face dataset, or the embedded sample), `parse-dataset`, and
//! the host-side subset filter.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::datasets::source::{LoadedData, hub_dataset};
use crate::datasets::{DataSource, file_name};
use crate::scenario::{
    ComponentCache, Metadata, NamedFile, Options, Sample, Scenario, ScenarioError, ScenarioLimits, ScoringModes,
};

/// How a run's outputs are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoringMode {
    /// The model generates an answer and the scenario reads it.
    Generate,
    /// The host compares the log-likelihood of each of the sample's choices.
    Loglikelihood,
}

impl ScoringMode {
    fn flag(self) -> ScoringModes {
        match self {
            ScoringMode::Generate => ScoringModes::GENERATE,
            ScoringMode::Loglikelihood => ScoringModes::LOGLIKELIHOOD,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ScoringMode::Generate => "generate",
            ScoringMode::Loglikelihood => "loglikelihood",
        }
    }
}

/// What the user chose about the scenario (as opposed to the model or generation).
#[derive(Debug, Clone, Default)]
pub struct ScenarioChoices {
    /// `--subset`, repeatable; empty means the scenario's default selection.
    pub subsets: Vec<String>,
    /// `--few-shot`; the scenario's default when absent.
    pub few_shot: Option<u32>,
    /// `--scoring`; generation when the scenario supports it, else log-likelihood.
    pub scoring: Option<ScoringMode>,
    /// `--task FILE`.
    pub task_file: Option<PathBuf>,
    /// `--scenario-arg KEY=VALUE`.
    pub args: Vec<(String, String)>,
    /// The run's seed, from which the scenario's own seed and the few-shot order derive.
    pub seed: u64,
}

/// A configured scenario.
#[derive(Debug)]
pub struct ReadyScenario {
    pub scenario: Scenario,
    pub options: Options,
    /// Few-shot examples per prompt.
    pub few_shot: usize,
    pub scoring: ScoringMode,
}

/// Loads the component, through the precompiled-component cache unless `cache` is None.
pub fn load_scenario(path: &Path, limits: ScenarioLimits, cache: Option<&ComponentCache>) -> Result<Scenario> {
    if !path.exists() {
        bail!("scenario {} does not exist; the built-in scenarios are built by `cargo xtask setup`", path.display());
    }
    let scenario = Scenario::load_cached(path, limits, cache).map_err(|e| anyhow!("{e}"))?;
    tracing::info!(
        scenario = scenario.metadata().name,
        cache = ?scenario.load_report().cache,
        "loaded in {:.1} ms",
        scenario.load_report().millis
    );
    Ok(scenario)
}

/// Checks the user's choices against the scenario's metadata and gives them to `configure`.
pub fn configure(mut scenario: Scenario, choices: &ScenarioChoices) -> Result<ReadyScenario> {
    let metadata = scenario.metadata().clone();
    check_subsets(&metadata, &choices.subsets)?;
    let scoring = scoring_mode(&metadata, choices.scoring)?;
    let task_file = match &choices.task_file {
        None => None,
        Some(path) => Some(NamedFile {
            name: file_name(path),
            data: std::fs::read(path).with_context(|| format!("--task {}: cannot read the file", path.display()))?,
        }),
    };
    let options = Options {
        subsets: choices.subsets.clone(),
        few_shot: choices.few_shot,
        scoring_mode: scoring.flag(),
        seed: choices.seed,
        task_file,
        args: choices.args.clone(),
    };
    scenario.configure(options.clone()).map_err(|e| match e {
        ScenarioError::Config { .. } => anyhow!("{e}"),
        other => anyhow!("scenario {}: `configure` failed: {other}", metadata.name),
    })?;
    let few_shot = choices.few_shot.unwrap_or(metadata.default_few_shot) as usize;
    Ok(ReadyScenario { scenario, options, few_shot, scoring })
}

fn check_subsets(metadata: &Metadata, chosen: &[String]) -> Result<()> {
    for subset in chosen {
        if metadata.subsets.iter().any(|s| &s.name == subset) {
            continue;
        }
        if metadata.subsets.is_empty() {
            bail!("--subset {subset}: scenario {} has no subsets", metadata.name);
        }
        let available: Vec<&str> = metadata.subsets.iter().map(|s| s.name.as_str()).collect();
        bail!("--subset {subset}: scenario {} has no such subset; it has: {}", metadata.name, available.join(", "));
    }
    Ok(())
}

fn scoring_mode(metadata: &Metadata, chosen: Option<ScoringMode>) -> Result<ScoringMode> {
    let supported = metadata.scoring_mode_names();
    match chosen {
        Some(mode) if metadata.scoring_modes.contains(mode.flag()) => Ok(mode),
        Some(mode) => {
            bail!("--scoring {}: scenario {} supports only {}", mode.name(), metadata.name, supported.join(" and "))
        }
        None if metadata.scoring_modes.contains(ScoringModes::GENERATE) => Ok(ScoringMode::Generate),
        None => Ok(ScoringMode::Loglikelihood),
    }
}

/// The dataset a run draws from, parsed into samples.
#[derive(Debug)]
pub struct Dataset {
    /// "file", "hf" or "embedded".
    pub source: &'static str,
    pub label: String,
    pub hash: String,
    pub samples: Vec<Sample>,
}

/// Reads the dataset `data` names (the embedded sample, or the scenario's default Hub source when it has
/// none, when `data` is absent) and parses it with the scenario. Samples outside the chosen subsets are
/// dropped, in case the scenario kept them.
pub fn load_dataset(ready: &mut ReadyScenario, data: Option<&DataSource>, split: Option<&str>) -> Result<Dataset> {
    let scenario = &mut ready.scenario;
    let metadata = scenario.metadata().clone();
    let loaded = match data {
        Some(DataSource::File(path)) => LoadedData::file(path).map_err(|e| anyhow!("{e}"))?,
        Some(DataSource::Hub(user)) => {
            let hub = hub_dataset(Some(user), metadata.default_source.as_ref(), split).expect("a user dataset");
            crate::datasets::source::load_hub(&hub).map_err(|e| anyhow!("{e}"))?
        }
        Some(DataSource::ScenarioDefault) => {
            let hub = hub_dataset(None, metadata.default_source.as_ref(), split).ok_or_else(|| {
                anyhow!(
                    "--data hf: scenario {} names no default Hugging Face dataset; give hf:OWNER/NAME",
                    metadata.name
                )
            })?;
            crate::datasets::source::load_hub(&hub).map_err(|e| anyhow!("{e}"))?
        }
        None => match scenario.embedded_dataset().map_err(|e| anyhow!("scenario {}: {e}", metadata.name))? {
            Some(embedded) => LoadedData::bytes("embedded", embedded.label, &embedded.file_name, None, embedded.data)
                .map_err(|e| anyhow!("the embedded dataset of scenario {}: {e}", metadata.name))?,
            None => match hub_dataset(None, metadata.default_source.as_ref(), split) {
                Some(hub) => crate::datasets::source::load_hub(&hub).map_err(|e| anyhow!("{e}"))?,
                None => bail!(
                    "scenario {} carries no dataset of its own and names no default source: pass one with --data FILE",
                    metadata.name
                ),
            },
        },
    };
    if split.is_some() && matches!(data, Some(DataSource::File(_))) {
        tracing::warn!("--split applies to Hugging Face datasets; ignored for a local file");
    }
    let samples = scenario.parse_dataset(&loaded.info, &loaded.input).map_err(|e| match e {
        ScenarioError::Dataset { file, row, field, message, .. } => {
            let location = row.and_then(|r| loaded.decoded.as_ref().and_then(|d| d.locate(r)));
            let error = ScenarioError::Dataset { file, row, location, field, message };
            if loaded.source == "embedded" {
                anyhow!("the embedded dataset of scenario {}: {error}", metadata.name)
            } else {
                anyhow!("dataset {}: {error}", loaded.label)
            }
        }
        other => anyhow!("scenario {}: {other}", metadata.name),
    })?;
    let mut samples = samples;
    if !ready.options.subsets.is_empty() {
        samples.retain(|s| s.subset.as_ref().is_some_and(|subset| ready.options.subsets.contains(subset)));
    }
    if samples.is_empty() {
        let selection = if ready.options.subsets.is_empty() {
            String::new()
        } else {
            format!(" in the chosen subsets ({})", ready.options.subsets.join(", "))
        };
        bail!("dataset {} holds no samples{selection}", loaded.label);
    }
    Ok(Dataset { source: loaded.source, label: loaded.label, hash: loaded.hash, samples })
}
