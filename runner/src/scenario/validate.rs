//! Checks what a guest returns against the contract before the host uses it: a scenario that returns
//! an empty prompt, a metric it never declared, a NaN, a duplicate sample id or a 100 MB string is a
//! scenario bug, reported as such instead of flowing into the model or the results.

use std::collections::HashSet;

use super::{Metadata, Metric, Request, Sample, Score, ScoringModes, WitPrompt};

/// A prompt larger than this is refused: no model context comes near it, and tokenizing it would
/// stall the run.
pub const MAX_PROMPT_BYTES: usize = 16 << 20;
/// Names (metrics, subsets) and sample ids longer than this are refused.
pub const MAX_NAME_BYTES: usize = 1024;
/// More metrics than this from one `score` or `aggregate` call are refused: no report can show them, and
/// each would be a column of every results file.
pub const MAX_METRICS: usize = 1024;

pub(super) fn metadata(metadata: &Metadata) -> Result<(), String> {
    if metadata.name.trim().is_empty() {
        return Err("the scenario's name is empty".into());
    }
    check_name("scenario name", &metadata.name)?;
    if metadata.scoring_modes == ScoringModes::empty() {
        return Err("it declares no scoring mode (generate or loglikelihood)".into());
    }
    let mut names = HashSet::new();
    for metric in &metadata.metrics {
        check_name("metric name", &metric.name)?;
        if !names.insert(metric.name.as_str()) {
            return Err(format!("metric `{}` is declared twice", metric.name));
        }
    }
    let mut subsets = HashSet::new();
    for subset in &metadata.subsets {
        check_name("subset name", &subset.name)?;
        if !subsets.insert(subset.name.as_str()) {
            return Err(format!("subset `{}` is declared twice", subset.name));
        }
    }
    let mut columns = HashSet::new();
    for column in &metadata.headerless_columns {
        check_name("header-less column name", column)?;
        if column.trim().is_empty() || !columns.insert(column.as_str()) {
            return Err(format!("header-less column `{}` is empty or declared twice", short(column)));
        }
    }
    Ok(())
}

/// Returns the offending sample id (when there is one) with the message.
pub(super) fn samples(metadata: &Metadata, samples: &[Sample]) -> Result<(), (Option<String>, String)> {
    let mut ids = HashSet::with_capacity(samples.len());
    for sample in samples {
        let id = Some(short(&sample.id));
        if sample.id.is_empty() {
            return Err((None, "a sample has an empty id".into()));
        }
        check_name("sample id", &sample.id).map_err(|m| (id.clone(), m))?;
        if !ids.insert(sample.id.as_str()) {
            return Err((id, "the sample id is not unique in the dataset".into()));
        }
        if let Some(subset) = &sample.subset
            && !metadata.subsets.is_empty()
            && !metadata.subsets.iter().any(|s| &s.name == subset)
        {
            return Err((id, format!("its subset `{}` is not one the scenario declares", short(subset))));
        }
    }
    Ok(())
}

pub(super) fn request(request: &Request, loglikelihood: bool) -> Result<(), String> {
    let bytes = match &request.prompt {
        WitPrompt::Text(text) => {
            if text.trim().is_empty() {
                return Err("the prompt is empty".into());
            }
            text.len()
        }
        WitPrompt::Chat(messages) => {
            if messages.iter().all(|m| m.content.trim().is_empty()) {
                return Err("the prompt has no message with content".into());
            }
            messages.iter().map(|m| m.content.len()).sum()
        }
    };
    let choice_bytes: usize = request.choices.iter().map(String::len).sum();
    if bytes + choice_bytes > MAX_PROMPT_BYTES {
        return Err(format!(
            "the prompt is {} MiB, over the limit of {} MiB",
            (bytes + choice_bytes) >> 20,
            MAX_PROMPT_BYTES >> 20
        ));
    }
    if loglikelihood {
        if request.choices.is_empty() {
            return Err("a log-likelihood run needs choices, and the request has none".into());
        }
        if let Some(index) = request.choices.iter().position(|c| c.is_empty()) {
            return Err(format!("choice {index} is empty"));
        }
    }
    Ok(())
}

pub(super) fn score(metadata: &Metadata, score: &Score) -> Result<(), String> {
    check_count(score.metrics.len())?;
    let mut seen = HashSet::new();
    for metric in &score.metrics {
        check_name("metric name", &metric.name)?;
        if !metadata.metrics.iter().any(|m| m.name == metric.name) {
            let declared: Vec<&str> = metadata.metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(format!(
                "metric `{}` is not declared in its metadata (declared: {})",
                metric.name,
                if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
            ));
        }
        if !metric.value.is_finite() {
            return Err(format!("metric `{}` is {}", metric.name, metric.value));
        }
        if !seen.insert(metric.name.as_str()) {
            return Err(format!("metric `{}` is given twice", metric.name));
        }
    }
    if let Some(extracted) = &score.extracted
        && extracted.len() > MAX_PROMPT_BYTES
    {
        return Err(format!("the extracted answer is {} MiB", extracted.len() >> 20));
    }
    Ok(())
}

pub(super) fn aggregate(metrics: &[Metric]) -> Result<(), String> {
    check_count(metrics.len())?;
    let mut seen = HashSet::new();
    for metric in metrics {
        check_name("metric name", &metric.name)?;
        if metric.name.is_empty() {
            return Err("a metric has an empty name".into());
        }
        if !metric.value.is_finite() {
            return Err(format!("metric `{}` is {}", metric.name, metric.value));
        }
        if !seen.insert(metric.name.as_str()) {
            return Err(format!("metric `{}` is given twice", metric.name));
        }
    }
    Ok(())
}

fn check_count(metrics: usize) -> Result<(), String> {
    if metrics > MAX_METRICS {
        return Err(format!("it returned {metrics} metrics (at most {MAX_METRICS})"));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("a {what} is {} bytes long (at most {MAX_NAME_BYTES}): {:?}...", name.len(), short(name)));
    }
    Ok(())
}

/// The first 60 characters of a guest string, for messages.
fn short(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}
