//! What a model graph offers adapters: its LoRA inputs (`A` [in, r] and `B` [r, out] per adapted projection),
//! the max rank and base parameter count `runner import` records in the model's metadata. Read from
//! `model.onnx` itself, its weights left in place (`onnx::scan::read_model`), without ONNX Runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{LoraTarget, Side, parse_input_name};
use crate::model_folder::{MAX_RANK_KEY, MODEL_FILE, PARAMETERS_KEY};
use crate::onnx::scan::{ScanError, read_model};

#[derive(Debug, thiserror::Error)]
pub enum ModelInspectError {
    #[error("cannot read model {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX model: {source}", path = .path.display())]
    Decode { path: PathBuf, source: prost::DecodeError },
    #[error("{path}: LoRA input `{name}` has shape {shape}; expected [in, r] for lora_A and [r, out] for lora_B", path = .path.display())]
    Shape { path: PathBuf, name: String, shape: String },
}

/// One LoRA input of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub layer: usize,
    pub target: LoraTarget,
    pub side: Side,
    /// `in` for `A`, `out` for `B`.
    pub features: usize,
}

/// One adapted projection: both its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub layer: usize,
    pub target: LoraTarget,
    pub in_features: usize,
    pub out_features: usize,
}

/// The LoRA inputs of a model, by name.
#[derive(Debug, Clone)]
pub struct LoraSlots {
    pub model_path: PathBuf,
    slots: BTreeMap<String, Slot>,
    pub max_rank: Option<usize>,
    /// The base model's parameter count, when the importer recorded it.
    pub base_parameters: Option<u64>,
}

impl LoraSlots {
    /// Reads the LoRA inputs of the ONNX model at `model_path` (a `model.onnx` file, or a folder holding one).
    pub fn read(model_path: &Path) -> Result<LoraSlots, ModelInspectError> {
        let model_path = if model_path.is_dir() { model_path.join(MODEL_FILE) } else { model_path.to_path_buf() };
        let model = read_model(&model_path).map_err(|err| match err {
            ScanError::Read { path, source } => ModelInspectError::Read { path, source },
            ScanError::Decode { path, source } => ModelInspectError::Decode { path, source },
        })?;
        let meta = |key: &str| -> Option<u64> {
            model.metadata_props.iter().find(|e| e.key == key).and_then(|e| e.value.parse().ok())
        };
        let mut slots = BTreeMap::new();
        for input in model.graph.iter().flat_map(|g| &g.input) {
            let Some((layer, target, side)) = parse_input_name(&input.name) else { continue };
            let dims: Vec<Option<i64>> = input
                .r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .and_then(|t| t.shape.as_ref())
                .map(|s| s.dim.iter().map(|d| d.dim_value).collect())
                .unwrap_or_default();
            let features = match (side, dims.as_slice()) {
                (Side::A, &[Some(inner), _]) | (Side::B, &[_, Some(inner)]) if inner > 0 => inner as usize,
                _ => {
                    return Err(ModelInspectError::Shape {
                        path: model_path.clone(),
                        name: input.name.clone(),
                        shape: format!("{dims:?}"),
                    });
                }
            };
            slots.insert(input.name.clone(), Slot { layer, target, side, features });
        }
        Ok(LoraSlots {
            model_path,
            slots,
            max_rank: meta(MAX_RANK_KEY).map(|r| r as usize),
            base_parameters: meta(PARAMETERS_KEY),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    /// The targets the model can adapt.
    pub fn targets(&self) -> Vec<LoraTarget> {
        let mut targets: Vec<LoraTarget> = self.slots.values().map(|s| s.target).collect();
        targets.sort();
        targets.dedup();
        targets
    }

    /// Every projection that has both inputs, in layer then target order.
    pub fn modules(&self) -> Vec<Module> {
        let mut modules: BTreeMap<(usize, LoraTarget), (Option<usize>, Option<usize>)> = BTreeMap::new();
        for slot in self.slots.values() {
            let entry = modules.entry((slot.layer, slot.target)).or_default();
            match slot.side {
                Side::A => entry.0 = Some(slot.features),
                Side::B => entry.1 = Some(slot.features),
            }
        }
        modules
            .into_iter()
            .filter_map(|((layer, target), pair)| match pair {
                (Some(in_features), Some(out_features)) => Some(Module { layer, target, in_features, out_features }),
                _ => None,
            })
            .collect()
    }

    /// A name to show in errors, so a user sees the naming the model expects.
    pub fn example_name(&self) -> &str {
        self.slots.keys().next().map_or("", String::as_str)
    }
}
