//! The custom scenario: a benchmark over the user's own data. Any JSONL/JSON/CSV/TSV (or Parquet) file with
//! a `prompt` column and optional `reference` and `id` columns works as is; a task file (`--task FILE`, JSON
//! or YAML, see `task`) changes the prompt `template` (`{column}` placeholders over the record's columns),
//! the `reference_field`, the `metric` (exact_match | contains | f1 | rouge | regex | none), a `system`
//! message, `max_new_tokens` and `stop` strings. Without a task, outputs are scored with `contains` when the
//! data has references and not at all when it has none. Stop strings also cut the output before scoring,
//! so scores are right even where generation ran on; `max_new_tokens` and `stop` reach the host through
//! `describe` when it is asked again after `configure`. `--scenario-arg format=text` sends the prompt as
//! plain text instead of a chat message.

pub mod task;

use runner_scenario_sdk::chat::{Format, system_and_user};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::{
    self as sdk, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric,
    MetricInfo, ModelOutput, Options, Prompt, Request, Sample, Score, ScoredSample, metrics, records, rouge, text,
};
use task::{MetricKind, Task};

/// Six questions with short answers, written for runner, used without --data.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (6 short questions written for runner)";

#[derive(Clone, Default)]
struct Settings {
    task: Task,
    /// Whether a task file was given (describe then reports only its metric).
    configured: bool,
    format: Format,
}

sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static SETTINGS: Settings = Settings::default()
);

/// The metrics one kind of comparison reports.
fn metric_infos(kind: MetricKind) -> Vec<MetricInfo> {
    match kind {
        MetricKind::ExactMatch => {
            vec![metrics::binary("exact_match", "1 when the output equals the reference after SQuAD normalisation")]
        }
        MetricKind::Contains => {
            vec![metrics::binary("contains", "1 when the normalised reference appears in the normalised output")]
        }
        MetricKind::F1 => vec![metrics::mean("f1", "SQuAD token F1 between the output and the reference")],
        MetricKind::Rouge => vec![
            metrics::mean("rouge1", "ROUGE-1 F-measure (rouge-score, no stemming)"),
            metrics::mean("rouge2", "ROUGE-2 F-measure (rouge-score, no stemming)"),
            metrics::mean("rougeL", "ROUGE-L F-measure (rouge-score, no stemming)"),
        ],
        MetricKind::Regex => vec![metrics::binary("regex_match", "1 when the output matches the reference pattern")],
        MetricKind::None => Vec::new(),
    }
}

const ALL_KINDS: [MetricKind; 5] =
    [MetricKind::ExactMatch, MetricKind::Contains, MetricKind::F1, MetricKind::Rouge, MetricKind::Regex];

pub struct Custom;

impl Guest for Custom {
    fn describe() -> Metadata {
        let settings = SETTINGS.get();
        let task = &settings.task;
        // Before a task is known every metric the task could choose is declared; a sample reports only its own.
        let declared = match (settings.configured, task.metric) {
            (true, Some(kind)) => metric_infos(kind),
            _ => ALL_KINDS.iter().flat_map(|kind| metric_infos(*kind)).collect(),
        };
        let stop: Vec<&str> = task.stop.iter().map(String::as_str).collect();
        MetadataBuilder::new(
            "custom",
            env!("CARGO_PKG_VERSION"),
            "Your own prompts and references, with the template and metric from a task file",
        )
        .generation(task.max_new_tokens.unwrap_or(256), &stop)
        .temperature(task.temperature)
        .metrics(declared)
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        // Generation only, no subsets, `format` the one argument: what describe() declares.
        let args = sdk::config::check(&options, &Self::describe(), &["format"])?;
        let format = Format::from_args(&args)?;
        let (task, configured) = match &options.task_file {
            Some(file) => (
                Task::parse(&file.name, &file.data)
                    .map_err(|e| ConfigError { option: e.option, message: e.message })?,
                true,
            ),
            None => (Task::default(), false),
        };
        SETTINGS.set(Settings { task, configured, format });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let task = SETTINGS.get().task;
        let needs_reference = task.metric.is_some_and(|m| m != MetricKind::None);
        records::samples(&info, input, |row| {
            let prompt = task.template.render(|column| match row.opt_text(column)? {
                Some(value) => Ok(value),
                None if row.get(column).is_some() => {
                    Err(row.error(column, format!("`{column}` is null in row {}", row.row)))
                }
                None => Err(row.error(
                    column,
                    format!(
                        "the template uses `{{{column}}}` but row {} has no `{column}` column (it has: {})",
                        row.row,
                        row.columns().collect::<Vec<_>>().join(", ")
                    ),
                )),
            })?;
            if prompt.trim().is_empty() {
                return Err(DatasetError {
                    row: Some(row.row),
                    field: task.template.columns().next().map(str::to_string),
                    message: format!("the prompt of row {} is empty", row.row),
                });
            }
            let reference = row.opt_text(&task.reference_field)?.unwrap_or_default();
            if needs_reference && reference.trim().is_empty() {
                return Err(row.error(
                    &task.reference_field,
                    format!("row {} has no `{}` to score against", row.row, task.reference_field),
                ));
            }
            if task.metric == Some(MetricKind::Regex) {
                regex::Regex::new(&reference)
                    .map_err(|e| row.error(&task.reference_field, format!("is not a valid regular expression: {e}")))?;
            }
            Ok(Sample {
                id: row.id("id")?,
                subset: None,
                fields: vec![Field { name: "prompt".to_string(), value: prompt }],
                reference,
            })
        })
    }

    fn build_prompt(sample: Sample, _examples: Vec<Sample>) -> Result<Request, String> {
        let settings = SETTINGS.get();
        let prompt = sample
            .fields
            .iter()
            .find(|f| f.name == "prompt")
            .map(|f| f.value.clone())
            .ok_or_else(|| format!("sample {} has no `prompt` field", sample.id))?;
        // Plain text keeps the task's system message, as a paragraph before the prompt.
        let prompt = match (settings.format, settings.task.system) {
            (Format::Text, Some(system)) => Prompt::Text(format!("{system}\n\n{prompt}")),
            (Format::Text, None) => Prompt::Text(prompt),
            (Format::Chat, system) => Prompt::Chat(system_and_user(system, prompt)),
        };
        Ok(Request { prompt, choices: Vec::new(), max_new_tokens: None })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let task = SETTINGS.get().task;
        let kind = task.metric.unwrap_or(if sample.reference.trim().is_empty() {
            MetricKind::None
        } else {
            MetricKind::Contains
        });
        let answer = until_stop(&output.text, &task.stop).trim().to_string();
        let reference = &sample.reference;
        let score = metrics::ScoreBuilder::new();
        let score = match kind {
            MetricKind::ExactMatch => score.flag("exact_match", text::exact_match(&answer, reference)),
            MetricKind::Contains => score.flag("contains", text::contains(&answer, reference)),
            MetricKind::F1 => score.value("f1", text::token_f1(&answer, reference)),
            MetricKind::Rouge => {
                let r = rouge::rouge(&answer, reference);
                score
                    .value("rouge1", r.rouge1.fmeasure)
                    .value("rouge2", r.rouge2.fmeasure)
                    .value("rougeL", r.rouge_l.fmeasure)
            }
            MetricKind::Regex => {
                let pattern = regex::Regex::new(reference).map_err(|e| format!("invalid reference pattern: {e}"))?;
                score.flag("regex_match", pattern.is_match(&answer))
            }
            MetricKind::None => return Ok(Score { metrics: Vec::new(), extracted: None }),
        };
        Ok(score.extracted(Some(answer)).build())
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

/// The output up to the first stop string.
fn until_stop<'a>(output: &'a str, stop: &[String]) -> &'a str {
    let end = stop.iter().filter_map(|s| output.find(s.as_str())).min().unwrap_or(output.len());
    &output[..end]
}

sdk::export_scenario!(Custom);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::harness::{Harness, metric, prompt_text, task_file};

    fn with_task(name: &str, text: &str) -> Harness<Custom> {
        Harness::<Custom>::configured(|o| o.task_file = Some(task_file(name, text))).unwrap()
    }

    #[test]
    fn the_embedded_sample_scores_references_right_and_other_answers_wrong() {
        let harness = Harness::<Custom>::new();
        let samples = harness.embedded();
        assert_eq!(samples.len(), 6);
        for sample in &samples {
            let right = harness.score(sample, &format!("The answer is {}.", sample.reference));
            assert_eq!(metric(&right, "contains"), 1.0, "{}", sample.id);
            harness.assert_declared(&right);
            assert_eq!(metric(&harness.score(sample, "I do not know."), "contains"), 0.0);
        }
        assert_eq!(harness.prompt(&samples, 0), "user: What is the capital city of Japan? Answer with one word.");
    }

    #[test]
    fn a_yaml_task_sets_template_reference_metric_system_and_stop() {
        let harness = with_task(
            "task.yaml",
            "template: |-\n  Q: {question}\n  A:\nreference_field: gold\nmetric: exact_match\n\
             system: Answer in one word.\nmax_new_tokens: 12\nstop: [\"\\n\"]\n",
        );
        let metadata = Custom::describe();
        assert_eq!(metadata.defaults.max_new_tokens, 12);
        assert_eq!(metadata.defaults.stop, ["\n"]);
        assert_eq!(metadata.metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["exact_match"]);
        let samples = harness
            .parse("mine.csv", b"question,gold,id\nCapital of Italy?,Rome,it\nCapital of Spain?,Madrid,es\n")
            .unwrap();
        assert_eq!(
            prompt_text(&harness.request(&samples, 0).prompt),
            "system: Answer in one word.\nuser: Q: Capital of Italy?\nA:"
        );
        assert_eq!(samples[1].id, "es");
        // The stop string cuts the output before scoring.
        assert_eq!(metric(&harness.score(&samples[0], "Rome.\nQ: next"), "exact_match"), 1.0);
        assert_eq!(metric(&harness.score(&samples[0], "It is Rome"), "exact_match"), 0.0);
    }

    #[test]
    fn every_metric_scores_the_reference_as_correct() {
        for (metric_name, reported, reference, right, wrong) in [
            ("f1", "f1", "the big red ball", "big red ball", "a small cube"),
            ("rouge", "rougeL", "the cat sat on the mat", "The cat sat on the mat.", "dogs run"),
            ("regex", "regex_match", r"^\d{3}-\d{4}$", "555-1234", "call me"),
            ("contains", "contains", "Paris", "It is Paris, France", "London"),
            ("exact_match", "exact_match", "Paris", "paris.", "Paris, France"),
        ] {
            let harness = with_task("task.json", &format!(r#"{{"metric": "{metric_name}"}}"#));
            let data = serde_json::json!({"prompt": "p", "reference": reference}).to_string();
            let samples = harness.parse("d.jsonl", data.as_bytes()).unwrap();
            assert_eq!(metric(&harness.score(&samples[0], right), reported), 1.0, "{metric_name}");
            assert!(metric(&harness.score(&samples[0], wrong), reported) < 0.5, "{metric_name}");
        }
    }

    #[test]
    fn prompts_without_references_are_not_scored() {
        let harness = Harness::<Custom>::new();
        let samples = harness.parse("p.jsonl", b"{\"prompt\": \"Tell me a story.\"}").unwrap();
        assert!(harness.score(&samples[0], "Once upon a time").metrics.is_empty());
    }

    #[test]
    fn bad_tasks_and_rows_are_named() {
        let error = Harness::<Custom>::configured(|o| o.task_file = Some(task_file("task.yaml", "metirc: f1\n")))
            .err()
            .unwrap();
        assert_eq!(error.option, "task-file: metirc");
        assert!(error.message.contains("task.yaml"));
        let harness = with_task("task.yaml", "template: \"{question} ({choices})\"\nmetric: f1\n");
        let error = harness.parse("d.jsonl", b"{\"question\": \"q\", \"choices\": \"a\", \"reference\": \"r\"}\n{\"question\": \"q\", \"reference\": \"r\"}").unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(2), Some("choices")));
        let error = harness.parse("d.jsonl", b"{\"question\": \"q\", \"choices\": \"a\"}").unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("reference")));
        let regex = with_task("task.yaml", "metric: regex\n");
        let error = regex.parse("d.jsonl", b"{\"prompt\": \"q\", \"reference\": \"(unclosed\"}").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("reference"));
    }
}
