//! Paired comparison of two runs on the samples they share: for each metric both runs scored, the means,
//! their difference (b − a) with a paired-bootstrap 95% confidence interval and a p-value (exact McNemar for
//! 0/1 metrics, paired bootstrap for continuous ones), and speed ratios in hyperfine's style ("1.84 ± 0.05
//! times faster"), each with a one-line verdict that says whether the difference is real.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Distribution, bootstrap, mcnemar};
use crate::results::folder::RunFolder;
use crate::results::{RunSummary, SampleRecord, SampleStatus};

/// Differences with p below this are called significant in verdicts.
pub const SIGNIFICANCE_LEVEL: f64 = 0.05;

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLabel {
    pub dir: PathBuf,
    /// What tells this run apart from the other one ("int4", "cuda, int8"), or the folder name when the
    /// two runs differ in nothing the label looks at.
    pub label: String,
}

/// How a metric difference was tested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "test", rename_all = "snake_case")]
pub enum PairedTest {
    /// Exact two-sided McNemar test: a binomial test on the discordant pairs. `a_only`: samples run a got
    /// right and run b wrong; `b_only`: the reverse.
    McnemarExact { a_only: usize, b_only: usize },
    /// Paired bootstrap: the per-sample differences, centred on zero to state the null hypothesis,
    /// resampled; p is the share of resampled means at least as far from zero as the observed one.
    PairedBootstrap { resamples: usize },
}

impl PairedTest {
    pub fn name(&self) -> &'static str {
        match self {
            PairedTest::McnemarExact { .. } => "McNemar",
            PairedTest::PairedBootstrap { .. } => "paired bootstrap",
        }
    }
}

/// One metric compared on the samples both runs scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDifference {
    pub metric: String,
    /// Samples both runs scored (matched by id).
    pub n: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// mean_b − mean_a.
    pub difference: f64,
    /// Paired-bootstrap 95% percentile interval of the difference.
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub p_value: f64,
    pub test: PairedTest,
    pub higher_is_better: bool,
    /// A 0/1 metric: differences are reported in percentage points.
    pub binary: bool,
    pub significant: bool,
    /// "int4 is 1.2 points worse than fp32 (95% CI −3.1 to +0.7, McNemar p = 0.31): not significant".
    pub verdict: String,
}

/// One speed measure compared as a ratio of means, hyperfine-style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedRatio {
    /// "decode tokens/s", "TTFT", "e2e latency".
    pub measure: String,
    pub unit: String,
    pub higher_is_better: bool,
    /// Samples with this measure in both runs.
    pub n: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// Standard errors of the two means.
    pub std_err_a: f64,
    pub std_err_b: f64,
    /// How many times faster the faster run is (≥ 1), and its standard error propagated from the two means'.
    pub ratio: f64,
    pub ratio_std_err: f64,
    /// Whether run b is the faster one.
    pub b_faster: bool,
    /// "int4 is 1.84 ± 0.05 times faster than fp32 (decode tokens/s)".
    pub verdict: String,
}

/// Two runs compared on their shared samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    pub a: RunLabel,
    pub b: RunLabel,
    /// Samples present in both runs (matched by subset and id, first repetition).
    pub shared_samples: usize,
    pub only_in_a: usize,
    pub only_in_b: usize,
    pub metrics: Vec<MetricDifference>,
    pub speed: Vec<SpeedRatio>,
    /// Things that weaken the comparison: different scenarios or datasets, unfinished runs.
    pub warnings: Vec<String>,
}

/// The key samples are matched on across runs.
type SampleKey<'a> = (Option<&'a str>, &'a str);

/// Each sample of a run by key, the first record of an id only (later repetitions do not pair).
fn by_key(samples: &[SampleRecord]) -> BTreeMap<SampleKey<'_>, &SampleRecord> {
    let mut map = BTreeMap::new();
    // Each sample counts once: its first pass (`--repeat` adds passes that only timings use).
    for record in samples.iter().filter(|r| r.repetition == 0) {
        map.entry((record.subset.as_deref(), record.id.as_str())).or_insert(record);
    }
    map
}

/// Compares run b against run a on the samples they share. Nothing here fails: two runs that share no
/// samples or metrics give a comparison with `shared_samples == 0` or no `metrics`, which callers report.
pub fn compare(a: &RunFolder, b: &RunFolder) -> PairedComparison {
    let samples_a = by_key(&a.samples);
    let samples_b = by_key(&b.samples);
    let pairs: Vec<(&SampleRecord, &SampleRecord)> =
        samples_a.iter().filter_map(|(key, ra)| samples_b.get(key).map(|rb| (*ra, *rb))).collect();
    let (label_a, label_b) = labels(a, b);
    let metrics = metric_differences(a, b, &pairs, &label_a, &label_b);
    let speed = speed_ratios(&pairs, &label_a, &label_b);
    let mut warnings = warnings(a, b);
    let (only_in_a, only_in_b) = (samples_a.len() - pairs.len(), samples_b.len() - pairs.len());
    if !pairs.is_empty() && (only_in_a > 0 || only_in_b > 0) {
        warnings.push(format!(
            "only the {} samples both runs hold are compared ({only_in_a} only in {label_a}, {only_in_b} only in \
             {label_b})",
            pairs.len()
        ));
    }
    PairedComparison {
        a: RunLabel { dir: a.dir.clone(), label: label_a },
        b: RunLabel { dir: b.dir.clone(), label: label_b },
        shared_samples: pairs.len(),
        only_in_a,
        only_in_b,
        metrics,
        speed,
        warnings,
    }
}

fn metric_differences(
    a: &RunFolder,
    b: &RunFolder,
    pairs: &[(&SampleRecord, &SampleRecord)],
    label_a: &str,
    label_b: &str,
) -> Vec<MetricDifference> {
    let scored: Vec<_> =
        pairs.iter().filter(|(ra, rb)| ra.status == SampleStatus::Ok && rb.status == SampleStatus::Ok).collect();
    let mut values: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for (ra, rb) in scored {
        for (name, va) in &ra.metrics {
            if let Some(vb) = rb.metrics.get(name) {
                values.entry(name.as_str()).or_default().push((*va, *vb));
            }
        }
    }
    values
        .into_iter()
        .filter_map(|(metric, values)| {
            let declared = a.summary.results.metrics.get(metric).or(b.summary.results.metrics.get(metric));
            let higher_is_better = declared.is_none_or(|m| m.higher_is_better);
            let declared_binary = declared.is_some_and(|m| m.binary);
            let binary = declared_binary && values.iter().all(|(x, y)| is_zero_or_one(*x) && is_zero_or_one(*y));
            difference(metric, &values, binary, higher_is_better, label_a, label_b)
        })
        .collect()
}

fn is_zero_or_one(value: f64) -> bool {
    value == 0.0 || value == 1.0
}

/// One metric's difference from its (a, b) value pairs.
pub fn difference(
    metric: &str,
    values: &[(f64, f64)],
    binary: bool,
    higher_is_better: bool,
    label_a: &str,
    label_b: &str,
) -> Option<MetricDifference> {
    let n = values.len();
    let differences: Vec<f64> = values.iter().map(|(x, y)| y - x).collect();
    let bootstrap = bootstrap::paired_difference(&differences)?;
    let mean_a = values.iter().map(|(x, _)| x).sum::<f64>() / n as f64;
    let mean_b = values.iter().map(|(_, y)| y).sum::<f64>() / n as f64;
    let (test, p_value) = if binary {
        let a_only = values.iter().filter(|(x, y)| *x == 1.0 && *y == 0.0).count();
        let b_only = values.iter().filter(|(x, y)| *x == 0.0 && *y == 1.0).count();
        (PairedTest::McnemarExact { a_only, b_only }, mcnemar::exact_p_value(a_only, b_only))
    } else {
        (PairedTest::PairedBootstrap { resamples: bootstrap.resamples }, bootstrap.p_value)
    };
    let mut result = MetricDifference {
        metric: metric.to_string(),
        n,
        mean_a,
        mean_b,
        difference: differences.iter().sum::<f64>() / n as f64,
        ci95_low: bootstrap.ci95_low,
        ci95_high: bootstrap.ci95_high,
        p_value,
        test,
        higher_is_better,
        binary,
        significant: p_value < SIGNIFICANCE_LEVEL,
        verdict: String::new(),
    };
    result.verdict = metric_verdict(&result, label_a, label_b);
    Some(result)
}

/// "int4 is 1.2 points worse than fp32 on accuracy (95% CI −3.1 to +0.7, McNemar p = 0.31): not significant".
fn metric_verdict(d: &MetricDifference, label_a: &str, label_b: &str) -> String {
    // Binary metrics read in percentage points; others in their own unit.
    let scale = if d.binary { 100.0 } else { 1.0 };
    let amount = |v: f64| if d.binary { format!("{:.1}", v * scale) } else { format_value(v) };
    let signed = |v: f64| {
        let text = amount(v.abs());
        if v < 0.0 { format!("−{text}") } else { format!("+{text}") }
    };
    let unit = if d.binary { " points" } else { "" };
    let statement = if d.difference == 0.0 {
        format!("{label_b} and {label_a} score the same {}", d.metric)
    } else {
        let better = (d.difference > 0.0) == d.higher_is_better;
        format!(
            "{label_b} is {}{unit} {} than {label_a} on {}",
            amount(d.difference.abs()),
            if better { "better" } else { "worse" },
            d.metric
        )
    };
    format!(
        "{statement} (n = {}, 95% CI {} to {}, {} {}): {}",
        d.n,
        signed(d.ci95_low),
        signed(d.ci95_high),
        d.test.name(),
        format_p(d.p_value),
        if d.significant { "significant" } else { "not significant" }
    )
}

/// "p = 0.31", "p = 0.004", "p < 0.001".
pub fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else if p < 0.01 {
        format!("p = {p:.3}")
    } else {
        format!("p = {p:.2}")
    }
}

/// Three significant digits, without exponent for everyday magnitudes.
fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

/// The speed measures compared, per sample: name, unit, whether higher is better, and the value.
type SpeedMeasure = (&'static str, &'static str, bool, fn(&SampleRecord) -> Option<f64>);

const SPEED_MEASURES: [SpeedMeasure; 3] = [
    ("decode tokens/s", "tokens/s", true, |r| r.timings.decode_tokens_per_s),
    ("TTFT", "ms", false, |r| Some(r.timings.ttft_ms)),
    ("e2e latency", "ms", false, |r| Some(r.timings.e2e_ms)),
];

fn speed_ratios(pairs: &[(&SampleRecord, &SampleRecord)], label_a: &str, label_b: &str) -> Vec<SpeedRatio> {
    // Only samples that generated in both runs: a failed prompt's e2e time is not a speed.
    let generated: Vec<_> =
        pairs.iter().filter(|(ra, rb)| ra.output_tokens.is_some() && rb.output_tokens.is_some()).collect();
    SPEED_MEASURES
        .iter()
        .filter_map(|(measure, unit, higher_is_better, value)| {
            let (xs, ys): (Vec<f64>, Vec<f64>) =
                generated.iter().filter_map(|(ra, rb)| Some((value(ra)?, value(rb)?))).unzip();
            speed_ratio(measure, unit, *higher_is_better, &xs, &ys, label_a, label_b)
        })
        .collect()
}

/// Ratio of the two means, faster over slower, with the standard error propagated from each mean's
/// (first-order: relative errors add in quadrature), as hyperfine reports "1.84 ± 0.05 times faster".
pub fn speed_ratio(
    measure: &str,
    unit: &str,
    higher_is_better: bool,
    xs: &[f64],
    ys: &[f64],
    label_a: &str,
    label_b: &str,
) -> Option<SpeedRatio> {
    let (da, db) = (Distribution::of(xs)?, Distribution::of(ys)?);
    if da.mean <= 0.0 || db.mean <= 0.0 {
        return None;
    }
    let std_err = |d: &Distribution| d.std / (d.count as f64).sqrt();
    let (std_err_a, std_err_b) = (std_err(&da), std_err(&db));
    let b_faster = if higher_is_better { db.mean > da.mean } else { db.mean < da.mean };
    let ratio = if higher_is_better == b_faster { db.mean / da.mean } else { da.mean / db.mean };
    let ratio_std_err = ratio * ((std_err_a / da.mean).powi(2) + (std_err_b / db.mean).powi(2)).sqrt();
    let (faster, slower) = if b_faster { (label_b, label_a) } else { (label_a, label_b) };
    let verdict = format!(
        "{faster} is {ratio:.2} ± {ratio_std_err:.2} times faster than {slower} by {measure} ({} vs {} {unit})",
        format_value(if b_faster { db.mean } else { da.mean }),
        format_value(if b_faster { da.mean } else { db.mean }),
    );
    Some(SpeedRatio {
        measure: measure.to_string(),
        unit: unit.to_string(),
        higher_is_better,
        n: da.count.min(db.count),
        mean_a: da.mean,
        mean_b: db.mean,
        std_err_a,
        std_err_b,
        ratio,
        ratio_std_err,
        b_faster,
        verdict,
    })
}

/// What makes the comparison weaker than it looks.
fn warnings(a: &RunFolder, b: &RunFolder) -> Vec<String> {
    let (sa, sb) = (&a.summary, &b.summary);
    let mut warnings: Vec<String> = a.warnings.iter().chain(&b.warnings).cloned().collect();
    if sa.scenario.name != sb.scenario.name {
        warnings.push(format!(
            "the runs used different scenarios ({} and {}): only metrics and ids they happen to share are compared",
            sa.scenario.name, sb.scenario.name
        ));
    } else if sa.scenario.hash != sb.scenario.hash {
        warnings.push(format!(
            "the runs used different builds of scenario {} (component hashes differ): prompts or scoring may differ",
            sa.scenario.name
        ));
    }
    if sa.dataset.hash != sb.dataset.hash {
        warnings
            .push("the runs read different dataset files (hashes differ): samples with the same id may differ".into());
    }
    warnings
}

/// Labels that tell the two runs apart: the attributes (model, precision, EP, adapter...) that differ between
/// them, or the folder names when none do.
fn labels(a: &RunFolder, b: &RunFolder) -> (String, String) {
    let attributes: [fn(&RunSummary) -> String; 7] = [
        |s| s.model.info.get("name").and_then(|v| v.as_str()).map_or_else(|| s.model.dir.clone(), str::to_string),
        precision,
        |s| s.runtime.execution_provider.clone(),
        |s| {
            s.adapter.as_ref().map_or_else(|| "no adapter".to_string(), |ad| format!("adapter {}", file_stem(&ad.path)))
        },
        |s| format!("batch {}", s.settings.batch_size),
        |s| s.runtime.intra_threads.map_or_else(|| "default threads".to_string(), |t| format!("{t} threads")),
        |s| s.settings.describe_generation(),
    ];
    let differing: Vec<_> = attributes.iter().filter(|f| f(&a.summary) != f(&b.summary)).collect();
    let values = |run: &RunFolder| differing.iter().map(|f| f(&run.summary)).collect::<Vec<_>>();
    let (values_a, values_b) = (values(a), values(b));
    // A model folder named after its precision ("tiny-int4") already says "int4": say it once.
    let said_before = |values: &[String], j: usize| values[..j].iter().any(|earlier| earlier.contains(&values[j]));
    let keep: Vec<usize> =
        (0..differing.len()).filter(|&j| !(said_before(&values_a, j) && said_before(&values_b, j))).collect();
    let label = |values: &[String]| keep.iter().map(|&j| values[j].as_str()).collect::<Vec<_>>().join(", ");
    let (label_a, label_b) = (label(&values_a), label(&values_b));
    if !differing.is_empty() && label_a.len() <= 60 {
        return (label_a, label_b);
    }
    let (name_a, name_b) = (a.name(), b.name());
    if name_a != name_b { (name_a, name_b) } else { (a.dir.display().to_string(), b.dir.display().to_string()) }
}

/// The precision measured from the graph when recorded, else the one the model folder declares.
fn precision(summary: &RunSummary) -> String {
    summary
        .model
        .graph
        .as_ref()
        .map(|g| g.weight_precision.clone())
        .or_else(|| summary.model.info.get("precision").and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown precision".to_string())
}

fn file_stem(path: &std::path::Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (a, b) pairs: `both` right in both runs, `a_only` right in a only, `b_only` in b only, `neither`.
    fn binary_pairs(both: usize, a_only: usize, b_only: usize, neither: usize) -> Vec<(f64, f64)> {
        let mut pairs = vec![(1.0, 1.0); both];
        pairs.extend(std::iter::repeat_n((1.0, 0.0), a_only));
        pairs.extend(std::iter::repeat_n((0.0, 1.0), b_only));
        pairs.extend(std::iter::repeat_n((0.0, 0.0), neither));
        pairs
    }

    #[test]
    fn binary_metric_uses_exact_mcnemar_and_reads_in_points() {
        // The textbook case: 2 pairs favour a, 9 favour b; exact p = 134/2048.
        let pairs = binary_pairs(40, 2, 9, 49);
        let d = difference("accuracy", &pairs, true, true, "fp32", "int4").unwrap();
        assert_eq!(d.test, PairedTest::McnemarExact { a_only: 2, b_only: 9 });
        assert!((d.p_value - 134.0 / 2048.0).abs() < 1e-12);
        assert!(!d.significant);
        assert!((d.difference - 0.07).abs() < 1e-12 && (d.mean_a - 0.42).abs() < 1e-12);
        assert!(d.ci95_low < 0.07 && 0.07 < d.ci95_high, "{d:?}");
        assert!(
            d.verdict.starts_with("int4 is 7.0 points better than fp32 on accuracy (n = 100, 95% CI +"),
            "{}",
            d.verdict
        );
        assert!(d.verdict.ends_with("McNemar p = 0.07): not significant"), "{}", d.verdict);

        let worse = difference("accuracy", &binary_pairs(40, 20, 2, 38), true, true, "fp32", "int4").unwrap();
        assert!(worse.significant && worse.difference < 0.0);
        assert!(worse.verdict.starts_with("int4 is 18.0 points worse than fp32"), "{}", worse.verdict);
        assert!(worse.verdict.contains("95% CI −") && worse.verdict.ends_with(": significant"), "{}", worse.verdict);
    }

    #[test]
    fn continuous_metric_uses_the_paired_bootstrap() {
        // b is a's value minus 0.1 plus small per-sample noise: a real, paired difference of −0.1 that an
        // unpaired test would miss under the large spread between samples.
        let mut rng = crate::rng::SplitMix64::new(9);
        let pairs: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                let a = (i % 10) as f64;
                (a, a - 0.1 + (rng.next_f64() - 0.5) * 0.05)
            })
            .collect();
        let d = difference("rouge", &pairs, false, true, "a", "b").unwrap();
        assert_eq!(d.test, PairedTest::PairedBootstrap { resamples: bootstrap::RESAMPLES });
        assert!(d.ci95_low < -0.1 + 0.01 && d.ci95_high > -0.1 - 0.01 && d.ci95_high < 0.0, "{d:?}");
        assert!(d.significant && d.p_value < 0.001, "{d:?}");
        assert!(d.verdict.starts_with("b is 0.0") || d.verdict.starts_with("b is 0.1"), "{}", d.verdict);
        assert!(d.verdict.contains("worse than a on rouge") && d.verdict.contains("paired bootstrap p < 0.001"));
    }

    #[test]
    fn speed_ratio_propagates_standard_errors() {
        // a: mean 10 ms, b: mean 5 ms; each with standard error 0.1 (std 1, n 100).
        let spread = |mean: f64| (0..100).map(|i| mean + if i % 2 == 0 { 1.0 } else { -1.0 }).collect::<Vec<_>>();
        let (xs, ys) = (spread(10.0), spread(5.0));
        let r = speed_ratio("TTFT", "ms", false, &xs, &ys, "fp32", "int4").unwrap();
        assert!(r.b_faster);
        assert!((r.ratio - 2.0).abs() < 1e-12);
        let se = 1.0050378 / 10.0;
        let expected = 2.0 * ((se / 10.0f64).powi(2) + (se / 5.0f64).powi(2)).sqrt();
        assert!((r.ratio_std_err - expected).abs() < 1e-6, "{r:?}");
        assert_eq!(r.verdict, "int4 is 2.00 ± 0.04 times faster than fp32 by TTFT (5.00 vs 10.0 ms)");

        // Throughput: higher is faster.
        let r = speed_ratio("decode tokens/s", "tokens/s", true, &spread(50.0), &spread(40.0), "a", "b").unwrap();
        assert!(!r.b_faster && (r.ratio - 1.25).abs() < 1e-12);
        assert!(speed_ratio("TTFT", "ms", false, &[], &ys, "a", "b").is_none());
    }

    #[test]
    fn p_values_read_like_papers_write_them() {
        assert_eq!(format_p(0.3149), "p = 0.31");
        assert_eq!(format_p(0.0042), "p = 0.004");
        assert_eq!(format_p(0.0001), "p < 0.001");
    }
}
