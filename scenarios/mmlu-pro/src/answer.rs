//! MMLU-Pro's own answer extraction (TIGER-Lab `evaluate_from_local.py`), in its order: the first
//! "answer is (X)" / "answer is X"; else the first line holding "answer: X" (its last such on that line);
//! else the last letter A-J standing alone as a word. A letter found beyond the question's options ends
//! the search like any other (the reference would score it wrong) and counts as no answer.

/// The letter the output gives as its answer, among the first `options` letters.
pub fn extract(output: &str, options: usize) -> Option<char> {
    answer_is(output)
        .or_else(|| answer_colon(output))
        .or_else(|| last_standalone(output))
        .filter(|c| ((*c as u8 - b'A') as usize) < options)
}

fn is_option_letter(c: char) -> bool {
    ('A'..='J').contains(&c)
}

/// `re.search(r"answer is \(?([A-J])\)?", text)`
fn answer_is(text: &str) -> Option<char> {
    text.match_indices("answer is ").find_map(|(at, marker)| {
        let rest = &text[at + marker.len()..];
        let rest = rest.strip_prefix('(').unwrap_or(rest);
        rest.chars().next().filter(|c| is_option_letter(*c))
    })
}

/// `re.search(r".*[aA]nswer:\s*([A-J])", text)`: `.` stops at a line end, `\s*` does not.
fn answer_colon(text: &str) -> Option<char> {
    let mut line_start = 0;
    for line in text.split('\n') {
        let found = line
            .match_indices("nswer:")
            .filter(|(at, _)| *at > 0 && matches!(line.as_bytes()[at - 1], b'a' | b'A'))
            .filter_map(|(at, marker)| {
                let after = &text[line_start + at + marker.len()..];
                after.trim_start().chars().next().filter(|c| is_option_letter(*c))
            })
            .last();
        if found.is_some() {
            return found;
        }
        line_start += line.len() + 1;
    }
    None
}

/// `re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", text, re.DOTALL)`: the last A-J that is a whole word.
fn last_standalone(text: &str) -> Option<char> {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len()).rev().find_map(|i| {
        let c = chars[i];
        let standalone =
            is_option_letter(c) && !word(i.checked_sub(1).map(|j| chars[j])) && !word(chars.get(i + 1).copied());
        standalone.then_some(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_reference_order() {
        assert_eq!(extract("... so the answer is (C). Answer: D", 10), Some('C'));
        assert_eq!(extract("the answer is B, not the answer is C", 10), Some('B'));
        assert_eq!(extract("Step 1.\nAnswer: E and later Answer: F\nAnswer: G", 10), Some('F'));
        assert_eq!(extract("Answer:\n  H", 10), Some('H'));
        assert_eq!(extract("I pick J. Or maybe I", 10), Some('I'));
        assert_eq!(extract("no letter here", 10), None);
    }

    #[test]
    fn letters_beyond_the_options_do_not_count() {
        assert_eq!(extract("the answer is (J)", 4), None);
        assert_eq!(extract("A is wrong, so J", 4), None);
        assert_eq!(extract("Answer: D", 4), Some('D'));
    }
}
