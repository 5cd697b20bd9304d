//! Repository checks that run with the test suite: every Rust module says what it is for in a `//!`
//! paragraph, and the README keeps exactly the two newcomer commands CI relies on.

use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_opens_with_a_doc_paragraph() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["runner/src", "runner/tests", "xtask/src", "scenarios"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap();
            // Test modules split out of their parent (`mod tests;`) and build scripts are documented there.
            let is_split_test = path.file_name().is_some_and(|n| n == "tests.rs");
            !is_split_test && !text.trim_start().starts_with("//!")
        })
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(undocumented.is_empty(), "modules without a `//!` paragraph: {undocumented:#?}");
}

#[test]
fn readme_has_the_two_newcomer_commands_and_ci_runs_the_second() {
    let root = repo_root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("cargo xtask setup && cargo run --release -p runner -- exec scenarios/gsm8k.wasm"));
    assert!(readme.contains("cargo xtask ci"));
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap();
    let commands: Vec<&str> = ci.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(
        commands.last(),
        Some(&"exec cargo xtask ci"),
        ".ci/run must run the README's test command and nothing else"
    );
}
