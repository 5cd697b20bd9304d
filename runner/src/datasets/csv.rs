//! CSV and TSV as RFC 4180 describes them: a header row names the columns; a field may be quoted with
//! `"`, inside which separators, line breaks and doubled quotes (`""`) are data; CRLF or LF line ends.
//! Every cell is text. Errors name the line where the record starts and the column.
//!
//! Some benchmarks ship header-less files (MMLU's original release: `question,A,B,C,D,answer`). A
//! scenario declares such a layout's columns; a file whose first row is not exactly those names but has
//! as many cells is then read as data from its first line on, so no question is lost to a header guess.

use super::{DecodeError, Decoded, utf8};
use crate::scenario::Value;

pub(super) fn decode(
    file: &str,
    bytes: &[u8],
    separator: u8,
    headerless_columns: &[String],
) -> Result<Decoded, DecodeError> {
    let text = utf8(file, "line", bytes)?;
    let mut rows = Rows { text, position: 0, line: 1, separator: separator as char, file };
    let Some((first_line, first_row)) = rows.next_row(None)? else {
        return Err(DecodeError::new(file, "the file is empty: expected a header row naming the columns"));
    };
    let names_the_columns = |row: &[String]| {
        row.len() == headerless_columns.len()
            && row.iter().zip(headerless_columns).all(|(cell, name)| cell.trim().eq_ignore_ascii_case(name))
    };
    let mut decoded = Decoded::default();
    let header = if !headerless_columns.is_empty()
        && first_row.len() == headerless_columns.len()
        && !names_the_columns(&first_row)
    {
        decoded
            .push(first_line, headerless_columns.iter().cloned().zip(first_row.into_iter().map(Value::Text)).collect());
        headerless_columns.to_vec()
    } else {
        first_row
    };
    for (index, name) in header.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(DecodeError::at(file, "line", 1, format!("column {} of the header has no name", index + 1)));
        }
        if header[..index].contains(name) {
            return Err(DecodeError::at(file, "line", 1, "the header names this column twice").column(name));
        }
    }
    while let Some((line, cells)) = rows.next_row(Some(&header))? {
        if cells.len() == 1 && cells[0].is_empty() {
            continue;
        }
        if cells.len() != header.len() {
            let message = format!("the record has {} fields, the header {}", cells.len(), header.len());
            let error = DecodeError::at(file, "line", line, message);
            return Err(match header.get(cells.len()) {
                Some(missing) => error.column(missing.clone()),
                None => error,
            });
        }
        decoded.push(line, header.iter().cloned().zip(cells.into_iter().map(Value::Text)).collect());
    }
    Ok(decoded)
}

struct Rows<'a> {
    text: &'a str,
    position: usize,
    line: u64,
    separator: char,
    file: &'a str,
}

impl Rows<'_> {
    /// The next record and the line it starts on; `None` at the end of the text.
    fn next_row(&mut self, header: Option<&[String]>) -> Result<Option<(u64, Vec<String>)>, DecodeError> {
        if self.position >= self.text.len() {
            return Ok(None);
        }
        let start_line = self.line;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut chars = self.text[self.position..].char_indices().peekable();
        let mut quoted = false;
        let mut cell_started_quoted = false;
        let mut end = self.text.len() - self.position;
        let column_name = |cells: &Vec<String>| -> String {
            header.and_then(|h| h.get(cells.len()).cloned()).unwrap_or_else(|| format!("{}", cells.len() + 1))
        };
        while let Some((offset, c)) = chars.next() {
            if quoted {
                match c {
                    '"' if chars.peek().map(|&(_, n)| n) == Some('"') => {
                        chars.next();
                        cell.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        self.line += 1;
                        cell.push(c);
                    }
                    _ => cell.push(c),
                }
                continue;
            }
            match c {
                '"' if cell.is_empty() && !cell_started_quoted => {
                    quoted = true;
                    cell_started_quoted = true;
                }
                '"' => {
                    return Err(DecodeError::at(
                        self.file,
                        "line",
                        self.line,
                        "a quote inside a field that is not quoted, or text after a closing quote \
                         (quote the whole field and double the quotes inside it)",
                    )
                    .column(column_name(&cells)));
                }
                c if c == self.separator => {
                    cells.push(std::mem::take(&mut cell));
                    cell_started_quoted = false;
                }
                '\r' if chars.peek().map(|&(_, n)| n) == Some('\n') => {}
                '\n' => {
                    self.line += 1;
                    end = offset + 1;
                    break;
                }
                _ if cell_started_quoted => {
                    return Err(DecodeError::at(self.file, "line", self.line, "text after a closing quote")
                        .column(column_name(&cells)));
                }
                _ => cell.push(c),
            }
        }
        if quoted {
            return Err(DecodeError::at(self.file, "line", start_line, "a quoted field is never closed")
                .column(column_name(&cells)));
        }
        cells.push(cell);
        self.position += end;
        Ok(Some((start_line, cells)))
    }
}
