//! LoRA adapters applied at run time through ONNX Runtime's adapter files.
//!
//! A LoRA-capable model (`runner import --lora-targets ...`) computes, for every targeted projection,
//! `y = x @ W + (x @ A) @ B` where `A` [in, r] and `B` [r, out] are graph inputs whose defaults are
//! initializers of rank 0, so the model without an adapter computes exactly the base model. An adapter is an
//! `.onnx_adapter` file whose tensors ONNX Runtime feeds to those inputs by name.
//!
//! Names are PEFT's state-dict keys (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`), so a
//! PEFT adapter maps onto the model by name; the tensors themselves are in matmul layout (`A` [in, r], `B`
//! [r, out]: PEFT's `[r, in]` / `[out, r]` transposed) and PEFT's `lora_alpha / r` scale is folded into `B`.
//! Q and K projections are in Hugging Face row order (the importer undoes llama.cpp's permutation), as PEFT's
//! are.
//!
//! One job per file: `format` reads and writes the adapter file, `model` finds a model's LoRA inputs and
//! counts its parameters, `peft` converts PEFT safetensors adapters, `command` is `runner adapter`. The input
//! names are the model folder's contract (`crate::model_folder`), which `runner import` writes too; the
//! engine loads a checked adapter into ONNX Runtime and binds it (`crate::engine::LoadedAdapter`).

pub mod command;
pub mod format;
pub mod model;
pub mod peft;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use format::{AdapterFile, AdapterTensor, FormatError};
pub use model::{LoraSlots, ModelInspectError};

pub use crate::model_folder::{LoraTarget, PEFT_PREFIX, Side, parse_input_name};
use crate::rng::SplitMix64;

/// Parses `q_proj,k_proj,...` (or `all`) into a sorted, deduplicated target list.
pub fn parse_targets(list: &str) -> Result<Vec<LoraTarget>, String> {
    if list.trim() == "all" {
        return Ok(LoraTarget::ALL.to_vec());
    }
    let mut targets =
        list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<Vec<_>, _>>()?;
    targets.sort();
    targets.dedup();
    Ok(targets)
}

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Model(#[from] ModelInspectError),
    #[error("adapter {path}: {problem}", path = .path.display())]
    Mismatch { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
}

/// What an adapter is, for results: where it came from and how big it is next to its base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    pub path: PathBuf,
    /// sha256 of the file.
    pub hash: String,
    pub size_bytes: u64,
    pub rank: usize,
    /// Projections it adapts and in how many layers.
    pub targets: Vec<LoraTarget>,
    pub layers: usize,
    pub tensors: usize,
    pub parameters: u64,
    /// The base model's parameters, when the model folder records them.
    pub base_parameters: Option<u64>,
    /// `parameters / base_parameters`.
    pub parameter_share: Option<f64>,
}

impl AdapterInfo {
    pub fn describe(path: &Path, bytes: &[u8], file: &AdapterFile, base_parameters: Option<u64>) -> AdapterInfo {
        let parameters: u64 = file.tensors.iter().map(AdapterTensor::elements).sum();
        let mut targets = Vec::new();
        let mut layers = Vec::new();
        let mut rank = 0;
        for t in &file.tensors {
            if let Some((layer, target, side)) = parse_input_name(&t.name) {
                targets.push(target);
                layers.push(layer);
                if side == Side::A && t.dims.len() == 2 {
                    rank = rank.max(t.dims[1] as usize);
                }
            }
        }
        targets.sort();
        targets.dedup();
        layers.sort();
        layers.dedup();
        AdapterInfo {
            path: path.to_path_buf(),
            hash: crate::provenance::hash_bytes(bytes),
            size_bytes: bytes.len() as u64,
            rank,
            targets,
            layers: layers.len(),
            tensors: file.tensors.len(),
            parameters,
            base_parameters,
            parameter_share: base_parameters.filter(|&b| b > 0).map(|b| parameters as f64 / b as f64),
        }
    }
}

impl fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let targets: Vec<&str> = self.targets.iter().map(|t| t.name()).collect();
        writeln!(f, "adapter     {}", self.path.display())?;
        writeln!(f, "hash        {}", self.hash)?;
        writeln!(f, "size        {:.3} MB ({} bytes)", self.size_bytes as f64 / 1e6, self.size_bytes)?;
        writeln!(f, "rank        {}", self.rank)?;
        writeln!(f, "targets     {} in {} layers ({} tensors)", targets.join(", "), self.layers, self.tensors)?;
        write!(f, "parameters  {}", self.parameters)?;
        if let (Some(base), Some(share)) = (self.base_parameters, self.parameter_share) {
            write!(f, " ({:.4}% of the base model's {base})", share * 100.0)?;
        }
        Ok(())
    }
}

/// Settings of a random adapter (for measuring what an adapter costs).
#[derive(Debug, Clone)]
pub struct RandomAdapter {
    pub rank: usize,
    /// Targets to fill; empty: every target the model has.
    pub targets: Vec<LoraTarget>,
    pub seed: u64,
    /// PEFT's `lora_alpha / r`, folded into `B`.
    pub scale: f32,
}

/// A random adapter for the LoRA inputs of `slots`: `A` uniform in ±1/sqrt(in) (PEFT's Kaiming-uniform bound),
/// `B` uniform in ±1/sqrt(r) times `scale` (PEFT starts `B` at zero, which would measure nothing).
pub fn random_adapter(slots: &LoraSlots, settings: &RandomAdapter) -> Result<AdapterFile, LoraError> {
    if settings.rank == 0 {
        return Err(LoraError::Invalid("--rank must be at least 1".into()));
    }
    if let Some(max) = slots.max_rank
        && settings.rank > max
    {
        return Err(LoraError::Invalid(format!(
            "--rank {} is above the model's LoRA max rank {max} (set at import with --lora-max-rank)",
            settings.rank
        )));
    }
    let present = slots.targets();
    for t in &settings.targets {
        if !present.contains(t) {
            return Err(LoraError::Invalid(format!(
                "--targets names {t}, which the model has no LoRA inputs for (it has: {})",
                present.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut rng = SplitMix64::new(settings.seed);
    let mut file = AdapterFile::default();
    let r = settings.rank;
    for module in slots.modules() {
        if !settings.targets.is_empty() && !settings.targets.contains(&module.target) {
            continue;
        }
        let a = rng.values(module.in_features * r, 1.0 / (module.in_features as f32).sqrt());
        let b = rng.values(r * module.out_features, settings.scale / (r as f32).sqrt());
        let name = |side| module.target.input_name(module.layer, side);
        file.tensors.push(AdapterTensor::from_f32(name(Side::A), &[module.in_features as i64, r as i64], &a));
        file.tensors.push(AdapterTensor::from_f32(name(Side::B), &[r as i64, module.out_features as i64], &b));
    }
    Ok(file)
}

/// Checks that `file` fits the model's LoRA inputs: every tensor names one, is float32, `A` is [in, r] and
/// `B` is [r, out] with the model's in/out, both of a module have the same rank, within the max rank.
pub fn check_against(file: &AdapterFile, slots: &LoraSlots, path: &Path) -> Result<(), LoraError> {
    let mismatch = |problem: String| LoraError::Mismatch { path: path.to_path_buf(), problem };
    file.check_tensors().map_err(|e| mismatch(e.to_string()))?;
    if file.tensors.is_empty() {
        return Err(mismatch("it holds no tensors".into()));
    }
    if slots.is_empty() {
        return Err(mismatch(format!(
            "the model {} has no LoRA inputs; import it with --lora-targets to make it adapter-capable",
            slots.model_path.display()
        )));
    }
    let mut ranks: std::collections::BTreeMap<(usize, LoraTarget), (Option<i64>, Option<i64>)> = Default::default();
    for t in &file.tensors {
        let Some(slot) = slots.slot(&t.name) else {
            return Err(mismatch(format!(
                "tensor `{}` is not a LoRA input of {} (its inputs look like `{}`)",
                t.name,
                slots.model_path.display(),
                slots.example_name()
            )));
        };
        if t.data_type != format::FLOAT {
            return Err(mismatch(format!(
                "tensor `{}` has element type {}; the model's LoRA inputs are float32 (1)",
                t.name, t.data_type
            )));
        }
        let expected = match slot.side {
            Side::A => format!("[{}, r]", slot.features),
            Side::B => format!("[r, {}]", slot.features),
        };
        let (rank, features) = match (t.dims.as_slice(), slot.side) {
            (&[inner, r], Side::A) => (r, inner),
            (&[r, outer], Side::B) => (r, outer),
            _ => return Err(mismatch(format!("tensor `{}` has shape {:?}; expected {expected}", t.name, t.dims))),
        };
        if features != slot.features as i64 {
            return Err(mismatch(format!("tensor `{}` has shape {:?}; expected {expected}", t.name, t.dims)));
        }
        if let Some(max) = slots.max_rank
            && rank > max as i64
        {
            return Err(mismatch(format!(
                "tensor `{}` has rank {rank}, above the model's LoRA max rank {max}",
                t.name
            )));
        }
        let entry = ranks.entry((slot.layer, slot.target)).or_default();
        match slot.side {
            Side::A => entry.0 = Some(rank),
            Side::B => entry.1 = Some(rank),
        }
    }
    for ((layer, target), pair) in ranks {
        let a = target.input_name(layer, Side::A);
        let b = target.input_name(layer, Side::B);
        match pair {
            (Some(ra), Some(rb)) if ra != rb => {
                return Err(mismatch(format!("`{a}` has rank {ra} but `{b}` has rank {rb}")));
            }
            (Some(_), None) => return Err(mismatch(format!("`{a}` has no matching `{b}`"))),
            (None, Some(_)) => return Err(mismatch(format!("`{b}` has no matching `{a}`"))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
