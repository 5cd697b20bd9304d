//! Engine tests on real ONNX Runtime and real model folders.
