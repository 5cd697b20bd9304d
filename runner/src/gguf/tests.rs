use super::writer::GgufWriter;
use super::*;

fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.meta("general.architecture", MetaValue::String("llama".into()))
        .meta("llama.block_count", MetaValue::U32(2))
        .meta("llama.rope.freq_base", MetaValue::F32(10000.0))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(vec![MetaValue::String("a".into()), MetaValue::String("b".into())]),
        )
        .tensor("w", &[32, 2], GgmlType::Q8_0, vec![7u8; 68])
        .tensor("norm", &[3], GgmlType::F32, [1f32, 2., 3.].iter().flat_map(|f| f.to_le_bytes()).collect());
    w
}

fn write(w: &GgufWriter) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    w.write_file(&path).unwrap();
    (dir, path)
}

#[test]
fn round_trips_metadata_and_tensors() {
    let (_dir, path) = write(&sample_writer());
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.str("general.architecture").unwrap(), "llama");
    assert_eq!(f.u64("llama.block_count").unwrap(), 2);
    assert_eq!(f.f64("llama.rope.freq_base").unwrap(), 10000.0);
    assert_eq!(f.str_array("tokenizer.ggml.tokens").unwrap(), ["a", "b"]);
    let w = f.tensor("w").unwrap();
    assert_eq!(w.dims, [32, 2]);
    assert_eq!(w.ggml_type, GgmlType::Q8_0);
    assert_eq!(f.tensor_bytes(w).unwrap(), &[7u8; 68][..]);
    let norm = f.tensor_bytes(f.tensor("norm").unwrap()).unwrap();
    assert_eq!(norm.len(), 12);
    assert_eq!(f32::from_le_bytes(norm[8..12].try_into().unwrap()), 3.0);
}

#[test]
fn names_what_is_missing_or_mistyped() {
    let (_dir, path) = write(&sample_writer());
    let f = GgufFile::open(&path).unwrap();
    let err = f.u64("llama.context_length").unwrap_err().to_string();
    assert!(err.contains("`llama.context_length` is missing"), "{err}");
    let err = f.str("llama.block_count").unwrap_err().to_string();
    assert!(err.contains("`llama.block_count` is u32, expected a string"), "{err}");
    let err = f.tensor("output.weight").unwrap_err().to_string();
    assert!(err.contains("tensor `output.weight` is missing"), "{err}");
}

#[test]
fn refuses_truncated_files_naming_the_tensor() {
    let (_dir, path) = write(&sample_writer());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    let err = GgufFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("truncated") && err.contains("tensor `norm`"), "{err}");
    // Cut inside the header: the error names what was being read.
    std::fs::write(&path, &bytes[..40]).unwrap();
    let err = GgufFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("truncated") && err.contains("metadata"), "{err}");
}

#[test]
fn refuses_files_that_are_not_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    std::fs::write(&path, b"PK\x03\x04 a zip file").unwrap();
    let err = GgufFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("is not a GGUF file"), "{err}");
    let err = GgufFile::open(dir.path().join("absent.gguf")).unwrap_err().to_string();
    assert!(err.contains("cannot open") && err.contains("absent.gguf"), "{err}");
}

#[test]
fn keeps_unknown_tensor_types_for_the_importer_to_name() {
    let mut w = sample_writer();
    w.tensor("odd", &[4], GgmlType::Other(99), vec![0; 4]);
    let (_dir, path) = write(&w);
    let f = GgufFile::open(&path).unwrap();
    let odd = f.tensor("odd").unwrap();
    assert_eq!(odd.ggml_type, GgmlType::Other(99));
    let err = f.tensor_bytes(odd).unwrap_err().to_string();
    assert!(err.contains("`odd`") && err.contains("type #99"), "{err}");
    // llama.cpp's types without a block size here keep their names in messages.
    assert_eq!(GgmlType::from_id(20).to_string(), "IQ4_NL");
    assert_eq!(GgmlType::from_id(39).to_string(), "MXFP4");
}

/// Found by the `gguf` fuzz target (fuzz/regressions/gguf/crash-e106…): a shape whose element count
/// overflows 64 bits panicked with overflow checks and, without them, wrapped to a tiny size that passed
/// the bounds check. It is refused naming the tensor.
#[test]
fn a_shape_whose_element_count_overflows_is_refused() {
    let mut w = GgufWriter::new();
    // 2^33 * 2^33 wraps to 0 elements in 64 bits.
    w.tensor("huge", &[1 << 33, 1 << 33], GgmlType::F32, Vec::new());
    let (_dir, path) = write(&w);
    let error = GgufFile::open(&path).unwrap_err().to_string();
    assert!(error.contains("`huge`") && error.contains("more elements than"), "{error}");
    let info = TensorInfo { name: "t".into(), dims: vec![u64::MAX, 2], ggml_type: GgmlType::F32, offset: 0 };
    assert_eq!(info.element_count(), u64::MAX);
    assert_eq!(info.byte_len(), None);
}
