//! `cargo xtask`: the repository's tasks, one file each.
//!
//! - `setup`: everything a fresh machine lacks to run the main job, idempotent.
//! - `ci`: setup, then formatting, lints and the whole test suite: what `.ci/run` runs.
//! - `bench`: runner against onnxruntime-genai and llama.cpp, written to `reports/speed/`.
//! - `agree`: runner against the lm-evaluation-harness question by question, written to `reports/agreement/`.
//! - `onnx-fixtures`: tiny model folders made by onnxruntime-genai's builder and Optimum, for runner's tests.
//! - `gguf-fixtures`: the importer's GGUF fixtures, made by llama.cpp's converter and quantizer, with its logits.
//! - `fuzz`: the cargo-fuzz targets in `fuzz/`, each for a bounded time.
//! - `report`: renders the published reports under `reports/` from `reports/data/`.
//! - `slurm`: the documented Slurm array job on a one-node cluster on localhost, checked against one process.

mod agree;
mod agree_gsm8k;
mod bandwidth;
mod bench;
mod ci;
mod fuzz;
mod gguf_fixtures;
mod onnx_fixtures;
mod report;
mod setup;
mod shell;
mod slurm;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  setup [--gpu]   install what runner needs: the wasm32-wasip2 target, the ONNX Runtime library
                  (onnxruntime-gpu too with --gpu), the scenario components and the default model
  ci              setup, then cargo fmt --check, clippy -D warnings and the whole test suite
  bench [--install-peers] [--quick] [--rounds R] [--render-only]
                  runner against onnxruntime-genai and llama.cpp (installed from PyPI into the target
                  folder with --install-peers), interleaved; writes reports/speed/README.md
  agree [--install-peers] [--limit N] [--tasks arc_easy,openbookqa,sst2,mmlu,mmlu_5shot,gsm8k] [--gsm8k-run DIR] [--resume] [--render-only]
                  runner and the lm-evaluation-harness (installed from PyPI into the target folder with
                  --install-peers) on the same fp32 weights and questions, compared question by question;
                  writes reports/agreement/README.md
  onnx-fixtures [--install-peers] [ARCH...] [--default-model-builds GGUF]
                  tiny random-weight models of each architecture built by onnxruntime-genai's builder
                  and exported by Optimum (installed into the target folder with --install-peers), with
                  genai's greedy tokens; writes runner/tests/fixtures/onnx/ (committed, never run in CI);
                  --default-model-builds builds the default GGUF's weights at fp32 and int4 instead
  gguf-fixtures [--install-peers]
                  remake runner/tests/fixtures/gguf: tiny random-weight Hugging Face models converted and
                  quantized by llama.cpp (installed from PyPI with --install-peers), with its logits and ids
  fuzz [--seconds N] [--sanitizer none|address] [TARGET...]
                  run the fuzz targets (gguf, datasets, task, results; default all) for N seconds
                  each (default 600) with nightly and cargo-fuzz; prints executions and crashes
  report [PATH..] render reports/README.md and a .md and .html page per comparison from the results
                  folders under reports/data/ (or PATHs) with the templates in templates/
  slurm           submit docs/slurm/runner-sweep.sbatch to a one-node Slurm cluster on localhost
                  (slurmctld, slurmd, munge from Debian when missing): requeue, a cancelled shard,
                  concurrent imports, and the merged sweep against the same sweep in one process";

fn main() {
    if let Err(err) = run() {
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = &args.iter().skip(1).map(String::as_str).collect::<Vec<_>>();
    match args.first().map(String::as_str) {
        Some("setup") => setup::run(&setup::SetupOptions::parse(flags)?),
        Some("ci") => ci::run(),
        Some("bench") => bench::run(&bench::BenchOptions::parse(flags)?),
        Some("agree") => agree::run(&agree::AgreeOptions::parse(flags)?),
        Some("onnx-fixtures") => onnx_fixtures::run(&onnx_fixtures::FixtureOptions::parse(flags)?),
        Some("gguf-fixtures") => gguf_fixtures::run(&gguf_fixtures::FixtureOptions::parse(flags)?),
        Some("fuzz") => fuzz::run(&fuzz::FuzzOptions::parse(flags)?),
        Some("report") => report::run(flags),
        Some("slurm") => slurm::run(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}
