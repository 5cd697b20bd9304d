//! The scenario host against real components built from scenarios/ (gsm8k and the faulty fixture):
//! the WIT calls, dataset errors, fault containment (traps, timeouts, the memory cap) and the sandbox.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner::prompt::{Prompt, Role};
use runner::scenario::{Field, Sample, Scenario, ScenarioError, ScenarioLimits};

fn load(path: &str) -> Scenario {
    Scenario::load(Path::new(path), ScenarioLimits::default()).expect("load the component")
}

fn faulty(limits: ScenarioLimits) -> Scenario {
    Scenario::load(Path::new(scenario_artifacts::FAULTY), limits).expect("load the faulty fixture")
}

fn command(command: &str) -> Sample {
    Sample {
        id: command.to_string(),
        fields: vec![Field { name: "command".to_string(), value: command.to_string() }],
        reference: String::new(),
    }
}

fn assert_works(scenario: &mut Scenario) {
    assert_eq!(scenario.build_prompt(&command("hello")).unwrap(), Prompt::Text("echo hello".to_string()));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn gsm8k_describes_itself() {
    let scenario = load(scenario_artifacts::GSM8K);
    let metadata = scenario.metadata();
    assert_eq!(metadata.name, "gsm8k");
    assert!(metadata.defaults.max_new_tokens >= 128);
    assert!(!metadata.defaults.stop.is_empty());
    let accuracy = metadata.metrics.iter().find(|m| m.name == "accuracy").expect("an accuracy metric");
    assert!(accuracy.higher_is_better);
    let bytes = std::fs::read(scenario_artifacts::GSM8K).unwrap();
    assert_eq!(scenario.hash(), format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(scenario.path(), Path::new(scenario_artifacts::GSM8K));
}

#[test]
fn gsm8k_embedded_dataset_parses_prompts_and_scores() {
    let mut scenario = load(scenario_artifacts::GSM8K);
    let embedded = scenario.embedded_dataset().unwrap().expect("gsm8k carries a sample");
    assert!(embedded.label.contains("not GSM8K"), "{}", embedded.label);
    let samples = scenario.parse_dataset(&embedded.file_name, &embedded.data).unwrap();
    assert_eq!(samples.len(), 10);
    assert_eq!(samples[0].reference, "25");
    assert_eq!(samples[9].reference, "-11");

    let Prompt::Chat(messages) = scenario.build_prompt(&samples[0]).unwrap() else { panic!("expected a chat prompt") };
    assert_eq!(messages.last().unwrap().role, Role::User);
    assert!(messages.last().unwrap().content.contains(samples[0].field("question").unwrap()));

    let right = scenario.score(&samples[0], "6 * 14 = 84, 84 - 59 = 25. The answer is 25.").unwrap();
    assert_eq!(right.metric("accuracy"), Some(1.0));
    assert_eq!(right.extracted.as_deref(), Some("25"));
    let wrong = scenario.score(&samples[0], "The answer is 26.").unwrap();
    assert_eq!(wrong.metric("accuracy"), Some(0.0));
    assert_eq!(wrong.metric("answered"), Some(1.0));
}

#[test]
fn gsm8k_dataset_errors_name_the_row_and_field() {
    let mut scenario = load(scenario_artifacts::GSM8K);
    let good = r#"{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}"#;
    let data = format!("{good}\n{good}\n\n{{\"question\": \"Q?\", \"answer\": \"no marker here\"}}\n");
    let error = scenario.parse_dataset("mine.jsonl", data.as_bytes()).unwrap_err();
    match &error {
        ScenarioError::Dataset { file, row, field, .. } => {
            assert_eq!((file.as_str(), *row, field.as_deref()), ("mine.jsonl", Some(4), Some("answer")));
        }
        other => panic!("expected a dataset error, got {other}"),
    }
    let text = error.to_string();
    assert!(text.contains("mine.jsonl, row 4, field `answer`") && text.contains("####"), "{text}");

    let samples = scenario.parse_dataset("mine.jsonl", format!("{good}\n{good}\n").as_bytes()).unwrap();
    assert_eq!(samples.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
}

#[test]
fn a_trap_fails_only_that_call() {
    let mut scenario = faulty(ScenarioLimits::default());
    match scenario.build_prompt(&command("trap")).unwrap_err() {
        ScenarioError::Trap { function, message, stderr } => {
            assert_eq!(function, "build-prompt");
            assert!(!message.is_empty());
            assert!(stderr.contains("faulty was asked to trap"), "{stderr}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_works(&mut scenario);

    match scenario.score(&command("unreachable"), "output").unwrap_err() {
        ScenarioError::Trap { function, message, .. } => {
            assert_eq!(function, "score");
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    let score = scenario.score(&command("fine"), "four").unwrap();
    assert_eq!(score.metric("length"), Some(4.0));
}

#[test]
fn a_guest_error_is_reported_as_such() {
    let mut scenario = faulty(ScenarioLimits::default());
    let error = scenario.score(&command("fail"), "x").unwrap_err();
    assert!(matches!(&error, ScenarioError::Guest { function: "score", message } if message.contains("asked to fail")));
    assert_works(&mut scenario);
}

#[test]
fn guest_logs_reach_tracing_with_the_scenario_name() {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut scenario = faulty(ScenarioLimits::default());
        assert_eq!(scenario.build_prompt(&command("log")).unwrap(), Prompt::Text("logged".to_string()));
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("INFO") && log.contains("scenario=\"faulty\"") && log.contains("faulty says hello"), "{log}");
}

#[test]
fn a_guest_may_write_stderr_on_every_call() {
    let mut scenario = faulty(ScenarioLimits::default());
    // 100 calls write 1 MiB, four times what one instance's stderr buffer holds.
    for _ in 0..100 {
        assert_eq!(scenario.build_prompt(&command("chatty")).unwrap(), Prompt::Text("chatted".to_string()));
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_the_time_limit() {
    let limits = ScenarioLimits { call_timeout: Duration::from_millis(200), ..ScenarioLimits::default() };
    let mut scenario = faulty(limits);
    match scenario.build_prompt(&command("loop")).unwrap_err() {
        ScenarioError::Timeout { function, limit } => {
            assert_eq!((function, limit), ("build-prompt", Duration::from_millis(200)));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert_works(&mut scenario);
}

#[test]
fn runaway_allocation_hits_the_memory_cap() {
    let limits = ScenarioLimits { memory_bytes: 64 << 20, ..ScenarioLimits::default() };
    let mut scenario = faulty(limits);
    match scenario.build_prompt(&command("oom")).unwrap_err() {
        ScenarioError::MemoryLimit { function, limit_bytes, .. } => {
            assert_eq!((function, limit_bytes), ("build-prompt", 64 << 20));
        }
        other => panic!("expected the memory limit, got {other}"),
    }
    assert_works(&mut scenario);
}

#[test]
fn prompts_are_deterministic_across_loads() {
    let first = faulty(ScenarioLimits::default()).build_prompt(&command("entropy")).unwrap();
    let second = faulty(ScenarioLimits::default()).build_prompt(&command("entropy")).unwrap();
    assert_eq!(first, second);
    let Prompt::Text(text) = &first else { panic!("expected text") };
    assert!(text.contains("wall=Ok(1735689600000000000)"), "{text}");

    let sample = load(scenario_artifacts::GSM8K).embedded_dataset().unwrap().unwrap();
    let prompt = |mut scenario: Scenario| {
        let samples = scenario.parse_dataset(&sample.file_name, &sample.data).unwrap();
        scenario.build_prompt(&samples[3]).unwrap()
    };
    assert_eq!(prompt(load(scenario_artifacts::GSM8K)), prompt(load(scenario_artifacts::GSM8K)));
}

#[test]
fn the_guest_sees_no_files_environment_or_arguments() {
    let mut scenario = faulty(ScenarioLimits::default());
    let Prompt::Text(report) = scenario.build_prompt(&command("snoop")).unwrap() else { panic!("expected text") };
    // The host's environment is never empty (cargo sets CARGO_* for tests), so `env=[]` shows isolation.
    assert!(std::env::vars().next().is_some());
    assert_eq!(report, "passwd=error env=[] args=[] cwd=Err(\"error\") root=Err(\"error\")");
}

#[test]
fn a_file_that_is_not_a_scenario_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, b"this is not wasm").unwrap();
    let error = Scenario::load(&path, ScenarioLimits::default()).unwrap_err();
    assert!(matches!(error, ScenarioError::Load { .. }));
    assert!(error.to_string().contains("notes.wasm"), "{error}");

    let missing = dir.path().join("missing.wasm");
    let error = Scenario::load(&missing, ScenarioLimits::default()).unwrap_err();
    assert!(error.to_string().contains("missing.wasm"), "{error}");
}

#[test]
fn a_component_built_against_another_wit_version_is_refused_naming_both() {
    let error = Scenario::load(Path::new(scenario_artifacts::WRONG_VERSION), ScenarioLimits::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("runner:scenario@0.0.9") && text.contains("runner:scenario@0.1.0"), "{text}");
    assert!(text.contains("wrong_version.wasm"), "{text}");
}

#[test]
fn a_scenario_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Scenario>();
    let mut scenario = std::thread::spawn(|| load(scenario_artifacts::GSM8K)).join().unwrap();
    assert!(scenario.embedded_dataset().unwrap().is_some());
}
