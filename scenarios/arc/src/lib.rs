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

use std::cell::RefCell;

use runner_scenario_sdk::choice::{choice_letter, letter};
use runner_scenario_sdk::metrics::{ScoreBuilder, binary, macro_average};
use runner_scenario_sdk::multiple_choice::{
    Choices, check_likelihoods, labeled_choices, lettered, most_likely, most_likely_per_char, nested_question,
    question_and_choices, sample_fields,
};
use runner_scenario_sdk::records::{self, Row};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, GenerationDefaults, Guest, HfDataset,
    Message, Metadata, Metric, ModelOutput, Options, Prompt, Request, Role, Sample, Score, ScoredSample, ScoringModes,
    SubsetInfo, config, export_scenario,
};

/// Eight questions in the Hub's ARC format, written for runner (not taken from ARC).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (8 science questions written for runner, not ARC)";

const INSTRUCTION: &str = "Answer with the letter of the correct option.";
const SUBSETS: &[(&str, &str, &str)] = &[
    ("easy", "ARC-Easy", "ARC-Easy: questions simple retrieval and co-occurrence methods answer"),
    ("challenge", "ARC-Challenge", "ARC-Challenge: questions both simple baselines got wrong"),
];

#[derive(Debug, Clone)]
struct Config {
    mode: ScoringModes,
    subsets: Vec<String>,
}

thread_local! {
    static CONFIG: RefCell<Config> = const { RefCell::new(Config { mode: ScoringModes::GENERATE, subsets: Vec::new() }) };
}

fn config() -> Config {
    CONFIG.with(|c| c.borrow().clone())
}

struct Arc;

impl Guest for Arc {
    fn describe() -> Metadata {
        Metadata {
            name: "arc".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "AI2 Reasoning Challenge science questions (ARC-Easy, ARC-Challenge): accuracy by \
                          letter generation, or accuracy and length-normalised accuracy by log-likelihood"
                .to_string(),
            defaults: GenerationDefaults { max_new_tokens: 32, stop: vec!["\n\n".to_string()], temperature: None },
            metrics: vec![
                binary("accuracy", "1 when the chosen answer is the reference, else 0"),
                binary(
                    "accuracy_norm",
                    "1 when the answer most likely per character is the reference, else 0 (log-likelihood runs)",
                ),
                binary("answered", "1 when a choice letter could be read from the output, else 0 (generation runs)"),
            ],
            subsets: SUBSETS
                .iter()
                .map(|(name, _, description)| SubsetInfo {
                    name: name.to_string(),
                    description: description.to_string(),
                })
                .collect(),
            default_source: Some(HfDataset {
                repo: "allenai/ai2_arc".to_string(),
                config: Some("ARC-Challenge".to_string()),
                split: "test".to_string(),
                revision: None,
            }),
            scoring_modes: ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD,
            default_few_shot: 0,
        }
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        config::check_scoring_mode(&options, ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)?;
        let names: Vec<&str> = SUBSETS.iter().map(|(name, _, _)| *name).collect();
        config::check_subsets(&options.subsets, &names)?;
        config::args(&options, &[])?;
        CONFIG.with(|c| *c.borrow_mut() = Config { mode: options.scoring_mode, subsets: options.subsets });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        Some(EmbeddedDataset {
            label: EMBEDDED_LABEL.to_string(),
            file_name: "ARC-sample.jsonl".to_string(),
            data: EMBEDDED_SAMPLE.to_vec(),
        })
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let config = config();
        let records = records::records(&info, input)?;
        let file_subset = subset_of_file(&info, &config.subsets);
        let mut samples = Vec::new();
        for row in records::rows(&records) {
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
            if !config.subsets.is_empty() && !config.subsets.iter().any(|s| s == subset) {
                continue;
            }
            samples.push(sample_of(&row, subset)?);
        }
        if samples.is_empty() {
            return Err(DatasetError {
                row: None,
                field: None,
                message: format!("{} has no questions in the selected subsets", info.name),
            });
        }
        Ok(samples)
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let (_, choices) = question_and_choices(&sample)?;
        if config().mode.contains(ScoringModes::LOGLIKELIHOOD) {
            let mut text = String::new();
            for example in &examples {
                let (question, choices) = question_and_choices(example)?;
                let gold = choices.get(gold_index(example)?).copied().unwrap_or_default();
                text.push_str(&format!("Question: {question}\nAnswer: {gold}\n\n"));
            }
            text.push_str(&format!("Question: {}\nAnswer:", question_and_choices(&sample)?.0));
            return Ok(Request { prompt: Prompt::Text(text), choices: continuations(&choices) });
        }
        let mut text = format!("{INSTRUCTION}\n\n");
        for example in &examples {
            text.push_str(&format!("{} {}\n\n", lettered_block(example)?, example.reference));
        }
        text.push_str(&lettered_block(&sample)?);
        Ok(Request { prompt: Prompt::Chat(vec![Message { role: Role::User, content: text }]), choices: Vec::new() })
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let (_, choices) = question_and_choices(&sample)?;
        if config().mode.contains(ScoringModes::LOGLIKELIHOOD) {
            check_likelihoods(&output.choices, choices.len()).map_err(|e| format!("sample {}: {e}", sample.id))?;
            let raw = most_likely(&output.choices).map(letter);
            let normalized = most_likely_per_char(&output.choices, &continuations(&choices)).map(letter);
            let gold = sample.reference.chars().next();
            return Ok(ScoreBuilder::new()
                .flag("accuracy", raw.is_some() && raw == gold)
                .flag("accuracy_norm", normalized.is_some() && normalized == gold)
                .extracted(raw.map(String::from))
                .build());
        }
        let chosen = choice_letter(&output.text, choices.len()).map(String::from);
        Ok(ScoreBuilder::new()
            .flag("accuracy", chosen.as_deref() == Some(sample.reference.as_str()))
            .flag("answered", chosen.is_some())
            .extracted(chosen)
            .build())
    }

    fn aggregate(samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(macro_average(&samples, &["accuracy", "accuracy_norm"]))
    }
}

fn subset_named(name: &str) -> Option<&'static str> {
    let name = name.trim();
    SUBSETS.iter().find(|(short, config, _)| name.eq_ignore_ascii_case(short) || name == *config).map(|(s, _, _)| *s)
}

/// The subset a whole file holds: the Hub config, a name containing "easy" or "challenge", or the single
/// selected subset.
fn subset_of_file(info: &DatasetInfo, selected: &[String]) -> Option<&'static str> {
    if let Some(subset) = info.subset.as_deref().and_then(subset_named) {
        return Some(subset);
    }
    let name = info.name.to_ascii_lowercase();
    let named: Vec<&'static str> = SUBSETS.iter().map(|(s, _, _)| *s).filter(|s| name.contains(s)).collect();
    if let [only] = named.as_slice() {
        return Some(only);
    }
    match selected {
        [only] => subset_named(only),
        _ => None,
    }
}

fn sample_of(row: &Row<'_>, subset: &str) -> Result<Sample, DatasetError> {
    let (question, choices): (String, Choices) = match nested_question(row, "question")? {
        Some(nested) => nested,
        None => (row.str("question")?.to_string(), labeled_choices(row, "choices")?),
    };
    let key = row.str("answerKey")?;
    let answer = choices.index_of(key).ok_or_else(|| {
        row.error("answerKey", format!("`{key}` is not one of the choice labels {}", choices.labels.join(", ")))
    })?;
    Ok(Sample {
        id: row.id("id")?,
        subset: Some(subset.to_string()),
        fields: sample_fields(&question, &choices.texts),
        reference: letter(answer).to_string(),
    })
}

fn gold_index(sample: &Sample) -> Result<usize, String> {
    match sample.reference.as_bytes() {
        [c @ b'A'..=b'Z'] => Ok((c - b'A') as usize),
        _ => Err(format!("sample {} has reference {:?}, not a letter", sample.id, sample.reference)),
    }
}

/// " {choice}" for each choice: the continuations whose likelihood is compared.
fn continuations(choices: &[&str]) -> Vec<String> {
    choices.iter().map(|text| format!(" {text}")).collect()
}

fn lettered_block(sample: &Sample) -> Result<String, String> {
    let (question, choices) = question_and_choices(sample)?;
    Ok(format!("Question: {question}\n{}\nAnswer:", lettered(&choices)))
}

export_scenario!(Arc);

#[cfg(test)]
mod tests;
