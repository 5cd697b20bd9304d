//! Reading the letter of a multiple-choice answer out of a model's output: "The answer is (B)", "Answer: B",
//! "the answer is b", "**B**", "B. Paris" or "(B)" at the start, a bare "B", and failing those the last
//! "(B)" in the text. Only letters among the sample's choices count.

/// Phrases after which a model states its choice; the last one in the output wins.
const MARKERS: &[&str] = &["answer is", "answer:", "answer would be", "correct option is", "correct choice is"];

/// The choice letter (upper case) the output states, among the first `choices` letters of the alphabet.
pub fn choice_letter(output: &str, choices: usize) -> Option<char> {
    let valid = |c: char| c.is_ascii_uppercase() && ((c as u8 - b'A') as usize) < choices.min(26);
    let lower = output.to_ascii_lowercase();
    let mut marked: Vec<usize> = MARKERS
        .iter()
        .flat_map(|marker| lower.match_indices(marker).map(|(at, m)| at + m.len()).collect::<Vec<_>>())
        .collect();
    marked.sort_unstable();
    for start in marked.into_iter().rev() {
        if let Some(letter) = letter_at(&output[start..], true).filter(|c| valid(*c)) {
            return Some(letter);
        }
    }
    if let Some(letter) = letter_at(output, false).filter(|c| valid(*c)) {
        return Some(letter);
    }
    let bytes = output.as_bytes();
    (0..bytes.len().saturating_sub(2)).rev().find_map(|at| {
        let letter = bytes[at + 1] as char;
        (bytes[at] == b'(' && bytes[at + 2] == b')' && valid(letter)).then_some(letter)
    })
}

/// A letter standing alone at the start of `text` (after spaces, `*`, `(`, `[` and a `:`): followed by the
/// end or a non-alphanumeric character. After an answer marker a lower-case letter counts too unless a
/// word follows it ("the answer is a bit..." states nothing); at the start of an output "A " followed by
/// a word is the article, so a letter there must end the text or be followed by `.`, `)`, `:` or `]`.
fn letter_at(text: &str, after_marker: bool) -> Option<char> {
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '(' | '[' | ':' | '"'));
    let mut chars = trimmed.chars();
    let letter = chars.next()?;
    if !letter.is_ascii_alphabetic() {
        return None;
    }
    let rest = chars.as_str();
    let next = rest.chars().next();
    if next.is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    let word_follows =
        rest.trim_start().chars().next().is_some_and(|c| c.is_alphabetic()) && next.is_some_and(char::is_whitespace);
    if after_marker {
        if letter.is_ascii_lowercase() && word_follows {
            return None;
        }
    } else {
        let closes = matches!(next, None | Some('.' | ')' | ':' | ']' | '*' | '\n'));
        if !closes {
            return None;
        }
    }
    Some(letter.to_ascii_uppercase())
}

/// The letter of the `index`-th choice (0 -> 'A').
pub fn letter(index: usize) -> char {
    (b'A' + (index % 26) as u8) as char
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stated_answers() {
        for output in [
            "The answer is (B).",
            "Answer: B",
            "the answer is b",
            "So the correct option is B, because...",
            "I think the answer is **B**.",
            "(B)",
            "B",
            "B. Paris is the capital.",
            "B) Paris",
            "  b.",
            "Looking at (A) and (C), only (B) works",
            "The answer is A... no wait, the answer is: B",
        ] {
            assert_eq!(choice_letter(output, 4), Some('B'), "{output:?}");
        }
    }

    #[test]
    fn articles_and_out_of_range_letters_are_not_answers() {
        assert_eq!(choice_letter("A man walks into a bar.", 4), None);
        assert_eq!(choice_letter("the answer is a bit unclear", 4), None);
        assert_eq!(choice_letter("The answer is E.", 4), None);
        assert_eq!(choice_letter("The answer is E.", 5), Some('E'));
        assert_eq!(choice_letter("I am not sure.", 4), None);
        assert_eq!(choice_letter("", 4), None);
        assert_eq!(choice_letter("Answer: Berlin", 4), None);
    }

    #[test]
    fn letters_by_index() {
        assert_eq!((letter(0), letter(3)), ('A', 'D'));
    }
}
