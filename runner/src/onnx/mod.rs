//! Writes ONNX models: the protobuf messages runner needs (hand-written `prost` structs, field numbers as
//! in `onnx.proto3`), and a graph builder that names values uniquely and streams large initializers into a
//! `model.onnx.data` external-data file, so a 500 MB model is never held in memory twice; and reads models
//! without copying their weights (`scan`): the operators a session needs to tell model layouts apart, and
//! the whole model, inline weights left in the mapped file, for inspection and adapters.

mod builder;
pub mod proto;
pub mod scan;

pub use builder::{Attr, GraphBuilder, OnnxWriteError};
pub use proto::DataType;
