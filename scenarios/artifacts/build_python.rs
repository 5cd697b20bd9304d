//! Builds the Python scenarios (`scenarios/python/NAME/app.py`) into components with componentize-py.
//! The sources are copied into OUT_DIR first, so the interpreter's byte-code caches never land in the
//! checkout. Without componentize-py nothing is built and the reason is reported instead: a checkout
//! without `cargo xtask setup` still builds, and the tests that need a Python component say why they skip.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py release the Python scenarios are built with; `cargo xtask setup` installs it.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A Python scenario folder and, when it was built, its component.
pub struct PythonGuest {
    pub name: String,
    pub dir: PathBuf,
    /// Test fixtures (`scenarios/python/fixtures/NAME`) are built but never installed as scenarios.
    pub fixture: bool,
    pub component: Option<PathBuf>,
}

pub struct PythonBuild {
    pub guests: Vec<PythonGuest>,
    /// Why nothing was built, when componentize-py is missing.
    pub missing_tool: Option<String>,
}

pub fn build_all(python_dir: &Path, wit_dir: &Path, out_dir: &Path) -> PythonBuild {
    println!("cargo:rerun-if-changed={}", python_dir.display());
    println!("cargo:rerun-if-env-changed=RUNNER_COMPONENTIZE_PY");
    let mut guests = find(python_dir);
    let tool = tool_dir(out_dir);
    // Watch the folder that holds the tool, made here if need be (cargo reruns a script on every build
    // while a watched path is missing), so installing componentize-py later triggers a rebuild.
    let watched = tool.parent().unwrap_or(&tool);
    let _ = fs::create_dir_all(watched);
    println!("cargo:rerun-if-changed={}", watched.display());
    if !tool.join("componentize_py").is_dir() {
        let reason = format!(
            "componentize-py {COMPONENTIZE_PY_VERSION} is not installed in {} (run `cargo xtask setup`, or set \
             RUNNER_COMPONENTIZE_PY to a folder made with `python3 -m pip install --target DIR \
             componentize-py=={COMPONENTIZE_PY_VERSION}`)",
            tool.display()
        );
        if !guests.is_empty() {
            println!("cargo:warning=Python scenarios not built: {reason}");
        }
        return PythonBuild { guests, missing_tool: Some(reason) };
    }
    for guest in &mut guests {
        println!("cargo:rerun-if-changed={}", guest.dir.display());
        guest.component = Some(build_one(&tool, wit_dir, out_dir, guest));
    }
    PythonBuild { guests, missing_tool: None }
}

/// Every folder under `scenarios/python/` with an `app.py` is a scenario named after the folder; those under
/// `scenarios/python/fixtures/` are test fixtures.
fn find(python_dir: &Path) -> Vec<PythonGuest> {
    let mut guests = Vec::new();
    for (dir, fixture) in [(python_dir.to_path_buf(), false), (python_dir.join("fixtures"), true)] {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for dir in dirs.into_iter().filter(|dir| dir.join("app.py").is_file()) {
            let name = dir.file_name().and_then(|n| n.to_str()).expect("scenario folder names are UTF-8").to_string();
            guests.push(PythonGuest { name, dir, fixture, component: None });
        }
    }
    guests
}

/// `RUNNER_COMPONENTIZE_PY`, else `<target>/py-tools/componentize-py-VERSION` where `<target>` is the
/// outer build's target directory (the one `cargo xtask setup` installs into).
fn tool_dir(out_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("RUNNER_COMPONENTIZE_PY") {
        return PathBuf::from(dir);
    }
    let target = out_dir.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file()).unwrap_or(out_dir);
    target.join("py-tools").join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"))
}

/// Builds one scenario, unless the component from an identical input (sources, WIT, componentize-py
/// version) is already there: componentize-py takes 10-20 s, and this script reruns whenever any guest changes.
fn build_one(tool: &Path, wit_dir: &Path, out_dir: &Path, guest: &PythonGuest) -> PathBuf {
    let work = out_dir.join("python").join(&guest.name);
    let component = work.join(format!("{}.wasm", guest.name));
    let stamp = work.join("inputs.stamp");
    let inputs = input_fingerprint(&guest.dir, wit_dir);
    if component.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == inputs) {
        return component;
    }
    let sources = work.join("src");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&sources).unwrap_or_else(|e| panic!("create {}: {e}", sources.display()));
    for path in app_files(&guest.dir) {
        let name = path.file_name().expect("a listed file has a name");
        fs::copy(&path, sources.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
    }
    let python = env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let mut command = Command::new(python);
    command
        .env("PYTHONPATH", tool)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args([
            "-c",
            "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())",
        ])
        .arg("-d")
        .arg(wit_dir)
        .args(["-w", "scenario", "componentize", "-p"])
        .arg(&sources)
        .args(["app", "-o"])
        .arg(&component);
    eprintln!("running: {command:?}");
    let status = command.status().unwrap_or_else(|e| panic!("cannot start python3 to run componentize-py: {e}"));
    if !status.success() || !component.is_file() {
        panic!("componentize-py failed to build the Python scenario `{}` ({status}); see the errors above", guest.name);
    }
    fs::write(&stamp, inputs).unwrap_or_else(|e| panic!("write {}: {e}", stamp.display()));
    component
}

/// The files that go into the component: everything in the folder but tests (`test_*`), sorted.
fn app_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().and_then(|n| n.to_str()).unwrap_or("test_").starts_with("test_"))
        .collect();
    files.sort();
    files
}

/// FNV-1a over the version, the app's files and the WIT files (names and contents).
fn input_fingerprint(app_dir: &Path, wit_dir: &Path) -> String {
    let mut wit_files: Vec<PathBuf> =
        fs::read_dir(wit_dir).map(|e| e.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    wit_files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(COMPONENTIZE_PY_VERSION.as_bytes());
    for path in app_files(app_dir).into_iter().chain(wit_files) {
        feed(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        feed(&fs::read(&path).unwrap_or_default());
    }
    format!("{hash:016x}")
}
