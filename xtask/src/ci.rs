//! `cargo xtask ci`: what CI runs on a clean clone. Setup first (the tests use the real default model and
//! the real ONNX Runtime library), then formatting, lints, and the whole test suite.

use std::time::Instant;

use anyhow::Result;

use crate::setup::{self, BuildScope, SetupOptions};
use crate::shell::{cargo, run_command, step};

/// Debian's `chromium`, installed with apt when missing and running as root; elsewhere a clear message
/// (the report test fails under CI=true without it).
fn ensure_chromium() -> Result<()> {
    let found =
        |name: &str| std::process::Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    if found("chromium") || found("chromium-browser") {
        return Ok(());
    }
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root || !found("apt-get") {
        eprintln!("chromium is not installed and cannot be installed here (needs root and apt-get); install it");
        return Ok(());
    }
    run_command(std::process::Command::new("apt-get").arg("update"))?;
    run_command(std::process::Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "chromium"]))
}

pub fn run() -> Result<()> {
    let started = Instant::now();
    setup::run(&SetupOptions { scope: BuildScope::Workspace, ..SetupOptions::default() })?;
    step("chromium (the HTML report test renders pages headless)", ensure_chromium)?;
    step("cargo fmt --check", || run_command(cargo().args(["fmt", "--all", "--check"])))?;
    step("cargo clippy", || {
        run_command(cargo().args(["clippy", "--workspace", "--all-targets", "--release", "--", "-D", "warnings"]))
    })?;
    step("cargo test", || {
        // Every finished run registers itself as a baseline, and scenarios are precompiled into the cache:
        // the suite gets a cache of its own, emptied first, so it never writes to the user's.
        let cache = std::env::current_dir()?.join("target").join("test-cache");
        let _ = std::fs::remove_dir_all(&cache);
        // --no-fail-fast: one red test binary must not hide what the others would have said.
        run_command(
            cargo().args(["test", "--workspace", "--release", "--no-fail-fast"]).env("RUNNER_CACHE_DIR", &cache),
        )
    })?;
    eprintln!("ci: all green in {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    Ok(())
}
