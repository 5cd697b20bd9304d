//! Reading a dataset's records: [`records`] turns whatever the host passed (decoded records, or raw bytes
//! of a file it does not know) into records, and [`Row`] reads one record's columns as text, integers or
//! lists, with errors that name the 1-based row and the column, as `dataset-error` expects; [`samples`]
//! is a whole `parse-dataset` for the scenarios that make one sample of each row. Later, in
//! `build-prompt` and `score`, [`field`] reads back a field the scenario put in a sample.

use crate::{DatasetError, DatasetInfo, DatasetInput, Record, Sample, Value, decode};

/// The records of a dataset: as the host decoded them, or decoded here from raw bytes (JSON Lines unless
/// the file name says JSON, CSV or TSV). An empty dataset is an error naming the file.
pub fn records(info: &DatasetInfo, input: DatasetInput) -> Result<Vec<Record>, DatasetError> {
    let records = match input {
        DatasetInput::Records(records) => records,
        DatasetInput::Raw(bytes) => decode::decode(&info.name, &bytes)?,
    };
    if records.is_empty() {
        return Err(DatasetError { row: None, field: None, message: format!("{} holds no records", info.name) });
    }
    Ok(records)
}

/// `parse-dataset` for a scenario that makes one sample of each row: the records as [`records`] reads
/// them, each row through `sample`, the first error stopping the parse. Every row becomes a sample with
/// its subset, whatever the run selected: the host keeps the selected subsets.
pub fn samples(
    info: &DatasetInfo,
    input: DatasetInput,
    sample: impl FnMut(Row<'_>) -> Result<Sample, DatasetError>,
) -> Result<Vec<Sample>, DatasetError> {
    let records = records(info, input)?;
    rows(&records).map(sample).collect()
}

/// Each record with its 1-based row number.
pub fn rows(records: &[Record]) -> impl Iterator<Item = Row<'_>> {
    records.iter().enumerate().map(|(index, record)| Row::new(index as u32 + 1, record))
}

/// The value of a sample's field `name`; an error names the sample and the field.
pub fn field<'a>(sample: &'a Sample, name: &str) -> Result<&'a str, String> {
    sample
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.value.as_str())
        .ok_or_else(|| format!("sample {} has no `{name}` field", sample.id))
}

/// A `dataset-error` at a row and column.
pub fn error_at(row: u32, field: &str, message: impl Into<String>) -> DatasetError {
    DatasetError { row: Some(row), field: Some(field.to_string()), message: message.into() }
}

/// One record and its row number, for reading columns with located errors.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    pub row: u32,
    pub record: &'a Record,
}

impl<'a> Row<'a> {
    pub fn new(row: u32, record: &'a Record) -> Self {
        Row { row, record }
    }

    /// The column's value; None when the record has no such column.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.record.columns.iter().find(|(name, _)| name == field).map(|(_, value)| value)
    }

    /// Whether the column exists and is not null.
    pub fn has(&self, field: &str) -> bool {
        !matches!(self.get(field), None | Some(Value::Null))
    }

    /// The column names, in the file's order.
    pub fn columns(&self) -> impl Iterator<Item = &'a str> {
        self.record.columns.iter().map(|(name, _)| name.as_str())
    }

    /// A `dataset-error` at this row and `field`.
    pub fn error(&self, field: &str, message: impl Into<String>) -> DatasetError {
        error_at(self.row, field, message)
    }

    fn missing(&self, field: &str) -> DatasetError {
        self.error(field, format!("row {} has no `{field}` column", self.row))
    }

    /// A text column that must be present and not blank.
    pub fn str(&self, field: &str) -> Result<&'a str, DatasetError> {
        match self.opt_str(field)? {
            Some(text) if !text.trim().is_empty() => Ok(text),
            Some(_) => Err(self.error(field, format!("`{field}` is empty in row {}", self.row))),
            None => Err(self.missing(field)),
        }
    }

    /// A text column that may be missing or null (None), but is text when present.
    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>, DatasetError> {
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Text(text)) => Ok(Some(text)),
            Some(other) => Err(self.error(field, format!("`{field}` is {}, expected text", kind(other)))),
        }
    }

    /// Any scalar column as text (ids that are numbers in one file and strings in another); None when
    /// missing or null.
    pub fn opt_text(&self, field: &str) -> Result<Option<String>, DatasetError> {
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Text(text)) => Ok(Some(text.clone())),
            Some(Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(Value::Float(f)) => Ok(Some(f.to_string())),
            Some(Value::Boolean(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.error(field, format!("`{field}` is {}, expected a scalar", kind(other)))),
        }
    }

    /// The record's id from `field` when present, else its row number, so every sample has an id.
    pub fn id(&self, field: &str) -> Result<String, DatasetError> {
        Ok(self.opt_text(field)?.filter(|id| !id.trim().is_empty()).unwrap_or_else(|| self.row.to_string()))
    }

    /// An integer column; text cells (CSV/TSV) and integral floats are accepted.
    pub fn int(&self, field: &str) -> Result<i64, DatasetError> {
        match self.get(field) {
            None | Some(Value::Null) => Err(self.missing(field)),
            Some(Value::Integer(i)) => Ok(*i),
            Some(Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
            Some(Value::Text(text)) => text
                .trim()
                .parse()
                .map_err(|_| self.error(field, format!("`{field}` is {text:?}, expected an integer"))),
            Some(other) => Err(self.error(field, format!("`{field}` is {}, expected an integer", kind(other)))),
        }
    }

    /// A list of strings: a text list, a JSON array of scalars, or a text cell holding a JSON array (CSV).
    pub fn list(&self, field: &str) -> Result<Vec<String>, DatasetError> {
        let from_json = |json: &str| -> Result<Vec<String>, DatasetError> {
            let value: serde_json::Value = serde_json::from_str(json)
                .map_err(|_| self.error(field, format!("`{field}` is not a list: {json:?}")))?;
            let items = value.as_array().ok_or_else(|| self.error(field, format!("`{field}` is not a list")))?;
            items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    serde_json::Value::Bool(b) => Ok(b.to_string()),
                    _ => Err(self.error(field, format!("`{field}` holds an item that is not text: {item}"))),
                })
                .collect()
        };
        match self.get(field) {
            None | Some(Value::Null) => Err(self.missing(field)),
            Some(Value::TextList(items)) => Ok(items.clone()),
            Some(Value::Json(json)) => from_json(json),
            Some(Value::Text(text)) if text.trim_start().starts_with('[') => from_json(text),
            Some(other) => Err(self.error(field, format!("`{field}` is {}, expected a list", kind(other)))),
        }
    }

    /// A JSON column (a nested object or list of non-strings) parsed; text cells holding JSON work too.
    pub fn json(&self, field: &str) -> Result<serde_json::Value, DatasetError> {
        let text = match self.get(field) {
            None | Some(Value::Null) => return Err(self.missing(field)),
            Some(Value::Json(text) | Value::Text(text)) => text,
            Some(Value::TextList(items)) => return Ok(serde_json::Value::from(items.clone())),
            Some(other) => return Err(self.error(field, format!("`{field}` is {}, expected JSON", kind(other)))),
        };
        serde_json::from_str(text).map_err(|e| self.error(field, format!("`{field}` is not valid JSON: {e}")))
    }
}

/// A value's kind, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Text(_) => "text",
        Value::TextList(_) => "a list of text",
        Value::Json(_) => "a nested JSON value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(columns: Vec<(&str, Value)>) -> Record {
        Record { columns: columns.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }

    #[test]
    fn reads_columns_of_every_kind() {
        let r = record(vec![
            ("q", Value::Text("What?".into())),
            ("label", Value::Text(" 1 ".into())),
            ("n", Value::Integer(7)),
            ("choices", Value::TextList(vec!["a".into(), "b".into()])),
            ("nums", Value::Json("[1, 2]".into())),
            ("cell", Value::Text("[\"x\", \"y\"]".into())),
            ("none", Value::Null),
        ]);
        let row = Row::new(4, &r);
        assert_eq!(row.str("q").unwrap(), "What?");
        assert_eq!(row.int("label").unwrap(), 1);
        assert_eq!(row.int("n").unwrap(), 7);
        assert_eq!(row.list("choices").unwrap(), ["a", "b"]);
        assert_eq!(row.list("nums").unwrap(), ["1", "2"]);
        assert_eq!(row.list("cell").unwrap(), ["x", "y"]);
        assert_eq!(row.opt_str("none").unwrap(), None);
        assert_eq!(row.id("n").unwrap(), "7");
        assert_eq!(row.id("absent").unwrap(), "4");
        assert!(row.has("q") && !row.has("none") && !row.has("absent"));
    }

    #[test]
    fn errors_name_row_and_field() {
        let r =
            record(vec![("q", Value::Integer(3)), ("blank", Value::Text("  ".into())), ("t", Value::Text("x".into()))]);
        let row = Row::new(9, &r);
        for error in [
            row.str("q").unwrap_err(),
            row.str("missing").unwrap_err(),
            row.str("blank").unwrap_err(),
            row.int("t").unwrap_err(),
            row.list("t").unwrap_err(),
        ] {
            assert_eq!(error.row, Some(9));
            assert!(error.field.is_some(), "{error:?}");
        }
        assert_eq!(row.str("missing").unwrap_err().field.as_deref(), Some("missing"));
    }

    #[test]
    fn raw_input_is_decoded_and_empty_datasets_refused() {
        let info = DatasetInfo { name: "x.data".into(), subset: None };
        let records = records(&info, DatasetInput::Raw(b"{\"a\": 1}\n".to_vec())).unwrap();
        assert_eq!(records.len(), 1);
        let error = super::records(&info, DatasetInput::Records(Vec::new())).unwrap_err();
        assert!(error.message.contains("x.data"));
    }

    #[test]
    fn samples_are_one_a_row_until_a_row_fails() {
        let info = DatasetInfo { name: "x.jsonl".into(), subset: None };
        let input = || DatasetInput::Raw(b"{\"q\": \"a\"}\n{\"q\": \"b\"}\n{\"r\": 1}\n{\"q\": \"d\"}\n".to_vec());
        let sample = |row: Row<'_>| {
            Ok(Sample { id: row.row.to_string(), subset: None, fields: Vec::new(), reference: row.str("q")?.into() })
        };
        let mut seen = 0;
        let error = samples(&info, input(), |row| {
            seen += 1;
            sample(row)
        })
        .unwrap_err();
        // The fourth row is never read.
        assert_eq!((error.row, error.field.as_deref(), seen), (Some(3), Some("q"), 3));
        let two = DatasetInput::Records(super::records(&info, input()).unwrap()[..2].to_vec());
        let parsed = samples(&info, two, sample).unwrap();
        assert_eq!(
            parsed.iter().map(|s| (s.id.as_str(), s.reference.as_str())).collect::<Vec<_>>(),
            [("1", "a"), ("2", "b")]
        );
    }
}
