//! The SST-2 scenario: the sentiment (positive or negative) of a movie-review sentence. Reads the Hub's
//! stanfordnlp/sst2 (`idx`, `sentence`, `label` 0 = negative, 1 = positive) and GLUE's TSV (`sentence`,
//! `label`). Scored by generation, where a verbose answer ("The sentiment is positive.") is mapped to its
//! label through synonyms, or by the log-likelihood of the continuations " positive" and " negative".
//!
//! Log-likelihood scoring is the lm-evaluation-harness's `sst2` task (GLUE): the plain-text prompt
//! "{sentence}\nQuestion: Is this sentence positive or negative?\nAnswer:", the sentence exactly as the file
//! gives it (GLUE's sentences end in a space, and lm-eval keeps it), few-shot examples answered with their
//! label and separated by a blank line. Generation asks in a chat, with the sentence trimmed.

use runner_scenario_sdk::chat::{UserTurns, few_shot_chat};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::multiple_choice::few_shot_prompt;
use runner_scenario_sdk::records::field;
use runner_scenario_sdk::{
    self as sdk, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Sample, Score, ScoredSample, ScoringMode, ScoringModes, label::Labels,
    metrics, records,
};

/// Ten sentences in SST-2's format, written for runner (not taken from SST-2), used without --data.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (10 review sentences written for runner, not SST-2)";

const INSTRUCTION: &str = "Is the sentiment of the following movie review sentence positive or negative? \
                           Answer with one word: positive or negative.";

const TURNS: UserTurns = UserTurns { instruction: INSTRUCTION, label: "Sentence", field: "sentence" };

/// lm-eval's `sst2` prompt after the sentence.
const LIKELIHOOD_QUESTION: &str = "\nQuestion: Is this sentence positive or negative?\nAnswer:";

/// The labels in the dataset's order (label 0, label 1) and the continuations compared by log-likelihood.
const LABELS: [&str; 2] = ["negative", "positive"];
const CHOICES: [&str; 2] = [" negative", " positive"];

fn labels() -> Labels {
    Labels::new(&[
        ("positive", &["pos", "good", "favorable", "favourable", "praise", "praising", "upbeat"]),
        ("negative", &["neg", "bad", "unfavorable", "unfavourable", "critical", "criticism", "poor"]),
    ])
}

runner_scenario_sdk::config_cell!(
    /// The run's scoring mode, decided by `configure`.
    static MODE: ScoringMode = ScoringMode::Generate
);

pub struct Sst2;

impl Guest for Sst2 {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "sst2",
            env!("CARGO_PKG_VERSION"),
            "SST-2 binary sentiment of movie-review sentences, by generation or log-likelihood",
        )
        .generation(16, &["\n"])
        .metrics([
            metrics::binary("accuracy", "1 when the stated (or most likely) label is the reference, else 0"),
            metrics::binary("answered", "1 when the output states one of the labels, else 0"),
        ])
        // The test split's labels are hidden (-1); published figures use validation.
        .hub("stanfordnlp/sst2", None, "validation")
        .scoring(ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        sdk::config::check(&options, &Self::describe(), &[])?;
        MODE.set(options.scoring_mode);
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        records::samples(&info, input, |row| {
            // Kept as the file has it: lm-eval's prompt keeps GLUE's trailing space.
            let sentence = row.str("sentence")?.to_string();
            let label = match row.int("label")? {
                0 => LABELS[0],
                1 => LABELS[1],
                -1 => {
                    return Err(row.error(
                        "label",
                        "is -1 (unlabelled): SST-2's test split hides its labels; use the validation split",
                    ));
                }
                other => {
                    return Err(row.error("label", format!("is {other}, expected 0 (negative) or 1 (positive)")));
                }
            };
            Ok(Sample {
                id: row.id("idx")?,
                subset: None,
                fields: vec![Field { name: "sentence".to_string(), value: sentence }],
                reference: label.to_string(),
            })
        })
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let label = |example: &Sample| Ok(example.reference.clone());
        let prompt = match MODE.get() {
            ScoringMode::Loglikelihood => Prompt::Text(few_shot_prompt(
                &sample,
                &examples,
                |s| Ok(format!("{}{LIKELIHOOD_QUESTION}", field(s, "sentence")?)),
                label,
            )?),
            ScoringMode::Generate => {
                let trimmed: Vec<Sample> = examples.iter().chain([&sample]).map(trimmed_sentence).collect();
                let (sample, examples) = trimmed.split_last().expect("the sample is there");
                Prompt::Chat(few_shot_chat(&TURNS, sample, examples, label)?)
            }
        };
        Ok(Request { prompt, choices: CHOICES.iter().map(|c| c.to_string()).collect(), max_new_tokens: None })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let extracted = if output.choices.is_empty() {
            labels().classify(&output.text).map(str::to_string)
        } else {
            if output.choices.len() != CHOICES.len() {
                return Err(format!("expected {} choice likelihoods, got {}", CHOICES.len(), output.choices.len()));
            }
            let best = if output.choices[1].logprob > output.choices[0].logprob { 1 } else { 0 };
            Some(LABELS[best].to_string())
        };
        Ok(metrics::ScoreBuilder::new()
            .flag("accuracy", extracted.as_deref() == Some(sample.reference.as_str()))
            .flag("answered", extracted.is_some())
            .extracted(extracted)
            .build())
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

/// The sample with its sentence trimmed: a chat shows no trailing space.
fn trimmed_sentence(sample: &Sample) -> Sample {
    let mut sample = sample.clone();
    sample.fields.iter_mut().filter(|f| f.name == "sentence").for_each(|f| f.value = f.value.trim().to_string());
    sample
}

sdk::export_scenario!(Sst2);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scenario_sdk::ScoringMode;
    use sdk::harness::{Harness, metric};

    #[test]
    fn the_embedded_sample_scores_references_right_and_flipped_labels_wrong() {
        let harness = Harness::<Sst2>::new();
        let samples = harness.embedded();
        assert_eq!(samples.len(), 10);
        assert_eq!(samples.iter().filter(|s| s.reference == "positive").count(), 5);
        for sample in &samples {
            let right = harness.score(sample, &format!("The sentiment is {}.", sample.reference));
            assert_eq!(metric(&right, "accuracy"), 1.0);
            harness.assert_declared(&right);
            let flipped = if sample.reference == "positive" { "Negative" } else { "Positive" };
            assert_eq!(metric(&harness.score(sample, flipped), "accuracy"), 0.0);
        }
    }

    #[test]
    fn verbose_answers_are_normalised() {
        let harness = Harness::<Sst2>::new();
        let samples = harness.embedded();
        let positive = &samples[0];
        for output in [
            "positive",
            "POSITIVE.",
            "Sentiment: positive",
            "This review is favorable.",
            "It's not negative, it's positive",
        ] {
            let score = harness.score(positive, output);
            assert_eq!((metric(&score, "accuracy"), score.extracted.as_deref()), (1.0, Some("positive")), "{output}");
        }
        let score = harness.score(positive, "I can't say.");
        assert_eq!((metric(&score, "accuracy"), metric(&score, "answered")), (0.0, 0.0));
    }

    #[test]
    fn loglikelihood_picks_the_likelier_label() {
        let harness = Harness::<Sst2>::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap();
        let samples = harness.embedded();
        assert_eq!(harness.request(&samples, 0).choices, [" negative", " positive"]);
        // samples[0] is positive.
        assert_eq!(metric(&harness.score_choices(&samples[0], &[-3.0, -1.0]), "accuracy"), 1.0);
        assert_eq!(metric(&harness.score_choices(&samples[0], &[-1.0, -3.0]), "accuracy"), 0.0);
    }

    #[test]
    fn loglikelihood_prompts_are_lm_evals_sst2_text_with_the_sentence_as_the_file_has_it() {
        let harness = Harness::<Sst2>::configured(|o| {
            o.scoring_mode = ScoringMode::Loglikelihood;
            o.few_shot = Some(1);
        })
        .unwrap();
        let glue = harness.parse("dev.tsv", b"sentence\tlabel\nit 's fine . \t1\nawful \t0\n").unwrap();
        let request = harness.request(&glue, 1);
        let Prompt::Text(text) = request.prompt else { panic!("a log-likelihood prompt is plain text") };
        let question = "\nQuestion: Is this sentence positive or negative?\nAnswer:";
        assert_eq!(text, format!("it 's fine . {question} positive\n\nawful {question}"));
        assert_eq!(request.choices, [" negative", " positive"]);
        // Generation still asks in a chat, with the trailing space gone.
        let generate = Harness::<Sst2>::new();
        let Prompt::Chat(messages) = generate.request(&glue, 0).prompt else { panic!("chat") };
        assert!(messages[0].content.ends_with("Sentence: it 's fine ."), "{}", messages[0].content);
    }

    #[test]
    fn prompts_are_deterministic_and_few_shot_answers_are_labels() {
        let harness = Harness::<Sst2>::configured(|o| o.few_shot = Some(2)).unwrap();
        let samples = harness.embedded();
        assert_eq!(harness.prompt(&samples, 3), harness.prompt(&samples, 3));
        let Prompt::Chat(messages) = harness.request(&samples, 3).prompt else { panic!("chat") };
        assert_eq!(messages.len(), 5);
        assert_eq!((messages[1].content.as_str(), messages[3].content.as_str()), ("positive", "negative"));
        assert!(messages[4].content.starts_with("Sentence: a loud"));
    }

    #[test]
    fn hub_rows_and_glue_tsv_parse_and_hidden_labels_are_refused() {
        let harness = Harness::<Sst2>::new();
        let hub = harness.parse("validation.jsonl", b"{\"idx\": 7, \"sentence\": \"fine .\", \"label\": 1}").unwrap();
        assert_eq!((hub[0].id.as_str(), hub[0].reference.as_str()), ("7", "positive"));
        let glue = harness.parse("dev.tsv", b"sentence\tlabel\nit 's a \"mess\" .\t0\nlovely .\t1\n").unwrap();
        assert_eq!(glue.iter().map(|s| s.reference.as_str()).collect::<Vec<_>>(), ["negative", "positive"]);
        assert_eq!(glue[0].id, "1");
        let hidden = harness.parse("test.jsonl", b"{\"idx\": 0, \"sentence\": \"x\", \"label\": -1}").unwrap_err();
        assert_eq!((hidden.row, hidden.field.as_deref()), (Some(1), Some("label")));
        let glue_test = harness.parse("test.tsv", b"index\tsentence\n0\tx\n").unwrap_err();
        assert_eq!(glue_test.field.as_deref(), Some("label"));
    }
}
