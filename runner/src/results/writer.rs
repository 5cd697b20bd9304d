//! Writes a run's results folder as the run goes: each sample is appended to `samples.jsonl` and synced
//! when it finishes, and `summary.json` is replaced atomically, so a run killed at any point keeps every
//! sample it finished and a readable summary of the state it was in.
//!
//! A killed run can be continued (`RunWriter::resume`): the samples file is read back, a half-written last
//! line (the process died, or the disk filled, mid-append) is cut away and reported, and new samples are
//! appended after the last complete one. A line that fails to write is cut back the same way before the
//! error is returned, so the file only ever holds complete lines. A folder that holds only the archived
//! `samples.jsonl.gz` (an unfinished run archived on one machine, `runner report --archive`) resumes too: its
//! records become `samples.jsonl` again and the run goes on where the archive left it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::record::SampleRecord;
use super::summary::RunSummary;
use crate::files::{read_gzipped, write_atomically};

pub const SAMPLES_FILE: &str = "samples.jsonl";
/// `samples.jsonl` gzipped, as published runs keep it (`runner report --archive`); read wherever a run is read.
pub const GZIPPED_SAMPLES_FILE: &str = "samples.jsonl.gz";
pub const SUMMARY_FILE: &str = "summary.json";
pub const SUMMARY_MARKDOWN_FILE: &str = "summary.md";

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(
        "results folder {dir} already holds a run (samples.jsonl, or an archived samples.jsonl.gz); pass --resume \
         to continue it, or choose another --out",
        dir = .0.display()
    )]
    Exists(PathBuf),
    #[error("cannot create results folder {dir}: {source}", dir = .dir.display())]
    CreateDir { dir: PathBuf, source: io::Error },
    #[error("cannot {action} {path}: {source}", path = .path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error(
        "cannot append sample {index} to {path}: {source}; the file keeps its {lines} complete lines",
        path = .path.display()
    )]
    Append { index: usize, path: PathBuf, lines: usize, source: io::Error },
    #[error("{path}: line {line} is not a sample record: {source}", path = .path.display())]
    BadLine { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("cannot serialize {what}: {source}")]
    Serialize { what: &'static str, source: serde_json::Error },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriterError {
    let path = path.to_path_buf();
    move |source| WriterError::Io { action, path, source }
}

/// What was in `samples.jsonl` when a run was read back for resuming.
#[derive(Debug, Clone, Default)]
pub struct ExistingSamples {
    /// The complete records, in file order; record `i` is line `i + 1`.
    pub records: Vec<SampleRecord>,
    /// Bytes of the file the complete records take up.
    pub complete_bytes: u64,
    /// A half-written last line: what it was and how it was dropped (for the user's eyes).
    pub torn_tail: Option<String>,
}

/// Whether `dir` holds a run's samples: `samples.jsonl`, or the archived `samples.jsonl.gz`.
pub fn holds_samples(dir: &Path) -> bool {
    dir.join(SAMPLES_FILE).exists() || dir.join(GZIPPED_SAMPLES_FILE).exists()
}

/// The bytes of `dir`'s sample lines and the file they were read from: `samples.jsonl`, else the archived
/// `samples.jsonl.gz` decompressed; `None` when the folder has neither.
fn stored_samples(dir: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, WriterError> {
    let (plain, gzipped) = (dir.join(SAMPLES_FILE), dir.join(GZIPPED_SAMPLES_FILE));
    match fs::read(&plain) {
        Ok(bytes) => return Ok(Some((plain, bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(WriterError::Io { action: "read", path: plain, source }),
    }
    match read_gzipped(&gzipped) {
        Ok(bytes) => Ok(Some((gzipped, bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(WriterError::Io { action: "read", path: gzipped, source }),
    }
}

/// Reads `dir/samples.jsonl` (or the archived `samples.jsonl.gz`) without changing it. A missing file reads
/// as empty. The last line is torn when
/// it has no newline (the append was cut short) or does not parse (a power loss can leave it zero-filled);
/// it is reported in `torn_tail`, not returned. Any other bad line is corruption: an error naming the line.
pub fn scan_samples(dir: &Path) -> Result<ExistingSamples, WriterError> {
    match stored_samples(dir)? {
        Some((path, bytes)) => scan_lines(path, &bytes),
        None => Ok(ExistingSamples::default()),
    }
}

/// The complete records of `bytes`, read from `path` (named in errors), and its torn last line if any.
fn scan_lines(path: PathBuf, bytes: &[u8]) -> Result<ExistingSamples, WriterError> {
    let mut existing = ExistingSamples::default();
    let mut start = 0usize;
    let mut line = 0usize;
    while start < bytes.len() {
        line += 1;
        let (end, complete) = match bytes[start..].iter().position(|b| *b == b'\n') {
            Some(at) => (start + at, true),
            None => (bytes.len(), false),
        };
        let is_last = end + 1 >= bytes.len();
        let parsed = serde_json::from_slice::<SampleRecord>(&bytes[start..end]);
        match parsed {
            Ok(record) if complete => existing.records.push(record),
            Ok(_) => {
                existing.torn_tail = Some(format!(
                    "{}: line {line} has no line end (the run stopped while writing it); it was dropped and its sample \
                     runs again",
                    path.display()
                ));
            }
            Err(_) if is_last => {
                existing.torn_tail = Some(format!(
                    "{}: line {line} is a half-written sample record ({} bytes; the run stopped while writing it); it \
                     was dropped and its sample runs again",
                    path.display(),
                    end - start
                ));
            }
            Err(source) => return Err(WriterError::BadLine { path, line, source }),
        }
        if existing.torn_tail.is_some() {
            break;
        }
        start = end + 1;
        existing.complete_bytes = start as u64;
    }
    Ok(existing)
}

pub struct RunWriter {
    dir: PathBuf,
    samples: File,
    /// Length of `samples.jsonl` after the last complete line: where a failed append is cut back to.
    complete_bytes: u64,
    lines: usize,
}

impl RunWriter {
    /// Creates the results folder. A folder that already holds a run is refused rather than mixed.
    pub fn create(dir: &Path) -> Result<Self, WriterError> {
        if holds_samples(dir) {
            return Err(WriterError::Exists(dir.to_path_buf()));
        }
        fs::create_dir_all(dir).map_err(|source| WriterError::CreateDir { dir: dir.to_path_buf(), source })?;
        let path = dir.join(SAMPLES_FILE);
        let samples =
            OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_error("create", &path))?;
        Ok(Self { dir: dir.to_path_buf(), samples, complete_bytes: 0, lines: 0 })
    }

    /// Opens a results folder to continue its run: reads the finished samples back, cuts a half-written last
    /// line away (reported in the returned `torn_tail`) and appends after the last complete line. A folder
    /// that does not exist, or holds no samples yet, starts empty.
    pub fn resume(dir: &Path) -> Result<(Self, ExistingSamples), WriterError> {
        fs::create_dir_all(dir).map_err(|source| WriterError::CreateDir { dir: dir.to_path_buf(), source })?;
        let path = dir.join(SAMPLES_FILE);
        let existing = match stored_samples(dir)? {
            Some((from, bytes)) if from != path => {
                // An archived run goes on in the plain file; the archive would be stale from the next sample on.
                let existing = scan_lines(from.clone(), &bytes)?;
                let kept = &bytes[..existing.complete_bytes as usize];
                write_atomically(&path, kept).map_err(io_error("write", &path))?;
                fs::remove_file(&from).map_err(io_error("remove", &from))?;
                existing
            }
            Some((from, bytes)) => scan_lines(from, &bytes)?,
            None => ExistingSamples::default(),
        };
        let samples = OpenOptions::new().create(true).append(true).open(&path).map_err(io_error("open", &path))?;
        if existing.torn_tail.is_some() {
            samples.set_len(existing.complete_bytes).map_err(io_error("truncate", &path))?;
            samples.sync_data().map_err(io_error("sync", &path))?;
        }
        let writer = Self {
            dir: dir.to_path_buf(),
            samples,
            complete_bytes: existing.complete_bytes,
            lines: existing.records.len(),
        };
        Ok((writer, existing))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn samples_path(&self) -> PathBuf {
        self.dir.join(SAMPLES_FILE)
    }

    /// Appends one sample as a JSON line and syncs it to disk before returning. When writing or syncing fails
    /// (a full disk, a file size limit), the partial line is cut away again so the file ends at its last
    /// complete line, and the error names the file.
    pub fn append(&mut self, record: &SampleRecord) -> Result<(), WriterError> {
        let mut line =
            serde_json::to_vec(record).map_err(|source| WriterError::Serialize { what: "a sample record", source })?;
        line.push(b'\n');
        let written = self.samples.write_all(&line).and_then(|_| self.samples.sync_data());
        if let Err(source) = written {
            // Best effort: shrinking works on a full disk and under a file size limit.
            let _ = self.samples.set_len(self.complete_bytes).and_then(|_| self.samples.sync_data());
            return Err(WriterError::Append {
                index: record.index,
                path: self.samples_path(),
                lines: self.lines,
                source,
            });
        }
        self.complete_bytes += line.len() as u64;
        self.lines += 1;
        Ok(())
    }

    /// Replaces `summary.json`; readers never see a half-written file.
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), WriterError> {
        let json = serde_json::to_vec_pretty(summary)
            .map_err(|source| WriterError::Serialize { what: "the run summary", source })?;
        let path = self.dir.join(SUMMARY_FILE);
        write_atomically(&path, &json).map_err(io_error("write", &path))
    }

    pub fn write_markdown(&self, markdown: &str) -> Result<(), WriterError> {
        let path = self.dir.join(SUMMARY_MARKDOWN_FILE);
        write_atomically(&path, markdown.as_bytes()).map_err(io_error("write", &path))
    }
}

/// Reads the samples of a results folder back (for tests and reports); every line must be a complete record.
pub fn read_samples(dir: &Path) -> Result<Vec<SampleRecord>, WriterError> {
    let path = dir.join(SAMPLES_FILE);
    let text = fs::read_to_string(&path).map_err(io_error("read", &path))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| WriterError::BadLine {
                path: path.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: usize) -> SampleRecord {
        serde_json::from_value(serde_json::json!({
            "index": index, "id": format!("s{index}"), "status": "ok", "reference": "1", "metrics": {"accuracy": 1.0},
            "timings": {"prompt_ms": 0.0, "render_ms": 0.0, "tokenize_ms": 0.0, "prefill_ms": 0.0, "ttft_ms": 0.0,
                "itl_ms": [], "detokenize_ms": 0.0, "score_ms": 0.0, "generate_ms": 0.0, "e2e_ms": 0.0,
                "decode_tokens_per_s": null, "prefill_tokens_per_s": null}
        }))
        .unwrap()
    }

    fn write_three(dir: &Path) -> Vec<u8> {
        let mut writer = RunWriter::create(dir).unwrap();
        for i in 0..3 {
            writer.append(&record(i)).unwrap();
        }
        fs::read(dir.join(SAMPLES_FILE)).unwrap()
    }

    #[test]
    fn an_existing_run_is_refused_with_a_pointer_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        write_three(dir.path());
        let message = RunWriter::create(dir.path()).err().unwrap().to_string();
        assert!(message.contains("--resume") && message.contains("--out"), "{message}");
    }

    #[test]
    fn an_archived_run_resumes_in_the_plain_file_and_its_archive_goes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write_three(dir.path());
        let gzipped = dir.path().join(GZIPPED_SAMPLES_FILE);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&plain).unwrap();
        fs::write(&gzipped, encoder.finish().unwrap()).unwrap();
        fs::remove_file(dir.path().join(SAMPLES_FILE)).unwrap();

        assert!(holds_samples(dir.path()));
        let message = RunWriter::create(dir.path()).err().unwrap().to_string();
        assert!(message.contains("samples.jsonl.gz") && message.contains("--resume"), "{message}");
        assert_eq!(scan_samples(dir.path()).unwrap().records.len(), 3, "read without changing the folder");
        assert!(gzipped.exists() && !dir.path().join(SAMPLES_FILE).exists());

        let (mut writer, existing) = RunWriter::resume(dir.path()).unwrap();
        assert_eq!(existing.records.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(!gzipped.exists(), "the archive would go stale once the run appends");
        writer.append(&record(3)).unwrap();
        let indices: Vec<usize> = read_samples(dir.path()).unwrap().iter().map(|r| r.index).collect();
        assert_eq!(indices, [0, 1, 2, 3]);
    }

    #[test]
    fn resume_cuts_a_line_without_its_end_and_appends_after_the_last_complete_one() {
        let dir = tempfile::tempdir().unwrap();
        let clean = write_three(dir.path());
        let path = dir.path().join(SAMPLES_FILE);
        // A complete record without its newline is still torn: the append did not finish.
        let mut torn = clean.clone();
        torn.extend_from_slice(&serde_json::to_vec(&record(3)).unwrap());
        fs::write(&path, &torn).unwrap();
        let scan = scan_samples(dir.path()).unwrap();
        assert_eq!(scan.records.len(), 3);
        assert!(scan.torn_tail.as_ref().unwrap().contains("line 4"), "{:?}", scan.torn_tail);
        assert_eq!(fs::read(&path).unwrap(), torn, "scanning changes nothing");

        let (mut writer, existing) = RunWriter::resume(dir.path()).unwrap();
        assert_eq!(existing.records.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(fs::read(&path).unwrap(), clean);
        writer.append(&record(3)).unwrap();
        let indices: Vec<usize> = read_samples(dir.path()).unwrap().iter().map(|r| r.index).collect();
        assert_eq!(indices, [0, 1, 2, 3]);
    }

    #[test]
    fn an_unparsable_last_line_is_torn_and_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let clean = write_three(dir.path());
        let path = dir.path().join(SAMPLES_FILE);
        let mut zeroed = clean.clone();
        zeroed.extend_from_slice(&[0u8; 40]);
        zeroed.push(b'\n');
        fs::write(&path, &zeroed).unwrap();
        let scan = scan_samples(dir.path()).unwrap();
        assert_eq!((scan.records.len(), scan.complete_bytes), (3, clean.len() as u64));
        assert!(scan.torn_tail.is_some());

        let text = String::from_utf8(clean).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1] = "{\"index\": 1, \"id\"";
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let message = scan_samples(dir.path()).err().unwrap().to_string();
        assert!(message.contains("samples.jsonl: line 2 is not a sample record"), "{message}");
    }

    #[test]
    fn resume_of_a_missing_or_empty_folder_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("new");
        let (mut writer, existing) = RunWriter::resume(&run).unwrap();
        assert!(existing.records.is_empty() && existing.torn_tail.is_none());
        writer.append(&record(0)).unwrap();
        assert_eq!(read_samples(&run).unwrap().len(), 1);
    }

    #[test]
    fn a_failed_append_leaves_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let clean = write_three(dir.path());
        let (mut writer, _) = RunWriter::resume(dir.path()).unwrap();
        // A read-only handle makes every write fail, as a full disk does.
        writer.samples = File::open(dir.path().join(SAMPLES_FILE)).unwrap();
        let message = writer.append(&record(3)).err().unwrap().to_string();
        assert!(message.contains("cannot append sample 3 to") && message.contains("3 complete lines"), "{message}");
        assert_eq!(fs::read(dir.path().join(SAMPLES_FILE)).unwrap(), clean);
    }
}
