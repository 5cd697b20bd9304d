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
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes))
        .map_err(|e| DecodeError::new(file, format!("not a readable Parquet file: {e}")))?;
    let rows = reader.get_row_iter(None).map_err(|e| DecodeError::new(file, format!("cannot read its rows: {e}")))?;
    let mut decoded = Decoded::default();
    for (index, row) in rows.enumerate() {
        let number = index as u64 + 1;
        let row = row.map_err(|e| DecodeError::at(file, "row", number, format!("cannot be read: {e}")))?;
        decoded.push(number, row.into_columns().into_iter().map(|(name, field)| (name, value_of(field))).collect());
    }
    Ok(decoded)
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
