//! Writes a run's results folder as the run goes: each sample is appended to `samples.jsonl` and synced
//! when it finishes, and `summary.json` is replaced atomically, so a run killed at any point keeps every
//! sample it finished and a readable summary of the state it was in.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::record::SampleRecord;
use super::summary::RunSummary;

pub const SAMPLES_FILE: &str = "samples.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const SUMMARY_MARKDOWN_FILE: &str = "summary.md";

pub struct RunWriter {
    dir: PathBuf,
    samples: File,
}

impl RunWriter {
    /// Creates the results folder. A folder that already holds a run is refused rather than mixed.
    pub fn create(dir: &Path) -> Result<Self> {
        if dir.join(SAMPLES_FILE).exists() {
            bail!("results folder {} already holds a run ({SAMPLES_FILE} exists); choose another --out", dir.display());
        }
        fs::create_dir_all(dir).with_context(|| format!("cannot create results folder {}", dir.display()))?;
        let path = dir.join(SAMPLES_FILE);
        let samples = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { dir: dir.to_path_buf(), samples })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one sample as a JSON line and syncs it to disk before returning.
    pub fn append(&mut self, record: &SampleRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record).context("cannot serialize a sample record")?;
        line.push(b'\n');
        let path = self.dir.join(SAMPLES_FILE);
        self.samples.write_all(&line).with_context(|| format!("cannot append to {}", path.display()))?;
        self.samples.sync_data().with_context(|| format!("cannot sync {}", path.display()))
    }

    /// Replaces `summary.json`; readers never see a half-written file.
    pub fn write_summary(&self, summary: &RunSummary) -> Result<()> {
        let json = serde_json::to_vec_pretty(summary).context("cannot serialize the run summary")?;
        write_atomically(&self.dir.join(SUMMARY_FILE), &json)
    }

    pub fn write_markdown(&self, markdown: &str) -> Result<()> {
        write_atomically(&self.dir.join(SUMMARY_MARKDOWN_FILE), markdown.as_bytes())
    }
}

/// Replaces `path` through a temporary file and a rename: readers see the old file or the new one, never half.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes).and_then(|_| file.sync_data()).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Reads the samples of a results folder back (for tests and reports).
pub fn read_samples(dir: &Path) -> Result<Vec<SampleRecord>> {
    let path = dir.join(SAMPLES_FILE);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}: line {} is not a sample record", path.display(), i + 1))
        })
        .collect()
}
