//! Reads which operators an ONNX model uses without loading its weights: the protobuf is decoded through
//! message types that declare only the node fields, so prost skips initializers (even inline gigabytes)
//! instead of copying them.

use std::collections::BTreeSet;
use std::path::Path;

use prost::Message;

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
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX model: {source}", path = .path.display())]
    Decode { path: std::path::PathBuf, source: prost::DecodeError },
}

/// The `domain:op_type` (`:op_type` for the default domain) of every node in the main graph.
pub fn graph_ops(path: &Path) -> Result<BTreeSet<String>, ScanError> {
    let file = std::fs::File::open(path).map_err(|source| ScanError::Read { path: path.to_path_buf(), source })?;
    // SAFETY: the map is read-only and dropped before returning; a model file changing under a benchmark is
    // not a case runner defends against.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ScanError::Read { path: path.to_path_buf(), source })?;
    let model = ModelOps::decode(&map[..]).map_err(|source| ScanError::Decode { path: path.to_path_buf(), source })?;
    Ok(model.graph.into_iter().flat_map(|g| g.node).map(|n| format!("{}:{}", n.domain, n.op_type)).collect())
}
