//! PEFT LoRA adapters (`adapter_model.safetensors` + `adapter_config.json`) converted into ONNX Runtime
//! adapter files: names are kept (they are the model's LoRA input names), `lora_A` [r, in] and `lora_B`
//! [out, r] are transposed into matmul layout, and PEFT's scale (`lora_alpha / r`, or `lora_alpha / sqrt(r)`
//! with `use_rslora`) is folded into `B`.
//!
//! safetensors is an 8-byte little-endian header length, a JSON header mapping each tensor name to its dtype,
//! shape and byte range, then the data; it is read here by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::format::{AdapterFile, AdapterTensor};
use super::{LoraError, Side, parse_input_name};

#[derive(Debug, Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// A tensor read from a safetensors file, widened to float32.
#[derive(Debug, Clone, PartialEq)]
pub struct SafeTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

fn invalid(path: &Path, problem: impl std::fmt::Display) -> LoraError {
    LoraError::Invalid(format!("{}: {problem}", path.display()))
}

/// Every floating-point tensor of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, SafeTensor>, LoraError> {
    let bytes = std::fs::read(path).map_err(|e| invalid(path, format!("cannot read it: {e}")))?;
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| invalid(path, "too short to be a safetensors file"))?;
    let header = bytes
        .get(8..8usize.saturating_add(header_len))
        .ok_or_else(|| invalid(path, format!("the header ({header_len} bytes) runs past the end of the file")))?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| invalid(path, format!("the header is not valid JSON: {e}")))?;
    let data = &bytes[8 + header_len..];
    let mut tensors = BTreeMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let entry: HeaderEntry =
            serde_json::from_value(entry).map_err(|e| invalid(path, format!("tensor `{name}`: {e}")))?;
        let [start, end] = entry.data_offsets;
        let raw = data
            .get(start..end)
            .filter(|_| start <= end)
            .ok_or_else(|| invalid(path, format!("tensor `{name}`: bytes {start}..{end} run past the data")))?;
        let elements: usize = entry.shape.iter().product();
        let values: Vec<f32> = match entry.dtype.as_str() {
            "F32" => raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
            "F16" => raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            "BF16" => raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => {
                return Err(invalid(
                    path,
                    format!("tensor `{name}` has dtype {other}; LoRA weights are F32, F16 or BF16"),
                ));
            }
        };
        if values.len() != elements {
            return Err(invalid(
                path,
                format!("tensor `{name}`: shape {:?} needs {elements} values, found {}", entry.shape, values.len()),
            ));
        }
        tensors.insert(name, SafeTensor { shape: entry.shape, values });
    }
    Ok(tensors)
}

/// The parts of `adapter_config.json` that change the weights.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PeftConfig {
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub use_rslora: bool,
}

impl PeftConfig {
    pub fn read(path: &Path) -> Result<PeftConfig, LoraError> {
        let text = std::fs::read_to_string(path).map_err(|e| invalid(path, format!("cannot read it: {e}")))?;
        serde_json::from_str(&text).map_err(|e| invalid(path, format!("not a PEFT LoRA config: {e}")))
    }

    /// The factor PEFT multiplies `B @ A` by.
    pub fn scale(&self) -> f64 {
        if self.use_rslora { self.lora_alpha / (self.r as f64).sqrt() } else { self.lora_alpha / self.r as f64 }
    }
}

/// Where a PEFT adapter lives: a folder with both files, or the safetensors file with the config beside it.
pub fn peft_files(source: &Path) -> (PathBuf, PathBuf) {
    if source.is_dir() {
        (source.join("adapter_model.safetensors"), source.join("adapter_config.json"))
    } else {
        (source.to_path_buf(), source.with_file_name("adapter_config.json"))
    }
}

/// Converts PEFT tensors into an adapter file with `scale` folded into `B`. Tensors that are not LoRA
/// weights of a known target are refused by name.
pub fn convert(tensors: &BTreeMap<String, SafeTensor>, scale: f64, source: &Path) -> Result<AdapterFile, LoraError> {
    let mut file = AdapterFile::default();
    for (name, tensor) in tensors {
        let Some((_, _, side)) = parse_input_name(name) else {
            return Err(invalid(
                source,
                format!(
                    "tensor `{name}` is not a LoRA weight runner knows (expected names like `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`)"
                ),
            ));
        };
        let &[rows, cols] = tensor.shape.as_slice() else {
            return Err(invalid(
                source,
                format!("tensor `{name}` has shape {:?}; LoRA weights are matrices", tensor.shape),
            ));
        };
        let factor = if side == Side::B { scale as f32 } else { 1.0 };
        let mut transposed = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                transposed[c * rows + r] = tensor.values[r * cols + c] * factor;
            }
        }
        file.tensors.push(AdapterTensor::from_f32(name.clone(), &[cols as i64, rows as i64], &transposed));
    }
    Ok(file)
}

/// Writes a PEFT-layout safetensors file (float32): test support and documentation of the layout.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, SafeTensor>) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, tensor) in tensors {
        let start = data.len();
        data.extend(tensor.values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": tensor.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&header).expect("plain JSON");
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(data);
    std::fs::write(path, bytes)
}
