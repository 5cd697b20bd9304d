//! The GSM8K scenario: grade-school math word problems. Reads GSM8K records (`question`, and an `answer`
//! whose worked solution ends in `#### N`), asks the model to reason step by step and finish with "The
//! answer is N.", reads the final number out of the output and scores exact numeric match (`accuracy`).
//! Beside it, the same output is scored as lm-evaluation-harness's gsm8k task does, with both of its filters
//! ([`lm_eval`]): `exact_match_strict` (the number after the first `#### `) and `exact_match_flexible` (the
//! last number in the output). Few-shot examples are earlier problems with their worked solutions as the
//! assistant's turns.

pub mod lm_eval;

use runner_scenario_sdk::chat::{UserTurns, few_shot_chat};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::records::field;
use runner_scenario_sdk::{
    self as sdk, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Sample, Score, ScoredSample, metrics, numbers, records,
};

/// Ten problems in GSM8K's format, written for runner (not taken from GSM8K), used without --data.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (10 problems written for runner, not GSM8K)";

const INSTRUCTION: &str = "Solve the math word problem. Think step by step, then give the final answer on its own \
                           line as \"The answer is N.\" where N is a number.";

const TURNS: UserTurns = UserTurns { instruction: INSTRUCTION, label: "Question", field: "question" };

/// GSM8K separates the worked solution from the final number with this marker.
const MARKER: &str = "####";

/// The sample field holding the reference as lm-eval's exact match sees it ([`lm_eval::reference`]).
const LM_EVAL_REFERENCE: &str = "lm_eval_reference";

pub struct Gsm8k;

impl Guest for Gsm8k {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "gsm8k",
            env!("CARGO_PKG_VERSION"),
            "GSM8K grade-school math word problems: chain-of-thought prompt, exact match on the final number",
        )
        .generation(256, &["\n\nQuestion:", "\n\n\n"])
        .metrics([
            metrics::binary("accuracy", "1 when the final number in the output equals the reference, else 0"),
            metrics::binary("answered", "1 when a number could be read from the output, else 0"),
            metrics::binary(
                "exact_match_strict",
                "lm-eval gsm8k strict-match: the number after the first `#### ` equals the reference",
            ),
            metrics::binary(
                "exact_match_flexible",
                "lm-eval gsm8k flexible-extract: the last number in the output equals the reference",
            ),
        ])
        .hub("openai/gsm8k", Some("main"), "test")
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        sdk::config::check(&options, &Self::describe(), &[]).map(drop)
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        records::samples(&info, input, |row| {
            let question = row.str("question")?;
            let answer = row.str("answer")?;
            let Some(marker_at) = answer.rfind(MARKER) else {
                return Err(row.error("answer", "has no `#### ` marker before the final number"));
            };
            let final_text = &answer[marker_at + MARKER.len()..];
            let lm_eval_reference = lm_eval::reference(answer);
            let reference = numbers::single_number(final_text).ok_or_else(|| {
                row.error("answer", format!("the text after `####` is not one number: {:?}", final_text.trim()))
            })?;
            Ok(Sample {
                id: row.id("id")?,
                subset: None,
                fields: vec![
                    Field { name: "question".to_string(), value: question.trim().to_string() },
                    Field { name: "solution".to_string(), value: worked_solution(&answer[..marker_at]) },
                    // lm-eval compares with the answer's text, not runner's canonical number.
                    Field { name: LM_EVAL_REFERENCE.to_string(), value: lm_eval_reference },
                ],
                reference,
            })
        })
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let messages = few_shot_chat(&TURNS, &sample, &examples, |example| {
            let solution = field(example, "solution")?;
            Ok(format!("{solution}\nThe answer is {}.", example.reference).trim_start().to_string())
        })?;
        Ok(Request { prompt: Prompt::Chat(messages), choices: Vec::new(), max_new_tokens: None })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let extracted = numbers::final_answer(&output.text);
        // A sample built without the field (by hand, in a test) compares with its canonical reference.
        let lm_eval_reference = match sample.fields.iter().find(|f| f.name == LM_EVAL_REFERENCE) {
            Some(field) => field.value.clone(),
            None => lm_eval::reference(&sample.reference),
        };
        Ok(metrics::ScoreBuilder::new()
            .flag("accuracy", extracted.as_deref() == Some(sample.reference.as_str()))
            .flag("answered", extracted.is_some())
            .flag("exact_match_strict", lm_eval::strict_match(&output.text, &lm_eval_reference))
            .flag("exact_match_flexible", lm_eval::flexible_extract(&output.text, &lm_eval_reference))
            .extracted(extracted)
            .build())
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

/// GSM8K's solution text without its calculator annotations (`<<6*14=84>>`).
fn worked_solution(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("<<") {
        out.push_str(&rest[..open]);
        match rest[open..].find(">>") {
            Some(close) => rest = &rest[open + close + 2..],
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

sdk::export_scenario!(Gsm8k);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::ScoringMode;
    use sdk::harness::{Harness, metric};

    #[test]
    fn the_embedded_sample_parses_and_its_references_score_correct() {
        let harness = Harness::<Gsm8k>::new();
        let samples = harness.embedded();
        let references: Vec<&str> = samples.iter().map(|s| s.reference.as_str()).collect();
        assert_eq!(references, ["25", "140", "320", "150", "72", "80", "45", "27", "225", "-11"]);
        for sample in &samples {
            let right = harness.score(sample, &format!("Some working.\nThe answer is {}.", sample.reference));
            assert_eq!(metric(&right, "accuracy"), 1.0, "{}", sample.id);
            harness.assert_declared(&right);
            let wrong = harness.score(sample, "The answer is 123456.");
            assert_eq!((metric(&wrong, "accuracy"), metric(&wrong, "answered")), (0.0, 1.0));
        }
    }

    #[test]
    fn prompts_are_deterministic_and_ask_for_the_answer_line() {
        let harness = Harness::<Gsm8k>::new();
        let samples = harness.embedded();
        let prompt = harness.prompt(&samples, 0);
        assert_eq!(prompt, harness.prompt(&samples, 0));
        assert!(prompt.starts_with("user: Solve the math word problem"));
        assert!(prompt.contains("The answer is N.") && prompt.ends_with("How many rolls are left?"), "{prompt}");
    }

    #[test]
    fn few_shot_examples_are_worked_solutions_without_calculator_notes() {
        let harness = Harness::<Gsm8k>::configured(|o| o.few_shot = Some(1)).unwrap();
        let data = "{\"question\": \"Q1?\", \"answer\": \"6 * 14 = <<6*14=84>>84\\n#### 84\"}\n\
                    {\"question\": \"Q2?\", \"answer\": \"#### 5\"}\n";
        let samples = harness.parse("test.jsonl", data.as_bytes()).unwrap();
        let Prompt::Chat(messages) = harness.request(&samples, 1).prompt else { panic!("expected chat") };
        assert_eq!(messages.len(), 3);
        assert!(messages[0].content.contains("Question: Q1?") && messages[0].content.starts_with("Solve"));
        assert_eq!(messages[1].content, "6 * 14 = 84\nThe answer is 84.");
        assert_eq!(messages[2].content, "Question: Q2?");
    }

    #[test]
    fn published_rows_parse_with_ids_and_normalised_references() {
        let harness = Harness::<Gsm8k>::new();
        let data = b"{\"question\": \"Q1?\", \"answer\": \"2 + 2 = 4\\n#### 4\"}\n\n{\"question\": \"Q2?\", \"answer\": \"x\\n#### 1,250\", \"id\": \"q2\"}\n";
        let samples = harness.parse("test.jsonl", data).unwrap();
        let got: Vec<(&str, &str)> = samples.iter().map(|s| (s.id.as_str(), s.reference.as_str())).collect();
        assert_eq!(got, [("1", "4"), ("q2", "1250")]);
    }

    #[test]
    fn errors_name_the_row_and_field() {
        let harness = Harness::<Gsm8k>::new();
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
            let error = harness.parse("test.jsonl", data.as_bytes()).unwrap_err();
            assert_eq!(error.row, Some(3), "{bad}");
            assert_eq!(error.field.as_deref(), *field, "{bad}");
        }
    }

    #[test]
    fn scores_exact_numeric_match() {
        let harness = Harness::<Gsm8k>::new();
        let samples = harness.parse("t.jsonl", b"{\"question\": \"How many?\", \"answer\": \"#### 18\"}").unwrap();
        let score = harness.score(&samples[0], "9 * 2 = 18. The answer is 18.00.");
        assert_eq!((score.extracted.as_deref(), metric(&score, "accuracy")), (Some("18"), 1.0));
        let score = harness.score(&samples[0], "no idea");
        assert_eq!((metric(&score, "accuracy"), metric(&score, "answered"), score.extracted), (0.0, 0.0, None));
    }

    #[test]
    fn lm_eval_strict_and_flexible_extraction_are_scored_side_by_side() {
        let harness = Harness::<Gsm8k>::new();
        let data = b"{\"question\": \"How many?\", \"answer\": \"Work: 1,000 + 250 = 1,250\\n#### 1,250\"}";
        let samples = harness.parse("t.jsonl", data).unwrap();
        let sample = &samples[0];
        let scores = |output: &str| {
            let score = harness.score(sample, output);
            harness.assert_declared(&score);
            ["accuracy", "exact_match_strict", "exact_match_flexible"].map(|name| metric(&score, name))
        };
        // The GSM8K answer format: all three agree.
        assert_eq!(scores("1,000 + 250 = 1,250 pages.\n#### 1,250"), [1.0, 1.0, 1.0]);
        assert_eq!(scores("So 1000 + 250 = 1250.\n#### 1250"), [1.0, 1.0, 1.0]);
        // runner's prompt asks for "The answer is N.": strict finds no `#### `, flexible takes "1,250." and
        // drops the comma and the final full stop.
        assert_eq!(scores("The answer is 1,250."), [1.0, 0.0, 1.0]);
        // Strict takes the first `#### `, flexible the last number.
        assert_eq!(scores("#### 1000\nNo wait, 250 more.\n#### 1250"), [1.0, 0.0, 1.0]);
        // Strict needs a digit, sign, point or comma right after `#### `; a dollar sign is not one.
        assert_eq!(scores("#### $1,250"), [1.0, 0.0, 1.0]);
        // A number after the answer: runner reads the stated answer, flexible the last number.
        assert_eq!(scores("The answer is 1250. I used 2 steps."), [1.0, 0.0, 0.0]);
        // "1,250..." keeps one full stop after lm-eval's rules, as lm-eval scores it.
        assert_eq!(scores("It must be 1,250..."), [1.0, 0.0, 0.0]);
        assert_eq!(scores("I do not know."), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn lm_eval_filters_read_signs_and_single_digits() {
        use lm_eval::{flexible_extract, reference, strict_match};
        assert_eq!(reference("Step: 3 - 10 = -7 $.\n#### -7"), "-7");
        // Python's `$` matches before a final newline too: the full stop goes, the newline stays.
        assert_eq!(reference("#### $2,000.\n"), "2000\n");
        assert!(strict_match("so #### -7", "-7"));
        assert!(!strict_match("so ####-7", "-7"));
        // `(-?[0-9]+)` catches a lone digit that `[$0-9.,]{2,}` misses.
        assert!(flexible_extract("x is 12, y is 7", "7"));
        assert!(flexible_extract("the loss is -$40", "-40"));
        assert!(!flexible_extract("seven", "7"));
    }

    #[test]
    fn other_scoring_modes_subsets_and_args_are_refused() {
        let error = Harness::<Gsm8k>::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).err().unwrap();
        assert_eq!(error.option, "scoring-mode");
        let error = Harness::<Gsm8k>::configured(|o| o.subsets = vec!["algebra".into()]).err().unwrap();
        assert_eq!(error.option, "subsets");
    }
}
