//! A LoRA adapter as the engine runs it: the file read and checked against the model's LoRA inputs by
//! `crate::lora`, accepted by ONNX Runtime's own adapter loader, and turned into the tensors the session
//! binds to those inputs while the adapter is active ([`super::Engine::set_adapter`]).

use std::path::Path;
use std::sync::Arc;

use super::AdapterInputs;
use crate::lora::{AdapterFile, AdapterInfo, FormatError, LoraError, LoraSlots, check_against};

/// An adapter checked against a model and by ONNX Runtime's own loader, ready for `Engine::set_adapter`.
pub struct LoadedAdapter {
    pub info: AdapterInfo,
    /// Its tensors as ONNX Runtime values, bound to the model's LoRA inputs while the adapter is active.
    pub(crate) inputs: AdapterInputs,
}

impl LoadedAdapter {
    /// Reads `path`, checks it against the model at `model_path` and hands it to ONNX Runtime (which must be
    /// loaded: the engine is).
    pub fn load(path: &Path, model_path: &Path) -> Result<LoadedAdapter, LoraError> {
        let bytes = std::fs::read(path)
            .map_err(|source| LoraError::Format(FormatError::Read { path: path.to_path_buf(), source }))?;
        let file = AdapterFile::from_bytes(&bytes, path)?;
        let slots = LoraSlots::read(model_path)?;
        check_against(&file, &slots, path)?;
        let refused = |err: ort::Error| LoraError::Mismatch {
            path: path.to_path_buf(),
            problem: format!("ONNX Runtime refused it: {err}"),
        };
        // The engine binds the tensors itself (an IO binding ignores RunOptions adapters), but a file ONNX
        // Runtime's adapter loader rejects is refused here rather than left to fail in other tools.
        ort::session::Adapter::from_memory(&bytes, None).map_err(refused)?;
        let mut inputs = Vec::with_capacity(file.tensors.len());
        for t in &file.tensors {
            let values = t.to_f32().expect("checked: float32");
            let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            inputs.push((t.name.clone(), ort::value::Tensor::from_array((shape, values)).map_err(refused)?));
        }
        let info = AdapterInfo::describe(path, &bytes, &file, slots.base_parameters);
        Ok(LoadedAdapter { info, inputs: Arc::new(inputs) })
    }
}
