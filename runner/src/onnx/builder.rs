//! Builds an ONNX graph node by node and writes it as `model.onnx` plus `model.onnx.data`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{
    AttributeProto, DATA_LOCATION_EXTERNAL, DataType, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attribute_type,
};

/// Initializers of at least this many bytes go to the external data file; smaller ones stay inline,
/// where ORT can constant-fold them without a file read.
const EXTERNAL_MIN_BYTES: usize = 1024;
/// Offsets in the data file are aligned so ORT can map tensors without copying them into place.
const EXTERNAL_ALIGNMENT: u64 = 64;
/// IR version 8 goes with opset 17, the opset the importer targets.
const IR_VERSION: i64 = 8;

/// Why a model could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct OnnxWriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// A node attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
}

impl Attr {
    pub fn into_proto(self, name: &str) -> AttributeProto {
        let mut a = AttributeProto { name: name.to_string(), ..Default::default() };
        match self {
            Attr::Int(v) => (a.r#type, a.i) = (attribute_type::INT, v),
            Attr::Float(v) => (a.r#type, a.f) = (attribute_type::FLOAT, v),
            Attr::Str(v) => (a.r#type, a.s) = (attribute_type::STRING, v.into_bytes()),
            Attr::Ints(v) => (a.r#type, a.ints) = (attribute_type::INTS, v),
            Attr::Floats(v) => (a.r#type, a.floats) = (attribute_type::FLOATS, v),
        }
        a
    }
}

/// Collects a graph; large initializers are written to `model.onnx.data` as soon as they are added.
pub struct GraphBuilder {
    graph: GraphProto,
    names: HashSet<String>,
    data_path: PathBuf,
    data_file_name: String,
    data: BufWriter<File>,
    data_len: u64,
}

impl GraphBuilder {
    /// Starts a graph whose external data goes to `dir/data_file_name`.
    pub fn new(dir: &Path, data_file_name: &str) -> Result<Self, OnnxWriteError> {
        Self::with_graph(dir, data_file_name, GraphProto { name: "main".into(), ..Default::default() })
    }

    /// Continues `graph` (another model's, being rewritten): its value and node names are taken, and new
    /// initializers go to `dir/data_file_name`.
    pub fn with_graph(dir: &Path, data_file_name: &str, graph: GraphProto) -> Result<Self, OnnxWriteError> {
        let data_path = dir.join(data_file_name);
        let file = File::create(&data_path).map_err(|source| OnnxWriteError { path: data_path.clone(), source })?;
        let names = (graph.input.iter().chain(&graph.output).map(|v| v.name.clone()))
            .chain(graph.initializer.iter().map(|t| t.name.clone()))
            .chain(graph.node.iter().flat_map(|n| n.output.iter().chain([&n.name]).cloned()))
            .collect();
        Ok(Self {
            graph,
            names,
            data_path,
            data_file_name: data_file_name.to_string(),
            data: BufWriter::with_capacity(1 << 20, file),
            data_len: 0,
        })
    }

    /// The graph as built so far, for a rewrite to edit in place.
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        &mut self.graph
    }

    /// A value name not used before, derived from `base`.
    pub fn fresh(&mut self, base: &str) -> String {
        if self.names.insert(base.to_string()) {
            return base.to_string();
        }
        (1..).map(|i| format!("{base}_{i}")).find(|n| self.names.insert(n.clone())).expect("unbounded")
    }

    /// Adds an initializer from raw little-endian bytes and returns its (unique) name.
    pub fn initializer(
        &mut self,
        base: &str,
        data_type: DataType,
        dims: &[i64],
        bytes: &[u8],
    ) -> Result<String, OnnxWriteError> {
        let name = self.fresh(base);
        let mut tensor =
            TensorProto { name: name.clone(), data_type: data_type as i32, dims: dims.to_vec(), ..Default::default() };
        self.store(&mut tensor, bytes)?;
        self.graph.initializer.push(tensor);
        Ok(name)
    }

    /// Makes `bytes` (raw little-endian) the data of `tensor`: in the external data file when large, inline
    /// otherwise. Whatever data the tensor held before is dropped.
    pub fn store(&mut self, tensor: &mut TensorProto, bytes: &[u8]) -> Result<(), OnnxWriteError> {
        tensor.float_data.clear();
        tensor.int32_data.clear();
        tensor.int64_data.clear();
        tensor.double_data.clear();
        tensor.uint64_data.clear();
        tensor.external_data.clear();
        tensor.raw_data.clear();
        tensor.data_location = 0;
        if bytes.len() >= EXTERNAL_MIN_BYTES {
            let offset = self.data_len.div_ceil(EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
            let io = |source| OnnxWriteError { path: self.data_path.clone(), source };
            self.data.write_all(&vec![0u8; (offset - self.data_len) as usize]).map_err(io)?;
            self.data.write_all(bytes).map_err(|source| OnnxWriteError { path: self.data_path.clone(), source })?;
            self.data_len = offset + bytes.len() as u64;
            tensor.data_location = DATA_LOCATION_EXTERNAL;
            let entry = |key: &str, value: String| StringStringEntryProto { key: key.into(), value };
            tensor.external_data = vec![
                entry("location", self.data_file_name.clone()),
                entry("offset", offset.to_string()),
                entry("length", bytes.len().to_string()),
            ];
        } else {
            tensor.raw_data = bytes::Bytes::copy_from_slice(bytes);
        }
        Ok(())
    }

    pub fn initializer_f32(&mut self, base: &str, dims: &[i64], values: &[f32]) -> Result<String, OnnxWriteError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, DataType::Float, dims, &bytes)
    }

    pub fn initializer_i64(&mut self, base: &str, dims: &[i64], values: &[i64]) -> Result<String, OnnxWriteError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, DataType::Int64, dims, &bytes)
    }

    /// Adds a node writing exactly `outputs` (an empty name skips an optional output).
    pub fn node_with_outputs(
        &mut self,
        op_type: &str,
        domain: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) {
        let name = self.fresh(&format!("{op_type}/{}", outputs.first().copied().unwrap_or("")));
        for out in outputs.iter().filter(|o| !o.is_empty()) {
            self.names.insert(out.to_string());
        }
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name,
            op_type: op_type.to_string(),
            domain: domain.to_string(),
            attribute: attrs.into_iter().map(|(n, a)| a.into_proto(n)).collect(),
            doc_string: String::new(),
        });
    }

    /// Adds a single-output node and returns its output's fresh name, derived from `out_base`.
    pub fn node(
        &mut self,
        op_type: &str,
        domain: &str,
        inputs: &[&str],
        out_base: &str,
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh(out_base);
        self.node_with_outputs(op_type, domain, inputs, &[&out], attrs);
        out
    }

    fn value_info(name: &str, data_type: DataType, dims: &[Dimension]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.to_string(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: data_type as i32,
                    shape: Some(TensorShapeProto { dim: dims.to_vec() }),
                }),
            }),
            doc_string: String::new(),
        }
    }

    pub fn input(&mut self, name: &str, data_type: DataType, dims: &[Dimension]) {
        self.names.insert(name.to_string());
        self.graph.input.push(Self::value_info(name, data_type, dims));
    }

    pub fn output(&mut self, name: &str, data_type: DataType, dims: &[Dimension]) {
        self.graph.output.push(Self::value_info(name, data_type, dims));
    }

    /// Writes `model_path` and finishes the data file (removed when nothing went there).
    pub fn finish(
        self,
        model_path: &Path,
        opsets: &[(&str, i64)],
        metadata: &[(String, String)],
    ) -> Result<(), OnnxWriteError> {
        let model = ModelProto {
            ir_version: IR_VERSION,
            opset_import: opsets
                .iter()
                .map(|(domain, version)| OperatorSetIdProto { domain: domain.to_string(), version: *version })
                .collect(),
            producer_name: "runner".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: k.clone(), value: v.clone() })
                .collect(),
            ..Default::default()
        };
        self.finish_model(model_path, model)
    }

    /// Writes `model` (its other fields as they are) with this graph to `model_path`, and finishes the data file
    /// (removed when nothing went there).
    pub fn finish_model(mut self, model_path: &Path, mut model: ModelProto) -> Result<(), OnnxWriteError> {
        self.data.flush().map_err(|source| OnnxWriteError { path: self.data_path.clone(), source })?;
        drop(self.data);
        if self.data_len == 0 {
            std::fs::remove_file(&self.data_path)
                .map_err(|source| OnnxWriteError { path: self.data_path.clone(), source })?;
        }
        model.graph = Some(self.graph);
        std::fs::write(model_path, model.encode_to_vec())
            .map_err(|source| OnnxWriteError { path: model_path.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_initializers_go_to_aligned_external_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = GraphBuilder::new(dir.path(), "m.onnx.data").unwrap();
        let small = b.initializer_f32("w", &[2], &[1.0, 2.0]).unwrap();
        let big = b.initializer("w", DataType::Uint8, &[2000], &[7; 2000]).unwrap();
        let bigger = b.initializer("w", DataType::Uint8, &[2030], &[9; 2030]).unwrap();
        assert_eq!((small.as_str(), big.as_str(), bigger.as_str()), ("w", "w_1", "w_2"));
        b.input("x", DataType::Float, &[Dimension::symbolic("n")]);
        let y = b.node("Add", "", &["x", &small], "y", vec![]);
        b.output(&y, DataType::Float, &[Dimension::symbolic("n")]);
        b.finish(&dir.path().join("m.onnx"), &[("", 17)], &[("k".into(), "v".into())]).unwrap();

        let model = ModelProto::decode(&*std::fs::read(dir.path().join("m.onnx")).unwrap()).unwrap();
        let graph = model.graph.unwrap();
        assert_eq!(graph.initializer[0].raw_data.len(), 8);
        let data = std::fs::read(dir.path().join("m.onnx.data")).unwrap();
        for (tensor, fill, len) in [(&graph.initializer[1], 7u8, 2000usize), (&graph.initializer[2], 9, 2030)] {
            assert_eq!(tensor.data_location, DATA_LOCATION_EXTERNAL);
            let entry = |key: &str| tensor.external_data.iter().find(|e| e.key == key).unwrap().value.clone();
            assert_eq!(entry("location"), "m.onnx.data");
            let offset: usize = entry("offset").parse().unwrap();
            assert_eq!(offset % EXTERNAL_ALIGNMENT as usize, 0);
            assert_eq!(entry("length"), len.to_string());
            assert!(data[offset..offset + len].iter().all(|b| *b == fill));
        }
        assert_eq!(graph.node[0].op_type, "Add");
        assert_eq!(model.metadata_props[0].value, "v");
        assert_eq!(model.opset_import[0].version, 17);
    }
}
