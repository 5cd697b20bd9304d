//! The end-of-run summary people read: a comfy-table on the terminal, and the same figures rendered to
//! Markdown through the `templates/run-summary.md.jinja` template.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::summary::{MetricSummary, RunStatus, RunSummary};
use crate::files::human_bytes;
use crate::import::Precision;
use crate::memory::PeakScope;
use crate::stats::Distribution;
use crate::trace::TraceSummary;

const MARKDOWN_TEMPLATE: &str = include_str!("../../../templates/run-summary.md.jinja");

fn dist_cells(d: &Option<Distribution>, digits: usize) -> [String; 4] {
    match d {
        Some(d) => [
            format!("{:.digits$} ± {:.digits$}", d.mean, d.std),
            format!("{:.digits$}", d.median),
            format!("{:.digits$}", d.p90),
            format!("{:.digits$}", d.p99),
        ],
        None => ["–".into(), "–".into(), "–".into(), "–".into()],
    }
}

/// "llama, 30 layers, hidden 576, 9 heads (3 KV) of 64, 134.5 M parameters": what the model is, from its
/// configuration and the weights counted in its graph; None when nothing is known.
pub fn describe_architecture(summary: &RunSummary) -> Option<String> {
    let info = &summary.model.info;
    let number = |key: &str| info.get(key).and_then(serde_json::Value::as_u64).filter(|n| *n > 0);
    let mut parts: Vec<String> = Vec::new();
    if let Some(architecture) = info.get("architecture").and_then(|a| a.as_str()) {
        parts.push(architecture.to_string());
    }
    if let Some(layers) = number("layers") {
        parts.push(format!("{layers} layers"));
    }
    if let Some(hidden) = number("hidden_size") {
        parts.push(format!("hidden {hidden}"));
    }
    match (number("heads"), number("kv_heads"), number("head_size")) {
        (Some(heads), Some(kv), Some(size)) => parts.push(format!("{heads} heads ({kv} KV) of {size}")),
        (None, Some(kv), Some(size)) => parts.push(format!("{kv} KV heads of {size}")),
        _ => {}
    }
    if let Some(weights) = summary.model.graph.as_ref().map(|g| g.weights).filter(|w| *w > 0) {
        parts.push(format!("{:.1} M parameters", weights as f64 / 1e6));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The terminal summary: what ran, the scenario's metrics with confidence intervals, and timings.
pub fn render_terminal(summary: &RunSummary) -> String {
    let mut out = String::new();
    let r = &summary.results;

    let mut header = Table::new();
    header.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    // The precision the importer recorded, else the one measured from the graph (folders of other tools).
    let recorded = summary.model.info.get("precision").and_then(|p| p.as_str()).filter(|p| *p != "unknown");
    let measured = summary.model.graph.as_ref().map(|g| g.weight_precision.as_str());
    let precision = recorded.or(measured).unwrap_or("?");
    let model_name = summary.model.info.get("name").and_then(|p| p.as_str()).unwrap_or(&summary.model.dir);
    header.add_row(vec![
        "scenario",
        &format!("{} {} ({})", summary.scenario.name, summary.scenario.version, summary.scenario.hash),
    ]);
    header.add_row(vec![
        "dataset",
        &format!("{} — {} of {} samples", summary.dataset.label, summary.dataset.selected, summary.dataset.total),
    ]);
    if let Some(warnings) = dataset_warnings_line(summary) {
        header.add_row(vec!["dataset warnings", &warnings]);
    }
    header.add_row(vec!["model", &format!("{model_name} [{precision}] ({})", summary.model.hash)]);
    if let Some(shape) = describe_architecture(summary) {
        header.add_row(vec!["architecture", &shape]);
    }
    if let Some(graph) = &summary.model.graph {
        header.add_row(vec!["precision", &graph.label]);
    }
    if let Some(derived) = derivation_line(summary) {
        header.add_row(vec!["derived", &derived]);
    }
    let mode = summary
        .runtime
        .session
        .as_ref()
        .map_or(String::new(), |s| format!(", {} mode, graph optimisation {}", s.mode, s.graph_optimization));
    if let Some(a) = &summary.adapter {
        let share = a.parameter_share.map_or(String::new(), |s| format!(", {:.3}% of the model", s * 100.0));
        header.add_row(vec![
            "adapter",
            &format!(
                "{} — LoRA rank {}, {} parameters{share}, {} ({})",
                a.path.display(),
                a.rank,
                a.parameters,
                human_bytes(a.size_bytes),
                a.hash
            ),
        ]);
    }
    header.add_row(vec![
        "runtime",
        &format!(
            "ONNX Runtime {} on {}{mode} ({})",
            summary.runtime.onnxruntime_version, summary.runtime.execution_provider, summary.host.cpu_model
        ),
    ]);
    if let Some(nodes) = summary.runtime.session.as_ref().and_then(|s| s.node_assignment.as_ref()) {
        header.add_row(vec!["nodes", &nodes.describe()]);
    }
    header.add_row(vec!["generation", &summary.settings.describe_generation()]);
    header.add_row(vec![
        "samples",
        &format!("{} done, {} failed, {:.1} s wall", r.succeeded, r.failed, summary.wall_seconds),
    ]);
    // A run that did not reach its end says why where its numbers are read.
    if matches!(summary.status, RunStatus::Interrupted | RunStatus::Aborted) {
        header.add_row(vec!["status", &summary.verdict().to_string()]);
    }
    out.push_str(&header.to_string());
    out.push('\n');

    if !r.metrics.is_empty() {
        let mut metrics = Table::new();
        metrics.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["metric", "mean", "95% CI", "n"]);
        for (name, m) in &r.metrics {
            let arrow = if m.higher_is_better { "↑" } else { "↓" };
            metrics.add_row(vec![
                Cell::new(format!("{name} {arrow}")),
                Cell::new(format!("{:.4}", m.mean)).set_alignment(CellAlignment::Right),
                Cell::new(format!("[{:.4}, {:.4}]", m.ci95_low, m.ci95_high)),
                Cell::new(m.count).set_alignment(CellAlignment::Right),
            ]);
        }
        out.push_str(&metrics.to_string());
        out.push('\n');
    }

    if !r.subsets.is_empty() {
        let rows = r
            .subsets
            .iter()
            .flat_map(|(subset, metrics)| metrics.iter().map(move |(name, m)| (format!("{subset} · {name}"), m)));
        out.push_str(&metrics_table("subset · metric", rows));
    }
    for (name, value) in &r.scenario_metrics {
        out.push_str(&format!("{name} (scenario): {value:.4}\n"));
    }

    let mut timing = Table::new();
    timing.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["timing", "mean ± σ", "p50", "p90", "p99"]);
    let mut rows: Vec<(&str, &Option<Distribution>, usize)> = vec![
        ("TTFT (ms)", &r.ttft_ms, 1),
        ("inter-token latency (ms)", &r.itl_ms, 2),
        ("end-to-end (ms)", &r.e2e_ms, 0),
        ("decode (tokens/s)", &r.decode_tokens_per_s, 1),
        ("prefill (tokens/s)", &r.prefill_tokens_per_s, 0),
        ("sampling (ms per sample)", &r.sampling_ms, 2),
        ("output tokens", &r.output_tokens, 1),
    ];
    if r.scored_tokens_per_s.is_some() {
        rows.push(("scored tokens/s (log-likelihood)", &r.scored_tokens_per_s, 0));
        rows.push(("context tokens", &r.prompt_tokens, 1));
    }
    if r.thinking_tokens.is_some() {
        rows.push(("thinking tokens", &r.thinking_tokens, 1));
        rows.push(("answer tokens", &r.answer_tokens, 1));
    }
    for (name, d, digits) in rows {
        let mut row = vec![Cell::new(name)];
        row.extend(dist_cells(d, digits).into_iter().map(|c| Cell::new(c).set_alignment(CellAlignment::Right)));
        timing.add_row(row);
    }
    out.push_str(&timing.to_string());
    out.push('\n');
    if let Some(memory) = memory_line(summary) {
        out.push_str(&memory);
        out.push('\n');
    }
    if let Some(line) = throughput_line(summary) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(overhead) = r.scenario_overhead {
        out.push_str(&format!("scenario (WebAssembly) time: {:.3}% of generation\n", overhead * 100.0));
    }
    let lines = [gpu_line(summary), reasoning_line(summary), background_cpu_line(summary), adapter_line(summary)];
    for line in lines.into_iter().flatten() {
        out.push_str(&line);
        out.push('\n');
    }
    for w in &r.warnings {
        out.push_str(&format!("Warning: {w}\n"));
    }
    out
}

/// Samples and generated tokens per second of model time, with the batch size they were measured at: a
/// batched run's rows share their batch's time, so its throughput exceeds one stream's decode rate.
fn throughput_line(summary: &RunSummary) -> Option<String> {
    let r = &summary.results;
    let samples = r.samples_per_s?;
    let kind = if r.scored_tokens_per_s.is_some() { "log-likelihood throughput" } else { "throughput" };
    let tokens = r.output_tokens_per_s.map(|t| format!(", {t:.1} output tokens/s")).unwrap_or_default();
    let batch = match summary.settings.batch_size {
        1 => String::new(),
        b => format!(" (batches of {b}, each batch's time counted once)"),
    };
    Some(format!("{kind}: {samples:.2} samples/s{tokens} of model time{batch}"))
}

/// Resident memory at each stage in one line: after load, after prefill and after generation (means over
/// samples), the per-sample peak and the run's peak.
pub fn memory_line(summary: &RunSummary) -> Option<String> {
    let r = &summary.results;
    let m = &summary.memory;
    let peak = r.peak_rss_bytes?;
    let mut line = format!("resident memory: peak {}", human_bytes(peak));
    let mut stages = Vec::new();
    if let Some(after_load) = m.after_load_bytes {
        stages.push(format!("{} after model load", human_bytes(after_load)));
    }
    let mean = |d: &Option<Distribution>| d.as_ref().map(|d| human_bytes(d.mean as u64));
    if let Some(prefill) = mean(&r.rss_after_prefill_bytes) {
        stages.push(format!("{prefill} after prefill"));
    }
    if let Some(generation) = mean(&r.rss_after_generation_bytes) {
        stages.push(format!("{generation} after generation"));
    }
    if !stages.is_empty() {
        line.push_str(&format!("; {} (sample means)", stages.join(", ")));
    }
    if let Some(sample_peak) = &r.sample_peak_rss_bytes {
        let scope = match m.peak_scope {
            Some(PeakScope::Cumulative) => "cumulative: the kernel refused resetting the peak",
            _ => "each sample measured on its own",
        };
        line.push_str(&format!("; sample peaks up to {} ({scope})", human_bytes(sample_peak.max as u64)));
    }
    Some(line)
}

/// The GPU over the run in one line, on GPU runs.
pub fn gpu_line(summary: &RunSummary) -> Option<String> {
    let gpu = summary.gpu.as_ref()?;
    let mut line = format!(
        "GPU {}: memory used up to {}, utilisation {:.0}% mean, power {:.0} W mean / {:.0} W max ({} samples every {} ms)",
        gpu.device,
        human_bytes(gpu.run.memory_used_max_bytes),
        gpu.run.utilization_mean_percent,
        gpu.run.power_mean_watts,
        gpu.run.power_max_watts,
        gpu.run.samples,
        gpu.sample_interval_ms
    );
    if let (Some(joules), Some(per_token)) = (gpu.generation_energy_joules, gpu.joules_per_token) {
        line.push_str(&format!("; {joules:.1} J while generating, {:.2} mJ per generated token", per_token * 1e3));
    }
    Some(line)
}

/// Above this share of the machine's CPU time used by other processes, a run's timings are suspect.
pub const BACKGROUND_CPU_WARNING: f64 = 0.10;

/// Other processes' CPU use during the run, in one line, when it was high enough to disturb timings.
pub fn background_cpu_line(summary: &RunSummary) -> Option<String> {
    let share = summary.background_cpu.filter(|s| *s > BACKGROUND_CPU_WARNING)?;
    Some(format!(
        "background CPU load: other processes used {:.0}% of the machine's CPU time during the run; timings may be \
         slower and noisier than on a quiet machine",
        share * 100.0
    ))
}

/// The scenario's warnings about the data in one line (how many, the first), when it gave any: a flawed row
/// read as the reference harness reads it must show beside the accuracy it went into.
pub fn dataset_warnings_line(summary: &RunSummary) -> Option<String> {
    let warnings = &summary.dataset.warnings;
    let first = warnings.first()?;
    Some(match warnings.len() {
        1 => first.clone(),
        n => format!("{n}, the first: {first} (all in summary.json, dataset.warnings)"),
    })
}

/// What a derived model was made from and how far it is from its source, in one line: "int4 (MatMulNBits
/// block 32, accuracy level 4) from the fp32 graph in `DIR` (sha256:…), mean KL 4.4e-3 and top-1 97.2 % over
/// 109 positions".
pub fn derivation_line(summary: &RunSummary) -> Option<String> {
    let record = summary.model.derivation.as_ref()?;
    let options = &record.options;
    let how = match (options.precision, options.block_size, options.accuracy_level) {
        (_, Some(block), Some(level)) => format!(" (MatMulNBits block {block}, accuracy level {level})"),
        (_, Some(block), None) => format!(" (MatMulNBits block {block})"),
        (Precision::W8a8, ..) => " (DynamicQuantizeMatMul, 7-bit weights per channel, head float)".to_string(),
        _ => String::new(),
    };
    let fidelity = &record.fidelity;
    Some(format!(
        "{}{how} from the {} graph in `{}` ({}), mean KL {:.1e} and top-1 {:.1} % over {} positions",
        options.precision,
        record.source_precision,
        record.source_dir,
        record.source_hash,
        fidelity.mean_kl,
        fidelity.top1_agreement * 100.0,
        fidelity.positions
    ))
}

/// The adapter against its base run in one line, for adapter runs compared with their base.
pub fn adapter_line(summary: &RunSummary) -> Option<String> {
    let comparison = summary.adapter_comparison.as_ref()?;
    Some(format!("{} ({})", comparison.verdict, comparison.base_dir.display()))
}

/// Thinking versus answer tokens in one line, when the run split any thinking.
pub fn reasoning_line(summary: &RunSummary) -> Option<String> {
    let r = &summary.results;
    let thinking = r.thinking_tokens.as_ref()?;
    let markers =
        summary.settings.think_markers.as_ref().map_or(String::new(), |m| format!(" ({}…{})", m.open, m.close));
    let answer = r.answer_tokens.as_ref().map_or(String::new(), |a| format!(", {:.1} answer tokens", a.mean));
    let unclosed = if r.thinking_unclosed > 0 {
        format!("; {} samples ran out of tokens while thinking (empty answer)", r.thinking_unclosed)
    } else {
        String::new()
    };
    Some(format!("reasoning{markers}: {:.1} thinking tokens{answer} per sample (mean){unclosed}", thinking.mean))
}

/// What `--trace` wrote, for the terminal: where, how many events, and the operators that took longest.
pub fn describe_trace(path: &std::path::Path, trace: &TraceSummary) -> String {
    let total: f64 = trace.ort_ops.iter().map(|(_, us)| us).sum();
    let top: Vec<String> = trace
        .ort_ops
        .iter()
        .take(5)
        .map(|(op, us)| format!("{op} {:.1} ms ({:.0}%)", us / 1e3, if total > 0.0 { us / total * 100.0 } else { 0.0 }))
        .collect();
    let mut text = format!(
        "Trace: {} ({} runner spans, {} ONNX Runtime events); open it in https://ui.perfetto.dev or chrome://tracing",
        path.display(),
        trace.runner_spans,
        trace.ort_events
    );
    if !top.is_empty() {
        text.push_str(&format!("\nSlowest operators: {}", top.join(", ")));
    }
    text
}

/// A metric table: the declared figure (mean with its 95% interval, or the sum) and the count.
pub fn metrics_table<'a>(label: &str, rows: impl Iterator<Item = (String, &'a MetricSummary)>) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![label, "value", "95% CI", "n"]);
    for (name, m) in rows {
        let arrow = if m.higher_is_better { "↑" } else { "↓" };
        let (value, interval) = if m.aggregation == "sum" {
            (format!("{:.4} (sum)", m.sum), String::from("–"))
        } else {
            (format!("{:.4}", m.mean), format!("[{:.4}, {:.4}]", m.ci95_low, m.ci95_high))
        };
        table.add_row(vec![
            Cell::new(format!("{name} {arrow}")),
            Cell::new(value).set_alignment(CellAlignment::Right),
            Cell::new(interval),
            Cell::new(m.count).set_alignment(CellAlignment::Right),
        ]);
    }
    let mut text = table.to_string();
    text.push('\n');
    text
}

/// The Markdown summary written beside the results. Undefined variables are errors, so a template that
/// drifts from the summary's fields fails loudly instead of printing blanks.
pub fn render_markdown(summary: &RunSummary) -> anyhow::Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("bytes", |b: u64| human_bytes(b));
    env.add_filter("fixed", |v: f64, digits: usize| format!("{v:.digits$}"));
    env.add_template("run-summary.md", MARKDOWN_TEMPLATE)?;
    let text = env.get_template("run-summary.md")?.render(minijinja::context! {
        s => minijinja::Value::from(minijinja::value::Serde(summary)),
        generation => summary.settings.describe_generation(),
        memory => memory_line(summary),
        throughput => throughput_line(summary),
        gpu => gpu_line(summary),
        reasoning => reasoning_line(summary),
        background_cpu => background_cpu_line(summary),
        adapter => adapter_line(summary),
        dataset_warnings => dataset_warnings_line(summary),
        derivation => derivation_line(summary),
    })?;
    Ok(text)
}
