//! What multiple-choice benchmarks (MMLU, ARC, OpenBookQA...) share: reading choices in their published
//! layouts (a `{"text": [...], "label": [...]}` object as on the Hugging Face Hub, or a list of
//! `{"text", "label"}` objects as in the original AI2 releases), turning an answer key (`"C"`, `"3"`, `2`)
//! into the index of a choice, laying choices out as lettered options, and picking the model's choice from
//! the log-likelihoods the host computed: the most likely continuation (`acc`) or the most likely per
//! character of the choice's text (`acc_norm`, the length normalisation the lm-evaluation-harness reports
//! for ARC and OpenBookQA, with its divisor: the text without the leading space).
//! Prompts are built from the same pieces ([`lettered_question`], [`few_shot_prompt`], [`Likelihoods`]'
//! continuations), whole requests by [`choice_request`] where a benchmark asks as ARC, OpenBookQA and MMLU
//! do, and one [`score_choices`] scores every multiple-choice scenario's outputs, so what a prompt asks and
//! what the score compares cannot drift apart between benchmarks.

use crate::choice::letter;
use crate::metrics::{ScoreBuilder, binary};
use crate::records::Row;
use crate::{
    ChoiceLikelihood, DatasetError, Field, Message, MetricInfo, ModelOutput, Prompt, Request, Role, Sample, Score,
    ScoringMode, Value,
};

/// A question's choices: their texts and the labels the dataset gives them ("A".."E" or "1".."5").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub texts: Vec<String>,
    pub labels: Vec<String>,
}

impl Choices {
    /// The index of the choice an answer key names: by label ("C", "3"), case-insensitively.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        let key = key.trim();
        self.labels.iter().position(|label| label.trim().eq_ignore_ascii_case(key))
    }
}

/// Reads a choices column: `{"text": [...], "label": [...]}` (Hub) or `[{"text": .., "label": ..}, ...]`
/// (AI2's JSON Lines). Errors name the row and `field`.
pub fn labeled_choices(row: &Row<'_>, field: &str) -> Result<Choices, DatasetError> {
    let value = row.json(field)?;
    let text_of = |item: &serde_json::Value| -> Option<String> {
        match item {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let choices = match &value {
        serde_json::Value::Object(object) => {
            let list = |key: &str| -> Result<Vec<String>, DatasetError> {
                let items = object
                    .get(key)
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| row.error(field, format!("`{field}` has no `{key}` list")))?;
                items
                    .iter()
                    .map(|item| text_of(item).ok_or_else(|| row.error(field, format!("`{field}.{key}` holds {item}"))))
                    .collect()
            };
            Choices { texts: list("text")?, labels: list("label")? }
        }
        serde_json::Value::Array(items) => {
            let mut choices = Choices { texts: Vec::new(), labels: Vec::new() };
            for item in items {
                let part = |key: &str| {
                    item.get(key).and_then(text_of).ok_or_else(|| {
                        row.error(field, format!("`{field}` holds an item without a text `{key}`: {item}"))
                    })
                };
                choices.texts.push(part("text")?);
                choices.labels.push(part("label")?);
            }
            choices
        }
        other => return Err(row.error(field, format!("`{field}` is neither an object nor a list: {other}"))),
    };
    if choices.texts.len() != choices.labels.len() {
        return Err(row
            .error(field, format!("`{field}` has {} texts but {} labels", choices.texts.len(), choices.labels.len())));
    }
    if choices.texts.len() < 2 || choices.texts.len() > 26 {
        return Err(row.error(field, format!("`{field}` has {} choices; 2 to 26 are needed", choices.texts.len())));
    }
    Ok(choices)
}

/// AI2's original JSON Lines (ARC, OpenBookQA) nest the question: `"question": {"stem": "...", "choices":
/// [{"text": "...", "label": "A"}, ...]}`. None when `field` is not such an object (the Hub's flat layout).
pub fn nested_question(row: &Row<'_>, field: &str) -> Result<Option<(String, Choices)>, DatasetError> {
    let Some(Value::Json(json)) = row.get(field) else { return Ok(None) };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| row.error(field, format!("`{field}` is not valid JSON: {e}")))?;
    let Some(object) = value.as_object() else { return Ok(None) };
    let stem = object
        .get("stem")
        .and_then(|s| s.as_str())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| row.error(field, format!("`{field}` has no text `stem`")))?;
    let choices = object.get("choices").ok_or_else(|| row.error(field, format!("`{field}` has no `choices`")))?;
    let inner = crate::Record { columns: vec![(field.to_string(), Value::Json(choices.to_string()))] };
    let choices = labeled_choices(&Row::new(row.row, &inner), field)?;
    Ok(Some((stem.trim().to_string(), choices)))
}

/// A question as AI2 publishes ARC and OpenBookQA: its text, its choices and the index of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedQuestion {
    pub question: String,
    pub choices: Choices,
    pub answer: usize,
}

/// Reads an AI2 row: the nested `question` {`stem`, `choices`} of the original JSON Lines, AI2's
/// tab-separated release (see [`TSV_COLUMNS`]), else the Hub's flat `question_field` and `choices`; then the
/// answer key, a label among the choices. Errors name the row and field.
pub fn keyed_question(row: &Row<'_>, question_field: &str) -> Result<KeyedQuestion, DatasetError> {
    let tsv = row.get(TSV_COLUMNS.stem).is_some();
    let (question, choices) = match nested_question(row, "question")? {
        Some(nested) => nested,
        None if tsv => (row.str(TSV_COLUMNS.stem)?.trim().to_string(), inline_choices(row, TSV_COLUMNS.choices)?),
        None => (row.str(question_field)?.to_string(), labeled_choices(row, "choices")?),
    };
    let key_field = if tsv { TSV_COLUMNS.answer } else { "answerKey" };
    let key = row.str(key_field)?;
    let answer = choices.index_of(key).ok_or_else(|| {
        row.error(key_field, format!("`{key}` is not one of the choice labels {}", choices.labels.join(", ")))
    })?;
    Ok(KeyedQuestion { question, choices, answer })
}

/// The columns of AI2's tab-separated OpenBookQA release (`Data/Main/test.tsv`): `ID`, `Question Stem`,
/// `Choices` written inline as "(A) … (B) … (C) … (D) …", `Complete Question`, `Answer Key`.
pub struct TsvColumns {
    pub id: &'static str,
    pub stem: &'static str,
    pub choices: &'static str,
    pub answer: &'static str,
}

pub const TSV_COLUMNS: TsvColumns =
    TsvColumns { id: "ID", stem: "Question Stem", choices: "Choices", answer: "Answer Key" };

/// Reads choices written inline, "(A) a marsh (B) a tundra (C) the plains": each label is the next letter in
/// parentheses, so a parenthesis inside a choice's text does not split it. Errors name the row and `field`.
pub fn inline_choices(row: &Row<'_>, field: &str) -> Result<Choices, DatasetError> {
    let text = row.str(field)?.trim();
    let expected = || row.error(field, format!("`{field}` is not written as \"(A) … (B) …\": {text:?}"));
    let mut starts = Vec::new();
    let mut from = 0;
    for label in 'A'..='Z' {
        let marker = format!("({label}) ");
        let found = if starts.is_empty() {
            text.starts_with(&marker).then_some(0)
        } else {
            text[from..].find(&format!(" {marker}")).map(|at| from + at + 1)
        };
        let Some(at) = found else { break };
        starts.push((label, at, at + marker.len()));
        from = at + marker.len();
    }
    if starts.len() < 2 {
        return Err(expected());
    }
    let mut choices = Choices { texts: Vec::new(), labels: Vec::new() };
    for (i, &(label, _, text_start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |next| next.1);
        choices.texts.push(text[text_start..end].trim().to_string());
        choices.labels.push(label.to_string());
    }
    if choices.texts.iter().any(|t| t.is_empty()) {
        return Err(expected());
    }
    Ok(choices)
}

/// A multiple-choice sample's fields: `question` (trimmed, as lm-eval's `question.strip()`), then one field
/// per choice named by its letter ("A", "B"...), its text as the file gives it: lm-eval writes choices
/// untrimmed, and MMLU's files have choices ending in a space, so trimming them changed those prompts.
pub fn sample_fields(question: &str, choices: &[String]) -> Vec<Field> {
    let mut fields = vec![Field { name: "question".to_string(), value: question.trim().to_string() }];
    fields
        .extend(choices.iter().enumerate().map(|(i, text)| Field { name: letter(i).to_string(), value: text.clone() }));
    fields
}

/// The question and choices of a sample made with [`sample_fields`]; an error names the sample.
pub fn question_and_choices(sample: &Sample) -> Result<(&str, Vec<&str>), String> {
    let find = |name: &str| sample.fields.iter().find(|f| f.name == name).map(|f| f.value.as_str());
    let question = find("question").ok_or_else(|| format!("sample {} has no `question` field", sample.id))?;
    let choices: Vec<&str> = (0..26).map_while(|i| find(&letter(i).to_string())).collect();
    if choices.len() < 2 {
        return Err(format!(
            "sample {} has {} choice fields (A, B, ...); 2 or more are needed",
            sample.id,
            choices.len()
        ));
    }
    Ok((question, choices))
}

/// Reads an answer given as a 0-based index (`2`, `"2"`) or a letter (`"C"`) into an index below `count`.
pub fn answer_index(row: &Row<'_>, field: &str, count: usize) -> Result<usize, DatasetError> {
    let text = row.opt_text(field)?.ok_or_else(|| row.error(field, format!("row {} has no `{field}`", row.row)))?;
    let text = text.trim();
    let index = match text.parse::<usize>() {
        Ok(index) => Some(index),
        Err(_) => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => Some((c.to_ascii_uppercase() as u8 - b'A') as usize),
                _ => None,
            }
        }
    };
    match index {
        Some(index) if index < count => Ok(index),
        _ => Err(row.error(
            field,
            format!(
                "`{field}` is {text:?}; expected a choice index 0..{} or a letter A..{}",
                count - 1,
                letter(count - 1)
            ),
        )),
    }
}

/// The index of the choice a sample's reference letter names ("C" -> 2).
pub fn reference_index(sample: &Sample) -> Result<usize, String> {
    match sample.reference.as_bytes() {
        [c @ b'A'..=b'Z'] => Ok((c - b'A') as usize),
        _ => Err(format!("sample {} has reference {:?}, not a letter", sample.id, sample.reference)),
    }
}

/// The text of the choice a sample's reference names: what a log-likelihood few-shot example answers with.
pub fn reference_text(sample: &Sample) -> Result<&str, String> {
    let index = reference_index(sample)?;
    let (_, choices) = question_and_choices(sample)?;
    choices.get(index).copied().ok_or_else(|| {
        format!("sample {} has reference {}, beyond its {} choices", sample.id, sample.reference, choices.len())
    })
}

/// "{head}{question}\nA. ..\nB. ..\nAnswer:": a question with lettered options, as ARC and OpenBookQA
/// (`head` "Question: ") and MMLU (no head) ask it.
pub fn lettered_question<S: AsRef<str>>(head: &str, question: &str, choices: &[S]) -> String {
    format!("{head}{question}\n{}\nAnswer:", lettered(choices))
}

/// Few-shot examples, each its `block` then " {answer}" and a blank line, followed by the sample's `block`:
/// the shape every multiple-choice prompt here shares, answered by letter or by the answer's text.
pub fn few_shot_prompt(
    sample: &Sample,
    examples: &[Sample],
    block: impl Fn(&Sample) -> Result<String, String>,
    answer: impl Fn(&Sample) -> Result<String, String>,
) -> Result<String, String> {
    let mut text = String::new();
    for example in examples {
        text.push_str(&format!("{} {}\n\n", block(example)?, answer(example)?));
    }
    text.push_str(&block(sample)?);
    Ok(text)
}

/// The choices as lettered lines: "A. first\nB. second", each text as it is (see [`sample_fields`]).
pub fn lettered<S: AsRef<str>>(choices: &[S]) -> String {
    choices
        .iter()
        .enumerate()
        .map(|(i, text)| format!("{}. {}", letter(i), text.as_ref()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The continuations " A", " B", ... that log-likelihood scoring compares after "Answer:".
pub fn letter_continuations(count: usize) -> Vec<String> {
    (0..count).map(|i| format!(" {}", letter(i))).collect()
}

/// The continuations " {choice}" for each choice text: comparing the answers themselves (lm-evaluation-harness).
pub fn text_continuations<S: AsRef<str>>(choices: &[S]) -> Vec<String> {
    choices.iter().map(|text| format!(" {}", text.as_ref())).collect()
}

/// What a log-likelihood prompt compares after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likelihoods {
    /// The letters " A", " B"...: `accuracy` of the most likely letter (MMLU, MMLU-Pro).
    Letters,
    /// The choice texts " {choice}": `accuracy` of the most likely and `accuracy_norm` of the most likely per
    /// character (ARC, OpenBookQA as the lm-evaluation-harness scores them).
    Texts,
}

impl Likelihoods {
    /// The continuations a request for these choices asks the host to score.
    pub fn continuations<S: AsRef<str>>(self, choices: &[S]) -> Vec<String> {
        match self {
            Likelihoods::Letters => letter_continuations(choices.len()),
            Likelihoods::Texts => text_continuations(choices),
        }
    }

    /// What a log-likelihood few-shot example answers with: the form the run compares, the reference's
    /// letter or its text.
    pub fn example_answer(self, example: &Sample) -> Result<String, String> {
        match self {
            Likelihoods::Letters => Ok(example.reference.clone()),
            Likelihoods::Texts => reference_text(example).map(str::to_string),
        }
    }

    /// The metrics [`score_choices`] reports, for the scenario's metadata.
    pub fn metrics(self) -> Vec<MetricInfo> {
        let mut metrics = vec![binary("accuracy", "1 when the chosen answer is the reference, else 0")];
        if self == Likelihoods::Texts {
            metrics.push(binary(
                "accuracy_norm",
                "1 when the answer most likely per character is the reference, else 0 (log-likelihood runs)",
            ));
        }
        metrics
            .push(binary("answered", "1 when a choice letter could be read from the output, else 0 (generation runs)"));
        metrics
    }
}

/// What a generation prompt asks before its lettered questions.
pub const LETTER_INSTRUCTION: &str = "Answer with the letter of the correct option.";

/// How a multiple-choice scenario lays out its questions for [`choice_request`].
#[derive(Debug, Clone, Copy)]
pub struct ChoicePrompt {
    /// What log-likelihood runs compare after the prompt; their examples answer in the same form.
    pub likelihoods: Likelihoods,
    /// A question as a log-likelihood prompt shows it, ending where the answer follows
    /// ("Question: {question}\nAnswer:").
    pub likelihood_block: fn(&Sample) -> Result<String, String>,
    /// A question with its lettered options as a generation prompt shows it ([`lettered_question`]).
    pub lettered_block: fn(&Sample) -> Result<String, String>,
}

/// The request for a multiple-choice sample, after `head` (MMLU's "The following are multiple choice
/// questions..." line, or nothing). Log-likelihood: a text prompt of `likelihood_block`s, the examples
/// answered as [`Likelihoods::example_answer`] says, the choices as continuations. Generation: one user
/// message, [`LETTER_INSTRUCTION`] then `lettered_block`s with the examples answered by letter. One
/// function, so that benchmarks asking the same way cannot drift apart.
pub fn choice_request(
    layout: &ChoicePrompt,
    mode: ScoringMode,
    head: &str,
    sample: &Sample,
    examples: &[Sample],
) -> Result<Request, String> {
    let (_, choices) = question_and_choices(sample)?;
    if mode == ScoringMode::Loglikelihood {
        let shots =
            few_shot_prompt(sample, examples, layout.likelihood_block, |e| layout.likelihoods.example_answer(e))?;
        return Ok(Request {
            prompt: Prompt::Text(format!("{head}{shots}")),
            choices: layout.likelihoods.continuations(&choices),
            max_new_tokens: None,
        });
    }
    let shots = few_shot_prompt(sample, examples, layout.lettered_block, |e| Ok(e.reference.clone()))?;
    Ok(Request {
        prompt: Prompt::Chat(vec![Message {
            role: Role::User,
            content: format!("{LETTER_INSTRUCTION}\n\n{head}{shots}"),
        }]),
        choices: Vec::new(),
        max_new_tokens: None,
    })
}

/// How a multiple-choice scenario scores an output.
#[derive(Debug, Clone, Copy)]
pub struct ChoiceScoring {
    /// The run's scoring mode: log-likelihood compares `likelihoods`, generation reads a letter.
    pub mode: ScoringMode,
    pub likelihoods: Likelihoods,
    /// Reads the stated letter out of a generated output among the first `n` letters
    /// ([`crate::choice::choice_letter`], or a benchmark's own extraction).
    pub read_letter: fn(&str, usize) -> Option<char>,
}

/// Scores a multiple-choice output against the sample's reference letter. Log-likelihood runs: `accuracy`
/// (the most likely choice), plus `accuracy_norm` for [`Likelihoods::Texts`], and the most likely letter as
/// the extracted answer; a likelihood count other than the choice count is an error naming the sample.
/// Generation runs: `accuracy` and `answered` of the letter `read_letter` finds.
pub fn score_choices(sample: &Sample, output: &ModelOutput, scoring: &ChoiceScoring) -> Result<Score, String> {
    let (_, choices) = question_and_choices(sample)?;
    let is_reference = |chosen: Option<char>| chosen.is_some_and(|c| sample.reference.chars().eq([c]));
    if scoring.mode == ScoringMode::Generate {
        let chosen = (scoring.read_letter)(&output.text, choices.len());
        return Ok(ScoreBuilder::new()
            .flag("accuracy", is_reference(chosen))
            .flag("answered", chosen.is_some())
            .extracted(chosen.map(String::from))
            .build());
    }
    check_likelihoods(&output.choices, choices.len()).map_err(|e| format!("sample {}: {e}", sample.id))?;
    let raw = most_likely(&output.choices).map(letter);
    let mut score = ScoreBuilder::new().flag("accuracy", is_reference(raw));
    if scoring.likelihoods == Likelihoods::Texts {
        let normalized = most_likely_per_char(&output.choices, &choices).map(letter);
        score = score.flag("accuracy_norm", is_reference(normalized));
    }
    Ok(score.extracted(raw.map(String::from)).build())
}

/// The index of the most likely choice; the first on ties, like `argmax`. None when there are no choices.
pub fn most_likely(likelihoods: &[ChoiceLikelihood]) -> Option<usize> {
    argmax(likelihoods.iter().map(|c| c.logprob))
}

/// The index of the choice most likely per character of its text, as the lm-evaluation-harness computes
/// `acc_norm`: each continuation's log-likelihood divided by `len(choice)`, the choice text's length in
/// characters (code points) without the space the prompt puts before it. `texts` are the choice texts in
/// the order the likelihoods were computed. An empty text counts as one character (lm-eval divides by zero).
pub fn most_likely_per_char<S: AsRef<str>>(likelihoods: &[ChoiceLikelihood], texts: &[S]) -> Option<usize> {
    if likelihoods.len() != texts.len() {
        return None;
    }
    argmax(likelihoods.iter().zip(texts).map(|(c, text)| c.logprob / text.as_ref().chars().count().max(1) as f64))
}

fn argmax(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (index, value) in values.enumerate() {
        if best.is_none_or(|(_, top)| value > top) {
            best = Some((index, value));
        }
    }
    best.map(|(index, _)| index)
}

/// Checks that the host returned one likelihood per requested choice.
pub fn check_likelihoods(likelihoods: &[ChoiceLikelihood], expected: usize) -> Result<(), String> {
    if likelihoods.len() == expected {
        Ok(())
    } else {
        Err(format!("expected {expected} choice likelihoods, got {}", likelihoods.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Record, Value};

    fn record(columns: Vec<(&str, Value)>) -> Record {
        Record { columns: columns.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }

    fn likelihoods(values: &[f64]) -> Vec<ChoiceLikelihood> {
        values.iter().map(|&logprob| ChoiceLikelihood { logprob, tokens: 1, greedy: false }).collect()
    }

    #[test]
    fn reads_both_published_layouts() {
        let hub =
            record(vec![("choices", Value::Json(r#"{"text": ["x", "y", "z"], "label": ["1", "2", "3"]}"#.into()))]);
        let ai2 = record(vec![(
            "choices",
            Value::Json(r#"[{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]"#.into()),
        )]);
        let hub = labeled_choices(&Row::new(1, &hub), "choices").unwrap();
        assert_eq!((hub.texts.len(), hub.index_of("3")), (3, Some(2)));
        let ai2 = labeled_choices(&Row::new(1, &ai2), "choices").unwrap();
        assert_eq!((ai2.index_of("b"), ai2.texts), (Some(1), vec!["x".to_string(), "y".to_string()]));
    }

    #[test]
    fn bad_choices_and_answers_name_row_and_field() {
        let bad = record(vec![
            ("choices", Value::Json(r#"{"text": ["x", "y"], "label": ["A"]}"#.into())),
            ("answer", Value::Text("E".into())),
        ]);
        let row = Row::new(7, &bad);
        let error = labeled_choices(&row, "choices").unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(7), Some("choices")));
        let error = answer_index(&row, "answer", 4).unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(7), Some("answer")));
        assert!(error.message.contains("A..D"), "{}", error.message);
        let good = record(vec![("answer", Value::Integer(3)), ("key", Value::Text("b".into()))]);
        assert_eq!(answer_index(&Row::new(1, &good), "answer", 4).unwrap(), 3);
        assert_eq!(answer_index(&Row::new(1, &good), "key", 4).unwrap(), 1);
    }

    #[test]
    fn reads_ai2s_nested_questions_and_round_trips_sample_fields() {
        let nested = record(vec![(
            "question",
            Value::Json(
                r#"{"stem": "Why?", "choices": [{"text": "x", "label": "1"}, {"text": "y", "label": "2"}]}"#.into(),
            ),
        )]);
        let (stem, choices) = nested_question(&Row::new(1, &nested), "question").unwrap().unwrap();
        assert_eq!((stem.as_str(), choices.index_of("2")), ("Why?", Some(1)));
        let flat = record(vec![("question", Value::Text("Why?".into()))]);
        assert!(nested_question(&Row::new(1, &flat), "question").unwrap().is_none());
        let sample = Sample {
            id: "s".into(),
            subset: None,
            fields: sample_fields("Why?", &choices.texts),
            reference: "B".into(),
        };
        assert_eq!(question_and_choices(&sample).unwrap(), ("Why?", vec!["x", "y"]));
    }

    #[test]
    fn reads_inline_choices_as_ai2_writes_them_in_tsv() {
        let row = |text: &str| crate::Record { columns: vec![("Choices".into(), Value::Text(text.into()))] };
        let record = row("(A) a marsh (B) a tundra (with ice) (C) the plains (D) a desert");
        let choices = inline_choices(&Row::new(3, &record), "Choices").unwrap();
        assert_eq!(choices.texts, ["a marsh", "a tundra (with ice)", "the plains", "a desert"]);
        assert_eq!(choices.labels, ["A", "B", "C", "D"]);
        for bad in ["a marsh, a tundra", "(A) only one", "(A)  (B) b"] {
            let record = row(bad);
            let error = inline_choices(&Row::new(3, &record), "Choices").unwrap_err();
            assert_eq!((error.row, error.field.as_deref()), (Some(3), Some("Choices")), "{bad}");
        }
    }

    #[test]
    fn picks_the_likeliest_choice_raw_and_per_character() {
        assert_eq!(most_likely(&likelihoods(&[-3.0, -1.0, -1.0, -2.0])), Some(1));
        assert_eq!(most_likely(&[]), None);
        let continuations = vec![" a very long answer".to_string(), " no".to_string()];
        let values = likelihoods(&[-4.0, -2.0]);
        assert_eq!(most_likely(&values), Some(1));
        assert_eq!(most_likely_per_char(&values, &continuations), Some(0));
        assert_eq!(lettered(&["x", "y"]), "A. x\nB. y");
        assert_eq!(letter_continuations(3), [" A", " B", " C"]);
    }

    fn sample(reference: &str) -> Sample {
        let choices = ["a very long answer".to_string(), "no".to_string(), "maybe".to_string()];
        Sample { id: "q1".into(), subset: None, fields: sample_fields("Why?", &choices), reference: reference.into() }
    }

    fn output(text: &str, logprobs: &[f64]) -> ModelOutput {
        ModelOutput { text: text.into(), choices: likelihoods(logprobs) }
    }

    const GENERATE: ChoiceScoring = ChoiceScoring {
        mode: ScoringMode::Generate,
        likelihoods: Likelihoods::Texts,
        read_letter: crate::choice::choice_letter,
    };

    fn names(score: &Score) -> Vec<(&str, f64)> {
        score.metrics.iter().map(|m| (m.name.as_str(), m.value)).collect()
    }

    #[test]
    fn scores_generated_letters_with_the_scenarios_reader() {
        let score = score_choices(&sample("B"), &output("The answer is (B).", &[]), &GENERATE).unwrap();
        assert_eq!(
            (names(&score), score.extracted.as_deref()),
            (vec![("accuracy", 1.0), ("answered", 1.0)], Some("B"))
        );
        let score = score_choices(&sample("B"), &output("The answer is D.", &[]), &GENERATE).unwrap();
        assert_eq!((names(&score), score.extracted.as_deref()), (vec![("accuracy", 0.0), ("answered", 0.0)], None));
        let always_c = ChoiceScoring { read_letter: |_, _| Some('C'), ..GENERATE };
        let score = score_choices(&sample("C"), &output("B", &[]), &always_c).unwrap();
        assert_eq!(names(&score), [("accuracy", 1.0), ("answered", 1.0)]);
    }

    #[test]
    fn scores_likelihoods_raw_and_per_character_and_refuses_a_wrong_count() {
        let texts = ChoiceScoring { mode: ScoringMode::Loglikelihood, ..GENERATE };
        // Raw: "no" (B) is likeliest; per character: the long answer (A).
        let likely = output("", &[-4.0, -2.0, -5.0]);
        let score = score_choices(&sample("A"), &likely, &texts).unwrap();
        assert_eq!(
            (names(&score), score.extracted.as_deref()),
            (vec![("accuracy", 0.0), ("accuracy_norm", 1.0)], Some("B"))
        );
        let letters = ChoiceScoring { likelihoods: Likelihoods::Letters, ..texts };
        let score = score_choices(&sample("B"), &likely, &letters).unwrap();
        assert_eq!(names(&score), [("accuracy", 1.0)]);
        let error = score_choices(&sample("B"), &output("", &[-1.0, -2.0]), &letters).unwrap_err();
        assert!(error.contains("sample q1") && error.contains("expected 3"), "{error}");
    }

    /// lm-eval's `acc_norm` divides by `len(choice)`, not by the continuation " {choice}": with choices of
    /// 1 and 3 characters the two divisors (1 vs 2, 3 vs 4) pick different answers here.
    #[test]
    fn accuracy_norm_divides_by_the_choice_text_without_its_leading_space() {
        let likelihoods = likelihoods(&[-1.9, -5.0]);
        let texts = ["a", "bcd"];
        // Per character of the text: -1.9 / 1 < -5.0 / 3, so "bcd"; per continuation: -0.95 > -1.25, so "a".
        assert_eq!(most_likely_per_char(&likelihoods, &texts), Some(1));
        assert_eq!(most_likely_per_char(&likelihoods, &text_continuations(&texts)), Some(0));
        assert_eq!(most_likely_per_char(&likelihoods, &["é", "ü✓z"]), Some(1), "characters, not bytes");
    }

    #[test]
    fn builds_prompt_pieces() {
        let (a, b) = (sample("C"), sample("A"));
        assert_eq!((reference_index(&a), reference_text(&a)), (Ok(2), Ok("maybe")));
        assert!(reference_index(&sample("3")).unwrap_err().contains("not a letter"));
        assert!(reference_text(&sample("E")).unwrap_err().contains("beyond its 3 choices"));
        assert_eq!(lettered_question("Q: ", "Why?", &["x", "y"]), "Q: Why?\nA. x\nB. y\nAnswer:");
        let block = |s: &Sample| Ok(format!("[{}]", s.reference));
        let prompt = few_shot_prompt(&a, &[b.clone(), b], block, |s| Ok(s.reference.to_lowercase())).unwrap();
        assert_eq!(prompt, "[A] a\n\n[A] a\n\n[C]");
        assert_eq!(Likelihoods::Texts.continuations(&["x", "y z"]), [" x", " y z"]);
        assert_eq!(Likelihoods::Letters.continuations(&["x", "y z"]), [" A", " B"]);
        let declared = |l: Likelihoods| l.metrics().into_iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(declared(Likelihoods::Texts), ["accuracy", "accuracy_norm", "answered"]);
        assert_eq!(declared(Likelihoods::Letters), ["accuracy", "answered"]);
    }

    #[test]
    fn requests_ask_by_text_or_letter_after_the_head() {
        let layout = ChoicePrompt {
            likelihoods: Likelihoods::Texts,
            likelihood_block: |s| Ok(format!("Q: {}\nA:", question_and_choices(s)?.0)),
            lettered_block: |s| {
                let (question, choices) = question_and_choices(s)?;
                Ok(lettered_question("", question, &choices))
            },
        };
        let (question, examples) = (sample("A"), [sample("C")]);
        let text = |request: &Request| match &request.prompt {
            Prompt::Text(text) => text.clone(),
            Prompt::Chat(_) => panic!("a text prompt expected"),
        };
        let request = choice_request(&layout, ScoringMode::Loglikelihood, "H\n", &question, &examples).unwrap();
        assert_eq!(text(&request), "H\nQ: Why?\nA: maybe\n\nQ: Why?\nA:");
        assert_eq!(request.choices, [" a very long answer", " no", " maybe"]);
        let letters = ChoicePrompt { likelihoods: Likelihoods::Letters, ..layout };
        let request = choice_request(&letters, ScoringMode::Loglikelihood, "", &question, &examples).unwrap();
        assert_eq!((text(&request), request.choices), ("Q: Why?\nA: C\n\nQ: Why?\nA:".into(), letter_continuations(3)));
        let request = choice_request(&layout, ScoringMode::Generate, "H\n", &question, &examples).unwrap();
        let block = "Why?\nA. a very long answer\nB. no\nC. maybe\nAnswer:";
        let Prompt::Chat(messages) = &request.prompt else { panic!("a chat prompt expected") };
        assert!(messages.len() == 1 && messages[0].role == Role::User);
        assert_eq!(messages[0].content, format!("{LETTER_INSTRUCTION}\n\nH\n{block} C\n\n{block}"));
        assert!(request.choices.is_empty() && request.max_new_tokens.is_none());
    }

    #[test]
    fn reads_ai2_questions_flat_and_nested_with_their_answer_key() {
        let flat = record(vec![
            ("question_stem", Value::Text("Why?".into())),
            ("choices", Value::Json(r#"{"text": ["x", "y"], "label": ["1", "2"]}"#.into())),
            ("answerKey", Value::Text("2".into())),
        ]);
        let question = keyed_question(&Row::new(1, &flat), "question_stem").unwrap();
        assert_eq!((question.question.as_str(), question.answer), ("Why?", 1));
        let nested = record(vec![
            (
                "question",
                Value::Json(
                    r#"{"stem": "How?", "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}"#.into(),
                ),
            ),
            ("answerKey", Value::Text("C".into())),
        ]);
        let error = keyed_question(&Row::new(4, &nested), "question_stem").unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(4), Some("answerKey")));
        assert!(error.message.contains("A, B"), "{}", error.message);
    }
}
