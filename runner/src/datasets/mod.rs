//! Dataset files as scenarios receive them: the host decodes the common containers (JSON Lines, JSON,
//! CSV/TSV, Parquet) into records of typed values (the WIT `record`), so scenarios carry no parsers, and
//! finds the files of a `--data` source (a local file, or a Hugging Face dataset in the HF cache).
//!
//! Every record remembers where it came from (file and line, row or element), so an error a scenario
//! reports for record N can name the line a user opens in an editor.

mod csv;
mod json;
mod parquet;
pub mod source;

use std::path::Path;

use crate::scenario::{DatasetInput, Record, Value};

pub use source::{DataSource, HubDataset, LoadedData, LoadedFiles, SourceError};

/// A container the host decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Tsv,
    Parquet,
}

impl Format {
    /// The format a file name's extension says, if the host decodes it.
    pub fn of(file_name: &str) -> Option<Format> {
        let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match extension.as_str() {
            "jsonl" | "ndjson" => Format::Jsonl,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    /// What one position in the file is called in messages.
    fn unit(self) -> &'static str {
        match self {
            Format::Jsonl | Format::Csv | Format::Tsv => "line",
            Format::Json => "element",
            Format::Parquet => "row",
        }
    }
}

/// Why a dataset file could not be decoded; names the file and, when known, the line/row and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}{}: {message}", position.as_ref().map(|p| format!(", {p}")).unwrap_or_default(),
    column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
pub struct DecodeError {
    pub file: String,
    /// "line 12", "row 3", "element 4".
    pub position: Option<String>,
    pub column: Option<String>,
    pub message: String,
}

impl DecodeError {
    fn new(file: &str, message: impl Into<String>) -> DecodeError {
        DecodeError { file: file.to_string(), position: None, column: None, message: message.into() }
    }

    fn at(file: &str, unit: &str, number: u64, message: impl Into<String>) -> DecodeError {
        DecodeError { position: Some(format!("{unit} {number}")), ..DecodeError::new(file, message) }
    }

    fn column(mut self, column: impl Into<String>) -> DecodeError {
        self.column = Some(column.into());
        self
    }
}

/// Where a run of records came from.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    file: String,
    format: Format,
    /// Index of its first record in the decoded records.
    first: usize,
}

/// Decoded records with the file position of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub records: Vec<Record>,
    /// 1-based line (JSONL, CSV), element (JSON) or row (Parquet) of each record in its file.
    positions: Vec<u64>,
    origins: Vec<Origin>,
}

impl Decoded {
    /// Where the record with this 1-based number came from, e.g. "train.jsonl line 14".
    pub fn locate(&self, record: u32) -> Option<String> {
        let index = usize::try_from(record).ok()?.checked_sub(1)?;
        let position = *self.positions.get(index)?;
        let origin = self.origins.iter().rev().find(|o| o.first <= index)?;
        Some(format!("{} {} {position}", origin.file, origin.format.unit()))
    }

    /// Appends another file's records (a shard of the same dataset).
    pub fn extend(&mut self, other: Decoded) {
        let offset = self.records.len();
        self.origins.extend(other.origins.into_iter().map(|o| Origin { first: o.first + offset, ..o }));
        self.records.extend(other.records);
        self.positions.extend(other.positions);
    }

    fn push(&mut self, position: u64, columns: Vec<(String, Value)>) {
        self.records.push(Record { columns });
        self.positions.push(position);
    }
}

/// What the host must know of a scenario's files to read them: the columns of its header-less CSV/TSV
/// layout (the contract's `headerless-columns`) and its subsets, which name the files of a folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    pub headerless_columns: Vec<String>,
    pub subsets: Vec<String>,
}

impl Layout {
    pub fn of(metadata: &crate::scenario::Metadata) -> Layout {
        Layout {
            headerless_columns: metadata.headerless_columns.clone(),
            subsets: metadata.subsets.iter().map(|s| s.name.clone()).collect(),
        }
    }

    /// The declared subset a file is named after: the longest subset name that is the file's stem or
    /// begins it followed by `_`, `-` or `.` (`abstract_algebra_test.csv` holds `abstract_algebra`).
    pub fn subset_of_file(&self, file_name: &str) -> Option<String> {
        let stem = file_name.split_once('.').map_or(file_name, |(stem, _)| stem);
        self.subsets
            .iter()
            .filter(|subset| {
                stem == subset.as_str()
                    || stem.strip_prefix(subset.as_str()).is_some_and(|rest| rest.starts_with(['_', '-', '.']))
            })
            .max_by_key(|subset| subset.len())
            .cloned()
    }
}

/// Decodes a file's bytes if its extension names a container the host knows; `Ok(None)` otherwise
/// (the scenario then gets the raw bytes). An empty dataset is an error naming the file.
pub fn decode(file_name: &str, bytes: &[u8]) -> Result<Option<Decoded>, DecodeError> {
    decode_with(file_name, bytes, &Layout::default())
}

/// [`decode`] for a scenario's files: CSV/TSV rows in its header-less layout are read under its columns.
pub fn decode_with(file_name: &str, bytes: &[u8], layout: &Layout) -> Result<Option<Decoded>, DecodeError> {
    let Some(format) = Format::of(file_name) else { return Ok(None) };
    let columns = &layout.headerless_columns;
    let mut decoded = match format {
        Format::Jsonl => json::decode_lines(file_name, bytes)?,
        Format::Json => json::decode_document(file_name, bytes)?,
        Format::Csv => csv::decode(file_name, bytes, b',', columns)?,
        Format::Tsv => csv::decode(file_name, bytes, b'\t', columns)?,
        Format::Parquet => parquet::decode(file_name, bytes)?,
    };
    if decoded.records.is_empty() {
        return Err(DecodeError::new(file_name, "the dataset holds no records"));
    }
    decoded.origins = vec![Origin { file: file_name.to_string(), format, first: 0 }];
    Ok(Some(decoded))
}

impl Decoded {
    /// The records as the scenario's input; the positions stay behind for [`Decoded::locate`].
    pub fn take_input(&mut self) -> DatasetInput {
        DatasetInput::Records(std::mem::take(&mut self.records))
    }
}

/// The file name of a path, for messages and for the scenario's `dataset-info`.
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Text without a UTF-8 byte order mark, or an error naming the line of the first invalid byte.
fn utf8<'a>(file: &str, unit: &str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        DecodeError::at(file, unit, line, "is not valid UTF-8")
    })
}

#[cfg(test)]
mod tests;
