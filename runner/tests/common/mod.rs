//! Setup the integration tests share: the `runner` binary as a command that keeps every file it caches in a
//! folder of the test binary's own, running it with a check that runner itself did not panic, tiny generated
//! model folders made once per test binary, and reading a results folder back.
//!
//! Every test binary compiles this module for itself and uses only part of it, so unused items are allowed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock, PoisonError};

use runner::import::Precision;
use runner::results::RunSummary;
use runner::results::writer::SUMMARY_FILE;

/// This test binary's own folder, `<cargo target>/tmp/<test binary>`, emptied the first time a test asks
/// for it: what a test finds there (compiled components, registered baseline runs, models) was put there by
/// this run of this binary, and a failed run leaves it to look at until the next one.
pub fn scratch() -> &'static Path {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(env!("CARGO_CRATE_NAME"));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot empty the test folder {}: {e}", dir.display()),
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
        dir
    })
}

/// The folder the `runner` processes of this test binary use as `XDG_CACHE_HOME`, with runner's own cache
/// (`RUNNER_CACHE_DIR`) in its `runner/` subfolder, as runner lays it out by default.
pub fn cache_home() -> PathBuf {
    scratch().join("cache")
}

/// The `runner` binary as a user runs it, but with every cache in the test binary's own folder:
/// `RUNNER_CACHE_DIR` (precompiled components, the baseline registry) and `XDG_CACHE_HOME` (ONNX Runtime's
/// telemetry file, the Hugging Face cache) are both set, so a cache the user exports neither sees a test's
/// files nor changes what a test finds. The Hub is offline and its cache the one under `XDG_CACHE_HOME`
/// (tests that need a Hub cache name theirs with `HF_HUB_CACHE`). `ORT_DYLIB_PATH` is dropped so that runner
/// finds ONNX Runtime the way it does by default, under `RUNNER_HOME`, which is left as the user has it:
/// that is where setup installed the library and the default model.
pub fn runner() -> Command {
    let cache = cache_home();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner"));
    cmd.env_remove("ORT_DYLIB_PATH").env("RUNNER_CACHE_DIR", cache.join("runner")).env("XDG_CACHE_HOME", cache);
    cmd.env_remove("HF_HOME").env_remove("HF_HUB_CACHE").env("HF_HUB_OFFLINE", "1");
    cmd
}

/// `runner exec SCENARIO --model MODEL --no-progress`, for a test to add its own flags to.
pub fn exec(scenario: &str, model: &Path) -> Command {
    let mut cmd = runner();
    cmd.arg("exec").arg(scenario).arg("--model").arg(model).arg("--no-progress");
    cmd
}

/// Runs `cmd` to its end and returns its output with stdout and stderr as text. runner must never panic; a
/// guest's own panic message may appear in a sample's error, so only a panic of runner's main thread (or
/// the exit status a panic gives) fails the test.
pub fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("thread 'main'") && out.status.code() != Some(101), "runner panicked:\n{stderr}");
    (out, stdout, stderr)
}

/// [`run`] with stdout and stderr as one text, for tests that look for a message wherever runner prints it.
pub fn run_text(cmd: &mut Command) -> (Output, String) {
    let (out, stdout, stderr) = run(cmd);
    (out, format!("{stdout}\n{stderr}"))
}

/// The tiny generated model of `seed` imported at `precision` ([`runner::testing::write_tiny_model_folder`]),
/// made once per test binary and shared by its tests. A seed's precisions lie side by side beside its GGUF,
/// as setup lays out a model: `models/seed-SEED/{tiny.gguf, int4/, fp32/, ...}`.
pub fn tiny_model(seed: u64, precision: Precision) -> PathBuf {
    static MADE: Mutex<Vec<(u64, Precision, PathBuf)>> = Mutex::new(Vec::new());
    // Held while a folder is made: a seed's precisions share its GGUF, which each import writes again.
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, _, folder)) = made.iter().find(|(s, p, _)| (*s, *p) == (seed, precision)) {
        return folder.clone();
    }
    let dir = scratch().join("models").join(format!("seed-{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    let folder = runner::testing::write_tiny_model_folder(&dir, seed, precision);
    made.push((seed, precision, folder.clone()));
    folder
}

/// Copies the files of the model folder `from` into a new folder `to`, for a test to break the copy.
pub fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The `summary.json` of a results folder.
pub fn read_summary(results: &Path) -> RunSummary {
    serde_json::from_slice(&std::fs::read(results.join(SUMMARY_FILE)).unwrap()).unwrap()
}
