//! runner benchmarks LLM inference through ONNX Runtime, with the benchmark logic (dataset parsing,
//! prompts, scoring) sandboxed in WebAssembly components.
//!
//! One module per job: `gguf` reads model files, `onnx` writes ONNX protobuf, `import` turns a GGUF into
//! an ONNX model folder, `hub` fetches and caches Hugging Face Hub repositories, `engine` generates text and
//! times it, `scenario` hosts the WebAssembly
//! scenarios, `results` writes what a run measured, `exec` ties them into a benchmark run, `rng` is the
//! portable seeded random generator they share, and `cli` is the command line.

pub mod cli;
pub mod engine;
pub mod exec;
pub mod gguf;
pub mod hub;
pub mod import;
pub mod memory;
pub mod onnx;
pub mod paths;
pub mod prompt;
pub mod provenance;
pub mod results;
pub mod rng;
pub mod scenario;
#[doc(hidden)]
pub mod testing;
