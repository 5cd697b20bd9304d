//! Comparing free-text answers the way the SQuAD evaluation script does: normalise both sides (lower
//! case, no punctuation, no articles "a"/"an"/"the", single spaces), then exact match, containment, or the
//! F1 of their bags of words.

use std::collections::HashMap;

/// SQuAD's `normalize_answer`: lower case, ASCII punctuation removed, the articles a/an/the removed,
/// whitespace collapsed to single spaces.
pub fn normalize(text: &str) -> String {
    let lower = text.to_lowercase();
    let without_punctuation: String = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    without_punctuation
        .split_whitespace()
        .filter(|word| !matches!(*word, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The normalised words of `text`.
pub fn words(text: &str) -> Vec<String> {
    normalize(text).split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// Whether the two texts are equal after [`normalize`].
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    normalize(prediction) == normalize(reference)
}

/// Whether the normalised reference appears in the normalised prediction as whole words. An empty
/// reference is contained in nothing, so an empty gold answer never scores by accident.
pub fn contains(prediction: &str, reference: &str) -> bool {
    let reference = normalize(reference);
    if reference.is_empty() {
        return false;
    }
    let prediction = format!(" {} ", normalize(prediction));
    prediction.contains(&format!(" {reference} "))
}

/// SQuAD's token F1: the harmonic mean of precision and recall of the shared normalised words (with
/// multiplicity). Two empty texts match (1.0); one empty text scores 0.
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let predicted = words(prediction);
    let expected = words(reference);
    if predicted.is_empty() || expected.is_empty() {
        return if predicted.is_empty() && expected.is_empty() { 1.0 } else { 0.0 };
    }
    tokens_f1(&predicted, &expected)
}

/// The F1 of two token lists: the harmonic mean of precision and recall of the tokens they share (with
/// multiplicity); 0 when they share none, an empty list included.
pub fn tokens_f1<S: AsRef<str>>(predicted: &[S], expected: &[S]) -> f64 {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for token in expected {
        *counts.entry(token.as_ref()).or_default() += 1;
    }
    let mut shared = 0usize;
    for token in predicted {
        if let Some(count) = counts.get_mut(token.as_ref())
            && *count > 0
        {
            *count -= 1;
            shared += 1;
        }
    }
    if shared == 0 {
        return 0.0;
    }
    let precision = shared as f64 / predicted.len() as f64;
    let recall = shared as f64 / expected.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_squad() {
        assert_eq!(normalize("  The Eiffel   Tower, in Paris! "), "eiffel tower in paris");
        assert_eq!(normalize("An apple a day"), "apple day");
        assert_eq!(normalize("Théâtre"), "théâtre");
        assert_eq!(normalize("..."), "");
    }

    #[test]
    fn exact_match_and_contains() {
        assert!(exact_match("The Beatles.", "beatles"));
        assert!(!exact_match("The Beatles were great", "beatles"));
        assert!(contains("I think it was the Beatles, in 1962.", "beatles"));
        assert!(!contains("Beatlesque", "beatles"));
        assert!(!contains("anything", ""));
    }

    #[test]
    fn f1_counts_shared_words_once_each() {
        assert_eq!(token_f1("the cat sat", "a cat sat"), 1.0);
        // predicted: cat cat; expected: cat dog -> shared 1, p = 1/2, r = 1/2.
        assert!((token_f1("cat cat", "cat dog") - 0.5).abs() < 1e-12);
        // predicted 3 words, expected 2, shared 2: p = 2/3, r = 1, f = 0.8.
        assert!((token_f1("big red ball", "red ball") - 0.8).abs() < 1e-12);
        assert_eq!(token_f1("", ""), 1.0);
        assert_eq!(token_f1("x", ""), 0.0);
        assert_eq!(token_f1("dog", "cat"), 0.0);
        // Token lists as they are (no normalisation); empty lists share nothing, unlike two empty texts.
        assert!((tokens_f1(&["北", "京", "市"], &["北", "京"]) - 0.8).abs() < 1e-12);
        assert_eq!(tokens_f1(&["The"], &["the"]), 0.0);
        assert_eq!(tokens_f1::<&str>(&[], &[]), 0.0);
    }
}
