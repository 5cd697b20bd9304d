//! Fuzzes the results reader that resume and report use: a `samples.jsonl` read back into sample records
//! (`runner::results::writer::read_samples`) and a `summary.json` into a run summary. Any bytes must give
//! records or an error naming the file; never a panic.

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

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    if selector % 2 == 0 {
        std::fs::write(scratch().join("samples.jsonl"), bytes).expect("the scratch file is writable");
        match runner::results::writer::read_samples(scratch()) {
            Ok(records) => {
                for record in &records {
                    serde_json::to_string(record).expect("a record read back serializes again");
                }
            }
            Err(error) => assert!(format!("{error:#}").contains("samples.jsonl")),
        }
    } else if let Ok(summary) = serde_json::from_slice::<RunSummary>(bytes) {
        serde_json::to_string(&summary).expect("a summary read back serializes again");
    }
});
