use runner_scenario_sdk::harness::{Harness, metric};
use runner_scenario_sdk::metrics::value_of;
use runner_scenario_sdk::multiple_choice::question_and_choices;
use runner_scenario_sdk::{Prompt, ScoringMode};

use super::*;

#[test]
fn the_embedded_sample_parses_without_na_options() {
    let samples = Harness::<MmluPro>::new().embedded();
    assert_eq!(samples.len(), 8);
    let references: String = samples.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(references, "CCEDCCCD");
    assert_eq!(question_and_choices(&samples[0]).unwrap().1.len(), 8);
    assert_eq!(question_and_choices(&samples[1]).unwrap().1.len(), 10);
    assert_eq!(samples[0].id, "1");
    assert_eq!(samples[4].subset.as_deref(), Some("physics"));
}

#[test]
fn the_generation_prompt_is_the_reference_chain_of_thought_format() {
    let harness = Harness::<MmluPro>::new();
    let samples = harness.embedded();
    let Prompt::Chat(messages) = harness.request(&samples, 2).prompt else { panic!("chat expected") };
    let text = &messages[0].content;
    assert!(
        text.starts_with("The following are multiple choice questions (with answers) about math. Think step by step")
    );
    assert!(text.contains(
        "Question:\nWhat is the value of 3^4?\nOptions:\nA. 12\nB. 64\nC. 81\nD. 27\nE. 243\nF. 7\nG. 34\nH. 48\n\
         Answer: Let's think step by step. 3^4 = 3 * 3 * 3 * 3 = 9 * 9 = 81. The answer is (C).\n\n"
    ));
    // An example without a worked answer shows only its letter.
    assert!(text.contains("J. 300\nAnswer: The answer is (D).\n\n"));
    assert!(text.ends_with("I. 150\nJ. 100\nAnswer: Let's think step by step."));
    assert_eq!(text.matches("Question:\n").count(), 4);
}

#[test]
fn gold_answers_score_right_and_wrong_answers_wrong_in_both_modes() {
    let harness = Harness::<MmluPro>::new();
    let samples = harness.embedded();
    for sample in &samples {
        let right = harness.score(sample, &format!("Some reasoning. The answer is ({}).", sample.reference));
        harness.assert_declared(&right);
        assert_eq!(metric(&right, "accuracy"), 1.0);
        let score = harness.score(sample, "So the answer is (A).");
        assert_eq!((metric(&score, "accuracy"), metric(&score, "answered")), (0.0, 1.0));
    }
    let score = harness.score(&samples[0], "no idea at all");
    assert_eq!(metric(&score, "answered"), 0.0);
    // Sample 1 has 8 options: "I" is not one of them.
    assert_eq!(metric(&harness.score(&samples[0], "the answer is (I)"), "answered"), 0.0);

    let harness = Harness::<MmluPro>::configured(|o| o.scoring_mode = ScoringMode::Loglikelihood).unwrap();
    for (index, sample) in samples.iter().enumerate() {
        let request = harness.request(&samples, index);
        assert!(matches!(&request.prompt, Prompt::Text(t) if t.ends_with("\nAnswer:")));
        let gold = (sample.reference.as_bytes()[0] - b'A') as usize;
        let mut logprobs = vec![-5.0; request.choices.len()];
        logprobs[gold] = -1.0;
        assert_eq!(metric(&harness.score_choices(sample, &logprobs), "accuracy"), 1.0);
        let next = (gold + 1) % logprobs.len();
        logprobs[next] = 0.0;
        assert_eq!(metric(&harness.score_choices(sample, &logprobs), "accuracy"), 0.0);
    }
}

#[test]
fn categories_are_subsets() {
    let harness = Harness::<MmluPro>::configured(|o| o.subsets = vec!["physics".into()]).unwrap();
    assert_eq!(harness.embedded().len(), 4);
    assert!(Harness::<MmluPro>::configured(|o| o.subsets = vec!["computer_science".into()]).is_ok());
    let error = Harness::<MmluPro>::configured(|o| o.subsets = vec!["cooking".into()]).err().unwrap();
    assert_eq!(error.option, "subsets");
    let harness = Harness::<MmluPro>::new();
    let samples = harness.embedded();
    let scored: Vec<_> = samples
        .iter()
        .map(|s| {
            let output =
                if s.subset.as_deref() == Some("math") { format!("answer is {}", s.reference) } else { "?".into() };
            (s.clone(), harness.score(s, &output))
        })
        .collect();
    let metrics = harness.aggregate(&scored);
    assert_eq!(value_of(&metrics, "accuracy/math"), Some(1.0));
    assert_eq!(value_of(&metrics, "accuracy_macro"), Some(0.5));
}

#[test]
fn bad_rows_are_located() {
    let harness = Harness::<MmluPro>::new();
    let good = r#"{"question_id": 1, "question": "Q", "options": ["a", "b", "c"], "answer": "A", "answer_index": 0, "cot_content": "", "category": "law"}"#;
    let cases = [
        (
            r#"{"question_id": 2, "question": "Q", "options": ["a", "b"], "answer": "A", "answer_index": 0, "category": "cooking"}"#,
            "category",
        ),
        (r#"{"question_id": 2, "question": "Q", "options": ["a", "b"], "answer": "C", "category": "law"}"#, "answer"),
        (
            r#"{"question_id": 2, "question": "Q", "options": ["a", "b"], "answer": "A", "answer_index": 1, "category": "law"}"#,
            "answer_index",
        ),
        (
            r#"{"question_id": 2, "question": "Q", "options": ["a", "N/A"], "answer": "A", "category": "law"}"#,
            "options",
        ),
    ];
    for (bad, field) in cases {
        let error = harness.parse("test.jsonl", format!("{good}\n{bad}\n").as_bytes()).unwrap_err();
        assert_eq!((error.row, error.field.as_deref()), (Some(2), Some(field)), "{bad}");
    }
}
