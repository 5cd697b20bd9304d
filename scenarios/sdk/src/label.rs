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

    /// The label the output states, if any.
    pub fn classify(&self, output: &str) -> Option<&str> {
        let words = text::words(output);
        for (at, _) in words.iter().enumerate() {
            if at > 0 && NEGATIONS.contains(&words[at - 1].as_str()) {
                continue;
            }
            for (name, phrases) in &self.labels {
                if phrases.iter().any(|phrase| !phrase.is_empty() && words[at..].starts_with(phrase)) {
                    return Some(name);
                }
            }
        }
        None
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
    }
}
