//! The graph rewrite behind a derivation: the source model decoded (its external data mapped, never copied
//! whole), `MatMul`s with constant float weights replaced by `MatMulNBits` or `DynamicQuantizeMatMul`, or the
//! float type of the whole
//! graph changed, and the result written as `GRAPH` + `GRAPH.data` with every large initializer in the new
//! data file.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path};

use half::f16;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::{DeriveError, DeriveOptions, io_error};
use crate::import::Precision;
use crate::import::quant::NbitsBlocks;
use crate::onnx::proto::{
    AttributeProto, DATA_LOCATION_EXTERNAL, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    attribute_type,
};
use crate::onnx::{Attr, DataType, GraphBuilder};

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;
const INT64: i32 = DataType::Int64 as i32;
const BOOL: i32 = 9;
const STRING: i32 = 8;
const MS: &str = "com.microsoft";
/// What float16 holds at most; finite float32 constants beyond it are mask fills ("minus infinity").
const F16_MAX: f32 = 65504.0;
/// What such a fill becomes in float16: onnxconverter-common's clamp, small enough that two fills added (a
/// padding mask and a causal mask) stay finite, so a fully masked row softmaxes to numbers, not NaN.
const F16_FILL: f32 = 1e4;

/// What a rewrite did, recorded in `derived.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RewriteStats {
    /// `MatMul`s that became `MatMulNBits` (int4, int8) or `DynamicQuantizeMatMul` (w8a8).
    #[serde(default)]
    pub quantized_matmuls: usize,
    /// Distinct weights quantized (a weight two MatMuls share counts once).
    #[serde(default)]
    pub quantized_weights: usize,
    /// Quantized weights whose float initializer stays because another node reads it too (a tied embedding).
    #[serde(default)]
    pub shared_weights_kept: usize,
    /// Float initializers and constants converted to the other float type.
    #[serde(default)]
    pub converted_tensors: usize,
    /// Nodes left in float32 by an fp16 conversion (rotary angles, float Ranges), with Casts at their edges.
    #[serde(default)]
    pub float32_nodes: Vec<String>,
    /// Finite constants beyond float16's range, set to ±1e4 by an fp16 conversion.
    #[serde(default)]
    pub clamped_values: u64,
}

/// The source graph's external data files, mapped.
struct ExternalData {
    maps: HashMap<String, memmap2::Mmap>,
}

impl ExternalData {
    fn location(t: &TensorProto) -> Option<&str> {
        t.external_data.iter().find(|e| e.key == "location").map(|e| e.value.as_str())
    }

    /// Maps every file the graph's external tensors name (inside `dir` only).
    fn open(dir: &Path, graph: &GraphProto) -> Result<Self, DeriveError> {
        let mut maps = HashMap::new();
        let attribute_tensors = graph.node.iter().flat_map(|n| n.attribute.iter().filter_map(|a| a.t.as_ref()));
        for t in graph.initializer.iter().chain(attribute_tensors) {
            if t.data_location != DATA_LOCATION_EXTERNAL {
                continue;
            }
            let Some(location) = Self::location(t) else {
                return Err(DeriveError::Unsupported(format!("tensor `{}` has external data but no location", t.name)));
            };
            if maps.contains_key(location) {
                continue;
            }
            if !Path::new(location).components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(DeriveError::Unsupported(format!(
                    "tensor `{}` keeps its data outside the model folder ({location})",
                    t.name
                )));
            }
            let path = dir.join(location);
            let file = std::fs::File::open(&path).map_err(io_error(&path))?;
            // SAFETY: read-only map of a model file, dropped when the rewrite ends; a model file changing under
            // a derivation is not a case runner defends against.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error(&path))?;
            maps.insert(location.to_string(), map);
        }
        Ok(Self { maps })
    }

    /// The tensor's data as raw little-endian bytes, wherever the tensor keeps it.
    fn bytes<'a>(&'a self, t: &'a TensorProto) -> Result<Cow<'a, [u8]>, DeriveError> {
        if t.data_location == DATA_LOCATION_EXTERNAL {
            let entry = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
            let map = Self::location(t).and_then(|l| self.maps.get(l)).expect("every location was mapped");
            let offset: usize = entry("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
            let length: usize =
                entry("length").and_then(|v| v.parse().ok()).unwrap_or(map.len().saturating_sub(offset));
            let range = offset..offset.saturating_add(length);
            return map.get(range).map(Cow::Borrowed).ok_or_else(|| {
                DeriveError::Unsupported(format!(
                    "tensor `{}`: its external data runs past the end of the file",
                    t.name
                ))
            });
        }
        Ok(inline_bytes(t))
    }

    /// A float32 or float16 tensor's values as f32.
    fn floats(&self, t: &TensorProto) -> Result<Vec<f32>, DeriveError> {
        let bytes = self.bytes(t)?;
        Ok(floats_of(t.data_type, &bytes))
    }
}

/// An inline tensor's data as raw little-endian bytes (from `raw_data` or the typed fields).
fn inline_bytes(t: &TensorProto) -> Cow<'_, [u8]> {
    if !t.raw_data.is_empty() {
        return Cow::Borrowed(&t.raw_data);
    }
    let bytes: Vec<u8> = match t.data_type {
        FLOAT => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        // float16, bfloat16 and the 16-bit integers keep one value per int32.
        10 | 16 | 4 | 5 => t.int32_data.iter().flat_map(|v| (*v as u16).to_le_bytes()).collect(),
        2 | 3 | BOOL => t.int32_data.iter().map(|v| *v as u8).collect(),
        6 => t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        INT64 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        11 => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        12 | 13 => t.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => Vec::new(),
    };
    Cow::Owned(bytes)
}

fn floats_of(data_type: i32, bytes: &[u8]) -> Vec<f32> {
    match data_type {
        FLOAT16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `values` in `data_type` (float32 or float16) as raw bytes; narrowing to float16 sets finite values beyond
/// its range to ±[`F16_FILL`] and counts them.
fn float_bytes(data_type: i32, values: &[f32], clamped: &mut u64) -> Vec<u8> {
    if data_type != FLOAT16 {
        return f32_bytes(values);
    }
    values
        .iter()
        .flat_map(|&v| {
            let v = if v.is_finite() && v.abs() > F16_MAX {
                *clamped += 1;
                F16_FILL.copysign(v)
            } else {
                v
            };
            f16::from_f32(v).to_le_bytes()
        })
        .collect()
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn is_default_domain(node: &NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

fn has_subgraphs(node: &NodeProto) -> bool {
    node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty())
}

/// Every value name the nodes of `graph` (and of their subgraphs) read.
fn count_uses(graph: &GraphProto, uses: &mut HashMap<String, usize>) {
    for node in &graph.node {
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            *uses.entry(input.clone()).or_default() += 1;
        }
        for a in &node.attribute {
            a.g.iter().map(|g| &**g).chain(&a.graphs).for_each(|g| count_uses(g, uses));
        }
    }
}

/// Rewrites the graph `source` into `out_dir` (same file name, data in `NAME.data`) for `options`; returns what
/// it did and the source's external data files (which the derived folder does not need).
pub fn rewrite_model(
    source: &Path,
    out_dir: &Path,
    options: &DeriveOptions,
) -> Result<(RewriteStats, Vec<String>), DeriveError> {
    let bytes = std::fs::read(source).map_err(io_error(source))?;
    let mut model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| DeriveError::Decode { path: source.to_path_buf(), source: e })?;
    drop(bytes);
    let graph =
        model.graph.take().ok_or_else(|| DeriveError::Unsupported(format!("{} has no graph", source.display())))?;
    let dir = source.parent().unwrap_or(Path::new("."));
    let data = ExternalData::open(dir, &graph)?;
    let file_name = source.file_name().expect("a graph file has a name").to_string_lossy().into_owned();
    let mut b = GraphBuilder::with_graph(out_dir, &format!("{file_name}.data"), graph)?;
    let mut stats = RewriteStats::default();
    let mut written: HashSet<String> = HashSet::new();
    match options.precision {
        Precision::Int4 | Precision::Int8 | Precision::W8a8 => {
            let scheme = match options.precision {
                Precision::W8a8 => Scheme::Dynamic,
                precision => Scheme::Nbits {
                    bits: if precision == Precision::Int4 { 4 } else { 8 },
                    block: options.block_size.unwrap_or(super::BLOCK_SIZE),
                    level: options.accuracy_level.unwrap_or(super::ACCURACY_LEVEL),
                },
            };
            quantize_matmuls(&mut b, &data, scheme, &mut written, &mut stats)?;
            if stats.quantized_matmuls == 0 {
                return Err(DeriveError::Unsupported(format!(
                    "{} has no MatMul with a constant 2-D float weight to quantize",
                    source.display()
                )));
            }
            if !model.opset_import.iter().any(|o| o.domain == MS) {
                model.opset_import.push(OperatorSetIdProto { domain: MS.into(), version: 1 });
            }
        }
        Precision::Fp16 => convert_floats(&mut b, &data, FLOAT, FLOAT16, &mut written, &mut stats)?,
        Precision::Fp32 => convert_floats(&mut b, &data, FLOAT16, FLOAT, &mut written, &mut stats)?,
    }
    relocate_external(&mut b, &data, &written)?;
    for prop in &mut model.metadata_props {
        match prop.key.as_str() {
            "runner.precision" => prop.value = options.precision.to_string(),
            "runner.accuracy_level" => prop.value = options.accuracy_level.unwrap_or(0).to_string(),
            _ => {}
        }
    }
    b.finish_model(&out_dir.join(&file_name), model)?;
    Ok((stats, data.maps.into_keys().collect()))
}

/// Moves every tensor still in the source's external data into the new data file (or inline, when small).
fn relocate_external(b: &mut GraphBuilder, data: &ExternalData, written: &HashSet<String>) -> Result<(), DeriveError> {
    let mut initializers = std::mem::take(&mut b.graph_mut().initializer);
    for t in initializers.iter_mut().filter(|t| t.data_location == DATA_LOCATION_EXTERNAL && !written.contains(&t.name))
    {
        let bytes = data.bytes(t)?.into_owned();
        b.store(t, &bytes)?;
    }
    b.graph_mut().initializer = initializers;
    let mut nodes = std::mem::take(&mut b.graph_mut().node);
    for t in nodes.iter_mut().flat_map(|n| n.attribute.iter_mut().filter_map(|a| a.t.as_mut())) {
        if t.data_location == DATA_LOCATION_EXTERNAL {
            let bytes = data.bytes(t)?.into_owned();
            b.store(t, &bytes)?;
        }
    }
    b.graph_mut().node = nodes;
    Ok(())
}

/// How a float weight becomes integer.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    /// `MatMulNBits`: `bits`-bit levels in blocks of `block` along K, asymmetric (uint8 zero points).
    Nbits { bits: u8, block: usize, level: u8 },
    /// `DynamicQuantizeMatMul`: int8 levels symmetric per output column (zero points 0), activations quantized
    /// to uint8 per tensor at run time: the u8 x s8 integer GEMM ONNX Runtime runs on AMX and VNNI.
    Dynamic,
}

/// One weight's integer form: the initializers that replace it (after the activation input) and the node.
struct IntegerWeight {
    inputs: Vec<String>,
    op: &'static str,
    attributes: Vec<crate::onnx::proto::AttributeProto>,
}

/// The largest int8 weight level w8a8 writes: 7 bits, as ONNX Runtime's quantizer's `reduce_range`. x86 CPUs
/// without VNNI (AVX2 only) multiply uint8 activations by int8 weights in pairs summed into int16
/// (`vpmaddubsw`), which saturates when both are near full range (255 · 127 · 2 > 32,767); 7-bit weights keep
/// every pair in range, so the same folder gives the same products on AVX2, VNNI and AMX machines.
const W8A8_WEIGHT_LEVEL: f32 = 63.0;

/// `W` ([k, n], row-major) as int8 levels symmetric per column: `W[r][c] ≈ q[r][c] · scale[c]`,
/// |q| ≤ [`W8A8_WEIGHT_LEVEL`].
fn int8_per_column(values: &[f32], k: usize, n: usize) -> (Vec<u8>, Vec<f32>) {
    let mut scales = vec![0f32; n];
    for row in values.chunks_exact(n) {
        for (scale, v) in scales.iter_mut().zip(row) {
            *scale = scale.max(v.abs());
        }
    }
    scales.iter_mut().for_each(|s| *s = if *s > 0.0 { *s / W8A8_WEIGHT_LEVEL } else { 1.0 });
    let mut levels = Vec::with_capacity(k * n);
    for row in values.chunks_exact(n) {
        levels.extend(
            row.iter()
                .zip(&scales)
                .map(|(v, s)| (v / s).round().clamp(-W8A8_WEIGHT_LEVEL, W8A8_WEIGHT_LEVEL) as i8 as u8),
        );
    }
    (levels, scales)
}

/// Replaces every `MatMul(A, W)` whose `W` is a 2-D float initializer (not a graph input) by the integer
/// operator of `scheme` over `W` quantized; `W` stays only where another node still reads it.
fn quantize_matmuls(
    b: &mut GraphBuilder,
    data: &ExternalData,
    scheme: Scheme,
    written: &mut HashSet<String>,
    stats: &mut RewriteStats,
) -> Result<(), DeriveError> {
    let graph = b.graph_mut();
    let index: HashMap<String, usize> =
        graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let graph_inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    let graph_outputs: HashSet<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
    let mut uses = HashMap::new();
    count_uses(graph, &mut uses);
    for output in &graph.output {
        *uses.entry(output.name.clone()).or_default() += 1;
    }
    let targets: Vec<usize> = (graph.node.iter().enumerate())
        .filter(|(_, n)| n.op_type == "MatMul" && is_default_domain(n) && n.input.len() == 2)
        .filter(|(_, n)| {
            let weight = &n.input[1];
            index.get(weight).is_some_and(|&i| {
                let t = &graph.initializer[i];
                matches!(t.data_type, FLOAT | FLOAT16) && t.dims.len() == 2 && t.dims.iter().all(|d| *d > 0)
            }) && !graph_inputs.contains(weight.as_str())
        })
        // w8a8 keeps the head float: it runs only where logits are wanted (the trimmed positions), so quantizing
        // its input saves nothing and costs fidelity (measured on the default model: mean KL 2.9e-2 with it
        // quantized, 2.5e-2 without, and 10 % more MMLU questions a second).
        .filter(|(_, n)| {
            !(matches!(scheme, Scheme::Dynamic) && n.output.iter().any(|o| graph_outputs.contains(o.as_str())))
        })
        .map(|(i, _)| i)
        .collect();

    let mut quantized: BTreeMap<String, IntegerWeight> = BTreeMap::new();
    for node_index in targets {
        let weight = b.graph_mut().node[node_index].input[1].clone();
        if !quantized.contains_key(&weight) {
            let tensor = &b.graph_mut().initializer[index[&weight]];
            let (k, n, scale_type) = (tensor.dims[0] as usize, tensor.dims[1] as usize, tensor.data_type);
            let values = data.floats(tensor)?;
            if values.len() != k * n {
                return Err(DeriveError::Unsupported(format!(
                    "initializer `{weight}` holds {} values for its shape [{k}, {n}]",
                    values.len()
                )));
            }
            let integer = match scheme {
                Scheme::Nbits { bits, block, level } => {
                    // MatMulNBits takes W transposed: N rows of K.
                    let mut blocks = NbitsBlocks::new(bits, block, k);
                    let mut row = vec![0f32; k];
                    for col in 0..n {
                        for (r, slot) in row.iter_mut().enumerate() {
                            *slot = values[r * n + col];
                        }
                        blocks.push_row(&row);
                    }
                    drop(values);
                    let count = blocks.blocks() as i64;
                    let blob = (block * usize::from(bits) / 8) as i64;
                    let qweight = b.initializer(
                        &format!("{weight}_Q{bits}"),
                        DataType::Uint8,
                        &[n as i64, count, blob],
                        &blocks.data,
                    )?;
                    let (scale_dtype, scale_bytes) = if scale_type == FLOAT16 {
                        (DataType::Float16, float_bytes(FLOAT16, &blocks.scales, &mut 0))
                    } else {
                        (DataType::Float, f32_bytes(&blocks.scales))
                    };
                    let scales =
                        b.initializer(&format!("{weight}_scales"), scale_dtype, &[n as i64, count], &scale_bytes)?;
                    let stride = blocks.zero_point_stride() as i64;
                    let zero_points = b.initializer(
                        &format!("{weight}_zp"),
                        DataType::Uint8,
                        &[n as i64, stride],
                        &blocks.zero_points,
                    )?;
                    IntegerWeight {
                        inputs: vec![qweight, scales, zero_points],
                        op: "MatMulNBits",
                        attributes: vec![
                            Attr::Int(k as i64).into_proto("K"),
                            Attr::Int(n as i64).into_proto("N"),
                            Attr::Int(i64::from(bits)).into_proto("bits"),
                            Attr::Int(block as i64).into_proto("block_size"),
                            Attr::Int(i64::from(level)).into_proto("accuracy_level"),
                        ],
                    }
                }
                Scheme::Dynamic => {
                    if scale_type != FLOAT {
                        return Err(DeriveError::Unsupported(format!(
                            "`{weight}` is float16; w8a8 (DynamicQuantizeMatMul) takes float32 activations: derive \
                             it from an fp32 graph"
                        )));
                    }
                    // DynamicQuantizeMatMul takes W as it is: K rows of N.
                    let (levels, scales) = int8_per_column(&values, k, n);
                    drop(values);
                    let qweight =
                        b.initializer(&format!("{weight}_Q8"), DataType::Int8, &[k as i64, n as i64], &levels)?;
                    let scales =
                        b.initializer(&format!("{weight}_scales"), DataType::Float, &[n as i64], &f32_bytes(&scales))?;
                    let zero_points =
                        b.initializer(&format!("{weight}_zp"), DataType::Int8, &[n as i64], &vec![0u8; n])?;
                    IntegerWeight {
                        inputs: vec![qweight, scales, zero_points],
                        op: "DynamicQuantizeMatMul",
                        attributes: Vec::new(),
                    }
                }
            };
            written.extend(integer.inputs.iter().cloned());
            quantized.insert(weight.clone(), integer);
        }
        let integer = &quantized[&weight];
        let node = &mut b.graph_mut().node[node_index];
        node.op_type = integer.op.into();
        node.domain = MS.into();
        node.input = std::iter::once(node.input[0].clone()).chain(integer.inputs.iter().cloned()).collect();
        node.attribute = integer.attributes.clone();
        *uses.get_mut(&weight).expect("a MatMul input was counted") -= 1;
        stats.quantized_matmuls += 1;
    }
    stats.quantized_weights = quantized.len();
    let unused = |name: &String| quantized.contains_key(name) && uses.get(name).copied().unwrap_or(0) == 0;
    stats.shared_weights_kept = quantized.keys().filter(|name| uses.get(*name).copied().unwrap_or(0) > 0).count();
    b.graph_mut().initializer.retain(|t| !unused(&t.name));
    Ok(())
}

/// The element type of every value of `graph` that can be told without shapes: graph inputs, initializers,
/// then each node's outputs from its operator and inputs.
fn infer_types(graph: &GraphProto) -> HashMap<String, i32> {
    let mut types: HashMap<String, i32> = HashMap::new();
    for v in &graph.input {
        if let Some(t) = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) {
            types.insert(v.name.clone(), t.elem_type);
        }
    }
    for t in &graph.initializer {
        types.insert(t.name.clone(), t.data_type);
    }
    for node in &graph.node {
        let input = |i: usize| node.input.get(i).filter(|n| !n.is_empty()).and_then(|n| types.get(n)).copied();
        let first_known = node.input.iter().find_map(|n| types.get(n)).copied();
        let int_attr = |name: &str| attr(node, name).map(|a| a.i as i32);
        let op = if is_default_domain(node) { node.op_type.as_str() } else { "" };
        let outputs: Vec<Option<i32>> = match op {
            "Cast" => vec![int_attr("to")],
            "CastLike" => vec![input(1)],
            "Constant" => vec![constant_type(node)],
            "ConstantOfShape" => {
                vec![attr(node, "value").and_then(|a| a.t.as_ref()).map_or(Some(FLOAT), |t| Some(t.data_type))]
            }
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => vec![Some(INT64)],
            "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" | "Not" | "And" | "Or" | "Xor"
            | "IsNaN" | "IsInf" => vec![Some(BOOL)],
            "Where" => vec![input(1).or(input(2))],
            "TopK" => vec![input(0), Some(INT64)],
            "EyeLike" | "RandomNormal" | "RandomUniform" | "RandomNormalLike" | "RandomUniformLike" | "Multinomial"
            | "Bernoulli" => vec![int_attr("dtype").or(input(0)).or(Some(FLOAT))],
            "DequantizeLinear" => vec![input(1)],
            "QuantizeLinear" => vec![input(2).or(Some(2))],
            "DynamicQuantizeLinear" => vec![Some(2), Some(FLOAT), Some(2)],
            "MatMulInteger" | "ConvInteger" => vec![Some(6)],
            _ => vec![first_known; node.output.len()],
        };
        for (name, ty) in node.output.iter().zip(outputs) {
            if let Some(ty) = ty.filter(|_| !name.is_empty()) {
                types.insert(name.clone(), ty);
            }
        }
    }
    types
}

fn constant_type(node: &NodeProto) -> Option<i32> {
    node.attribute.iter().find_map(|a| match a.name.as_str() {
        "value" => a.t.as_ref().map(|t| t.data_type),
        "value_float" | "value_floats" => Some(FLOAT),
        "value_int" | "value_ints" => Some(INT64),
        "value_string" | "value_strings" => Some(STRING),
        _ => None,
    })
}

/// The nodes an fp16 conversion leaves in float32: float `Range`s (float16 is not among its types) and the
/// float ancestry of every `Cos` / `Sin` (rotary angles: positions times frequencies lose whole radians in
/// float16 at long positions).
fn float32_islands(graph: &GraphProto, types: &HashMap<String, i32>) -> HashSet<usize> {
    let producer: HashMap<&str, usize> = (graph.node.iter().enumerate())
        .flat_map(|(i, n)| n.output.iter().filter(|o| !o.is_empty()).map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep = HashSet::new();
    let mut stack: Vec<usize> = (graph.node.iter().enumerate())
        .filter(|(_, n)| is_default_domain(n))
        .filter(|(_, n)| {
            matches!(n.op_type.as_str(), "Cos" | "Sin")
                || (n.op_type == "Range" && n.input.first().and_then(|i| types.get(i)) == Some(&FLOAT))
        })
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = stack.pop() {
        if !keep.insert(i) {
            continue;
        }
        for input in &graph.node[i].input {
            if types.get(input) == Some(&FLOAT)
                && let Some(&p) = producer.get(input.as_str())
            {
                stack.push(p);
            }
        }
    }
    keep
}

/// A `to` tensor holding `values` (an attribute's float constant), counting clamped values.
fn float_tensor(name: &str, dims: &[i64], to: i32, values: &[f32], clamped: &mut u64) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: to,
        raw_data: float_bytes(to, values, clamped).into(),
        ..Default::default()
    }
}

/// Changes the graph's float type from `from` to `to` (float32 <-> float16): initializers, graph inputs and
/// outputs, Casts, constants; narrowing keeps [`float32_islands`] in float32 behind Casts.
fn convert_floats(
    b: &mut GraphBuilder,
    data: &ExternalData,
    from: i32,
    to: i32,
    written: &mut HashSet<String>,
    stats: &mut RewriteStats,
) -> Result<(), DeriveError> {
    let graph = b.graph_mut();
    if let Some(node) = graph.node.iter().find(|n| has_subgraphs(n)) {
        return Err(DeriveError::Unsupported(format!(
            "node `{}` ({}) has subgraphs, which a float conversion does not rewrite",
            node.name, node.op_type
        )));
    }
    let types = infer_types(graph);
    let keep = if to == FLOAT16 { float32_islands(graph, &types) } else { HashSet::new() };
    stats.float32_nodes = (keep.iter().map(|&i| &graph.node[i]))
        .map(|n| if n.name.is_empty() { format!("{}/{}", n.op_type, n.output.join(",")) } else { n.name.clone() })
        .collect();
    stats.float32_nodes.sort();

    // Initializers: converted in place when no kept node reads them; copied when both kinds of node do.
    let mut readers: HashMap<&str, (bool, bool)> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            let entry = readers.entry(input.as_str()).or_default();
            if keep.contains(&i) { entry.0 = true } else { entry.1 = true }
        }
    }
    let readers: HashMap<String, (bool, bool)> = readers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let initializer_names: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut initializers = std::mem::take(&mut b.graph_mut().initializer);
    let mut copies: HashMap<String, String> = HashMap::new();
    let mut added = Vec::new();
    for t in initializers.iter_mut().filter(|t| t.data_type == from) {
        let (kept, converted) = readers.get(&t.name).copied().unwrap_or((false, true));
        if !converted {
            continue;
        }
        let values = data.floats(t)?;
        let bytes = float_bytes(to, &values, &mut stats.clamped_values);
        stats.converted_tensors += 1;
        if kept {
            let copy = b.fresh(&format!("{}_{}", t.name, if to == FLOAT16 { "fp16" } else { "fp32" }));
            let mut tensor =
                TensorProto { name: copy.clone(), data_type: to, dims: t.dims.clone(), ..Default::default() };
            b.store(&mut tensor, &bytes)?;
            written.insert(copy.clone());
            copies.insert(t.name.clone(), copy);
            added.push(tensor);
        } else {
            t.data_type = to;
            b.store(t, &bytes)?;
            written.insert(t.name.clone());
        }
    }
    initializers.extend(added);
    b.graph_mut().initializer = initializers;

    let g = b.graph_mut();
    for v in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(t) = v.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()).filter(|t| t.elem_type == from) {
            t.elem_type = to;
        }
    }
    g.value_info.clear();

    let nodes = std::mem::take(&mut g.node);
    // Values read outside the islands or graph outputs that kept nodes write: they get a Cast back.
    let read_outside: HashSet<String> = (g.output.iter().map(|v| v.name.clone()))
        .chain(nodes.iter().enumerate().filter(|(i, _)| !keep.contains(i)).flat_map(|(_, n)| n.input.iter().cloned()))
        .collect();
    let produced_inside: HashSet<String> = keep.iter().flat_map(|&i| nodes[i].output.iter().cloned()).collect();
    let mut renamed: HashMap<String, String> = HashMap::new();
    for &i in &keep {
        for output in &nodes[i].output {
            if types.get(output) == Some(&FLOAT) && read_outside.contains(output) {
                renamed.insert(output.clone(), b.fresh(&format!("{output}_fp32")));
            }
        }
    }
    let mut cast_in: HashMap<String, String> = HashMap::new();
    let mut rewritten = Vec::with_capacity(nodes.len());
    for (i, mut node) in nodes.into_iter().enumerate() {
        if keep.contains(&i) {
            for input in node.input.iter_mut().filter(|n| !n.is_empty()) {
                if let Some(inside) = renamed.get(input.as_str()) {
                    *input = inside.clone();
                    continue;
                }
                let float = types.get(input.as_str()) == Some(&FLOAT);
                // Initializers only kept nodes read stay float32; so do the originals of copied ones.
                let stays_float = produced_inside.contains(input.as_str())
                    || (initializer_names.contains(input.as_str())
                        && readers.get(input.as_str()).is_some_and(|r| !r.1 || copies.contains_key(input.as_str())));
                if float && !stays_float {
                    let cast = match cast_in.get(input.as_str()) {
                        Some(cast) => cast.clone(),
                        None => {
                            let cast = b.fresh(&format!("{input}_to_fp32"));
                            rewritten.push(cast_node(input, &cast, FLOAT));
                            cast_in.insert(input.clone(), cast.clone());
                            cast
                        }
                    };
                    *input = cast;
                }
            }
            let casts: Vec<NodeProto> = node
                .output
                .iter_mut()
                .filter_map(|output| {
                    let inside = renamed.get(output.as_str())?.clone();
                    let cast = cast_node(&inside, output, FLOAT16);
                    *output = inside;
                    Some(cast)
                })
                .collect();
            rewritten.push(node);
            rewritten.extend(casts);
            continue;
        }
        for input in node.input.iter_mut() {
            if let Some(copy) = copies.get(input.as_str()) {
                *input = copy.clone();
            }
        }
        convert_node_types(&mut node, from, to, stats);
        rewritten.push(node);
    }
    b.graph_mut().node = rewritten;
    Ok(())
}

fn cast_node(input: &str, output: &str, to: i32) -> NodeProto {
    NodeProto {
        input: vec![input.to_string()],
        output: vec![output.to_string()],
        name: format!("Cast/{output}"),
        op_type: "Cast".into(),
        attribute: vec![Attr::Int(i64::from(to)).into_proto("to")],
        ..Default::default()
    }
}

/// The float type a node makes from its attributes: Casts, constants, `dtype`s.
fn convert_node_types(node: &mut NodeProto, from: i32, to: i32, stats: &mut RewriteStats) {
    if !is_default_domain(node) {
        return;
    }
    let op = node.op_type.clone();
    for a in &mut node.attribute {
        match (op.as_str(), a.name.as_str()) {
            ("Cast", "to") | (_, "dtype") if a.i == i64::from(from) => a.i = i64::from(to),
            ("Constant" | "ConstantOfShape", "value") => {
                if let Some(t) =
                    a.t.as_mut().filter(|t| t.data_type == from && t.data_location != DATA_LOCATION_EXTERNAL)
                {
                    let values = floats_of(from, &inline_bytes(t));
                    *t = float_tensor(&t.name, &t.dims, to, &values, &mut stats.clamped_values);
                    stats.converted_tensors += 1;
                }
            }
            ("Constant", "value_float" | "value_floats") if to == FLOAT16 => {
                let (values, dims) = if a.name == "value_float" {
                    (vec![a.f], vec![])
                } else {
                    (a.floats.clone(), vec![a.floats.len() as i64])
                };
                *a = AttributeProto {
                    name: "value".into(),
                    r#type: attribute_type::TENSOR,
                    t: Some(float_tensor("", &dims, to, &values, &mut stats.clamped_values)),
                    ..Default::default()
                };
                stats.converted_tensors += 1;
            }
            _ => {}
        }
    }
    // ConstantOfShape without a value makes float32 zeros.
    if op == "ConstantOfShape" && from == FLOAT && attr(node, "value").is_none() {
        let zero = float_tensor("", &[1], to, &[0.0], &mut 0);
        node.attribute.push(AttributeProto {
            name: "value".into(),
            r#type: attribute_type::TENSOR,
            t: Some(zero),
            ..Default::default()
        });
    }
}
