//! Chart geometry for the HTML report, as data: bar, box/strip, scatter and stacked-bar coordinates in SVG
//! user units, axis ticks and labels. The templates draw the `<rect>`s and `<line>`s from these, so a
//! restyled template changes the look without Rust. Coordinates are rounded to 0.1 so output is stable.

use serde::Serialize;

use super::model::{Row, SpeedBasis, Throughput};
use crate::files::human_bytes;
use crate::stats::percentile;

/// Every chart of one comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Charts {
    pub decode: BarChart,
    pub prefill: BarChart,
    pub memory: BarChart,
    pub ttft: BoxChart,
    pub itl: BoxChart,
    pub scatter: Scatter,
    pub phases: StackedChart,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// Position along the axis (x for horizontal axes, y for vertical ones).
    pub at: f64,
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub label: String,
    pub label_y: f64,
    pub y: f64,
    pub x: f64,
    pub width: f64,
    pub height: f64,
    pub value_label: String,
    pub value_x: f64,
    pub baseline: bool,
    /// A ± one standard deviation whisker, when the value has a spread.
    pub error: Option<(f64, f64)>,
}

/// What every chart of horizontal rows shares: its size, the plot's left and right edges and the value
/// axis under the rows. Flattened into each chart, so the templates read `chart.plot_left` as before.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub title: String,
    pub width: f64,
    pub height: f64,
    pub plot_left: f64,
    pub plot_right: f64,
    pub axis_y: f64,
    pub ticks: Vec<Tick>,
}

impl Frame {
    /// The frame of `rows` rows on `axis`, `below` points under the axis (tick labels, a legend).
    fn under_rows(title: &str, axis: &Horizontal, rows: usize, ticks: Vec<Tick>, below: f64) -> Frame {
        let axis_y = row_y(rows) + 2.0;
        Frame {
            title: title.to_string(),
            width: WIDTH,
            height: axis_y + below,
            plot_left: axis.left,
            plot_right: axis.right,
            axis_y,
            ticks,
        }
    }
}

/// Horizontal bars, one per row.
#[derive(Debug, Clone, Serialize)]
pub struct BarChart {
    #[serde(flatten)]
    pub frame: Frame,
    pub bars: Vec<Bar>,
    pub empty: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BoxRow {
    pub label: String,
    pub label_y: f64,
    /// Vertical centre and half-height of the box.
    pub y: f64,
    pub top: f64,
    pub box_height: f64,
    pub whisker_low: f64,
    pub whisker_high: f64,
    pub median: f64,
    /// Quartiles; absent when only the summary's percentiles are known (no per-sample file).
    pub q1: Option<f64>,
    pub q3: Option<f64>,
    pub dots: Vec<Dot>,
    pub value_label: String,
    pub value_x: f64,
}

/// Horizontal box plots (quartile box, median, whiskers at p1 and p99), with each sample as a dot when
/// there are few enough values to show.
#[derive(Debug, Clone, Serialize)]
pub struct BoxChart {
    #[serde(flatten)]
    pub frame: Frame,
    pub rows: Vec<BoxRow>,
    pub empty: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScatterPoint {
    pub label: String,
    pub x: f64,
    pub y: f64,
    /// The 95% interval of the metric, as y coordinates.
    pub y_low: f64,
    pub y_high: f64,
    pub on_front: bool,
    pub label_x: f64,
    pub label_y: f64,
}

/// One row of the accuracy–speed plane, as the Markdown page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ParetoRow {
    pub name: String,
    pub speed: f64,
    pub metric: f64,
    pub on_front: bool,
}

/// Headline metric against throughput (output tokens/s over the model's time; scored tokens/s for
/// log-likelihood runs, which decode nothing); the Pareto front joins the rows no other row beats on both.
#[derive(Debug, Clone, Serialize)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub width: f64,
    pub height: f64,
    pub plot_left: f64,
    pub plot_right: f64,
    pub plot_top: f64,
    pub plot_bottom: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub points: Vec<ScatterPoint>,
    /// SVG polyline points ("x,y x,y ...") through the front, by throughput.
    pub front: String,
    /// The rows plotted, in row order, with their values: the Markdown page's table of the same plane.
    pub rows: Vec<ParetoRow>,
    /// What the speed axis measures, for the Markdown table's header.
    pub speed_label: String,
    pub empty: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub phase: String,
    pub x: f64,
    pub width: f64,
    pub value_label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackedRow {
    pub label: String,
    pub label_y: f64,
    pub y: f64,
    pub height: f64,
    pub segments: Vec<Segment>,
    pub total_label: String,
    pub total_x: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LegendItem {
    pub phase: String,
    pub label: String,
    pub x: f64,
}

/// Mean time per sample split into phases, one stacked bar per row.
#[derive(Debug, Clone, Serialize)]
pub struct StackedChart {
    #[serde(flatten)]
    pub frame: Frame,
    pub legend_y: f64,
    pub rows: Vec<StackedRow>,
    pub legend: Vec<LegendItem>,
}

const WIDTH: f64 = 760.0;
const LABEL_WIDTH: f64 = 250.0;
const VALUE_WIDTH: f64 = 110.0;
const ROW_HEIGHT: f64 = 26.0;
const TOP: f64 = 8.0;
const AXIS_SPACE: f64 = 28.0;
/// More values than this per row are drawn as a box only: thousands of dots say nothing more.
const MAX_DOTS: usize = 200;

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A "nice" axis: the maximum rounded up to 1, 2 or 5 times a power of ten, and about five ticks.
fn nice_axis(max: f64) -> (f64, Vec<f64>) {
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (1.0, vec![0.0, 0.5, 1.0]);
    }
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= rough).unwrap_or(magnitude * 10.0);
    let top = (max / step).ceil() * step;
    let count = (top / step).round() as usize;
    (top, (0..=count).map(|i| i as f64 * step).collect())
}

fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

struct Horizontal {
    left: f64,
    right: f64,
    max: f64,
}

impl Horizontal {
    fn new(max: f64) -> (Self, Vec<f64>) {
        let (top, ticks) = nice_axis(max);
        (Horizontal { left: LABEL_WIDTH, right: WIDTH - VALUE_WIDTH, max: top }, ticks)
    }

    fn x(&self, v: f64) -> f64 {
        r1(self.left + (v.clamp(0.0, self.max) / self.max) * (self.right - self.left))
    }

    fn ticks(&self, values: &[f64], label: impl Fn(f64) -> String) -> Vec<Tick> {
        values.iter().map(|v| Tick { at: self.x(*v), label: label(*v) }).collect()
    }
}

fn row_y(i: usize) -> f64 {
    TOP + i as f64 * ROW_HEIGHT
}

fn bar_chart(
    title: &str,
    rows: &[Row],
    value: impl Fn(&Row) -> Option<(f64, Option<f64>)>,
    format: impl Fn(f64) -> String,
    tick_format: impl Fn(f64) -> String,
) -> BarChart {
    let values: Vec<Option<(f64, Option<f64>)>> = rows.iter().map(&value).collect();
    let max = values.iter().flatten().map(|(v, e)| v + e.unwrap_or(0.0)).fold(0.0, f64::max);
    let (axis, tick_values) = Horizontal::new(max);
    let bars = rows
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, (row, v))| {
            let y = row_y(i);
            let (value, error) = v.unwrap_or((0.0, None));
            Bar {
                label: row.name.clone(),
                label_y: r1(y + ROW_HEIGHT * 0.62),
                y: r1(y + 4.0),
                x: axis.left,
                width: r1(axis.x(value) - axis.left),
                height: ROW_HEIGHT - 8.0,
                value_label: v.map_or_else(|| "–".to_string(), |(v, _)| format(v)),
                value_x: r1(axis.right + 6.0),
                baseline: row.is_baseline,
                error: error.filter(|e| *e > 0.0).map(|e| (axis.x(value - e), axis.x(value + e))),
            }
        })
        .collect();
    BarChart {
        frame: Frame::under_rows(title, &axis, rows.len(), axis.ticks(&tick_values, tick_format), AXIS_SPACE),
        bars,
        empty: values.iter().all(Option::is_none),
    }
}

struct Spread {
    low: f64,
    q1: Option<f64>,
    median: f64,
    q3: Option<f64>,
    high: f64,
    values: Vec<f64>,
}

/// Quartiles and p1/p99 from the per-sample values, or the summary's median and p99 (min as the low
/// whisker) when the run's samples are not available.
fn spread(values: &[f64], summary: Option<&crate::stats::Distribution>) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return summary.map(|d| Spread {
            low: d.min,
            q1: None,
            median: d.median,
            q3: None,
            high: d.p99,
            values: vec![],
        });
    }
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| percentile(&sorted, p);
    let dots = if sorted.len() <= MAX_DOTS { sorted.clone() } else { Vec::new() };
    Some(Spread { low: q(1.0), q1: Some(q(25.0)), median: q(50.0), q3: Some(q(75.0)), high: q(99.0), values: dots })
}

fn box_chart(title: &str, rows: &[Row], spreads: Vec<Option<Spread>>) -> BoxChart {
    let max = spreads.iter().flatten().map(|s| s.values.iter().copied().fold(s.high, f64::max)).fold(0.0, f64::max);
    let (axis, tick_values) = Horizontal::new(max);
    let box_rows = rows
        .iter()
        .zip(&spreads)
        .enumerate()
        .filter_map(|(i, (row, s))| {
            let s = s.as_ref()?;
            let top = row_y(i) + 5.0;
            let height = ROW_HEIGHT - 10.0;
            let centre = top + height / 2.0;
            let dots = s
                .values
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    // A fixed jitter pattern spreads equal values apart without randomness.
                    let jitter = ((k * 7) % 11) as f64 - 5.0;
                    Dot { x: axis.x(*v), y: r1(centre + jitter * (height / 12.0)) }
                })
                .collect();
            Some(BoxRow {
                label: row.name.clone(),
                label_y: r1(row_y(i) + ROW_HEIGHT * 0.62),
                y: r1(centre),
                top: r1(top),
                box_height: height,
                whisker_low: axis.x(s.low),
                whisker_high: axis.x(s.high),
                median: axis.x(s.median),
                q1: s.q1.map(|v| axis.x(v)),
                q3: s.q3.map(|v| axis.x(v)),
                dots,
                value_label: format!("p50 {:.1}", s.median),
                value_x: r1(axis.right + 6.0),
            })
        })
        .collect::<Vec<_>>();
    BoxChart {
        frame: Frame::under_rows(title, &axis, rows.len(), axis.ticks(&tick_values, tick_label), AXIS_SPACE),
        empty: box_rows.is_empty(),
        rows: box_rows,
    }
}

/// Indices of the rows that no other row beats on both throughput and the headline metric.
pub fn pareto_front(points: &[(f64, f64)], higher_is_better: bool) -> Vec<bool> {
    let better = |a: f64, b: f64| if higher_is_better { a >= b } else { a <= b };
    let strictly = |a: f64, b: f64| if higher_is_better { a > b } else { a < b };
    points
        .iter()
        .map(|&(x, y)| !points.iter().any(|&(qx, qy)| qx >= x && better(qy, y) && (qx > x || strictly(qy, y))))
        .collect()
}

/// What a comparison's speed is read from. Generation runs: the bar chart shows decode tokens/s (one stream's
/// rate, per sample) and the accuracy–speed plane output tokens/s over the model's time, every row of a batch
/// together, so a batched run sits where its throughput puts it. Log-likelihood runs, which decode nothing:
/// scored tokens/s for both.
struct Speed {
    read: fn(&Row) -> Option<&Throughput>,
    /// The accuracy–speed plane's x: one number per run.
    plane: fn(&Row) -> Option<f64>,
    /// The plane's axis and table header.
    label: &'static str,
    /// Title of the bar chart.
    chart_title: &'static str,
}

fn speed_of(basis: SpeedBasis) -> Speed {
    match basis {
        // Log-likelihood rows chart tokens scored per second either way; rows that differ in batch size or
        // sessions place on the plane by samples per second, the figure their speed ratios use.
        SpeedBasis::Scored | SpeedBasis::ScoredThroughput => {
            let (plane, label): (fn(&Row) -> Option<f64>, _) = if basis == SpeedBasis::ScoredThroughput {
                (|r| r.samples_per_s, "samples/s of model time")
            } else {
                (|r| r.scored.as_ref().map(|t| t.mean), "scored tokens/s")
            };
            Speed {
                read: |r| r.scored.as_ref(),
                plane,
                label,
                chart_title: "Scored tokens/s (log-likelihood: contexts and choices through the model, mean ± sd)",
            }
        }
        SpeedBasis::Decode | SpeedBasis::Throughput => Speed {
            read: |r| r.decode.as_ref(),
            plane: |r| r.output_tokens_per_s,
            label: "output tokens/s (all rows of a batch)",
            chart_title: "Decode tokens/s per stream (mean ± sd)",
        },
    }
}

fn scatter(rows: &[Row], basis: SpeedBasis, headline: Option<&str>, higher_is_better: bool) -> Scatter {
    let (width, height) = (WIDTH, 380.0);
    let (left, right, top, bottom) = (70.0, WIDTH - 30.0, 16.0, 380.0 - 46.0);
    let Speed { plane: speed, label: speed_label, .. } = speed_of(basis);
    let data: Vec<(usize, f64, f64, f64, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let m = r.headline.as_ref()?;
            Some((i, speed(r)?, m.mean, m.ci95_low, m.ci95_high))
        })
        .collect();
    let x_max = data.iter().map(|d| d.1).fold(0.0, f64::max);
    let y_max = data.iter().map(|d| d.4.max(d.2)).fold(0.0, f64::max);
    let (x_top, x_ticks) = nice_axis(x_max);
    let (y_top, y_ticks) = nice_axis(y_max);
    let x = |v: f64| r1(left + (v / x_top) * (right - left));
    let y = |v: f64| r1(bottom - (v.clamp(0.0, y_top) / y_top) * (bottom - top));
    let front_flags = pareto_front(&data.iter().map(|d| (d.1, d.2)).collect::<Vec<_>>(), higher_is_better);
    let points: Vec<ScatterPoint> = data
        .iter()
        .zip(&front_flags)
        .map(|(&(i, tps, mean, low, high), &on_front)| {
            let (px, py) = (x(tps), y(mean));
            // Labels go left of points in the right half so they stay inside the plot.
            let label_x = if px > (left + right) / 2.0 { px - 8.0 } else { px + 8.0 };
            ScatterPoint {
                label: rows[i].name.clone(),
                x: px,
                y: py,
                y_low: y(low),
                y_high: y(high),
                on_front,
                label_x: r1(label_x),
                label_y: r1(py - 8.0),
            }
        })
        .collect();
    let mut front: Vec<&ScatterPoint> = points.iter().filter(|p| p.on_front).collect();
    front.sort_by(|a, b| a.x.total_cmp(&b.x));
    let front = front.iter().map(|p| format!("{},{}", p.x, p.y)).collect::<Vec<_>>().join(" ");
    let metric = headline.unwrap_or("metric");
    let table = data
        .iter()
        .zip(&front_flags)
        .map(|(&(i, speed, mean, _, _), &on_front)| ParetoRow {
            name: rows[i].name.clone(),
            speed,
            metric: mean,
            on_front,
        })
        .collect();
    Scatter {
        title: format!("{metric} against {speed_label}"),
        x_label: format!("{speed_label} (mean)"),
        rows: table,
        speed_label: speed_label.to_string(),
        y_label: format!("{metric} (95% CI)"),
        width,
        height,
        plot_left: left,
        plot_right: right,
        plot_top: top,
        plot_bottom: bottom,
        x_ticks: x_ticks.iter().map(|v| Tick { at: x(*v), label: tick_label(*v) }).collect(),
        y_ticks: y_ticks.iter().map(|v| Tick { at: y(*v), label: tick_label(*v) }).collect(),
        empty: points.is_empty(),
        points,
        front,
    }
}

fn phases(rows: &[Row]) -> StackedChart {
    const PHASES: [(&str, &str); 5] = [
        ("tokenize", "tokenize"),
        ("prefill", "prefill"),
        ("decode", "decode"),
        ("scenario", "scenario"),
        ("other", "other"),
    ];
    let totals: Vec<[f64; 5]> = rows
        .iter()
        .map(|r| {
            let p = &r.phases;
            [p.tokenize_ms, p.prefill_ms, p.decode_ms, p.scenario_ms, p.other_ms]
        })
        .collect();
    let max = totals.iter().map(|t| t.iter().sum::<f64>()).fold(0.0, f64::max);
    let (axis, tick_values) = Horizontal::new(max);
    let stacked = rows
        .iter()
        .zip(&totals)
        .enumerate()
        .map(|(i, (row, values))| {
            let mut start = 0.0;
            let segments = PHASES
                .iter()
                .zip(values)
                .map(|((phase, _), v)| {
                    let x = axis.x(start);
                    start += v;
                    Segment {
                        phase: phase.to_string(),
                        x,
                        width: r1(axis.x(start) - x),
                        value_label: format!("{phase} {v:.1} ms"),
                    }
                })
                .collect();
            StackedRow {
                label: row.name.clone(),
                label_y: r1(row_y(i) + ROW_HEIGHT * 0.62),
                y: r1(row_y(i) + 4.0),
                height: ROW_HEIGHT - 8.0,
                segments,
                total_label: format!("{:.0} ms", values.iter().sum::<f64>()),
                total_x: r1(axis.right + 6.0),
            }
        })
        .collect();
    // The legend sits under the tick labels, and needs a line of its own.
    let frame = Frame::under_rows(
        "Mean time per sample by phase (ms)",
        &axis,
        rows.len(),
        axis.ticks(&tick_values, tick_label),
        AXIS_SPACE + 6.0 + 18.0,
    );
    StackedChart {
        legend_y: frame.axis_y + AXIS_SPACE + 6.0,
        frame,
        rows: stacked,
        legend: PHASES
            .iter()
            .enumerate()
            .map(|(i, (phase, label))| LegendItem {
                phase: phase.to_string(),
                label: label.to_string(),
                x: axis.left + i as f64 * 90.0,
            })
            .collect(),
    }
}

/// `basis` is the comparison's [`SpeedBasis`]: the charts read speed from the same measure as its table.
pub fn build(rows: &[Row], basis: SpeedBasis, headline: Option<&str>, higher_is_better: bool) -> Charts {
    let mib = |b: f64| human_bytes(b as u64);
    let Speed { read: speed, chart_title: speed_title, .. } = speed_of(basis);
    Charts {
        decode: bar_chart(
            speed_title,
            rows,
            |r| speed(r).map(|d| (d.mean, Some(d.std))),
            |v| format!("{v:.1} tok/s"),
            tick_label,
        ),
        prefill: bar_chart(
            "Prefill throughput (tokens/s, mean ± sd)",
            rows,
            |r| r.prefill.as_ref().map(|d| (d.mean, Some(d.std))),
            |v| format!("{v:.1} tok/s"),
            tick_label,
        ),
        memory: bar_chart("Peak resident memory", rows, |r| r.peak_rss_bytes.map(|b| (b as f64, None)), mib, mib),
        ttft: box_chart(
            "Time to first token (ms): box q1–q3, whiskers p1–p99, dots = samples",
            rows,
            rows.iter().map(|r| spread(&r.ttft_values, r.ttft_summary.as_ref())).collect(),
        ),
        itl: box_chart(
            "Inter-token latency (ms): box q1–q3, whiskers p1–p99",
            rows,
            rows.iter().map(|r| spread(&r.itl_values, r.itl_summary.as_ref())).collect(),
        ),
        scatter: scatter(rows, basis, headline, higher_is_better),
        phases: phases(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes_round_up_to_readable_steps() {
        assert_eq!(nice_axis(87.0), (100.0, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]));
        assert_eq!(nice_axis(0.06).0, 0.06);
        assert_eq!(nice_axis(0.0).0, 1.0);
    }

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        // (throughput, accuracy): the third is slower and less accurate than the first.
        let points = [(100.0, 0.30), (50.0, 0.40), (40.0, 0.20), (100.0, 0.30)];
        assert_eq!(pareto_front(&points, true), vec![true, true, false, true]);
        // Lower is better: the third now wins on the metric.
        assert_eq!(pareto_front(&points, false), vec![true, false, true, true]);
    }
}
