//! A paired comparison as people read it: comfy-tables of metric differences and speed ratios on the
//! terminal, followed by one verdict line per row.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::stats::paired::{PairedComparison, PairedTest, format_p};

/// The terminal rendering of `runner compare`.
pub fn render_terminal(c: &PairedComparison) -> String {
    let mut out = format!(
        "A: {} ({})\nB: {} ({})\n{} shared samples",
        c.a.label,
        c.a.dir.display(),
        c.b.label,
        c.b.dir.display(),
        c.shared_samples
    );
    if c.only_in_a > 0 || c.only_in_b > 0 {
        out.push_str(&format!(" ({} only in A, {} only in B)", c.only_in_a, c.only_in_b));
    }
    out.push('\n');

    if !c.metrics.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(vec!["metric", "n", "A", "B", "B − A", "95% CI", "test", "p", ""]);
        for m in &c.metrics {
            let (scale, digits) = if m.binary { (100.0, 1) } else { (1.0, 3) };
            let test = match &m.test {
                PairedTest::McnemarExact { a_only, b_only } => format!("McNemar ({a_only} A-only, {b_only} B-only)"),
                PairedTest::PairedBootstrap { resamples } => format!("paired bootstrap ({resamples})"),
            };
            let value = |v: f64| format!("{:.digits$}{}", v * scale, if m.binary { "%" } else { "" });
            table.add_row(vec![
                Cell::new(&m.metric),
                Cell::new(m.n).set_alignment(CellAlignment::Right),
                Cell::new(value(m.mean_a)).set_alignment(CellAlignment::Right),
                Cell::new(value(m.mean_b)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:+.digits$}", m.difference * scale)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:+.digits$} to {:+.digits$}", m.ci95_low * scale, m.ci95_high * scale)),
                Cell::new(test),
                Cell::new(format_p(m.p_value).trim_start_matches("p ").trim_start_matches("= ")),
                Cell::new(if m.significant { "significant" } else { "not significant" }),
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }

    if !c.speed.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        table.set_header(vec!["speed", "n", "A (mean ± se)", "B (mean ± se)", "faster", "ratio"]);
        for s in &c.speed {
            table.add_row(vec![
                Cell::new(format!("{} ({})", s.measure, s.unit)),
                Cell::new(s.n).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.2} ± {:.2}", s.mean_a, s.std_err_a)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.2} ± {:.2}", s.mean_b, s.std_err_b)).set_alignment(CellAlignment::Right),
                Cell::new(if s.b_faster { "B" } else { "A" }),
                Cell::new(format!("{:.2} ± {:.2}×", s.ratio, s.ratio_std_err)).set_alignment(CellAlignment::Right),
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }

    for line in c.metrics.iter().map(|m| &m.verdict).chain(c.speed.iter().map(|s| &s.verdict)) {
        out.push_str(&format!("• {line}\n"));
    }
    for warning in &c.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}
