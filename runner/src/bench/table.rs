//! The terminal and Markdown renderings of a [`BenchReport`]: llama-bench's table (one row per test, `ppP`
//! for prefill and `tgN` for decode, tokens/s as mean ± sd), then a latency table, then warnings.

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, CellAlignment, Table};

use super::report::{BenchReport, ConfigurationResult};
use crate::files::human_bytes;
use crate::stats::Distribution;

fn threads(result: &ConfigurationResult) -> String {
    result.threads.map_or_else(|| "default".to_string(), |t| t.to_string())
}

fn mean_sd(d: &Option<Distribution>, digits: usize) -> String {
    d.as_ref().map_or_else(|| "–".to_string(), |d| format!("{:.digits$} ± {:.digits$}", d.mean, d.std))
}

fn range(d: &Option<Distribution>, digits: usize) -> String {
    d.as_ref().map_or_else(|| "–".to_string(), |d| format!("{:.digits$} … {:.digits$}", d.min, d.max))
}

fn new_table(markdown: bool, header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(if markdown { ASCII_MARKDOWN } else { UTF8_FULL_CONDENSED }).set_header(header.to_vec());
    table
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

/// The tables and warnings; `markdown` gives GitHub-flavoured tables for pasting into reports.
pub fn render(report: &BenchReport, markdown: bool) -> String {
    let mut out = String::new();
    let runtime = report.onnxruntime.as_ref().map_or_else(|| "?".to_string(), |r| r.version.clone());
    let load = |l: Option<f64>| l.map_or_else(|| "?".to_string(), |l| format!("{l:.2}"));
    out.push_str(&format!(
        "runner bench {} — ONNX Runtime {runtime} — {} ({} logical cores) — {} repetitions after {} warm-up — \
         load average {} → {}\n",
        report.runner.version,
        report.host.cpu_model,
        report.host.logical_cores,
        report.settings.repetitions,
        report.settings.warmup,
        load(report.load_average_start),
        load(report.load_average_end),
    ));
    if markdown {
        out.push('\n');
    }

    let mut throughput = new_table(
        markdown,
        &["model", "size", "params", "precision", "ep", "threads", "batch", "test", "t/s", "min … max"],
    );
    for r in &report.results {
        let tests = [
            (format!("pp{}", r.prompt_tokens), &r.summary.prefill_tokens_per_s),
            (format!("tg{}", r.gen_tokens), &r.summary.decode_tokens_per_s),
        ];
        for (test, distribution) in tests {
            throughput.add_row(vec![
                Cell::new(&r.model.name),
                right(human_bytes(r.model.size_bytes)),
                right(r.model.params.map_or_else(|| "–".to_string(), |p| format!("{:.2} M", p as f64 / 1e6))),
                Cell::new(r.model.precision_label()),
                Cell::new(&r.ep),
                right(threads(r)),
                right(r.batch_size.to_string()),
                right(test),
                right(mean_sd(distribution, 2)),
                right(range(distribution, 2)),
            ]);
        }
    }
    out.push_str(&throughput.to_string());
    out.push_str("\n\n");

    let mut latency = new_table(
        markdown,
        &[
            "model",
            "precision",
            "ep",
            "threads",
            "batch",
            "test",
            "TTFT ms",
            "ITL p50 ms",
            "ITL p99 ms",
            "e2e ms",
            "peak RSS",
            "load s",
        ],
    );
    for r in &report.results {
        let s = &r.summary;
        latency.add_row(vec![
            Cell::new(&r.model.name),
            Cell::new(r.model.precision_label()),
            Cell::new(&r.ep),
            right(threads(r)),
            right(r.batch_size.to_string()),
            right(r.test.clone()),
            right(mean_sd(&s.ttft_ms, 1)),
            right(s.itl_ms.as_ref().map_or_else(|| "–".to_string(), |d| format!("{:.2}", d.median))),
            right(s.itl_ms.as_ref().map_or_else(|| "–".to_string(), |d| format!("{:.2}", d.p99))),
            right(mean_sd(&s.e2e_ms, 1)),
            right(s.peak_rss_bytes.as_ref().map_or_else(|| "–".to_string(), |d| human_bytes(d.max as u64))),
            right(format!("{:.2}", r.load_ms / 1e3)),
        ]);
    }
    out.push_str(&latency.to_string());
    out.push('\n');
    if markdown && !report.warnings.is_empty() {
        out.push('\n');
    }
    for warning in &report.warnings {
        out.push_str(&format!("Warning: {warning}\n"));
    }
    out
}
