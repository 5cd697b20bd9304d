//! Where runner keeps what setup installs (the ONNX Runtime library and the default model) and its cache.
//!
//! Everything lives under one folder, `$RUNNER_HOME`, defaulting to `$XDG_DATA_HOME/runner` (or
//! `~/.local/share/runner`), so setup and `runner` agree on locations without the user setting variables.

use std::path::PathBuf;

/// runner's cache (compiled scenario components, the baseline registry): `$RUNNER_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/runner`, else `~/.cache/runner`. Everything in it is safe to delete.
pub fn cache_dir() -> PathBuf {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("RUNNER_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("runner")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/runner")))
        .unwrap_or_else(|| PathBuf::from(".cache/runner"))
}

/// The ONNX Runtime release runner is built against (ort's `api-31`).
pub const ORT_VERSION: &str = "1.31.1";
/// The default model's name, as a folder under `models/`.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct";
/// The precision of the default model's folder.
pub const DEFAULT_PRECISION: &str = "int4";

/// The root of runner's installed files.
pub fn runner_home() -> PathBuf {
    if let Some(home) = std::env::var_os("RUNNER_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("runner");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/runner")
}

/// The folder holding the ONNX Runtime shared library of one flavour (`cpu` or `gpu`).
pub fn ort_dir(flavour: &str) -> PathBuf {
    runner_home().join("onnxruntime").join(format!("{ORT_VERSION}-{flavour}"))
}

/// The file name of the ONNX Runtime library in the PyPI wheels.
pub fn ort_lib_name() -> String {
    format!("libonnxruntime.so.{ORT_VERSION}")
}

/// Where a model's files live: `models/NAME/` holds the source GGUF and one folder per precision.
pub fn model_dir(name: &str) -> PathBuf {
    runner_home().join("models").join(name)
}

/// The model folder used when `--model` is not given.
pub fn default_model() -> PathBuf {
    model_dir(DEFAULT_MODEL).join(DEFAULT_PRECISION)
}

/// The default model's GGUF, as setup leaves it.
pub fn default_gguf() -> PathBuf {
    model_dir(DEFAULT_MODEL).join(format!("{DEFAULT_MODEL}.Q4_1.gguf"))
}
