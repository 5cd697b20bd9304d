//! GSM8K's JSON Lines format: one object per line with a `question` and an `answer` whose worked
//! solution ends in `#### N`. Errors name the 1-based row and the field.

use crate::answer;

/// One parsed problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub id: String,
    pub question: String,
    /// The final number, canonical.
    pub reference: String,
}

/// Why a dataset could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub row: Option<u32>,
    pub field: Option<&'static str>,
    pub message: String,
}

impl ParseError {
    fn at(row: u32, field: Option<&'static str>, message: impl Into<String>) -> Self {
        ParseError { row: Some(row), field, message: message.into() }
    }
}

const MARKER: &str = "####";

/// Parses GSM8K JSON Lines. Blank lines are skipped but still counted, so row numbers match an editor's.
pub fn parse(file_name: &str, data: &[u8]) -> Result<Vec<Problem>, ParseError> {
    if file_name.ends_with(".parquet") {
        return Err(ParseError {
            row: None,
            field: None,
            message: format!("{file_name} is Parquet; GSM8K is read from JSON Lines (.jsonl), one problem per line"),
        });
    }
    let text = std::str::from_utf8(data).map_err(|e| {
        let row = data[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        ParseError::at(row, None, "the line is not valid UTF-8")
    })?;
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let row = index as u32 + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        problems.push(parse_row(row, line)?);
    }
    if problems.is_empty() {
        return Err(ParseError { row: None, field: None, message: format!("{file_name} contains no problems") });
    }
    Ok(problems)
}

fn parse_row(row: u32, line: &str) -> Result<Problem, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ParseError::at(row, None, format!("invalid JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| ParseError::at(row, None, "expected a JSON object"))?;
    let text_field = |name: &'static str| -> Result<&str, ParseError> {
        match object.get(name) {
            None => Err(ParseError::at(row, Some(name), "is missing")),
            Some(serde_json::Value::String(text)) if !text.trim().is_empty() => Ok(text),
            Some(serde_json::Value::String(_)) => Err(ParseError::at(row, Some(name), "is empty")),
            Some(_) => Err(ParseError::at(row, Some(name), "is not a string")),
        }
    };
    let question = text_field("question")?;
    let answer_text = text_field("answer")?;
    let Some(marker_at) = answer_text.rfind(MARKER) else {
        return Err(ParseError::at(row, Some("answer"), "has no `#### ` marker before the final number"));
    };
    let final_text = &answer_text[marker_at + MARKER.len()..];
    let reference = answer::normalize(final_text).ok_or_else(|| {
        ParseError::at(row, Some("answer"), format!("the text after `####` is not one number: {:?}", final_text.trim()))
    })?;
    let id = match object.get("id") {
        Some(serde_json::Value::String(id)) => id.clone(),
        Some(serde_json::Value::Number(id)) => id.to_string(),
        _ => row.to_string(),
    };
    Ok(Problem { id, question: question.trim().to_string(), reference })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_normalises_the_reference() {
        let data = b"{\"question\": \"Q1?\", \"answer\": \"2 + 2 = 4\\n#### 4\"}\n\n{\"question\": \"Q2?\", \"answer\": \"x\\n#### 1,250\", \"id\": \"q2\"}\n";
        let problems = parse("test.jsonl", data).unwrap();
        assert_eq!(
            problems,
            [
                Problem { id: "1".into(), question: "Q1?".into(), reference: "4".into() },
                Problem { id: "q2".into(), question: "Q2?".into(), reference: "1250".into() },
            ]
        );
    }

    #[test]
    fn errors_name_the_row_and_field() {
        let good = "{\"question\": \"Q?\", \"answer\": \"#### 1\"}\n";
        let cases: &[(&str, Option<&str>)] = &[
            ("{\"question\": \"Q?\", \"answer\": \"it is 5\"}", Some("answer")),
            ("{\"answer\": \"#### 5\"}", Some("question")),
            ("{\"question\": 3, \"answer\": \"#### 5\"}", Some("question")),
            ("{\"question\": \"Q\", \"answer\": \"#### five\"}", Some("answer")),
            ("{\"question\": \"Q\", ", None),
            ("[1, 2]", None),
        ];
        for (bad, field) in cases {
            let data = format!("{good}{good}{bad}\n{good}");
            let error = parse("test.jsonl", data.as_bytes()).unwrap_err();
            assert_eq!(error.row, Some(3), "{bad}");
            assert_eq!(error.field, *field, "{bad}");
        }
    }

    #[test]
    fn rejects_empty_files_and_parquet() {
        assert_eq!(parse("empty.jsonl", b"\n\n").unwrap_err().row, None);
        assert!(parse("test-00000-of-00001.parquet", b"PAR1").unwrap_err().message.contains("JSON Lines"));
    }

    #[test]
    fn invalid_utf8_names_its_row() {
        let error = parse("x.jsonl", b"{}\n{}\n\xff\n").unwrap_err();
        assert_eq!(error.row, Some(3));
    }

    #[test]
    fn the_embedded_sample_parses_and_its_answers_are_right() {
        let problems = parse("sample.jsonl", crate::EMBEDDED_SAMPLE).unwrap();
        assert_eq!(problems.len(), 10);
        let references: Vec<&str> = problems.iter().map(|p| p.reference.as_str()).collect();
        assert_eq!(references, ["25", "140", "320", "150", "72", "80", "45", "27", "225", "-11"]);
    }
}
