//! The LongBench scenario (Bai et al., 2023): 21 long-context tasks (single- and multi-document QA,
//! summarisation, few-shot learning, synthetic retrieval and counting, code completion), each a subset,
//! with LongBench's own prompt templates and metrics (see [`tasks`] and [`metrics`]).
//!
//! - Data: THUDM/LongBench JSON Lines or Parquet (`input`, `context`, `answers`, `length`, `dataset`,
//!   `language`, `all_classes`, `_id`), LongBench-E files too (`hotpotqa_e.jsonl`). A row's task is its
//!   `dataset` field, else the Hub config, else the file name.
//! - Prompts: the task's template; few-shot and code tasks go to the model as plain text, the others through
//!   the chat template, as LongBench's `pred.py` does. Few-shot examples are part of the context already,
//!   so the scenario takes none from the host.
//! - Long contexts: a scenario cannot see the tokenizer, so it does not truncate by default; the host refuses
//!   a prompt longer than the model's context (PromptTooLong) and that sample fails. `--scenario-arg
//!   max_context_chars=N` cuts prompts longer than N characters in the middle, keeping the first and last
//!   N/2, as LongBench does in tokens (about 3-4 characters a token for English text).
//! - Generation budget: LongBench sets it per task (32 to 512 tokens, `tasks::Task::max_new_tokens`), and so
//!   does each request here; the scenario-wide default (128) only describes the scenario, and a user's
//!   `--max-new-tokens` overrides both.
//! - `score` is the task's metric in 0..=1 (LongBench prints it times 100); `aggregate` adds `score/TASK`
//!   per task and `score_macro`, the mean over tasks, LongBench's overall average.

pub mod metrics;
pub mod tasks;

use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::metrics::{ScoreBuilder, macro_average, mean};
use runner_scenario_sdk::records::{self, Row, field};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Message, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Role, Sample, Score, ScoredSample, config, export_scenario,
};

use tasks::Task;

/// Six short samples in LongBench's format and six tasks, written for runner (not taken from LongBench).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (6 short items in 6 tasks written for runner, not LongBench)";

#[derive(Debug, Clone)]
struct Config {
    max_context_chars: Option<usize>,
}

runner_scenario_sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static CONFIG: Config = Config { max_context_chars: None }
);

struct LongBench;

impl Guest for LongBench {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "longbench",
            env!("CARGO_PKG_VERSION"),
            "LongBench long-context tasks with their published prompts and metrics (QA F1, ROUGE-L, classification, \
             retrieval and count scores, code edit similarity), macro-averaged over tasks",
        )
        .generation(128, &[])
        .metrics([mean(
            "score",
            "the task's LongBench metric in 0..1 (F1, ROUGE-L, classification, retrieval or count score, edit \
             similarity), best over the gold answers",
        )])
        .subsets(tasks::TASKS.iter().map(|task| {
            (task.name, format!("{} (LongBench budget: {} new tokens)", task.description, task.max_new_tokens))
        }))
        // The main branch holds a loading script; the Hub's Parquet conversion holds the data.
        .hub("THUDM/LongBench", Some("hotpotqa"), "test")
        .revision("refs/convert/parquet")
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        let args = config::check(&options, &Self::describe(), &["max_context_chars"])?;
        let max_context_chars = match args.get("max_context_chars") {
            None => None,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(chars) if chars >= 2 => Some(chars),
                _ => {
                    return Err(config::error(
                        "args: max_context_chars",
                        format!("`{text}` is not a number of characters (2 or more)"),
                    ));
                }
            },
        };
        if options.few_shot.is_some_and(|n| n > 0) {
            return Err(config::error(
                "few-shot",
                "LongBench's few-shot tasks carry their examples in the context; the scenario takes none",
            ));
        }
        CONFIG.set(Config { max_context_chars });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        records::samples(&info, input, |row| sample_of(&row, task_of(&row, &info)?))
    }

    fn build_prompt(sample: Sample, _examples: Vec<Sample>) -> Result<Request, String> {
        let task = task_of_sample(&sample)?;
        let prompt = tasks::render(task, field(&sample, "context")?, field(&sample, "input")?);
        let prompt = match CONFIG.get().max_context_chars {
            Some(chars) => tasks::truncate_middle(&prompt, chars),
            None => prompt,
        };
        let prompt = if task.chat {
            Prompt::Chat(vec![Message { role: Role::User, content: prompt }])
        } else {
            Prompt::Text(prompt)
        };
        Ok(Request { prompt, choices: Vec::new(), max_new_tokens: Some(task.max_new_tokens) })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let task = task_of_sample(&sample)?;
        let answers = json_list(&sample, "answers")?;
        let classes = json_list(&sample, "all_classes")?;
        let value = metrics::score(task, &output.text, &answers, &classes);
        Ok(ScoreBuilder::new().value("score", value).build())
    }

    fn aggregate(samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(macro_average(&samples, &["score"]))
    }
}

/// The row's task: its `dataset` field, else the Hub config, else the file's name (`qasper.jsonl`,
/// `hotpotqa_e.jsonl`, `.../hotpotqa/test-00000-of-00001.parquet`).
fn task_of(row: &Row<'_>, info: &DatasetInfo) -> Result<&'static Task, DatasetError> {
    if let Some(name) = row.opt_str("dataset")?.filter(|n| !n.trim().is_empty()) {
        return tasks::find(name.trim())
            .ok_or_else(|| row.error("dataset", format!("`{name}` is not a LongBench task")));
    }
    let from_name = || {
        info.name
            .rsplit(['/', '\\'])
            .flat_map(|part| [part, part.split('.').next().unwrap_or(part)])
            .find_map(tasks::find)
    };
    info.subset.as_deref().and_then(tasks::find).or_else(from_name).ok_or_else(|| {
        row.error(
            "dataset",
            format!("the row has no `dataset` and {} names no LongBench task (e.g. hotpotqa.jsonl)", info.name),
        )
    })
}

fn sample_of(row: &Row<'_>, task: &Task) -> Result<Sample, DatasetError> {
    let answers = row.list("answers")?;
    if answers.is_empty() {
        return Err(row.error("answers", "is an empty list"));
    }
    let classes = if row.has("all_classes") { row.list("all_classes")? } else { Vec::new() };
    if task.metric == tasks::MetricKind::Classification && classes.is_empty() {
        return Err(
            row.error("all_classes", format!("{} is scored against its classes, and the row lists none", task.name))
        );
    }
    // Context-only tasks (passage_count, lcc, gov_report...) have an empty `input`.
    let input = row.opt_str("input")?.unwrap_or_default();
    let context = row.str("context")?;
    let text = |name: &str, value: &str| Field { name: name.to_string(), value: value.to_string() };
    let json = |items: &[String]| serde_json::to_string(items).unwrap_or_default();
    Ok(Sample {
        id: row.id("_id")?,
        subset: Some(task.name.to_string()),
        fields: vec![
            text("context", context),
            text("input", input),
            text("answers", &json(&answers)),
            text("all_classes", &json(&classes)),
        ],
        reference: if answers.len() == 1 { answers[0].clone() } else { json(&answers) },
    })
}

fn json_list(sample: &Sample, name: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(field(sample, name)?)
        .map_err(|e| format!("sample {}: field `{name}` is not a JSON list of strings: {e}", sample.id))
}

fn task_of_sample(sample: &Sample) -> Result<&'static Task, String> {
    sample
        .subset
        .as_deref()
        .and_then(tasks::find)
        .ok_or_else(|| format!("sample {} has no LongBench task as its subset", sample.id))
}

export_scenario!(LongBench);

#[cfg(test)]
mod tests;
