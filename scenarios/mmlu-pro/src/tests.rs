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
    // parse-dataset returns every category's questions; the host keeps the selected ones.
    assert_eq!(harness.parse_every("sample.jsonl", EMBEDDED_SAMPLE).unwrap().len(), 8);
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
        (r#"{"question_id": 2, "options": ["a", "b"], "answer": "A", "category": "law"}"#, "question"),
        (r#"{"question_id": 2, "question": "Q", "answer": "A", "category": "law"}"#, "options"),
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

/// `n` rows of a file written for this test, MMLU-Pro's columns; `answer_index` as `index(row)` gives it.
fn rows_with_index(n: usize, index: impl Fn(usize) -> String) -> String {
    (1..=n)
        .map(|i| {
            format!(
                r#"{{"question_id": {}, "question": "Q{i}", "options": ["w", "x", "y", "z", "N/A"], "answer": "B", "answer_index": {}, "cot_content": "", "category": "law", "src": "test"}}"#,
                100 + i,
                index(i)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_row_whose_answer_index_disagrees_follows_answer_and_is_named() {
    let harness = Harness::<MmluPro>::new();
    // Row 3 says B by letter and D by index; row 5's index points past the options.
    // Two of 250 rows: no more than one in a hundred.
    let data = rows_with_index(250, |i| match i {
        3 => "3".into(),
        5 => "7".into(),
        _ => "1".into(),
    });
    let samples = harness.parse("test.jsonl", data.as_bytes()).unwrap();
    assert_eq!(samples.len(), 250, "no row is lost");
    assert!(samples.iter().all(|s| s.reference == "B"), "every row follows `answer`");
    let warning = flaw_warning("test.jsonl", 3, "103", "`answer` is B but `answer_index` 3 is D");
    assert!(warning.contains("record 3 (question_id 103)") && warning.contains("against `answer`"), "{warning}");
}

#[test]
fn files_that_are_wrong_throughout_are_still_refused() {
    let harness = Harness::<MmluPro>::new();
    // `answer_index` counting from 1 on every row is another layout, not a flawed row.
    let error = harness.parse("test.jsonl", rows_with_index(10, |_| "2".into()).as_bytes()).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("answer_index")));
    assert!(error.message.contains("10 of 10 rows") && error.message.contains("question_id 101"), "{}", error.message);
    // Two flawed rows among three are more than one in a hundred.
    let error = harness.parse("test.jsonl", rows_with_index(3, |i| if i == 1 { "1" } else { "0" }.into()).as_bytes());
    assert_eq!(error.unwrap_err().row, Some(2));
    // A missing column refuses the file at its first row.
    let missing = rows_with_index(3, |_| "1".into()).replace(r#""category": "law", "#, "");
    let error = harness.parse("test.jsonl", missing.as_bytes()).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("category")));
}
