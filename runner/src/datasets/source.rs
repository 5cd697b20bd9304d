//! Where a run's dataset comes from (`--data FILE`, `--data hf:REPO[:CONFIG][@REV]`, `--data hf` for
//! the scenario's default source, or the scenario's embedded sample) and reading it into what the
//! scenario's `parse-dataset` takes, with the provenance a run records (label and hash).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{DecodeError, Decoded, Format, Layout, decode_with, file_name};
use crate::hub::{Hub, HubError, RepoType, glob_match};
use crate::provenance;
use crate::scenario::{DatasetInfo, DatasetInput, HfDataset};

/// What `--data` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    File(PathBuf),
    Hub(HubDataset),
    /// `--data hf`: the scenario's own default source.
    ScenarioDefault,
}

/// A Hugging Face dataset as the user wrote it; the split comes from `--split` or the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubDataset {
    pub repo: String,
    pub config: Option<String>,
    pub revision: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--data {spec:?}: {message}")]
    Spec { spec: String, message: String },
    #[error("cannot read dataset {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Hub(String),
}

impl DataSource {
    /// Parses `--data`: `hf`, `hf:OWNER/NAME[:CONFIG][@REVISION]`, or a file path.
    pub fn parse(spec: &str) -> Result<DataSource, SourceError> {
        let invalid = |message: &str| SourceError::Spec { spec: spec.to_string(), message: message.to_string() };
        if spec == "hf" || spec == "hf:" {
            return Ok(DataSource::ScenarioDefault);
        }
        let Some(rest) = spec.strip_prefix("hf:") else { return Ok(DataSource::File(PathBuf::from(spec))) };
        let (rest, revision) = match rest.rsplit_once('@') {
            Some((rest, revision)) if !revision.is_empty() => (rest, Some(revision.to_string())),
            Some(_) => return Err(invalid("nothing follows `@`; give a revision (branch, tag or commit)")),
            None => (rest, None),
        };
        let (repo, config) = match rest.split_once(':') {
            Some((repo, config)) if !config.is_empty() => (repo, Some(config.to_string())),
            Some(_) => return Err(invalid("nothing follows `:`; give a config name or leave out the `:`")),
            None => (rest, None),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let valid_part =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && *p != "..";
        if parts.len() != 2 || !parts.iter().all(valid_part) {
            return Err(invalid("expected hf:OWNER/NAME[:CONFIG][@REVISION], e.g. hf:openai/gsm8k:main"));
        }
        Ok(DataSource::Hub(HubDataset { repo: repo.to_string(), config, revision }))
    }
}

/// A dataset read and ready for the scenario.
#[derive(Debug)]
pub struct LoadedData {
    /// "file", "hf" or "embedded".
    pub source: &'static str,
    /// The path, `hf:REPO/CONFIG/SPLIT@REVISION`, or the scenario's label for its embedded sample.
    pub label: String,
    /// sha256 over the bytes (over each file's hash, in order, for several files).
    pub hash: String,
    pub info: DatasetInfo,
    pub input: DatasetInput,
    /// Record positions, when the host decoded the file, for error messages.
    pub decoded: Option<Decoded>,
}

impl LoadedData {
    /// Reads a local file.
    pub fn file(path: &Path, layout: &Layout) -> Result<LoadedData, SourceError> {
        let bytes = std::fs::read(path).map_err(|source| SourceError::Read { path: path.to_path_buf(), source })?;
        let name = file_name(path);
        LoadedData::bytes("file", path.display().to_string(), &name, None, bytes, layout)
    }

    /// A dataset given as bytes (the scenario's embedded sample, or one file).
    pub fn bytes(
        source: &'static str,
        label: String,
        file_name: &str,
        subset: Option<String>,
        bytes: Vec<u8>,
        layout: &Layout,
    ) -> Result<LoadedData, SourceError> {
        let hash = provenance::hash_bytes(&bytes);
        let info = DatasetInfo { name: file_name.to_string(), subset };
        Ok(match decode_with(file_name, &bytes, layout)? {
            Some(mut decoded) => {
                let input = decoded.take_input();
                LoadedData { source, label, hash, info, input, decoded: Some(decoded) }
            }
            None => LoadedData { source, label, hash, info, input: DatasetInput::Raw(bytes), decoded: None },
        })
    }

    /// Several files of one dataset (Parquet shards), decoded and concatenated in the order given.
    pub fn shards(
        label: String,
        info: DatasetInfo,
        files: &[PathBuf],
        layout: &Layout,
    ) -> Result<LoadedData, SourceError> {
        let mut all = Decoded::default();
        let mut hasher = Sha256::new();
        for path in files {
            let bytes = std::fs::read(path).map_err(|source| SourceError::Read { path: path.to_path_buf(), source })?;
            hasher.update(Sha256::digest(&bytes));
            let name = file_name(path);
            let decoded = decode_with(&name, &bytes, layout)?.ok_or_else(|| {
                SourceError::Hub(format!("{}: a dataset shard must be .parquet, .jsonl, .json or .csv", path.display()))
            })?;
            all.extend(decoded);
        }
        let hash = format!("sha256:{:x}", hasher.finalize());
        let input = all.take_input();
        Ok(LoadedData { source: "hf", label, hash, info, input, decoded: Some(all) })
    }

    /// The records or bytes' size, for messages.
    pub fn records(&self) -> Option<usize> {
        match &self.input {
            DatasetInput::Records(records) => Some(records.len()),
            DatasetInput::Raw(_) => None,
        }
    }
}

/// A local `--data` path read for the scenario: one file, or a folder whose files are one dataset.
#[derive(Debug)]
pub struct LoadedFiles {
    /// The path as given.
    pub label: String,
    /// The file's sha256; for a folder, sha256 over each file's name and sha256, in name order (files of
    /// unselected subsets included, so the hash names the folder, not the selection).
    pub hash: String,
    /// The files to parse, in name order; a folder's files carry their subset when their name gives one.
    pub files: Vec<LoadedData>,
    /// A folder: its samples' ids are prefixed with their file's name, whatever the selection decodes.
    pub folder: bool,
}

impl LoadedFiles {
    /// One file (a Hub split's shards, the embedded sample).
    pub fn one(file: LoadedData) -> LoadedFiles {
        LoadedFiles { label: file.label.clone(), hash: file.hash.clone(), files: vec![file], folder: false }
    }

    /// Reads `path`: a file, or every dataset file (`.jsonl`, `.json`, `.csv`, `.tsv`, `.parquet`) directly
    /// in a folder, sorted by name. A folder's file named after a subset not in `selected` (when the
    /// selection is not empty) is hashed but not decoded.
    pub fn path(path: &Path, layout: &Layout, selected: &[String]) -> Result<LoadedFiles, SourceError> {
        if !path.is_dir() {
            return Ok(LoadedFiles::one(LoadedData::file(path, layout)?));
        }
        let read_error = |source| SourceError::Read { path: path.to_path_buf(), source };
        let mut names: Vec<String> = std::fs::read_dir(path)
            .map_err(read_error)?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_file())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.') && Format::of(name).is_some())
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(SourceError::Spec {
                spec: path.display().to_string(),
                message: "the folder holds no dataset files (.jsonl, .json, .csv, .tsv or .parquet)".to_string(),
            });
        }
        let mut hasher = Sha256::new();
        let mut files = Vec::new();
        for name in names {
            let file = path.join(&name);
            let bytes = std::fs::read(&file).map_err(|source| SourceError::Read { path: file.clone(), source })?;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(Sha256::digest(&bytes));
            let subset = layout.subset_of_file(&name);
            if subset.as_ref().is_some_and(|s| !selected.is_empty() && !selected.contains(s)) {
                continue;
            }
            files.push(LoadedData::bytes("file", file.display().to_string(), &name, subset, bytes, layout)?);
        }
        let hash = format!("sha256:{:x}", hasher.finalize());
        Ok(LoadedFiles { label: path.display().to_string(), hash, files, folder: true })
    }
}

/// The Hub dataset a run reads: the user's, completed from the scenario's default source (same repo)
/// and `--split`; a repository that is not the scenario's default reads split `test` unless told.
pub fn hub_dataset(user: Option<&HubDataset>, default: Option<&HfDataset>, split: Option<&str>) -> Option<HfDataset> {
    match (user, default) {
        (None, None) => None,
        (None, Some(default)) => {
            Some(HfDataset { split: split.map_or_else(|| default.split.clone(), str::to_string), ..default.clone() })
        }
        (Some(user), default) => {
            let same_repo = default.filter(|d| d.repo == user.repo);
            Some(HfDataset {
                repo: user.repo.clone(),
                config: user.config.clone().or_else(|| same_repo.and_then(|d| d.config.clone())),
                split: split
                    .map(str::to_string)
                    .or_else(|| same_repo.map(|d| d.split.clone()))
                    .unwrap_or_else(|| "test".to_string()),
                revision: user.revision.clone().or_else(|| same_repo.and_then(|d| d.revision.clone())),
            })
        }
    }
}

/// The revision Hugging Face's dataset viewer writes every dataset's splits to, as Parquet.
pub const PARQUET_CONVERSION_REVISION: &str = "refs/convert/parquet";

/// File patterns of one split in a dataset repository's own files, most specific first: `CONFIG/SPLIT-*`
/// and `CONFIG/SPLIT/*` (how `datasets` pushes configs), then `data/SPLIT-*` and `SPLIT-*` (one config).
fn split_patterns(config: Option<&str>, split: &str) -> Vec<String> {
    let mut patterns = Vec::new();
    let extensions = ["parquet", "jsonl", "json", "csv"];
    if let Some(config) = config {
        for extension in extensions {
            patterns.push(format!("{config}/{split}-*.{extension}"));
            patterns.push(format!("{config}/{split}/*.{extension}"));
            patterns.push(format!("{config}/{split}.{extension}"));
            patterns.push(format!("data/{config}/{split}-*.{extension}"));
        }
    }
    for extension in extensions {
        patterns.push(format!("data/{split}-*.{extension}"));
        patterns.push(format!("data/{split}/*.{extension}"));
        patterns.push(format!("data/{split}.{extension}"));
        patterns.push(format!("{split}-*.{extension}"));
        patterns.push(format!("{split}.{extension}"));
    }
    patterns
}

/// The Parquet conversion's layout: `CONFIG/SPLIT/NNNN.parquet` (`default` when the dataset has one config).
fn conversion_patterns(config: Option<&str>, split: &str) -> Vec<String> {
    let config = config.unwrap_or("default");
    vec![format!("{config}/{split}/*.parquet"), format!("{config}/*-{split}.parquet")]
}

/// Reads a Hugging Face dataset's split from the HF cache, downloading it first when online (unless
/// `HF_HUB_OFFLINE=1`). The repository's own data files are used when they hold the split; otherwise, and
/// when no revision was given, the Hub's Parquet conversion (`refs/convert/parquet`).
pub fn load_hub(dataset: &HfDataset, layout: &Layout) -> Result<LoadedData, SourceError> {
    load_hub_with(&Hub::from_env(), dataset, layout)
}

/// [`load_hub`] with a given Hub client (tests use an offline one over a cache they lay out).
pub fn load_hub_with(hub: &Hub, dataset: &HfDataset, layout: &Layout) -> Result<LoadedData, SourceError> {
    let config = dataset.config.as_deref();
    let revision = dataset.revision.as_deref().unwrap_or("main");
    let own = find_split(hub, &dataset.repo, revision, &split_patterns(config, &dataset.split));
    let (revision, files) = match own {
        Ok(files) => (revision, files),
        Err(own_error) if dataset.revision.is_none() => {
            match find_split(
                hub,
                &dataset.repo,
                PARQUET_CONVERSION_REVISION,
                &conversion_patterns(config, &dataset.split),
            ) {
                Ok(files) => (PARQUET_CONVERSION_REVISION, files),
                Err(conversion_error) => {
                    return Err(SourceError::Hub(format!(
                        "{}: {own_error}; and its Parquet conversion: {conversion_error}",
                        describe(dataset)
                    )));
                }
            }
        }
        Err(own_error) => return Err(SourceError::Hub(format!("{}: {own_error}", describe(dataset)))),
    };
    let name = format!("hf:{}/{}/{}", dataset.repo, config.unwrap_or("default"), dataset.split);
    let label = format!("{name}@{revision}");
    let info = DatasetInfo { name, subset: dataset.config.clone() };
    LoadedData::shards(label, info, &files, layout)
}

fn describe(dataset: &HfDataset) -> String {
    format!(
        "hf:{}{} split {}",
        dataset.repo,
        dataset.config.as_ref().map(|c| format!(":{c}")).unwrap_or_default(),
        dataset.split
    )
}

/// The files of the first pattern that matches anything in the snapshot, sorted (shard order).
fn find_split(hub: &Hub, repo: &str, revision: &str, patterns: &[String]) -> Result<Vec<PathBuf>, HubError> {
    let allow: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let snapshot = hub.snapshot(RepoType::Dataset, repo, revision, &allow)?;
    let files = files_under(&snapshot);
    for pattern in patterns {
        let mut matching: Vec<PathBuf> = files
            .iter()
            .filter(|relative| glob_match(pattern.as_bytes(), relative.as_bytes()))
            .map(|relative| snapshot.join(relative))
            .collect();
        if !matching.is_empty() {
            matching.sort();
            return Ok(matching);
        }
    }
    Err(HubError::NoMatchingFiles {
        repo_type: RepoType::Dataset,
        id: repo.to_string(),
        revision: revision.to_string(),
        snapshot,
        patterns: patterns.to_vec(),
        how: "give the split with --split, the config with hf:OWNER/NAME:CONFIG, or a file with --data FILE"
            .to_string(),
    })
}

/// Every file under `dir`, as `/`-separated paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&relative)) else { continue };
        for entry in entries.flatten() {
            let path = relative.join(entry.file_name());
            if dir.join(&path).is_dir() {
                pending.push(path);
            } else {
                files.push(path.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files
}
