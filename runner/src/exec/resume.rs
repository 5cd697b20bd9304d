//! `runner exec --resume`: what defines a run, and continuing one safely. A run's definition is read from
//! its summary (scenario and model hashes, dataset hash and selected ids, generation and scenario settings,
//! warm-up and repetitions, runtime and provider options, adapter hash; never times or the host), flattened
//! to named fields; its sha256 is the summary's `fingerprint`. Resuming compares the stored definition with
//! the new one field by field and refuses any difference by name, then checks every kept sample against the
//! selection, so a resumed run can never mix two configurations or count a sample twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::results::writer::SUMMARY_FILE;
use crate::results::{RunSummary, SampleRecord};

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "cannot resume {dir}: its configuration differs from this one ({}); resume would mix two \
         configurations, use another --out",
        .differences.join("; "),
        dir = .dir.display()
    )]
    Changed { dir: std::path::PathBuf, differences: Vec<String> },
    #[error(
        "cannot resume {dir}: summary.json {problem}; its samples cannot be checked against this run",
        dir = .dir.display()
    )]
    Summary { dir: std::path::PathBuf, problem: String },
    #[error("cannot resume {dir}: {problem}", dir = .dir.display())]
    Samples { dir: std::path::PathBuf, problem: String },
}

/// The session record's fields that are outcomes of a run, not settings: which file ONNX Runtime loaded,
/// the optimized-model cache's state and where each node ran. Every other field is a setting.
const SESSION_OUTCOMES: [&str; 4] = ["model_file", "optimized_model_cache", "node_assignment", "node_assignment_error"];

/// The fields that define a run, by dotted name (`settings.max_new_tokens`), read from its summary. Every
/// setting and every session option is taken as serialized, so a field added later joins the definition
/// (and so the resume fingerprint and the baseline key) without being listed here.
pub fn definition(summary: &RunSummary) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::new();
    let mut put = |name: &str, value: Value| {
        fields.insert(name.to_string(), value);
    };
    put("scenario.hash", summary.scenario.hash.clone().into());
    put("dataset.hash", summary.dataset.hash.clone().into());
    put("dataset.selected_ids", summary.dataset.selected_ids.clone().into());
    put("dataset.subsets", summary.dataset.subsets.clone().into());
    if let Some(few_shot) = &summary.dataset.few_shot_source {
        // Only when present, so runs without a few-shot split keep the definitions they always had.
        put("dataset.few_shot_hash", few_shot.hash.clone().into());
    }
    put("model.hash", summary.model.hash.clone().into());
    put("adapter.hash", summary.adapter.as_ref().map(|a| a.hash.clone()).into());
    put("runtime.onnxruntime_version", summary.runtime.onnxruntime_version.clone().into());
    put("runtime.execution_provider", summary.runtime.execution_provider.clone().into());
    put("runtime.intra_threads", summary.runtime.intra_threads.into());
    if let Some(Ok(Value::Object(session))) = summary.runtime.session.as_ref().map(serde_json::to_value) {
        for (name, value) in session {
            if !SESSION_OUTCOMES.contains(&name.as_str()) {
                fields.insert(format!("runtime.session.{name}"), value);
            }
        }
    }
    if let Ok(Value::Object(settings)) = serde_json::to_value(&summary.settings) {
        for (name, value) in settings {
            fields.insert(format!("settings.{name}"), value);
        }
    }
    // Defaults written as absent (skip_serializing_if) must read the same as when written out.
    fields.entry("settings.warmup".into()).or_insert(0.into());
    fields.entry("settings.repeat".into()).or_insert(1.into());
    fields.entry("runtime.session.intra_op_spinning".into()).or_insert(Value::Null);
    fields
}

/// `sha256:` + the hex digest of the definition's canonical JSON (keys sorted).
pub fn fingerprint(summary: &RunSummary) -> String {
    let bytes = serde_json::to_vec(&definition(summary)).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A value as a reader wants it in a one-line message.
fn show(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "none".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Each field that differs, as `name: stored → current`; long lists name their first difference.
pub fn differences(stored: &RunSummary, current: &RunSummary) -> Vec<String> {
    let (old, new) = (definition(stored), definition(current));
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| match (old.get(name), new.get(name)) {
            (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() + b.len() > 8 => {
                let first = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)).unwrap_or(0);
                format!(
                    "{name}: {} → {} items, first difference at position {first}: {} → {}",
                    a.len(),
                    b.len(),
                    show(a.get(first)),
                    show(b.get(first))
                )
            }
            (a, b) => format!("{name}: {} → {}", show(a), show(b)),
        })
        .collect()
}

/// Reads the stored summary of a run to be resumed and refuses it when its definition differs from
/// `current`'s.
pub fn check_configuration(dir: &Path, current: &RunSummary) -> Result<RunSummary, ResumeError> {
    let path = dir.join(SUMMARY_FILE);
    let summary_error = |problem: String| ResumeError::Summary { dir: dir.to_path_buf(), problem };
    let bytes = std::fs::read(&path).map_err(|e| summary_error(format!("cannot be read ({e})")))?;
    let stored: RunSummary =
        serde_json::from_slice(&bytes).map_err(|e| summary_error(format!("is not a run summary ({e})")))?;
    let differences = differences(&stored, current);
    if !differences.is_empty() {
        return Err(ResumeError::Changed { dir: dir.to_path_buf(), differences });
    }
    Ok(stored)
}

/// The (repetition, index) of each kept sample, after checking that each belongs to this run's selection
/// (same position, same id, a repetition the run has) and none appears twice.
pub fn finished_samples(
    dir: &Path,
    records: &[SampleRecord],
    selected_ids: &[String],
    repeat: usize,
) -> Result<BTreeSet<(usize, usize)>, ResumeError> {
    let mut done = BTreeSet::new();
    for (i, record) in records.iter().enumerate() {
        let line = i + 1;
        let problem = |what: String| ResumeError::Samples {
            dir: dir.to_path_buf(),
            problem: format!("samples.jsonl line {line}: {what}"),
        };
        match selected_ids.get(record.index) {
            None => {
                return Err(problem(format!(
                    "sample index {} is past the {} samples this run selects",
                    record.index,
                    selected_ids.len()
                )));
            }
            Some(id) if *id != record.id => {
                return Err(problem(format!(
                    "sample {} has id {:?}, but this run's sample {} is {id:?}",
                    record.index, record.id, record.index
                )));
            }
            Some(_) => {}
        }
        if record.repetition >= repeat {
            return Err(problem(format!("repetition {} is past this run's --repeat {repeat}", record.repetition)));
        }
        if !done.insert((record.repetition, record.index)) {
            return Err(problem(format!(
                "sample {} (repetition {}) is recorded twice",
                record.index, record.repetition
            )));
        }
    }
    Ok(done)
}
