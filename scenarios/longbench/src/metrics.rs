//! LongBench's per-task metrics (its `metrics.py` and `eval.py`), each returning a score in 0..=1 for one
//! output against one gold answer; [`score`] takes the best over a sample's gold answers as `eval.py` does.
//!
//! Where this differs from the reference, and why:
//! - ROUGE-L uses the SDK's `rouge-score` implementation (whole-text LCS, `a-z0-9` tokens), not the `rouge`
//!   package's summary-level union LCS; figures are close but not identical.
//! - The Chinese tasks' `jieba` word segmentation is not available in a sandboxed scenario: Chinese text is
//!   tokenised one Han character per token (runs of ASCII letters and digits stay words), which makes F1 and
//!   ROUGE-L character-level. Their figures are not comparable with published Chinese LongBench numbers.
//! - `classification_score` and `code_sim_score` follow the reference exactly, including its quirks (the
//!   in-place list removal that skips an element; `fuzz.ratio`'s rounding to whole percents).

use runner_scenario_sdk::{rouge, text};

use crate::tasks::{MetricKind, Task};

/// The sample's score: the best over its gold answers, after `eval.py`'s first-line cut for few-shot tasks.
pub fn score(task: &Task, prediction: &str, answers: &[String], all_classes: &[String]) -> f64 {
    let prediction = if task.first_line_only {
        prediction.trim_start_matches('\n').split('\n').next().unwrap_or_default()
    } else {
        prediction
    };
    answers.iter().map(|answer| score_one(task.metric, prediction, answer, all_classes)).fold(0.0, f64::max)
}

fn score_one(metric: MetricKind, prediction: &str, answer: &str, all_classes: &[String]) -> f64 {
    match metric {
        MetricKind::QaF1 => qa_f1(prediction, answer),
        MetricKind::QaF1Zh => text::tokens_f1(&chinese_tokens(prediction), &chinese_tokens(answer)),
        MetricKind::RougeL => rouge::rouge(prediction, answer).rouge_l.fmeasure,
        MetricKind::RougeLZh => rouge::rouge_l(&chinese_tokens(prediction), &chinese_tokens(answer)).fmeasure,
        MetricKind::Classification => classification(prediction, answer, all_classes),
        MetricKind::Retrieval => retrieval(prediction, answer, "Paragraph "),
        MetricKind::RetrievalZh => retrieval(prediction, answer, "段落"),
        MetricKind::Count => count(prediction, answer),
        MetricKind::CodeSimilarity => code_similarity(prediction, answer),
    }
}

/// `qa_f1_score`: SQuAD normalisation, then bag-of-words F1; no shared word scores 0 (also for two empty
/// texts, unlike SQuAD).
pub fn qa_f1(prediction: &str, answer: &str) -> f64 {
    if text::words(prediction).is_empty() {
        return 0.0;
    }
    text::token_f1(prediction, answer)
}

/// Lower case; each Han (or other non-ASCII) letter or digit is a token, runs of ASCII letters and digits
/// are one; punctuation and spaces separate and are dropped (`normalize_zh_answer`).
pub fn chinese_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// Every run of ASCII digits in `text` (Python's `re.findall(r"\d+", ...)` on ASCII numbers).
fn numbers(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).collect()
}

/// `count_score`: the share of the numbers in the output that equal the gold count.
pub fn count(prediction: &str, answer: &str) -> f64 {
    share_equal(&numbers(prediction), answer.trim())
}

/// `retrieval_score`: the gold answer reads "Paragraph 12"; the share of the output's numbers that are 12.
pub fn retrieval(prediction: &str, answer: &str, marker: &str) -> f64 {
    // `re.findall(r"Paragraph (\d+)", answer)[0]`: the first marker followed by a number.
    let gold = answer.match_indices(marker).find_map(|(at, _)| {
        let rest = &answer[at + marker.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        (digits > 0).then(|| &rest[..digits])
    });
    match gold {
        Some(gold) => share_equal(&numbers(prediction), gold),
        None => 0.0,
    }
}

fn share_equal(found: &[&str], gold: &str) -> f64 {
    if found.is_empty() {
        return 0.0;
    }
    found.iter().filter(|n| **n == gold).count() as f64 / found.len() as f64
}

/// `classification_score`: the classes named in the output, less those that are only part of the gold
/// class's name; 1/k when the gold class is among the k left.
pub fn classification(prediction: &str, answer: &str, all_classes: &[String]) -> f64 {
    let mut matched: Vec<&str> =
        all_classes.iter().map(String::as_str).filter(|class| prediction.contains(class)).collect();
    // Python removes from the list it iterates over, which skips the element after each removal.
    let mut index = 0;
    while index < matched.len() {
        let term = matched[index];
        if answer.contains(term) && term != answer {
            matched.remove(index);
        }
        index += 1;
    }
    if matched.contains(&answer) { 1.0 / matched.len() as f64 } else { 0.0 }
}

/// `code_sim_score`: the first output line that is not a comment or a code fence, compared with the gold
/// line by `fuzz.ratio` (Levenshtein ratio with substitutions costing 2, in whole percents).
pub fn code_similarity(prediction: &str, answer: &str) -> f64 {
    let line = prediction
        .trim_start_matches('\n')
        .split('\n')
        .find(|line| !line.contains('`') && !line.contains('#') && !line.contains("//"))
        .unwrap_or_default();
    fuzz_ratio(line, answer) as f64 / 100.0
}

/// fuzzywuzzy's `fuzz.ratio` (with python-Levenshtein): `round(100 * (1 - indel_distance / total_length))`,
/// 0 when either text is empty. Python rounds halves to even.
pub fn fuzz_ratio(a: &str, b: &str) -> u32 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let common = longest_common_subsequence(&a, &b);
    let ratio = 2.0 * common as f64 / (a.len() + b.len()) as f64;
    (100.0 * ratio).round_ties_even() as u32
}

fn longest_common_subsequence(a: &[char], b: &[char]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y { previous[j] + 1 } else { previous[j + 1].max(current[j]) };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::find;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn qa_f1_matches_the_reference() {
        assert_eq!(qa_f1("The Eiffel Tower", "eiffel tower"), 1.0);
        // prediction words: paris, france; gold: paris -> precision 1/2, recall 1 -> 2/3
        assert!((qa_f1("Paris, France.", "Paris") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(qa_f1("", "Paris"), 0.0);
        assert_eq!(qa_f1("the", "a"), 0.0);
    }

    #[test]
    fn count_and_retrieval_share_the_right_numbers() {
        assert_eq!(count("There are 7 unique paragraphs.", "7"), 1.0);
        assert_eq!(count("7 or 8", "7"), 0.5);
        assert_eq!(count("seven", "7"), 0.0);
        assert_eq!(retrieval("Paragraph 12", "Paragraph 12", "Paragraph "), 1.0);
        assert_eq!(retrieval("Paragraph 3, not Paragraph 12", "Paragraph 12", "Paragraph "), 0.5);
        assert_eq!(retrieval("段落5", "段落5", "段落"), 1.0);
        assert_eq!(retrieval("Paragraph 5", "no marker", "Paragraph "), 0.0);
    }

    #[test]
    fn classification_follows_the_reference_including_its_quirk() {
        let classes = strings(&["Location", "City", "Country", "Other location"]);
        assert_eq!(classification("Type: City", "City", &classes), 1.0);
        assert_eq!(classification("City or Country", "City", &classes), 0.5);
        assert_eq!(classification("Country", "City", &classes), 0.0);
        // "Location" is contained in... nothing here; "Other location" names the gold exactly.
        assert_eq!(classification("Other location", "Other location", &classes), 1.0);
        // Gold "Other location" contains neither "Location" (case differs) nor "Other": both stay.
        let classes = strings(&["Other", "Other location"]);
        assert_eq!(classification("Other location", "Other location", &classes), 1.0);
    }

    #[test]
    fn fuzz_ratio_is_fuzzywuzzys() {
        assert_eq!(fuzz_ratio("this is a test", "this is a test!"), 97);
        assert_eq!(fuzz_ratio("abc", "abc"), 100);
        assert_eq!(fuzz_ratio("", "abc"), 0);
        assert_eq!(fuzz_ratio("ab", "ba"), 50);
        let code = "    return x + 1\n";
        assert_eq!(code_similarity("```python\n# next\n    return x + 1\n", code.trim_end()), 1.0);
    }

    #[test]
    fn chinese_text_is_scored_per_character() {
        assert_eq!(
            chinese_tokens("北京是中国的首都。Beijing 2008"),
            strings(&["北", "京", "是", "中", "国", "的", "首", "都", "beijing", "2008"])
        );
        let task = find("multifieldqa_zh").unwrap();
        assert_eq!(score(task, "北京", &strings(&["北京"]), &[]), 1.0);
        assert!((score(task, "北京市", &strings(&["北京"]), &[]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn few_shot_tasks_score_the_first_line_and_the_best_answer() {
        let task = find("triviaqa").unwrap();
        let answers = strings(&["Jupiter", "planet Jupiter"]);
        assert_eq!(score(task, "\nJupiter\nQuestion: next one", &answers, &[]), 1.0);
        let task = find("hotpotqa").unwrap();
        assert!(score(task, "Jupiter\nand more words", &answers, &[]) < 1.0);
    }
}
