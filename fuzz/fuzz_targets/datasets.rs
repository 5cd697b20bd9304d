//! Fuzzes the dataset decoders (`runner::datasets::decode`): JSONL, JSON, CSV, TSV and Parquet. The first
//! byte picks the format (by the file name the decoder is given), the rest is the file. Any bytes must
//! decode to records whose origins can be located, or fail with a `DecodeError` naming the file.
//!
//! The parquet crate still panics on some malformed pages (an over-long VLQ integer in a delta-encoded page
//! overflows a shift in `bit_util::get_vlq_int`), and runner contains those panics: `datasets::decode`
//! turns them into an error naming the file. libFuzzer's panic hook would abort before that guard runs, so
//! this target lets a panic raised inside the parquet crate unwind to runner's guard, and aborts on every
//! other panic as before. A parquet panic that escaped `decode` would still reach libfuzzer-sys's own
//! `catch_unwind` and count as a crash.

#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["fuzz.jsonl", "fuzz.json", "fuzz.csv", "fuzz.tsv", "fuzz.parquet"];

static LET_PARQUET_PANICS_UNWIND: Once = Once::new();

fn let_parquet_panics_unwind() {
    let aborting_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_parquet = info.location().is_some_and(|at| at.file().contains("/parquet-"));
        if !in_parquet {
            aborting_hook(info);
        }
    }));
}

fuzz_target!(|data: &[u8]| {
    LET_PARQUET_PANICS_UNWIND.call_once(let_parquet_panics_unwind);
    let Some((&selector, bytes)) = data.split_first() else { return };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    match runner::datasets::decode(name, bytes) {
        Ok(Some(decoded)) => {
            assert!(!decoded.records.is_empty(), "an empty dataset must be an error");
            for number in [1, decoded.records.len() as u32, decoded.records.len() as u32 + 1, 0, u32::MAX] {
                let _ = decoded.locate(number);
            }
        }
        Ok(None) => unreachable!("every fuzzed name has a known extension"),
        Err(error) => assert!(error.to_string().contains(name), "the error names the file: {error}"),
    }
});
