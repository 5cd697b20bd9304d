//! Fuzzes the GGUF reader (`runner::gguf::GgufFile`): any bytes must open to a file whose every accessor
//! works, or fail with a `GgufError`; never a panic, an overflow or an allocation sized by a corrupt count.
//! The reader maps a file, so each input is written to one scratch file per fuzzing process first.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runner::gguf::GgufFile;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::var_os("RUNNER_FUZZ_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        dir.join(format!("runner-fuzz-gguf-{}.gguf", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(scratch(), data).expect("the scratch file is writable");
    let Ok(file) = GgufFile::open(scratch()) else { return };
    let _ = format!("{file:?} v{}", file.version());
    for (key, value) in file.metadata() {
        let _ = (value.type_name(), value.as_u64(), value.as_f64(), value.as_str());
        let _ = (file.u64(key), file.f64(key), file.str(key), file.array(key), file.str_array(key));
    }
    for tensor in file.tensors() {
        let _ = (tensor.element_count(), tensor.byte_len(), tensor.to_string());
        let _ = file.tensor(&tensor.name);
        if let Ok(bytes) = file.tensor_bytes(tensor) {
            std::hint::black_box(bytes.first());
        }
    }
});
