//! Importer tests: real imports of tiny generated models run on ONNX Runtime.
