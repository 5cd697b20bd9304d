//! Cached base-model runs. A run's key is the hash of its definition (what its resume fingerprint covers:
//! model, ONNX Runtime version, execution provider and session options, threads, every generation, prompt
//! and scenario setting, scenario, dataset and selection) less the adapter; every complete run without an
//! adapter is registered under its key in `<cache>/baselines/`, so an adapter run finds the base run it must
//! be compared with instead of running it again. [`run`] runs a run and registers it; for an adapter run it reuses or makes
//! its base run, and records the adapter's overhead and accuracy delta in the adapter run's summary.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::exec::{ExecOptions, RunOutcome, exec};
use crate::files::write_atomically;
use crate::provenance::hash_bytes;
use crate::results::folder::RunFolder;
use crate::results::summary::{RunStatus, RunSummary};
use crate::results::table::render_markdown;
use crate::results::writer::{SUMMARY_FILE, SUMMARY_MARKDOWN_FILE};
use crate::stats::overhead::AdapterComparison;

/// Bumped when the key's fields change, so older registrations stop matching instead of matching wrongly.
const KEY_VERSION: &str = "runner-baseline-key/2";

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot write the baseline registry entry {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot resolve the results folder {path}: {source}")]
    Resolve { path: PathBuf, source: std::io::Error },
}

/// The run's key: `sha256:…` over the run's definition (the fields its resume fingerprint covers, see
/// [`crate::exec::resume::definition`]) without the adapter, so an adapter run and its base run have the
/// same key, and a setting added later keys baselines as soon as it defines runs.
pub fn run_key(summary: &RunSummary) -> String {
    let mut definition = crate::exec::resume::definition(summary);
    definition.remove(ADAPTER_FIELD);
    definition.insert("key_version".to_string(), KEY_VERSION.into());
    hash_bytes(&serde_json::to_vec(&definition).expect("plain data serializes"))
}

/// The one field of a run's definition that a base run and its adapter run do not share.
const ADAPTER_FIELD: &str = "adapter.hash";

/// One registry entry: `<registry>/<key hex>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineEntry {
    pub key: String,
    /// Absolute path of the results folder.
    pub dir: PathBuf,
    pub registered_at: String,
}

/// The baseline registry: a folder of entries, one per key (the latest complete run wins).
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<runner cache>/baselines`: beside the scenario component cache (`RUNNER_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/runner`, else `~/.cache/runner`).
    pub fn from_env() -> Self {
        Self::new(crate::paths::cache_dir().join("baselines"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.json", key.trim_start_matches("sha256:")))
    }

    /// Registers a complete run without adapter under its key; other runs are not baselines and are skipped
    /// (`Ok(false)`).
    pub fn register(&self, dir: &Path, summary: &RunSummary) -> Result<bool, BaselineError> {
        if summary.status != RunStatus::Complete || summary.adapter.is_some() {
            return Ok(false);
        }
        let dir = fs::canonicalize(dir).map_err(|source| BaselineError::Resolve { path: dir.to_path_buf(), source })?;
        let key = run_key(summary);
        let entry = BaselineEntry {
            key: key.clone(),
            dir,
            registered_at: summary.finished_at.clone().unwrap_or_else(|| summary.started_at.clone()),
        };
        let path = self.entry_path(&key);
        let write = |source| BaselineError::Write { path: path.clone(), source };
        fs::create_dir_all(&self.dir).map_err(write)?;
        let json = serde_json::to_vec_pretty(&entry).expect("plain data serializes");
        write_atomically(&path, &json).map_err(write)?;
        Ok(true)
    }

    /// The registered base run for `key`, checked: the folder still exists, its run is complete, has no
    /// adapter and still has this key. A stale entry (folder deleted, rewritten, or another run) is ignored.
    pub fn lookup(&self, key: &str) -> Option<RunFolder> {
        let entry: BaselineEntry = serde_json::from_slice(&fs::read(self.entry_path(key)).ok()?).ok()?;
        let run = RunFolder::load(&entry.dir).ok()?;
        let valid = entry.key == key
            && run.summary.status == RunStatus::Complete
            && run.summary.adapter.is_none()
            && run_key(&run.summary) == key;
        valid.then_some(run)
    }
}

/// Runs `opts` and registers it as a baseline when it is one (complete, no adapter). A registry that cannot
/// be written costs the cache, never the run, so it is a warning.
fn exec_registered(registry: &Registry, opts: &ExecOptions) -> Result<RunOutcome> {
    let outcome = exec(opts)?;
    if let Err(e) = registry.register(&outcome.dir, &outcome.summary) {
        eprintln!("Warning: the run could not be registered as a cached baseline: {e}");
    }
    Ok(outcome)
}

/// Runs `opts` and registers it; when it applies an adapter, also finds its base run (a registered one with
/// the same key, or a new run without the adapter into `base_out(adapter run folder)`) and records the
/// adapter's overhead and accuracy delta as the adapter run's `adapter_comparison` (summary.json and
/// summary.md rewritten). `runner exec` and sweeps run every run through here; `exec` itself stays pure.
pub fn run(opts: &ExecOptions, base_out: impl FnOnce(&Path) -> PathBuf) -> Result<RunOutcome> {
    run_in(&Registry::from_env(), opts, base_out)
}

/// Where `runner exec --adapter` puts a base run it has to make: `<adapter run folder>-base`.
pub fn base_out_beside(adapter_run: &Path) -> PathBuf {
    let mut name = adapter_run.file_name().map_or_else(|| "run".into(), |n| n.to_os_string());
    name.push("-base");
    adapter_run.with_file_name(name)
}

/// [`run`] against a given registry. A complete base run already in the base folder with the right key is
/// reused too.
pub fn run_in(registry: &Registry, opts: &ExecOptions, base_out: impl FnOnce(&Path) -> PathBuf) -> Result<RunOutcome> {
    let mut outcome = exec_registered(registry, opts)?;
    // An interrupted adapter run is reported as it is; its base run waits for `--resume`.
    if opts.run.adapter.is_none() || outcome.summary.adapter.is_none() || crate::interrupt::requested() {
        return Ok(outcome);
    }
    let key = run_key(&outcome.summary);
    let base_out = base_out(&outcome.dir);
    let in_base_out = || {
        RunFolder::load(&base_out).ok().filter(|run| {
            run.summary.status == RunStatus::Complete && run.summary.adapter.is_none() && run_key(&run.summary) == key
        })
    };
    let (base, reused) = match registry.lookup(&key).or_else(in_base_out) {
        Some(base) => (base, true),
        None => {
            let mut base_opts = ExecOptions { out: Some(base_out), trace: None, ..opts.clone() };
            base_opts.run.adapter = None;
            let base_outcome = exec_registered(registry, &base_opts)
                .context("the base run (the same run without the adapter) failed")?;
            let base = RunFolder::load(&base_outcome.dir)
                .with_context(|| format!("cannot read the base run {}", base_outcome.dir.display()))?;
            (base, false)
        }
    };
    let adapter_run = RunFolder::load(&outcome.dir)
        .with_context(|| format!("cannot read the adapter run {}", outcome.dir.display()))?;
    let base_key = run_key(&base.summary);
    if base_key != key {
        // The base run was made with the same options; a different key means something outside them
        // (the model folder, the scenario file) changed in between. The comparison would be meaningless.
        anyhow::bail!(
            "the base run {} does not match the adapter run {} (run keys {base_key} and {key}): the model or \
             scenario changed between the two runs",
            base.dir.display(),
            outcome.dir.display()
        );
    }
    outcome.summary.adapter_comparison = AdapterComparison::of(&base, &adapter_run, reused, key);
    rewrite_summary(&outcome.dir, &outcome.summary)?;
    Ok(outcome)
}

/// Replaces a finished run's summary.json and summary.md.
fn rewrite_summary(dir: &Path, summary: &RunSummary) -> Result<()> {
    let json = serde_json::to_vec_pretty(summary).context("cannot serialize the run summary")?;
    let path = dir.join(SUMMARY_FILE);
    write_atomically(&path, &json).with_context(|| format!("cannot replace {}", path.display()))?;
    let path = dir.join(SUMMARY_MARKDOWN_FILE);
    write_atomically(&path, render_markdown(summary)?.as_bytes())
        .with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> RunSummary {
        serde_json::from_str(include_str!("results/testdata/old-summary.json")).unwrap()
    }

    /// `summary` with the JSON value at `path` (dotted) replaced.
    fn with(summary: &RunSummary, path: &str, value: serde_json::Value) -> RunSummary {
        let mut json = serde_json::to_value(summary).unwrap();
        let (parents, last) = path.rsplit_once('.').unwrap();
        let parent = parents.split('.').fold(&mut json, |node, key| &mut node[key]);
        parent[last] = value;
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A different value of the same JSON type, or None when there is none to make simply (nulls, objects).
    fn changed(value: &serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match value {
            Value::Bool(b) => Value::Bool(!b),
            Value::Number(n) if n.is_u64() => (n.as_u64().unwrap() + 1).into(),
            Value::Number(n) => (n.as_f64().unwrap() + 0.5).into(),
            Value::String(s) => format!("{s}-changed").into(),
            Value::Array(items) => Value::Array(items.iter().cloned().chain([Value::String("x".into())]).collect()),
            _ => return None,
        })
    }

    #[test]
    fn every_setting_the_resume_fingerprint_covers_keys_the_baseline_and_the_adapter_does_not() {
        let base = summary();
        let key = run_key(&base);
        assert_eq!(key, run_key(&base.clone()), "the key is stable");
        // The ONNX Runtime version was missing from the key listed by hand.
        assert_ne!(key, run_key(&with(&base, "runtime.onnxruntime_version", "1.99.0".into())));
        let mut tried = 0;
        for (name, value) in crate::exec::resume::definition(&base) {
            let Some(other) = changed(&value) else { continue };
            // A definition field's name is its path in the summary.
            if name == ADAPTER_FIELD || (name.starts_with("runtime.session.") && base.runtime.session.is_none()) {
                continue;
            }
            assert_ne!(key, run_key(&with(&base, &name, other)), "changing {name} must change the baseline key");
            tried += 1;
        }
        assert!(tried >= 15, "only {tried} fields were tried");

        let adapter = crate::lora::AdapterInfo {
            path: "a.onnx_adapter".into(),
            hash: "sha256:aa".into(),
            size_bytes: 1,
            rank: 4,
            targets: Vec::new(),
            layers: 1,
            tensors: 2,
            parameters: 10,
            base_parameters: None,
            parameter_share: None,
        };
        let adapted = RunSummary { adapter: Some(adapter), ..base.clone() };
        assert_eq!(run_key(&adapted), key, "an adapter run and its base run share a key");
        assert_ne!(crate::exec::resume::fingerprint(&adapted), crate::exec::resume::fingerprint(&base));
    }
}
