//! ROUGE-1, ROUGE-2 and ROUGE-L F-measures as Google's `rouge-score` package computes them with its default
//! tokenizer and `use_stemmer=False`: lower case, every run of characters other than `a-z0-9` is a separator
//! (so non-ASCII letters split words and are dropped), n-gram overlap counted with multiplicity, ROUGE-L from
//! the longest common subsequence of the whole texts (`rougeL`, not the per-sentence `rougeLsum`).
//! No stemming: published XSum figures made with `use_stemmer=True` run a little higher.

use std::collections::HashMap;

/// Precision, recall and F-measure of one ROUGE variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// The three ROUGE variants reported for summarisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rouge {
    pub rouge1: RougeScore,
    pub rouge2: RougeScore,
    pub rouge_l: RougeScore,
}

/// `rouge_score.tokenize.tokenize` without a stemmer.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            current.push(c);
        } else if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// ROUGE-1, -2 and -L of `prediction` against `reference`.
pub fn rouge(prediction: &str, reference: &str) -> Rouge {
    let predicted = tokenize(prediction);
    let expected = tokenize(reference);
    Rouge {
        rouge1: rouge_n(&predicted, &expected, 1),
        rouge2: rouge_n(&predicted, &expected, 2),
        rouge_l: rouge_l(&predicted, &expected),
    }
}

fn score(overlap: usize, predicted: usize, expected: usize) -> RougeScore {
    let precision = overlap as f64 / predicted.max(1) as f64;
    let recall = overlap as f64 / expected.max(1) as f64;
    let fmeasure = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    RougeScore { precision, recall, fmeasure }
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_default() += 1;
        }
    }
    counts
}

/// ROUGE-N over tokens.
pub fn rouge_n(predicted: &[String], expected: &[String], n: usize) -> RougeScore {
    let predicted_grams = ngrams(predicted, n);
    let expected_grams = ngrams(expected, n);
    let overlap =
        expected_grams.iter().map(|(gram, count)| (*count).min(predicted_grams.get(gram).copied().unwrap_or(0))).sum();
    score(overlap, predicted_grams.values().sum(), expected_grams.values().sum())
}

/// ROUGE-L over tokens: the longest common subsequence (two-row dynamic programme).
pub fn rouge_l(predicted: &[String], expected: &[String]) -> RougeScore {
    if predicted.is_empty() || expected.is_empty() {
        return RougeScore { precision: 0.0, recall: 0.0, fmeasure: 0.0 };
    }
    let mut previous = vec![0usize; predicted.len() + 1];
    let mut current = vec![0usize; predicted.len() + 1];
    for expected_token in expected {
        for (j, predicted_token) in predicted.iter().enumerate() {
            current[j + 1] =
                if expected_token == predicted_token { previous[j] + 1 } else { current[j].max(previous[j + 1]) };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    score(previous[predicted.len()], predicted.len(), expected.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn tokenizes_like_rouge_score() {
        assert_eq!(tokenize("The U.S. can't win 3-2!"), ["the", "u", "s", "can", "t", "win", "3", "2"]);
        assert_eq!(tokenize("Café déjà"), ["caf", "d", "j"]);
        assert!(tokenize("—").is_empty());
    }

    #[test]
    fn matches_rouge_score_on_its_readme_example() {
        // rouge_scorer.RougeScorer(['rouge1', 'rougeL']).score('The quick brown fox jumps over the lazy dog',
        //     'The quick brown dog jumps on the log.')
        // -> rouge1 P=0.75 R=0.6666 F=0.7058; rougeL P=0.625 R=0.5555 F=0.5882.
        let r = rouge("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog");
        assert!(close(r.rouge1.precision, 0.75) && close(r.rouge1.recall, 6.0 / 9.0));
        assert!(close(r.rouge1.fmeasure, 2.0 * 0.75 * (6.0 / 9.0) / (0.75 + 6.0 / 9.0)));
        assert!(close(r.rouge_l.precision, 5.0 / 8.0) && close(r.rouge_l.recall, 5.0 / 9.0));
        // Bigrams shared: "the quick", "quick brown" -> 2 of 7 predicted, 2 of 8 expected.
        assert!(close(r.rouge2.precision, 2.0 / 7.0) && close(r.rouge2.recall, 2.0 / 8.0));
    }

    #[test]
    fn identical_empty_and_disjoint_texts() {
        let same = rouge("A cat sat.", "a cat sat");
        assert_eq!((same.rouge1.fmeasure, same.rouge2.fmeasure, same.rouge_l.fmeasure), (1.0, 1.0, 1.0));
        let empty = rouge("", "a cat");
        assert_eq!((empty.rouge1.fmeasure, empty.rouge_l.fmeasure), (0.0, 0.0));
        assert_eq!(rouge("dogs", "cats").rouge1.fmeasure, 0.0);
        // One-word texts have no bigrams: 0, as rouge-score reports.
        assert_eq!(rouge("cat", "cat").rouge2.fmeasure, 0.0);
    }

    #[test]
    fn repeated_words_count_with_multiplicity() {
        let r = rouge("the the the", "the cat");
        assert!(close(r.rouge1.precision, 1.0 / 3.0) && close(r.rouge1.recall, 0.5));
    }
}
