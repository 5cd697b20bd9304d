//! The OpenBookQA scenario (Mihaylov et al., 2018): four-choice elementary science questions that need a
//! core science fact plus common knowledge.
//!
//! - Data: allenai/openbookqa from the Hub, config `main` (`id`, `question_stem`, `choices` {`text`,
//!   `label`}, `answerKey`) or `additional` (the same plus `fact1`, the book fact the question was written
//!   from), AI2's original JSON Lines (`question` {`stem`, `choices`}, optional `fact1`), or AI2's TSV
//!   (`Data/Main/test.tsv`: `ID`, `Question Stem`, `Choices` as "(A) … (B) …", `Answer Key`).
//! - `--scenario-arg fact=include` puts each question's `fact1` before it (the "open book" setting; every row
//!   must then have one, as the `additional` config does); by default the question stands alone.
//! - Log-likelihood scoring is the lm-evaluation-harness's `openbookqa` task: the question stem as a text
//!   prompt, each choice's text as the continuation, `accuracy` and per-character `accuracy_norm`.
//!   Generation shows lettered options and reads the stated letter.

use runner_scenario_sdk::choice::{choice_letter, letter};
use runner_scenario_sdk::metadata::{MetadataBuilder, embedded};
use runner_scenario_sdk::multiple_choice::{
    ChoicePrompt, ChoiceScoring, Likelihoods, TSV_COLUMNS, choice_request, keyed_question, lettered_question,
    question_and_choices, sample_fields, score_choices,
};
use runner_scenario_sdk::records::{self, Row};
use runner_scenario_sdk::{
    ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field, Guest, Metadata, Metric, ModelOutput,
    Options, Request, Sample, Score, ScoredSample, ScoringMode, ScoringModes, config, export_scenario,
};

/// Eight questions in the Hub's `additional` layout (with facts), written for runner (not OpenBookQA).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("sample.jsonl");
const EMBEDDED_LABEL: &str = "embedded sample (8 science questions with facts written for runner, not OpenBookQA)";

/// Log-likelihood runs compare the choice texts, as the lm-evaluation-harness does.
const LIKELIHOODS: Likelihoods = Likelihoods::Texts;
/// lm-eval's bare stem for log-likelihood, lettered options for generation; each after its fact when asked.
const PROMPT: ChoicePrompt =
    ChoicePrompt { likelihoods: LIKELIHOODS, likelihood_block: stem_with_fact, lettered_block };

#[derive(Debug, Clone)]
struct Config {
    mode: ScoringMode,
    with_fact: bool,
}

runner_scenario_sdk::config_cell!(
    /// What `configure` decided, for the calls after it.
    static CONFIG: Config = Config { mode: ScoringMode::Generate, with_fact: false }
);

struct OpenBookQa;

impl Guest for OpenBookQa {
    fn describe() -> Metadata {
        MetadataBuilder::new(
            "openbookqa",
            env!("CARGO_PKG_VERSION"),
            "OpenBookQA elementary science questions: accuracy by letter generation, or accuracy and \
             length-normalised accuracy by log-likelihood; --scenario-arg fact=include adds each question's book \
             fact",
        )
        .generation(32, &["\n\n"])
        .metrics(LIKELIHOODS.metrics())
        .hub("allenai/openbookqa", Some("main"), "test")
        .scoring(ScoringModes::GENERATE | ScoringModes::LOGLIKELIHOOD)
        .build()
    }

    fn configure(options: Options) -> Result<(), ConfigError> {
        let args = config::check(&options, &Self::describe(), &["fact"])?;
        let with_fact = match args.get("fact").map(String::as_str) {
            None | Some("omit") => false,
            Some("include") => true,
            Some(other) => return Err(config::error("args: fact", format!("`{other}` is not one of: include, omit"))),
        };
        CONFIG.set(Config { mode: options.scoring_mode, with_fact });
        Ok(())
    }

    fn embedded_dataset() -> Option<EmbeddedDataset> {
        embedded(EMBEDDED_LABEL, "sample.jsonl", EMBEDDED_SAMPLE)
    }

    fn parse_dataset(info: DatasetInfo, input: DatasetInput) -> Result<Vec<Sample>, DatasetError> {
        let with_fact = CONFIG.get().with_fact;
        records::samples(&info, input, |row| sample_of(&row, with_fact))
    }

    fn build_prompt(sample: Sample, examples: Vec<Sample>) -> Result<Request, String> {
        choice_request(&PROMPT, CONFIG.get().mode, "", &sample, &examples)
    }

    fn score(sample: Sample, output: ModelOutput) -> Result<Score, String> {
        let scoring = ChoiceScoring { mode: CONFIG.get().mode, likelihoods: LIKELIHOODS, read_letter: choice_letter };
        score_choices(&sample, &output, &scoring)
    }

    fn aggregate(_samples: Vec<ScoredSample>) -> Result<Vec<Metric>, String> {
        Ok(Vec::new())
    }
}

fn sample_of(row: &Row<'_>, with_fact: bool) -> Result<Sample, DatasetError> {
    let keyed = keyed_question(row, "question_stem")?;
    let mut fields = sample_fields(&keyed.question, &keyed.choices.texts);
    if with_fact {
        let fact = row.str("fact1").map_err(|mut e| {
            e.message.push_str(" (fact=include needs each row's `fact1`: use the `additional` config)");
            e
        })?;
        fields.push(Field { name: "fact".to_string(), value: fact.trim().to_string() });
    }
    let id = if row.get(TSV_COLUMNS.id).is_some() { row.id(TSV_COLUMNS.id)? } else { row.id("id")? };
    Ok(Sample { id, subset: None, fields, reference: letter(keyed.answer).to_string() })
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

fn lettered_block(sample: &Sample) -> Result<String, String> {
    let (question, choices) = question_and_choices(sample)?;
    let fact = fact_of(sample).map(|fact| format!("Fact: {fact}\n")).unwrap_or_default();
    Ok(lettered_question(&format!("{fact}Question: "), question, &choices))
}

export_scenario!(OpenBookQa);

#[cfg(test)]
mod tests;
