//! Fuzzes the results readers that resume and report use: `samples.jsonl` read back by
//! `results::writer::read_samples`, by resume's `results::writer::scan_samples` (torn last line tolerated) and
//! by report's `results::folder::RunFolder::load` (beside a real summary), and `summary.json` read by
//! `RunFolder::load`. Any bytes must give records or an error naming the file; never a panic.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runner::results::summary::RunSummary;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("RUNNER_FUZZ_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("runner-fuzz-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the scratch folder can be made");
        dir
    })
}

/// A real summary (an early runner's, kept as a test fixture) for the folder reads that fuzz samples.
const SUMMARY: &[u8] = include_bytes!("../../runner/src/results/testdata/old-summary.json");

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let dir = scratch();
    let samples = dir.join("samples.jsonl");
    let summary = dir.join("summary.json");
    match selector % 4 {
        0 => {
            std::fs::write(&samples, bytes).expect("the scratch file is writable");
            match runner::results::writer::read_samples(dir) {
                Ok(records) => {
                    for record in &records {
                        serde_json::to_string(record).expect("a record read back serializes again");
                    }
                }
                Err(error) => assert!(format!("{error:#}").contains("samples.jsonl")),
            }
        }
        1 => {
            std::fs::write(&samples, bytes).expect("the scratch file is writable");
            match runner::results::writer::scan_samples(dir) {
                Ok(existing) => assert!(existing.complete_bytes as usize <= bytes.len()),
                Err(error) => assert!(format!("{error:#}").contains("samples.jsonl")),
            }
        }
        2 => {
            std::fs::write(&samples, bytes).expect("the scratch file is writable");
            std::fs::write(&summary, SUMMARY).expect("the scratch file is writable");
            if let Err(error) = runner::results::folder::RunFolder::load(dir) {
                assert!(format!("{error:#}").contains("samples.jsonl"), "{error:#}");
            }
        }
        _ => {
            let _ = std::fs::remove_file(&samples);
            std::fs::write(&summary, bytes).expect("the scratch file is writable");
            if let Err(error) = runner::results::folder::RunFolder::load(dir) {
                assert!(format!("{error:#}").contains("summary.json"), "{error:#}");
            }
        }
    }
});
