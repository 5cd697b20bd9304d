//! Fuzzes the dataset decoders (`runner::datasets::decode`): JSONL, JSON, CSV, TSV and Parquet. The first
//! byte picks the format (by the file name the decoder is given), the rest is the file. Any bytes must
//! decode to records whose origins can be located, or fail with a `DecodeError` naming the file.

#![no_main]

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["fuzz.jsonl", "fuzz.json", "fuzz.csv", "fuzz.tsv", "fuzz.parquet"];

fuzz_target!(|data: &[u8]| {
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
