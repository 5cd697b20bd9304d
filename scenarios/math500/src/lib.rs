//! The MATH-500 scenario: competition mathematics (HuggingFaceH4/MATH-500: `problem`, `solution`, `answer`,
//! `subject`, `level`, `unique_id`). The model is asked to put its final answer in `\boxed{}`; the last boxed
//! expression (or, failing that, what follows "the answer is" / "Final answer:", or the last inline math) is
//! compared with the reference after the MATH paper's LaTeX normalisation, with numbers compared by exact
//! value and sums, tuples and lists by their parts ([`latex::equivalent`]). `tools/answer_check.py` measures
//! the comparison against math-verify on the gold answers rewritten the ways models write them. The seven subjects are the subsets,
//! named in snake case (`counting_and_probability`); the run also reports accuracy per subject and its
//! macro-average. Few-shot examples are problems with their worked solutions.

use runner_scenario_sdk::chat::{UserTurns, few_shot_chat};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::records::field;
use runner_scenario_sdk::{
    self as sdk, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Sample, Score, ScoredSample, latex, metrics, records,
};

/// Ten problems in MATH-500's format, written for runner (not taken from MATH), used without --data.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (10 problems written for runner, not MATH)";

const INSTRUCTION: &str = "Solve the following math problem. Reason step by step, and put your final answer \
                           within \\boxed{}.";

const TURNS: UserTurns = UserTurns { instruction: INSTRUCTION, label: "Problem", field: "problem" };

/// MATH's subjects as they appear in the `subject` column.
const SUBJECTS: &[&str] = &[
    "Algebra",
    "Counting & Probability",
    "Geometry",
    "Intermediate Algebra",
    "Number Theory",
    "Prealgebra",
    "Precalculus",
];

/// A subject's subset name: "Counting & Probability" -> "counting_and_probability".
pub fn subset_name(subject: &str) -> String {
    subject.trim().to_lowercase().replace(" & ", " and ").replace([' ', '-'], "_")
}

pub struct Math500;

impl Guest for Math500 {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "math500",
            env!("CARGO_PKG_VERSION"),
            "MATH-500 competition problems: boxed final answer, compared after LaTeX normalisation",
        )
        .generation(1024, &["\n\nProblem:"])
        .metrics([
            metrics::binary("accuracy", "1 when the boxed answer equals the reference after normalisation"),
            metrics::binary("answered", "1 when a final answer could be read from the output"),
        ])
        .subsets(SUBJECTS.iter().map(|subject| (subset_name(subject), *subject)))
        .hub("HuggingFaceH4/MATH-500", None, "test")
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
            let subset = subset_name(row.str("subject")?);
            let answer = row.str("answer")?.trim().to_string();
            let level = row.opt_text("level")?.unwrap_or_default();
            Ok(Sample {
                id: row.id("unique_id")?,
                subset: Some(subset),
                fields: vec![
                    Field { name: "problem".to_string(), value: row.str("problem")?.trim().to_string() },
                    Field {
                        name: "solution".to_string(),
                        value: row.opt_str("solution")?.unwrap_or_default().trim().to_string(),
                    },
                    Field { name: "level".to_string(), value: level },
                ],
                reference: answer,
            })
        })
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let messages = few_shot_chat(&TURNS, &sample, &examples, |example| {
            let solution = field(example, "solution")?;
            Ok(if solution.contains("\\boxed") {
                solution.to_string()
            } else {
                format!("{solution}\nThe final answer is $\\boxed{{{}}}$.", example.reference).trim().to_string()
            })
        })?;
        Ok(Request { prompt: Prompt::Chat(messages), choices: Vec::new(), max_new_tokens: None })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let extracted = extract_answer(&output.text);
        let correct = extracted.as_deref().is_some_and(|answer| latex::equivalent(answer, &sample.reference));
        Ok(metrics::ScoreBuilder::new()
            .flag("accuracy", correct)
            .flag("answered", extracted.is_some())
            .extracted(extracted)
            .build())
    }

    fn aggregate(samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(metrics::macro_average(&samples, &["accuracy"]))
    }
}

/// The final answer in an output: the last `\boxed{}`, else what follows the last "answer is" / "Final
/// answer:" (Minerva's sentence included), else the last inline math ([`latex::final_answer`]).
pub fn extract_answer(output: &str) -> Option<String> {
    latex::final_answer(output)
}

sdk::export_scenario!(Math500);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::harness::{Harness, metric};

    #[test]
    fn the_embedded_sample_scores_its_own_solutions_correct_and_wrong_answers_wrong() {
        let harness = Harness::<Math500>::new();
        let samples = harness.embedded();
        assert_eq!(samples.len(), 10);
        let mut scored = Vec::new();
        for sample in &samples {
            // The reference solution, as a model would write it, is correct.
            let right = harness.score(sample, sdk::harness::field(sample, "solution"));
            assert_eq!(metric(&right, "accuracy"), 1.0, "{}: {:?}", sample.id, right.extracted);
            harness.assert_declared(&right);
            let wrong = harness.score(sample, "So the answer is $\\boxed{1234}$.");
            assert_eq!((metric(&wrong, "accuracy"), metric(&wrong, "answered")), (0.0, 1.0));
            scored.push((sample.clone(), right));
        }
        let aggregate = harness.aggregate(&scored);
        assert_eq!(sdk::metrics::value_of(&aggregate, "accuracy_macro"), Some(1.0));
        assert_eq!(sdk::metrics::value_of(&aggregate, "accuracy/geometry"), Some(1.0));
    }

    #[test]
    fn equivalent_spellings_score_correct() {
        let harness = Harness::<Math500>::new();
        let samples = harness.embedded();
        let fraction = samples.iter().find(|s| s.reference == "\\frac{3}{4}").unwrap();
        for output in ["\\boxed{\\dfrac{3}{4}}", "\\boxed{0.75}", "The answer is $3/4$.", "\\boxed{\\frac34}"] {
            assert_eq!(metric(&harness.score(fraction, output), "accuracy"), 1.0, "{output}");
        }
        assert_eq!(metric(&harness.score(fraction, "I give up"), "answered"), 0.0);
    }

    #[test]
    fn minerva_and_markdown_answers_and_model_spellings_score_correct() {
        let harness = Harness::<Math500>::new();
        let sample = |reference: &str| Sample {
            id: "1".to_string(),
            subset: None,
            fields: Vec::new(),
            reference: reference.to_string(),
        };
        let cases = [
            ("\\frac{7}{3}", "Final Answer: The final answer is $2\\frac{1}{3}$. I hope it is correct."),
            ("3+2i", "**Final answer:** $2i + 3$"),
            ("12\\text{ cm}", "The answer is $12 \\text{cm}$."),
            ("101_{3}", "so $\\boxed{101_3}$"),
            ("2,\\!048", "We get $2048$."),
        ];
        for (reference, output) in cases {
            let score = harness.score(&sample(reference), output);
            assert_eq!(metric(&score, "accuracy"), 1.0, "{reference} / {output}: {:?}", score.extracted);
        }
        for (reference, output) in [("12", "The answer is $1,2$."), ("9000000000", "\\boxed{9000000001}")] {
            assert_eq!(metric(&harness.score(&sample(reference), output), "accuracy"), 0.0, "{output}");
        }
    }

    #[test]
    fn prompts_ask_for_a_boxed_answer_and_are_deterministic() {
        let harness = Harness::<Math500>::new();
        let samples = harness.embedded();
        let prompt = harness.prompt(&samples, 0);
        assert_eq!(prompt, harness.prompt(&samples, 0));
        assert!(prompt.contains("\\boxed{}") && prompt.ends_with("$3x + 7 = 25$?"), "{prompt}");
        let few_shot = Harness::<Math500>::configured(|o| o.few_shot = Some(1)).unwrap();
        let Prompt::Chat(messages) = few_shot.request(&samples, 7).prompt else { panic!("chat") };
        assert_eq!(messages.len(), 3);
        assert!(messages[1].content.contains("\\boxed{6}"), "{:?}", messages[1]);
    }

    #[test]
    fn subjects_are_subsets_and_unknown_ones_are_refused() {
        let harness = Harness::<Math500>::configured(|o| o.subsets = vec!["number_theory".into()]).unwrap();
        let samples = harness.embedded();
        assert_eq!(samples.len(), 2);
        assert!(samples.iter().all(|s| s.subset.as_deref() == Some("number_theory")));
        // parse-dataset returns every subject's problems; the host keeps the selected ones.
        assert_eq!(harness.parse_every("sample.jsonl", EMBEDDED_SAMPLE).unwrap().len(), 10);
        let error = Harness::<Math500>::configured(|o| o.subsets = vec!["calculus".into()]).err().unwrap();
        assert!(error.message.contains("calculus") && error.message.contains("precalculus"));
    }

    #[test]
    fn published_rows_parse_and_bad_rows_are_located() {
        let harness = Harness::<Math500>::new();
        let row = r#"{"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "answer": "2", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"}"#;
        let samples = harness.parse("test.jsonl", row.as_bytes()).unwrap();
        assert_eq!(samples[0].id, "test/prealgebra/1.json");
        assert_eq!(samples[0].subset.as_deref(), Some("prealgebra"));
        let bad = format!("{row}\n{}", row.replace("\"answer\": \"2\", ", ""));
        let error = harness.parse("test.jsonl", bad.as_bytes()).unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(2), Some("answer")));
    }
}
