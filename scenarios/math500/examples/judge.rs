//! Scores outputs with the scenario's own `score`, natively, for scenarios/math500/tools/answer_check.py:
//! reads JSON Lines `{"reference": ..., "output": ...}` on standard input and writes one line per case,
//! `1` when the guest's scorer accepts the output and `0` when not. The checker compares these verdicts
//! with math-verify's on the same cases.

use std::io::{BufRead, Write};

use math500::Math500;
use runner_scenario_sdk::Sample;
use runner_scenario_sdk::harness::{Harness, metric};

fn main() {
    let harness = Harness::<Math500>::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.expect("standard input is readable");
        if line.trim().is_empty() {
            continue;
        }
        let case: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("line {}: not JSON: {e}", number + 1));
        let text = |key: &str| case[key].as_str().unwrap_or_else(|| panic!("line {}: no `{key}`", number + 1));
        let sample = Sample {
            id: (number + 1).to_string(),
            subset: None,
            fields: Vec::new(),
            reference: text("reference").to_string(),
        };
        let accepted = metric(&harness.score(&sample, text("output")), "accuracy");
        writeln!(out, "{}", accepted as u8).expect("standard output is writable");
    }
}
