//! The end-of-run summary people read: a comfy-table on the terminal, and the same figures rendered to
//! Markdown through the `templates/run-summary.md.jinja` template.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::stats::Distribution;
use super::summary::{MetricSummary, RunSummary};

const MARKDOWN_TEMPLATE: &str = include_str!("../../../templates/run-summary.md.jinja");

/// Formats a byte count in binary units, e.g. "412.3 MiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") }
}

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

/// The terminal summary: what ran, the scenario's metrics with confidence intervals, and timings.
pub fn render_terminal(summary: &RunSummary) -> String {
    let mut out = String::new();
    let r = &summary.results;

    let mut header = Table::new();
    header.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    let precision = summary.model.info.get("precision").and_then(|p| p.as_str()).unwrap_or("?");
    let model_name = summary.model.info.get("name").and_then(|p| p.as_str()).unwrap_or(&summary.model.dir);
    header.add_row(vec![
        "scenario",
        &format!("{} {} ({})", summary.scenario.name, summary.scenario.version, summary.scenario.hash),
    ]);
    header.add_row(vec![
        "dataset",
        &format!("{} — {} of {} samples", summary.dataset.label, summary.dataset.selected, summary.dataset.total),
    ]);
    header.add_row(vec!["model", &format!("{model_name} [{precision}] ({})", summary.model.hash)]);
    header.add_row(vec![
        "runtime",
        &format!(
            "ONNX Runtime {} on {} ({})",
            summary.runtime.onnxruntime_version, summary.runtime.execution_provider, summary.host.cpu_model
        ),
    ]);
    header.add_row(vec!["generation", &summary.settings.describe_generation()]);
    header.add_row(vec![
        "samples",
        &format!("{} done, {} failed, {:.1} s wall", r.succeeded, r.failed, summary.wall_seconds),
    ]);
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
    let rows: [(&str, &Option<Distribution>, usize); 6] = [
        ("TTFT (ms)", &r.ttft_ms, 1),
        ("inter-token latency (ms)", &r.itl_ms, 2),
        ("end-to-end (ms)", &r.e2e_ms, 0),
        ("decode (tokens/s)", &r.decode_tokens_per_s, 1),
        ("prefill (tokens/s)", &r.prefill_tokens_per_s, 0),
        ("output tokens", &r.output_tokens, 1),
    ];
    for (name, d, digits) in rows {
        let mut row = vec![Cell::new(name)];
        row.extend(dist_cells(d, digits).into_iter().map(|c| Cell::new(c).set_alignment(CellAlignment::Right)));
        timing.add_row(row);
    }
    out.push_str(&timing.to_string());
    out.push('\n');
    if let Some(peak) = r.peak_rss_bytes {
        out.push_str(&format!("peak resident memory: {}", human_bytes(peak)));
        if let Some(overhead) = r.scenario_overhead {
            out.push_str(&format!("; scenario (WebAssembly) time: {:.3}% of generation", overhead * 100.0));
        }
        out.push('\n');
    }
    for w in &r.warnings {
        out.push_str(&format!("Warning: {w}\n"));
    }
    out
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
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(412 * 1024 * 1024 + 300 * 1024), "412.3 MiB");
    }
}
