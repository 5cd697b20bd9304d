//! lm-evaluation-harness's gsm8k task (`lm_eval/tasks/gsm8k/gsm8k.yaml`, version 3), scored on the same
//! output as runner's own `accuracy`:
//!
//! - `strict-match`: regex `#### (\-?[0-9\.\,]+)`, the first match (`take_first`);
//! - `flexible-extract`: regex `(-?[$0-9.,]{2,})|(-?[0-9]+)` with `group_select: -1`, the last match, its
//!   first non-empty group;
//! - an output without a match becomes `[invalid]`, which equals no reference;
//! - both are stripped and scored by `exact_match` with `ignore_case: true`, `ignore_punctuation: false` and
//!   `regexes_to_ignore: [",", "\$", "(?s).*#### ", "\.$"]`, removed in that order from the prediction
//!   and from the reference, which is the dataset's whole `answer` text.

use std::sync::LazyLock;

use regex::Regex;

static STRICT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#### (\-?[0-9\.\,]+)").expect("valid pattern"));
static FLEXIBLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").expect("valid pattern"));
/// `regexes_to_ignore` with what replaces each match. Python's `$` also matches just before a final newline,
/// Rust's only at the end, so `\.$` is written to keep that newline as Python does.
static IGNORED: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
    [(",", ""), (r"\$", ""), (r"(?s).*#### ", ""), (r"\.(\n?)$", "${1}")]
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid pattern"), replacement))
});

/// What lm-eval's filters give when the regex does not match.
const FALLBACK: &str = "[invalid]";

/// Whether the strict-match filter's answer equals `reference` (as [`reference`] gives it).
pub fn strict_match(output: &str, reference: &str) -> bool {
    let answer = STRICT.captures(output).and_then(|c| c.get(1)).map_or(FALLBACK, |m| m.as_str().trim());
    exact_match(answer, reference)
}

/// Whether the flexible-extract filter's answer equals `reference` (as [`reference`] gives it).
pub fn flexible_extract(output: &str, reference: &str) -> bool {
    let answer = FLEXIBLE
        .captures_iter(output)
        .last()
        .and_then(|c| c.iter().skip(1).flatten().map(|m| m.as_str()).find(|m| !m.is_empty()))
        .map_or(FALLBACK, str::trim);
    exact_match(answer, reference)
}

/// The reference as exact match sees it: `answer` with the ignored patterns removed, lower case.
pub fn reference(answer: &str) -> String {
    ignore(answer)
}

/// lm-eval's `exact_match` with the gsm8k task's options; the reference has been through them already.
fn exact_match(prediction: &str, reference: &str) -> bool {
    ignore(prediction) == reference
}

/// The task's `regexes_to_ignore`, in order, then `ignore_case`.
fn ignore(text: &str) -> String {
    let mut text = text.to_string();
    for (pattern, replacement) in IGNORED.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text.to_lowercase()
}
