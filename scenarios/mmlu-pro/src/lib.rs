//! The MMLU-Pro scenario (Wang et al., 2024): harder, reasoning-focused multiple-choice questions with up to
//! ten options in 14 categories, asked 5-shot with chain of thought in the format of TIGER-Lab's
//! `evaluate_from_local.py`, and scored with its answer extraction ([`answer`]).
//!
//! - Data: TIGER-Lab/MMLU-Pro (`question_id`, `question`, `options`, `answer` letter, `answer_index`,
//!   `cot_content`, `category`, `src`), Parquet or JSON Lines. "N/A" options are dropped as the reference does.
//! - The gold answer is the `answer` letter, the field lm-eval's mmlu_pro scores against. The public test
//!   file has a row whose `answer_index` disagrees with it: such a row is kept, following `answer`, and
//!   named in a warning in the run's log. A file where more than one row in a hundred disagrees is refused:
//!   its columns do not mean what MMLU-Pro's do.
//! - Categories are the subsets, named with `_` for spaces (`computer_science`).
//! - Few-shot: the reference takes 5 examples of the category from the validation split, whose `cot_content`
//!   holds a worked answer; the host picks examples from the evaluated file, so pass the validation rows in
//!   it to get worked examples. An example without `cot_content` shows only "The answer is (X).".
//! - Generation: the reference's prompt, ending "Answer: Let's think step by step.", in one user message;
//!   stops at "Question:" as the reference does. An output with no answer scores 0 (the reference instead
//!   draws a random letter; `answered` shows how often that happens).
//! - Log-likelihood: the same questions without chain of thought ("Answer: X" examples), comparing
//!   " A".." J" after "Answer:".
//! - `aggregate` adds `accuracy/CATEGORY` and `accuracy_macro`; the run's `accuracy` is the reference's
//!   overall (micro) figure.

pub mod answer;

use runner_scenario_sdk::choice::letter;
use runner_scenario_sdk::log;
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::metrics::macro_average;
use runner_scenario_sdk::multiple_choice::{
    ChoiceScoring, Likelihoods, answer_index, few_shot_prompt, lettered, question_and_choices, sample_fields,
    score_choices,
};
use runner_scenario_sdk::records::{self, Row};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Message, Metadata, Metric,
    ModelOutput, Options, Prompt, Request, Role, Sample, Score, ScoredSample, ScoringMode, ScoringModes, config,
    export_scenario,
};

/// Eight questions in MMLU-Pro's format, written for runner (not taken from MMLU-Pro).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (8 questions in 2 categories written for runner, not MMLU-Pro)";

/// Log-likelihood runs compare " A".." J" after "Answer:".
const LIKELIHOODS: Likelihoods = Likelihoods::Letters;

/// MMLU-Pro's 14 categories as they appear in its `category` column.
pub const CATEGORIES: &[&str] = &[
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
];

#[derive(Debug, Clone)]
struct Config {
    mode: ScoringMode,
}

runner_scenario_sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static CONFIG: Config = Config { mode: ScoringMode::Generate }
);

/// A category's subset name: spaces become `_`.
pub fn subset_name(category: &str) -> String {
    category.trim().replace(' ', "_")
}

struct MmluPro;

impl Guest for MmluPro {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "mmlu-pro",
            env!("CARGO_PKG_VERSION"),
            "MMLU-Pro ten-option reasoning questions in 14 categories, 5-shot chain of thought with the reference's \
             answer extraction; accuracy overall and per category",
        )
        .generation(2048, &["Question:"])
        .metrics(LIKELIHOODS.metrics())
        .subsets(CATEGORIES.iter().map(|category| (subset_name(category), format!("MMLU-Pro {category}"))))
        .hub("TIGER-Lab/MMLU-Pro", Some("default"), "test")
        .scoring(ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)
        .few_shot(5)
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        config::check(&options, &Self::describe(), &[])?;
        CONFIG.set(Config { mode: options.scoring_mode });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let mut flawed = Vec::new();
        let samples = records::samples(&info, input, |row| {
            let category = row.str("category")?.trim();
            if !CATEGORIES.contains(&category) {
                return Err(row.error("category", format!("`{category}` is not one of MMLU-Pro's 14 categories")));
            }
            let (sample, flaw) = sample_of(&row, subset_name(category))?;
            if let Some(flaw) = flaw {
                flawed.push((row.row, sample.id.clone(), flaw));
            }
            Ok(sample)
        })?;
        // One flawed row in a real release is the data's fault; many are a file in another layout.
        if flawed.len() > (samples.len() / 100).max(1) {
            let (row, id, flaw) = &flawed[0];
            return Err(records::error_at(
                *row,
                "answer_index",
                format!(
                    "{} of {} rows have an `answer_index` that disagrees with `answer` (first: question_id {id}: \
                     {flaw}): more than one in a hundred, so the columns do not mean what MMLU-Pro's do",
                    flawed.len(),
                    samples.len()
                ),
            ));
        }
        for (row, id, flaw) in &flawed {
            log::warn(&flaw_warning(&info.name, *row, id, flaw));
        }
        Ok(samples)
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let category = sample.subset.as_deref().unwrap_or("other").replace('_', " ");
        let (_, choices) = question_and_choices(&sample)?;
        if CONFIG.get().mode == ScoringMode::Loglikelihood {
            let mut text = format!("The following are multiple choice questions (with answers) about {category}.\n\n");
            let block = |s: &Sample| Ok(format!("{}Answer:", question_block(s)?));
            text.push_str(&few_shot_prompt(&sample, &examples, block, |e| Ok(e.reference.clone()))?);
            return Ok(Request {
                prompt: Prompt::Text(text),
                choices: LIKELIHOODS.continuations(&choices),
                max_new_tokens: None,
            });
        }
        let mut text = format!(
            "The following are multiple choice questions (with answers) about {category}. Think step by step and \
             then finish your answer with \"the answer is (X)\" where X is the correct letter choice.\n\n"
        );
        for example in &examples {
            text.push_str(&question_block(example)?);
            match example.fields.iter().find(|f| f.name == "cot").map(|f| f.value.trim()) {
                Some(cot) if !cot.is_empty() => {
                    text.push_str(&cot.replacen("A: Let's think step by step.", "Answer: Let's think step by step.", 1))
                }
                _ => text.push_str(&format!("Answer: The answer is ({}).", example.reference)),
            }
            text.push_str("\n\n");
        }
        text.push_str(&question_block(&sample)?);
        text.push_str("Answer: Let's think step by step.");
        Ok(Request {
            prompt: Prompt::Chat(vec![Message { role: Role::User, content: text }]),
            choices: Vec::new(),
            max_new_tokens: None,
        })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let scoring = ChoiceScoring { mode: CONFIG.get().mode, likelihoods: LIKELIHOODS, read_letter: answer::extract };
        score_choices(&sample, &output, &scoring)
    }

    fn aggregate(samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(macro_average(&samples, &["accuracy"]))
    }
}

/// The run-log line for a row whose `answer_index` disagrees with `answer`: the file, record number and id.
fn flaw_warning(file: &str, row: u32, id: &str, flaw: &str) -> String {
    format!("{file}: record {row} (question_id {id}): {flaw}; scoring against `answer`, as lm-eval's mmlu_pro does")
}

/// The row's sample, and what is wrong with its `answer_index` when that disagrees with `answer`.
fn sample_of(row: &Row<'_>, subset: String) -> Result<(Sample, Option<String>), DatasetError> {
    let question = row.str("question")?;
    let options: Vec<String> = row.list("options")?.into_iter().filter(|o| o != "N/A").collect();
    if options.len() < 2 || options.len() > 10 {
        return Err(row.error("options", format!("has {} options besides N/A; 2 to 10 are needed", options.len())));
    }
    let answer = if row.has("answer") {
        answer_index(row, "answer", options.len())?
    } else {
        answer_index(row, "answer_index", options.len())?
    };
    let flaw = if row.has("answer") && row.has("answer_index") {
        match answer_index(row, "answer_index", options.len()) {
            Ok(index) if index == answer => None,
            Ok(index) => {
                Some(format!("`answer` is {} but `answer_index` {index} is {}", letter(answer), letter(index)))
            }
            Err(error) => Some(error.message),
        }
    } else {
        None
    };
    let mut fields = sample_fields(question, &options);
    if let Some(cot) = row.opt_str("cot_content")?.filter(|c| !c.trim().is_empty()) {
        fields.push(Field { name: "cot".to_string(), value: cot.to_string() });
    }
    let sample =
        Sample { id: row.id("question_id")?, subset: Some(subset), fields, reference: letter(answer).to_string() };
    Ok((sample, flaw))
}

/// "Question:\n{question}\nOptions:\nA. ..\nB. ..\n" as the reference's `format_cot_example` writes it.
fn question_block(sample: &Sample) -> Result<String, String> {
    let (question, choices) = question_and_choices(sample)?;
    Ok(format!("Question:\n{question}\nOptions:\n{}\n", lettered(&choices)))
}

export_scenario!(MmluPro);

#[cfg(test)]
mod tests;
