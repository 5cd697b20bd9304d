//! `precision` -> model folder. The default model and a `.gguf` given as the model use the import at
//! `import::default_output_dir(gguf, precision)` (`models/NAME/PRECISION` under runner's home), importing it
//! on demand; a folder of precision subfolders picks the subfolder; a plain model folder is used when its graph
//! is of that precision, as `engine::inspect` reads it, and otherwise, when its graph is fp32 or fp16, the
//! precision is derived from it (`derive`, cached under `models/derived/`). w8a8 is always derived: from a
//! GGUF, out of its fp32 import.

use std::path::{Path, PathBuf};

use crate::derive::{DeriveOptions, FidelityRuntime, derive_model, is_float_source};
use crate::engine::inspect::inspect_model;
use crate::engine::model::graph_file;
use crate::import::{ImportOptions, Precision, default_output_dir, import_gguf};
use crate::model_folder::MODEL_FILE;
use crate::paths;

/// Why a model could not be found at the precision asked for. Messages name the flag (`--precision`) and the
/// folder.
#[derive(Debug, thiserror::Error)]
pub enum ModelChoiceError {
    #[error(
        "--precision {precision}: {model} holds a {found} model ({label}); runner derives other precisions from fp32 \
         or fp16 graphs only: give the folder of the {precision} model or leave --precision out"
    )]
    Mismatch { precision: Precision, model: String, found: String, label: String },
    #[error("--precision {precision}: cannot read the precision of {model}: {message}")]
    Unreadable { precision: Precision, model: String, message: String },
    #[error(
        "--precision {precision}: {model} has no `{precision}` subfolder (it has: {available}); import one with \
         `runner import MODEL.gguf --precision {precision} --out {model}/{precision}`"
    )]
    NoSubfolder { precision: Precision, model: String, available: String },
    #[error(
        "--precision {precision}: cannot choose a precision of the Hub model {model}; name the repository's \
         subfolder of that precision instead (hf:OWNER/REPO/SUBFOLDER)"
    )]
    Hub { precision: Precision, model: String },
    #[error("--precision {precision}: the default model's GGUF {gguf} is not installed (run `cargo xtask setup`)")]
    NoDefaultGguf { precision: Precision, gguf: String },
    #[error("--precision {precision}: importing {gguf} into {out} failed: {message}")]
    Import { precision: Precision, gguf: String, out: String, message: String },
    #[error("--precision {precision}: deriving it from {model} failed: {message}")]
    Derive { precision: Precision, model: String, message: String },
    #[error("--model {model}: no such file or folder")]
    Missing { model: String },
}

/// The model folder a run uses: `model` as given when no precision is asked for (the default model when
/// absent), else the folder of that precision. `.gguf` files are imported on demand, other precisions of a float
/// model folder derived on demand (said on stderr); `runtime` is the ONNX Runtime library the run loads, which
/// measures a derived model's fidelity.
pub fn resolve_model(
    model: Option<&Path>,
    precision: Option<Precision>,
    runtime: &FidelityRuntime,
) -> Result<Option<PathBuf>, ModelChoiceError> {
    let is_gguf = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let Some(precision) = precision else {
        return match model {
            Some(gguf) if is_gguf(gguf) => import_on_demand(gguf, Precision::Int4, runtime).map(Some),
            other => Ok(other.map(Path::to_path_buf)),
        };
    };
    let Some(model) = model else {
        let gguf = paths::default_gguf();
        let out = default_output_dir(&gguf, precision);
        if out.join(MODEL_FILE).is_file() {
            return Ok(Some(out));
        }
        if !gguf.is_file() {
            return Err(ModelChoiceError::NoDefaultGguf { precision, gguf: gguf.display().to_string() });
        }
        return import_on_demand(&gguf, precision, runtime).map(Some);
    };
    let shown = model.display().to_string();
    if shown.starts_with("hf:") {
        return Err(ModelChoiceError::Hub { precision, model: shown });
    }
    if is_gguf(model) {
        if !model.is_file() {
            return Err(ModelChoiceError::Missing { model: shown });
        }
        return import_on_demand(model, precision, runtime).map(Some);
    }
    if !model.is_dir() {
        return Err(ModelChoiceError::Missing { model: shown });
    }
    if let Some(graph) = graph_file(model) {
        let report = inspect_model(&graph).map_err(|e| ModelChoiceError::Unreadable {
            precision,
            model: shown.clone(),
            message: e.to_string(),
        })?;
        if report.weight_precision == precision.to_string() {
            return Ok(Some(model.to_path_buf()));
        }
        if !is_float_source(&report) {
            return Err(ModelChoiceError::Mismatch {
                precision,
                model: shown,
                found: report.weight_precision,
                label: report.label,
            });
        }
        return derive_on_demand(model, precision, runtime).map(Some);
    }
    let sub = model.join(precision.to_string());
    if sub.join(MODEL_FILE).is_file() {
        return Ok(Some(sub));
    }
    // `models/NAME/` as setup lays it out: the GGUF beside its imports.
    let ggufs: Vec<PathBuf> = std::fs::read_dir(model)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_gguf(p) && p.is_file()).collect())
        .unwrap_or_default();
    if let [gguf] = ggufs.as_slice() {
        return gguf_at(gguf, precision, &|p| model.join(p.to_string()), runtime).map(Some);
    }
    // Without a GGUF, a float subfolder is a source to derive from.
    if let Some(float) = [Precision::Fp32, Precision::Fp16].iter().map(|p| model.join(p.to_string())).find(|dir| {
        graph_file(dir).and_then(|graph| inspect_model(&graph).ok()).is_some_and(|report| is_float_source(&report))
    }) {
        return derive_on_demand(&float, precision, runtime).map(Some);
    }
    let available: Vec<String> =
        Precision::ALL.iter().map(|p| p.to_string()).filter(|p| model.join(p).join(MODEL_FILE).is_file()).collect();
    Err(ModelChoiceError::NoSubfolder {
        precision,
        model: shown,
        available: if available.is_empty() { "none".into() } else { available.join(", ") },
    })
}

/// `precision` derived from the float model folder `source` with runner's options, cached in runner's home.
fn derive_on_demand(
    source: &Path,
    precision: Precision,
    runtime: &FidelityRuntime,
) -> Result<PathBuf, ModelChoiceError> {
    derive_model(source, &DeriveOptions::for_precision(precision), runtime).map(|derived| derived.dir).map_err(|e| {
        ModelChoiceError::Derive { precision, model: source.display().to_string(), message: e.to_string() }
    })
}

/// The import of `gguf` at `precision` in runner's home, made when missing.
fn import_on_demand(gguf: &Path, precision: Precision, runtime: &FidelityRuntime) -> Result<PathBuf, ModelChoiceError> {
    gguf_at(gguf, precision, &|p| default_output_dir(gguf, p), runtime)
}

/// `gguf` at `precision` in the folder `folder_of(precision)`, imported when missing; w8a8, which is derived
/// rather than imported, from the fp32 import in `folder_of(fp32)`.
fn gguf_at(
    gguf: &Path,
    precision: Precision,
    folder_of: &dyn Fn(Precision) -> PathBuf,
    runtime: &FidelityRuntime,
) -> Result<PathBuf, ModelChoiceError> {
    if precision == Precision::W8a8 {
        let fp32 = gguf_at(gguf, Precision::Fp32, folder_of, runtime)?;
        return derive_on_demand(&fp32, precision, runtime);
    }
    let out = folder_of(precision);
    if out.join(MODEL_FILE).is_file() {
        return Ok(out);
    }
    import_into(gguf, &out, precision)
}

/// Imports into a fresh sibling folder and renames it into place, so a killed import is never taken for a
/// model and two processes importing at once (shards on one machine) both end with a complete folder.
fn import_into(gguf: &Path, out: &Path, precision: Precision) -> Result<PathBuf, ModelChoiceError> {
    let error = |message: String| ModelChoiceError::Import {
        precision,
        gguf: gguf.display().to_string(),
        out: out.display().to_string(),
        message,
    };
    eprintln!("The {precision} import of {} is missing: importing it into {} ...", gguf.display(), out.display());
    let name = out.file_name().map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let partial = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let options = ImportOptions { precision, force: true, ..Default::default() };
    import_gguf(gguf, &partial, &options).map_err(|e| error(e.to_string()))?;
    if let Err(e) = std::fs::rename(&partial, out) {
        let _ = std::fs::remove_dir_all(&partial);
        if !out.join(MODEL_FILE).is_file() {
            return Err(error(e.to_string()));
        }
    }
    eprintln!("Imported {}", out.display());
    Ok(out.to_path_buf())
}
