//! `cargo xtask fuzz [--seconds N] [--sanitizer none|address] [TARGET...]`: builds the cargo-fuzz targets in
//! `fuzz/` (nightly) and runs each for a bounded time, one after another, then prints a table of executions,
//! speed and crashes per target. Each run starts from the checked-in seeds (`fuzz/seeds/TARGET`), replays
//! every input that once crashed (`fuzz/regressions/TARGET`) and grows a local corpus (`fuzz/corpus/TARGET`,
//! ignored by git). A crash leaves its input under `fuzz/artifacts/TARGET/` and makes the task fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::shell::repo_root;

/// Every target in fuzz/Cargo.toml, in the order they run.
pub const TARGETS: [&str; 4] = ["gguf", "datasets", "task", "results"];

const DEFAULT_SECONDS: u64 = 600;

/// Longest input per target: big enough for the seeds (a small GGUF, a Parquet file), small enough to stay fast.
fn max_len(target: &str) -> usize {
    match target {
        "gguf" => 16 * 1024,
        "datasets" => 8 * 1024,
        _ => 4096,
    }
}

#[derive(Debug, PartialEq)]
pub struct FuzzOptions {
    pub seconds: u64,
    pub sanitizer: String,
    pub targets: Vec<String>,
}

impl FuzzOptions {
    pub fn parse(flags: &[&str]) -> Result<Self> {
        let mut options = FuzzOptions { seconds: DEFAULT_SECONDS, sanitizer: "none".into(), targets: Vec::new() };
        let mut flags = flags.iter();
        while let Some(&flag) = flags.next() {
            match flag {
                "--seconds" => {
                    let value = flags.next().context("--seconds needs a number of seconds")?;
                    options.seconds = value
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .with_context(|| format!("--seconds: `{value}` is not a positive whole number"))?;
                }
                "--sanitizer" => {
                    let value = flags.next().context("--sanitizer needs none or address")?;
                    if !["none", "address"].contains(value) {
                        bail!("--sanitizer: `{value}` is not one of none, address");
                    }
                    options.sanitizer = value.to_string();
                }
                target if TARGETS.contains(&target) => options.targets.push(target.to_string()),
                other => bail!("fuzz: unknown flag or target `{other}` (targets: {})", TARGETS.join(", ")),
            }
        }
        if options.targets.is_empty() {
            options.targets = TARGETS.iter().map(|t| t.to_string()).collect();
        }
        Ok(options)
    }
}

/// What one target's run gave.
struct Outcome {
    target: String,
    seconds: f64,
    executions: Option<u64>,
    crashes: Vec<PathBuf>,
}

pub fn run(options: &FuzzOptions) -> Result<()> {
    let fuzz_dir = repo_root().join("fuzz");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| PathBuf::from(dir).join("fuzz"))
        .unwrap_or_else(|| fuzz_dir.join("target"));
    // `cargo fuzz build` takes one target or all of them.
    let builds: Vec<Option<&str>> = if options.targets.len() == TARGETS.len() {
        vec![None]
    } else {
        options.targets.iter().map(|t| Some(t.as_str())).collect()
    };
    for target in builds {
        let mut build = cargo_fuzz(&fuzz_dir);
        build.args(["build", "--sanitizer", &options.sanitizer, "--target-dir"]).arg(&target_dir).args(target);
        crate::shell::run_command(&mut build).context(
            "cannot build the fuzz targets: they need nightly (`rustup toolchain install nightly`) and cargo-fuzz \
             (`cargo install cargo-fuzz --locked`)",
        )?;
    }
    let mut outcomes = Vec::new();
    for target in &options.targets {
        outcomes.push(fuzz_one(&fuzz_dir, &target_dir, target, options)?);
    }
    println!("{:<10} {:>8} {:>14} {:>10}  crashes", "target", "seconds", "executions", "exec/s");
    for o in &outcomes {
        let executions = o.executions.map_or("?".to_string(), |e| e.to_string());
        let rate = o.executions.map_or("?".to_string(), |e| format!("{:.0}", e as f64 / o.seconds.max(1e-9)));
        let crashes = if o.crashes.is_empty() {
            "0".to_string()
        } else {
            format!(
                "{} ({})",
                o.crashes.len(),
                o.crashes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        };
        println!("{:<10} {:>8.0} {:>14} {:>10}  {crashes}", o.target, o.seconds, executions, rate);
    }
    let crashed: Vec<&str> = outcomes.iter().filter(|o| !o.crashes.is_empty()).map(|o| o.target.as_str()).collect();
    if !crashed.is_empty() {
        bail!(
            "fuzzing found crashes in {}: reproduce with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/FILE`",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly fuzz` from the fuzz crate, with the environment `cargo xtask` set for the stable
/// toolchain removed so that nightly's own cargo and rustc run.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(fuzz_dir).arg("+nightly").arg("fuzz");
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC", "RUSTC_WRAPPER", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

fn fuzz_one(fuzz_dir: &Path, target_dir: &Path, target: &str, options: &FuzzOptions) -> Result<Outcome> {
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
    std::fs::create_dir_all(&artifacts).with_context(|| format!("cannot create {}", artifacts.display()))?;
    let before = crash_files(&artifacts)?;
    let mut cmd = cargo_fuzz(fuzz_dir);
    cmd.args(["run", "--sanitizer", &options.sanitizer, "--target-dir"]).arg(target_dir).arg(target).arg(&corpus);
    for extra in ["seeds", "regressions"] {
        let dir = fuzz_dir.join(extra).join(target);
        if dir.is_dir() {
            cmd.arg(dir);
        }
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", options.seconds))
        .arg(format!("-max_len={}", max_len(target)))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        // One known Parquet input takes ~7 s of CPU in the parquet crate (kept in fuzz/regressions as
        // slow-parquet-many-rows); on a loaded 2-core machine that passes 10 s, so only a minute is a hang.
        .arg("-timeout=60")
        .arg("-rss_limit_mb=2048");
    eprintln!("==> fuzz {target} for {} s", options.seconds);
    let started = Instant::now();
    let output = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start cargo fuzz for {target}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    eprintln!("{}", tail.join("\n"));
    let crashes: Vec<PathBuf> = crash_files(&artifacts)?.into_iter().filter(|p| !before.contains(p)).collect();
    if !output.status.success() && crashes.is_empty() {
        bail!("cargo fuzz run {target} failed ({}) without leaving a crash input", output.status);
    }
    Ok(Outcome { target: target.to_string(), seconds, executions: executions(&log), crashes })
}

/// libFuzzer's `-print_final_stats` line `stat::number_of_executed_units: N`, or its last progress line
/// (`#N ...`) when the run ended in a crash.
fn executions(log: &str) -> Option<u64> {
    let stat = log.lines().find_map(|l| l.strip_prefix("stat::number_of_executed_units:")?.trim().parse().ok());
    stat.or_else(|| log.lines().rev().find_map(|l| l.strip_prefix('#')?.split_whitespace().next()?.parse::<u64>().ok()))
}

fn crash_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if ["crash-", "oom-", "timeout-", "leak-"].iter().any(|p| name.starts_with(p)) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_named() {
        let o = FuzzOptions::parse(&["--seconds", "10", "gguf", "task"]).unwrap();
        assert_eq!(
            o,
            FuzzOptions { seconds: 10, sanitizer: "none".into(), targets: vec!["gguf".into(), "task".into()] }
        );
        assert_eq!(FuzzOptions::parse(&[]).unwrap().targets.len(), TARGETS.len());
        assert!(FuzzOptions::parse(&["--seconds", "-1"]).unwrap_err().to_string().contains("--seconds"));
        assert!(FuzzOptions::parse(&["--seconds"]).unwrap_err().to_string().contains("--seconds"));
        assert!(FuzzOptions::parse(&["nope"]).unwrap_err().to_string().contains("nope"));
        assert!(FuzzOptions::parse(&["--sanitizer", "memory"]).unwrap_err().to_string().contains("--sanitizer"));
    }

    #[test]
    fn executions_come_from_final_stats_or_the_last_progress_line() {
        let log = "#2\tINITED\n#1024\tpulse  cov: 1\nstat::number_of_executed_units: 4096\n";
        assert_eq!(executions(log), Some(4096));
        assert_eq!(executions("#12\tINITED cov: 3\n#777\tNEW cov: 4\n==1== ERROR: deadly signal\n"), Some(777));
    }
}
