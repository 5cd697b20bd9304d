//! runner benchmarks LLM inference through ONNX Runtime, with the benchmark logic (dataset parsing,
//! prompts, scoring) sandboxed in WebAssembly components.
//!
//! One module per job: `gguf` reads model files, `onnx` writes ONNX protobuf, `model_folder` is the contract
//! of a model folder (file names, `runner.json`, graph input and output names) that `import` writes and
//! `engine` and `lora` read, `import` turns a GGUF into an ONNX model folder, `derive` makes other precisions of a float model folder, `hub` fetches and caches Hugging Face Hub repositories, `engine` generates text
//! and times it, `scenario` hosts the WebAssembly scenarios, `datasets` decodes dataset files and finds
//! their sources, `prepare` readies a scenario and its samples for a run, `results` writes what a run
//! measured, `stats` computes the statistics reported on it (distributions, bootstrap intervals, McNemar,
//! paired comparisons, adapter overhead), `files` replaces files atomically and shows byte counts, `exec`
//! ties them into a benchmark run, `experiment` reads experiment folders and plans sweeps,
//! `sweep` runs a plan run by run (sweep.json, shards, merge), `score` scores outputs made elsewhere, `bench`
//! measures fixed-length generation speed like llama-bench, `compare` compares two runs sample by sample,
//! `baseline` caches base-model runs for adapter comparisons, `lora` makes and reads LoRA adapters, `rng` is the
//! portable seeded random generator they share, and `cli` is the command line. `memory` reads resident
//! memory, `gpu_monitor` samples NVIDIA GPUs through NVML, `trace` writes `--trace` Chrome traces, `report` compares runs side by side
//! (terminal, Markdown, HTML, JSON, CSV), and `terminal` escapes untrusted text before it is shown.

pub mod baseline;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod datasets;
pub mod derive;
pub mod engine;
pub mod exec;
pub mod experiment;
pub mod files;
pub mod gguf;
pub mod gpu_monitor;
pub mod hub;
pub mod import;
pub mod interrupt;
pub mod lora;
pub mod memory;
pub mod model_folder;
pub mod onnx;
pub mod paths;
pub mod prepare;
pub mod prompt;
pub mod provenance;
pub mod report;
pub mod results;
pub mod rng;
pub mod scenario;
pub mod score;
pub mod stats;
pub mod sweep;
pub mod terminal;
#[doc(hidden)]
pub mod testing;
pub mod trace;
