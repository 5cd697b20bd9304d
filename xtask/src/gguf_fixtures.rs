//! `cargo xtask gguf-fixtures [--install-peers]`: remakes the GGUF fixtures the importer's llama.cpp tests read
//! (runner/tests/fixtures/gguf): tiny random-weight Hugging Face models converted by llama.cpp's own
//! convert_hf_to_gguf.py, quantized by llama.cpp's quantizer, with llama.cpp's logits and token ids recorded in
//! `expected.json` (xtask/peers/gguf_fixtures.py does the work), and vocabulary-only GGUFs (`--vocab-only`) with
//! llama.cpp's ids for Phi-3's special tokens and every BPE pre-tokenizer runner knows. A full remake leaves the
//! committed files byte-identical (seeded). CI reads the committed files and needs neither.
//!
//! Two Pythons: one with torch, transformers, tokenizers and sentencepiece (`RUNNER_FIXTURE_HF_PYTHON`, else the
//! agree task's target/agree-venv) and one with llama-cpp-python (`RUNNER_FIXTURE_LLAMA_PYTHON`, else
//! target/gguf-fixtures-venv, which `--install-peers` makes). The converter is not on PyPI by itself: it ships
//! in llama.cpp's source tree, which llama-cpp-python's source distribution vendors (vendor/llama.cpp).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bench::{target_dir, venv_python};
use crate::shell::{repo_root, run_command};

const SCRIPT: &str = "xtask/peers/gguf_fixtures.py";
const REFERENCE_SCRIPT: &str = "xtask/peers/gguf_reference.py";
const LLAMA_CPP: &str = "llama-cpp-python==0.3.36";
/// A native build segfaults on AMX Xeons in its first decode; AVX2 without AVX-512/AMX runs everywhere here.
const LLAMA_CPP_CMAKE_ARGS: &str = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF";

pub struct FixtureOptions {
    install_peers: bool,
}

impl FixtureOptions {
    pub fn parse(flags: &[&str]) -> Result<Self> {
        let mut options = Self { install_peers: false };
        for flag in flags {
            match *flag {
                "--install-peers" => options.install_peers = true,
                other => bail!("gguf-fixtures: unknown flag `{other}` (it takes --install-peers)"),
            }
        }
        Ok(options)
    }
}

fn hf_python() -> PathBuf {
    venv_python("RUNNER_FIXTURE_HF_PYTHON", "agree-venv")
}

fn llama_python() -> PathBuf {
    venv_python("RUNNER_FIXTURE_LLAMA_PYTHON", "gguf-fixtures-venv")
}

fn install_peers() -> Result<()> {
    let venv = target_dir().join("gguf-fixtures-venv");
    if !llama_python().is_file() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    // scikit-build-core and cmake in the environment itself let the source distribution be fetched without
    // building its build dependencies from source (`pip download --no-build-isolation`).
    run_command(Command::new(llama_python()).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "numpy",
        "scikit-build-core",
        "cmake",
        "ninja",
    ]))?;
    // llama-cpp-python builds llama.cpp from source: about ten minutes on two cores.
    run_command(
        Command::new(llama_python())
            .args(["-m", "pip", "install", "--quiet", "--no-build-isolation", LLAMA_CPP])
            .env("CMAKE_ARGS", LLAMA_CPP_CMAKE_ARGS),
    )?;
    let hf = target_dir().join("agree-venv");
    if std::env::var_os("RUNNER_FIXTURE_HF_PYTHON").is_none() && !hf_python().is_file() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(&hf))?;
        run_command(Command::new(hf_python()).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "torch",
            "transformers",
            "tokenizers",
            "sentencepiece",
            "safetensors",
        ]))?;
    }
    Ok(())
}

/// llama.cpp's convert_hf_to_gguf.py, from llama-cpp-python's source distribution (fetched once).
fn converter() -> Result<PathBuf> {
    let src = target_dir().join("gguf-fixtures-src");
    let version = LLAMA_CPP.split_once("==").map(|(_, v)| v).unwrap_or_default();
    let tree = src.join(format!("llama_cpp_python-{version}"));
    let script = tree.join("vendor/llama.cpp/convert_hf_to_gguf.py");
    if script.is_file() {
        return Ok(script);
    }
    std::fs::create_dir_all(&src)?;
    run_command(
        Command::new(llama_python())
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-build-isolation", "--no-binary"])
            .args(["llama-cpp-python", LLAMA_CPP, "-d"])
            .arg(&src),
    )?;
    let archive = src.join(format!("llama_cpp_python-{version}.tar.gz"));
    run_command(Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(&src))?;
    script.is_file().then_some(script.clone()).with_context(|| format!("{} is not in the sdist", script.display()))
}

pub fn run(options: &FixtureOptions) -> Result<()> {
    if options.install_peers {
        install_peers()?;
    }
    for python in [hf_python(), llama_python()] {
        if !python.is_file() {
            bail!("{} is missing: run `cargo xtask gguf-fixtures --install-peers`", python.display());
        }
    }
    let out = repo_root().join("runner/tests/fixtures/gguf");
    std::fs::create_dir_all(&out)?;
    let script = repo_root().join(SCRIPT);
    run_command(Command::new(hf_python()).arg(&script).arg("hf").arg(&out).arg(converter()?))?;
    run_command(Command::new(llama_python()).arg(&script).arg("llama").arg(&out))?;
    // The judge of exactness: a float64 pass of each fixture's own weights, dequantized by llama.cpp's gguf-py
    // (the same source tree's), beside each fixture as NAME.f64.logits.
    let gguf_py = converter()?.parent().map(|tree| tree.join("gguf-py")).context("converter has no folder")?;
    run_command(
        Command::new(llama_python())
            .env("PYTHONPATH", &gguf_py)
            .arg(repo_root().join(REFERENCE_SCRIPT))
            .arg("fixtures")
            .arg(&out),
    )?;
    // The float32 conversions are the quantizer's input only; the tests read the quantized files.
    remove_dir(&out.join("f32"))
}

fn remove_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}
