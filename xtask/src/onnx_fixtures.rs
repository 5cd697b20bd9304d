//! `cargo xtask onnx-fixtures`: the tiny real model folders under `runner/tests/fixtures/onnx/`, made once by
//! the tools runner claims to read, and committed. runner's own writers of the onnxruntime-genai and Optimum
//! layouts test what runner believes those layouts are; these folders are what the tools really write.
//! `xtask/peers/onnx_fixtures.py` trains a byte-level BPE tokenizer, makes seeded random-weight Hugging Face
//! models of each architecture, builds them with onnxruntime-genai's builder (fp32, int4, and fp16 for one),
//! exports some with Optimum, and records genai's own greedy tokens in each builder folder's `expected.json`,
//! so that the tests hold runner to genai without genai installed. CI never runs this: it reads the folders.
//!
//! `--default-model-builds GGUF` instead builds the default model's weights (the GGUF dequantized by transformers)
//! with the builder at fp32 and int4 into `<target>/onnx-fixtures/default-model/`, the real weights on which
//! `reports/derivation.md` compares runner's derived int4 with genai's own (600 MB: never committed).
//!
//! `--install-peers` makes the Python environments under the target folder: a venv with torch, transformers,
//! onnxruntime-genai and `onnx_ir` (the builder needs it), and beside it a `pip --target` folder with Optimum
//! and the transformers before 4.58 that Optimum's exporter requires.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::bench::{target_dir, venv_python};
use crate::shell::{repo_root, run_command, step};

/// The builder's side: genai pinned to what the fixtures were made with (and onnxruntime to what runner loads).
const PEERS: [&str; 12] = [
    "torch==2.15.0",
    "transformers==5.25.0",
    "tokenizers",
    "onnxruntime==1.31.1",
    "onnxruntime-genai==0.18.0",
    "onnx",
    "onnx_ir",
    "numpy",
    "safetensors",
    "sentencepiece",
    "protobuf",
    // transformers needs it to load a GGUF (`--default-model-builds`).
    "accelerate",
];
/// Optimum's side, installed without dependencies (torch and onnx come from the venv) into its own folder:
/// Optimum's exporter refuses transformers 4.58 and later, which would break the builder's side.
const OPTIMUM: [&str; 5] =
    ["optimum-onnx==0.1.0", "optimum~=2.1.0", "transformers<4.58", "huggingface_hub<1.0", "tokenizers>=0.22,<0.23"];
const VENV: &str = "onnx-fixtures-venv";
const SCRIPT: &str = "xtask/peers/onnx_fixtures.py";
const FIXTURES: &str = "runner/tests/fixtures/onnx";

pub struct FixtureOptions {
    install_peers: bool,
    /// The default model's GGUF, to build with the builder instead of making the fixtures.
    default_model_builds: Option<PathBuf>,
    /// Architectures to make again (all when empty); the others' folders stay as they are.
    archs: Vec<String>,
}

impl FixtureOptions {
    pub fn parse(flags: &[&str]) -> Result<Self> {
        let mut options = FixtureOptions { install_peers: false, default_model_builds: None, archs: Vec::new() };
        let mut flags = flags.iter();
        while let Some(flag) = flags.next() {
            match *flag {
                "--install-peers" => options.install_peers = true,
                "--default-model-builds" => match flags.next() {
                    Some(gguf) => options.default_model_builds = Some(PathBuf::from(gguf)),
                    None => bail!("onnx-fixtures: --default-model-builds needs the default model's GGUF file"),
                },
                arch if !arch.starts_with('-') => options.archs.push(arch.to_string()),
                other => bail!("onnx-fixtures: unknown flag `{other}`"),
            }
        }
        Ok(options)
    }
}

fn python() -> PathBuf {
    venv_python("RUNNER_FIXTURES_PYTHON", VENV)
}

fn optimum_site() -> PathBuf {
    target_dir().join("onnx-fixtures-optimum")
}

fn install_peers() -> Result<()> {
    if !python().is_file() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(target_dir().join(VENV)))?;
    }
    run_command(Command::new(python()).args(["-m", "pip", "install", "--quiet"]).args(PEERS))?;
    run_command(
        Command::new(python())
            .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
            .arg(optimum_site())
            .args(OPTIMUM),
    )
}

pub fn run(options: &FixtureOptions) -> Result<()> {
    if options.install_peers {
        step("install the builder and Optimum", install_peers)?;
    }
    if !python().is_file() {
        bail!("no Python with onnxruntime-genai at {}: run with --install-peers", python().display());
    }
    if let Some(gguf) = &options.default_model_builds {
        let out = target_dir().join("onnx-fixtures/default-model");
        let mut cmd = Command::new(python());
        cmd.arg(repo_root().join(SCRIPT)).arg("--default-model").arg(gguf).arg(&out).env("HF_HUB_OFFLINE", "1");
        return step("build the default model with the builder", || run_command(&mut cmd));
    }
    let fixtures = repo_root().join(FIXTURES);
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join(SCRIPT)).arg(target_dir().join("onnx-fixtures")).arg(&fixtures).args(&options.archs);
    // Both tools on one thread: the models are tiny and the machine is shared.
    cmd.env("OMP_NUM_THREADS", "1").env("HF_HUB_OFFLINE", "1");
    if optimum_site().is_dir() {
        cmd.env("OPTIMUM_PYTHONPATH", optimum_site());
    }
    step("make the fixtures", || run_command(&mut cmd))?;
    run_command(Command::new("du").args(["-sh", "--apparent-size"]).arg(&fixtures))
}
