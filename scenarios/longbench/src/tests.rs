use runner_scenario_sdk::harness::{Harness, field, metric};
use runner_scenario_sdk::metrics::value_of;
use runner_scenario_sdk::{Prompt, Record, Value};

use super::*;

#[test]
fn the_embedded_sample_parses_into_six_tasks() {
    let samples = Harness::<LongBench>::new().embedded();
    let tasks: Vec<&str> = samples.iter().map(|s| s.subset.as_deref().unwrap()).collect();
    assert_eq!(tasks, ["hotpotqa", "multifieldqa_en", "trec", "passage_count", "passage_retrieval_en", "lcc"]);
    assert_eq!(samples[0].reference, "River Tane");
    assert_eq!(samples[0].id, "runner-longbench-1");
    assert!(field(&samples[2], "all_classes").contains("Other location"));
}

#[test]
fn prompts_use_longbench_templates_and_chat_only_where_it_does() {
    let harness = Harness::<LongBench>::new();
    let samples = harness.embedded();
    let Prompt::Chat(messages) = harness.request(&samples, 0).prompt else { panic!("QA tasks use the chat template") };
    assert!(messages[0].content.starts_with(
        "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\nPassage 1:\n"
    ));
    assert!(
        messages[0].content.ends_with(
            "\n\nQuestion: Which river runs through the town where the painter Elsa Marrow was born?\nAnswer:"
        )
    );
    let Prompt::Text(code) = harness.request(&samples, 5).prompt else { panic!("code tasks are plain text") };
    assert_eq!(
        code,
        "Please complete the code given below. \ndef mean(values):\n    if not values:\n        raise ValueError(\"mean of nothing\")\n    total = sum(values)\nNext line of code:\n"
    );
    assert!(matches!(harness.request(&samples, 2).prompt, Prompt::Text(_)), "trec is plain text");
}

#[test]
fn long_prompts_are_cut_in_the_middle_when_asked() {
    let harness =
        Harness::<LongBench>::configured(|o| o.args = vec![("max_context_chars".into(), "100".into())]).unwrap();
    let samples = harness.embedded();
    let Prompt::Chat(messages) = harness.request(&samples, 0).prompt else { panic!("chat expected") };
    assert_eq!(messages[0].content.chars().count(), 100);
    assert!(messages[0].content.starts_with("Answer the question"));
    assert!(messages[0].content.ends_with("born?\nAnswer:"));
    for bad in ["0", "lots", "-5"] {
        let error = Harness::<LongBench>::configured(|o| o.args = vec![("max_context_chars".into(), bad.into())]);
        assert!(error.err().unwrap().option.contains("max_context_chars"));
    }
}

#[test]
fn gold_answers_score_one_and_wrong_answers_zero_on_every_task() {
    let harness = Harness::<LongBench>::new();
    let samples = harness.embedded();
    let wrong = ["Ashby", "12", "Date", "7", "Paragraph 3", "x = 0"];
    for (sample, wrong) in samples.iter().zip(wrong) {
        let right = harness.score(sample, &sample.reference);
        harness.assert_declared(&right);
        assert_eq!(metric(&right, "score"), 1.0, "{}", sample.id);
        assert!(metric(&harness.score(sample, wrong), "score") < 0.5, "{} scored {wrong}", sample.id);
    }
    // Partial credit where LongBench gives it.
    assert!((metric(&harness.score(&samples[0], "River Tane, Lowford"), "score") - 0.8).abs() < 1e-12);
    assert_eq!(metric(&harness.score(&samples[3], "3 or 4"), "score"), 0.5);
    assert_eq!(metric(&harness.score(&samples[2], "Individual\nQuestion: next"), "score"), 1.0);
}

#[test]
fn aggregate_averages_over_tasks() {
    let harness = Harness::<LongBench>::new();
    let samples = harness.embedded();
    let scored: Vec<_> = samples
        .iter()
        .map(|s| {
            let output = if s.subset.as_deref() == Some("hotpotqa") { s.reference.clone() } else { String::new() };
            (s.clone(), harness.score(s, &output))
        })
        .collect();
    let metrics = harness.aggregate(&scored);
    assert_eq!(value_of(&metrics, "score/hotpotqa"), Some(1.0));
    assert!((value_of(&metrics, "score_macro").unwrap() - 1.0 / 6.0).abs() < 1e-12);
}

#[test]
fn tasks_come_from_the_row_the_config_or_the_file_name() {
    let harness = Harness::<LongBench>::new();
    let row = || Record {
        columns: vec![
            ("input".into(), Value::Text("Q?".into())),
            ("context".into(), Value::Text("C.".into())),
            ("answers".into(), Value::TextList(vec!["a".into()])),
            ("all_classes".into(), Value::Null),
            ("_id".into(), Value::Text("x1".into())),
        ],
    };
    let samples = harness.parse_records("hf:THUDM/LongBench/qasper/test", Some("qasper"), vec![row()]).unwrap();
    assert_eq!(samples[0].subset.as_deref(), Some("qasper"));
    let samples = harness.parse_records("data/hotpotqa_e.jsonl", None, vec![row()]).unwrap();
    assert_eq!(samples[0].subset.as_deref(), Some("hotpotqa"));
    let error = harness.parse_records("data.jsonl", None, vec![row()]).unwrap_err();
    assert_eq!((error.row, error.field.as_deref()), (Some(1), Some("dataset")));
    let mut bad = row();
    bad.columns.push(("dataset".into(), Value::Text("needle".into())));
    assert_eq!(harness.parse_records("x.jsonl", None, vec![bad]).unwrap_err().field.as_deref(), Some("dataset"));
    let mut trec = row();
    trec.columns.push(("dataset".into(), Value::Text("trec".into())));
    assert_eq!(harness.parse_records("x.jsonl", None, vec![trec]).unwrap_err().field.as_deref(), Some("all_classes"));
}

#[test]
fn tasks_are_selected_and_unknown_ones_refused() {
    let harness = Harness::<LongBench>::configured(|o| o.subsets = vec!["lcc".into(), "trec".into()]).unwrap();
    assert_eq!(harness.embedded().len(), 2);
    // parse-dataset returns every task's rows; the host keeps the selected ones.
    assert_eq!(harness.parse_every("sample.jsonl", EMBEDDED_SAMPLE).unwrap().len(), 6);
    let error = Harness::<LongBench>::configured(|o| o.subsets = vec!["needle".into()]).err().unwrap();
    assert_eq!(error.option, "subsets");
    let error = Harness::<LongBench>::configured(|o| o.few_shot = Some(3)).err().unwrap();
    assert_eq!(error.option, "few-shot");
}
