//! Running commands from tasks: echo what runs, fail with the command named, time each step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The repository root (xtask lives one folder below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the repository").to_path_buf()
}

/// A cargo command in the repository root, with the environment a plain `cargo` in a shell has. `cargo
/// xtask` runs this program with the variables cargo sets for a package's binary (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`...); passed on, they reach build scripts that rerun when they change (ring reads
/// `CARGO_MANIFEST_DIR`), so the inner build and a later `cargo run -p runner` would each rebuild ring,
/// rustls, ureq and runner for the other. Without them both share one build.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_set_by_cargo_for_this_binary) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The variables cargo sets for the binary it runs (the Cargo book, "Environment variables Cargo sets for
/// crates"), which a shell's cargo does not see. `CARGO` itself stays: it names the toolchain's cargo.
fn is_set_by_cargo_for_this_binary(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// Runs a command with inherited output; an error names it.
pub fn run_command(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its standard output; standard error passes through.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = describe(cmd);
    let out = cmd.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{shown}` printed something that is not UTF-8"))
}

/// Runs one named step and reports how long it took.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let value = f().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("<== {name}: {:.1} s", started.elapsed().as_secs_f64());
    Ok(value)
}
