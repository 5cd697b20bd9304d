//! Reasoning models write their thinking between markers (`<think>…</think>` for DeepSeek-R1 and Qwen3)
//! before the answer. This splits a generated output into the thinking and the answer, so scenarios score
//! the answer alone and thinking tokens are counted on their own.
//!
//! The markers come from `--think-markers OPEN,CLOSE`, else from the model's tokenizer (a known marker
//! pair among its tokens), else `<think>`/`</think>`; an output without markers is all answer. Chat
//! templates that open the thinking block themselves (the prompt ends with the open marker, as
//! DeepSeek-R1's does) make the output start inside it. An unclosed block is all thinking: the answer is
//! empty and the split is flagged, because the token budget ran out before the model answered.

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

/// Marker pairs reasoning models use, looked up in a model's tokenizer in this order.
const KNOWN_MARKERS: [(&str, &str); 5] = [
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("<|START_THINKING|>", "<|END_THINKING|>"),
    ("◁think▷", "◁/think▷"),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReasoningError {
    #[error(
        "think-markers must be `auto`, `off` or two markers separated by a comma, OPEN,CLOSE (e.g. `<think>,</think>`), got `{0}`"
    )]
    Format(String),
    #[error("think-markers must be two different, non-empty markers, got `{0}`")]
    Markers(String),
}

/// Where a run's markers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerSource {
    /// `--think-markers`.
    Flag,
    /// Both markers are tokens of the model's tokenizer.
    Tokenizer,
    /// Neither: the common `<think>`/`</think>`, which splits nothing when the model never writes it.
    Default,
}

/// The text that opens and closes a thinking block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinkMarkers {
    pub open: String,
    pub close: String,
}

impl Default for ThinkMarkers {
    fn default() -> Self {
        ThinkMarkers { open: KNOWN_MARKERS[0].0.to_string(), close: KNOWN_MARKERS[0].1.to_string() }
    }
}

impl ThinkMarkers {
    /// Parses `OPEN,CLOSE` as the flag takes it; whitespace around each marker is ignored.
    pub fn parse(spec: &str) -> Result<Self, ReasoningError> {
        let (open, close) = spec.split_once(',').ok_or_else(|| ReasoningError::Format(spec.to_string()))?;
        let (open, close) = (open.trim(), close.trim());
        if open.is_empty() || close.is_empty() || open == close || close.contains(',') {
            return Err(ReasoningError::Markers(spec.to_string()));
        }
        Ok(ThinkMarkers { open: open.to_string(), close: close.to_string() })
    }

    /// The first known marker pair whose markers are both tokens of `tokenizer`.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Option<Self> {
        KNOWN_MARKERS
            .iter()
            .find(|(open, close)| tokenizer.token_to_id(open).is_some() && tokenizer.token_to_id(close).is_some())
            .map(|(open, close)| ThinkMarkers { open: open.to_string(), close: close.to_string() })
    }

    /// The markers for a run: the flag's, else the tokenizer's, else the default.
    pub fn resolve(flag: Option<ThinkMarkers>, tokenizer: &Tokenizer) -> (ThinkMarkers, MarkerSource) {
        match flag {
            Some(markers) => (markers, MarkerSource::Flag),
            None => match Self::from_tokenizer(tokenizer) {
                Some(markers) => (markers, MarkerSource::Tokenizer),
                None => (ThinkMarkers::default(), MarkerSource::Default),
            },
        }
    }

    /// Markers that are special tokens of `tokenizer`: the engine decodes output without special tokens, so
    /// such a marker never appears in the text and cannot split it.
    pub fn special_in(&self, tokenizer: &Tokenizer) -> Vec<String> {
        let added = tokenizer.get_added_tokens_decoder();
        [&self.open, &self.close]
            .into_iter()
            .filter(|marker| added.values().any(|t| t.special && &t.content == *marker))
            .cloned()
            .collect()
    }

    /// Whether a rendered prompt leaves the model inside a thinking block (the template wrote the open
    /// marker last, as DeepSeek-R1's does), so the output starts with thinking and has no open marker.
    pub fn opened_by(&self, prompt_text: &str) -> bool {
        prompt_text.trim_end().ends_with(&self.open)
    }
}

/// How a run splits thinking from answers (`--think-markers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThinkSplit {
    /// The model's markers when its tokenizer has a known pair, else `<think>`/`</think>`.
    #[default]
    Auto,
    Markers(ThinkMarkers),
    /// No splitting: the whole output is the answer.
    Off,
}

impl ThinkSplit {
    /// Parses the flag: `auto`, `off`, or `OPEN,CLOSE`.
    pub fn parse(spec: &str) -> Result<Self, ReasoningError> {
        match spec.trim() {
            "auto" => Ok(ThinkSplit::Auto),
            "off" | "none" => Ok(ThinkSplit::Off),
            _ => ThinkMarkers::parse(spec).map(ThinkSplit::Markers),
        }
    }

    /// The markers a run uses with `tokenizer`, and where they came from; `None` when splitting is off.
    pub fn resolve(&self, tokenizer: &Tokenizer) -> Option<(ThinkMarkers, MarkerSource)> {
        match self {
            ThinkSplit::Off => None,
            ThinkSplit::Auto => Some(ThinkMarkers::resolve(None, tokenizer)),
            ThinkSplit::Markers(markers) => Some(ThinkMarkers::resolve(Some(markers.clone()), tokenizer)),
        }
    }
}

/// One output, split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReasoningSplit {
    /// The thinking, markers removed and trimmed; blocks are joined with a blank line. `None` when the
    /// output has no thinking block.
    pub thinking: Option<String>,
    /// The output without its thinking blocks, trimmed: what the scenario scores.
    pub answer: String,
    /// The output ended inside a thinking block.
    pub unclosed: bool,
    /// The thinking blocks as generated, markers included, for counting their tokens.
    pub thinking_raw: String,
}

impl ReasoningSplit {
    /// Tokens of the thinking (markers included) as the tokenizer encodes its text; re-encoding can differ
    /// from the generated tokens by a token at a block's edges, which is why the answer's count is the rest.
    pub fn thinking_tokens(&self, tokenizer: &Tokenizer) -> usize {
        if self.thinking_raw.is_empty() {
            return 0;
        }
        tokenizer.encode(self.thinking_raw.as_str(), false).map_or(0, |e| e.get_ids().len())
    }
}

/// Splits `output` into thinking and answer. `starts_inside` says the prompt already opened a thinking
/// block (see [`ThinkMarkers::opened_by`]). A close marker with no open marker before it means the block
/// was opened where the output cannot show it (by the template), so the text before it is thinking too.
pub fn split(output: &str, markers: &ThinkMarkers, starts_inside: bool) -> ReasoningSplit {
    let mut thinking: Vec<&str> = Vec::new();
    let mut raw = String::new();
    let mut answer = String::new();
    let mut unclosed = false;
    let mut rest = output;
    let mut inside = starts_inside
        || output.find(&markers.close).is_some_and(|close| output.find(&markers.open).is_none_or(|o| o > close));
    loop {
        if inside {
            match rest.find(&markers.close) {
                Some(close) => {
                    thinking.push(&rest[..close]);
                    raw.push_str(&rest[..close + markers.close.len()]);
                    rest = &rest[close + markers.close.len()..];
                    inside = false;
                }
                None => {
                    thinking.push(rest);
                    raw.push_str(rest);
                    unclosed = true;
                    break;
                }
            }
        } else {
            match rest.find(&markers.open) {
                Some(open) => {
                    answer.push_str(&rest[..open]);
                    raw.push_str(&markers.open);
                    rest = &rest[open + markers.open.len()..];
                    inside = true;
                }
                None => {
                    answer.push_str(rest);
                    break;
                }
            }
        }
    }
    let had_block = !thinking.is_empty();
    let thinking: Vec<&str> = thinking.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect();
    ReasoningSplit {
        thinking: had_block.then(|| thinking.join("\n\n")),
        answer: if had_block { answer.trim().to_string() } else { answer },
        unclosed,
        thinking_raw: raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn think() -> ThinkMarkers {
        ThinkMarkers::default()
    }

    #[test]
    fn no_markers_is_all_answer_untouched() {
        let s = split("  The answer is 4.\n", &think(), false);
        assert_eq!(s, ReasoningSplit { answer: "  The answer is 4.\n".into(), ..Default::default() });
    }

    #[test]
    fn thinking_and_answer_split_with_whitespace_and_newlines() {
        let s = split("<think>\nFirst, 2+2.\nThat is 4.\n</think>\n\nThe answer is 4.", &think(), false);
        assert_eq!(s.thinking.as_deref(), Some("First, 2+2.\nThat is 4."));
        assert_eq!(s.answer, "The answer is 4.");
        assert!(!s.unclosed);
        assert_eq!(s.thinking_raw, "<think>\nFirst, 2+2.\nThat is 4.\n</think>");
    }

    #[test]
    fn unclosed_block_is_all_thinking_and_flagged() {
        let s = split("<think> Let me count: 1, 2, 3", &think(), false);
        assert_eq!(s.thinking.as_deref(), Some("Let me count: 1, 2, 3"));
        assert_eq!(s.answer, "");
        assert!(s.unclosed);
    }

    #[test]
    fn template_opened_block_and_a_lone_close_marker() {
        // The prompt ended with `<think>\n`: the output starts inside the block.
        let s = split("reasoning here</think>\n42", &think(), true);
        assert_eq!((s.thinking.as_deref(), s.answer.as_str(), s.unclosed), (Some("reasoning here"), "42", false));
        // The same output without being told: a close marker with no open one before it.
        assert_eq!(split("reasoning here</think>\n42", &think(), false), s);
        // Opened by the template and never closed.
        let s = split("still thinking", &think(), true);
        assert_eq!((s.thinking.as_deref(), s.answer.as_str(), s.unclosed), (Some("still thinking"), "", true));
    }

    #[test]
    fn several_blocks_and_text_around_them() {
        let s = split("Intro <think>a</think> middle <think> b </think> end", &think(), false);
        assert_eq!(s.thinking.as_deref(), Some("a\n\nb"));
        assert_eq!(s.answer, "Intro  middle  end");
        assert_eq!(s.thinking_raw, "<think>a</think><think> b </think>");
    }

    #[test]
    fn empty_block_is_still_a_block() {
        let s = split("<think>\n\n</think>\n\nParis", &think(), false);
        assert_eq!((s.thinking.as_deref(), s.answer.as_str()), (Some(""), "Paris"));
    }

    #[test]
    fn custom_markers_parse_and_split() {
        let markers = ThinkMarkers::parse(" <|begin_of_thought|> , <|end_of_thought|> ").unwrap();
        assert_eq!(markers.open, "<|begin_of_thought|>");
        let s = split("<|begin_of_thought|>hmm<|end_of_thought|>yes", &markers, false);
        assert_eq!((s.thinking.as_deref(), s.answer.as_str()), (Some("hmm"), "yes"));
        assert!(matches!(ThinkMarkers::parse("<think>"), Err(ReasoningError::Format(_))));
        assert!(matches!(ThinkMarkers::parse("<t>,<t>"), Err(ReasoningError::Markers(_))));
        assert!(matches!(ThinkMarkers::parse(",</think>"), Err(ReasoningError::Markers(_))));
        assert!(matches!(ThinkMarkers::parse("a,b,c"), Err(ReasoningError::Markers(_))));
        assert_eq!(ThinkSplit::parse("off").unwrap(), ThinkSplit::Off);
        assert_eq!(ThinkSplit::parse("auto").unwrap(), ThinkSplit::Auto);
        assert_eq!(
            ThinkSplit::parse("<a>,</a>").unwrap(),
            ThinkSplit::Markers(ThinkMarkers::parse("<a>,</a>").unwrap())
        );
    }

    #[test]
    fn prompts_that_open_a_block() {
        let m = think();
        assert!(m.opened_by("<|im_start|>assistant\n<think>\n"));
        assert!(!m.opened_by("<|im_start|>assistant\n"));
        // A closed block in the prompt (a few-shot example) does not leave the model inside one.
        assert!(!m.opened_by("<think>x</think>answer<|im_start|>assistant\n"));
    }

    #[test]
    fn multibyte_markers_and_text() {
        let markers = ThinkMarkers::parse("◁think▷,◁/think▷").unwrap();
        let s = split("◁think▷ça va◁/think▷ oui ✓", &markers, false);
        assert_eq!((s.thinking.as_deref(), s.answer.as_str()), (Some("ça va"), "oui ✓"));
    }
}
