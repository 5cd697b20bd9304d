//! `samples.csv`: the run's samples as one spreadsheet row each (index, repetition, id, subset, status, every
//! metric, token counts, timings, memory, error), with the prompt, output, reference and extracted answer as
//! extra columns on request. It is a view, rebuilt from `samples.jsonl` (the source of truth) at the end of a
//! run and when one is resumed, and replaced atomically so a reader never sees half of it.

use std::collections::BTreeSet;
use std::path::Path;

use super::record::{SampleRecord, SampleStatus};

pub const SAMPLES_CSV_FILE: &str = "samples.csv";

/// Columns every row has, before the metrics.
const LEADING: [&str; 5] = ["index", "repetition", "id", "subset", "status"];

/// Columns after the metrics.
const TRAILING: [&str; 15] = [
    "finish",
    "prompt_tokens",
    "output_tokens",
    "prompt_ms",
    "ttft_ms",
    "prefill_ms",
    "decode_ms",
    "generate_ms",
    "score_ms",
    "e2e_ms",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "peak_rss_bytes",
    "error_stage",
    "error",
];

/// With `--csv-text`.
const TEXT: [&str; 4] = ["prompt_text", "output", "reference", "extracted"];

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot write {path}: {source}", path = .path.display())]
    Write { path: std::path::PathBuf, source: csv::Error },
    #[error("cannot write {path}: {source}", path = .path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// The metric columns: every metric name any record has, sorted. A metric named like a fixed column gets a
/// `metric:` prefix so no column is ambiguous.
fn metric_columns(records: &[SampleRecord]) -> Vec<(String, String)> {
    let names: BTreeSet<&str> = records.iter().flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
    let fixed: BTreeSet<&str> = LEADING.iter().chain(&TRAILING).chain(&TEXT).copied().collect();
    names
        .into_iter()
        .map(|name| {
            let header = if fixed.contains(name) { format!("metric:{name}") } else { name.to_string() };
            (name.to_string(), header)
        })
        .collect()
}

fn number(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

fn count<T: ToString>(value: Option<T>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// The table as CSV bytes: a header row, then one row per record in the order given.
pub fn render(records: &[SampleRecord], with_text: bool) -> Result<Vec<u8>, csv::Error> {
    let metrics = metric_columns(records);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = LEADING.to_vec();
    header.extend(metrics.iter().map(|(_, h)| h.as_str()));
    header.extend(TRAILING);
    if with_text {
        header.extend(TEXT);
    }
    writer.write_record(&header)?;
    for r in records {
        let t = &r.timings;
        let generated = r.output_tokens.is_some();
        // Timings of the model only mean something when it generated; zeros would read as measurements.
        let model_ms = |v: f64| if generated { v.to_string() } else { String::new() };
        let mut row: Vec<String> = vec![
            r.index.to_string(),
            r.repetition.to_string(),
            r.id.clone(),
            r.subset.clone().unwrap_or_default(),
            match r.status {
                SampleStatus::Ok => "ok".to_string(),
                SampleStatus::Failed => "failed".to_string(),
            },
        ];
        row.extend(metrics.iter().map(|(name, _)| number(r.metrics.get(name).copied())));
        row.extend([
            r.finish.clone().unwrap_or_default(),
            count(r.prompt_tokens),
            count(r.output_tokens),
            t.prompt_ms.to_string(),
            model_ms(t.ttft_ms),
            model_ms(t.prefill_ms),
            model_ms(t.itl_ms.iter().sum::<f64>()),
            model_ms(t.generate_ms),
            t.score_ms.to_string(),
            t.e2e_ms.to_string(),
            number(t.decode_tokens_per_s),
            number(t.prefill_tokens_per_s),
            count(r.peak_rss_bytes),
            r.error.as_ref().map_or(String::new(), |e| format!("{:?}", e.stage).to_lowercase()),
            r.error.as_ref().map_or(String::new(), |e| e.message.clone()),
        ]);
        if with_text {
            row.extend([
                r.prompt_text.clone().unwrap_or_default(),
                r.output.clone().unwrap_or_default(),
                r.reference.clone(),
                r.extracted.clone().unwrap_or_default(),
            ]);
        }
        writer.write_record(&row)?;
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Writes `dir/samples.csv` from `records`, replacing the old file atomically.
pub fn write(dir: &Path, records: &[SampleRecord], with_text: bool) -> Result<(), CsvError> {
    let path = dir.join(SAMPLES_CSV_FILE);
    let bytes = render(records, with_text).map_err(|source| CsvError::Write { path: path.clone(), source })?;
    crate::files::write_atomically(&path, &bytes).map_err(|source| CsvError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::results::record::{SampleError, SampleTimings, Stage};

    fn record(index: usize, repetition: usize, output: &str, metrics: &[(&str, f64)]) -> SampleRecord {
        SampleRecord {
            repetition,
            status: SampleStatus::Ok,
            prompt_text: Some("Q: \"a, b\"\nA:".into()),
            output: Some(output.into()),
            extracted: Some("42".into()),
            metrics: metrics.iter().map(|(n, v)| (n.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            finish: Some("eos".into()),
            prompt_tokens: Some(12),
            output_tokens: Some(3),
            timings: SampleTimings {
                ttft_ms: 5.0,
                itl_ms: vec![1.0, 2.0],
                e2e_ms: 9.5,
                decode_tokens_per_s: Some(1000.0),
                ..Default::default()
            },
            peak_rss_bytes: Some(1 << 20),
            ..SampleRecord::begin(index, format!("id-{index}"), None, "42".into())
        }
    }

    fn read_back(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_reader(bytes);
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
        (header, rows)
    }

    #[test]
    fn quotes_commas_newlines_and_quotes_and_reads_back_exactly() {
        let tricky = "The answer, \"as computed\",\nis 42.\r\n\tdone";
        let records = [record(0, 0, tricky, &[("accuracy", 1.0)]), record(1, 1, "plain", &[("rouge1", 0.25)])];
        let bytes = render(&records, true).unwrap();
        let (header, rows) = read_back(&bytes);
        let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][column("output")], tricky);
        assert_eq!(rows[0][column("prompt_text")], "Q: \"a, b\"\nA:");
        assert_eq!(rows[1][column("repetition")], "1");
        // The union of metric names, empty where a sample has no such metric.
        assert_eq!((rows[0][column("accuracy")].as_str(), rows[0][column("rouge1")].as_str()), ("1", ""));
        assert_eq!((rows[1][column("accuracy")].as_str(), rows[1][column("rouge1")].as_str()), ("", "0.25"));
        assert_eq!(rows[0][column("decode_ms")], "3");
        assert!(header.iter().all(|h| h != "error" || rows[0][column("error")].is_empty()));
    }

    #[test]
    fn text_columns_only_on_request_and_metric_names_never_shadow_columns() {
        let mut failed = record(0, 0, "x", &[("status", 0.5)]);
        failed.status = SampleStatus::Failed;
        failed.output_tokens = None;
        failed.error = Some(SampleError { stage: Stage::Score, message: "trap: unreachable, at 0x1".into() });
        let (header, rows) = read_back(&render(&[failed], false).unwrap());
        assert!(!header.iter().any(|h| h == "output" || h == "prompt_text"), "{header:?}");
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(rows[0][column("status")], "failed");
        assert_eq!(rows[0][column("metric:status")], "0.5");
        assert_eq!(rows[0][column("error_stage")], "score");
        assert_eq!(rows[0][column("error")], "trap: unreachable, at 0x1");
        // No generation: model timings are blank, not zero.
        assert_eq!(rows[0][column("ttft_ms")], "");
    }
}
