//! Writes ONNX models: the protobuf messages runner needs (hand-written `prost` structs, field numbers as
//! in `onnx.proto3`), and a graph builder that names values uniquely and streams large initializers into a
//! `model.onnx.data` external-data file, so a 500 MB model is never held in memory twice; and a scan of the
//! operators a model uses, for telling model layouts apart.

mod builder;
pub mod proto;
pub mod scan;

pub use builder::{Attr, GraphBuilder, OnnxWriteError};
pub use proto::DataType;
