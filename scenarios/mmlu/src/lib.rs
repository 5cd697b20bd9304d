//! The MMLU scenario (Hendrycks et al., 2021) and its re-annotated subset MMLU-Redux (Gema et al., 2024):
//! four-choice questions in 57 subjects, asked 5-shot in the original paper's prompt format ("The following
//! are multiple choice questions (with answers) about {subject}." then `Question\nA. ..\nAnswer: X` blocks).
//!
//! - Data: the original release (`data/test/*.csv` and `data/dev/*.csv`, one header-less
//!   `question,A,B,C,D,answer` file per subject: `--data data/test` reads the folder, the subject from each
//!   file's name), cais/mmlu (`question`, `subject`, `choices`, `answer` 0-3; JSON Lines, JSON or Parquet) or
//!   edinburgh-dawg/mmlu-redux(-2.0) with `--scenario-arg variant=redux` (`question`, `choices`, `answer`,
//!   `error_type`, one config per subject: the subject comes from the `subject` column, else the Hub config
//!   or the file name).
//! - Redux: rows whose `error_type` is not `ok` (bad question or options, no or several correct answers,
//!   wrong ground truth, expert knowledge) are left out, as the Redux paper measures models on the questions
//!   its annotators found sound; `--scenario-arg redux_rows=all` keeps every row with its original answer.
//! - Scoring: by generation (the SDK reads the letter the model states) or by log-likelihood of " A".." D"
//!   after the prompt (text prompt, as published MMLU figures are made).
//! - Few-shot examples come from the dev split, as in the original code and lm-evaluation-harness: the host
//!   reads `data/dev` beside `data/test` (or `--few-shot-data`) and gives each question its subject's first
//!   five dev questions in file order, so 5-shot prompts equal lm-eval's `mmlu` task.
//! - `aggregate` reports `accuracy/SUBJECT` and `accuracy_macro`, the mean over subjects.

pub mod subjects;

use runner_scenario_sdk::choice::{choice_letter, letter};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::metrics::macro_average;
use runner_scenario_sdk::multiple_choice::{
    ChoicePrompt, ChoiceScoring, Likelihoods, answer_index, choice_request, lettered_question, question_and_choices,
    sample_fields, score_choices,
};
use runner_scenario_sdk::records::{self, Row};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Guest, Metadata, Metric, ModelOutput,
    Options, Request, Sample, Score, ScoredSample, ScoringMode, ScoringModes, config, export_scenario, log,
};

/// Twelve questions in MMLU's format, written for runner (not taken from MMLU), in three subjects.
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (12 questions in 3 subjects written for runner, not MMLU)";

const ARGS: &[&str] = &["variant", "redux_rows"];
/// Log-likelihood runs compare " A".." D", as published MMLU figures do.
const LIKELIHOODS: Likelihoods = Likelihoods::Letters;
/// The original format in both modes: lettered options, answered by letter.
const PROMPT: ChoicePrompt =
    ChoicePrompt { likelihoods: LIKELIHOODS, likelihood_block: question_block, lettered_block: question_block };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Mmlu,
    Redux,
}

#[derive(Debug, Clone)]
struct Config {
    mode: ScoringMode,
    variant: Variant,
    /// Redux rows with an `error_type` other than `ok` are kept.
    all_redux_rows: bool,
}

runner_scenario_sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static CONFIG: Config = Config { mode: ScoringMode::Generate, variant: Variant::Mmlu, all_redux_rows: false }
);

struct Mmlu;

impl Guest for Mmlu {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "mmlu",
            env!("CARGO_PKG_VERSION"),
            "MMLU multiple-choice questions in 57 subjects (MMLU-Redux with --scenario-arg variant=redux), 5-shot \
             in the original prompt format by default; accuracy over all questions (as lm-eval's mmlu group weighs \
             subjects, by size), with accuracy_macro, the mean over subjects, beside it",
        )
        .generation(32, &["\n\n"])
        .metrics(LIKELIHOODS.metrics())
        .subsets(
            subjects::SUBJECTS
                .iter()
                .map(|(name, category)| (*name, format!("{} ({category})", subjects::display(name)))),
        )
        .hub("cais/mmlu", Some("all"), "test")
        .scoring(ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)
        .few_shot(5)
        .headerless_columns(&["question", "A", "B", "C", "D", "answer"])
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        let args = config::check(&options, &Self::describe(), ARGS)?;
        let variant = match args.get("variant").map(String::as_str) {
            None | Some("mmlu") => Variant::Mmlu,
            Some("redux") => Variant::Redux,
            Some(other) => {
                return Err(config::error("args: variant", format!("`{other}` is not a variant; use mmlu or redux")));
            }
        };
        let all_redux_rows = match args.get("redux_rows").map(String::as_str) {
            None | Some("ok") => false,
            Some("all") => true,
            Some(other) => {
                return Err(config::error("args: redux_rows", format!("`{other}` is not one of: ok, all")));
            }
        };
        if all_redux_rows && variant != Variant::Redux {
            return Err(config::error("args: redux_rows", "applies to variant=redux only"));
        }
        CONFIG.set(Config { mode: options.scoring_mode, variant, all_redux_rows });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let config = CONFIG.get();
        let records = records::records(&info, input)?;
        let mut samples = Vec::new();
        let mut left_out = 0usize;
        for row in records::rows(&records) {
            let subject = subject_of(&row, &info)?;
            if config.variant == Variant::Redux {
                let error_type = row.str("error_type")?.trim();
                if !config.all_redux_rows && error_type != "ok" {
                    left_out += 1;
                    continue;
                }
            }
            samples.push(sample_of(&row, subject)?);
        }
        if config.variant == Variant::Mmlu && records.first().is_some_and(|r| Row::new(1, r).has("error_type")) {
            log::warn("the rows have an `error_type` column (MMLU-Redux): pass --scenario-arg variant=redux");
        }
        if left_out > 0 {
            log::info(&format!("left out {left_out} MMLU-Redux rows whose error_type is not `ok`"));
        }
        // Only the Redux filter can leave nothing: records() refuses an empty file, and subsets are the host's.
        if samples.is_empty() {
            return Err(DatasetError {
                row: None,
                field: Some("error_type".to_string()),
                message: format!(
                    "{} has no MMLU-Redux row whose error_type is `ok` (--scenario-arg redux_rows=all keeps them)",
                    info.name
                ),
            });
        }
        Ok(samples)
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let subject = sample.subset.clone().ok_or_else(|| format!("sample {} has no subject", sample.id))?;
        let head = format!(
            "The following are multiple choice questions (with answers) about {}.\n\n",
            subjects::display(&subject)
        );
        choice_request(&PROMPT, CONFIG.get().mode, &head, &sample, &examples)
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let scoring = ChoiceScoring { mode: CONFIG.get().mode, likelihoods: LIKELIHOODS, read_letter: choice_letter };
        score_choices(&sample, &output, &scoring)
    }

    fn aggregate(samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(macro_average(&samples, &["accuracy"]))
    }
}

/// The row's subject: its `subject` column, else the Hub config, else the file name.
fn subject_of(row: &Row<'_>, info: &DatasetInfo) -> Result<&'static str, DatasetError> {
    if let Some(subject) = row.opt_str("subject")?.filter(|s| !s.trim().is_empty()) {
        let subject = subject.trim();
        return subjects::SUBJECTS
            .iter()
            .map(|(name, _)| *name)
            .find(|name| *name == subject)
            .ok_or_else(|| row.error("subject", format!("`{subject}` is not one of MMLU's 57 subjects")));
    }
    info.subset
        .as_deref()
        .and_then(subjects::from_file_name)
        .or_else(|| subjects::from_file_name(&info.name))
        .ok_or_else(|| {
            row.error(
                "subject",
                format!(
                    "the row has no `subject` and {} names no MMLU subject (name the file after its subject, \
                     e.g. anatomy.jsonl)",
                    info.name
                ),
            )
        })
}

fn sample_of(row: &Row<'_>, subject: &str) -> Result<Sample, DatasetError> {
    let question = row.str("question")?.trim().to_string();
    // The original CSVs give the options as columns A-D; the Hub layouts as one `choices` list.
    let choices = if row.has("choices") {
        row.list("choices")?
    } else {
        // An option may be empty text in the real files; only a missing column is an error.
        let option = |column: &str| {
            row.opt_str(column)?
                .map(|text| text.to_string())
                .ok_or_else(|| row.error(column, format!("row {} has no option `{column}`", row.row)))
        };
        ["A", "B", "C", "D"].iter().map(|column| option(column)).collect::<Result<_, _>>()?
    };
    if choices.len() < 2 || choices.len() > 26 {
        return Err(row.error("choices", format!("has {} choices; 2 to 26 are needed", choices.len())));
    }
    let answer = answer_index(row, "answer", choices.len())?;
    Ok(Sample {
        id: row.id("id")?,
        subset: Some(subject.to_string()),
        fields: sample_fields(&question, &choices),
        reference: letter(answer).to_string(),
    })
}

/// "Question\nA. ..\nB. ..\nAnswer:" as the original MMLU code writes it.
fn question_block(sample: &Sample) -> Result<String, String> {
    let (question, choices) = question_and_choices(sample)?;
    Ok(lettered_question("", question, &choices))
}

export_scenario!(Mmlu);

#[cfg(test)]
mod tests;
