//! `runner bench` on real ONNX Runtime and the tiny generated model: exact lengths, recorded repetitions,
//! the sweep's order, the JSON schema, the synthetic prompt, and errors that name their flag.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};
use crate::engine::LogitsProcessor;
use crate::import::Precision;
use crate::testing::{quiet_ort_cache, tiny, write_tiny_model_folder};

/// The tiny model, imported once for this file's tests.
fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    quiet_ort_cache();
    &MODEL
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let model = write_tiny_model_folder(dir.path(), 7, Precision::Int4);
            (dir, model)
        })
        .1
}

fn options(models: Vec<PathBuf>) -> BenchOptions {
    BenchOptions {
        models,
        prompt_tokens: vec![DEFAULT_PROMPT_TOKENS],
        gen_tokens: vec![DEFAULT_GEN_TOKENS],
        batch_sizes: vec![1],
        eps: vec![Ep::Cpu],
        threads: vec![Some(1)],
        repetitions: 3,
        warmup: 1,
        interleave: false,
        ort_lib: None,
        intra_op_spinning: None,
    }
}

fn tiny_options(prompt_tokens: &[usize], gen_tokens: &[usize]) -> BenchOptions {
    BenchOptions {
        prompt_tokens: prompt_tokens.to_vec(),
        gen_tokens: gen_tokens.to_vec(),
        ..options(vec![tiny_model().to_path_buf()])
    }
}

/// One small sweep on the tiny model, shared by the tests that read its report.
fn tiny_report() -> &'static BenchReport {
    static REPORT: OnceLock<BenchReport> = OnceLock::new();
    REPORT.get_or_init(|| run(&tiny_options(&[7, 30], &[1, 6]), false).unwrap())
}

#[test]
fn every_repetition_has_exactly_p_prompt_and_n_generated_tokens() {
    let report = tiny_report();
    let shapes: Vec<(usize, usize)> = report.results.iter().map(|r| (r.prompt_tokens, r.gen_tokens)).collect();
    assert_eq!(shapes, [(7, 1), (7, 6), (30, 1), (30, 6)]);
    for result in &report.results {
        assert_eq!(result.repetitions.len(), 3, "{}", result.test);
        for rep in &result.repetitions {
            assert_eq!((rep.prompt_tokens, rep.generated_tokens), (result.prompt_tokens, result.gen_tokens));
            assert_eq!(rep.itl_ms.len(), result.gen_tokens - 1);
            assert!(rep.prefill_ms > 0.0 && rep.ttft_ms >= rep.prefill_ms && rep.e2e_ms >= rep.ttft_ms);
            assert_eq!(rep.decode_tokens_per_s.is_some(), result.gen_tokens > 1);
            assert!(rep.peak_rss_bytes.unwrap() > 0);
            // Percent of decode time outside ONNX Runtime's run: measured whenever there are decode steps.
            let overhead = rep.harness_overhead_pct;
            assert_eq!(overhead.is_some(), result.gen_tokens > 1);
            assert!(overhead.is_none_or(|o| (0.0..100.0).contains(&o)), "{overhead:?}");
        }
        let s = &result.summary;
        assert_eq!(s.prefill_tokens_per_s.as_ref().unwrap().count, 3);
        assert_eq!(s.e2e_ms.as_ref().unwrap().count, 3);
        assert_eq!(s.decode_tokens_per_s.as_ref().map(|d| d.count), (result.gen_tokens > 1).then_some(3));
        assert_eq!(s.itl_ms.as_ref().map_or(0, |d| d.count), 3 * (result.gen_tokens - 1));
        assert!(result.load_ms > 0.0);
        assert_eq!(result.model.context_length, tiny::CONTEXT);
        assert_eq!(result.model.precision, "int4");
        assert!(result.model.params.is_some_and(|p| p > 0));
        assert!(result.model.size_bytes > 0);
    }
    assert_eq!(report.onnxruntime.as_ref().unwrap().version, crate::paths::ORT_VERSION);
}

/// Precision and parameter counts are read from the graph the way `runner exec` records them
/// (`model.graph`), not taken from the folder's label; an unreadable graph falls back to the label and warns.
#[test]
fn precision_and_params_come_from_the_graph_like_exec() {
    let dir = tempfile::tempdir().unwrap();
    let fp16 = write_tiny_model_folder(dir.path(), 9, Precision::Fp16);
    for model_dir in [tiny_model(), fp16.as_path()] {
        let folder = ModelFolder::open(model_dir).unwrap();
        let graph = inspect_model(&folder.model_path).unwrap();
        let model = open_model(model_dir).unwrap();
        assert_eq!(model.facts.precision, graph.weight_precision, "{}", model_dir.display());
        assert_eq!(model.facts.params, Some(graph.weights));
        assert!(graph.weights > 0 && model.warning.is_none());
    }
    assert_eq!(open_model(&fp16).unwrap().facts.precision, "fp16");
    assert_eq!(open_model(tiny_model()).unwrap().facts.precision, "int4");
    // A folder runner derived says what from, so a rounded fp16 and a native one are told apart in tables.
    let plain = open_model(&fp16).unwrap().facts;
    assert_eq!((plain.derived_from.as_deref(), plain.precision_label().as_str()), (None, "fp16"));
    let record = crate::testing::derivation_record("fp16", "fp32");
    std::fs::write(fp16.join(crate::derive::DERIVED_FILE), serde_json::to_string(&record).unwrap()).unwrap();
    let derived = open_model(&fp16).unwrap().facts;
    assert_eq!((derived.derived_from.as_deref(), derived.precision_label().as_str()), (Some("fp32"), "fp16 from fp32"));

    // The folder claims fp16 but its graph is not ONNX: the claim is reported with a warning, params unknown.
    std::fs::write(fp16.join(crate::model_folder::MODEL_FILE), b"not an onnx graph").unwrap();
    let broken = open_model(&fp16).unwrap();
    assert_eq!((broken.facts.precision.as_str(), broken.facts.params), ("fp16", None));
    let warning = broken.warning.unwrap();
    assert!(warning.contains("could not be read from the graph") && warning.contains("folder's label"), "{warning}");
}

/// Batched configurations run every sequence of the batch to exactly N tokens.
#[test]
fn batched_repetitions_generate_every_sequence_to_the_fixed_length() {
    let mut options = tiny_options(&[7], &[6]);
    options.batch_sizes = vec![1, 3];
    options.repetitions = 2;
    let report = run(&options, false).unwrap();
    let batches: Vec<usize> = report.results.iter().map(|r| r.batch_size).collect();
    assert_eq!(batches, [1, 3]);
    for result in &report.results {
        assert_eq!(result.repetitions.len(), 2);
        for rep in &result.repetitions {
            assert_eq!((rep.prompt_tokens, rep.generated_tokens), (7, 6));
        }
    }
}

/// The engine entry behind bench generates from exactly the given ids: greedy tokens computed one forward
/// pass at a time give the same text, EOS included.
#[test]
fn generate_from_tokens_runs_the_given_ids_to_the_fixed_length() {
    let model = tiny_model();
    let mut engine = Engine::load(&engine_options(model, Ep::Cpu, Some(1), None)).unwrap();
    let pool = token_pool(engine.tokenizer(), engine.model_info().vocab, &engine.model_info().eos_token_ids);
    let prompt = synthetic_prompt(&pool, 12).unwrap();
    let count = 9;
    let generation = engine.generate_from_tokens(&prompt, &measure::settings(count)).unwrap();
    assert_eq!((generation.prompt_tokens, generation.output_tokens), (12, count));
    assert_eq!(generation.prompt_text, "");

    engine.reset().unwrap();
    let mut logits = engine.forward(&prompt).unwrap();
    let mut greedy = Vec::new();
    for _ in 0..count {
        let token = LogitsProcessor::default().sample(&logits).unwrap();
        greedy.push(token);
        logits = engine.forward(&[token]).unwrap();
    }
    assert_eq!(generation.output, engine.tokenizer().decode(&greedy, true).unwrap());
}

#[test]
fn synthetic_prompts_are_fixed_ordinary_tokens() {
    let folder = crate::engine::ModelFolder::open(tiny_model()).unwrap();
    let pool = token_pool(&folder.tokenizer, folder.info.vocab, &folder.info.eos_token_ids);
    // The three control tokens are special; everything else is ordinary.
    assert_eq!(pool.len(), tiny::VOCAB - 3);
    assert!(pool.iter().all(|&id| id > tiny::EOS_ID && (id as usize) < tiny::VOCAB));
    let long = synthetic_prompt(&pool, 500).unwrap();
    assert!(long.iter().all(|id| pool.contains(id)));
    assert_eq!(synthetic_prompt(&pool, 500).unwrap(), long);
    assert_eq!(synthetic_prompt(&pool, 20).unwrap(), long[..20]);
    // The same ids on every machine and release: SplitMix64 seeded with PROMPT_SEED over this pool.
    assert_eq!(long[..8], SNAPSHOT_FIRST_IDS);
    assert!(matches!(synthetic_prompt(&[], 3), Err(BenchError::NoOrdinaryTokens)));
}

const SNAPSHOT_FIRST_IDS: [u32; 8] = [99, 265, 191, 173, 130, 60, 196, 190];

#[test]
fn the_sweep_is_the_cartesian_product_in_documented_order() {
    let mut options = options(vec!["a".into(), "b".into()]);
    options.threads = vec![Some(1), Some(2)];
    options.prompt_tokens = vec![16, 32];
    options.gen_tokens = vec![4, 8];
    let configurations = plan(&options);
    let mut expected = Vec::new();
    for model in 0..2 {
        for threads in [1, 2] {
            for prompt_tokens in [16, 32] {
                for gen_tokens in [4, 8] {
                    expected.push(Configuration {
                        model,
                        ep: Ep::Cpu,
                        threads: Some(threads),
                        batch_size: 1,
                        prompt_tokens,
                        gen_tokens,
                    });
                }
            }
        }
    }
    assert_eq!(configurations, expected);
    assert_eq!(configurations[1].test_name(), "pp16+tg8");
}

#[test]
fn a_thread_sweep_loads_one_engine_per_thread_count_and_keeps_plan_order() {
    let mut options = tiny_options(&[5], &[2, 3]);
    options.threads = vec![Some(1), Some(2)];
    options.repetitions = 1;
    options.warmup = 0;
    let report = run(&options, false).unwrap();
    let order: Vec<(Option<usize>, String)> = report.results.iter().map(|r| (r.threads, r.test.clone())).collect();
    assert_eq!(
        order,
        [
            (Some(1), "pp5+tg2".to_string()),
            (Some(1), "pp5+tg3".to_string()),
            (Some(2), "pp5+tg2".to_string()),
            (Some(2), "pp5+tg3".to_string())
        ]
    );
    // One load per engine: configurations sharing an engine report the same load.
    assert_eq!(report.results[0].load_ms, report.results[1].load_ms);
    assert_eq!(report.settings.warmup, 0);
}

/// Every key path of a JSON value, arrays collapsed to `[]`.
fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}.{key}");
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// The `--json` schema is a contract for scripts and reports: changing a key must change this snapshot
/// (and `SCHEMA`'s version) on purpose.
#[test]
fn json_schema_keys_are_stable() {
    let report = tiny_report();
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["schema"], "runner.bench/1");
    let mut paths = BTreeSet::new();
    key_paths(&json, "", &mut paths);
    // The host's GPU list is empty here; its keys belong to provenance, not to this schema.
    let paths: Vec<String> = paths.into_iter().filter(|p| !p.starts_with(".host.gpus[]")).collect();
    let expected: Vec<String> =
        SNAPSHOT_KEYS.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    assert_eq!(paths, expected, "actual:\n{}", paths.join("\n"));
}

const SNAPSHOT_KEYS: &str = "
.finished_at
.host
.host.cpu_model
.host.gpus
.host.hostname
.host.kernel
.host.logical_cores
.host.memory_bytes
.host.os
.load_average_end
.load_average_start
.onnxruntime
.onnxruntime.library
.onnxruntime.version
.results
.results[].batch_size
.results[].ep
.results[].gen_tokens
.results[].load_average_end
.results[].load_average_start
.results[].load_ms
.results[].load_peak_rss_bytes
.results[].model
.results[].model.context_length
.results[].model.derived_from
.results[].model.dir
.results[].model.name
.results[].model.params
.results[].model.precision
.results[].model.prompt_pool_size
.results[].model.size_bytes
.results[].prompt_tokens
.results[].repetitions
.results[].repetitions[].decode_tokens_per_s
.results[].repetitions[].e2e_ms
.results[].repetitions[].generated_tokens
.results[].repetitions[].harness_overhead_pct
.results[].repetitions[].itl_ms
.results[].repetitions[].peak_rss_bytes
.results[].repetitions[].prefill_ms
.results[].repetitions[].prefill_tokens_per_s
.results[].repetitions[].prompt_tokens
.results[].repetitions[].ttft_ms
.results[].summary
.results[].summary.decode_tokens_per_s
.results[].summary.decode_tokens_per_s.count
.results[].summary.decode_tokens_per_s.max
.results[].summary.decode_tokens_per_s.mean
.results[].summary.decode_tokens_per_s.median
.results[].summary.decode_tokens_per_s.min
.results[].summary.decode_tokens_per_s.p90
.results[].summary.decode_tokens_per_s.p95
.results[].summary.decode_tokens_per_s.p99
.results[].summary.decode_tokens_per_s.std
.results[].summary.e2e_ms
.results[].summary.e2e_ms.count
.results[].summary.e2e_ms.max
.results[].summary.e2e_ms.mean
.results[].summary.e2e_ms.median
.results[].summary.e2e_ms.min
.results[].summary.e2e_ms.p90
.results[].summary.e2e_ms.p95
.results[].summary.e2e_ms.p99
.results[].summary.e2e_ms.std
.results[].summary.harness_overhead_pct
.results[].summary.harness_overhead_pct.count
.results[].summary.harness_overhead_pct.max
.results[].summary.harness_overhead_pct.mean
.results[].summary.harness_overhead_pct.median
.results[].summary.harness_overhead_pct.min
.results[].summary.harness_overhead_pct.p90
.results[].summary.harness_overhead_pct.p95
.results[].summary.harness_overhead_pct.p99
.results[].summary.harness_overhead_pct.std
.results[].summary.itl_ms
.results[].summary.itl_ms.count
.results[].summary.itl_ms.max
.results[].summary.itl_ms.mean
.results[].summary.itl_ms.median
.results[].summary.itl_ms.min
.results[].summary.itl_ms.p90
.results[].summary.itl_ms.p95
.results[].summary.itl_ms.p99
.results[].summary.itl_ms.std
.results[].summary.peak_rss_bytes
.results[].summary.peak_rss_bytes.count
.results[].summary.peak_rss_bytes.max
.results[].summary.peak_rss_bytes.mean
.results[].summary.peak_rss_bytes.median
.results[].summary.peak_rss_bytes.min
.results[].summary.peak_rss_bytes.p90
.results[].summary.peak_rss_bytes.p95
.results[].summary.peak_rss_bytes.p99
.results[].summary.peak_rss_bytes.std
.results[].summary.prefill_tokens_per_s
.results[].summary.prefill_tokens_per_s.count
.results[].summary.prefill_tokens_per_s.max
.results[].summary.prefill_tokens_per_s.mean
.results[].summary.prefill_tokens_per_s.median
.results[].summary.prefill_tokens_per_s.min
.results[].summary.prefill_tokens_per_s.p90
.results[].summary.prefill_tokens_per_s.p95
.results[].summary.prefill_tokens_per_s.p99
.results[].summary.prefill_tokens_per_s.std
.results[].summary.ttft_ms
.results[].summary.ttft_ms.count
.results[].summary.ttft_ms.max
.results[].summary.ttft_ms.mean
.results[].summary.ttft_ms.median
.results[].summary.ttft_ms.min
.results[].summary.ttft_ms.p90
.results[].summary.ttft_ms.p95
.results[].summary.ttft_ms.p99
.results[].summary.ttft_ms.std
.results[].test
.results[].threads
.results[].warnings
.runner
.runner.git_commit
.runner.version
.schema
.settings
.settings.ignore_eos
.settings.interleave
.settings.intra_op_spinning
.settings.prompt_seed
.settings.repetitions
.settings.sampling
.settings.warmup
.started_at
.warnings
";

#[test]
fn options_errors_name_the_flag() {
    let message = |options: &BenchOptions| run(options, false).unwrap_err().to_string();
    let error = message(&tiny_options(&[1000], &[8, 24, 32]));
    assert!(
        error.starts_with("-p/--prompt-tokens 1000 with -n/--gen-tokens 32 needs 1032 positions")
            && error.contains(&format!("context of {} tokens", tiny::CONTEXT)),
        "{error}"
    );
    // Exactly filling the context is allowed.
    assert!(check_lengths(&tiny_options(&[1000], &[24]), &[open_model(tiny_model()).unwrap()]).is_ok());

    let error = message(&tiny_options(&[], &[4]));
    assert_eq!(error, "-p/--prompt-tokens needs at least one value");
    let mut bad = tiny_options(&[8], &[4]);
    bad.repetitions = 0;
    assert_eq!(message(&bad), "-r/--repetitions must be at least 1");
    bad = tiny_options(&[8], &[0]);
    assert_eq!(message(&bad), "-n/--gen-tokens must be at least 1");

    let error = message(&options(vec!["/nonexistent/model".into()]));
    assert!(error.starts_with("--model /nonexistent/model:"), "{error}");
}

fn parse(args: &[&str]) -> Result<BenchOptions, String> {
    let cli = Cli::try_parse_from([&["runner", "bench"], args].concat()).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Bench(args) => Ok(args.options()),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn command_line_lists_presets_and_defaults() {
    let defaults = parse(&[]).unwrap();
    assert_eq!(defaults.prompt_tokens, [512]);
    assert_eq!(defaults.gen_tokens, [128]);
    assert_eq!((defaults.repetitions, defaults.warmup), (5, 1));
    assert_eq!(defaults.threads, [None]);
    assert_eq!(defaults.models, [crate::paths::default_model()]);

    let options =
        parse(&["-p", "128,512", "-p", "64", "-n", "16,32", "-t", "1,2", "--model", "A", "--model", "B"]).unwrap();
    assert_eq!(options.prompt_tokens, [128, 512, 64]);
    assert_eq!(options.gen_tokens, [16, 32]);
    assert_eq!(options.threads, [Some(1), Some(2)]);
    assert_eq!(options.models, [PathBuf::from("A"), PathBuf::from("B")]);
    assert_eq!(plan(&options).len(), 2 * 3 * 2 * 2);

    let presets = parse(&["--prompt-preset", "short,medium,long", "-p", "100"]).unwrap();
    assert_eq!(presets.prompt_tokens, [100, 128, 512, 2048]);

    for (args, flag) in [
        (&["-p", "128,x"][..], "--prompt-tokens"),
        (&["-p", "128,,512"], "--prompt-tokens"),
        (&["-n", "0"], "--gen-tokens"),
        (&["-b", "1,two"], "--batch-size"),
        (&["-b", "0"], "--batch-size"),
        (&["-t", "0"], "--threads"),
        (&["-r", "0"], "--repetitions"),
        (&["--ep", "npu"], "--ep"),
        (&["--prompt-preset", "huge"], "--prompt-preset"),
    ] {
        let error = parse(args).unwrap_err();
        assert!(error.contains(flag), "{args:?}: {error}");
    }
}

#[test]
fn tables_have_llama_bench_rows_and_markdown_pastes() {
    let report = tiny_report();
    let text = render(report, false);
    for needle in ["model", "size", "params", "precision", "threads", "test", "t/s", "pp7", "tg6", "TTFT ms", "ITL p99"]
    {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // Two rows (pp and tg) per configuration in the throughput table.
    assert_eq!(text.lines().filter(|l| l.contains(" pp30 ") || l.contains(" tg6 ")).count(), 2 + 2);
    let markdown = render(report, true);
    assert!(markdown.lines().any(|l| l.starts_with("| model") && l.contains("| t/s")), "{markdown}");
    assert!(markdown.lines().any(|l| l.starts_with("|-")), "{markdown}");
}

fn repetition(prefill_tokens_per_s: f64, decode_tokens_per_s: f64) -> Repetition {
    Repetition {
        prompt_tokens: 8,
        generated_tokens: 4,
        prefill_ms: 1.0,
        prefill_tokens_per_s,
        ttft_ms: 1.0,
        decode_tokens_per_s: Some(decode_tokens_per_s),
        itl_ms: vec![1.0; 3],
        harness_overhead_pct: Some(0.5),
        e2e_ms: 4.0,
        peak_rss_bytes: Some(1),
    }
}

#[test]
fn unstable_repetitions_and_a_busy_machine_are_warned_about() {
    let configuration = plan(&tiny_options(&[8], &[4]))[0];
    let facts = open_model(tiny_model()).unwrap().facts;
    let result = |reps: Vec<Repetition>| {
        ConfigurationResult::new(&configuration, facts.clone(), (1.0, None), (None, None), reps)
    };
    let steady = result((0..5).map(|i| repetition(1000.0 + i as f64, 100.0 + 0.1 * i as f64)).collect());
    assert!(steady.warnings.is_empty(), "{:?}", steady.warnings);

    let noisy = result(vec![repetition(1000.0, 100.0), repetition(1000.0, 60.0), repetition(1000.0, 140.0)]);
    assert_eq!(noisy.warnings.len(), 1, "{:?}", noisy.warnings);
    assert!(
        noisy.warnings[0].contains(
            "[int4] pp8+tg4 on cpu with 1 threads at batch 1 decode tokens/s: the \
             standard deviation is 40% of the mean"
        ),
        "{}",
        noisy.warnings[0]
    );

    let outlier = result((0..6).map(|i| repetition(if i == 3 { 500.0 } else { 1000.0 + i as f64 }, 100.0)).collect());
    assert!(
        outlier.warnings.iter().any(|w| w.contains("prefill tokens/s: 1 of 6 measurements are statistical outliers"))
    );

    assert!(report::load_warning(Some(0.3), Some(2.1), 2).is_none());
    assert!(report::load_warning(Some(1.5), Some(1.5), 2).unwrap().contains("busy before the benchmark"));
    assert!(report::load_warning(Some(0.2), Some(3.0), 2).unwrap().contains("oversubscribed"));
    assert!(report::load_warning(None, None, 2).is_none());
}

#[test]
fn interleaving_runs_repetitions_round_robin_after_all_warm_ups() {
    let step = |configuration, measured| Step { configuration, measured };
    assert_eq!(
        schedule(2, 1, 2, false),
        [step(0, false), step(0, true), step(0, true), step(1, false), step(1, true), step(1, true)]
    );
    assert_eq!(
        schedule(2, 1, 2, true),
        [step(0, false), step(1, false), step(0, true), step(1, true), step(0, true), step(1, true)]
    );
    assert!(schedule(3, 0, 0, true).is_empty());

    // Two models kept loaded side by side; results still come in plan order with every repetition.
    let dir = tempfile::tempdir().unwrap();
    let second = write_tiny_model_folder(dir.path(), 8, Precision::Fp32);
    let mut options = tiny_options(&[6], &[3, 4]);
    options.models.push(second);
    options.interleave = true;
    options.repetitions = 2;
    let report = run(&options, false).unwrap();
    let order: Vec<(&str, &str)> =
        report.results.iter().map(|r| (r.model.precision.as_str(), r.test.as_str())).collect();
    assert_eq!(order, [("int4", "pp6+tg3"), ("int4", "pp6+tg4"), ("fp32", "pp6+tg3"), ("fp32", "pp6+tg4")]);
    assert!(report.results.iter().all(|r| r.repetitions.len() == 2 && r.load_ms > 0.0));
    assert!(report.settings.interleave);
}

/// On the default model's real tokenizer the pool leaves out exactly its 17 control tokens (ids 0..=16).
#[test]
fn default_model_prompts_skip_its_control_tokens() {
    if crate::testing::installed_default_gguf().is_none() {
        return;
    }
    let folder = crate::engine::ModelFolder::open(&crate::paths::default_model()).unwrap();
    let pool = token_pool(&folder.tokenizer, folder.info.vocab, &folder.info.eos_token_ids);
    assert_eq!(pool.len(), 49152 - 17);
    assert_eq!(pool[0], 17);
    let prompt = synthetic_prompt(&pool, 512).unwrap();
    assert!(prompt.iter().all(|id| (17..49152).contains(id)));
}
