//! The XSum scenario: one-sentence summaries of BBC news articles (EdinburghNLP/xsum: `document`, `summary`,
//! `id`). The model is asked for a single-sentence summary; its output (a leading "Summary:" label and
//! anything after the first blank line dropped) is scored against the reference with ROUGE-1, ROUGE-2 and
//! ROUGE-L F-measures as Google's `rouge-score` computes them without stemming (see the SDK's `rouge`).

use runner_scenario_sdk::chat::{UserTurns, few_shot_chat};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::{
    self as sdk, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Sample, Score, ScoredSample, metrics, records, rouge,
};

/// Six short articles in XSum's format, written for runner (not BBC articles), used without --data.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (6 news-style articles written for runner, not XSum)";

const INSTRUCTION: &str = "Summarize the following news article in one sentence.";
const TURNS: UserTurns = UserTurns { instruction: INSTRUCTION, label: "Article", field: "document" };

pub struct Xsum;

impl Guest for Xsum {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "xsum",
            env!("CARGO_PKG_VERSION"),
            "XSum extreme summarisation: one-sentence summary of a news article, ROUGE-1/2/L",
        )
        .generation(64, &["\n\n"])
        .metrics([
            metrics::mean("rouge1", "ROUGE-1 F-measure against the reference summary (rouge-score, no stemming)"),
            metrics::mean("rouge2", "ROUGE-2 F-measure against the reference summary (rouge-score, no stemming)"),
            metrics::mean("rougeL", "ROUGE-L F-measure against the reference summary (rouge-score, no stemming)"),
        ])
        .hub("EdinburghNLP/xsum", None, "test")
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
            Ok(Sample {
                id: row.id("id")?,
                subset: None,
                fields: vec![Field { name: "document".to_string(), value: row.str("document")?.trim().to_string() }],
                reference: row.str("summary")?.trim().to_string(),
            })
        })
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let messages = few_shot_chat(&TURNS, &sample, &examples, |example| Ok(example.reference.clone()))?;
        Ok(Request { prompt: Prompt::Chat(messages), choices: Vec::new(), max_new_tokens: None })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let summary = summary_of(&output.text);
        let scores = rouge::rouge(&summary, &sample.reference);
        Ok(metrics::ScoreBuilder::new()
            .value("rouge1", scores.rouge1.fmeasure)
            .value("rouge2", scores.rouge2.fmeasure)
            .value("rougeL", scores.rouge_l.fmeasure)
            .extracted(Some(summary))
            .build())
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

/// The summary in an output: its first paragraph, without a leading "Summary:" label.
pub fn summary_of(output: &str) -> String {
    let paragraph = output.trim().split("\n\n").next().unwrap_or("").trim();
    let lower = paragraph.to_ascii_lowercase();
    let unlabelled = if lower.starts_with("summary:") { &paragraph["summary:".len()..] } else { paragraph };
    unlabelled.trim().to_string()
}

sdk::export_scenario!(Xsum);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::harness::{Harness, metric};

    #[test]
    fn the_reference_scores_full_marks_and_another_summary_scores_low() {
        let harness = Harness::<Xsum>::new();
        let samples = harness.embedded();
        assert_eq!(samples.len(), 6);
        for (i, sample) in samples.iter().enumerate() {
            let right = harness.score(sample, &format!("Summary: {}", sample.reference));
            harness.assert_declared(&right);
            for name in ["rouge1", "rouge2", "rougeL"] {
                assert_eq!(metric(&right, name), 1.0, "{} {name}", sample.id);
            }
            let other = &samples[(i + 1) % samples.len()].reference;
            let wrong = harness.score(sample, other);
            assert!(metric(&wrong, "rougeL") < 0.4 && metric(&wrong, "rouge2") < 0.2, "{}: {wrong:?}", sample.id);
        }
    }

    #[test]
    fn partial_summaries_score_between() {
        let harness = Harness::<Xsum>::new();
        let samples = harness.embedded();
        let score = harness.score(&samples[2], "A teenager won the national chess championship.\n\nMore text.");
        assert_eq!(score.extracted.as_deref(), Some("A teenager won the national chess championship."));
        let rouge1 = metric(&score, "rouge1");
        assert!(rouge1 > 0.3 && rouge1 < 1.0, "{rouge1}");
    }

    #[test]
    fn prompts_hold_the_article_and_are_deterministic() {
        let harness = Harness::<Xsum>::new();
        let samples = harness.embedded();
        let prompt = harness.prompt(&samples, 1);
        assert_eq!(prompt, harness.prompt(&samples, 1));
        assert!(prompt.starts_with("user: Summarize the following news article in one sentence."));
        assert!(prompt.contains("Article: Engineers have finished"));
    }

    #[test]
    fn published_rows_parse_and_missing_summaries_are_located() {
        let harness = Harness::<Xsum>::new();
        let row = "{\"document\": \"Text.\", \"summary\": \"Short.\", \"id\": \"38264402\"}";
        assert_eq!(harness.parse("test.jsonl", row.as_bytes()).unwrap()[0].id, "38264402");
        let bad = format!("{row}\n{{\"document\": \"Text.\", \"id\": \"2\"}}");
        let error = harness.parse("test.jsonl", bad.as_bytes()).unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(2), Some("summary")));
    }
}
