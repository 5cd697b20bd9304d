//! LaTeX answers as the MATH benchmark states them: reading the final answer out of a solution (the last
//! `\boxed{...}`, nested braces included; else what follows the last "answer is" / "Final answer:"; else
//! the last inline math), and deciding whether two answers are equal.
//!
//! [`normalize`] follows the MATH paper's `is_equiv` / `strip_string` (Hendrycks et al.): `\left`/`\right`,
//! `\!`, spaces, degrees, `\$`, `\%` and a trailing `.` go, `\dfrac`/`\tfrac` become `\frac`, `\frac12`
//! becomes `\frac{1}{2}`, `a/b` of integers becomes `\frac{a}{b}`, and `x = 5` becomes `5`. On top of it,
//! the forms models write that MATH's rules miss: a unit in `\text{}`/`\mbox{}` at the end goes with or
//! without a space inside (`5 \text{cm}`, `15\mbox{ cm}^2`); other `\text{...}` keep only their content;
//! `x_8`/`x^2` become `x_{8}`/`x^{2}`; thousands separators (`1,234`, `1{,}234`, `1,\!234`) go but no
//! other comma does, so the list "1,2" never reads as 12.
//!
//! [`equivalent`] then compares structure the way a grader would without a computer algebra system:
//! plain numbers (integers, decimals, `\frac` or `a/b` of them, mixed numbers `2\frac{1}{3}`) by exact
//! rational value, so integers compare exactly at any size; sums as multisets of signed terms
//! (`9i+6` = `6+9i`); tuples, intervals and matrices element by element; unbracketed lists as multisets
//! (`3, 5, 7` = `7, 5, 3`); equations side by side; and, last, expressions by their numeric value at two
//! assignments of their letters ([`expression`](crate::expression)), so `\sqrt{20}` = `2\sqrt{5}`.

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

/// The final answer in a model's output: the last `\boxed{}`; else what follows the last "answer is" or
/// "answer:" (Minerva's "Final Answer: The final answer is $X$. I hope it is correct.", "**Final answer:**
/// $X$"), the math in dollars when it starts with some, else the rest of its sentence; else the last inline
/// math (`$X$`, `\(X\)`, `\[X\]`) in the output. None when there is none of these.
pub fn final_answer(output: &str) -> Option<String> {
    if let Some(boxed) = last_boxed(output) {
        return Some(boxed.trim().to_string());
    }
    // ASCII lowercasing keeps byte offsets, so positions in `lower` index `output` too.
    let lower = output.to_ascii_lowercase();
    let marker_end = ["answer is", "answer:", "answer**:", "answer:**"]
        .iter()
        .filter_map(|marker| lower.rfind(marker).map(|at| at + marker.len()))
        .max();
    if let Some(end) = marker_end {
        let rest = output[end..].trim_start_matches(|c: char| c == '*' || c == ':' || c.is_whitespace());
        let answer = match leading_math(rest) {
            Some(math) => math.to_string(),
            None => first_sentence(rest.lines().next().unwrap_or("")),
        };
        if !answer.trim().is_empty() {
            return Some(answer.trim().to_string());
        }
    }
    last_math(output).map(|math| math.trim().to_string()).filter(|math| !math.is_empty())
}

/// Math delimiters, longest opener first so `$$` is not read as an empty `$...$`.
const MATH_DELIMITERS: &[(&str, &str)] = &[("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")];

/// The content of the math `text` starts with, when it starts with a delimiter that closes.
fn leading_math(text: &str) -> Option<&str> {
    MATH_DELIMITERS.iter().find_map(|(open, close)| {
        let inner = text.strip_prefix(open)?;
        closing_delimiter(inner, close).map(|end| &inner[..end])
    })
}

/// Where `close` first ends math that started just before `inner`; a `\$` inside is an escaped dollar sign.
fn closing_delimiter(inner: &str, close: &str) -> Option<usize> {
    inner.match_indices(close).map(|(at, _)| at).find(|&at| !inner[..at].ends_with('\\'))
}

/// The content of the last complete `$...$`, `$$...$$`, `\(...\)` or `\[...\]` in `text`.
fn last_math(text: &str) -> Option<&str> {
    let mut last = None;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let found = MATH_DELIMITERS.iter().find_map(|(open, close)| {
            let inner = rest.strip_prefix(open)?;
            let end = closing_delimiter(inner, close)?;
            Some((&inner[..end], open.len() + end + close.len()))
        });
        match found {
            // A `$` right after `\` is an escaped dollar sign, not a delimiter.
            Some((math, length)) if !text[..at].ends_with('\\') => {
                last = Some(math);
                at += length;
            }
            _ => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    last
}

/// `text` up to the full stop that ends its first sentence (a `.` followed by a space, not a decimal
/// point), without dollar signs around it and without a final full stop.
fn first_sentence(text: &str) -> String {
    let end = text.find(". ").unwrap_or(text.len());
    text[..end].trim().trim_end_matches('.').trim().trim_matches('$').trim().to_string()
}

/// Whether two LaTeX answers are equal: the same after [`normalize`], or equal in structure and value as
/// the module documentation describes.
pub fn equivalent(prediction: &str, reference: &str) -> bool {
    let prediction = normalize(prediction);
    let reference = normalize(reference);
    !prediction.is_empty() && same(&prediction, &reference)
}

/// Whether two normalised answers (or parts of them) are equal.
fn same(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let Some(equal) = same_number(a, b) {
        return equal;
    }
    if let (Some((kind_a, rows_a)), Some((kind_b, rows_b))) = (matrix(a), matrix(b)) {
        return kind_a == kind_b
            && rows_a.len() == rows_b.len()
            && rows_a.iter().zip(&rows_b).all(|(x, y)| all_same(&split_top(x, ','), &split_top(y, ',')));
    }
    if let (Some((open_a, inner_a, close_a)), Some((open_b, inner_b, close_b))) = (bracketed(a), bracketed(b)) {
        return (open_a, close_a) == (open_b, close_b) && all_same(&split_top(inner_a, ','), &split_top(inner_b, ','));
    }
    let (sides_a, sides_b) = (split_top(a, '='), split_top(b, '='));
    if sides_a.len() == 2 && sides_b.len() == 2 {
        return (same(sides_a[0], sides_b[0]) && same(sides_a[1], sides_b[1]))
            || (same(sides_a[0], sides_b[1]) && same(sides_a[1], sides_b[0]));
    }
    if sides_a.len() > 1 || sides_b.len() > 1 {
        return false;
    }
    let (items_a, items_b) = (split_top(a, ','), split_top(b, ','));
    if items_a.len() > 1 || items_b.len() > 1 {
        // Unbracketed lists are the solutions of an equation: their order does not matter.
        return same_multiset(&items_a, &items_b);
    }
    let (terms_a, terms_b) = (signed_terms(a), signed_terms(b));
    let same_terms = (terms_a.len() > 1 || terms_b.len() > 1) && same_multiset(&terms_a, &terms_b);
    same_terms || same_groups(a, b) || crate::expression::same_value(a, b)
}

/// Whether `a` and `b` are the same text around the same kinds of groups (`{}`, `()`, `[]`) whose contents
/// are equal: `\frac{9a+11}{20}` = `\frac{11+9a}{20}`, `\sqrt{1+x}` = `\sqrt{x+1}`.
fn same_groups(a: &str, b: &str) -> bool {
    let (pieces_a, pieces_b) = (groups(a), groups(b));
    pieces_a.len() > 1
        && pieces_a.len() == pieces_b.len()
        && pieces_a.iter().zip(&pieces_b).all(|(x, y)| match (x, y) {
            (Piece::Text(x), Piece::Text(y)) => x == y,
            (Piece::Group(open_x, x), Piece::Group(open_y, y)) => open_x == open_y && same(x, y),
            _ => false,
        })
}

/// A stretch of text outside brackets, or a bracketed group's opening bracket and content.
enum Piece<'a> {
    Text(&'a str),
    Group(char, &'a str),
}

/// `text` as its top-level pieces; one text piece when a bracket does not close.
fn groups(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let (mut depth, mut start, mut open) = (0usize, 0, ' ');
    for (at, c) in text.char_indices() {
        match c {
            '{' | '(' | '[' => {
                if depth == 0 {
                    if at > start {
                        pieces.push(Piece::Text(&text[start..at]));
                    }
                    (start, open) = (at + 1, c);
                }
                depth += 1;
            }
            '}' | ')' | ']' => {
                let Some(inner) = depth.checked_sub(1) else { return vec![Piece::Text(text)] };
                depth = inner;
                if depth == 0 {
                    pieces.push(Piece::Group(open, &text[start..at]));
                    start = at + 1;
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return vec![Piece::Text(text)];
    }
    if start < text.len() {
        pieces.push(Piece::Text(&text[start..]));
    }
    pieces
}

/// Element by element, in order.
fn all_same(a: &[&str], b: &[&str]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Whether each element of `a` pairs with its own element of `b`, in any order.
fn same_multiset<S: AsRef<str>>(a: &[S], b: &[S]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = (0..b.len()).find(|&j| !used[j] && same(x.as_ref(), b[j].as_ref()));
        found.map(|j| used[j] = true).is_some()
    })
}

/// `text` split at `separator` where it stands outside braces, brackets and parentheses.
fn split_top(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (at, c) in text.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ if c == separator && depth == 0 => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A sum's terms, each with its sign (`6-5i` -> `6`, `-5i`); one term when it is not a sum. A `-` after
/// an operator, a bracket or `^` is a sign, not a subtraction.
fn signed_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (at, c) in text.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            '+' | '-' if depth == 0 && at > 0 && !after_operator(&text[..at]) => {
                terms.push(signed(&text[start..at]));
                start = at;
            }
            _ => {}
        }
    }
    terms.push(signed(&text[start..]));
    terms
}

/// A term with an explicit sign: `6` -> `+6`, `+6` and `-6` kept.
fn signed(term: &str) -> String {
    if term.starts_with(['+', '-']) { term.to_string() } else { format!("+{term}") }
}

/// Whether `before` ends with something after which `+`/`-` is a sign: an operator, an opening bracket, or
/// an operator command such as `\cdot`.
fn after_operator(before: &str) -> bool {
    if before.ends_with(['+', '-', '*', '/', '^', '_', '(', '[', '{', ',', '=', '&', ';']) {
        return true;
    }
    let word_start = before.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len();
    before[..word_start].ends_with('\\')
        && matches!(&before[word_start..], "cdot" | "times" | "div" | "pm" | "mp" | "le" | "ge" | "leq" | "geq")
}

/// `(a,b]` -> (`(`, `a,b`, `]`) when the whole answer is one bracketed group (a tuple or an interval).
fn bracketed(text: &str) -> Option<(char, &str, char)> {
    let open = text.chars().next().filter(|c| matches!(c, '(' | '['))?;
    let close = text.chars().next_back().filter(|c| matches!(c, ')' | ']'))?;
    let inner = &text[1..text.len() - 1];
    // `(1,2)\cup(3,4)` or `(a+5)(b+2)` are not one group: the brackets must match each other.
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0 && inner.contains(',')).then_some((open, inner, close))
}

/// `\begin{pmatrix}a,b;c,d\end{pmatrix}` (as [`normalize`] writes it) -> ("pmatrix", rows).
fn matrix(text: &str) -> Option<(&str, Vec<&str>)> {
    let rest = text.strip_prefix("\\begin{")?;
    let (kind, rest) = rest.split_once('}')?;
    let inner = rest.strip_suffix(&format!("\\end{{{kind}}}"))?;
    Some((kind, split_top(inner, ';')))
}

/// Whether two answers that are both plain numbers are equal; None when either is not a plain number.
fn same_number(a: &str, b: &str) -> Option<bool> {
    match (exact_value(a), exact_value(b)) {
        (Some(x), Some(y)) => Some(x == y),
        // Too many digits for i128: equal decimals have equal canonical spellings.
        _ => Some(canonical_decimal(a)? == canonical_decimal(b)?),
    }
}

/// A plain number as a reduced fraction (numerator, positive denominator): an integer or decimal, a
/// `\frac` or `a/b` of those, or a mixed number `2\frac{1}{3}`, any of them negated. None when it is not one
/// or does not fit in i128.
fn exact_value(text: &str) -> Option<(i128, i128)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (numerator, denominator) = if let Some((whole, frac)) = body.split_once("\\frac{") {
        let (n, d) = fraction_parts(frac)?;
        let whole = if whole.is_empty() {
            (0, 1)
        } else if whole.bytes().all(|b| b.is_ascii_digit()) {
            decimal(whole)?
        } else {
            return None;
        };
        let (n, d) = divide(signed_decimal(n)?, signed_decimal(d)?)?;
        add(whole, (n, d))?
    } else if let Some((n, d)) = body.split_once('/') {
        divide(signed_decimal(n)?, signed_decimal(d)?)?
    } else {
        decimal(body)?
    };
    let numerator = if negative { numerator.checked_neg()? } else { numerator };
    Some(reduce(numerator, denominator))
}

/// `{a}{b}` after `\frac` (the opening brace already read) -> (`a`, `b`), nothing after them.
fn fraction_parts(after_open: &str) -> Option<(&str, &str)> {
    let numerator_end = closing_brace(after_open)?;
    let denominator = after_open[numerator_end + 1..].strip_prefix('{')?.strip_suffix('}')?;
    Some((&after_open[..numerator_end], denominator))
}

/// An unsigned decimal (`12`, `0.25`, `.5`, `3.`) as a fraction.
fn decimal(text: &str) -> Option<(i128, i128)> {
    let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
    if integer.is_empty() && fraction.is_empty() || !integer.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut numerator: i128 = 0;
    for digit in integer.bytes().chain(fraction.bytes()) {
        numerator = numerator.checked_mul(10)?.checked_add(i128::from(digit - b'0'))?;
    }
    let denominator = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    Some((numerator, denominator))
}

/// A decimal with an optional minus sign (`\frac{-1}{3}`, `-35/9` as [`fix_a_slash_b`] writes it).
fn signed_decimal(text: &str) -> Option<(i128, i128)> {
    match text.strip_prefix('-') {
        Some(rest) => decimal(rest).and_then(|(n, d)| Some((n.checked_neg()?, d))),
        None => decimal(text),
    }
}

fn divide((a, b): (i128, i128), (c, d): (i128, i128)) -> Option<(i128, i128)> {
    if c == 0 {
        return None;
    }
    Some(reduce(a.checked_mul(d)?, b.checked_mul(c)?))
}

fn add((a, b): (i128, i128), (c, d): (i128, i128)) -> Option<(i128, i128)> {
    Some(reduce(a.checked_mul(d)?.checked_add(c.checked_mul(b)?)?, b.checked_mul(d)?))
}

fn reduce(numerator: i128, denominator: i128) -> (i128, i128) {
    let (mut x, mut y) = (numerator.unsigned_abs(), denominator.unsigned_abs());
    while y != 0 {
        (x, y) = (y, x % y);
    }
    let divisor = x.max(1) as i128;
    let sign = if denominator < 0 { -1 } else { 1 };
    (sign * numerator / divisor, sign * denominator / divisor)
}

/// A plain (possibly negative) decimal in [`numbers::canonical`](crate::numbers) spelling; None when `text`
/// is not one.
fn canonical_decimal(text: &str) -> Option<String> {
    let (negative, body) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
    decimal_parts(body).map(|(integer, fraction)| crate::numbers::canonical(negative, integer, fraction))
}

/// An unsigned decimal's integer and fraction digits (`0.25`, `.5`, `3.`); None when it is not one.
fn decimal_parts(text: &str) -> Option<(&str, &str)> {
    let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = integer.bytes().chain(fraction.bytes());
    (!(integer.is_empty() && fraction.is_empty()) && digits.clone().all(|b| b.is_ascii_digit()))
        .then_some((integer, fraction))
}

/// The MATH answer normalisation, with the additions the module documentation lists.
pub fn normalize(answer: &str) -> String {
    let mut s = answer.replace('\n', " ");
    // A `\\` before a letter is a doubly escaped command (`\\frac`, as MATH's own rule reads it); any
    // other `\\` ends a matrix row, which becomes `;` (and `&` between cells becomes `,`).
    s = matrix_rows(&s);
    // `,\!` is how MATH writes a thousands separator (`12,\!345`, `22,\! 333`).
    s = s.replace(",\\!", "{,}");
    while s.contains("{,} ") {
        s = s.replace("{,} ", "{,}");
    }
    for spacing in ["\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\displaystyle", "\\ "] {
        s = s.replace(spacing, " ");
    }
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("cfrac", "frac");
    s = s.replace("\\left", "").replace("\\right", "");
    s = s.replace("bmatrix", "pmatrix");
    for degrees in ["^{\\circ}", "^\\circ", "\\degree", "°"] {
        s = s.replace(degrees, "");
    }
    s = s.replace("\\$", "").replace('$', "");
    s = strip_trailing_units(&s);
    for command in ["\\text", "\\mbox", "\\textbf", "\\mathrm", "\\mathbf", "\\textit"] {
        s = unwrap_command(&s, command);
    }
    s = s.replace("\\%", "").replace('%', "");
    s = strip_thousands_separators(&s);
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    let mut s = s.trim().trim_end_matches('.').trim().to_string();
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    // "x = 5" or "k=5": a short left-hand side is a variable name; so is "x \in" before a set.
    if let Some((left, right)) = s.split_once('=')
        && !right.contains('=')
        && left.trim().chars().count() <= 2
    {
        s = right.to_string();
    }
    if let Some((left, right)) = s.split_once("\\in")
        && left.trim().chars().count() == 1
        && !right.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        s = right.to_string();
    }
    s = fix_sqrt(&s);
    s.retain(|c| c != ' ');
    s = fix_fracs(&s);
    s = brace_scripts(&s);
    // A choice written "(B)" is the letter B.
    if let [b'(', letter, b')'] = s.as_bytes()
        && letter.is_ascii_uppercase()
    {
        s = (*letter as char).to_string();
    }
    if s == "0.5" {
        s = "\\frac{1}{2}".to_string();
    }
    fix_a_slash_b(&s)
}

/// Matrix rows and cells as `;` and `,`; a doubly escaped command loses one backslash.
fn matrix_rows(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\\\\") {
        out.push_str(&rest[..at]);
        rest = &rest[at + 2..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            out.push('\\');
        } else {
            out.push(';');
        }
    }
    out.push_str(rest);
    if out.contains("\\begin{") { out.replace('&', ",") } else { out }
}

/// Drops units at the end of an answer that has something before them: `\text{cm}`, `\text{ cm}`,
/// `\mbox{ inches}^2`, one after another. A unit is words of letters; `\text{(B)}` or a `\text{}` that is
/// the whole answer stays.
fn strip_trailing_units(text: &str) -> String {
    let mut s = text.trim_end().to_string();
    loop {
        let without_power = match s.rfind('^') {
            Some(at) if s[at + 1..].trim_matches(['{', '}']).bytes().all(|b| b.is_ascii_digit()) => &s[..at],
            _ => s.as_str(),
        };
        let Some(inner) = without_power.strip_suffix('}') else { break };
        let Some((before, unit)) = ["\\text{", "\\mbox{"].iter().find_map(|command| {
            let at = inner.rfind(command)?;
            Some((&inner[..at], &inner[at + command.len()..]))
        }) else {
            break;
        };
        let is_unit =
            unit.chars().any(|c| c.is_alphabetic()) && unit.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '.');
        if !is_unit || before.trim().is_empty() {
            break;
        }
        s = before.trim_end().to_string();
    }
    s
}

/// Removes thousands separators from numbers: `{,}` (which [`normalize`] also writes for `,\!`) before
/// three digits, and a plain comma before exactly three digits and no more. Any other comma separates
/// items and stays, so the list "1,2" or "1,2345" never reads as one number. A number's first group is one
/// to three digits that no digit or `.` precedes.
fn strip_thousands_separators(text: &str) -> String {
    let bytes = text.as_bytes();
    let digits_from = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        let starts_number = bytes[at].is_ascii_digit() && (at == 0 || !matches!(bytes[at - 1], b'0'..=b'9' | b'.'));
        if !starts_number {
            let c = text[at..].chars().next().unwrap_or(' ');
            out.push(c);
            at += c.len_utf8();
            continue;
        }
        let mut end = digits_from(at);
        out.push_str(&text[at..end]);
        if end - at <= 3 {
            loop {
                let rest = &text[end..];
                let separator = if rest.starts_with("{,}") { 3 } else { usize::from(rest.starts_with(',')) };
                let group_end = digits_from(end + separator);
                if separator == 0 || group_end - (end + separator) != 3 {
                    break;
                }
                out.push_str(&text[end + separator..group_end]);
                end = group_end;
            }
        }
        at = end;
    }
    out.replace("{,}", ",")
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

/// `x^2` -> `x^{2}`, `52_8` -> `52_{8}`: a one-character script braced, so both spellings compare equal.
fn brace_scripts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if matches!(c, '^' | '_')
            && let Some(&next) = chars.peek()
            && next.is_ascii_alphanumeric()
        {
            chars.next();
            out.push('{');
            out.push(next);
            out.push('}');
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
        assert_eq!(normalize("\\text{(C)}"), "C");
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

    #[test]
    fn final_answers_are_read_from_every_way_models_state_them() {
        let read = |output: &str| final_answer(output);
        assert_eq!(read("so it is $\\boxed{\\frac{2}{7}}$.").as_deref(), Some("\\frac{2}{7}"));
        // Minerva's few-shot format, and the Markdown one.
        let minerva = "Final Answer: The final answer is $3\\sqrt{7}$. I hope it is correct.";
        assert_eq!(read(minerva).as_deref(), Some("3\\sqrt{7}"));
        assert_eq!(read("Sum the parts.\n\n**Final answer:** $-14$").as_deref(), Some("-14"));
        assert_eq!(read("**Final Answer**: $x^2$").as_deref(), Some("x^2"));
        assert_eq!(read("The answer is: \\(\\pi/3\\)").as_deref(), Some("\\pi/3"));
        // Without math delimiters: the sentence, not what follows it; a decimal point does not end it.
        assert_eq!(read("The answer is 2.5. I checked it twice.").as_deref(), Some("2.5"));
        // An escaped dollar sign inside the math does not close it.
        assert_eq!(read("The answer is $\\$4,\\!250$.").as_deref(), Some("\\$4,\\!250"));
        // No marker: the last inline or display math.
        assert_eq!(read("First $a=1$, then $a+b = 9$").as_deref(), Some("a+b = 9"));
        assert_eq!(read("Hence\n\\[ 42 \\]").as_deref(), Some("42"));
        assert_eq!(read("It costs \\$5 and no math"), None);
        assert_eq!(read("The answer is"), None);
    }

    #[test]
    fn units_go_with_or_without_a_space_in_text_or_mbox() {
        for unit in ["7 \\text{m}", "7\\text{ m}", "7 \\mbox{m}", "7\\mbox{ meters}", "7 \\text{ sq. units}"] {
            assert!(equivalent(unit, "7"), "{unit}");
        }
        assert!(equivalent("12\\mbox{ ft}^2", "12"));
        assert!(equivalent("12 \\text{ft}^{2}", "12\\text{ square feet}"));
        // A `\text{}` that is the whole answer keeps its content; a unit on a wrong number stays wrong.
        assert!(equivalent("\\text{Tuesday}", "Tuesday"));
        assert!(!equivalent("8 \\text{m}", "7"));
    }

    #[test]
    fn bases_and_exponents_compare_braced_or_not() {
        assert!(equivalent("1011_{2}", "1011_2"));
        assert!(equivalent("y^3", "y^{3}"));
        assert!(!equivalent("1011_3", "1011_2"));
        assert!(!equivalent("31_{4}", "31_{5}"));
    }

    #[test]
    fn sums_compare_in_any_order_with_their_signs() {
        assert!(equivalent("4i+3", "3+4i"));
        assert!(equivalent("-7i + 2", "2 - 7i"));
        assert!(equivalent("t^2 - 1 + 5t", "t^2+5t-1"));
        assert!(equivalent("2b - a = 4", "-a + 2b = 4"));
        assert!(!equivalent("4i-3", "3+4i"));
        assert!(!equivalent("3+4i", "3+4i+1"));
        // Inside a fraction, a root or brackets too.
        assert!(equivalent("\\frac{5+2b}{7}", "\\dfrac{2b + 5}{7}"));
        assert!(equivalent("\\sqrt{y+1}", "\\sqrt{1+y}"));
        assert!(equivalent("(2+m)(n-3)", "(m+2)(-3+n)"));
        assert!(!equivalent("\\frac{5+2b}{7}", "\\frac{7}{5+2b}"));
        assert!(!equivalent("\\sqrt{y+1}", "\\sqrt[3]{1+y}"));
        // A minus after an operator or a bracket is a sign, not a new term.
        assert_eq!(signed_terms("2\\cdot-3+y^-1-(4-z)"), ["+2\\cdot-3", "+y^-1", "-(4-z)"]);
    }

    #[test]
    fn mixed_numbers_fractions_and_decimals_compare_by_value() {
        assert!(equivalent("3\\frac{1}{4}", "\\frac{13}{4}"));
        assert!(equivalent("3 \\frac{1}{4}", "3.25"));
        assert!(equivalent("-2\\frac{1}{2}", "-\\frac{5}{2}"));
        assert!(equivalent("-11/4", "-\\frac{11}{4}"));
        assert!(equivalent("\\frac{-11}{4}", "-2.75"));
        assert!(equivalent(".125", "\\frac18"));
        assert!(!equivalent("3\\frac{1}{4}", "\\frac{3}{4}"));
    }

    #[test]
    fn integers_compare_exactly_at_any_size() {
        // A relative tolerance of 1e-9 took these for equal.
        assert!(!equivalent("4000000001", "4000000000"));
        assert!(!equivalent(
            "123456789012345678901234567890123456789012",
            "123456789012345678901234567890123456789013"
        ));
        assert!(equivalent(
            "123456789012345678901234567890123456789012.0",
            "123456789012345678901234567890123456789012"
        ));
        assert!(equivalent("4,000,000,001", "4000000001"));
    }

    #[test]
    fn only_thousands_separators_are_dropped() {
        assert!(equivalent("7,654,321", "7654321"));
        assert!(equivalent("7{,}654{,}321", "7654321"));
        assert!(equivalent("7,\\!654,\\! 321", "7654321"));
        assert!(equivalent("\\$2,500.75", "2500.75"));
        // Any other comma separates items: stripping every comma made "1,2" equal 12.
        assert!(!equivalent("1,2", "12"));
        assert!(!equivalent("12", "1,2"));
        assert!(!equivalent("3,4567", "34567"));
        assert!(!equivalent("1234,567", "1234567"));
        assert_eq!(normalize("0.5,1"), "0.5,1");
    }

    #[test]
    fn tuples_intervals_lists_and_matrices_compare_element_by_element() {
        assert!(equivalent("(\\frac{1}{4}, -3)", "\\left( 0.25, -3 \\right)"));
        assert!(!equivalent("(-3, 0.25)", "(0.25,-3)"));
        assert!(equivalent("\\left[ 2, \\infty \\right)", "[2,\\infty)"));
        assert!(!equivalent("[2, \\infty)", "(2,\\infty)"));
        assert!(equivalent("x \\in (0, 4]", "(0,4]"));
        // `\infty` starts like `\in`: "-\infty" is not "fty".
        assert_eq!(normalize("-\\infty"), "-\\infty");
        // A list of solutions in any order.
        assert!(equivalent("-4, 2, 9", "9, 2, -4"));
        assert!(!equivalent("-4, 2, 9", "9, 2, 4"));
        let matrix = "\\begin{pmatrix} 3/4 & -1 \\\\ 0 & 2 \\end{pmatrix}";
        assert!(equivalent("\\begin{bmatrix} \\frac{3}{4} & -1 \\\\ 0 & 2.0 \\end{bmatrix}", matrix));
        assert!(!equivalent("\\begin{pmatrix} 3/4 & -1 \\\\ 0 & 3 \\end{pmatrix}", matrix));
    }

    #[test]
    fn choices_and_words() {
        assert!(equivalent("\\textbf{(D)}", "\\text{(D)}"));
        assert!(equivalent("D", "\\text{(D)}"));
        assert!(equivalent("\\text{odd}", "odd"));
        assert!(!equivalent("E", "\\text{(D)}"));
    }
}
