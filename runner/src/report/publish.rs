//! Publishing: a reports folder with an index (`README.md`) and, per comparison, a Markdown page and a
//! self-contained HTML page; and the results layout that lets one repository hold runs from many
//! machines, `data/<YYYY-MM-DD>/<run folder>-<host>/`, into which `--archive` copies run folders.
//!
//! Archived runs are published, and benchmark datasets are not ours to republish: the archive keeps what
//! pairs runs sample by sample (ids, outputs, extracted answers, metrics, timings, each choice's
//! log-likelihood) and drops the dataset's text (prompts, references, choice texts). `samples.csv` stays
//! behind too: it is `samples.jsonl` again as a table, and a full MMLU run's is megabytes. Numbers are
//! rounded to what they can mean (timings to the microsecond, log-likelihoods to 1e-9), which halves a
//! generation run's archive, and the records are gzipped (`samples.jsonl.gz`, a fifth of the text; every
//! reader of results folders takes it), which keeps reports/ small enough to hold every published run.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use minijinja::Value;

use super::model::{Comparison, Report, ReportError};
use super::render::{Templates, page_context, relative_to};
use crate::results::RunSummary;
use crate::results::writer::{GZIPPED_SAMPLES_FILE, SAMPLES_FILE};

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    fs::write(path, text)
        .map_err(|err| ReportError::Write { path: path.display().to_string(), message: err.to_string() })
}

/// Run folders inside `out` are shown relative to it, so published pages link to `data/...` and do not
/// depend on where the repository was checked out.
fn relativize(report: &mut Report, out: &Path) {
    for c in &mut report.comparisons {
        for row in &mut c.rows {
            if let Some(rel) = relative_to(Path::new(&row.provenance.dir), out) {
                row.provenance.dir = rel.to_string_lossy().replace('\\', "/");
            }
        }
    }
    for d in &mut report.duplicates {
        for path in [&mut d.dir, &mut d.same_as] {
            if let Some(rel) = relative_to(Path::new(path.as_str()), out) {
                *path = rel.to_string_lossy().replace('\\', "/");
            }
        }
    }
}

/// What a publish changed in the reports folder.
#[derive(Debug, Default)]
pub struct Published {
    /// The index and every comparison's pages.
    pub written: Vec<PathBuf>,
    /// Pages the previous index linked whose comparison is gone (its runs were removed from the data).
    pub removed: Vec<PathBuf>,
}

/// Writes `README.md`, `<comparison>.md` and `<comparison>.html` into `out`, and removes the pages of
/// comparisons the previous index listed and this one does not: a page whose runs left the data would
/// otherwise stay published with nothing behind it. Files the index never linked (notes written by hand)
/// are left alone. The pages hold no "generated at" time, so the same data gives byte-identical pages.
pub fn publish(mut report: Report, out: &Path, templates: &Templates) -> Result<Published, ReportError> {
    fs::create_dir_all(out)
        .map_err(|err| ReportError::Write { path: out.display().to_string(), message: err.to_string() })?;
    let earlier = pages_listed_in(out);
    relativize(&mut report, out);
    let mut written = Vec::new();
    for c in &report.comparisons {
        let one: Vec<&Comparison> = vec![c];
        for (template, ext) in [("report.md.jinja", "md"), ("report.html.jinja", "html")] {
            let text = templates.render(template, page_context(&one, &report))?;
            let path = out.join(format!("{}.{ext}", c.id));
            write(&path, &text)?;
            written.push(path);
        }
    }
    let index = templates.render(
        "index.md.jinja",
        minijinja::context! {
            comparisons => Value::from(minijinja::value::Serde(&report.comparisons)),
            duplicates => Value::from(minijinja::value::Serde(&report.duplicates)),
        },
    )?;
    let path = out.join("README.md");
    write(&path, &index)?;
    written.push(path);
    let mut removed = Vec::new();
    for page in earlier.into_iter().map(|name| out.join(name)).filter(|page| !written.contains(page)) {
        match fs::remove_file(&page) {
            Ok(()) => removed.push(page),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(ReportError::Write { path: page.display().to_string(), message: err.to_string() }),
        }
    }
    Ok(Published { written, removed })
}

/// The comparison pages `out/README.md` links (`[Markdown](NAME.md) · [HTML](NAME.html)`), by file name;
/// none when there is no index yet.
fn pages_listed_in(out: &Path) -> Vec<String> {
    let Ok(index) = fs::read_to_string(out.join("README.md")) else {
        return Vec::new();
    };
    let mut pages = Vec::new();
    for link in ["[Markdown](", "[HTML]("] {
        for (at, _) in index.match_indices(link) {
            let target = &index[at + link.len()..];
            let name = &target[..target.find(')').unwrap_or(0)];
            // Only the index's own pages, which sit beside it: never a path into another folder.
            if !name.is_empty() && !name.contains(['/', '\\']) {
                pages.push(name.to_string());
            }
        }
    }
    pages
}

/// The folder a run gets in the publishing layout: `<YYYY-MM-DD>/<folder name>-<host>` (the date the run
/// started, UTC, and its host name), so runs from many machines and days never collide.
pub fn archive_path(summary: &RunSummary, run_dir: &Path) -> PathBuf {
    let date = summary.started_at.get(..10).filter(|d| d.len() == 10).unwrap_or("unknown-date").to_string();
    let name = run_dir.file_name().map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned());
    let host: String = summary
        .host
        .hostname
        .split('.')
        .next()
        .unwrap_or("host")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let id = if name.ends_with(&format!("-{host}")) { name } else { format!("{name}-{host}") };
    PathBuf::from(date).join(id)
}

/// Copies each run folder's files (not subfolders) into `data_dir` in the publishing layout. A folder that
/// already holds the same run (its fingerprint and first start) is brought up to date, so archiving again
/// after a resume publishes the finished run; one that holds another run (machines share host names such
/// as `vm`, and a run folder's name repeats across machines) is left alone and the run goes to the first
/// free `<folder>-2`, `-3`, .... Returns where each run went.
pub fn archive(runs: &[(PathBuf, RunSummary)], data_dir: &Path) -> Result<BTreeMap<PathBuf, PathBuf>, ReportError> {
    let mut placed = BTreeMap::new();
    for (dir, summary) in runs {
        let target = archive_folder(&data_dir.join(archive_path(summary, dir)), summary)?;
        let io = |path: &Path, err: std::io::Error| ReportError::Write {
            path: path.display().to_string(),
            message: err.to_string(),
        };
        fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
        let entries = fs::read_dir(dir)
            .map_err(|err| ReportError::Read { path: dir.display().to_string(), message: err.to_string() })?;
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap_or_default();
            let to = target.join(name);
            if name == SAMPLES_FILE {
                let text = fs::read_to_string(&file).map_err(|e| io(&file, e))?;
                let to = target.join(GZIPPED_SAMPLES_FILE);
                fs::write(&to, gzip(without_dataset_text(&text).as_bytes())).map_err(|e| io(&to, e))?;
            } else if name == "samples.csv" {
                continue;
            } else {
                fs::copy(&file, &to).map_err(|e| io(&to, e))?;
            }
        }
        placed.insert(dir.clone(), target);
    }
    Ok(placed)
}

/// The folder under which `summary`'s run is archived: `base`, or `base-N` for the first N from 2 whose folder
/// holds no run or this same run.
fn archive_folder(base: &Path, summary: &RunSummary) -> Result<PathBuf, ReportError> {
    let mut candidate = base.to_path_buf();
    for n in 2.. {
        let existing = candidate.join("summary.json");
        let Ok(bytes) = fs::read(&existing) else { break };
        let held: RunSummary = serde_json::from_slice(&bytes).map_err(|err| ReportError::Read {
            path: existing.display().to_string(),
            message: format!("not a run summary, so it cannot be told apart from the run being archived: {err}"),
        })?;
        if held.fingerprint == summary.fingerprint && held.started_at == summary.started_at {
            break;
        }
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
    }
    Ok(candidate)
}

/// `bytes` gzipped at the best level. The header holds no time or name, so the same samples give the same
/// file.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("writing to memory cannot fail");
    encoder.finish().expect("writing to memory cannot fail")
}

/// The fields of a sample record that hold the dataset's own text.
const DATASET_TEXT_FIELDS: [&str; 3] = ["prompt", "prompt_text", "reference"];

/// `samples.jsonl` without the dataset's text: each line's prompt, rendered prompt and reference, and each
/// choice's text, are dropped; a line that is not JSON (a torn last line) is left out.
pub fn without_dataset_text(jsonl: &str) -> String {
    let mut out = String::with_capacity(jsonl.len() / 2);
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(serde_json::Value::Object(mut record)) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for field in DATASET_TEXT_FIELDS {
            record.remove(field);
        }
        if let Some(serde_json::Value::Array(choices)) = record.get_mut("choices") {
            for choice in choices.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                choice.remove("text");
                if let Some(logprob) = choice.get_mut("logprob") {
                    round_floats(logprob, LOGPROB_DECIMALS);
                }
                if choice.get("greedy") == Some(&serde_json::Value::Bool(false)) {
                    choice.remove("greedy");
                }
            }
        }
        if let Some(serde_json::Value::Object(timings)) = record.get_mut("timings") {
            // Phases that took no time read back as zero (SampleTimings defaults them).
            timings.retain(|_, value| !is_nothing(value));
            timings.values_mut().for_each(|value| round_floats(value, TIMING_DECIMALS));
        }
        out.push_str(&serde_json::Value::Object(record).to_string());
        out.push('\n');
    }
    out
}

/// Milliseconds to the microsecond (and tokens/s to a thousandth): finer digits are clock noise.
const TIMING_DECIMALS: i32 = 3;
/// Log-likelihoods to 1e-9: far below the 1e-5 at which two engines' sums part, so near-ties stay ties.
const LOGPROB_DECIMALS: i32 = 9;

/// Zero, null or an empty list: what a reader's defaults give back.
fn is_nothing(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Number(number) => number.as_f64() == Some(0.0),
        serde_json::Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Rounds every non-integer number in `value` (recursively) to `decimals` places.
fn round_floats(value: &mut serde_json::Value, decimals: i32) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            let scale = 10f64.powi(decimals);
            let rounded = number.as_f64().map(|v| (v * scale).round() / scale);
            if let Some(rounded) = rounded.and_then(serde_json::Number::from_f64) {
                *number = rounded;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| round_floats(item, decimals)),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(|field| round_floats(field, decimals)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archived_samples_keep_what_pairs_runs_and_drop_the_datasets_text() {
        let line = r#"{"index":0,"id":"q7","prompt":{"kind":"text","value":"Q?"},"prompt_text":"Q?","reference":"B","output":"B","extracted":"B","metrics":{"accuracy":1.0},"choices":[{"text":" A","logprob":-2.0,"tokens":1,"greedy":false}]}"#;
        let kept: serde_json::Value =
            serde_json::from_str(without_dataset_text(&format!("{line}\n{{torn")).trim()).unwrap();
        for field in ["prompt", "prompt_text", "reference"] {
            assert!(kept.get(field).is_none(), "{field} is dataset text: {kept}");
        }
        assert_eq!(kept["id"], "q7");
        assert_eq!((kept["output"].as_str(), kept["extracted"].as_str()), (Some("B"), Some("B")));
        assert_eq!(kept["choices"][0]["logprob"], -2.0);
        assert!(kept["choices"][0].get("text").is_none());
    }

    #[test]
    fn archived_numbers_are_rounded_to_what_they_mean() {
        let line = r#"{"index":0,"id":"q1","status":"ok","metrics":{"accuracy":1.0},"choices":[{"text":" A","logprob":-4.972450750476606,"tokens":1,"greedy":true}],"peak_rss_bytes":634892288,"timings":{"prompt_ms":0.070134,"render_ms":0.0,"tokenize_ms":0.0,"prefill_ms":0.0,"ttft_ms":0.0,"itl_ms":[12.345678901234,7.0],"sampling_ms":0.0,"detokenize_ms":0.0,"score_ms":0.065678,"generate_ms":62.387533000000005,"e2e_ms":62.53175699999999,"decode_tokens_per_s":null,"prefill_tokens_per_s":null}}"#;
        let kept: serde_json::Value = serde_json::from_str(without_dataset_text(line).trim()).unwrap();
        assert_eq!(kept["choices"][0]["logprob"], -4.972450750);
        assert_eq!(kept["choices"][0]["tokens"], 1);
        assert_eq!(kept["peak_rss_bytes"], 634892288u64);
        assert_eq!(kept["timings"]["e2e_ms"], 62.532);
        assert_eq!(kept["timings"]["itl_ms"], serde_json::json!([12.346, 7.0]));
        // Zeros, nulls and `greedy: false` are left out, and read back as they were.
        assert_eq!(kept["timings"].as_object().unwrap().len(), 5, "{kept}");
        assert!(kept["choices"][0].get("greedy").is_some());
        let record: crate::results::record::SampleRecord = serde_json::from_value(kept).unwrap();
        let timings = &record.timings;
        assert_eq!((timings.render_ms, timings.prefill_ms, timings.decode_tokens_per_s), (0.0, 0.0, None));
        assert_eq!((timings.prompt_ms, timings.generate_ms), (0.07, 62.388));
    }
}
