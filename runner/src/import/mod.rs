//! Turns a llama-architecture GGUF into an ONNX model folder that ONNX Runtime (and onnxruntime-genai)
//! can run: graph, weights, tokenizer and configuration.

pub mod quant;
