//! Everything between "here is a scenario file" and "here are the samples to run", shared by
//! `runner exec` and `runner score`: loading the component (through the precompiled cache), checking the
//! user's subset / scoring / few-shot choices against what the scenario declares, `configure`, finding and
//! decoding the dataset (a file, a Hugging Face dataset, or the embedded sample), `parse-dataset`, and
//! the host-side subset filter.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::datasets::source::{LoadedData, hub_dataset};
use crate::datasets::{DataSource, Layout, LoadedFiles, file_name};
use crate::scenario::fewshot::FewShotOrder;
use crate::scenario::{
    ComponentCache, Metadata, NamedFile, Options, Sample, Scenario, ScenarioError, ScenarioLimits,
    ScoringMode as WitScoringMode, ScoringModes,
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

    /// The contract's name for the mode.
    fn wit(self) -> WitScoringMode {
        match self {
            ScoringMode::Generate => WitScoringMode::Generate,
            ScoringMode::Loglikelihood => WitScoringMode::Loglikelihood,
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
    /// `--few-shot-data`: the split examples come from; a `dev` folder beside a `test` folder, else the
    /// evaluated dataset, when absent.
    pub few_shot_data: Option<PathBuf>,
    /// `--few-shot-order`; `first` with a few-shot split, `seeded` without, when absent.
    pub few_shot_order: Option<FewShotOrder>,
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
        scoring_mode: scoring.wit(),
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
    /// The split few-shot examples come from, when it is not the evaluated dataset itself.
    pub few_shot: Option<FewShotSplit>,
    /// What the scenario warned about while parsing (a flawed row it read as the reference harness does),
    /// few-shot split included: recorded in the results beside the dataset.
    pub warnings: Vec<String>,
}

impl Dataset {
    /// Where few-shot examples come from: the few-shot split when there is one, else the dataset itself
    /// (less the sample, which the caller leaves out).
    pub fn few_shot_pool(&self) -> &[Sample] {
        self.few_shot.as_ref().map_or(&self.samples, |split| &split.samples)
    }
}

/// A dataset read only for its few-shot examples (MMLU's dev files).
#[derive(Debug)]
pub struct FewShotSplit {
    /// The path, as given or as found beside the evaluated folder.
    pub label: String,
    pub hash: String,
    pub samples: Vec<Sample>,
    /// Whether the user named it (`--few-shot-data`) or runner found it beside the data (a sibling `dev`).
    pub found_beside_data: bool,
}

/// Reads the dataset `data` names (the embedded sample, or the scenario's default Hub source when it has
/// none, when `data` is absent) and parses it with the scenario, one file at a time; only the chosen
/// subsets' samples are kept. A run with few-shot examples also reads their split: `few_shot_data`, else
/// the `dev` folder beside a `--data` folder named `test`, `val` or `validation` (MMLU's original layout).
pub fn load_dataset(
    ready: &mut ReadyScenario,
    data: Option<&DataSource>,
    split: Option<&str>,
    few_shot_data: Option<&Path>,
) -> Result<Dataset> {
    let metadata = ready.scenario.metadata().clone();
    let layout = Layout::of(&metadata);
    let hub = |hub: &crate::scenario::HfDataset| -> Result<LoadedFiles> {
        let loaded = crate::datasets::source::load_hub(hub, &layout).map_err(|e| anyhow!("{e}"))?;
        Ok(LoadedFiles::one(loaded))
    };
    let (source, loaded) = match data {
        Some(DataSource::File(path)) => {
            ("file", LoadedFiles::path(path, &layout, &ready.options.subsets).map_err(|e| anyhow!("{e}"))?)
        }
        Some(DataSource::Hub(user)) => {
            ("hf", hub(&hub_dataset(Some(user), metadata.default_source.as_ref(), split).expect("a user dataset"))?)
        }
        Some(DataSource::ScenarioDefault) => {
            let default = hub_dataset(None, metadata.default_source.as_ref(), split).ok_or_else(|| {
                anyhow!(
                    "--data hf: scenario {} names no default Hugging Face dataset; give hf:OWNER/NAME",
                    metadata.name
                )
            })?;
            ("hf", hub(&default)?)
        }
        None => match ready.scenario.embedded_dataset().map_err(|e| anyhow!("scenario {}: {e}", metadata.name))? {
            Some(embedded) => {
                let file =
                    LoadedData::bytes("embedded", embedded.label, &embedded.file_name, None, embedded.data, &layout)
                        .map_err(|e| anyhow!("the embedded dataset of scenario {}: {e}", metadata.name))?;
                ("embedded", LoadedFiles::one(file))
            }
            None => match hub_dataset(None, metadata.default_source.as_ref(), split) {
                Some(default) => ("hf", hub(&default)?),
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
    // Only what parsing these files provokes is the dataset's.
    drop(ready.scenario.take_warnings());
    let samples = parse_files(ready, source, &loaded)?;
    let mut warnings = ready.scenario.take_warnings();
    if samples.is_empty() {
        bail!("dataset {} holds no samples{}", loaded.label, selection_note(&ready.options.subsets));
    }
    let few_shot_path = match (few_shot_data, data) {
        (Some(path), _) => Some((path.to_path_buf(), false)),
        (None, Some(DataSource::File(path))) if ready.few_shot > 0 => dev_beside(path).map(|dev| (dev, true)),
        _ => None,
    };
    let few_shot = match few_shot_path {
        Some((path, found_beside_data)) if ready.few_shot > 0 => {
            let files = LoadedFiles::path(&path, &layout, &ready.options.subsets)
                .map_err(|e| anyhow!("--few-shot-data: {e}"))?;
            let samples = parse_files(ready, "file", &files).map_err(|e| anyhow!("--few-shot-data: {e:#}"))?;
            if samples.is_empty() {
                bail!("--few-shot-data {}: holds no samples{}", files.label, selection_note(&ready.options.subsets));
            }
            warnings.extend(ready.scenario.take_warnings().into_iter().map(|w| format!("few-shot data: {w}")));
            Some(FewShotSplit { label: files.label, hash: files.hash, samples, found_beside_data })
        }
        _ => None,
    };
    Ok(Dataset { source, label: loaded.label, hash: loaded.hash, samples, few_shot, warnings })
}

fn selection_note(subsets: &[String]) -> String {
    if subsets.is_empty() { String::new() } else { format!(" in the chosen subsets ({})", subsets.join(", ")) }
}

/// The `dev` folder beside a `--data` folder named `test`, `val` or `validation`: where the original MMLU
/// release keeps its few-shot examples (`data/dev/` beside `data/test/`).
fn dev_beside(data: &Path) -> Option<PathBuf> {
    let name = data.file_name()?.to_str()?;
    if !data.is_dir() || !["test", "val", "validation"].contains(&name) {
        return None;
    }
    let dev = data.parent()?.join("dev");
    dev.is_dir().then_some(dev)
}

/// Parses each file with the scenario and keeps the chosen subsets' samples. A dataset of several files
/// names each sample `FILE_STEM/ID`, since ids need only be unique within a file.
fn parse_files(ready: &mut ReadyScenario, source: &str, loaded: &LoadedFiles) -> Result<Vec<Sample>> {
    let name = ready.scenario.metadata().name.clone();
    let mut samples = Vec::new();
    for file in &loaded.files {
        let parsed = ready.scenario.parse_dataset(&file.info, &file.input).map_err(|e| match e {
            ScenarioError::Dataset { file: name_in_error, row, field, message, .. } => {
                let location = row.and_then(|r| file.decoded.as_ref().and_then(|d| d.locate(r)));
                let error = ScenarioError::Dataset { file: name_in_error, row, location, field, message };
                if source == "embedded" {
                    anyhow!("the embedded dataset of scenario {name}: {error}")
                } else {
                    anyhow!("dataset {}: {error}", file.label)
                }
            }
            other => anyhow!("scenario {name}: {other}"),
        })?;
        let stem = file.info.name.split_once('.').map_or(file.info.name.as_str(), |(stem, _)| stem).to_string();
        samples.extend(parsed.into_iter().map(|mut sample| {
            if loaded.folder {
                sample.id = format!("{stem}/{}", sample.id);
            }
            sample
        }));
    }
    let subsets = &ready.options.subsets;
    if !subsets.is_empty() {
        samples.retain(|s| s.subset.as_ref().is_some_and(|subset| subsets.contains(subset)));
    }
    Ok(samples)
}
