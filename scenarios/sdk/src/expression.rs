//! Evaluating a LaTeX expression numerically, for answers that are equal only after algebra (`\sqrt{20}` and
//! `2\sqrt{5}`, `\frac{1}{\sqrt{3}}` and `\frac{\sqrt{3}}{3}`, `\pi \cdot 7` and `7\pi`), which the string and
//! structure rules of [`latex`](crate::latex) cannot see without a computer algebra system. Two expressions
//! are taken as equal when they have the same value at two assignments of their letters.
//!
//! The grammar is small on purpose, and anything outside it is not a value (`None`), so the comparison
//! stays with the stricter rules: numbers, single-letter variables, `+ - * /`, `\cdot`, `\times`, `\div`,
//! implicit products, `^` with a braced or one-character exponent, brackets, `\frac`, `\sqrt` (also
//! `\sqrt[n]`), `\pi`, and `\sin`, `\cos`, `\tan`, `\ln`, `\log`, `\exp` applied to a bracketed argument. It
//! reads [`latex::normalize`](crate::latex::normalize)'s output: no spaces, `\frac{a}{b}` braced.

/// Whether `a` and `b` both evaluate and have equal values at every assignment tried. Values that are
/// whole numbers compare exactly, so 1000000001 never equals 1000000000; others to a relative 1e-9.
pub fn same_value(a: &str, b: &str) -> bool {
    (0..2).all(|assignment| match (evaluate(a, assignment), evaluate(b, assignment)) {
        (Some(x), Some(y)) => close(x, y),
        _ => false,
    })
}

fn close(x: f64, y: f64) -> bool {
    // 2^53: beyond it f64 no longer holds every integer.
    let whole = |v: f64| v.abs() < 9.0e15 && (v - v.round()).abs() <= 1e-9 * v.abs().max(1.0);
    if whole(x) && whole(y) {
        return x.round() == y.round();
    }
    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

/// The value of `text` with its letters set by `assignment`; None when it is outside the grammar or not a
/// finite number.
pub fn evaluate(text: &str, assignment: u32) -> Option<f64> {
    let mut parser = Parser { text, at: 0, assignment };
    let value = parser.sum()?;
    (parser.at == text.len() && value.is_finite()).then_some(value)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    assignment: u32,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    /// term (('+' | '-') term)*
    fn sum(&mut self) -> Option<f64> {
        let mut value = self.product()?;
        loop {
            if self.eat("+") {
                value += self.product()?;
            } else if self.eat("-") {
                value -= self.product()?;
            } else {
                return Some(value);
            }
        }
    }

    /// signed (operator signed | signed)*: an explicit or implicit product or quotient.
    fn product(&mut self) -> Option<f64> {
        let mut value = self.signed()?;
        loop {
            if self.eat("\\cdot") || self.eat("\\times") || self.eat("*") {
                value *= self.signed()?;
            } else if self.eat("\\div") || self.eat("/") {
                value /= self.signed()?;
            } else if self.starts_factor() {
                value *= self.power()?;
            } else {
                return Some(value);
            }
        }
    }

    fn starts_factor(&self) -> bool {
        let rest = self.rest();
        let operator = ["\\cdot", "\\times", "\\div", "\\pm", "\\mp"].iter().any(|op| rest.starts_with(op));
        !operator && rest.starts_with(|c: char| c.is_ascii_alphanumeric() || matches!(c, '\\' | '(' | '{' | '.'))
    }

    fn signed(&mut self) -> Option<f64> {
        if self.eat("-") {
            return Some(-self.signed()?);
        }
        if self.eat("+") {
            return self.signed();
        }
        self.power()
    }

    /// atom ('^' exponent)?, the exponent braced or one character, right-associative through braces.
    fn power(&mut self) -> Option<f64> {
        let base = self.atom()?;
        if !self.eat("^") {
            return Some(base);
        }
        let exponent = if self.rest().starts_with('{') { self.group('{', '}')? } else { self.atom_char()? };
        Some(base.powf(exponent))
    }

    /// A one-character exponent: `x^2`, `2^x`.
    fn atom_char(&mut self) -> Option<f64> {
        let c = self.rest().chars().next()?;
        if c.is_ascii_digit() {
            self.at += 1;
            return Some(f64::from(c.to_digit(10)?));
        }
        self.variable()
    }

    fn atom(&mut self) -> Option<f64> {
        let rest = self.rest();
        let c = rest.chars().next()?;
        if c.is_ascii_digit() || c == '.' {
            return self.number();
        }
        if c.is_ascii_alphabetic() {
            return self.variable();
        }
        match c {
            '(' => self.group('(', ')'),
            '{' => self.group('{', '}'),
            '\\' => self.command(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<f64> {
        let rest = self.rest();
        let length = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value = rest[..length].parse().ok()?;
        self.at += length;
        Some(value)
    }

    /// A letter, set to a value that differs by letter and by assignment and is neither 0 nor 1, so
    /// `x^2` and `x`, or `2k` and `k+2`, differ.
    fn variable(&mut self) -> Option<f64> {
        let c = self.rest().chars().next().filter(char::is_ascii_alphabetic)?;
        self.at += 1;
        let seed = (u32::from(c) * 7919 + self.assignment * 104_729) % 1000;
        Some(1.3 + f64::from(seed) / 617.0)
    }

    /// `open` sum `close`.
    fn group(&mut self, open: char, close: char) -> Option<f64> {
        self.eat(&open.to_string()).then_some(())?;
        let value = self.sum()?;
        self.eat(&close.to_string()).then_some(value)
    }

    fn command(&mut self) -> Option<f64> {
        let name_length = self.rest()[1..].find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(self.rest().len() - 1);
        let name = self.rest()[1..1 + name_length].to_string();
        self.at += 1 + name_length;
        match name.as_str() {
            "pi" => Some(std::f64::consts::PI),
            "frac" => {
                let numerator = self.group('{', '}')?;
                Some(numerator / self.group('{', '}')?)
            }
            "sqrt" => {
                let index = if self.rest().starts_with('[') { self.group('[', ']')? } else { 2.0 };
                let radicand = self.group('{', '}')?;
                (radicand >= 0.0).then(|| radicand.powf(1.0 / index))
            }
            "sin" | "cos" | "tan" | "ln" | "log" | "exp" => {
                let argument = if self.rest().starts_with('(') { self.group('(', ')')? } else { self.group('{', '}')? };
                Some(match name.as_str() {
                    "sin" => argument.sin(),
                    "cos" => argument.cos(),
                    "tan" => argument.tan(),
                    "ln" | "log" => argument.ln(),
                    _ => argument.exp(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_the_grammar() {
        let value = |text: &str| evaluate(text, 0);
        assert_eq!(value("2+3\\cdot4"), Some(14.0));
        assert_eq!(value("-2^{2}"), Some(-4.0));
        assert_eq!(value("(1+2)(3+4)"), Some(21.0));
        assert_eq!(value("\\frac{3}{4}"), Some(0.75));
        assert_eq!(value("\\sqrt[3]{27}"), Some(3.0));
        assert_eq!(value("12\\div4/3"), Some(1.0));
        assert!((value("2\\pi").unwrap() - std::f64::consts::TAU).abs() < 1e-12);
        // Outside the grammar, or not a finite number: no value.
        for text in ["\\infty", "1\\pm2", "(1,2)", "x!", "52_{8}", "\\frac{1}{0}", "\\sqrt{-4}", "2+"] {
            assert_eq!(value(text), None, "{text}");
        }
    }

    #[test]
    fn algebraically_equal_answers_have_the_same_value() {
        assert!(same_value("\\sqrt{20}", "2\\sqrt{5}"));
        assert!(same_value("\\frac{1}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}"));
        assert!(same_value("\\pi\\cdot7", "7\\pi"));
        assert!(same_value("(x+1)^{2}", "x^{2}+2x+1"));
        assert!(!same_value("(x+1)^{2}", "x^{2}+1"));
        assert!(!same_value("2k", "k+2"));
        assert!(!same_value("\\sqrt{21}", "2\\sqrt{5}"));
        // Whole numbers compare exactly, whatever their size.
        assert!(!same_value("10^{9}+1", "1000000000"));
        assert!(same_value("10^{9}", "1000000000"));
    }
}
