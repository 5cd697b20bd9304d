//! Reads an experiment folder: `experiment.yaml|yml|json` (`defaults:`, `matrix:`, `runs:`, `include:`,
//! `exclude:`, `description:`) plus `runs/*.yaml|yml|json` (one run or a list of runs per file). Every key
//! is checked: an unknown one or a value of the wrong type is an error naming the file, the entry and the key.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ExperimentError, RunConfig, RunEntry, RunFilter};

/// The experiment file names looked for, in order.
pub const EXPERIMENT_FILES: [&str; 3] = ["experiment.yaml", "experiment.yml", "experiment.json"];
/// The top-level keys of an experiment file.
pub const EXPERIMENT_KEYS: [&str; 6] = ["description", "defaults", "matrix", "runs", "include", "exclude"];

/// An experiment folder, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Experiment {
    /// The folder.
    pub dir: PathBuf,
    /// The experiment file (or the folder when it has only `runs/`).
    pub path: PathBuf,
    pub description: Option<String>,
    /// `defaults:`, shared by every run.
    pub defaults: RunConfig,
    /// One entry per run: matrix combinations, `runs:` entries and `runs/` files, in that order.
    pub entries: Vec<RunEntry>,
    pub include: Vec<RunFilter>,
    pub exclude: Vec<RunFilter>,
}

fn read_value(path: &Path) -> Result<Value, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read { path: path.into(), source })?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        serde_json::from_str(&text).map_err(|e| ExperimentError::Syntax {
            path: path.into(),
            format: "JSON",
            message: e.to_string(),
        })
    } else {
        let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| ExperimentError::Syntax {
            path: path.into(),
            format: "YAML",
            message: e.to_string(),
        })?;
        // An empty YAML file is null: no keys.
        Ok(if value.is_null() { Value::Object(Map::new()) } else { value })
    }
}

fn as_map<'a>(value: &'a Value, origin: &str, what: &str) -> Result<&'a Map<String, Value>, ExperimentError> {
    value.as_object().ok_or_else(|| ExperimentError::Invalid {
        origin: origin.to_string(),
        message: format!("{what} must be a map of keys, got {}", kind(value)),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Files of `dir/runs/` with an experiment extension, sorted by name.
fn run_files(dir: &Path) -> Result<Vec<PathBuf>, ExperimentError> {
    let runs = dir.join("runs");
    if !runs.is_dir() {
        return Ok(Vec::new());
    }
    let read = std::fs::read_dir(&runs).map_err(|source| ExperimentError::Read { path: runs.clone(), source })?;
    let mut files = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| ExperimentError::Read { path: runs.clone(), source })?;
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if path.is_file() && matches!(ext, "yaml" | "yml" | "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl Experiment {
    /// Reads `dir`: its experiment file and its `runs/` files.
    pub fn load(dir: &Path) -> Result<Experiment, ExperimentError> {
        let file = EXPERIMENT_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file());
        let run_files = run_files(dir)?;
        if file.is_none() && run_files.is_empty() {
            return Err(ExperimentError::NoExperiment { dir: dir.to_path_buf() });
        }
        let mut experiment = Experiment { dir: dir.to_path_buf(), path: dir.to_path_buf(), ..Default::default() };
        let mut has_runs = false;
        if let Some(path) = &file {
            experiment.path = path.clone();
            has_runs = experiment.read_experiment_file(path)?;
        }
        for path in &run_files {
            let origin = path.display().to_string();
            let base = path.parent().unwrap_or(dir);
            match read_value(path)? {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let origin = format!("{origin}: [{i}]");
                        let map = as_map(item, &origin, "a run")?;
                        let config = RunConfig::from_map(map, &origin, Some(base))?;
                        experiment.entries.push(RunEntry { origin, config });
                    }
                }
                value => {
                    let map = as_map(&value, &origin, "a run file")?;
                    let config = RunConfig::from_map(map, &origin, Some(base))?;
                    experiment.entries.push(RunEntry { origin, config });
                }
            }
        }
        if !has_runs && run_files.is_empty() {
            // Only defaults: the experiment is one run.
            experiment
                .entries
                .push(RunEntry { origin: experiment.path.display().to_string(), config: RunConfig::default() });
        }
        Ok(experiment)
    }

    /// Reads the experiment file into `self`; returns whether it holds runs (`matrix:` or `runs:`).
    fn read_experiment_file(&mut self, path: &Path) -> Result<bool, ExperimentError> {
        let file = path.display().to_string();
        let base = path.parent().unwrap_or(Path::new("."));
        let value = read_value(path)?;
        let top = as_map(&value, &file, "an experiment file")?;
        for key in top.keys() {
            if !EXPERIMENT_KEYS.contains(&key.as_str()) {
                return Err(ExperimentError::UnknownKey {
                    origin: file.clone(),
                    key: key.clone(),
                    known: EXPERIMENT_KEYS.join(", "),
                });
            }
        }
        if let Some(description) = top.get("description") {
            let text = description.as_str().ok_or_else(|| ExperimentError::BadValue {
                origin: file.clone(),
                key: "description".into(),
                message: format!("expected a string, got {}", kind(description)),
            })?;
            self.description = Some(text.to_string());
        }
        if let Some(defaults) = top.get("defaults") {
            let origin = format!("{file}: defaults");
            self.defaults = RunConfig::from_map(as_map(defaults, &origin, "`defaults`")?, &origin, Some(base))?;
        }
        let mut has_runs = false;
        if let Some(matrix) = top.get("matrix") {
            has_runs = true;
            self.entries.extend(matrix_entries(matrix, &file, base)?);
        }
        if let Some(runs) = top.get("runs") {
            has_runs = true;
            let items = runs.as_array().ok_or_else(|| ExperimentError::Invalid {
                origin: format!("{file}: runs"),
                message: format!("must be a list of runs, got {}", kind(runs)),
            })?;
            for (i, item) in items.iter().enumerate() {
                let origin = format!("{file}: runs[{i}]");
                let config = RunConfig::from_map(as_map(item, &origin, "a run")?, &origin, Some(base))?;
                self.entries.push(RunEntry { origin, config });
            }
        }
        for (key, filters) in [("include", &mut self.include), ("exclude", &mut self.exclude)] {
            if let Some(value) = top.get(key) {
                *filters = read_filters(value, &format!("{file}: {key}"), base)?;
            }
        }
        Ok(has_runs)
    }
}

/// `matrix:` — keys with lists of values; every combination is a run (the last key varying fastest).
fn matrix_entries(matrix: &Value, file: &str, base: &Path) -> Result<Vec<RunEntry>, ExperimentError> {
    let origin = format!("{file}: matrix");
    let map = as_map(matrix, &origin, "`matrix`")?;
    let mut combos: Vec<RunConfig> = vec![RunConfig::default()];
    for (key, values) in map {
        if key == "name" {
            return Err(ExperimentError::Invalid {
                origin: origin.clone(),
                message: "`name` cannot vary in a matrix: names are derived from the keys that vary".into(),
            });
        }
        let values: Vec<&Value> = match values {
            Value::Array(items) if items.is_empty() => {
                return Err(ExperimentError::BadValue {
                    origin: origin.clone(),
                    key: key.clone(),
                    message: "is an empty list: the matrix would have no runs".into(),
                });
            }
            // A key whose values are lists (`subsets`) takes a list of lists; one list alone is one value.
            Value::Array(items) if key != "subsets" || items.iter().all(Value::is_array) => items.iter().collect(),
            one => vec![one],
        };
        let mut parsed = Vec::with_capacity(values.len());
        for (i, value) in values.into_iter().enumerate() {
            let mut one = Map::new();
            one.insert(key.clone(), value.clone());
            parsed.push(RunConfig::from_map(&one, &format!("{origin}.{key}[{i}]"), Some(base))?);
        }
        combos = combos.iter().flat_map(|c| parsed.iter().map(move |p| c.layered(p))).collect();
    }
    Ok(combos.into_iter().map(|config| RunEntry { origin: origin.clone(), config }).collect())
}

/// `include:` / `exclude:` — a list of name globs (strings) and key maps (a run matches when every key matches).
fn read_filters(value: &Value, origin: &str, base: &Path) -> Result<Vec<RunFilter>, ExperimentError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(glob) => Ok(RunFilter::Name(glob.clone())),
            Value::Object(map) => {
                Ok(RunFilter::Keys(Box::new(RunConfig::from_map(map, &format!("{origin}[{i}]"), Some(base))?)))
            }
            other => Err(ExperimentError::Invalid {
                origin: format!("{origin}[{i}]"),
                message: format!("expected a run-name glob or a map of run keys, got {}", kind(other)),
            }),
        })
        .collect()
}
