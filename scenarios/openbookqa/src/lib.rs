//! The OpenBookQA scenario (Mihaylov et al., 2018): four-choice elementary science questions that need a
//! core science fact plus common knowledge.
//!
//! - Data: allenai/openbookqa from the Hub, config `main` (`id`, `question_stem`, `choices` {`text`,
//!   `label`}, `answerKey`) or `additional` (the same plus `fact1`, the book fact the question was written
//!   from), or AI2's original JSON Lines (`question` {`stem`, `choices`}, optional `fact1`).
//! - `--scenario-arg fact=include` puts each question's `fact1` before it (the "open book" setting; every row
//!   must then have one, as the `additional` config does); by default the question stands alone.
//! - Log-likelihood scoring is the lm-evaluation-harness's `openbookqa` task: the question stem as a text
//!   prompt, each choice's text as the continuation, `accuracy` and per-character `accuracy_norm`.
//!   Generation shows lettered options and reads the stated letter.

use std::cell::RefCell;

use runner_scenario_sdk::choice::{choice_letter, letter};
use runner_scenario_sdk::metrics::{ScoreBuilder, binary};
use runner_scenario_sdk::multiple_choice::{
    Choices, check_likelihoods, labeled_choices, lettered, most_likely, most_likely_per_char, nested_question,
    question_and_choices, sample_fields,
};
use runner_scenario_sdk::records::{self, Row};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, GenerationDefaults, Guest, HfDataset,
    Message, Metadata, Metric, ModelOutput, Options, Prompt, Request, Role, Sample, Score, ScoredSample, ScoringModes,
    config, export_scenario,
};

/// Eight questions in the Hub's `additional` layout (with facts), written for runner (not OpenBookQA).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (8 science questions with facts written for runner, not OpenBookQA)";

const INSTRUCTION: &str = "Answer with the letter of the correct option.";

#[derive(Debug, Clone)]
struct Config {
    mode: ScoringModes,
    with_fact: bool,
}

thread_local! {
    static CONFIG: RefCell<Config> = const { RefCell::new(Config { mode: ScoringModes::GENERATE, with_fact: false }) };
}

fn config() -> Config {
    CONFIG.with(|c| c.borrow().clone())
}

struct OpenBookQa;

impl Guest for OpenBookQa {
    fn describe() -> Metadata {
        Metadata {
            name: "openbookqa".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "OpenBookQA elementary science questions: accuracy by letter generation, or accuracy \
                          and length-normalised accuracy by log-likelihood; --scenario-arg fact=include adds \
                          each question's book fact"
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
            subsets: Vec::new(),
            default_source: Some(HfDataset {
                repo: "allenai/openbookqa".to_string(),
                config: Some("main".to_string()),
                split: "test".to_string(),
                revision: None,
            }),
            scoring_modes: ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD,
            default_few_shot: 0,
        }
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        config::check_scoring_mode(&options, ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)?;
        config::check_subsets(&options.subsets, &[])?;
        let args = config::args(&options, &["fact"])?;
        let with_fact = match args.get("fact").map(String::as_str) {
            None | Some("omit") => false,
            Some("include") => true,
            Some(other) => return Err(config::error("args: fact", format!("`{other}` is not one of: include, omit"))),
        };
        CONFIG.with(|c| *c.borrow_mut() = Config { mode: options.scoring_mode, with_fact });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        Some(EmbeddedDataset {
            label: EMBEDDED_LABEL.to_string(),
            file_name: "sample.jsonl".to_string(),
            data: EMBEDDED_SAMPLE.to_vec(),
        })
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let with_fact = config().with_fact;
        let records = records::records(&info, input)?;
        records::rows(&records).map(|row| sample_of(&row, with_fact)).collect()
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        let (_, choices) = question_and_choices(&sample)?;
        if config().mode.contains(ScoringModes::LOGLIKELIHOOD) {
            let mut text = String::new();
            for example in &examples {
                let (_, example_choices) = question_and_choices(example)?;
                let gold = example_choices.get(gold_index(example)?).copied().unwrap_or_default();
                text.push_str(&format!("{} {gold}\n\n", stem_with_fact(example)?));
            }
            text.push_str(&stem_with_fact(&sample)?);
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

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

fn sample_of(row: &Row<'_>, with_fact: bool) -> Result<Sample, DatasetError> {
    let (question, choices): (String, Choices) = match nested_question(row, "question")? {
        Some(nested) => nested,
        None => (row.str("question_stem")?.to_string(), labeled_choices(row, "choices")?),
    };
    let key = row.str("answerKey")?;
    let answer = choices.index_of(key).ok_or_else(|| {
        row.error("answerKey", format!("`{key}` is not one of the choice labels {}", choices.labels.join(", ")))
    })?;
    let mut fields = sample_fields(&question, &choices.texts);
    if with_fact {
        let fact = row.str("fact1").map_err(|mut e| {
            e.message.push_str(" (fact=include needs each row's `fact1`: use the `additional` config)");
            e
        })?;
        fields.push(Field { name: "fact".to_string(), value: fact.trim().to_string() });
    }
    Ok(Sample { id: row.id("id")?, subset: None, fields, reference: letter(answer).to_string() })
}

fn gold_index(sample: &Sample) -> Result<usize, String> {
    match sample.reference.as_bytes() {
        [c @ b'A'..=b'Z'] => Ok((c - b'A') as usize),
        _ => Err(format!("sample {} has reference {:?}, not a letter", sample.id, sample.reference)),
    }
}

fn fact_of(sample: &Sample) -> Option<&str> {
    sample.fields.iter().find(|f| f.name == "fact").map(|f| f.value.as_str())
}

/// The log-likelihood prompt: the stem, after its fact when the run includes facts.
fn stem_with_fact(sample: &Sample) -> Result<String, String> {
    let (question, _) = question_and_choices(sample)?;
    Ok(match fact_of(sample) {
        Some(fact) => format!("{fact}\n{question}"),
        None => question.to_string(),
    })
}

/// " {choice}" for each choice: the continuations whose likelihood is compared.
fn continuations(choices: &[&str]) -> Vec<String> {
    choices.iter().map(|text| format!(" {text}")).collect()
}

fn lettered_block(sample: &Sample) -> Result<String, String> {
    let (question, choices) = question_and_choices(sample)?;
    let fact = fact_of(sample).map(|fact| format!("Fact: {fact}\n")).unwrap_or_default();
    Ok(format!("{fact}Question: {question}\n{}\nAnswer:", lettered(&choices)))
}

export_scenario!(OpenBookQa);

#[cfg(test)]
mod tests;
