//! LaTeX answers as the MATH benchmark states them: reading the last `\boxed{...}` (nested braces
//! included) out of a solution, and normalising an answer so equal answers compare equal. The normalisation
//! follows the MATH paper's `is_equiv` / `strip_string` (Hendrycks et al.): `\left`/`\right`, `\!`, spaces,
//! degrees, `\$`, `\%` and a trailing `.` go, `\dfrac`/`\tfrac` become `\frac`, `\frac12` becomes
//! `\frac{1}{2}`, `a/b` of integers becomes `\frac{a}{b}`, units after `\text{ ` go, and `x = 5` becomes `5`.
//! On top of it, `\text{...}`/`\mbox{...}` keep only their content, and two answers that are both plain
//! numbers (decimals or `\frac` of integers, e.g. `0.5` and `\frac{1}{2}`) compare by value.

/// The content of the last `\boxed{...}` (or `\fbox{...}`) in `text`, nested braces kept; also reads the
/// brace-less `\boxed 5`. None when there is none or its braces never close.
pub fn last_boxed(text: &str) -> Option<String> {
    let (at, command) = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|command| text.rfind(command).map(|at| (at, *command)))
        .max_by_key(|(at, _)| *at)?;
    let rest = &text[at + command.len()..];
    if let Some(spaced) = rest.strip_prefix(' ') {
        let word: String = spaced.chars().take_while(|c| !c.is_whitespace() && *c != '$').collect();
        return (!word.is_empty()).then_some(word);
    }
    let inner = rest.strip_prefix('{')?;
    let mut depth = 1usize;
    for (offset, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(inner[..offset].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether two LaTeX answers are the same after [`normalize`], or are equal numbers.
pub fn equivalent(prediction: &str, reference: &str) -> bool {
    let prediction = normalize(prediction);
    let reference = normalize(reference);
    if prediction == reference {
        return true;
    }
    match (numeric_value(&prediction), numeric_value(&reference)) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

/// The MATH answer normalisation (see the module documentation).
pub fn normalize(answer: &str) -> String {
    let mut s = answer.replace('\n', "").replace("\\!", "");
    s = s.replace("\\\\", "\\");
    s = s.replace("tfrac", "frac").replace("dfrac", "frac");
    s = s.replace("\\left", "").replace("\\right", "");
    s = s.replace("^{\\circ}", "").replace("^\\circ", "");
    s = s.replace("\\$", "").replace('$', "");
    // Units: "10\text{ inches}" keeps the number (MATH's `_remove_right_units`).
    if let Some(at) = s.find("\\text{ ") {
        s.truncate(at);
    }
    s = unwrap_command(&s, "\\text");
    s = unwrap_command(&s, "\\mbox");
    s = unwrap_command(&s, "\\textbf");
    s = s.replace("\\%", "").replace('%', "");
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    let mut s = s.trim().trim_end_matches('.').trim().to_string();
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    // "x = 5" or "k=5": a short left-hand side is a variable name.
    if let Some((left, right)) = s.split_once('=')
        && !right.contains('=')
        && left.trim().chars().count() <= 2
    {
        s = right.to_string();
    }
    s = fix_sqrt(&s);
    s.retain(|c| c != ' ');
    s = fix_fracs(&s);
    if s == "0.5" {
        s = "\\frac{1}{2}".to_string();
    }
    fix_a_slash_b(&s)
}

/// `\cmd{content}` -> `content` for every occurrence of one command.
fn unwrap_command(text: &str, command: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(command) {
        let after = &rest[at + command.len()..];
        out.push_str(&rest[..at]);
        let Some(inner) = after.strip_prefix('{') else {
            out.push_str(command);
            rest = after;
            continue;
        };
        match closing_brace(inner) {
            Some(end) => {
                out.push_str(&inner[..end]);
                rest = &inner[end + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The byte offset of the `}` closing a group whose `{` was just before `inner`.
fn closing_brace(inner: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (offset, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(offset);
                }
            }
            _ => {}
        }
    }
    None
}

/// `\sqrt3` -> `\sqrt{3}`.
fn fix_sqrt(text: &str) -> String {
    let mut parts = text.split("\\sqrt");
    let mut out = parts.next().unwrap_or("").to_string();
    for part in parts {
        out.push_str("\\sqrt");
        match part.chars().next() {
            Some(c) if c != '{' => {
                out.push('{');
                out.push(c);
                out.push('}');
                out.push_str(&part[c.len_utf8()..]);
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// `\frac12` -> `\frac{1}{2}`, `\frac1{2}` -> `\frac{1}{2}`, `\frac{1}2` -> `\frac{1}{2}`.
fn fix_fracs(text: &str) -> String {
    let mut parts = text.split("\\frac");
    let mut out = parts.next().unwrap_or("").to_string();
    for part in parts {
        out.push_str("\\frac");
        let mut chars = part.chars();
        match chars.next() {
            Some('{') => {
                // Numerator already braced; brace a bare one-character denominator.
                match closing_brace(&part[1..]) {
                    Some(end) => {
                        let numerator_end = end + 2;
                        out.push_str(&part[..numerator_end]);
                        let tail = &part[numerator_end..];
                        match tail.chars().next() {
                            Some(d) if d != '{' => {
                                out.push('{');
                                out.push(d);
                                out.push('}');
                                out.push_str(&tail[d.len_utf8()..]);
                            }
                            _ => out.push_str(tail),
                        }
                    }
                    None => out.push_str(part),
                }
            }
            Some(a) => {
                out.push('{');
                out.push(a);
                out.push('}');
                let tail = chars.as_str();
                match tail.chars().next() {
                    Some(b) if b != '{' => {
                        out.push('{');
                        out.push(b);
                        out.push('}');
                        out.push_str(&tail[b.len_utf8()..]);
                    }
                    _ => out.push_str(tail),
                }
            }
            None => {}
        }
    }
    out
}

/// `3/4` (integers only) -> `\frac{3}{4}`.
fn fix_a_slash_b(text: &str) -> String {
    let Some((a, b)) = text.split_once('/') else { return text.to_string() };
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(a), Ok(b)) if text == format!("{a}/{b}") => format!("\\frac{{{a}}}{{{b}}}"),
        _ => text.to_string(),
    }
}

/// The value of a normalised answer that is a plain number: a decimal (thousands commas allowed), or a
/// possibly negated `\frac{a}{b}` of decimals.
fn numeric_value(normalized: &str) -> Option<f64> {
    let (negative, body) = match normalized.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, normalized),
    };
    let value = if let Some(frac) = body.strip_prefix("\\frac{") {
        let numerator_end = closing_brace(frac)?;
        let denominator = frac[numerator_end + 1..].strip_prefix('{')?.strip_suffix('}')?;
        let numerator = plain_decimal(&frac[..numerator_end])?;
        let denominator = plain_decimal(denominator)?;
        if denominator == 0.0 {
            return None;
        }
        numerator / denominator
    } else {
        plain_decimal(body)?
    };
    Some(if negative { -value } else { value })
}

fn plain_decimal(text: &str) -> Option<f64> {
    let text = text.replace(",", "").replace("{,}", "");
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-') {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_boxed_answer_with_nested_braces() {
        assert_eq!(last_boxed("so $\\boxed{\\frac{1}{2}}$.").as_deref(), Some("\\frac{1}{2}"));
        assert_eq!(last_boxed("\\boxed{1} then \\boxed{\\sqrt{x^{2}}}").as_deref(), Some("\\sqrt{x^{2}}"));
        assert_eq!(last_boxed("\\fbox{7}").as_deref(), Some("7"));
        assert_eq!(last_boxed("\\boxed 5$").as_deref(), Some("5"));
        assert_eq!(last_boxed("\\boxed{unclosed"), None);
        assert_eq!(last_boxed("no box"), None);
    }

    #[test]
    fn normalises_like_the_math_paper() {
        assert_eq!(normalize("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3,\\frac{\\pi}{2})");
        assert_eq!(normalize("\\dfrac12"), "\\frac{1}{2}");
        assert_eq!(normalize("\\tfrac{3}4"), "\\frac{3}{4}");
        assert_eq!(normalize("0.5"), "\\frac{1}{2}");
        assert_eq!(normalize("3/4"), "\\frac{3}{4}");
        assert_eq!(normalize("10\\text{ inches}"), "10");
        assert_eq!(normalize("\\text{(C)}"), "(C)");
        assert_eq!(normalize("90^\\circ"), "90");
        assert_eq!(normalize("x = 5"), "5");
        assert_eq!(normalize("\\sqrt3"), "\\sqrt{3}");
        assert_eq!(normalize("50\\%"), "50");
        assert_eq!(normalize("\\$18.90."), "18.90");
        assert_eq!(normalize(".25"), "0.25");
        assert_eq!(normalize("2\\!\\cdot\\!3"), "2\\cdot3");
    }

    #[test]
    fn equal_answers_compare_equal() {
        assert!(equivalent("\\dfrac{1}{2}", "\\frac12"));
        assert!(equivalent("0.75", "\\frac{3}{4}"));
        assert!(equivalent("-\\frac{3}{4}", "-0.75"));
        assert!(equivalent("1,000", "1000"));
        assert!(equivalent("18.0", "18"));
        assert!(equivalent("\\left[ 1, 2 \\right]", "[1,2]"));
        assert!(!equivalent("\\frac{1}{3}", "0.33"));
        assert!(!equivalent("\\sqrt{2}", "2"));
        assert!(!equivalent("(1,2)", "[1,2]"));
        assert!(!equivalent("", "0"));
    }
}
