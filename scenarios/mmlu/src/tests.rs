use runner_scenario_sdk::harness::{Harness, field, metric};
use runner_scenario_sdk::metrics::value_of;
use runner_scenario_sdk::{Prompt, Record, ScoringMode, Value};

use super::*;

fn loglikelihood() -> Harness<Mmlu> {
    Harness::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap()
}

fn record(columns: Vec<(&str, Value)>) -> Record {
    Record { columns: columns.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
}

fn choices(items: &[&str]) -> Value {
    Value::TextList(items.iter().map(|s| s.to_string()).collect())
}

#[test]
fn the_embedded_sample_parses_into_three_subjects() {
    let harness = Harness::<Mmlu>::new();
    let samples = harness.embedded();
    assert_eq!(samples.len(), 12);
    assert_eq!(samples[0].subset.as_deref(), Some("elementary_mathematics"));
    assert_eq!(samples[0].reference, "B");
    assert_eq!(field(&samples[0], "D"), "48");
    let references: String = samples.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(references, "BCCADBBADBCA");
}

#[test]
fn the_prompt_is_the_original_five_shot_format() {
    let harness = loglikelihood();
    let samples = harness.embedded();
    let request = harness.request(&samples, 4);
    let Prompt::Text(text) = &request.prompt else { panic!("log-likelihood prompts are text") };
    assert!(text.starts_with("The following are multiple choice questions (with answers) about astronomy.\n\n"));
    // The three other astronomy questions are the examples (the embedded sample has four per subject).
    assert_eq!(text.matches("\nAnswer:").count(), 4);
    assert!(
        text.contains("A. Andromeda\nB. The Milky Way\nC. Triangulum\nD. The Large Magellanic Cloud\nAnswer: B\n\n")
    );
    assert!(text.ends_with("Which planet is closest to the Sun?\nA. Venus\nB. Earth\nC. Mars\nD. Mercury\nAnswer:"));
    assert_eq!(request.choices, [" A", " B", " C", " D"]);
    let zero_shot = Harness::<Mmlu>::configured(|o| o.few_shot = Some(0)).unwrap();
    let Prompt::Chat(messages) = zero_shot.request(&samples, 4).prompt else { panic!("generation prompts are chat") };
    assert_eq!(messages.len(), 1);
    assert!(messages[0].content.starts_with(runner_scenario_sdk::multiple_choice::LETTER_INSTRUCTION));
    assert_eq!(messages[0].content.matches("Answer:").count(), 1);
}

#[test]
fn gold_answers_score_right_and_wrong_answers_wrong_in_both_modes() {
    let harness = Harness::<Mmlu>::new();
    let samples = harness.embedded();
    for sample in &samples {
        let right = harness.score(sample, &format!("The answer is {}.", sample.reference));
        harness.assert_declared(&right);
        assert_eq!(metric(&right, "accuracy"), 1.0, "{}", sample.id);
        let wrong = if sample.reference == "A" { "B" } else { "A" };
        let score = harness.score(sample, &format!("{wrong}. that one"));
        assert_eq!((metric(&score, "accuracy"), metric(&score, "answered")), (0.0, 1.0));
    }
    let score = harness.score(&samples[0], "I do not know");
    assert_eq!((metric(&score, "accuracy"), metric(&score, "answered")), (0.0, 0.0));

    let harness = loglikelihood();
    for sample in &samples {
        let gold = (sample.reference.as_bytes()[0] - b'A') as usize;
        let mut logprobs = vec![-3.0; 4];
        logprobs[gold] = -0.5;
        let right = harness.score_choices(sample, &logprobs);
        assert_eq!(metric(&right, "accuracy"), 1.0);
        assert_eq!(right.extracted.as_deref(), Some(sample.reference.as_str()));
        logprobs[(gold + 1) % 4] = -0.1;
        assert_eq!(metric(&harness.score_choices(sample, &logprobs), "accuracy"), 0.0);
    }
}

#[test]
fn aggregate_macro_averages_over_subjects() {
    let harness = Harness::<Mmlu>::new();
    let samples = harness.embedded();
    // Right on all of elementary mathematics, on none of the rest.
    let scored: Vec<_> = samples
        .iter()
        .map(|s| {
            let output =
                if s.subset.as_deref() == Some("elementary_mathematics") { s.reference.clone() } else { "?".into() };
            (s.clone(), harness.score(s, &output))
        })
        .collect();
    let metrics = harness.aggregate(&scored);
    assert_eq!(value_of(&metrics, "accuracy/elementary_mathematics"), Some(1.0));
    assert_eq!(value_of(&metrics, "accuracy/astronomy"), Some(0.0));
    assert!((value_of(&metrics, "accuracy_macro").unwrap() - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn real_format_rows_parse_from_every_layout() {
    let harness = Harness::<Mmlu>::new();
    // cais/mmlu as Parquet rows: subject column, choices list, integer answer.
    let rows = vec![record(vec![
        ("question", Value::Text("Q?".into())),
        ("subject", Value::Text("virology".into())),
        ("choices", choices(&["w", "x", "y", "z"])),
        ("answer", Value::Integer(3)),
    ])];
    let samples = harness.parse_records("test-00000-of-00001.parquet", None, rows).unwrap();
    assert_eq!((samples[0].subset.as_deref(), samples[0].reference.as_str()), (Some("virology"), "D"));
    // A per-subject file without a subject column, JSON Lines, letter answers.
    let data = b"{\"question\": \"Q?\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"answer\": \"C\"}\n";
    let samples = harness.parse("anatomy_test.jsonl", data).unwrap();
    assert_eq!((samples[0].subset.as_deref(), samples[0].reference.as_str()), (Some("anatomy"), "C"));
    let error = harness.parse("questions.jsonl", data).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("subject")));
}

#[test]
fn bad_rows_are_located() {
    let harness = Harness::<Mmlu>::new();
    let good =
        "{\"question\": \"Q?\", \"subject\": \"anatomy\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"answer\": 0}";
    let cases = [
        ("{\"subject\": \"anatomy\", \"choices\": [\"a\", \"b\"], \"answer\": 0}", "question"),
        ("{\"question\": \"Q?\", \"subject\": \"cooking\", \"choices\": [\"a\", \"b\"], \"answer\": 0}", "subject"),
        ("{\"question\": \"Q?\", \"subject\": \"anatomy\", \"choices\": [\"a\", \"b\"], \"answer\": 2}", "answer"),
        ("{\"question\": \"Q?\", \"subject\": \"anatomy\", \"choices\": \"a\", \"answer\": 0}", "choices"),
    ];
    for (bad, field) in cases {
        let data = format!("{good}\n{bad}\n");
        let error = harness.parse("test.jsonl", data.as_bytes()).unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(2), Some(field)), "{bad}: {}", error.message);
    }
}

#[test]
fn subjects_are_selected_and_unknown_ones_refused() {
    let harness = Harness::<Mmlu>::configured(|o| o.subsets = vec!["astronomy".into()]).unwrap();
    let samples = harness.embedded();
    assert_eq!(samples.len(), 4);
    assert!(samples.iter().all(|s| s.subset.as_deref() == Some("astronomy")));
    let error = Harness::<Mmlu>::configured(|o| o.subsets = vec!["cooking".into()]).err().unwrap();
    assert_eq!(error.option, "subsets");
    let error = Harness::<Mmlu>::configured(|o| o.args = vec![("variant".into(), "pro".into())]).err().unwrap();
    assert!(error.option.contains("variant"), "{error:?}");
}

#[test]
fn redux_keeps_the_rows_its_annotators_found_sound() {
    let redux_row = |error_type: &str, answer: i64| {
        record(vec![
            ("question", Value::Text("Q?".into())),
            ("choices", choices(&["a", "b", "c", "d"])),
            ("answer", Value::Integer(answer)),
            ("error_type", Value::Text(error_type.into())),
            ("source", Value::Null),
        ])
    };
    let rows = || vec![redux_row("ok", 0), redux_row("wrong_groundtruth", 1), redux_row("no_correct_answer", 2)];
    let redux = Harness::<Mmlu>::configured(|o| o.args = vec![("variant".into(), "redux".into())]).unwrap();
    let samples =
        redux.parse_records("hf:edinburgh-dawg/mmlu-redux-2.0/anatomy/test", Some("anatomy"), rows()).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!((samples[0].subset.as_deref(), samples[0].reference.as_str()), (Some("anatomy"), "A"));
    let all = Harness::<Mmlu>::configured(|o| {
        o.args = vec![("variant".into(), "redux".into()), ("redux_rows".into(), "all".into())]
    })
    .unwrap();
    assert_eq!(all.parse_records("anatomy.parquet", None, rows()).unwrap().len(), 3);
    drop(redux);
    let mut missing = rows();
    missing[1].columns.retain(|(name, _)| name != "error_type");
    // Keeping every row still needs each row's error_type.
    let error = all.parse_records("anatomy.parquet", None, missing).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(2), Some("error_type")));
    // A file whose every row is flagged leaves nothing to ask, and says why.
    let redux = Harness::<Mmlu>::configured(|o| o.args = vec![("variant".into(), "redux".into())]).unwrap();
    let error = redux.parse_records("anatomy.parquet", None, vec![redux_row("bad_question_clarity", 0)]).unwrap_err();
    assert!(error.field.as_deref() == Some("error_type") && error.message.contains("redux_rows=all"), "{error:?}");
}
