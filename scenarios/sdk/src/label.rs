//! Mapping a verbose answer to one of a classification task's labels: "The sentiment is positive." ->
//! `positive`. Each label has synonyms; the output is normalised like SQuAD answers and the label whose
//! synonym occurs first (as whole words) wins. A synonym right after a negation ("not positive") is skipped.

use crate::text;

/// Words that turn the synonym after them into its opposite.
const NEGATIONS: &[&str] = &["not", "no", "isnt", "wasnt", "never", "hardly"];

/// A label and the words that mean it.
#[derive(Debug, Clone)]
pub struct Label {
    pub name: String,
    pub synonyms: Vec<String>,
}

/// The labels of a classification task.
#[derive(Debug, Clone)]
pub struct Labels {
    labels: Vec<(String, Vec<Vec<String>>)>,
}

impl Labels {
    /// Labels from (name, synonyms); the name itself always counts as a synonym.
    pub fn new(labels: &[(&str, &[&str])]) -> Self {
        let labels = labels
            .iter()
            .map(|(name, synonyms)| {
                let mut phrases: Vec<Vec<String>> = vec![text::words(name)];
                phrases.extend(synonyms.iter().map(|s| text::words(s)).filter(|w| !w.is_empty()));
                (name.to_string(), phrases)
            })
            .collect();
        Labels { labels }
    }

    /// The label names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.labels.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// The label the output states, if any. Labels listed as alternatives ("positive or negative", as an
    /// answer that repeats the question has them) are options, not an answer, and are skipped.
    pub fn classify(&self, output: &str) -> Option<&str> {
        let words = text::words(output);
        let mut at = 0;
        while at < words.len() {
            if at > 0 && NEGATIONS.contains(&words[at - 1].as_str()) {
                at += 1;
                continue;
            }
            let Some((name, len)) = self.label_at(&words, at) else {
                at += 1;
                continue;
            };
            // A run of labels joined by "or": the alternatives a question offers.
            let mut end = at + len;
            let mut alternatives = false;
            while words.get(end).is_some_and(|w| w == "or")
                && let Some((_, next)) = self.label_at(&words, end + 1)
            {
                alternatives = true;
                end += 1 + next;
            }
            if !alternatives {
                return Some(name);
            }
            at = end;
        }
        None
    }

    /// The label whose synonym starts at word `at`, and the synonym's length in words (the longest match).
    fn label_at(&self, words: &[String], at: usize) -> Option<(&str, usize)> {
        self.labels.iter().find_map(|(name, phrases)| {
            let matched = phrases.iter().filter(|p| !p.is_empty() && words[at..].starts_with(p)).map(Vec::len).max();
            matched.map(|len| (name.as_str(), len))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentiment() -> Labels {
        Labels::new(&[("positive", &["pos", "good", "favorable"]), ("negative", &["neg", "bad", "unfavorable"])])
    }

    #[test]
    fn verbose_answers_map_to_labels() {
        let labels = sentiment();
        assert_eq!(labels.classify("The sentiment is positive."), Some("positive"));
        assert_eq!(labels.classify("NEGATIVE"), Some("negative"));
        assert_eq!(labels.classify("Sentiment: Positive\nThe review praises..."), Some("positive"));
        assert_eq!(labels.classify("It is a bad review"), Some("negative"));
        assert_eq!(labels.classify("This is not positive; it is negative."), Some("negative"));
        assert_eq!(labels.classify("I cannot tell"), None);
        assert_eq!(labels.classify("positively"), None);
        assert_eq!(labels.names(), ["positive", "negative"]);
        // An answer that repeats the question's alternatives first: the label it then states.
        assert_eq!(labels.classify("Is this review positive or negative? Negative."), Some("negative"));
        assert_eq!(labels.classify("Positive or negative: it is positive"), Some("positive"));
        assert_eq!(labels.classify("good or bad or neutral? bad"), Some("negative"));
        assert_eq!(labels.classify("positive or negative?"), None);
    }
}
