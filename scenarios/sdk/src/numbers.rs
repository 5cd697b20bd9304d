//! Reading numbers out of free text: the final answer in a model's output, the last number in it, or the
//! single number a reference states. Numbers are reduced to one canonical decimal form ("1,234.50" ->
//! "1234.5", "$18.00" -> "18", "-0" -> "0", "3/4" -> "0.75", "50%" -> "50") so that exact match compares
//! values, not spellings.

/// A number found in text: where it starts, and its canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundNumber {
    pub start: usize,
    pub value: String,
}

/// Phrases after which a model states its final answer, strongest first within one line.
const ANSWER_MARKERS: &[&str] = &["answer is", "answer:", "\\boxed{"];

/// The answer the model gave, in canonical form: the number after the last "The answer is" (or
/// "answer:" / `\boxed{`), else after the last `####`, else the last number in the output.
pub fn final_answer(output: &str) -> Option<String> {
    // ASCII lowercasing keeps byte offsets, so positions in `lower` index `output` too.
    let lower = output.to_ascii_lowercase();
    let after_marker = |markers: &[&str]| -> Option<String> {
        let mut candidates: Vec<usize> = markers
            .iter()
            .flat_map(|marker| lower.match_indices(marker).map(move |(at, m)| at + m.len()).collect::<Vec<_>>())
            .collect();
        candidates.sort_unstable();
        candidates.into_iter().rev().find_map(|start| {
            let line = output[start..].split('\n').next().unwrap_or("");
            stated_number(line)
        })
    };
    after_marker(ANSWER_MARKERS).or_else(|| after_marker(&["####"])).or_else(|| last_number(output))
}

/// The number a statement after an answer marker gives: the result of a worked expression ("60 - 24 = 36"
/// states 36) within its first sentence, else the first number of the line.
fn stated_number(line: &str) -> Option<String> {
    // The sentence ends at a full stop that is not a decimal point.
    let bytes = line.as_bytes();
    let sentence_end = (0..bytes.len())
        .find(|&i| bytes[i] == b'.' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        .unwrap_or(line.len());
    let sentence = &line[..sentence_end];
    let result = sentence.rfind('=').and_then(|eq| find_numbers(&sentence[eq + 1..]).into_iter().next());
    result.or_else(|| find_numbers(line).into_iter().next()).map(|n| n.value)
}

/// The last number in `text`, in canonical form.
pub fn last_number(text: &str) -> Option<String> {
    find_numbers(text).pop().map(|n| n.value)
}

/// Every number in `text`, in order. Understands thousands separators, a leading `$` or minus sign
/// (not a hyphen between two words or numbers), decimals and simple fractions; a trailing full stop
/// is punctuation.
pub fn find_numbers(text: &str) -> Vec<FoundNumber> {
    let bytes = text.as_bytes();
    let digits_from = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    let mut numbers = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() {
            at += 1;
            continue;
        }
        let start = at;
        let mut integer = String::new();
        let mut end = digits_from(at);
        integer.push_str(&text[at..end]);
        // Thousands groups: a comma followed by exactly three digits.
        while end + 3 < bytes.len() && bytes[end] == b',' && digits_from(end + 1) == end + 4 {
            integer.push_str(&text[end + 1..end + 4]);
            end += 4;
        }
        let mut fraction = "";
        if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
            let fraction_end = digits_from(end + 1);
            fraction = &text[end + 1..fraction_end];
            end = fraction_end;
        }
        let mut denominator = None;
        if fraction.is_empty() && end + 1 < bytes.len() && bytes[end] == b'/' && bytes[end + 1].is_ascii_digit() {
            let denominator_end = digits_from(end + 1);
            denominator = Some(&text[end + 1..denominator_end]);
            end = denominator_end;
        }
        let negative = is_negative(text, start);
        let value = match denominator.and_then(|d| divide(&integer, d)) {
            Some(quotient) => canonical(negative, &quotient.0, &quotient.1),
            None => canonical(negative, &integer, fraction),
        };
        numbers.push(FoundNumber { start, value });
        at = end;
    }
    numbers
}

/// Whether the number starting at `start` has a minus sign (optionally before a `$`) that is not a
/// hyphen joining it to a preceding word or number.
fn is_negative(text: &str, start: usize) -> bool {
    let before = text[..start].strip_suffix('$').unwrap_or(&text[..start]);
    let Some(rest) = before.strip_suffix('-').or_else(|| before.strip_suffix('\u{2212}')) else {
        return false;
    };
    !rest.chars().next_back().is_some_and(|c| c.is_alphanumeric())
}

/// `numerator / denominator` as (integer digits, fraction digits), when it is exact within 6 decimals.
fn divide(numerator: &str, denominator: &str) -> Option<(String, String)> {
    let numerator: u128 = numerator.parse().ok()?;
    let denominator: u128 = denominator.parse().ok()?;
    if denominator == 0 {
        return None;
    }
    let scaled = numerator.checked_mul(1_000_000)?;
    let quotient = scaled / denominator;
    let fraction = format!("{:06}", quotient % 1_000_000);
    Some(((quotient / 1_000_000).to_string(), fraction))
}

/// The canonical spelling of a number: no leading zeros, no trailing fractional zeros, no "-0".
pub(crate) fn canonical(negative: bool, integer: &str, fraction: &str) -> String {
    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let fraction = fraction.trim_end_matches('0');
    let mut value = String::with_capacity(integer.len() + fraction.len() + 2);
    if negative && !(integer == "0" && fraction.is_empty()) {
        value.push('-');
    }
    value.push_str(integer);
    if !fraction.is_empty() {
        value.push('.');
        value.push_str(fraction);
    }
    value
}

/// The single number a reference answer states, in canonical form; none when it states zero or several.
pub fn single_number(reference: &str) -> Option<String> {
    let numbers = find_numbers(reference);
    match numbers.as_slice() {
        [only] => Some(only.value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(output: &str) -> Option<String> {
        final_answer(output)
    }

    #[test]
    fn prefers_the_stated_answer() {
        assert_eq!(extract("The answer is 18.").as_deref(), Some("18"));
        // A worked expression states its result, not its first operand.
        assert_eq!(extract("The answer is 60 - 24 = 36.").as_deref(), Some("36"));
        assert_eq!(extract("The answer is 5 + 3 = 8 apples. Then 2 = 2.").as_deref(), Some("8"));
        assert_eq!(extract("The answer is 1.5 * 2 = 3.0").as_deref(), Some("3"));
        assert_eq!(extract("The answer is = .").as_deref(), None);
        assert_eq!(extract("9 * 2 = 18, plus 3 is 21. The answer is 21.\nExtra: 7").as_deref(), Some("21"));
        assert_eq!(extract("the ANSWER IS: $1,234.50.").as_deref(), Some("1234.5"));
        assert_eq!(extract("Final answer: 42").as_deref(), Some("42"));
        assert_eq!(extract("so \\boxed{72}").as_deref(), Some("72"));
    }

    #[test]
    fn a_later_stated_answer_wins() {
        assert_eq!(extract("The answer is 5. Wait, no. The answer is 6.").as_deref(), Some("6"));
        // A marker with no number after it on its line is skipped.
        assert_eq!(extract("The answer is 12.\nSo the answer is clear.").as_deref(), Some("12"));
    }

    #[test]
    fn falls_back_to_the_gsm8k_marker_then_the_last_number() {
        assert_eq!(extract("She has 8 apples... 8 * 9 = 72\n#### 72").as_deref(), Some("72"));
        assert_eq!(extract("#### 72 \n and then 5 more words 3").as_deref(), Some("72"));
        assert_eq!(extract("18 eggs... so 9 * 2 = 18 dollars").as_deref(), Some("18"));
    }

    #[test]
    fn numbers_echoed_from_the_question_do_not_count_first() {
        let output = "Janet has 16 eggs and eats 3 and bakes with 4. 16 - 3 - 4 = 9. She sells 9 at $2, so 18";
        assert_eq!(extract(output).as_deref(), Some("18"));
    }

    #[test]
    fn signs_currency_and_decimals() {
        assert_eq!(extract("-5").as_deref(), Some("-5"));
        assert_eq!(extract("It fell to −11 degrees").as_deref(), Some("-11"));
        assert_eq!(extract("a loss of -$40").as_deref(), Some("-40"));
        assert_eq!(extract("$1,234.50").as_deref(), Some("1234.5"));
        assert_eq!(extract("It costs 18.00 dollars.").as_deref(), Some("18"));
        assert_eq!(extract("007").as_deref(), Some("7"));
        assert_eq!(extract("-0").as_deref(), Some("0"));
        assert_eq!(extract("1,000,000 people").as_deref(), Some("1000000"));
    }

    #[test]
    fn hyphens_and_lists_are_not_signs_or_separators() {
        assert_eq!(extract("9-2=7 and 10-3").as_deref(), Some("3"));
        assert_eq!(extract("a 3-year-old").as_deref(), Some("3"));
        assert_eq!(find_numbers("3,4,5").iter().map(|n| n.value.as_str()).collect::<Vec<_>>(), ["3", "4", "5"]);
        assert_eq!(find_numbers("1,23").iter().map(|n| n.value.as_str()).collect::<Vec<_>>(), ["1", "23"]);
    }

    #[test]
    fn fractions_and_units() {
        assert_eq!(extract("The answer is 3/4 of a cup").as_deref(), Some("0.75"));
        assert_eq!(extract("The answer is 8/2 cups").as_deref(), Some("4"));
        assert_eq!(extract("The answer is 50%.").as_deref(), Some("50"));
        assert_eq!(extract("It takes 45 minutes").as_deref(), Some("45"));
        assert_eq!(extract("1/0").as_deref(), Some("1"));
    }

    #[test]
    fn no_number_at_all() {
        assert_eq!(extract(""), None);
        assert_eq!(extract("I am not sure how to solve this."), None);
        assert_eq!(extract("The answer is unknown."), None);
    }

    #[test]
    fn references_are_single_numbers() {
        assert_eq!(single_number(" 1,234 ").as_deref(), Some("1234"));
        assert_eq!(single_number("-11").as_deref(), Some("-11"));
        assert_eq!(single_number("18.0").as_deref(), Some("18"));
        assert_eq!(single_number("twelve"), None);
        assert_eq!(single_number("12 or 13"), None);
    }
}
