//! Reads ONNX models without copying their weights. The file is mapped, not read, and decoded from the
//! mapping: [`scan_graph`] goes through message types that declare only the node fields, so prost skips
//! initializers (even inline gigabytes) to tell a session which operators a graph uses; [`read_model`] decodes
//! the whole model for inspection with every tensor's inline data left in place as a slice of the mapping.

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use super::proto::ModelProto;

#[derive(Clone, PartialEq, prost::Message)]
struct ModelOps {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphOps>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GraphOps {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeOps>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeOps {
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(string, tag = "7")]
    domain: String,
    /// Only the attributes' names and integers: tensors in attributes (a Constant's value) are skipped.
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<IntAttribute>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct IntAttribute {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, tag = "3")]
    i: i64,
}

/// What a session needs to know of a graph before it runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphScan {
    /// The `domain:op_type` (`:op_type` for the default domain) of every node in the main graph.
    pub ops: BTreeSet<String>,
    /// The largest `local_window_size` of the GroupQueryAttention nodes whose KV buffers are window-sized
    /// (`sliding_window_cache=1`, as onnxruntime-genai's builder writes Gemma's sliding-window layers); None
    /// when there are none. ONNX Runtime refuses such a node's buffer when it holds fewer positions than the
    /// window ("a cache capacity of at least local_window_size").
    pub window_cache: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX model: {source}", path = .path.display())]
    Decode { path: std::path::PathBuf, source: prost::DecodeError },
}

/// Decodes the model file at `path` as `M` from a read-only mapping of it.
fn decode_mapped<M: Message + Default>(path: &Path) -> Result<M, ScanError> {
    let file = std::fs::File::open(path).map_err(|source| ScanError::Read { path: path.to_path_buf(), source })?;
    // SAFETY: the map is read-only; a model file changing under a benchmark is not a case runner defends
    // against. Slices of it that `M` keeps (inline tensor data) hold it open until they are dropped.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ScanError::Read { path: path.to_path_buf(), source })?;
    M::decode(Bytes::from_owner(map)).map_err(|source| ScanError::Decode { path: path.to_path_buf(), source })
}

/// The operators and attention windows of the main graph (see [`GraphScan`]).
pub fn scan_graph(path: &Path) -> Result<GraphScan, ScanError> {
    let model: ModelOps = decode_mapped(path)?;
    let nodes: Vec<NodeOps> = model.graph.into_iter().flat_map(|g| g.node).collect();
    let int = |node: &NodeOps, name: &str| node.attribute.iter().find(|a| a.name == name).map(|a| a.i);
    let window_cache = nodes
        .iter()
        .filter(|n| n.op_type == "GroupQueryAttention" && int(n, "sliding_window_cache") == Some(1))
        .filter_map(|n| int(n, "local_window_size"))
        .filter(|&window| window > 0)
        .map(|window| window as usize)
        .max();
    let ops = nodes.iter().map(|n| format!("{}:{}", n.domain, n.op_type)).collect();
    Ok(GraphScan { ops, window_cache })
}

/// The whole model at `path`, its tensors' inline data (an Optimum export's weights) slices of the mapped
/// file rather than copies.
pub fn read_model(path: &Path) -> Result<ModelProto, ScanError> {
    decode_mapped(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, TensorProto};

    #[test]
    fn inline_tensor_data_is_a_slice_of_the_model_not_a_copy() {
        let weights = Bytes::from(vec![7u8; 1 << 20]);
        let tensor = TensorProto {
            name: "w".into(),
            data_type: 2,
            dims: vec![1 << 20],
            raw_data: weights,
            ..Default::default()
        };
        let graph = GraphProto { initializer: vec![tensor], ..Default::default() };
        let encoded = Bytes::from(ModelProto { graph: Some(graph), ..Default::default() }.encode_to_vec());
        let decoded = ModelProto::decode(encoded.clone()).unwrap();
        let raw = &decoded.graph.unwrap().initializer[0].raw_data;
        assert_eq!(raw.len(), 1 << 20);
        assert!(encoded.as_ptr_range().contains(&raw.as_ptr()), "the tensor's data was copied out of the model");
    }
}
