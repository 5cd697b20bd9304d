//! The GSM8K scenario: grade-school math word problems. Reads GSM8K JSON Lines, asks the model to
//! reason step by step and finish with "The answer is N.", reads the final number out of the output,
//! and scores exact numeric match.
//!
//! Built for `wasm32-wasip2` as a runner scenario component; also compiles natively so its logic is
//! unit tested with `cargo test -p gsm8k`.

pub mod answer;
pub mod dataset;

/// Generated from wit/scenario.wit; the generated glue is not held to this crate's lints.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "scenario",
    });
}

use bindings::runner::scenario::types::{
    Aggregation, Field, GenerationDefaults, HfDataset, Message, Metric, MetricInfo, Prompt, Role, ScoringModes, Value,
};
use bindings::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Guest, Metadata, ModelOutput, Options,
    Request, Sample, Score, ScoredSample,
};

/// Ten problems in GSM8K's format, written for runner (not taken from GSM8K), used without --data.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (10 problems written for runner, not GSM8K)";

const INSTRUCTION: &str = "Solve the following math problem. Think step by step, then finish with \
                           \"The answer is N.\" where N is the final number.";

struct Gsm8k;

impl Guest for Gsm8k {
    fn describe() -> Metadata {
        Metadata {
            name: "gsm8k".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "GSM8K grade-school math word problems: chain-of-thought prompt, exact match on the \
                          final number"
                .to_string(),
            defaults: GenerationDefaults {
                max_new_tokens: 256,
                stop: vec!["\n\nQuestion:".to_string(), "\n\n\n".to_string()],
                temperature: None,
            },
            metrics: vec![
                MetricInfo {
                    name: "accuracy".to_string(),
                    description: "1 when the final number in the output equals the reference, else 0".to_string(),
                    higher_is_better: true,
                    aggregation: Aggregation::Mean,
                    binary: true,
                },
                MetricInfo {
                    name: "answered".to_string(),
                    description: "1 when a number could be read from the output, else 0".to_string(),
                    higher_is_better: true,
                    aggregation: Aggregation::Mean,
                    binary: true,
                },
            ],
            subsets: Vec::new(),
            default_source: Some(HfDataset {
                repo: "openai/gsm8k".to_string(),
                config: Some("main".to_string()),
                split: "test".to_string(),
                revision: None,
            }),
            scoring_modes: ScoringModes::GENERATE,
            default_few_shot: 0,
        }
    }

    fn configure(_options: Options) -> Result<(), ConfigError> {
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        Some(EmbeddedDataset {
            label: EMBEDDED_LABEL.to_string(),
            file_name: "sample.jsonl".to_string(),
            data: EMBEDDED_SAMPLE.to_vec(),
        })
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        // The host decodes JSON Lines, Parquet... into records; the parser reads JSON Lines, so records
        // are given to it as one JSON object per line (record N is line N).
        let (file_name, data) = match input {
            DatasetInput::Raw(data) => (info.name, data),
            DatasetInput::Records(records) => {
                let lines: Vec<String> = records.into_iter().map(|r| record_json(r.columns).to_string()).collect();
                ("records.jsonl".to_string(), lines.join("\n").into_bytes())
            }
        };
        let problems = dataset::parse(&file_name, &data).map_err(|e| DatasetError {
            row: e.row,
            field: e.field.map(str::to_string),
            message: e.message,
        })?;
        Ok(problems
            .into_iter()
            .map(|p| Sample {
                id: p.id,
                subset: None,
                fields: vec![Field { name: "question".to_string(), value: p.question }],
                reference: p.reference,
            })
            .collect())
    }

    fn build_prompt(sample: Sample, _examples: Vec<Sample>) -> Result<Request, String> {
        let question = question_of(&sample)?;
        let content = format!("{INSTRUCTION}\n\nQuestion: {question}");
        Ok(Request { prompt: Prompt::Chat(vec![Message { role: Role::User, content }]), choices: Vec::new() })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let extracted = answer::extract_answer(&output.text);
        let correct = extracted.as_deref() == Some(sample.reference.as_str());
        Ok(Score {
            metrics: vec![
                Metric { name: "accuracy".to_string(), value: if correct { 1.0 } else { 0.0 } },
                Metric { name: "answered".to_string(), value: if extracted.is_some() { 1.0 } else { 0.0 } },
            ],
            extracted,
        })
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

/// A decoded record as a JSON object, so the JSON Lines parser reads it.
fn record_json(columns: Vec<(String, Value)>) -> serde_json::Value {
    let object = columns
        .into_iter()
        .map(|(name, value)| {
            let json = match value {
                Value::Null => serde_json::Value::Null,
                Value::Boolean(b) => b.into(),
                Value::Integer(i) => i.into(),
                Value::Float(f) => f.into(),
                Value::Text(s) => s.into(),
                Value::TextList(items) => items.into(),
                Value::Json(text) => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            };
            (name, json)
        })
        .collect();
    serde_json::Value::Object(object)
}

fn question_of(sample: &Sample) -> Result<&str, String> {
    sample
        .fields
        .iter()
        .find(|f| f.name == "question")
        .map(|f| f.value.as_str())
        .ok_or_else(|| format!("sample {} has no `question` field", sample.id))
}

bindings::export!(Gsm8k with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(reference: &str) -> Sample {
        Sample {
            id: "1".to_string(),
            subset: None,
            fields: vec![Field { name: "question".to_string(), value: "How many?".to_string() }],
            reference: reference.to_string(),
        }
    }

    fn text(output: &str) -> ModelOutput {
        ModelOutput { text: output.to_string(), choices: Vec::new() }
    }

    #[test]
    fn prompt_asks_for_the_answer_line() {
        let Prompt::Chat(messages) = Gsm8k::build_prompt(sample("4"), Vec::new()).unwrap().prompt else {
            panic!("expected chat")
        };
        assert_eq!(messages.len(), 1);
        assert!(messages[0].content.ends_with("Question: How many?"));
        assert!(messages[0].content.contains("The answer is N."));
    }

    #[test]
    fn scores_exact_numeric_match() {
        let score = Gsm8k::score(sample("18"), text("9 * 2 = 18. The answer is 18.00.")).unwrap();
        assert_eq!(score.extracted.as_deref(), Some("18"));
        assert_eq!(score.metrics[0].value, 1.0);
        let score = Gsm8k::score(sample("18"), text("The answer is 17.")).unwrap();
        assert_eq!(score.metrics[0].value, 0.0);
        assert_eq!(score.metrics[1].value, 1.0);
        let score = Gsm8k::score(sample("18"), text("no idea")).unwrap();
        assert_eq!((score.metrics[0].value, score.metrics[1].value, score.extracted), (0.0, 0.0, None));
    }

    #[test]
    fn a_sample_without_a_question_is_an_error() {
        let mut bad = sample("1");
        bad.fields.clear();
        assert!(Gsm8k::build_prompt(bad, Vec::new()).unwrap_err().contains("question"));
    }
}
