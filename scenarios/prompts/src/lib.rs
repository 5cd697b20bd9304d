//! The prompts scenario: prompts of three lengths for pure speed runs (time to first token grows with the
//! prompt, decode speed with the context). Nothing is scored: the scenario reports no metrics, so a run
//! shows only runner's own timings. The embedded prompts were written for runner, with targets (counted
//! with the default model's tokenizer, chat template excluded) of about 32 tokens (`short`), 512
//! (`medium`, one ~380-word article and a question) and 2000 (`long`, four articles and a task); the
//! categories are the subsets. Measured with SmolLM2-135M-Instruct, chat template included: short 48-57
//! prompt tokens, medium 509-515, long 1790-1797. `--data` takes any JSONL/JSON/CSV with a `prompt` column
//! and optional `id`, `category` (short, medium or long) and `system` columns. `--scenario-arg format=text` sends the prompt
//! as plain text instead of a chat message (for base models).

use runner_scenario_sdk::chat::{Format, system_and_user};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::{
    self as sdk, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Sample, Score, ScoredSample, records,
};

/// Eight prompts written for runner: four short, two medium, two long.
pub const EMBEDDED_PROMPTS: &[u8] = include_bytes!("prompts.jsonl");
const EMBEDDED_LABEL: &str = "embedded prompts (4 short, 2 medium, 2 long, written for runner)";

/// The categories, their descriptions and token targets.
const CATEGORIES: &[(&str, &str)] = &[
    ("short", "about 32 prompt tokens: a one-line request"),
    ("medium", "about 512 prompt tokens: an article and a question"),
    ("long", "about 2000 prompt tokens: four articles and a task"),
];

#[derive(Clone, Default)]
struct Settings {
    format: Format,
}

sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static SETTINGS: Settings = Settings::default()
);

pub struct Prompts;

impl Guest for Prompts {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "prompts",
            env!("CARGO_PKG_VERSION"),
            "Short, medium and long prompts for speed runs; nothing is scored",
        )
        .generation(128, &[])
        .subsets(CATEGORIES.iter().copied())
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        let args = sdk::config::check(&options, &Self::describe(), &["format"])?;
        SETTINGS.set(Settings { format: Format::from_args(&args)? });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "prompts.jsonl", EMBEDDED_PROMPTS)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        records::samples(&info, input, |row| {
            let prompt = row.str("prompt")?;
            let category = match row.opt_str("category")? {
                Some(category) if CATEGORIES.iter().any(|(name, _)| *name == category.trim()) => {
                    Some(category.trim().to_string())
                }
                Some(other) => {
                    return Err(row.error("category", format!("is {other:?}; expected short, medium or long")));
                }
                None => None,
            };
            let mut fields = vec![Field { name: "prompt".to_string(), value: prompt.to_string() }];
            if let Some(system) = row.opt_str("system")?.filter(|s| !s.trim().is_empty()) {
                fields.push(Field { name: "system".to_string(), value: system.to_string() });
            }
            Ok(Sample { id: row.id("id")?, subset: category, fields, reference: String::new() })
        })
    }

    fn build_prompt(sample: Sample, _examples: Vec<Sample>) -> Result<Request, String> {
        let field = |name: &str| sample.fields.iter().find(|f| f.name == name).map(|f| f.value.clone());
        let prompt = field("prompt").ok_or_else(|| format!("sample {} has no `prompt` field", sample.id))?;
        // Plain text leaves the system message out: a base model has no place for it.
        let prompt = match SETTINGS.get().format {
            Format::Text => Prompt::Text(prompt),
            Format::Chat => Prompt::Chat(system_and_user(field("system"), prompt)),
        };
        Ok(Request { prompt, choices: Vec::new(), max_new_tokens: None })
    }

    fn score(_sample: Sample, _output: ModelOutput) -> Result<Score, String> {
        Ok(Score { metrics: Vec::new(), extracted: None })
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

sdk::export_scenario!(Prompts);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::harness::{Harness, prompt_text};

    #[test]
    fn the_embedded_prompts_cover_every_category_with_growing_lengths() {
        let harness = Harness::<Prompts>::new();
        let samples = harness.embedded();
        let words = |category: &str| -> Vec<usize> {
            samples
                .iter()
                .enumerate()
                .filter(|(_, s)| s.subset.as_deref() == Some(category))
                .map(|(i, _)| harness.prompt(&samples, i).split_whitespace().count())
                .collect()
        };
        // About 1.3 tokens per English word with the default model's tokenizer.
        assert!(words("short").iter().all(|&w| (10..=30).contains(&w)), "{:?}", words("short"));
        assert!(words("medium").iter().all(|&w| (330..=450).contains(&w)), "{:?}", words("medium"));
        assert!(words("long").iter().all(|&w| (1350..=1650).contains(&w)), "{:?}", words("long"));
        assert_eq!((words("short").len(), words("medium").len(), words("long").len()), (4, 2, 2));
    }

    #[test]
    fn nothing_is_scored_and_prompts_are_deterministic() {
        let harness = Harness::<Prompts>::new();
        let samples = harness.embedded();
        assert!(harness.metadata().metrics.is_empty());
        let score = harness.score(&samples[0], "anything");
        assert!(score.metrics.is_empty() && score.extracted.is_none());
        assert_eq!(harness.prompt(&samples, 6), harness.prompt(&samples, 6));
    }

    #[test]
    fn categories_select_and_text_format_skips_the_chat_template() {
        let harness = Harness::<Prompts>::configured(|o| {
            o.subsets = vec!["long".into()];
            o.args = vec![("format".into(), "text".into())];
        })
        .unwrap();
        let samples = harness.embedded();
        assert_eq!(samples.len(), 2);
        // parse-dataset returns every category's prompts; the host keeps the selected ones.
        assert_eq!(harness.parse_every("prompts.jsonl", EMBEDDED_PROMPTS).unwrap().len(), 8);
        assert!(matches!(harness.request(&samples, 0).prompt, Prompt::Text(_)));
        let error = Harness::<Prompts>::configured(|o| o.args = vec![("format".into(), "xml".into())]).err().unwrap();
        assert_eq!(error.option, "args: format");
        assert!(Harness::<Prompts>::configured(|o| o.subsets = vec!["huge".into()]).is_err());
    }

    #[test]
    fn user_files_need_only_a_prompt_and_bad_categories_are_located() {
        let harness = Harness::<Prompts>::new();
        let samples = harness.parse("mine.csv", b"prompt,system\nHello there,Be brief.\nWhat is 2+2?,\n").unwrap();
        assert_eq!(samples.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(prompt_text(&harness.request(&samples, 0).prompt), "system: Be brief.\nuser: Hello there");
        let error = harness.parse("mine.jsonl", b"{\"prompt\": \"x\", \"category\": \"tiny\"}").unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("category")));
        let error = harness.parse("mine.jsonl", b"{\"text\": \"x\"}").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("prompt"));
    }
}
