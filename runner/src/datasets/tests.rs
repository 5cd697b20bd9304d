use std::sync::Arc;

use super::*;
use crate::scenario::Value;

fn decoded(name: &str, text: &[u8]) -> Decoded {
    decode(name, text).expect("decodes").expect("a known container")
}

fn columns(record: &Record) -> Vec<(&str, &Value)> {
    record.columns.iter().map(|(n, v)| (n.as_str(), v)).collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

#[test]
fn formats_follow_the_extension() {
    assert_eq!(Format::of("train.jsonl"), Some(Format::Jsonl));
    assert_eq!(Format::of("DATA.JSON"), Some(Format::Json));
    assert_eq!(Format::of("a.b.tsv"), Some(Format::Tsv));
    assert_eq!(Format::of("test-00000-of-00001.parquet"), Some(Format::Parquet));
    assert_eq!(Format::of("commands.txt"), None);
    assert_eq!(Format::of("README"), None);
    assert_eq!(decode("commands.txt", b"anything").unwrap(), None);
}

#[test]
fn jsonl_values_keep_types_and_column_order() {
    let data = br#"{"z": "text", "a": 3, "m": 2.5, "b": true, "n": null, "l": ["x", "y"], "o": {"k": [1, 2]}, "big": 18446744073709551615}

{"z": "second"}
"#;
    let d = decoded("data.jsonl", data);
    assert_eq!(d.records.len(), 2);
    assert_eq!(
        columns(&d.records[0]),
        [
            ("z", &text("text")),
            ("a", &Value::Integer(3)),
            ("m", &Value::Float(2.5)),
            ("b", &Value::Boolean(true)),
            ("n", &Value::Null),
            ("l", &Value::TextList(vec!["x".into(), "y".into()])),
            ("o", &Value::Json(r#"{"k":[1,2]}"#.into())),
            ("big", &Value::Json("18446744073709551615".into())),
        ]
    );
    // Blank lines are skipped but counted.
    assert_eq!(d.locate(2).as_deref(), Some("data.jsonl line 3"));
    assert_eq!(d.locate(3), None);
}

#[test]
fn jsonl_errors_name_the_line() {
    let error = decode("bad.jsonl", b"{\"a\": 1}\n\n{\"a\": \n").unwrap_err();
    assert_eq!((error.file.as_str(), error.position.as_deref()), ("bad.jsonl", Some("line 3")));
    assert!(error.to_string().starts_with("bad.jsonl, line 3: invalid JSON"), "{error}");
    let error = decode("bad.jsonl", b"{\"a\": 1}\n[1]\n").unwrap_err();
    assert!(error.to_string().contains("line 2") && error.message.contains("an array"), "{error}");
    let error = decode("bad.jsonl", b"{\"a\": 1}\n{\"a\": \"\xff\"}\n").unwrap_err();
    assert_eq!(error.position.as_deref(), Some("line 2"));
}

#[test]
fn an_empty_dataset_is_an_error_naming_the_file() {
    for (name, data) in [("e.jsonl", &b"\n\n"[..]), ("e.json", b"[]"), ("e.csv", b"a,b\n"), ("e.tsv", b"")] {
        let error = decode(name, data).unwrap_err();
        assert_eq!(error.file, name);
        assert!(error.to_string().starts_with(name), "{error}");
    }
}

#[test]
fn json_arrays_and_single_array_objects() {
    let d = decoded("d.json", br#"[{"q": "a"}, {"q": "b", "n": 1}]"#);
    assert_eq!(d.records.len(), 2);
    assert_eq!(columns(&d.records[1]), [("q", &text("b")), ("n", &Value::Integer(1))]);
    assert_eq!(d.locate(2).as_deref(), Some("d.json element 2"));

    let d = decoded("d.json", br#"{"version": "1.0", "data": [{"q": "a"}]}"#);
    assert_eq!(columns(&d.records[0]), [("q", &text("a"))]);

    let error = decode("d.json", br#"{"train": [], "test": []}"#).unwrap_err();
    assert!(error.message.contains("train, test"), "{error}");
    let error = decode("d.json", br#"[{"q": "a"}, 3]"#).unwrap_err();
    assert_eq!(error.position.as_deref(), Some("element 2"));
    let error = decode("d.json", b"{\n  \"data\": [\n    {\"q\": }\n  ]\n}").unwrap_err();
    assert_eq!(error.position.as_deref(), Some("line 3"), "{error}");
    assert!(decode("d.json", b"\"text\"").unwrap_err().message.contains("a string"));
}

#[test]
fn csv_quotes_separators_and_line_breaks() {
    let data = b"\xEF\xBB\xBFid,question,answer\r\n1,\"Two, three\",\"He said \"\"hi\"\"\"\r\n2,\"multi\nline\",x\n\n3,plain,\n";
    let d = decoded("d.csv", data);
    assert_eq!(d.records.len(), 3);
    assert_eq!(
        columns(&d.records[0]),
        [("id", &text("1")), ("question", &text("Two, three")), ("answer", &text("He said \"hi\""))]
    );
    assert_eq!(columns(&d.records[1])[1], ("question", &text("multi\nline")));
    assert_eq!(columns(&d.records[2]), [("id", &text("3")), ("question", &text("plain")), ("answer", &text(""))]);
    assert_eq!(d.locate(2).as_deref(), Some("d.csv line 3"));
    assert_eq!(d.locate(3).as_deref(), Some("d.csv line 6"));

    let d = decoded("d.tsv", b"a\tb\nx, y\t\"z\"\n");
    assert_eq!(columns(&d.records[0]), [("a", &text("x, y")), ("b", &text("z"))]);
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let error = decode("d.csv", b"a,b,c\n1,2,3\n4,5\n").unwrap_err();
    assert_eq!((error.position.as_deref(), error.column.as_deref()), (Some("line 3"), Some("c")));
    assert!(error.to_string().contains("d.csv, line 3, column `c`: the record has 2 fields"), "{error}");
    let error = decode("d.csv", b"a,b\n1,x\"y\n").unwrap_err();
    assert_eq!((error.position.as_deref(), error.column.as_deref()), (Some("line 2"), Some("b")));
    let error = decode("d.csv", b"a,b\n1,\"open\n\n").unwrap_err();
    assert_eq!((error.position.as_deref(), error.column.as_deref()), (Some("line 2"), Some("b")));
    assert!(error.message.contains("never closed"));
    let error = decode("d.csv", b"a,\"q\"x\n").unwrap_err();
    assert_eq!(error.position.as_deref(), Some("line 1"));
    let error = decode("d.csv", b"a,a\n1,2\n").unwrap_err();
    assert_eq!(error.column.as_deref(), Some("a"));
    let error = decode("d.csv", b"a,,c\n1,2,3\n").unwrap_err();
    assert!(error.message.contains("column 2"), "{error}");
}

/// Writes a real Parquet file with the parquet crate's writer: the types HF datasets use.
fn parquet_file(compression: ::parquet::basic::Compression) -> Vec<u8> {
    use ::parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
    use ::parquet::file::properties::WriterProperties;
    use ::parquet::file::writer::SerializedFileWriter;
    use ::parquet::schema::parser::parse_message_type;

    let schema = Arc::new(
        parse_message_type(
            "message schema {
                REQUIRED BYTE_ARRAY question (UTF8);
                REQUIRED INT64 answer;
                OPTIONAL DOUBLE score;
                REQUIRED BOOLEAN ok;
                OPTIONAL group choices (LIST) { REPEATED group list { OPTIONAL BYTE_ARRAY element (UTF8); } }
            }",
        )
        .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(compression).build());
    let mut buffer = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut buffer, schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    let questions: Vec<ByteArray> = ["What is 2+2?", "Née?", "third"].iter().map(|s| ByteArray::from(*s)).collect();
    column.typed::<ByteArrayType>().write_batch(&questions, None, None).unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column.typed::<Int64Type>().write_batch(&[4, 5, -6], None, None).unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column.typed::<DoubleType>().write_batch(&[0.5, 1.5], Some(&[1, 0, 1]), None).unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column.typed::<BoolType>().write_batch(&[true, false, true], None, None).unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    // Row 1: ["A", "B"]; row 2: []; row 3: null.
    let choices: Vec<ByteArray> = ["A", "B"].iter().map(|s| ByteArray::from(*s)).collect();
    column.typed::<ByteArrayType>().write_batch(&choices, Some(&[3, 3, 1, 0]), Some(&[0, 1, 0, 0])).unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    buffer
}

#[test]
fn parquet_rows_become_typed_records() {
    for compression in [
        ::parquet::basic::Compression::SNAPPY,
        ::parquet::basic::Compression::ZSTD(Default::default()),
        ::parquet::basic::Compression::UNCOMPRESSED,
    ] {
        let d = decoded("test-00000-of-00001.parquet", &parquet_file(compression));
        assert_eq!(d.records.len(), 3, "{compression:?}");
        assert_eq!(
            columns(&d.records[0]),
            [
                ("question", &text("What is 2+2?")),
                ("answer", &Value::Integer(4)),
                ("score", &Value::Float(0.5)),
                ("ok", &Value::Boolean(true)),
                ("choices", &Value::TextList(vec!["A".into(), "B".into()])),
            ]
        );
        assert_eq!(columns(&d.records[1])[0], ("question", &text("Née?")));
        assert_eq!(columns(&d.records[1])[2], ("score", &Value::Null));
        assert_eq!(columns(&d.records[1])[4], ("choices", &Value::TextList(Vec::new())));
        assert_eq!(columns(&d.records[2])[4], ("choices", &Value::Null));
        assert_eq!(d.locate(3).as_deref(), Some("test-00000-of-00001.parquet row 3"));
    }
}

#[test]
fn a_broken_parquet_file_is_named() {
    let error = decode("x.parquet", b"PAR1 not really").unwrap_err();
    assert_eq!(error.file, "x.parquet");
    assert!(error.message.contains("Parquet"), "{error}");
    let mut truncated = parquet_file(::parquet::basic::Compression::SNAPPY);
    truncated.truncate(truncated.len() / 2);
    assert!(decode("x.parquet", &truncated).is_err());
}

#[test]
fn shards_concatenate_and_keep_their_positions() {
    let mut all = decoded("a.jsonl", b"{\"x\": 1}\n{\"x\": 2}\n");
    all.extend(decoded("b.jsonl", b"\n{\"x\": 3}\n"));
    assert_eq!(all.records.len(), 3);
    assert_eq!(all.locate(2).as_deref(), Some("a.jsonl line 2"));
    assert_eq!(all.locate(3).as_deref(), Some("b.jsonl line 2"));
}

#[test]
fn data_sources_parse() {
    assert_eq!(DataSource::parse("data/test.jsonl").unwrap(), DataSource::File("data/test.jsonl".into()));
    assert_eq!(DataSource::parse("hf").unwrap(), DataSource::ScenarioDefault);
    assert_eq!(
        DataSource::parse("hf:openai/gsm8k:main@v1.0").unwrap(),
        DataSource::Hub(HubDataset {
            repo: "openai/gsm8k".into(),
            config: Some("main".into()),
            revision: Some("v1.0".into())
        })
    );
    assert_eq!(
        DataSource::parse("hf:cais/mmlu").unwrap(),
        DataSource::Hub(HubDataset { repo: "cais/mmlu".into(), config: None, revision: None })
    );
    for bad in ["hf:gsm8k", "hf:a/b/c", "hf:a/b:", "hf:a/b@", "hf:../b", "hf:a b/c"] {
        let error = DataSource::parse(bad).unwrap_err().to_string();
        assert!(error.contains(bad), "{error}");
    }
}

#[test]
fn hub_datasets_complete_from_the_scenario_default() {
    use crate::scenario::HfDataset;
    let default =
        HfDataset { repo: "openai/gsm8k".into(), config: Some("main".into()), split: "test".into(), revision: None };
    let user = HubDataset { repo: "openai/gsm8k".into(), config: None, revision: Some("abc".into()) };
    let resolved = source::hub_dataset(Some(&user), Some(&default), Some("train")).unwrap();
    assert_eq!(
        (resolved.config.as_deref(), resolved.split.as_str(), resolved.revision.as_deref()),
        (Some("main"), "train", Some("abc"))
    );
    let other = HubDataset { repo: "me/mine".into(), config: None, revision: None };
    let resolved = source::hub_dataset(Some(&other), Some(&default), None).unwrap();
    assert_eq!((resolved.config, resolved.split.as_str()), (None, "test"));
    assert_eq!(source::hub_dataset(None, Some(&default), None).unwrap(), default);
    assert!(source::hub_dataset(None, None, None).is_none());
}

/// Lays out `files` in an HF cache the way `huggingface_hub` does (blobs, snapshot links, a ref).
fn cache_with(cache: &std::path::Path, repo: &str, revision: &str, files: &[(&str, &[u8])]) {
    let repo_dir = cache.join(format!("datasets--{}", repo.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    for (path, bytes) in files {
        let blob = crate::provenance::hash_bytes(bytes).trim_start_matches("sha256:").to_string();
        crate::hub::store_file(&repo_dir, commit, path, &blob, *bytes, None).unwrap();
    }
    let ref_file = repo_dir.join("refs").join(revision);
    std::fs::create_dir_all(ref_file.parent().unwrap()).unwrap();
    std::fs::write(ref_file, commit).unwrap();
}

fn gsm8k_hub() -> crate::scenario::HfDataset {
    crate::scenario::HfDataset {
        repo: "openai/gsm8k".into(),
        config: Some("main".into()),
        split: "test".into(),
        revision: None,
    }
}

#[test]
fn a_hub_dataset_is_read_from_the_cache_offline() {
    let cache = tempfile::tempdir().unwrap();
    let shard = parquet_file(::parquet::basic::Compression::SNAPPY);
    cache_with(
        cache.path(),
        "openai/gsm8k",
        "main",
        &[
            ("main/test-00000-of-00002.parquet", &shard),
            ("main/test-00001-of-00002.parquet", &shard),
            ("main/train-00000-of-00001.parquet", b"not read"),
        ],
    );
    let hub = crate::hub::Hub::offline_at(cache.path());
    let loaded = source::load_hub_with(&hub, &gsm8k_hub(), &Default::default()).unwrap();
    assert_eq!((loaded.source, loaded.records()), ("hf", Some(6)));
    assert_eq!(loaded.info.name, "hf:openai/gsm8k/main/test");
    assert_eq!(loaded.info.subset.as_deref(), Some("main"));
    assert_eq!(loaded.label, "hf:openai/gsm8k/main/test@main");
    let decoded = loaded.decoded.as_ref().unwrap();
    assert_eq!(decoded.locate(4).as_deref(), Some("test-00001-of-00002.parquet row 1"));
    assert!(loaded.hash.starts_with("sha256:"));
}

#[test]
fn the_parquet_conversion_is_the_fallback() {
    let cache = tempfile::tempdir().unwrap();
    let shard = parquet_file(::parquet::basic::Compression::ZSTD(Default::default()));
    cache_with(
        cache.path(),
        "me/plain",
        source::PARQUET_CONVERSION_REVISION,
        &[("default/validation/0000.parquet", &shard)],
    );
    let hub = crate::hub::Hub::offline_at(cache.path());
    let dataset = crate::scenario::HfDataset {
        repo: "me/plain".into(),
        config: None,
        split: "validation".into(),
        revision: None,
    };
    let loaded = source::load_hub_with(&hub, &dataset, &Default::default()).unwrap();
    assert_eq!(loaded.records(), Some(3));
    assert_eq!(loaded.label, "hf:me/plain/default/validation@refs/convert/parquet");
}

#[test]
fn a_dataset_not_in_the_cache_says_what_to_run() {
    let cache = tempfile::tempdir().unwrap();
    let hub = crate::hub::Hub::offline_at(cache.path());
    let error = source::load_hub_with(&hub, &gsm8k_hub(), &Default::default()).unwrap_err().to_string();
    assert!(error.contains("hf:openai/gsm8k:main split test"), "{error}");
    assert!(error.contains("hf download --repo-type dataset openai/gsm8k"), "{error}");

    // Cached, but not the split asked for.
    cache_with(cache.path(), "openai/gsm8k", "main", &[("main/train-00000-of-00001.parquet", b"x")]);
    let error = source::load_hub_with(&hub, &gsm8k_hub(), &Default::default()).unwrap_err().to_string();
    assert!(error.contains("main/test-*.parquet"), "{error}");
}

/// Found by the `datasets` fuzz target: a column chunk with a negative offset made the parquet crate
/// assert (panic) while reading rows. It is refused naming the file.
#[test]
fn a_parquet_column_chunk_outside_the_file_is_refused() {
    let input = include_bytes!("../../../fuzz/regressions/datasets/crash-85bba2a78351cb9bf14c62d7214887b34550c2ca");
    let error = decode("x.parquet", &input[1..]).unwrap_err();
    assert!(error.to_string().contains("x.parquet") && error.to_string().contains("outside the file"), "{error}");
}

fn mmlu_layout() -> Layout {
    Layout {
        headerless_columns: ["question", "A", "B", "C", "D", "answer"].map(String::from).to_vec(),
        subsets: ["astronomy", "college_biology", "high_school_biology", "biology"].map(String::from).to_vec(),
    }
}

#[test]
fn header_less_files_keep_their_first_row_as_a_record() {
    let text = b"What is 2+2?,3,4,5,6,B\n\"A, B or C?\",a,b,c,d,C\n";
    let decoded = decode_with("anatomy_test.csv", text, &mmlu_layout()).unwrap().unwrap();
    assert_eq!(decoded.records.len(), 2, "no question is lost to a header");
    assert_eq!(decoded.records[0].columns[0], ("question".to_string(), Value::Text("What is 2+2?".into())));
    assert_eq!(decoded.records[1].columns[5], ("answer".to_string(), Value::Text("C".into())));
    assert_eq!(decoded.locate(1).as_deref(), Some("anatomy_test.csv line 1"));
    // A header naming the layout's columns (any case) is a header.
    let with_header = b"Question,a,b,c,d,Answer\nWhat is 2+2?,3,4,5,6,B\n";
    assert_eq!(decode_with("t.csv", with_header, &mmlu_layout()).unwrap().unwrap().records.len(), 1);
    // Another layout (another cell count) reads its header as before.
    let other = b"question,choices,answer\nq,\"[1,2]\",0\n";
    let decoded = decode_with("t.csv", other, &mmlu_layout()).unwrap().unwrap();
    assert_eq!((decoded.records.len(), decoded.records[0].columns[1].0.as_str()), (1, "choices"));
    // Without a declared layout the first row is always the header.
    assert_eq!(decode("t.csv", text).unwrap().unwrap().records.len(), 1);
    // A short row in a header-less file names the missing column.
    let error = decode_with("t.csv", b"q,a,b,c,d,A\nq2,a,b\n", &mmlu_layout()).unwrap_err();
    assert_eq!((error.position.as_deref(), error.column.as_deref()), (Some("line 2"), Some("C")), "{error}");
}

#[test]
fn a_folders_files_are_named_after_the_longest_subset_they_start_with() {
    let layout = mmlu_layout();
    assert_eq!(layout.subset_of_file("astronomy_test.csv").as_deref(), Some("astronomy"));
    assert_eq!(layout.subset_of_file("high_school_biology_dev.csv").as_deref(), Some("high_school_biology"));
    assert_eq!(layout.subset_of_file("biology.jsonl").as_deref(), Some("biology"));
    assert_eq!(layout.subset_of_file("astronomy-00000-of-00001.parquet").as_deref(), Some("astronomy"));
    assert_eq!(layout.subset_of_file("astronomyx.csv"), None);
    assert_eq!(layout.subset_of_file("test.csv"), None);
}

#[test]
fn a_folder_is_one_dataset_of_its_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("college_biology_test.csv"), "q1,a,b,c,d,A\n").unwrap();
    std::fs::write(dir.path().join("astronomy_test.csv"), "q2,a,b,c,d,B\nq3,a,b,c,d,C\n").unwrap();
    std::fs::write(dir.path().join("README.txt"), "not data").unwrap();
    std::fs::write(dir.path().join(".hidden.csv"), "x").unwrap();
    let loaded = LoadedFiles::path(dir.path(), &mmlu_layout(), &[]).unwrap();
    let names: Vec<(&str, Option<&str>)> =
        loaded.files.iter().map(|f| (f.info.name.as_str(), f.info.subset.as_deref())).collect();
    assert_eq!(
        names,
        [("astronomy_test.csv", Some("astronomy")), ("college_biology_test.csv", Some("college_biology"))]
    );
    assert_eq!(loaded.files.iter().map(|f| f.records().unwrap()).sum::<usize>(), 3);
    assert!(loaded.folder);
    // The selection decodes fewer files but names the same dataset.
    let one = LoadedFiles::path(dir.path(), &mmlu_layout(), &["astronomy".to_string()]).unwrap();
    assert_eq!((one.files.len(), &one.hash), (1, &loaded.hash));
    let empty = tempfile::tempdir().unwrap();
    let error = LoadedFiles::path(empty.path(), &mmlu_layout(), &[]).unwrap_err().to_string();
    assert!(error.contains("no dataset files"), "{error}");
}
