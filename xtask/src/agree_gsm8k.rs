//! `cargo xtask agree --tasks gsm8k [--gsm8k-run DIR]`: lm-eval's gsm8k filters against runner's on the same
//! generations. runner's gsm8k scenario scores every output with its own port of lm-eval's `strict-match` and
//! `flexible-extract` filters and `exact_match` options (`exact_match_strict`, `exact_match_flexible`); this
//! check runs lm-eval's own code (`xtask/peers/agree_gsm8k.py`, which reads the installed lm-eval's
//! `gsm8k.yaml`) on the very same texts and compares the verdicts output by output.
//!
//! The texts are (1) real generations: a runner GSM8K run's outputs (`--gsm8k-run DIR`, else a new int4 run
//! over the first `--limit` problems, 100 by default), and (2) written forms of every problem's reference
//! that exercise what the filters disagree on in practice: the worked solution as the dataset has it
//! (`#### N`), a wrong final number, "The answer is $N." with thousands separators, `#### N.` before a
//! newline, `#### N.00`, a negative number, and a number after the answer. runner's verdicts come from
//! `runner score`, the component's own scoring of outputs made elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::agree::read_jsonl;
use crate::shell::{repo_root, run_command};

const DATA: &str = "gsm8k/test.jsonl";
const SCRIPT: &str = "xtask/peers/agree_gsm8k.py";
/// runner's metric and lm-eval's filter, compared verdict by verdict.
const FILTERS: [(&str, &str); 2] =
    [("exact_match_strict", "strict-match"), ("exact_match_flexible", "flexible-extract")];
const DEFAULT_LIMIT: usize = 100;

/// One output to score: the dataset row (0-based) and its text.
struct Output {
    index: usize,
    text: String,
}

/// Runs the check; `data` is GSM8K's test file, `work` a scratch folder, `python` lm-eval's interpreter.
pub fn run(
    bin: &Path,
    python: &Path,
    data: &Path,
    work: &Path,
    limit: Option<usize>,
    run: Option<&Path>,
) -> Result<Value> {
    std::fs::create_dir_all(work)?;
    let docs = read_jsonl(data)?;
    let generations = match run {
        Some(dir) => run_outputs(dir)?,
        None => {
            let dir = work.join("runner");
            let _ = std::fs::remove_dir_all(&dir);
            let limit = limit.unwrap_or(DEFAULT_LIMIT);
            let mut cmd = Command::new(bin.join("runner"));
            cmd.arg("exec").arg(bin.join("gsm8k.wasm")).args([
                "--precision",
                "int4",
                "--no-progress",
                "--threads",
                "1",
            ]);
            cmd.arg("--data").arg(data).args(["--max-samples", &limit.to_string()]).arg("--out").arg(&dir);
            run_command(&mut cmd)?;
            run_outputs(&dir)?
        }
    };
    let mut sources = vec![("generations".to_string(), generations)];
    for (name, form) in WRITTEN_FORMS {
        let outputs = docs
            .iter()
            .enumerate()
            .filter_map(|(index, doc)| {
                let answer = doc["answer"].as_str()?;
                let (solution, number) = answer.rsplit_once("#### ")?;
                Some(Output { index, text: form(solution, number.trim()) })
            })
            .collect();
        sources.push((name.to_string(), outputs));
    }
    let mut results = Vec::new();
    for (name, outputs) in &sources {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("outputs.jsonl");
        let lines: String = outputs
            .iter()
            .map(|o| json!({"index": o.index, "id": (o.index + 1).to_string(), "output": o.text}).to_string() + "\n")
            .collect();
        std::fs::write(&file, lines)?;
        let ours = runner_verdicts(bin, data, &file, &dir.join("runner.jsonl"))?;
        let theirs = lm_eval_verdicts(python, data, &file, &dir.join("lm-eval.jsonl"))?;
        results.push(compare(name, outputs, &ours, &theirs)?);
    }
    let generations = &results[0];
    let total: usize = results.iter().map(|r| r["outputs"].as_u64().unwrap_or(0) as usize).sum();
    Ok(json!({
        "kind": "filters",
        "questions": generations["outputs"],
        "outputs_checked": total,
        "generations_from": if run.is_some() { "an existing runner run (--gsm8k-run)" } else { "a new int4 run" },
        "metrics": generations["metrics"],
        "sources": results,
        "data": DATA,
    }))
}

/// The written forms of a reference (its worked solution and its final number) the check scores.
type Form = fn(&str, &str) -> String;
const WRITTEN_FORMS: [(&str, Form); 7] = [
    ("reference solution", |solution, number| format!("{solution}#### {number}")),
    ("wrong final number", |solution, number| format!("{solution}#### {}", bump(number))),
    ("the answer is $N.", |_, number| format!("The answer is ${}.", thousands(number))),
    ("#### N. then a newline", |_, number| format!("#### {number}.\n")),
    ("#### N.00", |_, number| format!("#### {number}.00")),
    ("negative", |_, number| format!("The loss is -{number}, so #### -{number}")),
    ("a number after the answer", |_, number| format!("#### {number}\nCheck: 2 + 2 = 4")),
];

/// The number plus one (a wrong answer of the same shape).
fn bump(number: &str) -> String {
    number.replace(',', "").parse::<i64>().map_or_else(|_| format!("{number}1"), |n| (n + 1).to_string())
}

/// An integer with thousands separators ("70000" -> "70,000"); other numbers as they are.
fn thousands(number: &str) -> String {
    let Ok(n) = number.parse::<i64>() else { return number.to_string() };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A runner run's outputs, by dataset row: GSM8K's JSON Lines has no id field, so runner names each problem
/// by its line number (`id` "1" is row 0).
fn run_outputs(dir: &Path) -> Result<Vec<Output>> {
    let records = read_jsonl(&dir.join("samples.jsonl"))?;
    let mut outputs = Vec::new();
    for record in records.iter().filter(|r| r["status"] == "ok" && r["repetition"].as_u64().unwrap_or(0) == 0) {
        let id = record["id"].as_str().unwrap_or_default();
        let row: usize =
            id.parse().with_context(|| format!("{}: sample id {id:?} is not a row number", dir.display()))?;
        let text = record["output"].as_str().context("a sample without its output (an archived run?)")?;
        outputs.push(Output { index: row - 1, text: text.to_string() });
    }
    if outputs.is_empty() {
        bail!("{} holds no finished GSM8K samples", dir.display());
    }
    Ok(outputs)
}

/// runner's verdicts, by dataset row: `runner score` of the gsm8k component on the outputs.
fn runner_verdicts(bin: &Path, data: &Path, outputs: &Path, out: &Path) -> Result<BTreeMap<usize, Value>> {
    let mut cmd = Command::new(bin.join("runner"));
    cmd.arg("score").arg(bin.join("gsm8k.wasm")).arg("--outputs").arg(outputs).arg("--data").arg(data);
    cmd.arg("--samples-out").arg(out).arg("--json");
    crate::shell::output(&mut cmd)?;
    Ok(read_jsonl(out)?
        .into_iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| (r["index"].as_u64().unwrap_or(0) as usize, r["metrics"].clone()))
        .collect())
}

/// lm-eval's verdicts, by dataset row, from its own filters and metric.
fn lm_eval_verdicts(python: &Path, data: &Path, outputs: &Path, out: &Path) -> Result<BTreeMap<usize, Value>> {
    let script = repo_root().join(SCRIPT);
    run_command(Command::new(python).arg(script).arg(data).arg(outputs).arg(out))?;
    Ok(read_jsonl(out)?.into_iter().map(|r| (r["index"].as_u64().unwrap_or(0) as usize, r)).collect())
}

fn compare(
    name: &str,
    outputs: &[Output],
    ours: &BTreeMap<usize, Value>,
    theirs: &BTreeMap<usize, Value>,
) -> Result<Value> {
    let n = outputs.len();
    let mut metrics = Vec::new();
    for (metric, filter) in FILTERS {
        let (mut runner_right, mut lm_eval_right, mut agree) = (0usize, 0usize, 0usize);
        let mut disagreements = Vec::new();
        for output in outputs {
            let verdict =
                |map: &BTreeMap<usize, Value>, key: &str| map.get(&output.index).and_then(|v| v[key].as_f64());
            let (Some(a), Some(b)) = (verdict(ours, metric), verdict(theirs, filter)) else {
                bail!("{name}: row {} lacks a verdict (runner {metric}, lm-eval {filter})", output.index);
            };
            runner_right += (a == 1.0) as usize;
            lm_eval_right += (b == 1.0) as usize;
            if a == b {
                agree += 1;
            } else {
                // Ids only: the output is made from the dataset's text.
                disagreements
                    .push(json!({"id": (output.index + 1).to_string(), "runner_right": a, "lm_eval_right": b}));
            }
        }
        let acc = |right: usize| (right as f64 / n.max(1) as f64 * 1e4).round() / 1e4;
        metrics.push(json!({
            "runner": metric, "lm_eval": filter,
            "runner_acc": acc(runner_right), "lm_eval_acc": acc(lm_eval_right),
            "diff_points": ((acc(runner_right) - acc(lm_eval_right)) * 1e4).round() / 1e2,
            "agreement_pct": (agree as f64 / n.max(1) as f64 * 1e4).round() / 1e2,
            "disagreements": disagreements,
        }));
    }
    Ok(json!({"source": name, "outputs": n, "metrics": metrics}))
}

/// The page's section: every source's agreement per filter.
pub fn render(md: &mut String, task: &Value) {
    let _ = writeln!(
        md,
        "## GSM8K: lm-eval's filters on the same outputs\n\nrunner's `exact_match_strict` and `exact_match_flexible` \
         against lm-eval's `strict-match` and `flexible-extract` (its own filter and metric code, its gsm8k.yaml), \
         output by output. Generations: {} ({} problems). The other rows are written forms of every problem's \
         reference answer (all {} problems each), chosen for what the two filters tell apart.\n",
        task["generations_from"].as_str().unwrap_or("?"),
        task["questions"],
        task["sources"].as_array().and_then(|s| s.get(1)).map_or(Value::Null, |s| s["outputs"].clone()),
    );
    let _ = writeln!(md, "| outputs | n | filter | runner | lm-eval | verdicts agree | disagreements (ids) |");
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---|");
    for source in task["sources"].as_array().into_iter().flatten() {
        for metric in source["metrics"].as_array().into_iter().flatten() {
            let ids: Vec<String> = metric["disagreements"]
                .as_array()
                .into_iter()
                .flatten()
                .take(10)
                .map(|d| d["id"].as_str().unwrap_or("?").to_string())
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | `{}` | {:.2} % | {:.2} % | {:.2} % | {} |",
                source["source"].as_str().unwrap_or("?"),
                source["outputs"],
                metric["lm_eval"].as_str().unwrap_or("?"),
                metric["runner_acc"].as_f64().unwrap_or(0.0) * 100.0,
                metric["lm_eval_acc"].as_f64().unwrap_or(0.0) * 100.0,
                metric["agreement_pct"].as_f64().unwrap_or(0.0),
                if ids.is_empty() { "–".to_string() } else { ids.join(", ") }
            );
        }
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_forms_keep_the_number_in_the_shapes_the_filters_read() {
        assert_eq!(thousands("70000"), "70,000");
        assert_eq!(thousands("-1234567"), "-1,234,567");
        assert_eq!(thousands("12"), "12");
        assert_eq!(thousands("3.5"), "3.5");
        assert_eq!(bump("1,299"), "1300");
        let forms: Vec<String> = WRITTEN_FORMS.iter().map(|(_, form)| form("Work.\n", "18")).collect();
        assert_eq!(forms[0], "Work.\n#### 18");
        assert_eq!(forms[1], "Work.\n#### 19");
        assert_eq!(forms[2], "The answer is $18.");
    }
}
