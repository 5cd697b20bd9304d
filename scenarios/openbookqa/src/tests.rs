use runner_scenario_sdk::harness::{Harness, field, metric};
use runner_scenario_sdk::{Prompt, ScoringMode};

use super::*;

fn with_fact() -> Harness<OpenBookQa> {
    Harness::configured(|o| o.args = vec![("fact".into(), "include".into())]).unwrap()
}

#[test]
fn the_embedded_sample_parses() {
    let samples = Harness::<OpenBookQa>::new().embedded();
    assert_eq!(samples.len(), 8);
    let references: String = samples.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(references, "BBABCACB");
    assert!(samples[0].fields.iter().all(|f| f.name != "fact"), "facts only when asked for");
    assert_eq!(field(&with_fact().embedded()[0], "fact"), "transparent materials let light pass through");
}

#[test]
fn prompts_in_both_modes_with_and_without_the_fact() {
    let harness = Harness::<OpenBookQa>::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap();
    let samples = harness.embedded();
    let request = harness.request(&samples, 6);
    assert!(matches!(&request.prompt, Prompt::Text(text) if text == "Sound travels fastest through"));
    assert_eq!(request.choices, [" empty space", " air", " a steel rail", " a vacuum jar"]);
    let open_book = Harness::<OpenBookQa>::configured(|o| {
        o.scoring_mode = ScoringMode::Loglikelihood;
        o.args = vec![("fact".into(), "include".into())];
        o.few_shot = Some(1);
    })
    .unwrap();
    let samples = open_book.embedded();
    assert_eq!(
        open_book.prompt(&samples, 6),
        "transparent materials let light pass through\nWhich of these would let the most light pass through? a clear glass pane\n\n\
         sound travels faster through solids than through gases\nSound travels fastest through"
    );
    let chat = with_fact();
    let Prompt::Chat(messages) = chat.request(&chat.embedded(), 7).prompt else { panic!("chat expected") };
    assert!(
        messages[0]
            .content
            .contains("Fact: magnets attract iron\nQuestion: Which object would a magnet pick up?\nA. a rubber band")
    );
}

#[test]
fn gold_answers_score_right_and_wrong_answers_wrong_in_both_modes() {
    let harness = Harness::<OpenBookQa>::new();
    let samples = harness.embedded();
    for sample in &samples {
        let right = harness.score(sample, &format!("{}.", sample.reference));
        harness.assert_declared(&right);
        assert_eq!(metric(&right, "accuracy"), 1.0);
        let wrong = if sample.reference == "D" { "C" } else { "D" };
        assert_eq!(metric(&harness.score(sample, &format!("The answer is {wrong}")), "accuracy"), 0.0);
    }
    let harness = Harness::<OpenBookQa>::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap();
    for sample in &samples {
        let gold = (sample.reference.as_bytes()[0] - b'A') as usize;
        let mut logprobs = vec![-12.0; 4];
        logprobs[gold] = -2.0;
        let score = harness.score_choices(sample, &logprobs);
        harness.assert_declared(&score);
        assert_eq!((metric(&score, "accuracy"), metric(&score, "accuracy_norm")), (1.0, 1.0));
        logprobs[(gold + 1) % 4] = -1.0;
        assert_eq!(metric(&harness.score_choices(sample, &logprobs), "accuracy"), 0.0);
    }
}

/// AI2's tab-separated release, in its own layout (two rows written for runner, not OpenBookQA's).
#[test]
fn ai2_tsv_layout() {
    let tsv = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n\
               9-1\tFog forms most often over:\t(A) a marsh (B) a desert (C) a dune (D) a mesa\tFog forms most often over: (A) a marsh (B) a desert (C) a dune (D) a mesa\tA\n\
               9-2\tIce (frozen water) floats because it is\t(A) heavy (B) less dense than water (C) hot (D) blue\tx\tB\n";
    let harness = Harness::<OpenBookQa>::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap();
    let samples = harness.parse("test.tsv", tsv.as_bytes()).unwrap();
    let ids: Vec<(&str, &str)> = samples.iter().map(|s| (s.id.as_str(), s.reference.as_str())).collect();
    assert_eq!(ids, [("9-1", "A"), ("9-2", "B")]);
    let request = harness.request(&samples, 1);
    assert!(matches!(&request.prompt, Prompt::Text(text) if text == "Ice (frozen water) floats because it is"));
    assert_eq!(request.choices, [" heavy", " less dense than water", " hot", " blue"]);
    let bad = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n9-3\tQ\ta, b\tx\tA\n";
    let error = harness.parse("test.tsv", bad.as_bytes()).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("Choices")), "{error:?}");
    let bad_key = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n9-4\tQ\t(A) a (B) b\tx\tE\n";
    let error = harness.parse("test.tsv", bad_key.as_bytes()).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("Answer Key"), "{error:?}");
}

#[test]
fn original_layout_and_bad_rows() {
    let harness = Harness::<OpenBookQa>::new();
    let original = br#"{"id": "7-980", "question": {"stem": "The sun is responsible for", "choices": [{"text": "puppies learning new tricks", "label": "A"}, {"text": "plants sprouting, blooming and wilting", "label": "B"}]}, "fact1": "the sun is the source of energy for physical cycles on Earth", "answerKey": "B"}"#;
    let samples = harness.parse("test_complete.jsonl", original).unwrap();
    assert_eq!((samples[0].id.as_str(), samples[0].reference.as_str()), ("7-980", "B"));
    let main_row =
        br#"{"id": "1", "question_stem": "Q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}"#;
    let error = with_fact().parse("main.jsonl", main_row).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("fact1")));
    let no_stem = br#"{"id": "1", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}"#;
    assert_eq!(harness.parse("x.jsonl", no_stem).unwrap_err().field.as_deref(), Some("question_stem"));
    let error = Harness::<OpenBookQa>::configured(|o| o.args = vec![("fact".into(), "yes".into())]).err().unwrap();
    assert!(error.option.contains("fact"));
    assert_eq!(Harness::<OpenBookQa>::configured(|o| o.subsets = vec!["main".into()]).err().unwrap().option, "subsets");
}
