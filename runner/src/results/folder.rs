//! Reads results folders back: one run's `summary.json` and `samples.jsonl` (or a published run's
//! `samples.jsonl.gz`) as a `RunFolder`, and every run
//! folder below a set of paths (`find_runs`). Reading is forgiving where a killed run leaves damage that
//! loses nothing (a half-written last sample line is dropped with a warning) and strict where the file is
//! corrupt (a bad line in the middle is an error naming the file and line), so comparisons and reports never
//! silently miss samples.

use std::fs;
use std::path::{Path, PathBuf};

use super::record::SampleRecord;
use super::summary::{RunStatus, RunSummary};
use super::writer::{GZIPPED_SAMPLES_FILE, SAMPLES_FILE, SUMMARY_FILE};

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a run summary: {source}")]
    Summary { path: PathBuf, source: serde_json::Error },
    #[error("{path}: line {line} is not a sample record: {source}")]
    Sample { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("{0} does not exist")]
    Missing(PathBuf),
}

/// One run's results folder, read back.
#[derive(Debug, Clone)]
pub struct RunFolder {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// Every sample record, in file order (finished samples of an unfinished run included).
    pub samples: Vec<SampleRecord>,
    /// What a reader should know about the folder: a dropped torn line, a run that did not complete.
    pub warnings: Vec<String>,
}

impl RunFolder {
    /// Reads `dir/summary.json` and `dir/samples.jsonl`. A folder without `samples.jsonl` (a summary copied on
    /// its own, as reports keep them) loads with no samples and a warning.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, FolderError> {
        let dir = dir.as_ref().to_path_buf();
        let summary_path = dir.join(SUMMARY_FILE);
        let summary_bytes = read(&summary_path)?;
        let summary: RunSummary = serde_json::from_slice(&summary_bytes)
            .map_err(|source| FolderError::Summary { path: summary_path.clone(), source })?;
        let mut warnings = Vec::new();
        match summary.status {
            RunStatus::Complete => {}
            RunStatus::Running => warnings.push(format!(
                "{}: the run did not finish (status \"running\": still going, or killed); its finished samples \
                 are used",
                dir.display()
            )),
            RunStatus::Interrupted | RunStatus::Aborted => warnings.push(format!(
                "{}: the run {} ({}); its finished samples are used",
                dir.display(),
                if summary.status == RunStatus::Interrupted { "was interrupted" } else { "stopped early" },
                summary.abort_reason.as_deref().unwrap_or("no reason recorded")
            )),
        }
        let (plain, gzipped) = (dir.join(SAMPLES_FILE), dir.join(GZIPPED_SAMPLES_FILE));
        let found = if plain.exists() {
            Some((read(&plain)?, plain))
        } else if gzipped.exists() {
            Some((read_gzipped(&gzipped)?, gzipped))
        } else {
            None
        };
        let samples = if let Some((bytes, path)) = found {
            let (samples, torn) = parse_samples(&path, &bytes)?;
            warnings.extend(torn);
            samples
        } else {
            warnings.push(format!("{}: no {SAMPLES_FILE}; only the summary is available", dir.display()));
            Vec::new()
        };
        Ok(Self { dir, summary, samples, warnings })
    }

    /// A short name for tables and messages: the folder's own name.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(|| self.dir.display().to_string(), |n| n.to_string_lossy().into_owned())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, FolderError> {
    fs::read(path).map_err(|source| FolderError::Read { path: path.to_path_buf(), source })
}

/// A gzipped `samples.jsonl` (a published run's), decompressed; a damaged stream is a read error naming it.
fn read_gzipped(path: &Path) -> Result<Vec<u8>, FolderError> {
    crate::files::read_gzipped(path).map_err(|source| FolderError::Read { path: path.to_path_buf(), source })
}

/// Parses JSON lines; returns the records and a warning when the last line was torn (a run killed mid-write)
/// and dropped. Any other unreadable line is an error: it means corruption, not an interrupted append.
fn parse_samples(path: &Path, bytes: &[u8]) -> Result<(Vec<SampleRecord>, Option<String>), FolderError> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<(usize, &str)> =
        text.split('\n').enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
    let mut samples = Vec::with_capacity(lines.len());
    for (position, (line_number, line)) in lines.iter().enumerate() {
        match serde_json::from_str::<SampleRecord>(line) {
            Ok(record) => samples.push(record),
            // A power loss can also leave the tail as NUL bytes with the newline written: still the last line.
            Err(_) if position + 1 == lines.len() => {
                let warning = format!(
                    "{}: line {line_number} is a half-written sample record (the run was interrupted while \
                     writing it); it was dropped",
                    path.display()
                );
                return Ok((samples, Some(warning)));
            }
            Err(source) => return Err(FolderError::Sample { path: path.to_path_buf(), line: *line_number, source }),
        }
    }
    Ok((samples, None))
}

/// Every folder at or below `paths` that holds a `summary.json`, sorted and without duplicates. A path that
/// does not exist is an error; a folder holding a run is not searched further (a run folder holds no runs).
pub fn find_runs<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, FolderError> {
    let mut runs = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if !path.exists() {
            return Err(FolderError::Missing(path.to_path_buf()));
        }
        if path.is_file() {
            // A summary.json named directly stands for its folder.
            if path.file_name().is_some_and(|n| n == SUMMARY_FILE) {
                runs.push(path.parent().unwrap_or(Path::new(".")).to_path_buf());
            }
            continue;
        }
        collect_runs(path, &mut runs)?;
    }
    runs.sort();
    runs.dedup();
    Ok(runs)
}

fn collect_runs(dir: &Path, runs: &mut Vec<PathBuf>) -> Result<(), FolderError> {
    if dir.join(SUMMARY_FILE).is_file() {
        runs.push(dir.to_path_buf());
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|source| FolderError::Read { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| FolderError::Read { path: dir.to_path_buf(), source })?;
        // file_type does not follow symlinks: a link loop cannot make the walk endless.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_runs(&entry.path(), runs)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_SUMMARY: &str = include_str!("testdata/old-summary.json");
    const OLD_SAMPLES: &str = include_str!("testdata/old-samples.jsonl");

    fn sample_line(id: &str, accuracy: f64) -> String {
        let record: serde_json::Value = serde_json::from_str(OLD_SAMPLES.trim()).unwrap();
        let mut record = record.as_object().unwrap().clone();
        record.insert("id".into(), id.into());
        record.insert("status".into(), "ok".into());
        record.remove("error");
        record.insert("metrics".into(), serde_json::json!({ "accuracy": accuracy }));
        serde_json::to_string(&record).unwrap()
    }

    fn write_run(dir: &Path, samples: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(SUMMARY_FILE), OLD_SUMMARY).unwrap();
        fs::write(dir.join(SAMPLES_FILE), samples).unwrap();
    }

    #[test]
    fn summary_written_before_newer_fields_still_loads() {
        // testdata/old-summary.json was written by an early runner: no memory, session, adapter or GPU fields.
        let tmp = tempfile::tempdir().unwrap();
        write_run(tmp.path(), OLD_SAMPLES);
        let run = RunFolder::load(tmp.path()).unwrap();
        assert_eq!(run.summary.scenario.name, "gsm8k");
        assert_eq!(run.summary.status, RunStatus::Complete);
        assert_eq!(run.samples.len(), 1);
        assert_eq!(run.samples[0].id, "1");
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    }

    #[test]
    fn torn_last_line_is_dropped_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let full = format!("{}\n{}\n", sample_line("a", 1.0), sample_line("b", 0.0));
        let torn = &sample_line("c", 1.0)[..40];
        write_run(tmp.path(), &format!("{full}{torn}"));
        let run = RunFolder::load(tmp.path()).unwrap();
        assert_eq!(run.samples.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(run.warnings.len(), 1);
        assert!(run.warnings[0].contains("line 3 is a half-written sample record"), "{:?}", run.warnings);

        // NUL bytes a power loss can leave behind, newline included, count as torn too.
        write_run(tmp.path(), &format!("{full}\0\0\0\0\n"));
        let run = RunFolder::load(tmp.path()).unwrap();
        assert_eq!(run.samples.len(), 2);
        assert_eq!(run.warnings.len(), 1);
    }

    #[test]
    fn bad_middle_line_is_an_error_naming_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        write_run(tmp.path(), &format!("{}\n{{\"id\": 3\n{}\n", sample_line("a", 1.0), sample_line("b", 1.0)));
        let error = RunFolder::load(tmp.path()).unwrap_err().to_string();
        assert!(error.contains(&format!("{}: line 2 is not a sample record", tmp.path().join(SAMPLES_FILE).display())));
    }

    #[test]
    fn gzipped_samples_read_as_plain_ones_and_a_damaged_stream_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let lines = format!("{}\n{}\n", sample_line("a", 1.0), sample_line("b", 0.0));
        write_run(tmp.path(), &lines);
        let plain = RunFolder::load(tmp.path()).unwrap();
        fs::remove_file(tmp.path().join(SAMPLES_FILE)).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, lines.as_bytes()).unwrap();
        let gzipped = encoder.finish().unwrap();
        let path = tmp.path().join(GZIPPED_SAMPLES_FILE);
        fs::write(&path, &gzipped).unwrap();
        let run = RunFolder::load(tmp.path()).unwrap();
        assert!(run.warnings.is_empty(), "{:?}", run.warnings);
        let ids = |r: &RunFolder| r.samples.iter().map(|s| (s.id.clone(), s.metrics.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&run), ids(&plain));

        fs::write(&path, &gzipped[..gzipped.len() / 2]).unwrap();
        let error = RunFolder::load(tmp.path()).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn unfinished_run_and_missing_files_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = RunFolder::load(tmp.path()).unwrap_err().to_string();
        assert!(missing.contains("summary.json"), "{missing}");

        let running = OLD_SUMMARY.replacen("\"complete\"", "\"running\"", 1);
        fs::write(tmp.path().join(SUMMARY_FILE), running).unwrap();
        let run = RunFolder::load(tmp.path()).unwrap();
        assert!(run.samples.is_empty());
        assert_eq!(run.warnings.len(), 2, "{:?}", run.warnings);
        assert!(run.warnings[0].contains("did not finish"));

        fs::write(tmp.path().join(SUMMARY_FILE), "{\"status\": \"complete\"}").unwrap();
        let bad = RunFolder::load(tmp.path()).unwrap_err().to_string();
        assert!(bad.contains("is not a run summary"), "{bad}");
    }

    #[test]
    fn finds_every_run_below_the_paths_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let sweep = tmp.path().join("sweep");
        for name in ["b-run", "a-run", "nested/c-run"] {
            write_run(&sweep.join(name), OLD_SAMPLES);
        }
        fs::create_dir_all(sweep.join("empty")).unwrap();
        fs::write(sweep.join("sweep.json"), "{}").unwrap();
        let single = tmp.path().join("single");
        write_run(&single, OLD_SAMPLES);

        let runs = find_runs(&[sweep.clone(), single.join(SUMMARY_FILE), sweep.join("a-run")]).unwrap();
        let expected = vec![single, sweep.join("a-run"), sweep.join("b-run"), sweep.join("nested/c-run")];
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(runs, expected_sorted);

        let error = find_runs(&[tmp.path().join("nope")]).unwrap_err().to_string();
        assert!(error.contains("nope") && error.contains("does not exist"), "{error}");
    }
}
