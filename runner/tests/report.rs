//! Report generation: the comparison model on runs this test writes itself (summaries computed from
//! deterministic sample records with runner's own aggregation), Markdown snapshots, the HTML's structure,
//! escaping and charts, strict templates, the CLI, publishing twice byte-identically, the committed reports
//! against `reports/data/`, and a headless Chromium rendering of the HTML checked for a non-blank picture.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use runner::report::render::{CsvExporter, HtmlExporter, JsonExporter, MarkdownExporter};
use runner::report::{BaselineChoice, Exporter, Report, RunFolder, Templates, TerminalExporter, build, publish};
use runner::results::summary::RunSummary;
use runner::results::{Aggregates, ChoiceRecord, MetricSpec, SampleRecord, SampleStatus, SampleTimings};

mod common;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One configuration of a synthetic run: its name parts and how fast and accurate it is.
struct Config<'a> {
    scenario: &'a str,
    precision: &'a str,
    /// Milliseconds per decode step.
    itl: f64,
    /// Which samples it answers correctly: sample i is right when i % modulus == 0.
    modulus: usize,
    peak_mib: u64,
}

fn records(c: &Config) -> Vec<SampleRecord> {
    (0..12)
        .map(|i| {
            let itl: Vec<f64> = (0..10).map(|k| c.itl + (k % 3) as f64 * 0.5 + (i % 4) as f64 * 0.25).collect();
            let decode_ms: f64 = itl.iter().sum();
            let ttft = 8.0 * c.itl + i as f64 * 1.5;
            let correct = if i % c.modulus == 0 { 1.0 } else { 0.0 };
            SampleRecord {
                status: SampleStatus::Ok,
                output: Some("The answer is 42.".into()),
                extracted: Some("42".into()),
                metrics: BTreeMap::from([("accuracy".to_string(), correct), ("answered".to_string(), 1.0)]),
                finish: Some("eos".into()),
                prompt_tokens: Some(40 + i),
                output_tokens: Some(11),
                timings: SampleTimings {
                    prompt_ms: 0.05,
                    render_ms: 0.1,
                    tokenize_ms: 0.4,
                    prefill_ms: ttft - 0.5,
                    ttft_ms: ttft,
                    itl_ms: itl,
                    sampling_ms: 0.2,
                    detokenize_ms: 0.1,
                    score_ms: 0.05,
                    generate_ms: ttft + decode_ms,
                    model_share_ms: None,
                    e2e_ms: ttft + decode_ms + 0.3,
                    decode_tokens_per_s: Some(10.0 / (decode_ms / 1000.0)),
                    prefill_tokens_per_s: Some((40 + i) as f64 / (ttft / 1000.0)),
                },
                peak_rss_bytes: Some(c.peak_mib * 1024 * 1024 + i as u64 * 4096),
                ..SampleRecord::begin(i, format!("q{i:02}"), None, "42".into())
            }
        })
        .collect()
}

fn summary(c: &Config, records: &[SampleRecord], hostname: &str) -> RunSummary {
    let binary = MetricSpec { higher_is_better: true, binary: true, sum: false };
    let specs = BTreeMap::from([("accuracy".to_string(), binary), ("answered".to_string(), binary)]);
    let results = Aggregates::from_records(records, &specs);
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    serde_json::from_value(serde_json::json!({
        "status": "complete",
        "abort_reason": null,
        "runner": {"version": "0.1.0", "git_commit": "abc1234"},
        "started_at": format!("2026-11-22T10:00:0{}Z", c.itl as u64 % 10),
        "finished_at": "2026-11-22T10:05:00Z",
        "wall_seconds": 300.0,
        "setup_seconds": 1.0,
        "scenario": {"name": c.scenario, "version": "0.2.0", "description": format!("{} test scenario", c.scenario),
                     "path": format!("scenarios/{}.wasm", c.scenario), "hash": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        "dataset": {"source": "file", "label": "data/test.jsonl", "hash": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                    "total": 100, "selected": 12, "shuffle_seed": 1, "max_samples": 12, "selected_ids": ids},
        "model": {"dir": format!("models/Tiny/{}", c.precision), "hash": "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
                  "info": {"name": "Tiny", "precision": c.precision}},
        "runtime": {"onnxruntime_library": "libonnxruntime.so", "onnxruntime_version": "1.31.1", "execution_provider": "cpu", "intra_threads": 1},
        "settings": {"max_new_tokens": 64, "stop": [], "scenario_memory_bytes": 1024, "scenario_call_timeout_ms": 1000},
        "host": {"hostname": hostname, "os": "Debian", "kernel": "6", "cpu_model": "Test CPU", "logical_cores": 2,
                 "memory_bytes": 8_589_934_592u64, "gpus": []},
        "load_average_start": 0.5,
        "load_average_end": 0.75,
        "results": results,
    }))
    .unwrap()
}

fn run(c: Config, hostname: &str) -> RunFolder {
    let samples = records(&c);
    let summary = summary(&c, &samples, hostname);
    RunFolder {
        dir: PathBuf::from(format!("runs/{}-{}", c.scenario, c.precision)),
        summary,
        samples,
        warnings: Vec::new(),
    }
}

/// fp32, int8 and int4 of one scenario (int4 fastest and least accurate), plus one run of another scenario.
fn runs() -> Vec<RunFolder> {
    vec![
        run(Config { scenario: "gsm8k", precision: "int4", itl: 10.0, modulus: 4, peak_mib: 300 }, "vm"),
        run(Config { scenario: "gsm8k", precision: "fp32", itl: 20.0, modulus: 2, peak_mib: 700 }, "vm"),
        run(Config { scenario: "gsm8k", precision: "int8", itl: 14.0, modulus: 3, peak_mib: 400 }, "vm"),
        run(Config { scenario: "arc", precision: "int4", itl: 10.0, modulus: 2, peak_mib: 300 }, "vm"),
    ]
}

fn report() -> Report {
    build(runs(), &BaselineChoice::Auto).unwrap()
}

fn write_run(dir: &Path, input: &RunFolder) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&input.summary).unwrap()).unwrap();
    let lines: String = input.samples.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    fs::write(dir.join("samples.jsonl"), lines).unwrap();
}

#[test]
fn runs_group_by_scenario_and_compare_against_fp32() {
    let report = report();
    let ids: Vec<&str> = report.comparisons.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let gsm8k = report.comparisons.iter().find(|c| c.scenario == "gsm8k").unwrap();
    let precisions: Vec<&str> = gsm8k.rows.iter().map(|r| r.precision.as_str()).collect();
    assert_eq!(precisions, ["fp32", "int8", "int4"], "rows sorted with the reference precision first");
    assert_eq!(gsm8k.baseline, 0);
    assert!(gsm8k.baseline_rule.contains("fp32"));
    let int4 = &gsm8k.rows[2];
    let relative = int4.relative.as_ref().unwrap();
    assert!(relative.ratio > 1.8 && relative.ratio < 2.0, "{relative:?}");
    assert!(relative.text.ends_with("× faster"), "{}", relative.text);
    assert_eq!(gsm8k.rows[0].relative.as_ref().unwrap().text, "baseline");
    assert_eq!(gsm8k.headline.as_deref(), Some("accuracy"));
    assert_eq!(gsm8k.metric_names, ["accuracy", "answered"]);
    // fp32 answers every other sample, int4 every fourth.
    assert!((gsm8k.rows[0].headline.as_ref().unwrap().mean - 0.5).abs() < 1e-12);
    assert!((int4.headline.as_ref().unwrap().mean - 0.25).abs() < 1e-12);
    // Pareto: fp32 is most accurate, int4 fastest; int8 is beaten by neither on both axes.
    let front: Vec<bool> = gsm8k.charts.scatter.points.iter().map(|p| p.on_front).collect();
    assert_eq!(front, [true, true, true]);
    assert!(int4.command.starts_with("runner exec scenarios/gsm8k.wasm --model models/Tiny/int4"), "{}", int4.command);
    assert!(int4.command.contains("--data data/test.jsonl --max-samples 12 --shuffle-seed 1"), "{}", int4.command);
}

/// A batch-1 run decodes each stream faster than a batch-4 run yet delivers fewer tokens per second: across
/// batch sizes "speed vs baseline" compares output tokens per second of model time, and the page says so.
#[test]
fn runs_at_different_batch_sizes_compare_by_throughput_not_per_stream_decode() {
    let mut runs = runs();
    runs.retain(|r| r.summary.scenario.name == "gsm8k" && r.summary.model.info["precision"] != "int8");
    let fp32 = runs.iter_mut().find(|r| r.summary.model.info["precision"] == "fp32").unwrap();
    fp32.summary.settings.batch_size = 4;
    for record in &mut fp32.samples {
        // Four rows decode together: each sample's share of the model's time is a quarter of its batch's.
        record.timings.model_share_ms = Some(record.timings.generate_ms / 4.0);
    }
    let report = build(runs.clone(), &BaselineChoice::Auto).unwrap();
    let c = &report.comparisons[0];
    assert_eq!(c.speed_basis, runner::report::SpeedBasis::Throughput);
    let (base, int4) = (&c.rows[c.baseline], c.rows.iter().find(|r| r.precision == "int4").unwrap());
    assert!(int4.decode.as_ref().unwrap().mean > base.decode.as_ref().unwrap().mean, "int4 decodes a stream faster");
    let relative = int4.relative.as_ref().unwrap();
    let expected = int4.output_tokens_per_s.unwrap() / base.output_tokens_per_s.unwrap();
    assert!((relative.ratio - expected).abs() < 1e-12 && relative.ratio < 0.6, "{relative:?}");
    assert_eq!(relative.error, None);
    assert!(relative.text.ends_with("× slower") && !relative.text.contains('±'), "{}", relative.text);
    let page = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(page.contains("decoded at different batch sizes, so speed is output tokens per second"), "{page}");
    let terminal = TerminalExporter.render(&report).unwrap();
    assert!(terminal.contains("speed = output tokens/s of model time (batch sizes differ)"), "{terminal}");
    // The index names the run that delivers most, not the fastest stream.
    let dir = tempfile::tempdir().unwrap();
    publish(report, dir.path(), &Templates::default()).unwrap();
    let index = fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(index.contains(" output tok/s (Tiny fp32 cpu b4) |"), "{index}");
    // Without an fp32 row the baseline is the slowest row by that same measure: the batch-1 int4 run, though
    // it decodes each stream fastest.
    let mut unanchored = runs.clone();
    for r in unanchored.iter_mut().filter(|r| r.summary.model.info["precision"] == "fp32") {
        r.summary.model.info["precision"] = "fp16".into();
    }
    let c = &build(unanchored, &BaselineChoice::Auto).unwrap().comparisons[0];
    assert_eq!(c.rows[c.baseline].precision, "int4");
    assert!(c.baseline_rule.contains("slowest row by output tokens/s"), "{}", c.baseline_rule);
    assert!(c.rows.iter().all(|r| r.relative.as_ref().unwrap().ratio >= 1.0));
    // One batch size: per-stream decode speed with its error, as before.
    runs.iter_mut().for_each(|r| r.summary.settings.batch_size = 4);
    let c = &build(runs, &BaselineChoice::Auto).unwrap().comparisons[0];
    assert_eq!(c.speed_basis, runner::report::SpeedBasis::Decode);
    assert!(c.rows.iter().any(|r| r.relative.as_ref().unwrap().text.contains("± ")));
}

/// An int4 that runner rounded from fp32 weights is another model than the GGUF's own int4 blocks: its row says
/// where it came from, so the two are told apart wherever rows are named.
#[test]
fn a_derived_precision_names_its_source() {
    let mut runs = runs();
    runs.retain(|r| r.summary.scenario.name == "gsm8k" && r.summary.model.info["precision"] != "int8");
    let mut derived = runs.iter().find(|r| r.summary.model.info["precision"] == "int4").unwrap().clone();
    derived.dir = PathBuf::from("runs/gsm8k-int4-derived");
    derived.summary.model.hash = format!("sha256:{}", "d".repeat(64));
    derived.summary.model.derivation = Some(runner::testing::derivation_record("int4", "fp32"));
    runs.push(derived);
    let report = build(runs, &BaselineChoice::Auto).unwrap();
    let names: Vec<&str> = report.comparisons[0].rows.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"Tiny int4 cpu") && names.contains(&"Tiny int4 from fp32 cpu"), "{names:?}");
}

/// 0-shot and 5-shot runs, or generation and log-likelihood runs, of one scenario on the same samples pose
/// different tasks: each setup is a comparison (and a page) of its own, named by its setup, and no paired
/// difference is drawn between them.
#[test]
fn runs_posed_differently_are_separate_comparisons() {
    let mut runs = runs();
    let mut five_shot =
        run(Config { scenario: "gsm8k", precision: "int4", itl: 12.0, modulus: 3, peak_mib: 300 }, "vm");
    five_shot.summary.settings.few_shot = 5;
    five_shot.summary.settings.few_shot_order = Some("first".into());
    let mut scored = run(Config { scenario: "gsm8k", precision: "fp32", itl: 21.0, modulus: 2, peak_mib: 700 }, "vm");
    scored.summary.settings.scoring = "loglikelihood".into();
    // Zero examples where the scenario gives five by default: a task of its own, titled so.
    let mut zero_shot =
        run(Config { scenario: "gsm8k", precision: "int8", itl: 12.0, modulus: 3, peak_mib: 300 }, "vm");
    zero_shot.summary.scenario.default_few_shot = Some(5);
    runs.extend([five_shot, scored, zero_shot]);
    let report = build(runs, &BaselineChoice::Auto).unwrap();
    let gsm8k: Vec<(&str, &str, usize)> = report
        .comparisons
        .iter()
        .filter(|c| c.scenario == "gsm8k")
        .map(|c| (c.id.as_str(), c.title.as_str(), c.rows.len()))
        .collect();
    assert_eq!(gsm8k.len(), 4, "{gsm8k:?}");
    let find = |setup: &str| *gsm8k.iter().find(|(_, title, _)| title.ends_with(setup)).unwrap();
    assert_eq!(find("(12 of 100 samples)").2, 3, "the three plain generation runs: {gsm8k:?}");
    let (id, _, rows) = find(", 5-shot (first)");
    assert!(id.contains("-5-shot-first-") && rows == 1, "{gsm8k:?}");
    let (id, _, rows) = find(", log-likelihood");
    assert!(id.contains("-log-likelihood-") && rows == 1, "{gsm8k:?}");
    let (id, _, rows) = find(", 0-shot");
    assert!(id.contains("-0-shot-") && rows == 1, "{gsm8k:?}");
}

#[test]
fn baseline_can_be_chosen_by_name_or_index_and_bad_choices_name_the_rows() {
    // Each comparison has exactly one int4 row.
    assert!(build(runs(), &BaselineChoice::parse("int4")).is_ok());
    let gsm8k_only: Vec<RunFolder> = runs().into_iter().filter(|r| r.summary.scenario.name == "gsm8k").collect();
    let report = build(gsm8k_only.clone(), &BaselineChoice::parse("tiny int4")).unwrap();
    let c = &report.comparisons[0];
    assert_eq!(c.rows[c.baseline].precision, "int4");
    let fp32 = &c.rows[0];
    assert!(fp32.relative.as_ref().unwrap().text.ends_with("× slower"), "{:?}", fp32.relative);
    let report = build(gsm8k_only.clone(), &BaselineChoice::parse("1")).unwrap();
    assert_eq!(report.comparisons[0].baseline, 1);
    let err = build(gsm8k_only.clone(), &BaselineChoice::parse("7")).unwrap_err().to_string();
    assert!(err.contains("--baseline 7") && err.contains("Tiny int8 cpu"), "{err}");
    let err = build(gsm8k_only, &BaselineChoice::parse("bf16")).unwrap_err().to_string();
    assert!(err.contains("--baseline bf16") && err.contains("no row"), "{err}");
}

/// A sweep's runs carry the names the sweep gave them (`RunSummary.run_name`): rows show those, and the
/// baseline can be chosen by one. Runs made outside a sweep keep the model-precision-provider label.
#[test]
fn rows_of_sweep_runs_are_named_as_the_sweep_named_them() {
    let mut inputs: Vec<RunFolder> = runs().into_iter().filter(|r| r.summary.scenario.name == "gsm8k").collect();
    inputs[0].summary.run_name = Some("gsm8k-int4-fast".into());
    let report = build(inputs.clone(), &BaselineChoice::Auto).unwrap();
    let names: Vec<&str> = report.comparisons[0].rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Tiny fp32 cpu", "Tiny int8 cpu", "gsm8k-int4-fast (Tiny int4 cpu)"]);
    let report = build(inputs, &BaselineChoice::parse("gsm8k-int4-fast")).unwrap();
    let c = &report.comparisons[0];
    assert_eq!(c.rows[c.baseline].precision, "int4");
    let markdown = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(markdown.contains("gsm8k-int4-fast"), "{markdown}");
}

#[test]
fn without_fp32_the_slowest_row_is_the_baseline() {
    let inputs: Vec<RunFolder> =
        runs().into_iter().filter(|r| r.dir.ends_with("gsm8k-int4") || r.dir.ends_with("gsm8k-int8")).collect();
    let report = build(inputs, &BaselineChoice::Auto).unwrap();
    let c = &report.comparisons[0];
    assert_eq!(c.rows[c.baseline].precision, "int8");
    assert!(c.baseline_rule.contains("slowest"));
}

#[test]
fn identical_runs_are_read_once() {
    let mut inputs = runs();
    let mut copy = inputs[0].clone();
    copy.dir = PathBuf::from("elsewhere/gsm8k-int4");
    inputs.push(copy);
    let report = build(inputs, &BaselineChoice::Auto).unwrap();
    assert_eq!(report.comparisons.iter().map(|c| c.rows.len()).sum::<usize>(), 4);
    assert_eq!(report.duplicates.len(), 1);
    assert_eq!(
        (report.duplicates[0].dir.as_str(), report.duplicates[0].same_as.as_str()),
        ("elsewhere/gsm8k-int4", "runs/gsm8k-int4")
    );
}

/// A page can hold runs made by older builds of its scenario (the published MMLU pages do): it describes
/// the scenario as its newest run recorded it, whatever order the folders were read in.
#[test]
fn a_page_describes_the_scenario_as_its_newest_run_does() {
    let mut inputs: Vec<RunFolder> = runs().into_iter().filter(|r| r.summary.scenario.name == "gsm8k").collect();
    let dated = [
        ("2026-11-20T09:00:00Z", "old words"),
        ("2026-12-01T09:00:00Z", "new words"),
        ("2026-11-25T09:00:00Z", "middle words"),
    ];
    for (input, (started, words)) in inputs.iter_mut().zip(dated) {
        input.summary.started_at = started.to_string();
        input.summary.scenario.description = words.to_string();
    }
    for order in [inputs.clone(), inputs.iter().rev().cloned().collect()] {
        let report = build(order, &BaselineChoice::Auto).unwrap();
        assert_eq!(report.comparisons[0].scenario_description, "new words");
    }
}

#[test]
fn runs_from_two_hosts_are_named_by_host() {
    let inputs = vec![
        run(Config { scenario: "gsm8k", precision: "int4", itl: 10.0, modulus: 4, peak_mib: 300 }, "laptop"),
        run(Config { scenario: "gsm8k", precision: "int4", itl: 12.0, modulus: 4, peak_mib: 300 }, "server"),
    ];
    let report = build(inputs, &BaselineChoice::Auto).unwrap();
    let names: Vec<&str> = report.comparisons[0].rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Tiny int4 cpu @laptop (Test CPU)", "Tiny int4 cpu @server (Test CPU)"]);
}

/// Machines of one kind can share a hostname and differ in CPU (the published MMLU page holds runs from an
/// AMD EPYC and an Intel Xeon, both `vm`): they are two machines, and the page says their speeds differ by
/// machine too.
#[test]
fn runs_from_one_hostname_on_two_cpus_are_two_machines() {
    let mut inputs = vec![
        run(Config { scenario: "gsm8k", precision: "int4", itl: 10.0, modulus: 4, peak_mib: 300 }, "vm"),
        run(Config { scenario: "gsm8k", precision: "fp32", itl: 20.0, modulus: 2, peak_mib: 700 }, "vm"),
    ];
    inputs[1].summary.host.cpu_model = "Other CPU".to_string();
    let report = build(inputs, &BaselineChoice::Auto).unwrap();
    let names: Vec<&str> = report.comparisons[0].rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Tiny fp32 cpu @vm (Other CPU)", "Tiny int4 cpu @vm (Test CPU)"]);
    let page = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(page.contains("The runs come from 2 machines"), "{page}");
}

/// A resumed run's timings come from more than one sitting, perhaps on more than one machine: its provenance
/// row says how many.
#[test]
fn a_resumed_run_says_its_timings_come_from_several_sittings() {
    let mut inputs = runs();
    inputs[1].summary.resumed_at = vec!["2026-11-22T11:00:00Z".into(), "2026-11-23T09:00:00Z".into()];
    let page = MarkdownExporter { templates: Templates::default() }
        .render(&build(inputs, &BaselineChoice::Auto).unwrap())
        .unwrap();
    assert_eq!(page.matches("resumed 2× (timings from 3 sittings)").count(), 1, "{page}");
}

#[test]
fn markdown_report_snapshot() {
    let text = MarkdownExporter { templates: Templates::default() }.render(&report()).unwrap();
    insta::assert_snapshot!("markdown_report", text);
}

#[test]
fn terminal_csv_and_json_show_every_row() {
    let report = report();
    let terminal = TerminalExporter.render(&report).unwrap();
    let needles = [
        "Tiny fp32 cpu",
        "Tiny int8 cpu",
        "Tiny int4 cpu",
        "× faster",
        "baseline: Tiny fp32 cpu",
        "speed = mean decode",
    ];
    for needle in needles {
        assert!(terminal.contains(needle), "{needle} missing from\n{terminal}");
    }
    let csv = CsvExporter.render(&report).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("comparison,row,model,precision,ep,batch_size"), "{}", lines[0]);
    assert!(lines[0].contains("accuracy,accuracy_ci95_low,accuracy_ci95_high"));
    let json: serde_json::Value = serde_json::from_str(&JsonExporter.render(&report).unwrap()).unwrap();
    assert_eq!(json["comparisons"].as_array().unwrap().len(), 2);
}

/// Tags open and close in order (void elements and self-closing tags aside); returns the tag counts.
fn check_balanced(html: &str) -> BTreeMap<String, usize> {
    const VOID: [&str; 6] = ["meta", "br", "hr", "img", "input", "link"];
    let mut stack: Vec<String> = Vec::new();
    let mut counts = BTreeMap::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').expect("unterminated tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name.trim(), "</{name}> closes <{open}>");
            continue;
        }
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        *counts.entry(name.clone()).or_default() += 1;
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    counts
}

/// minijinja's HTML escaping (it escapes `/` too).
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

#[test]
fn html_is_balanced_and_holds_every_run_and_chart() {
    let report = report();
    let html = HtmlExporter { templates: Templates::default() }.render(&report).unwrap();
    let counts = check_balanced(&html);
    // Seven charts per comparison: decode, memory, TTFT, ITL, scatter, phases, prefill.
    assert_eq!(counts["svg"], 7 * report.comparisons.len(), "{counts:?}");
    for class in ["class=\"decode\"", "class=\"memory\"", "class=\"box\"", "class=\"scatter\"", "class=\"phases\""] {
        assert!(html.contains(class), "{class} chart missing");
    }
    assert!(html.contains("class=\"front-line\""), "Pareto front not drawn");
    for c in &report.comparisons {
        for r in &c.rows {
            assert!(html.contains(&r.name), "{} missing", r.name);
            assert!(html.contains(&html_escape(&r.command)), "command of {} missing", r.name);
        }
    }
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"), "not self-contained");
    assert!(html.contains("@media print"));
}

#[test]
fn names_from_results_are_escaped_in_html_and_markdown() {
    let mut input = run(Config { scenario: "gsm8k", precision: "int4", itl: 10.0, modulus: 4, peak_mib: 300 }, "vm");
    input.summary.model.info["name"] = serde_json::json!("<script>alert(1)</script>|x");
    input.summary.host.cpu_model = "<b>cpu</b>".into();
    let report = build(vec![input], &BaselineChoice::Auto).unwrap();
    let html = HtmlExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(!html.contains("<script>") && !html.contains("<b>cpu"), "unescaped markup in HTML");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;|x"), "name not shown escaped");
    check_balanced(&html);
    let md = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(!md.contains("<script>"), "unescaped markup in Markdown");
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\|x"));
}

#[test]
fn a_template_naming_a_missing_variable_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in runner::report::render::BUILTIN_TEMPLATES {
        fs::write(dir.path().join(name), text).unwrap();
    }
    fs::write(dir.path().join("report.md.jinja"), "{% for c in comparisons %}{{ c.titel }}{% endfor %}").unwrap();
    let templates = Templates::from_dir(dir.path());
    let err = MarkdownExporter { templates: templates.clone() }.render(&report()).unwrap_err().to_string();
    assert!(err.contains("report.md.jinja") && err.contains("undefined"), "{err}");
    assert!(err.contains("titel") || err.contains("line 1"), "{err}");
    // A restyled copy that renders is used instead of the built-in one.
    fs::write(dir.path().join("report.md.jinja"), "{% for c in comparisons %}{{ c.title }}\n{% endfor %}").unwrap();
    let text = MarkdownExporter { templates }.render(&report()).unwrap();
    assert_eq!(text.lines().count(), 2);
    let missing = Templates::from_dir(dir.path().join("nope"));
    let err = MarkdownExporter { templates: missing }.render(&report()).unwrap_err().to_string();
    assert!(err.contains("report.md.jinja"), "{err}");
}

#[test]
fn published_folder_renders_byte_identically_from_results_folders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reports/data/2026-11-22");
    for input in runs() {
        write_run(&data.join(input.dir.file_name().unwrap()), &input);
    }
    // A copy in another date folder is the same run: merged, not doubled.
    write_run(&dir.path().join("reports/data/2026-11-23/gsm8k-int4-copy"), &runs()[0]);
    let out = dir.path().join("reports");
    let render = || {
        let inputs = runner::report::load_runs(&[out.join("data")]).unwrap();
        let written =
            publish(build(inputs, &BaselineChoice::Auto).unwrap(), &out, &Templates::default()).unwrap().written;
        written.iter().map(|p| (p.clone(), fs::read(p).unwrap())).collect::<Vec<_>>()
    };
    let first = render();
    let second = render();
    assert_eq!(first, second);
    let names: Vec<String> = first.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.contains(&"README.md".to_string()));
    let index = fs::read_to_string(out.join("README.md")).unwrap();
    for c in ["arc-test-n12-", "gsm8k-test-n12-"] {
        assert!(index.contains(c), "{c} missing from the index:\n{index}");
    }
    let page = fs::read_to_string(
        first
            .iter()
            .find(|(p, _)| p.to_string_lossy().contains("gsm8k") && p.extension().unwrap() == "md")
            .unwrap()
            .0
            .clone(),
    )
    .unwrap();
    assert!(page.contains("`data/2026-11-22/gsm8k-int4`"), "run folders are shown relative to the reports folder");
    assert!(page.contains("Left out as identical"), "{page}");

    // The GSM8K runs leave the data: their pages go with them, the others and notes written by hand stay.
    fs::write(out.join("notes.md"), "# by hand\n").unwrap();
    for entry in fs::read_dir(&data).unwrap() {
        let run = entry.unwrap().path();
        if run.to_string_lossy().contains("gsm8k") {
            fs::remove_dir_all(run).unwrap();
        }
    }
    fs::remove_dir_all(dir.path().join("reports/data/2026-11-23")).unwrap();
    let inputs = runner::report::load_runs(&[out.join("data")]).unwrap();
    let published = publish(build(inputs, &BaselineChoice::Auto).unwrap(), &out, &Templates::default()).unwrap();
    let gone = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().starts_with("gsm8k-test-n12-");
    assert_eq!(published.removed.len(), 2, "{:?}", published.removed);
    assert!(published.removed.iter().all(|p| gone(p) && !p.exists()), "{:?}", published.removed);
    assert_eq!(published.written.len(), 3, "{:?}", published.written);
    assert!(published.written.iter().all(|p| !gone(p) && p.exists()));
    assert!(out.join("notes.md").exists(), "a file the index never linked is not the publisher's");
    assert!(!fs::read_to_string(out.join("README.md")).unwrap().contains("gsm8k"));
}

#[test]
fn archive_lays_runs_out_by_date_and_host() {
    let input = &runs()[0];
    let path = runner::report::archive_path(&input.summary, Path::new("results/20261122T100000Z-gsm8k-int4"));
    assert_eq!(path, Path::new("2026-11-22/20261122T100000Z-gsm8k-int4-vm"));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("results/run1");
    write_run(&source, input);
    let placed = runner::report::archive(&[(source.clone(), input.summary.clone())], &dir.path().join("data")).unwrap();
    let target = &placed[&source];
    assert!(target.ends_with("2026-11-22/run1-vm"));
    // Published samples are gzipped, and read back as the run's own samples.jsonl is.
    assert!(target.join("summary.json").is_file() && target.join("samples.jsonl.gz").is_file());
    assert!(!target.join("samples.jsonl").exists());
    let (original, archived) = (RunFolder::load(&source).unwrap(), RunFolder::load(target).unwrap());
    assert_eq!(archived.samples.len(), original.samples.len());
    assert!(archived.warnings.is_empty(), "{:?}", archived.warnings);
    let ids = |f: &RunFolder| f.samples.iter().map(|s| (s.id.clone(), s.output.clone())).collect::<Vec<_>>();
    assert_eq!(ids(&archived), ids(&original));

    // The same run again, resumed since: its archive is brought up to date in place.
    let mut resumed = input.clone();
    resumed.summary.resumed_at.push("2026-11-22T11:00:00Z".into());
    write_run(&source, &resumed);
    let again = runner::report::archive(&[(source.clone(), resumed.summary)], &dir.path().join("data")).unwrap();
    assert_eq!(&again[&source], target);
    assert_eq!(RunFolder::load(target).unwrap().summary.resumed_at.len(), 1);
    // Another run of the same folder name on another machine called `vm` the same day: kept beside it.
    let mut other = input.clone();
    other.summary.started_at = "2026-11-22T18:30:00Z".into();
    let elsewhere = dir.path().join("elsewhere/run1");
    write_run(&elsewhere, &other);
    let placed = runner::report::archive(&[(elsewhere.clone(), other.summary)], &dir.path().join("data")).unwrap();
    assert!(placed[&elsewhere].ends_with("2026-11-22/run1-vm-2"), "{:?}", placed[&elsewhere]);
    assert_eq!(RunFolder::load(target).unwrap().summary.started_at, input.summary.started_at, "the first one is kept");
    assert_eq!(RunFolder::load(&placed[&elsewhere]).unwrap().summary.started_at, "2026-11-22T18:30:00Z");
}

#[test]
fn cli_prints_tables_and_writes_formats() {
    let dir = tempfile::tempdir().unwrap();
    for input in runs() {
        write_run(&dir.path().join(input.dir.file_name().unwrap()), &input);
    }
    let out = common::runner().args(["report"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Tiny int4 cpu") && text.contains("× faster"), "{text}");
    let out = common::runner().args(["report", "--format", "csv", "--out", "-"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 5);
    let html = dir.path().join("r.html");
    let out =
        common::runner().args(["report", "--format", "html", "--out"]).arg(&html).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    check_balanced(&fs::read_to_string(&html).unwrap());
    let out = common::runner().args(["report", "--baseline", "nope"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--baseline nope"), "{err}");
    let out = common::runner().args(["report"]).arg(dir.path().join("missing")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() { copy_tree(&path, &target) } else { fs::copy(&path, &target).map(|_| ()).unwrap() }
    }
}

/// The committed pages are what `cargo xtask report` makes from the committed data and templates.
#[test]
fn committed_reports_match_what_the_templates_produce() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    copy_tree(&root.join("reports/data"), &out.join("data"));
    let inputs = runner::report::load_runs(&[out.join("data")]).unwrap();
    let templates = Templates::from_dir(root.join("templates"));
    let mut report = build(inputs, &BaselineChoice::Auto).unwrap();
    // As `cargo xtask report` does: the published figures beside runner's.
    report.attach_published(&runner::report::model::read_published(&root.join("reports/published.yaml")).unwrap());
    let written = publish(report, &out, &templates).unwrap().written;
    for path in written {
        let name = path.file_name().unwrap();
        let committed = fs::read_to_string(root.join("reports").join(name)).unwrap_or_else(|_| {
            panic!("reports/{} is not committed: run `cargo xtask report`", name.to_string_lossy())
        });
        assert!(
            committed == fs::read_to_string(&path).unwrap(),
            "reports/{} differs from what the templates render: run `cargo xtask report`",
            name.to_string_lossy()
        );
    }
}

/// Decodes an 8-bit RGB or RGBA PNG: (width, height, channels, pixels).
fn decode_png(bytes: &[u8]) -> (usize, usize, usize, Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat, mut header) = (8, Vec::new(), None);
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let body = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => header = Some(body.to_vec()),
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        pos += 12 + len;
    }
    let h = header.expect("no IHDR");
    let width = u32::from_be_bytes(h[0..4].try_into().unwrap()) as usize;
    let height = u32::from_be_bytes(h[4..8].try_into().unwrap()) as usize;
    assert_eq!(h[8], 8, "bit depth");
    let channels = match h[9] {
        2 => 3,
        6 => 4,
        other => panic!("colour type {other}"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(idat.as_slice()).read_to_end(&mut raw).expect("the PNG's image data inflates");
    let stride = width * channels;
    let mut pixels = vec![0u8; stride * height];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels { pixels[y * stride + x - channels] as i32 } else { 0 };
            let b = if y > 0 { pixels[(y - 1) * stride + x] as i32 } else { 0 };
            let c = if y > 0 && x >= channels { pixels[(y - 1) * stride + x - channels] as i32 } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("filter {other}"),
            };
            pixels[y * stride + x] = (line[x] as i32 + predicted) as u8;
        }
    }
    (width, height, channels, pixels)
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[test]
fn html_renders_in_headless_chromium_to_a_picture_with_charts() {
    let Some(browser) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "chromium is not installed although CI installs it (cargo xtask ci)");
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    fs::write(&html, HtmlExporter { templates: Templates::default() }.render(&report()).unwrap()).unwrap();
    let png = dir.path().join("out.png");
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2000"])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(png.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let (width, height, channels, pixels) = decode_png(&fs::read(&png).unwrap());
    assert_eq!((width, height), (1280, 2000));
    let mut colours = std::collections::BTreeSet::new();
    let mut ink = 0usize;
    for p in pixels.chunks(channels) {
        colours.insert((p[0], p[1], p[2]));
        if p[0] < 200 || p[1] < 200 || p[2] < 200 {
            ink += 1;
        }
    }
    let share = ink as f64 / (width * height) as f64;
    // Text, table rules and filled bars: a blank or error page has a handful of colours and no ink.
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(share > 0.01, "only {:.2}% of pixels are not white-ish", share * 100.0);
    // The bar colour of the charts is on the page.
    assert!(colours.iter().any(|&(r, g, b)| (r, g, b) == (0x3b, 0x6f, 0xb6)), "no chart bars rendered");
}

/// A log-likelihood run as `exec --scoring loglikelihood` writes it: choices scored, nothing decoded.
fn scored_run(precision: &str, ms_per_sample: f64, modulus: usize) -> RunFolder {
    let c = Config { scenario: "arc", precision, itl: 10.0, modulus, peak_mib: 300 };
    let mut samples = records(&c);
    for record in &mut samples {
        record.output = None;
        record.output_tokens = None;
        record.finish = None;
        record.timings = SampleTimings {
            prompt_ms: 0.05,
            score_ms: 0.05,
            generate_ms: ms_per_sample,
            e2e_ms: ms_per_sample + 0.2,
            ..Default::default()
        };
        record.choices = Some(
            (0..4)
                .map(|k| ChoiceRecord { text: String::new(), logprob: -(k as f64), tokens: 2, greedy: false })
                .collect(),
        );
    }
    let mut summary = summary(&c, &samples, "vm");
    summary.settings.scoring = "loglikelihood".into();
    let binary = MetricSpec { higher_is_better: true, binary: true, sum: false };
    let specs = BTreeMap::from([("accuracy".to_string(), binary), ("answered".to_string(), binary)]);
    summary.results = Aggregates::from_records(&samples, &specs);
    RunFolder { dir: PathBuf::from(format!("runs/arc-{precision}")), summary, samples, warnings: Vec::new() }
}

/// Log-likelihood runs decode nothing: their speed is scored tokens/s, in the Pareto plane too, and their model
/// time is prefill work, not decode.
#[test]
fn log_likelihood_pages_measure_speed_in_scored_tokens() {
    let runs = vec![scored_run("fp32", 200.0, 2), scored_run("int4", 80.0, 3), scored_run("int8", 60.0, 2)];
    let report = build(runs, &BaselineChoice::Auto).unwrap();
    let c = &report.comparisons[0];
    assert!(
        c.charts.scatter.title.contains("scored tokens/s") && !c.charts.scatter.empty,
        "{}",
        c.charts.scatter.title
    );
    let front: Vec<(&str, bool)> = c.charts.scatter.rows.iter().map(|p| (p.name.as_str(), p.on_front)).collect();
    // int8 is fastest and as accurate as fp32: it alone is on the front.
    assert_eq!(front, [("Tiny fp32 cpu", false), ("Tiny int8 cpu", true), ("Tiny int4 cpu", false)], "{front:?}");
    let fp32 = &c.rows[0];
    assert!(fp32.phases.prefill_ms >= 200.0 && fp32.phases.decode_ms == 0.0, "{:?}", fp32.phases);
    let markdown = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(markdown.contains("| run | accuracy | scored tokens/s | on the Pareto front |"), "{markdown}");
    let html = HtmlExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(html.contains("Scored tokens&#x2f;s (log-likelihood"), "no scored-throughput chart");
    let ttft = html.find("Time to first token").map(|at| &html[at.saturating_sub(300)..at + 100]);
    assert!(ttft.is_none(), "a chart with no data: {ttft:?}");
}

/// Two one-thread sessions side by side (`--workers 2`) score each question slower than one two-thread
/// session but more questions per second: the page compares log-likelihood runs that differ in sessions by
/// samples per second of model time, each sample's share of the overlapped time.
#[test]
fn log_likelihood_runs_on_several_sessions_are_compared_by_samples_per_second() {
    let one = scored_run("int4", 100.0, 2);
    let mut two = scored_run("int4", 150.0, 2);
    for record in &mut two.samples {
        record.timings.model_share_ms = Some(record.timings.generate_ms / 2.0);
    }
    two.summary.runtime.workers = Some(2);
    two.summary.run_name = Some("int4-w2".into());
    two.dir = PathBuf::from("runs/arc-int4-w2");
    let report = build(vec![one, two], &BaselineChoice::Auto).unwrap();
    let c = &report.comparisons[0];
    assert_eq!(c.speed_basis, runner::report::SpeedBasis::ScoredThroughput);
    let row = |sessions: usize| c.rows.iter().find(|r| r.sessions == sessions).unwrap();
    assert!((row(1).samples_per_s.unwrap() - 10.0).abs() < 1e-9, "{:?}", row(1).samples_per_s);
    assert!((row(2).samples_per_s.unwrap() - 2.0 / 0.15).abs() < 1e-9, "{:?}", row(2).samples_per_s);
    let faster = row(2).relative.as_ref().unwrap();
    assert!((faster.ratio - 4.0 / 3.0).abs() < 1e-9 && faster.text.contains("faster"), "{}", faster.text);
    let markdown = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(markdown.contains("compares samples/s (the runs differ in batch size or sessions)"), "{markdown}");
}

/// A batched generation run: one stream decodes slower than alone, but its rows share each batch's time, so
/// the page's throughput table and accuracy–speed plane place it by the tokens/s it delivers.
#[test]
fn batched_generation_rows_are_placed_by_the_throughput_they_deliver() {
    let batched = {
        let mut input =
            run(Config { scenario: "gsm8k", precision: "int4", itl: 25.0, modulus: 4, peak_mib: 900 }, "vm");
        // Batches of 4: each row recorded its batch's time, its share a quarter of it.
        for record in &mut input.samples {
            record.timings.model_share_ms = Some(record.timings.generate_ms / 4.0);
        }
        input.summary.settings.batch_size = 4;
        input.dir = PathBuf::from("runs/gsm8k-int4-b4");
        input
    };
    let runs = vec![
        run(Config { scenario: "gsm8k", precision: "fp32", itl: 20.0, modulus: 2, peak_mib: 700 }, "vm"),
        run(Config { scenario: "gsm8k", precision: "int4", itl: 10.0, modulus: 4, peak_mib: 300 }, "vm"),
        batched,
    ];
    let report = build(runs, &BaselineChoice::Auto).unwrap();
    let c = &report.comparisons[0];
    let row = |name: &str| c.rows.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no row {name}"));
    let (alone, batched) = (row("Tiny int4 cpu"), row("Tiny int4 cpu b4"));
    assert!(batched.decode.as_ref().unwrap().mean < alone.decode.as_ref().unwrap().mean);
    let (alone_tps, batched_tps) = (alone.output_tokens_per_s.unwrap(), batched.output_tokens_per_s.unwrap());
    assert!(batched_tps > 1.5 * alone_tps, "{batched_tps} vs {alone_tps}");
    // From the samples: 12 samples of 11 tokens over their shares of the model's time.
    let input = run(Config { scenario: "gsm8k", precision: "int4", itl: 25.0, modulus: 4, peak_mib: 900 }, "vm");
    let share_seconds: f64 = input.samples.iter().map(|r| r.timings.generate_ms / 4.0 / 1e3).sum();
    assert!((batched_tps - 12.0 * 11.0 / share_seconds).abs() < 1e-9, "{batched_tps} vs {share_seconds} s");
    assert_eq!(c.charts.scatter.speed_label, "output tokens/s (all rows of a batch)");
    let front: Vec<(&str, bool)> = c.charts.scatter.rows.iter().map(|p| (p.name.as_str(), p.on_front)).collect();
    // fp32 is the most accurate; the batched int4 delivers the most tokens/s; int4 alone beats neither.
    assert_eq!(front, [("Tiny fp32 cpu", true), ("Tiny int4 cpu", false), ("Tiny int4 cpu b4", true)], "{front:?}");
    let markdown = MarkdownExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(markdown.contains("## Throughput"), "{markdown}");
    assert!(markdown.contains(&format!("| Tiny int4 cpu b4 | 4 | {:.3} | {batched_tps:.1} |", 12.0 / share_seconds)));
    assert!(!markdown.contains("## Log-likelihood speed"), "{markdown}");
    let html = HtmlExporter { templates: Templates::default() }.render(&report).unwrap();
    assert!(html.contains("<h2>Throughput</h2>"), "no throughput table in the HTML page");
}
