//! `cargo xtask ci`: what CI runs on a clean clone. Setup first (the tests use the real default model and
//! the real ONNX Runtime library), then formatting, lints, and the whole test suite.

use std::time::Instant;

use anyhow::Result;

use crate::setup::{self, SetupOptions};
use crate::shell::{cargo, run_command, step};

pub fn run() -> Result<()> {
    let started = Instant::now();
    setup::run(&SetupOptions::default())?;
    step("cargo fmt --check", || run_command(cargo().args(["fmt", "--all", "--check"])))?;
    step("cargo clippy", || {
        run_command(cargo().args(["clippy", "--workspace", "--all-targets", "--release", "--", "-D", "warnings"]))
    })?;
    step("cargo test", || run_command(cargo().args(["test", "--workspace", "--release"])))?;
    eprintln!("ci: all green in {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    Ok(())
}
