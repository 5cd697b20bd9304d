//! What precision a model really is, read from its ONNX graph rather than from a folder name or a label:
//! initializer totals by element type (inline and external data alike), the quantized operators
//! (MatMulNBits with their bits, block size and accuracy level, GatherBlockQuantized, QLinear* and
//! DynamicQuantize* / MatMulInteger), the float type of activations and KV cache, and a label derived from
//! those ("int4 (MatMulNBits 4-bit block 32 acc 4: 78% of weights; ...) + fp32 activations").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model_folder::LOGITS;
use crate::onnx::proto::{AttributeProto, NodeProto, TensorProto, ValueInfoProto};
use crate::onnx::scan::{ScanError, read_model};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX model: {source}", path = .path.display())]
    Decode { path: PathBuf, source: prost::DecodeError },
    #[error("{path} has no graph", path = .path.display())]
    NoGraph { path: PathBuf },
}

impl From<ScanError> for InspectError {
    fn from(err: ScanError) -> Self {
        match err {
            ScanError::Read { path, source } => InspectError::Read { path, source },
            ScanError::Decode { path, source } => InspectError::Decode { path, source },
        }
    }
}

/// Initializers of one element type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DtypeTotals {
    pub tensors: usize,
    /// Stored elements (a packed 4-bit tensor counts its bytes).
    pub elements: u64,
    pub bytes: u64,
    /// Of `bytes`, those in external data files.
    pub external_bytes: u64,
}

/// Quantized operators of one kind and configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedOps {
    pub op: String,
    pub bits: Option<i64>,
    pub block_size: Option<i64>,
    pub accuracy_level: Option<i64>,
    pub nodes: usize,
    /// Logical weights behind these nodes (K x N for MatMulNBits), each weight tensor counted once.
    pub weights: u64,
}

impl QuantizedOps {
    fn describe(&self) -> String {
        let mut text = self.op.clone();
        if let Some(bits) = self.bits {
            let _ = write!(text, " {bits}-bit");
        }
        if let Some(block) = self.block_size {
            let _ = write!(text, " block {block}");
        }
        if let Some(level) = self.accuracy_level.filter(|l| *l > 0) {
            let _ = write!(text, " acc {level}");
        }
        text
    }
}

/// The precision of a graph, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphReport {
    /// By element type name (`float32`, `float16`, `uint8`...).
    pub initializers: BTreeMap<String, DtypeTotals>,
    pub quantized_ops: Vec<QuantizedOps>,
    /// Logical weights: quantized weights plus float initializers that are not quantization scales or zero points.
    pub weights: u64,
    /// The element type of the logits (or the first float output): what activations are computed in.
    pub activations: Option<String>,
    pub kv_cache: Option<String>,
    /// The dominant weight format: `int4`, `int8`, `fp16`, `fp32`, `bf16`.
    pub weight_precision: String,
    /// One line saying all of it.
    pub label: String,
    /// Nodes by operator type (`domain::op` for non-default domains).
    pub op_counts: BTreeMap<String, usize>,
}

/// ONNX `TensorProto.DataType` names and element sizes in bits.
fn dtype_info(data_type: i32) -> (&'static str, u64) {
    match data_type {
        1 => ("float32", 32),
        2 => ("uint8", 8),
        3 => ("int8", 8),
        4 => ("uint16", 16),
        5 => ("int16", 16),
        6 => ("int32", 32),
        7 => ("int64", 64),
        8 => ("string", 0),
        9 => ("bool", 8),
        10 => ("float16", 16),
        11 => ("float64", 64),
        12 => ("uint32", 32),
        13 => ("uint64", 64),
        16 => ("bfloat16", 16),
        17 => ("float8e4m3fn", 8),
        18 => ("float8e4m3fnuz", 8),
        19 => ("float8e5m2", 8),
        20 => ("float8e5m2fnuz", 8),
        21 => ("uint4", 4),
        22 => ("int4", 4),
        _ => ("unknown", 0),
    }
}

fn short_float_name(dtype: &str) -> String {
    match dtype {
        "float32" => "fp32".into(),
        "float16" => "fp16".into(),
        "bfloat16" => "bf16".into(),
        "float64" => "fp64".into(),
        other => other.into(),
    }
}

fn tensor_bytes(t: &TensorProto, elements: u64, bits: u64) -> (u64, bool) {
    if t.data_location == crate::onnx::proto::DATA_LOCATION_EXTERNAL {
        let length = t.external_data.iter().find(|e| e.key == "length").and_then(|e| e.value.parse().ok());
        return (length.unwrap_or((elements * bits).div_ceil(8)), true);
    }
    let typed = (t.float_data.len() * 4 + t.int32_data.len() * 4 + t.int64_data.len() * 8) as u64;
    (if t.raw_data.is_empty() { typed } else { t.raw_data.len() as u64 }, false)
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a: &&AttributeProto| a.name == name).map(|a| a.i)
}

fn elem_type(values: &[ValueInfoProto], pick: impl Fn(&str) -> bool) -> Option<String> {
    values
        .iter()
        .filter(|v| pick(&v.name))
        .find_map(|v| v.r#type.as_ref()?.tensor_type.as_ref().map(|t| dtype_info(t.elem_type).0.to_string()))
}

/// The input of a quantized operator that holds its weights.
fn quantized_weight_input(op: &str) -> Option<usize> {
    match op {
        "GatherBlockQuantized" => Some(0),
        "MatMulNBits" | "DynamicQuantizeMatMul" | "MatMulInteger" => Some(1),
        "QLinearMatMul" | "QLinearConv" => Some(3),
        _ => None,
    }
}

/// Reads and measures the ONNX model at `path`. Its weights are measured where they lie in the mapped file,
/// never copied: an Optimum export keeps them all inline.
pub fn inspect_model(path: &Path) -> Result<GraphReport, InspectError> {
    let graph = read_model(path)?.graph.ok_or_else(|| InspectError::NoGraph { path: path.to_path_buf() })?;

    let mut initializers: BTreeMap<String, DtypeTotals> = BTreeMap::new();
    let mut elements_of: HashMap<&str, (u64, &'static str)> = HashMap::new();
    for t in &graph.initializer {
        let (name, bits) = dtype_info(t.data_type);
        let elements: u64 = t.dims.iter().map(|d| (*d).max(0) as u64).product();
        let (len, external) = tensor_bytes(t, elements, bits);
        let totals = initializers.entry(name.to_string()).or_default();
        totals.tensors += 1;
        totals.elements += elements;
        totals.bytes += len;
        if external {
            totals.external_bytes += len;
        }
        elements_of.insert(t.name.as_str(), (elements, name));
    }

    let mut op_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: Vec<QuantizedOps> = Vec::new();
    // Initializers that hold quantized data or its scales / zero points: not float weights.
    let mut quant_aux: HashSet<&str> = HashSet::new();
    let mut counted: HashSet<&str> = HashSet::new();
    for node in &graph.node {
        let key = if node.domain.is_empty() || node.domain == "ai.onnx" {
            node.op_type.clone()
        } else {
            format!("{}::{}", node.domain, node.op_type)
        };
        *op_counts.entry(key).or_default() += 1;
        let op = node.op_type.as_str();
        let quantized = matches!(op, "MatMulNBits" | "GatherBlockQuantized" | "MatMulInteger" | "ConvInteger")
            || op.starts_with("QLinear")
            || op.starts_with("DynamicQuantize")
            || op == "QuantizeLinear";
        if !quantized {
            continue;
        }
        let (bits, block_size, accuracy_level) = match op {
            "MatMulNBits" => {
                (attr_int(node, "bits").or(Some(4)), attr_int(node, "block_size"), attr_int(node, "accuracy_level"))
            }
            "GatherBlockQuantized" => (attr_int(node, "bits").or(Some(4)), attr_int(node, "block_size"), None),
            _ => (Some(8), None, None),
        };
        // The input holding the quantized weights, counted once even when two nodes share it (a tied head).
        let mut weights = 0;
        if let Some(input) = quantized_weight_input(op).and_then(|i| node.input.get(i))
            && let Some((elements, _)) = elements_of.get(input.as_str())
            && counted.insert(input.as_str())
        {
            weights = match (op, bits) {
                ("MatMulNBits", _) => {
                    let (k, n) = (attr_int(node, "K").unwrap_or(0), attr_int(node, "N").unwrap_or(0));
                    (k.max(0) * n.max(0)) as u64
                }
                ("GatherBlockQuantized", Some(b)) if b > 0 && b < 8 => elements * (8 / b as u64),
                _ => *elements,
            };
        }
        // Every initializer a quantized node reads is quantized data, a scale or a zero point.
        quant_aux.extend(node.input.iter().map(String::as_str).filter(|i| elements_of.contains_key(i)));
        match groups.iter_mut().find(|g| {
            g.op == node.op_type && g.bits == bits && g.block_size == block_size && g.accuracy_level == accuracy_level
        }) {
            Some(group) => {
                group.nodes += 1;
                group.weights += weights;
            }
            None => groups.push(QuantizedOps {
                op: node.op_type.clone(),
                bits,
                block_size,
                accuracy_level,
                nodes: 1,
                weights,
            }),
        }
    }

    let mut float_weights: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &graph.initializer {
        let (dtype, _) = dtype_info(t.data_type);
        if matches!(dtype, "float32" | "float16" | "bfloat16" | "float64") && !quant_aux.contains(t.name.as_str()) {
            *float_weights.entry(dtype).or_default() += elements_of.get(t.name.as_str()).map_or(0, |e| e.0);
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.weights));
    let quantized_weights: u64 = groups.iter().map(|g| g.weights).sum();
    let float_total: u64 = float_weights.values().sum();
    let weights = quantized_weights + float_total;

    let activations = elem_type(&graph.output, |n| n == LOGITS)
        .or_else(|| elem_type(&graph.output, |_| true).filter(|t| t.starts_with("float") || t.starts_with("bfloat")));
    let kv_cache = elem_type(&graph.input, |n| n.contains("past"));
    let (dominant_float, dominant_float_count) = float_weights
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(d, n)| (short_float_name(d), *n))
        .unwrap_or(("none".into(), 0));
    let weight_precision = match groups.first() {
        // Integer GEMMs over activations quantized by another operator at run time (ONNX Runtime's dynamic
        // quantization): int8 weights and int8 activations.
        Some(top)
            if top.weights >= dominant_float_count
                && matches!(top.op.as_str(), "DynamicQuantizeMatMul" | "MatMulInteger") =>
        {
            "w8a8".to_string()
        }
        Some(top) if top.weights >= dominant_float_count => format!("int{}", top.bits.unwrap_or(8)),
        _ => dominant_float.clone(),
    };
    let share = |n: u64| if weights == 0 { 0.0 } else { 100.0 * n as f64 / weights as f64 };
    let mut parts: Vec<String> = groups
        .iter()
        .filter(|g| g.weights > 0 || quantized_weights == 0)
        .map(|g| format!("{}: {:.0}% of weights", g.describe(), share(g.weights)))
        .collect();
    for (dtype, count) in &float_weights {
        if *count > 0 && !groups.is_empty() {
            parts.push(format!("{}: {:.0}%", short_float_name(dtype), share(*count)));
        }
    }
    let mut label = weight_precision.clone();
    if !parts.is_empty() {
        let _ = write!(label, " ({})", parts.join("; "));
    } else {
        label.push_str(" weights");
    }
    if let Some(act) = &activations {
        let _ = write!(label, " + {} activations", short_float_name(act));
    }
    Ok(GraphReport {
        initializers,
        quantized_ops: groups,
        weights,
        activations,
        kv_cache,
        weight_precision,
        label,
        op_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;
    use crate::import::{ImportOptions, import_gguf};
    use crate::model_folder::{MODEL_DATA_FILE, MODEL_FILE, Precision};
    use crate::onnx::proto::{DATA_LOCATION_EXTERNAL, ModelProto};
    use crate::testing::{LlamaShape, tiny, write_llama_gguf, write_tiny_model_folder};

    fn report(precision: Precision) -> GraphReport {
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model_folder(dir.path(), 5, precision);
        let report = inspect_model(&model.join(MODEL_FILE)).unwrap();
        eprintln!("{precision}: {}", report.label);
        report
    }

    fn group<'r>(report: &'r GraphReport, op: &str, bits: i64) -> Option<&'r QuantizedOps> {
        report.quantized_ops.iter().find(|g| g.op == op && g.bits == Some(bits))
    }

    /// Logical weights of the tiny model's linear layers (QKV, output, gate/up, down per block).
    const LINEAR_WEIGHTS: u64 = (tiny::BLOCKS
        * (tiny::EMBEDDING * (tiny::HEADS + 2 * tiny::KV_HEADS) * tiny::HEAD_DIM
            + tiny::HEADS * tiny::HEAD_DIM * tiny::EMBEDDING
            + tiny::EMBEDDING * 2 * tiny::FFN
            + tiny::FFN * tiny::EMBEDDING)) as u64;
    const EMBEDDING_WEIGHTS: u64 = (tiny::VOCAB * tiny::EMBEDDING) as u64;

    #[test]
    fn int4_is_matmulnbits_4bit_with_an_8bit_embedding() {
        let r = report(Precision::Int4);
        assert_eq!(r.weight_precision, "int4");
        let nibbles = group(&r, "MatMulNBits", 4).unwrap();
        assert_eq!((nibbles.nodes, nibbles.block_size, nibbles.accuracy_level), (4 * tiny::BLOCKS, Some(32), Some(4)));
        assert_eq!(nibbles.weights, LINEAR_WEIGHTS);
        // The tied head reads the embedding's 8-bit blocks: one weight tensor, counted once.
        assert_eq!(group(&r, "GatherBlockQuantized", 8).unwrap().weights, EMBEDDING_WEIGHTS);
        assert_eq!(group(&r, "MatMulNBits", 8).unwrap().weights, 0);
        assert_eq!((r.activations.as_deref(), r.kv_cache.as_deref()), (Some("float32"), Some("float32")));
        assert!(r.initializers["uint8"].external_bytes > 0);
        assert!(r.label.starts_with("int4 (MatMulNBits 4-bit block 32 acc 4: "), "{}", r.label);
        assert!(r.label.ends_with("+ fp32 activations"), "{}", r.label);
    }

    #[test]
    fn int8_is_matmulnbits_8bit_only() {
        let r = report(Precision::Int8);
        assert_eq!(r.weight_precision, "int8");
        assert!(group(&r, "MatMulNBits", 4).is_none());
        let bytes = group(&r, "MatMulNBits", 8).unwrap();
        assert_eq!((bytes.nodes, bytes.weights), (4 * tiny::BLOCKS + 1, LINEAR_WEIGHTS));
        assert!(r.label.starts_with("int8 (") && r.label.ends_with("+ fp32 activations"), "{}", r.label);
    }

    #[test]
    fn fp16_and_fp32_have_no_quantized_ops() {
        for (precision, dtype, short) in [(Precision::Fp16, "float16", "fp16"), (Precision::Fp32, "float32", "fp32")] {
            let r = report(precision);
            assert!(r.quantized_ops.is_empty(), "{precision}: {:?}", r.quantized_ops);
            assert_eq!(r.weight_precision, short);
            assert_eq!((r.activations.as_deref(), r.kv_cache.as_deref()), (Some(dtype), Some(dtype)));
            let floats: Vec<&String> = r.initializers.keys().filter(|k| k.starts_with("float")).collect();
            assert_eq!(floats, [dtype]);
            let totals = &r.initializers[dtype];
            assert_eq!(totals.bytes, totals.elements * if dtype == "float16" { 2 } else { 4 });
            assert!(r.weights >= LINEAR_WEIGHTS + EMBEDDING_WEIGHTS);
            assert_eq!(r.label, format!("{short} weights + {short} activations"));
        }
    }

    /// The model folder `model` as an Optimum export lays out its weights: every initializer's data moved from
    /// the external data file into `dir/model.onnx`, which is returned.
    fn with_inline_weights(model: &Path, dir: &Path) -> PathBuf {
        use prost::Message;
        let mut proto = ModelProto::decode(std::fs::read(model.join(MODEL_FILE)).unwrap().as_slice()).unwrap();
        let data = std::fs::read(model.join(MODEL_DATA_FILE)).unwrap();
        for tensor in proto.graph.as_mut().unwrap().initializer.iter_mut() {
            if tensor.data_location != DATA_LOCATION_EXTERNAL {
                continue;
            }
            let entry = |key: &str| -> usize {
                tensor.external_data.iter().find(|e| e.key == key).map_or(0, |e| e.value.parse().unwrap())
            };
            let (offset, length) = (entry("offset"), entry("length"));
            tensor.raw_data = bytes::Bytes::copy_from_slice(&data[offset..offset + length]);
            tensor.external_data.clear();
            tensor.data_location = 0;
        }
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(MODEL_FILE);
        std::fs::write(&path, proto.encode_to_vec()).unwrap();
        path
    }

    /// Inspection reads a graph without its weights, so weights kept inline (megabytes here, gigabytes in an
    /// Optimum export) are measured where they lie: the report is the one of the same graph with external
    /// weights, only now none of the bytes are external.
    #[test]
    fn inline_weights_are_measured_as_external_ones_are() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("wide.gguf");
        let types = |name: &str| if name == "token_embd.weight" { GgmlType::Q8_0 } else { GgmlType::Q4_1 };
        write_llama_gguf(&gguf, 3, &LlamaShape::K_QUANT, types);
        for precision in [Precision::Int4, Precision::Fp32] {
            let external = dir.path().join(precision.to_string());
            import_gguf(&gguf, &external, &ImportOptions { precision, ..Default::default() }).unwrap();
            let inline = with_inline_weights(&external, &dir.path().join(format!("{precision}-inline")));
            let mut expected = inspect_model(&external.join(MODEL_FILE)).unwrap();
            assert!(expected.initializers.values().any(|t| t.external_bytes > 0), "{precision}: {expected:?}");
            expected.initializers.values_mut().for_each(|t| t.external_bytes = 0);
            assert_eq!(inspect_model(&inline).unwrap(), expected, "{precision}");
            let inline_bytes = std::fs::metadata(&inline).unwrap().len();
            assert!(inline_bytes > 1 << 20, "{precision}: the inline model is only {inline_bytes} bytes");
        }
    }

    #[test]
    fn a_file_that_is_not_onnx_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, b"\xff\xff\xff not protobuf").unwrap();
        let err = inspect_model(&path).unwrap_err().to_string();
        assert!(err.contains("model.onnx") && err.contains("not an ONNX model"), "{err}");
    }
}
