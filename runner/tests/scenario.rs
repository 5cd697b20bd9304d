//! The scenario host against real components built from scenarios/ (gsm8k and the fixtures): the WIT
//! calls, dataset errors, fault containment (traps, timeouts, the memory cap, the stack), malformed guest
//! data, the sandbox (files, network, clock, randomness, imports), and the precompiled-component cache.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner::datasets::LoadedData;
use runner::prompt::{Prompt, Role};
use runner::scenario::{
    CacheOutcome, ComponentCache, DatasetInfo, DatasetInput, Field, Options, Sample, Scenario, ScenarioError,
    ScenarioLimits, ScoredSample,
};

mod common;

fn load(path: &str) -> Scenario {
    Scenario::load(Path::new(path), ScenarioLimits::default()).expect("load the component")
}

fn faulty(limits: ScenarioLimits) -> Scenario {
    Scenario::load(Path::new(scenario_artifacts::FAULTY), limits).expect("load the faulty fixture")
}

fn configured_faulty(args: &[(&str, &str)]) -> Result<Scenario, ScenarioError> {
    let mut scenario = faulty(ScenarioLimits { call_timeout: Duration::from_millis(300), ..ScenarioLimits::default() });
    let mut options = Options::defaults_for(scenario.metadata());
    options.seed = 11;
    options.args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    scenario.configure(options)?;
    Ok(scenario)
}

fn command(command: &str) -> Sample {
    Sample {
        id: command.to_string(),
        subset: None,
        fields: vec![Field { name: "command".to_string(), value: command.to_string() }],
        reference: String::new(),
    }
}

fn prompt(scenario: &mut Scenario, sample: &Sample) -> Result<Prompt, ScenarioError> {
    scenario.build_prompt(sample, &[], false).map(|request| request.prompt)
}

fn assert_works(scenario: &mut Scenario) {
    assert_eq!(prompt(scenario, &command("hello")).unwrap(), Prompt::Text("echo hello".to_string()));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(scenario: &mut Scenario, name: &str, data: &[u8]) -> Result<Vec<Sample>, ScenarioError> {
    let loaded =
        LoadedData::bytes("file", name.to_string(), name, None, data.to_vec(), &Default::default()).expect("decodes");
    scenario.parse_dataset(&loaded.info, &loaded.input)
}

#[test]
fn gsm8k_describes_itself() {
    let scenario = load(scenario_artifacts::GSM8K);
    let metadata = scenario.metadata();
    assert_eq!(metadata.name, "gsm8k");
    assert!(metadata.defaults.max_new_tokens >= 128);
    assert!(!metadata.defaults.stop.is_empty());
    let accuracy = metadata.metrics.iter().find(|m| m.name == "accuracy").expect("an accuracy metric");
    assert!(accuracy.higher_is_better && accuracy.binary);
    assert_eq!(metadata.scoring_mode_names(), ["generate"]);
    assert_eq!(metadata.default_source.as_ref().unwrap().repo, "openai/gsm8k");
    let bytes = std::fs::read(scenario_artifacts::GSM8K).unwrap();
    assert_eq!(scenario.hash(), format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(scenario.path(), Path::new(scenario_artifacts::GSM8K));
}

#[test]
fn gsm8k_embedded_dataset_parses_prompts_and_scores() {
    let mut scenario = load(scenario_artifacts::GSM8K);
    let embedded = scenario.embedded_dataset().unwrap().expect("gsm8k carries a sample");
    assert!(embedded.label.contains("not GSM8K"), "{}", embedded.label);
    let samples = parse(&mut scenario, &embedded.file_name, &embedded.data).unwrap();
    assert_eq!(samples.len(), 10);
    assert_eq!(samples[0].reference, "25");
    assert_eq!(samples[9].reference, "-11");

    let Prompt::Chat(messages) = prompt(&mut scenario, &samples[0]).unwrap() else { panic!("expected a chat prompt") };
    assert_eq!(messages.last().unwrap().role, Role::User);
    assert!(messages.last().unwrap().content.contains(samples[0].field("question").unwrap()));

    let right = scenario.score_text(&samples[0], "6 * 14 = 84, 84 - 59 = 25. The answer is 25.").unwrap();
    assert_eq!(right.metric("accuracy"), Some(1.0));
    assert_eq!(right.extracted.as_deref(), Some("25"));
    let wrong = scenario.score_text(&samples[0], "The answer is 26.").unwrap();
    assert_eq!(wrong.metric("accuracy"), Some(0.0));
    assert_eq!(wrong.metric("answered"), Some(1.0));
    assert!(scenario.aggregate(&[]).unwrap().is_empty());
}

#[test]
fn gsm8k_dataset_errors_name_the_record_and_field() {
    let mut scenario = load(scenario_artifacts::GSM8K);
    let good = r#"{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}"#;
    let data = format!("{good}\n{good}\n\n{{\"question\": \"Q?\", \"answer\": \"no marker here\"}}\n");
    let error = parse(&mut scenario, "mine.jsonl", data.as_bytes()).unwrap_err();
    match &error {
        ScenarioError::Dataset { file, row, field, .. } => {
            assert_eq!((file.as_str(), *row, field.as_deref()), ("mine.jsonl", Some(3), Some("answer")));
        }
        other => panic!("expected a dataset error, got {other}"),
    }
    let text = error.to_string();
    assert!(text.contains("mine.jsonl, record 3, field `answer`") && text.contains("####"), "{text}");

    let samples = parse(&mut scenario, "mine.jsonl", format!("{good}\n{good}\n").as_bytes()).unwrap();
    assert_eq!(samples.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
}

#[test]
fn a_trap_fails_only_that_call() {
    let mut scenario = faulty(ScenarioLimits::default());
    match prompt(&mut scenario, &command("trap")).unwrap_err() {
        ScenarioError::Trap { function, message, stderr } => {
            assert_eq!(function, "build-prompt");
            assert!(!message.is_empty());
            assert!(stderr.contains("faulty was asked to trap"), "{stderr}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_works(&mut scenario);

    match scenario.score_text(&command("unreachable"), "output").unwrap_err() {
        ScenarioError::Trap { function, message, .. } => {
            assert_eq!(function, "score");
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    let score = scenario.score_text(&command("fine"), "four").unwrap();
    assert_eq!(score.metric("length"), Some(4.0));
}

#[test]
fn a_stack_overflow_is_a_trap() {
    let mut scenario = faulty(ScenarioLimits::default());
    // Rust guests keep their frames on a shadow stack in linear memory: running past its end is an
    // out-of-bounds access rather than wasm's own stack overflow. Either way it is a trap.
    match prompt(&mut scenario, &command("recurse")).unwrap_err() {
        ScenarioError::Trap { message, .. } => {
            assert!(message.contains("stack overflow") || message.contains("out of bounds"), "{message}")
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_works(&mut scenario);
}

#[test]
fn a_rebuilt_instance_is_configured_again() {
    let mut scenario = configured_faulty(&[("fault", "none:none")]).unwrap();
    let before = prompt(&mut scenario, &command("config")).unwrap();
    assert_eq!(before, Prompt::Text(r#"seed=11 args=[("fault", "none:none")]"#.to_string()));
    assert!(prompt(&mut scenario, &command("trap")).is_err());
    assert_eq!(prompt(&mut scenario, &command("config")).unwrap(), before);
}

#[test]
fn configure_errors_name_the_option() {
    let error = configured_faulty(&[("colour", "blue")]).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("faulty") && text.contains("args: colour"), "{text}");
}

#[test]
fn every_reachable_export_is_contained() {
    // A loop or trap in configure, embedded-dataset, parse-dataset and aggregate is that call's error.
    for action in ["loop", "trap"] {
        let error = configured_faulty(&[("fault", &format!("configure:{action}"))]).unwrap_err();
        assert!(
            matches!(
                error,
                ScenarioError::Timeout { function: "configure", .. }
                    | ScenarioError::Trap { function: "configure", .. }
            ),
            "{error}"
        );

        let mut scenario = configured_faulty(&[("fault", &format!("embedded-dataset:{action}"))]).unwrap();
        let error = scenario.embedded_dataset().unwrap_err();
        assert!(matches!(error, ScenarioError::Timeout { .. } | ScenarioError::Trap { .. }), "{error}");
        assert_works(&mut scenario);

        let mut scenario = configured_faulty(&[("fault", &format!("parse-dataset:{action}"))]).unwrap();
        let error = parse(&mut scenario, "c.txt", b"hello\n").unwrap_err();
        assert!(
            matches!(
                error,
                ScenarioError::Timeout { function: "parse-dataset", .. }
                    | ScenarioError::Trap { function: "parse-dataset", .. }
            ),
            "{error}"
        );

        let mut scenario = configured_faulty(&[("fault", &format!("aggregate:{action}"))]).unwrap();
        let error = scenario.aggregate(&[]).unwrap_err();
        assert!(
            matches!(
                error,
                ScenarioError::Timeout { function: "aggregate", .. }
                    | ScenarioError::Trap { function: "aggregate", .. }
            ),
            "{error}"
        );
        assert_works(&mut scenario);
    }
    let mut scenario = configured_faulty(&[]).unwrap();
    let scored = ScoredSample { id: "1".into(), subset: None, metrics: Vec::new() };
    assert_eq!(scenario.aggregate(&[scored]).unwrap()[0].value, 1.0);
}

#[test]
fn a_guest_error_is_reported_as_such() {
    let mut scenario = faulty(ScenarioLimits::default());
    let error = scenario.score_text(&command("fail"), "x").unwrap_err();
    assert!(matches!(&error, ScenarioError::Guest { function: "score", message } if message.contains("asked to fail")));
    assert_works(&mut scenario);
}

#[test]
fn malformed_guest_data_is_a_scenario_error_naming_the_sample() {
    let mut scenario = faulty(ScenarioLimits::default());
    let malformed = |error: ScenarioError, needle: &str| match &error {
        ScenarioError::Malformed { scenario, sample, message, .. } => {
            assert_eq!(scenario, "faulty");
            assert!(message.contains(needle), "{message}");
            sample.clone()
        }
        other => panic!("expected malformed data, got {other}"),
    };
    let sample = malformed(prompt(&mut scenario, &command("empty-prompt")).unwrap_err(), "empty");
    assert_eq!(sample.as_deref(), Some("empty-prompt"));
    malformed(prompt(&mut scenario, &command("huge-prompt")).unwrap_err(), "over the limit");
    malformed(scenario.build_prompt(&command("no-choices"), &[], true).unwrap_err(), "needs choices");
    assert!(scenario.build_prompt(&command("no-choices"), &[], false).is_ok());
    assert_eq!(scenario.build_prompt(&command("hello"), &[], true).unwrap().choices, [" yes", " no"]);
    malformed(scenario.score_text(&command("score:undeclared-metric"), "x").unwrap_err(), "`bogus` is not declared");
    malformed(scenario.score_text(&command("score:nan"), "x").unwrap_err(), "NaN");
    malformed(scenario.score_text(&command("score:huge-metric-name"), "x").unwrap_err(), "bytes long");
    let error = parse(&mut scenario, "c.txt", b"id=a one\nduplicate-ids\n").unwrap_err();
    assert_eq!(malformed(error, "not unique").as_deref(), Some("a"));
    assert_works(&mut scenario);
}

#[test]
fn a_string_that_is_not_utf8_is_refused() {
    let mut scenario = faulty(ScenarioLimits::default());
    let error = prompt(&mut scenario, &command("bad-utf8")).unwrap_err();
    assert!(error.to_string().to_lowercase().contains("utf-8"), "{error}");
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
        assert_eq!(prompt(&mut scenario, &command("log")).unwrap(), Prompt::Text("logged".to_string()));
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("INFO") && log.contains("scenario=\"faulty\"") && log.contains("faulty says hello"), "{log}");
}

#[test]
fn a_guest_may_write_stderr_on_every_call() {
    let mut scenario = faulty(ScenarioLimits::default());
    // 100 calls write 1 MiB, four times what one instance's stderr buffer holds.
    for _ in 0..100 {
        assert_eq!(prompt(&mut scenario, &command("chatty")).unwrap(), Prompt::Text("chatted".to_string()));
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_the_time_limit() {
    let limits = ScenarioLimits { call_timeout: Duration::from_millis(200), ..ScenarioLimits::default() };
    let mut scenario = faulty(limits);
    match prompt(&mut scenario, &command("loop")).unwrap_err() {
        ScenarioError::Timeout { function, limit } => {
            assert_eq!((function, limit), ("build-prompt", Duration::from_millis(200)));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert_works(&mut scenario);
    assert!(matches!(
        scenario.score_text(&command("loop"), "x").unwrap_err(),
        ScenarioError::Timeout { function: "score", .. }
    ));
    assert_works(&mut scenario);
}

#[test]
fn runaway_allocation_hits_the_memory_cap() {
    let limits = ScenarioLimits { memory_bytes: 64 << 20, ..ScenarioLimits::default() };
    let mut scenario = faulty(limits);
    match prompt(&mut scenario, &command("oom")).unwrap_err() {
        ScenarioError::MemoryLimit { function, limit_bytes, .. } => {
            assert_eq!((function, limit_bytes), ("build-prompt", 64 << 20));
        }
        other => panic!("expected the memory limit, got {other}"),
    }
    assert_works(&mut scenario);
}

#[test]
fn prompts_are_deterministic_across_loads() {
    let first = prompt(&mut faulty(ScenarioLimits::default()), &command("entropy")).unwrap();
    let second = prompt(&mut faulty(ScenarioLimits::default()), &command("entropy")).unwrap();
    assert_eq!(first, second);
    let Prompt::Text(text) = &first else { panic!("expected text") };
    assert!(text.contains("wall=Ok(1735689600000000000)"), "{text}");

    let sample = load(scenario_artifacts::GSM8K).embedded_dataset().unwrap().unwrap();
    let build = |mut scenario: Scenario| {
        let samples = parse(&mut scenario, &sample.file_name, &sample.data).unwrap();
        prompt(&mut scenario, &samples[3]).unwrap()
    };
    assert_eq!(build(load(scenario_artifacts::GSM8K)), build(load(scenario_artifacts::GSM8K)));
}

#[test]
fn the_guest_sees_no_files_environment_arguments_or_network() {
    let mut scenario = faulty(ScenarioLimits::default());
    let Prompt::Text(report) = prompt(&mut scenario, &command("snoop")).unwrap() else { panic!("expected text") };
    // The host's environment is never empty (cargo sets CARGO_* for tests), so `env=[]` shows isolation.
    assert!(std::env::vars().next().is_some());
    assert_eq!(report, "passwd=error env=[] args=[] cwd=Err(\"error\") root=Err(\"error\")");
    let Prompt::Text(report) = prompt(&mut scenario, &command("socket")).unwrap() else { panic!("expected text") };
    assert!(report.starts_with("tcp=Err(") && report.contains("dns=Err("), "{report}");
}

#[test]
fn few_shot_examples_reach_the_guest() {
    let mut scenario = faulty(ScenarioLimits::default());
    let examples = [command("a"), command("b")];
    let request = scenario.build_prompt(&command("examples"), &examples, false).unwrap();
    assert_eq!(request.prompt, Prompt::Text("examples: a,b".to_string()));
}

#[test]
fn records_and_raw_bytes_reach_parse_dataset() {
    let mut scenario = faulty(ScenarioLimits::default());
    let samples = parse(&mut scenario, "c.csv", b"command,other\nhello,1\n\"score:nan\",2\n").unwrap();
    assert_eq!(
        samples.iter().map(|s| (s.id.as_str(), s.field("command").unwrap())).collect::<Vec<_>>(),
        [("1", "hello"), ("2", "score:nan")]
    );
    let samples = parse(&mut scenario, "c.txt", b"id=x subset=s reference=r hi there\n").unwrap();
    assert_eq!(
        (samples[0].id.as_str(), samples[0].subset.as_deref(), samples[0].reference.as_str()),
        ("x", Some("s"), "r")
    );
    assert_eq!(samples[0].field("command"), Some("hi there"));
    // A record without the column is the scenario's dataset error, with the record number.
    let error = parse(&mut scenario, "c.jsonl", b"{\"command\": \"a\"}\n\n{\"x\": 1}\n").unwrap_err();
    assert!(matches!(&error, ScenarioError::Dataset { row: Some(2), .. }), "{error}");
    let info = DatasetInfo { name: "x.bin".into(), subset: None };
    assert!(scenario.parse_dataset(&info, &DatasetInput::Raw(vec![0xff])).is_err());
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
    let hosted = format!("runner:scenario@{}", runner::scenario::WIT_VERSION);
    assert!(text.contains("runner:scenario@0.0.9") && text.contains(&hosted), "{text}");
    assert!(text.contains("wrong_version.wasm"), "{text}");
}

#[test]
fn a_component_importing_what_the_host_does_not_grant_is_refused_listing_it() {
    let error = Scenario::load(Path::new(scenario_artifacts::HTTP_IMPORT), ScenarioLimits::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("does not grant") && text.contains("fixtures:net/phone-home@0.1.0"), "{text}");
    assert!(text.contains("http_import.wasm"), "{text}");
}

#[test]
fn the_component_cache_is_used_and_a_corrupt_entry_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path().join("components"));
    let path = Path::new(scenario_artifacts::GSM8K);
    let limits = ScenarioLimits::default();

    let first = Scenario::load_cached(path, limits, Some(&cache)).unwrap();
    assert_eq!(first.load_report().cache, CacheOutcome::Compiled);
    let entries: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "one entry and no temporary files: {entries:?}");
    let entry = &entries[0];
    let component_hash = first.hash().trim_start_matches("sha256:").to_string();
    assert!(entry.file_name().unwrap().to_str().unwrap().starts_with(&component_hash), "{entry:?}");

    let mut second = Scenario::load_cached(path, limits, Some(&cache)).unwrap();
    assert_eq!(second.load_report().cache, CacheOutcome::Hit);
    // The cached code works like the compiled code.
    let embedded = second.embedded_dataset().unwrap().unwrap();
    assert_eq!(parse(&mut second, &embedded.file_name, &embedded.data).unwrap().len(), 10);

    // Flip one byte of the code: the checksum catches it, the entry is rebuilt, and the next load hits.
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(entry, &bytes).unwrap();
    let rebuilt = Scenario::load_cached(path, limits, Some(&cache)).unwrap();
    assert!(
        matches!(&rebuilt.load_report().cache, CacheOutcome::Rebuilt(reason) if reason.contains("checksum")),
        "{:?}",
        rebuilt.load_report()
    );
    assert_eq!(Scenario::load_cached(path, limits, Some(&cache)).unwrap().load_report().cache, CacheOutcome::Hit);

    // A truncated entry and a foreign file under the entry's name are rebuilt too.
    std::fs::write(entry, &bytes[..10]).unwrap();
    assert!(matches!(
        Scenario::load_cached(path, limits, Some(&cache)).unwrap().load_report().cache,
        CacheOutcome::Rebuilt(_)
    ));
    std::fs::write(entry, b"\0asm\x01\0\0\0").unwrap();
    assert!(matches!(
        Scenario::load_cached(path, limits, Some(&cache)).unwrap().load_report().cache,
        CacheOutcome::Rebuilt(_)
    ));

    // An unwritable cache still loads the scenario, and says why nothing was stored.
    let blocked = ComponentCache::new(dir.path().join("file-not-folder"));
    std::fs::write(blocked.dir(), b"").unwrap();
    let loaded = Scenario::load_cached(path, limits, Some(&blocked)).unwrap();
    assert!(matches!(loaded.load_report().cache, CacheOutcome::NotStored(_)), "{:?}", loaded.load_report());
}

#[test]
fn a_scenario_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Scenario>();
    let mut scenario = std::thread::spawn(|| load(scenario_artifacts::GSM8K)).join().unwrap();
    assert!(scenario.embedded_dataset().unwrap().is_some());
}

/// [`common::run`], telling only whether runner succeeded.
fn run(command: &mut std::process::Command) -> (bool, String, String) {
    let (output, stdout, stderr) = common::run(command);
    (output.status.success(), stdout, stderr)
}

const GSM8K_EMBEDDED_REFERENCES: [&str; 10] = ["25", "140", "320", "150", "72", "80", "45", "27", "225", "-11"];

fn score_json(dir: &Path, outputs: &str, extra: &[&str]) -> (bool, serde_json::Value, String) {
    let file = dir.join("outputs.jsonl");
    std::fs::write(&file, outputs).unwrap();
    let (ok, stdout, stderr) =
        run(common::runner().args(["score", scenario_artifacts::GSM8K, "--json", "--outputs"]).arg(&file).args(extra));
    (ok, serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null), stderr)
}

#[test]
fn score_rates_gold_answers_right_and_wrong_answers_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let gold: String = GSM8K_EMBEDDED_REFERENCES
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{{\"id\": \"{}\", \"output\": \"Some steps. The answer is {r}.\"}}\n", i + 1))
        .collect();
    let (ok, report, stderr) = score_json(dir.path(), &gold, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(report["scored"], 10);
    assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0);
    assert_eq!(report["missing"].as_array().unwrap().len(), 0);

    // By 0-based index, wrong answers, and two samples left out.
    let wrong: String = GSM8K_EMBEDDED_REFERENCES
        .iter()
        .enumerate()
        .take(8)
        .map(|(i, r)| format!("{{\"index\": {i}, \"output\": \"The answer is {}.\"}}\n", r.parse::<i64>().unwrap() + 1))
        .collect();
    let (ok, report, stderr) = score_json(dir.path(), &wrong, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(report["metrics"]["accuracy"]["mean"], 0.0);
    assert_eq!(report["metrics"]["answered"]["mean"], 1.0);
    assert_eq!(report["missing"], serde_json::json!(["9", "10"]));

    // The table names the metric and the samples without output.
    let file = dir.path().join("outputs.jsonl");
    let (ok, stdout, _) = run(common::runner().args(["score", scenario_artifacts::GSM8K, "--outputs"]).arg(&file));
    assert!(ok && stdout.contains("accuracy ↑") && stdout.contains("2 samples have no output"), "{stdout}");
}

#[test]
fn score_names_the_outputs_line_of_each_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{\"id\": \"1\", \"output\": \"x\"}\n{\"id\": \"99\", \"output\": \"x\"}\n", "line 2, field `id`: no sample"),
        (
            "{\"id\": \"1\", \"output\": \"x\"}\n\n{\"index\": 0, \"output\": \"y\"}\n",
            "line 3: sample \"1\" already has an output on line 1",
        ),
        ("{\"id\": \"1\"}\n", "line 1: no `output` field"),
        ("{\"output\": \"x\"}\n", "line 1: no `id` or `index`"),
        ("{\"index\": 10, \"output\": \"x\"}\n", "line 1, field `index`: 10 is past"),
        ("{\"id\": \"2\", \"index\": 0, \"output\": \"x\"}\n", "line 1: `id` names sample 1 but `index` is 0"),
        ("not json\n", "line 1: invalid JSON"),
    ];
    for (outputs, expected) in cases {
        let (ok, _, stderr) = score_json(dir.path(), outputs, &[]);
        assert!(!ok, "{outputs}");
        assert!(stderr.contains("outputs.jsonl") && stderr.contains(expected), "{outputs}: {stderr}");
    }
}

#[test]
fn score_reads_a_hugging_face_dataset_from_the_cache_offline() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    let repo = hub.join("datasets--openai--gsm8k");
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let data = b"{\"question\": \"What is 6 * 7?\", \"answer\": \"6 * 7 = 42\\n#### 42\"}\n";
    runner::hub::store_file(&repo, commit, "main/test-00000-of-00001.jsonl", "blob1", &data[..], None).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();

    let outputs = dir.path().join("outputs.jsonl");
    std::fs::write(&outputs, "{\"index\": 0, \"output\": \"The answer is 42.\"}\n").unwrap();
    let score = |data: &str, hub: &Path| {
        run(common::runner()
            .env("HF_HUB_CACHE", hub)
            .env("HF_HUB_OFFLINE", "1")
            .args(["score", scenario_artifacts::GSM8K, "--json", "--data", data, "--outputs"])
            .arg(&outputs))
    };
    for data in ["hf", "hf:openai/gsm8k", "hf:openai/gsm8k:main"] {
        let (ok, stdout, stderr) = score(data, &hub);
        assert!(ok, "{data}: {stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["dataset"], "hf:openai/gsm8k/main/test@main", "{data}");
        assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0, "{data}");
    }
    let (ok, _, stderr) = score("hf", &dir.path().join("empty"));
    assert!(!ok && stderr.contains("not in the Hugging Face cache") && stderr.contains("hf download"), "{stderr}");
    let (ok, _, stderr) = score("hf:openai", &hub);
    assert!(!ok && stderr.contains("--data \"hf:openai\""), "{stderr}");
}

#[test]
fn scenario_flags_are_checked_against_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs.jsonl");
    std::fs::write(&outputs, "{\"index\": 0, \"output\": \"x\"}\n").unwrap();
    let score = |flags: &[&str]| {
        run(common::runner().args(["score", scenario_artifacts::GSM8K, "--outputs"]).arg(&outputs).args(flags))
    };
    let (ok, _, stderr) = score(&["--subset", "algebra"]);
    assert!(!ok && stderr.contains("--subset algebra") && stderr.contains("no subsets"), "{stderr}");
    let (ok, _, stderr) = score(&["--scoring", "loglikelihood"]);
    assert!(!ok && stderr.contains("--scoring loglikelihood") && stderr.contains("supports only generate"), "{stderr}");
    let (ok, _, stderr) = score(&["--scenario-arg", "novalue"]);
    assert!(!ok && stderr.contains("--scenario-arg") && stderr.contains("KEY=VALUE"), "{stderr}");
}

/// A whole run on a tiny model: log-likelihood scoring, faults in the middle, and the scenario's aggregate.
#[test]
fn exec_scores_choices_by_loglikelihood_and_contains_faults() {
    use runner::results::writer::read_samples;
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(3, runner::import::Precision::Int4);
    let data = dir.path().join("commands.txt");
    std::fs::write(&data, "hello\nscore:trap\nempty-prompt\nhello again\nscore:nan\n").unwrap();
    let results = dir.path().join("run");
    let output = common::runner()
        .args(["exec", scenario_artifacts::FAULTY, "--no-progress", "--scoring", "loglikelihood", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&results)
        .output()
        .expect("runner starts");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // Finished with failed samples: exit status 3, every result kept.
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("3 of 5 samples failed"), "{stderr}");
    let samples = read_samples(&results).unwrap();
    let failed: Vec<bool> = samples.iter().map(|s| s.error.is_some()).collect();
    assert_eq!(failed, [false, true, true, false, true]);
    let choices = samples[0].choices.as_ref().expect("log-likelihoods recorded");
    assert_eq!(choices.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), [" yes", " no"]);
    assert!(choices.iter().all(|c| c.logprob < 0.0 && c.tokens > 0), "{choices:?}");
    assert!(samples[1].error.as_ref().unwrap().message.contains("faulty was asked to trap"), "{:?}", samples[1]);
    assert!(samples[2].error.as_ref().unwrap().message.contains("malformed"), "{:?}", samples[2]);
    assert!(samples[4].error.as_ref().unwrap().message.contains("NaN"), "{:?}", samples[4]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["settings"]["scoring"], "loglikelihood");
    assert_eq!(summary["results"]["scenario_metrics"]["scored"], 2.0);
    assert!(stdout.contains("scored (scenario): 2.0000"), "{stdout}");
}
