//! Decoding JSON Lines, JSON arrays and CSV/TSV files into records the way the host does, for datasets the
//! host hands over raw (an unknown extension) and for the native test harness, which has no host. JSON
//! values map to the WIT `value` variant (strings -> text, arrays of strings -> text-list, other nested
//! values -> JSON text); every CSV/TSV cell is text, the first line names the columns. TSV is split on tabs
//! without quoting (GLUE's files), CSV follows RFC 4180 quoting. JSON columns come in name order here
//! (serde_json keeps no insertion order); scenarios look columns up by name.

use crate::{DatasetError, Record, Value};

/// Decodes `data` by the extension of `file_name` (`.jsonl`/`.ndjson`, `.json`, `.csv`, `.tsv`); anything
/// else is read as JSON Lines.
pub fn decode(file_name: &str, data: &[u8]) -> Result<Vec<Record>, DatasetError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let row = data[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        error(Some(row), format!("{file_name}: line {row} is not valid UTF-8"))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let extension = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "json" => decode_json(file_name, text),
        "csv" => decode_table(file_name, text, ','),
        "tsv" => decode_table(file_name, text, '\t'),
        _ => decode_jsonl(file_name, text),
    }
}

fn error(row: Option<u32>, message: String) -> DatasetError {
    DatasetError { row, field: None, message }
}

/// One JSON value as the WIT `value` variant.
pub fn value_from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => {
            Value::TextList(items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
        }
        other => Value::Json(other.to_string()),
    }
}

fn record_from_object(row: u32, file_name: &str, value: &serde_json::Value) -> Result<Record, DatasetError> {
    let object =
        value.as_object().ok_or_else(|| error(Some(row), format!("{file_name}: record {row} is not a JSON object")))?;
    Ok(Record { columns: object.iter().map(|(k, v)| (k.clone(), value_from_json(v))).collect() })
}

fn decode_jsonl(file_name: &str, text: &str) -> Result<Vec<Record>, DatasetError> {
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row = index as u32 + 1;
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| error(Some(row), format!("{file_name}: line {row} is not valid JSON: {e}")))?;
        records.push(record_from_object(row, file_name, &value)?);
    }
    Ok(records)
}

fn decode_json(file_name: &str, text: &str) -> Result<Vec<Record>, DatasetError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| error(None, format!("{file_name} is not valid JSON: {e}")))?;
    let items =
        value.as_array().ok_or_else(|| error(None, format!("{file_name}: expected a JSON array of objects")))?;
    items.iter().enumerate().map(|(i, item)| record_from_object(i as u32 + 1, file_name, item)).collect()
}

fn decode_table(file_name: &str, text: &str, separator: char) -> Result<Vec<Record>, DatasetError> {
    let rows = if separator == '\t' {
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.split('\t').map(str::to_string).collect()).collect()
    } else {
        split_csv(file_name, text)?
    };
    let mut rows = rows.into_iter();
    let Some(header) = rows.next() else { return Ok(Vec::new()) };
    let header: Vec<String> = header.into_iter().map(|h: String| h.trim().to_string()).collect();
    rows.enumerate()
        .map(|(i, cells): (usize, Vec<String>)| {
            let row = i as u32 + 1;
            if cells.len() != header.len() {
                return Err(error(
                    Some(row),
                    format!("{file_name}: row {row} has {} cells, the header has {}", cells.len(), header.len()),
                ));
            }
            Ok(Record { columns: header.iter().cloned().zip(cells.into_iter().map(Value::Text)).collect() })
        })
        .collect()
}

/// RFC 4180: `"` quotes a cell, `""` inside quotes is a quote, quoted cells may hold separators and newlines.
fn split_csv(file_name: &str, text: &str) -> Result<Vec<Vec<String>>, DatasetError> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                let finished = std::mem::take(&mut row);
                if !(finished.len() == 1 && finished[0].is_empty()) {
                    rows.push(finished);
                }
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(error(None, format!("{file_name}: a quoted cell is never closed")));
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column<'a>(record: &'a Record, name: &str) -> &'a Value {
        &record.columns.iter().find(|(k, _)| k == name).unwrap().1
    }

    #[test]
    fn json_lines_map_values() {
        let records = decode(
            "a.jsonl",
            b"{\"q\": \"x\", \"n\": 3, \"f\": 0.5, \"l\": [\"a\"], \"o\": {\"k\": 1}, \"z\": null}\n\n",
        )
        .unwrap();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert!(matches!(column(record, "q"), Value::Text(t) if t == "x"));
        assert!(matches!(column(record, "n"), Value::Integer(3)));
        assert!(matches!(column(record, "f"), Value::Float(f) if *f == 0.5));
        assert!(matches!(column(record, "l"), Value::TextList(l) if l == &["a"]));
        assert!(matches!(column(record, "o"), Value::Json(j) if j == "{\"k\":1}"));
        assert!(matches!(column(record, "z"), Value::Null));
    }

    #[test]
    fn json_arrays_csv_and_tsv() {
        assert_eq!(decode("a.json", b"[{\"a\": 1}, {\"a\": 2}]").unwrap().len(), 2);
        let csv = decode("a.csv", b"prompt,id\n\"Say \"\"hi\"\", then stop\",1\r\nplain,2\n").unwrap();
        assert!(matches!(&csv[0].columns[0].1, Value::Text(t) if t == "Say \"hi\", then stop"));
        assert!(matches!(&csv[1].columns[1].1, Value::Text(t) if t == "2"));
        let tsv = decode("dev.tsv", b"sentence\tlabel\nit 's \"great\"\t1\n").unwrap();
        assert!(matches!(&tsv[0].columns[0].1, Value::Text(t) if t == "it 's \"great\""));
    }

    #[test]
    fn errors_name_the_row() {
        assert_eq!(decode("a.jsonl", b"{}\n{oops\n").unwrap_err().row, Some(2));
        assert_eq!(decode("a.jsonl", b"{}\n[1]\n").unwrap_err().row, Some(2));
        assert_eq!(decode("a.csv", b"a,b\n1,2\n3\n").unwrap_err().row, Some(2));
        assert!(decode("a.csv", b"a\n\"open\n").unwrap_err().message.contains("never closed"));
        assert!(decode("a.json", b"{}").unwrap_err().message.contains("array"));
    }
}
