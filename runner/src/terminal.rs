//! Text that reaches the terminal from places runner does not control: sample ids, outputs and error
//! messages from scenarios and datasets, names from summaries and experiment files. A control character in
//! them (an ANSI escape, a carriage return, a C1 control, a bidirectional override) could recolour the
//! screen, rewrite earlier lines or hide text, so each is printed as its Rust escape (`\u{1b}`) instead.
//! Files keep the text exactly; only what is shown is escaped.

use std::borrow::Cow;

/// Whether `c` changes how a terminal shows the text around it: C0 and C1 controls, DEL, and the Unicode
/// bidirectional embeddings, overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` for one line of output: every unsafe character escaped, line breaks and tabs included.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_except(text, |_| false)
}

/// `text` for a block of output (tables): unsafe characters escaped, but the block's own line breaks kept.
pub fn escape_block(text: &str) -> Cow<'_, str> {
    escape_except(text, |c| c == '\n')
}

fn escape_except(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) && !keep(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on_and_keeps_the_rest() {
        assert!(matches!(escape("plain ünïcode ✓ text"), Cow::Borrowed(_)));
        assert_eq!(escape("id\u{1b}[2J\u{1b}[31mred"), "id\\u{1b}[2J\\u{1b}[31mred");
        assert_eq!(escape("a\rb\nc\td\u{7f}"), "a\\u{d}b\\u{a}c\\u{9}d\\u{7f}");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m", "the C1 control sequence introducer");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed", "a right-to-left override");
        assert_eq!(escape_block("row 1\nrow\u{1b}]0;title\u{7}2\n"), "row 1\nrow\\u{1b}]0;title\\u{7}2\n");
    }
}
