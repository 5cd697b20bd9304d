//! The ARC scenario (AI2 Reasoning Challenge, Clark et al., 2018): grade-school science questions with three
//! to five choices, in two subsets, `easy` (ARC-Easy) and `challenge` (ARC-Challenge).
//!
//! - Data: allenai/ai2_arc from the Hub (`id`, `question`, `choices` {`text`, `label`}, `answerKey`) or AI2's
//!   original JSON Lines (`question` {`stem`, `choices`: [{`text`, `label`}]}). Labels are letters or, in
//!   some rows, digits "1".."5"; both work, and the prompt always shows letters A, B, C...
//! - Subset of a file: the Hub config (`ARC-Easy`, `ARC-Challenge`), else "easy" / "challenge" in the file
//!   name (`ARC-Challenge-Test.jsonl`), else the one subset selected with `--subset`.
//! - Log-likelihood scoring is the lm-evaluation-harness's `arc_easy` / `arc_challenge` task: text prompt
//!   "Question: {question}\nAnswer:", each choice's text as the continuation, `accuracy` from the raw
//!   log-likelihoods and `accuracy_norm` from the log-likelihood per character (the figure the Open LLM
//!   Leaderboard published, 25-shot). Generation shows lettered options and reads the stated letter.

use runner_scenario_sdk::choice::{choice_letter, letter};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::metrics::macro_average;
use runner_scenario_sdk::multiple_choice::{
    ChoicePrompt, ChoiceScoring, Likelihoods, choice_request, keyed_question, lettered_question, question_and_choices,
    sample_fields, score_choices,
};
use runner_scenario_sdk::records::{self, Row};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Guest, Metadata, Metric, ModelOutput,
    Options, Request, Sample, Score, ScoredSample, ScoringMode, ScoringModes, config, export_scenario,
};

/// Eight questions in the Hub's ARC format, written for runner (not taken from ARC).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (8 science questions written for runner, not ARC)";

/// Log-likelihood runs compare the choice texts, as the lm-evaluation-harness does.
const LIKELIHOODS: Likelihoods = Likelihoods::Texts;
/// lm-eval's "Question: ..\nAnswer:" for log-likelihood, lettered options for generation.
const PROMPT: ChoicePrompt = ChoicePrompt { likelihoods: LIKELIHOODS, likelihood_block: question_only, lettered_block };
const SUBSETS: &[(&str, &str, &str)] = &[
    ("easy", "ARC-Easy", "ARC-Easy: questions simple retrieval and co-occurrence methods answer"),
    ("challenge", "ARC-Challenge", "ARC-Challenge: questions both simple baselines got wrong"),
];

#[derive(Debug, Clone)]
struct Config {
    mode: ScoringMode,
    /// The subset of a file that names none, when the user selected exactly one.
    only_subset: Option<&'static str>,
}

runner_scenario_sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static CONFIG: Config = Config { mode: ScoringMode::Generate, only_subset: None }
);

struct Arc;

impl Guest for Arc {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "arc",
            env!("CARGO_PKG_VERSION"),
            "AI2 Reasoning Challenge science questions (ARC-Easy, ARC-Challenge): accuracy by letter generation, or \
             accuracy and length-normalised accuracy by log-likelihood",
        )
        .generation(32, &["\n\n"])
        .metrics(LIKELIHOODS.metrics())
        .subsets(SUBSETS.iter().map(|(name, _, description)| (*name, *description)))
        .hub("allenai/ai2_arc", Some("ARC-Challenge"), "test")
        .scoring(ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        config::check(&options, &Self::describe(), &[])?;
        let only_subset = match options.subsets.as_slice() {
            [only] => subset_named(only),
            _ => None,
        };
        CONFIG.set(Config { mode: options.scoring_mode, only_subset });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "ARC-sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let file_subset = subset_of_file(&info).or(CONFIG.get().only_subset);
        records::samples(&info, input, |row| {
            // A row may name its own subset (the embedded sample mixes both).
            let subset = match row.opt_str("subset")? {
                Some(name) => subset_named(name).ok_or_else(|| {
                    row.error("subset", format!("`{name}` is neither easy nor challenge (ARC-Easy, ARC-Challenge)"))
                })?,
                None => file_subset.ok_or_else(|| {
                    row.error(
                        "subset",
                        format!(
                            "cannot tell whether {} is ARC-Easy or ARC-Challenge: put Easy or Challenge in the file \
                             name, or select the one subset it holds with --subset",
                            info.name
                        ),
                    )
                })?,
            };
            sample_of(&row, subset)
        })
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        choice_request(&PROMPT, CONFIG.get().mode, "", &sample, &examples)
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let scoring = ChoiceScoring { mode: CONFIG.get().mode, likelihoods: LIKELIHOODS, read_letter: choice_letter };
        score_choices(&sample, &output, &scoring)
    }

    fn aggregate(samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(macro_average(&samples, &["accuracy", "accuracy_norm"]))
    }
}

fn subset_named(name: &str) -> Option<&'static str> {
    let name = name.trim();
    SUBSETS.iter().find(|(short, config, _)| name.eq_ignore_ascii_case(short) || name == *config).map(|(s, _, _)| *s)
}

/// The subset a whole file holds: the Hub config, or a name containing "easy" or "challenge".
fn subset_of_file(info: &DatasetInfo) -> Option<&'static str> {
    if let Some(subset) = info.subset.as_deref().and_then(subset_named) {
        return Some(subset);
    }
    let name = info.name.to_ascii_lowercase();
    let named: Vec<&'static str> = SUBSETS.iter().map(|(s, _, _)| *s).filter(|s| name.contains(s)).collect();
    match named.as_slice() {
        [only] => Some(only),
        _ => None,
    }
}

fn sample_of(row: &Row<'_>, subset: &str) -> Result<Sample, DatasetError> {
    let keyed = keyed_question(row, "question")?;
    Ok(Sample {
        id: row.id("id")?,
        subset: Some(subset.to_string()),
        fields: sample_fields(&keyed.question, &keyed.choices.texts),
        reference: letter(keyed.answer).to_string(),
    })
}

/// The log-likelihood prompt of a question, "Question: {question}\nAnswer:", answered by the choice's text.
fn question_only(sample: &Sample) -> Result<String, String> {
    Ok(format!("Question: {}\nAnswer:", question_and_choices(sample)?.0))
}

fn lettered_block(sample: &Sample) -> Result<String, String> {
    let (question, choices) = question_and_choices(sample)?;
    Ok(lettered_question("Question: ", question, &choices))
}

export_scenario!(Arc);

#[cfg(test)]
mod tests;
