//! Parquet files (Hugging Face dataset shards, pandas/pyarrow exports) read row by row with the
//! `parquet` crate's record reader: integers, floats, booleans, strings and nulls become typed values,
//! lists of strings text lists, and anything else (structs, maps, other lists, dates) JSON text.

use bytes::Bytes;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;

use super::{DecodeError, Decoded};
use crate::scenario::Value;

pub(super) fn decode(file: &str, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    // The parquet crate still asserts on some malformed pages (an over-long VLQ integer in a delta-encoded
    // page, found by the `datasets` fuzz target): a hostile file must be an error naming it, not a crash.
    std::panic::catch_unwind(|| decode_unguarded(file, bytes)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("the decoder failed");
        Err(DecodeError::new(file, format!("a malformed Parquet file: {reason}")))
    })
}

fn decode_unguarded(file: &str, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes))
        .map_err(|e| DecodeError::new(file, format!("not a readable Parquet file: {e}")))?;
    check_column_chunks(file, &reader, bytes.len())?;
    let rows = reader.get_row_iter(None).map_err(|e| DecodeError::new(file, format!("cannot read its rows: {e}")))?;
    let mut decoded = Decoded::default();
    for (index, row) in rows.enumerate() {
        let number = index as u64 + 1;
        let row = row.map_err(|e| DecodeError::at(file, "row", number, format!("cannot be read: {e}")))?;
        decoded.push(number, row.into_columns().into_iter().map(|(name, field)| (name, value_of(field))).collect());
    }
    Ok(decoded)
}

/// The parquet crate asserts (panics) on a column chunk with a negative offset or size; refuse those, and
/// chunks that point past the end of the file, before reading rows. Found by the `datasets` fuzz target.
fn check_column_chunks(file: &str, reader: &SerializedFileReader<Bytes>, file_len: usize) -> Result<(), DecodeError> {
    for (group, row_group) in reader.metadata().row_groups().iter().enumerate() {
        for column in row_group.columns() {
            let start = column.dictionary_page_offset().unwrap_or_else(|| column.data_page_offset());
            let len = column.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(start, len)| start.checked_add(len))
                .is_some_and(|end| end <= file_len as u64);
            if !inside {
                return Err(DecodeError::new(
                    file,
                    format!(
                        "not a readable Parquet file: column `{}` of row group {} claims bytes {start}..+{len}, \
                         outside the file's {file_len} bytes",
                        column.column_path(),
                        group + 1
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn value_of(field: Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Boolean(b),
        Field::Byte(i) => Value::Integer(i.into()),
        Field::Short(i) => Value::Integer(i.into()),
        Field::Int(i) => Value::Integer(i.into()),
        Field::Long(i) => Value::Integer(i),
        Field::UByte(i) => Value::Integer(i.into()),
        Field::UShort(i) => Value::Integer(i.into()),
        Field::UInt(i) => Value::Integer(i.into()),
        Field::ULong(i) => i64::try_from(i).map_or_else(|_| Value::Json(i.to_string()), Value::Integer),
        Field::Float16(f) => Value::Float(f.to_f64()),
        Field::Float(f) => Value::Float(f.into()),
        Field::Double(f) => Value::Float(f),
        Field::Str(s) => Value::Text(s),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(text) => Value::Text(text.to_string()),
            Err(_) => Value::Json(Field::Bytes(b).to_json_value().to_string()),
        },
        Field::ListInternal(list) if list.elements().iter().all(|f| matches!(f, Field::Str(_))) => Value::TextList(
            list.elements()
                .iter()
                .map(|f| match f {
                    Field::Str(s) => s.clone(),
                    _ => unreachable!("every element was just found to be a string"),
                })
                .collect(),
        ),
        other => Value::Json(other.to_json_value().to_string()),
    }
}
