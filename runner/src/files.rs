//! Small file and size helpers every part of runner shares: replacing a file atomically, so a reader never
//! sees half of it, reading a gzipped file, and showing a byte count in binary units.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

/// The decompressed contents of the gzipped file `path` (an archived `samples.jsonl.gz`).
pub fn read_gzipped(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(fs::read(path)?.as_slice()).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes `path` through a temporary file beside it and a rename, so readers see the old or the new file,
/// never a part; a failed write removes the temporary file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A temporary name of this process's own: processes replacing the same file (shards sharing a sweep
    // folder, two runs filling the Hub cache) never write into each other's temporary file.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = File::create(&tmp).and_then(|mut file| file.write_all(bytes).and_then(|_| file.sync_data()));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)
}

/// Formats a byte count in binary units, e.g. "412.3 MiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(412 * 1024 * 1024 + 300 * 1024), "412.3 MiB");
    }

    #[test]
    fn write_atomically_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.json"]);
    }
}
