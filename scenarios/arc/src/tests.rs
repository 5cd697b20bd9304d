use runner_scenario_sdk::harness::{Harness, field, metric};
use runner_scenario_sdk::metrics::value_of;
use runner_scenario_sdk::{Prompt, Record, ScoringMode, Value};

use super::*;

fn loglikelihood() -> Harness<Arc> {
    Harness::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap()
}

#[test]
fn the_embedded_sample_parses_with_numeric_labels_as_letters() {
    let samples = Harness::<Arc>::new().embedded();
    assert_eq!(samples.len(), 8);
    let references: String = samples.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(references, "CBACBBCA");
    // Row 4 labels its choices 1-4 and answers "3".
    assert_eq!((samples[3].reference.as_str(), field(&samples[3], "C")), ("C", "a balance"));
    assert_eq!(samples.iter().filter(|s| s.subset.as_deref() == Some("challenge")).count(), 4);
    assert_eq!(field(&samples[7], "E"), "It is hollow.");
}

#[test]
fn prompts_follow_the_harness_for_loglikelihood_and_show_letters_for_generation() {
    let harness = Harness::<Arc>::configured(|o| {
        o.scoring_mode = ScoringMode::Loglikelihood;
        o.few_shot = Some(1);
    })
    .unwrap();
    let samples = harness.embedded();
    let request = harness.request(&samples, 1);
    let Prompt::Text(text) = &request.prompt else { panic!("text prompt expected") };
    assert_eq!(
        text,
        "Question: Which of these is a source of light?\nAnswer: a candle flame\n\n\
         Question: What do plants need from the air to make food?\nAnswer:"
    );
    assert_eq!(request.choices, [" oxygen", " carbon dioxide", " nitrogen", " helium"]);
    let harness = Harness::<Arc>::new();
    let Prompt::Chat(messages) = harness.request(&samples, 3).prompt else { panic!("chat prompt expected") };
    assert!(
        messages[0].content.ends_with("A. a ruler\nB. a thermometer\nC. a balance\nD. a magnifying glass\nAnswer:")
    );
}

#[test]
fn gold_answers_score_right_and_wrong_answers_wrong_in_both_modes() {
    let harness = Harness::<Arc>::new();
    let samples = harness.embedded();
    for sample in &samples {
        let right = harness.score(sample, &format!("Answer: {}", sample.reference));
        harness.assert_declared(&right);
        assert_eq!(metric(&right, "accuracy"), 1.0);
        let wrong = if sample.reference == "A" { "B" } else { "A" };
        assert_eq!(metric(&harness.score(sample, wrong), "accuracy"), 0.0);
    }
    let harness = loglikelihood();
    for sample in &samples {
        let choices = harness.request(std::slice::from_ref(sample), 0).choices;
        let gold = (sample.reference.as_bytes()[0] - b'A') as usize;
        let mut logprobs = vec![-9.0; choices.len()];
        logprobs[gold] = -1.0;
        let score = harness.score_choices(sample, &logprobs);
        harness.assert_declared(&score);
        assert_eq!((metric(&score, "accuracy"), metric(&score, "accuracy_norm")), (1.0, 1.0), "{}", sample.id);
        logprobs[(gold + 1) % choices.len()] = -0.5;
        assert_eq!(metric(&harness.score_choices(sample, &logprobs), "accuracy"), 0.0);
    }
}

#[test]
fn length_normalisation_can_change_the_choice() {
    let harness = loglikelihood();
    let samples = harness.embedded();
    // Sample 6: " Metal conducts heat away from the hand faster." (gold, long) vs " Metal is always colder than wood."
    let sample = &samples[5];
    let score = harness.score_choices(sample, &[-20.0, -24.0, -30.0, -30.0]);
    assert_eq!((metric(&score, "accuracy"), metric(&score, "accuracy_norm")), (0.0, 1.0));
}

#[test]
fn ai2_original_rows_and_hub_parquet_rows_parse() {
    let harness = Harness::<Arc>::new();
    let original = br#"{"id": "Mercury_1", "question": {"stem": "Which is a mammal?", "choices": [{"text": "shark", "label": "A"}, {"text": "whale", "label": "B"}]}, "answerKey": "B"}"#;
    let samples = harness.parse("ARC-Challenge-Test.jsonl", original).unwrap();
    assert_eq!(
        (samples[0].id.as_str(), samples[0].subset.as_deref(), samples[0].reference.as_str()),
        ("Mercury_1", Some("challenge"), "B")
    );
    let row = Record {
        columns: vec![
            ("id".into(), Value::Text("NYSEDREGENTS_2015_4_1".into())),
            ("question".into(), Value::Text("Which is a liquid?".into())),
            (
                "choices".into(),
                Value::Json(r#"{"text": ["ice", "milk", "steam", "sand"], "label": ["1", "2", "3", "4"]}"#.into()),
            ),
            ("answerKey".into(), Value::Text("2".into())),
        ],
    };
    let samples = harness.parse_records("hf:allenai/ai2_arc/ARC-Easy/test", Some("ARC-Easy"), vec![row]).unwrap();
    assert_eq!((samples[0].subset.as_deref(), samples[0].reference.as_str()), (Some("easy"), "B"));
}

#[test]
fn bad_rows_and_unknown_subsets_are_refused() {
    let harness = Harness::<Arc>::new();
    let error = harness
        .parse(
            "questions.jsonl",
            br#"{"question": "Q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}"#,
        )
        .unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("subset")));
    let bad_key = br#"{"question": "Q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}"#;
    let error = harness.parse("ARC-Easy-Dev.jsonl", bad_key).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("answerKey"));
    let only_challenge = Harness::<Arc>::configured(|o| o.subsets = vec!["challenge".into()]).unwrap();
    assert_eq!(only_challenge.embedded().len(), 4);
    // The host keeps the selected subset: parse-dataset returns both, each question with its own.
    let every = only_challenge.parse_every("ARC-sample.jsonl", EMBEDDED_SAMPLE).unwrap();
    assert_eq!(every.iter().filter(|s| s.subset.as_deref() == Some("easy")).count(), 4);
    assert_eq!(every.len(), 8);
    // With one subset selected, a file that does not say which it is counts as that subset.
    let plain = br#"{"question": "Q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}"#;
    assert_eq!(only_challenge.parse("questions.jsonl", plain).unwrap()[0].subset.as_deref(), Some("challenge"));
    let error = Harness::<Arc>::configured(|o| o.subsets = vec!["hard".into()]).err().unwrap();
    assert_eq!(error.option, "subsets");
}

#[test]
fn aggregate_reports_each_subset() {
    let harness = Harness::<Arc>::new();
    let samples = harness.embedded();
    let scored: Vec<_> = samples
        .iter()
        .map(|s| {
            let output = if s.subset.as_deref() == Some("easy") { s.reference.clone() } else { String::new() };
            (s.clone(), harness.score(s, &output))
        })
        .collect();
    let metrics = harness.aggregate(&scored);
    assert_eq!(value_of(&metrics, "accuracy/easy"), Some(1.0));
    assert_eq!(value_of(&metrics, "accuracy/challenge"), Some(0.0));
    assert_eq!(value_of(&metrics, "accuracy_macro"), Some(0.5));
}
