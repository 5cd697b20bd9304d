//! The custom scenario's task file (`--task FILE`, JSON or YAML) and its prompt template. The YAML reader
//! covers what a task file needs, not all of YAML: `key: value` lines at the top level with plain, single- or
//! double-quoted scalars, `|`/`>` block scalars (with `-` to strip the final newline), `[a, "b"]` flow lists
//! and `- item` block lists, and `#` comments. Every error names the file, and the key or line.

use std::collections::BTreeMap;

/// How an output is compared with the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// SQuAD-normalised equality.
    ExactMatch,
    /// The normalised reference appears in the normalised output as whole words.
    Contains,
    /// SQuAD token F1.
    F1,
    /// ROUGE-1/2/L F-measures.
    Rouge,
    /// The reference is a regular expression the output must match.
    Regex,
    /// Nothing is scored (speed runs over one's own prompts).
    None,
}

impl MetricKind {
    pub const NAMES: &'static [&'static str] = &["exact_match", "contains", "f1", "rouge", "regex", "none"];

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "exact_match" => MetricKind::ExactMatch,
            "contains" => MetricKind::Contains,
            "f1" => MetricKind::F1,
            "rouge" => MetricKind::Rouge,
            "regex" => MetricKind::Regex,
            "none" => MetricKind::None,
            _ => return None,
        })
    }
}

/// A parsed task; every key has a default, so no task file means `Task::default()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub template: Template,
    /// The column holding the expected answer.
    pub reference_field: String,
    /// None until the task says; then `contains` when the data has references, else `none`.
    pub metric: Option<MetricKind>,
    pub system: Option<String>,
    pub max_new_tokens: Option<u32>,
    pub stop: Vec<String>,
    /// The sampling temperature the task is defined with; none is greedy (the user's flags override it).
    pub temperature: Option<f32>,
}

impl Default for Task {
    fn default() -> Self {
        Task {
            template: Template::parse("{prompt}").expect("the default template is valid"),
            reference_field: "reference".to_string(),
            metric: None,
            system: None,
            max_new_tokens: None,
            stop: Vec::new(),
            temperature: None,
        }
    }
}

/// A task file problem: the option to name (`task-file: KEY`) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub option: String,
    pub message: String,
}

/// A value in a task file.
#[derive(Debug, Clone, PartialEq)]
enum TaskValue {
    Text(String),
    List(Vec<String>),
}

const KEYS: &[&str] = &["template", "reference_field", "metric", "system", "max_new_tokens", "stop", "temperature"];

impl Task {
    /// Parses a task file; `.json` files as JSON, everything else as the YAML subset.
    pub fn parse(file_name: &str, data: &[u8]) -> Result<Task, TaskError> {
        let whole = |message: String| TaskError { option: "task-file".to_string(), message };
        let text = std::str::from_utf8(data).map_err(|_| whole(format!("{file_name} is not UTF-8 text")))?;
        let values = if file_name.to_ascii_lowercase().ends_with(".json") {
            parse_json(file_name, text).map_err(whole)?
        } else {
            parse_yaml(file_name, text).map_err(whole)?
        };
        let mut task = Task::default();
        for (key, value) in values {
            let error = |message: String| TaskError { option: format!("task-file: {key}"), message };
            if !KEYS.contains(&key.as_str()) {
                return Err(error(format!("{file_name}: unknown key `{key}`; the keys are {}", KEYS.join(", "))));
            }
            let text = || match &value {
                TaskValue::Text(text) => Ok(text.clone()),
                TaskValue::List(_) => Err(error(format!("{file_name}: `{key}` must be text, not a list"))),
            };
            match key.as_str() {
                "template" => {
                    task.template = Template::parse(&text()?).map_err(|m| error(format!("{file_name}: {m}")))?
                }
                "reference_field" => task.reference_field = text()?.trim().to_string(),
                "metric" => {
                    let name = text()?;
                    let metric = MetricKind::parse(name.trim()).ok_or_else(|| {
                        error(format!("{file_name}: metric {name:?} is not one of {}", MetricKind::NAMES.join(", ")))
                    })?;
                    task.metric = Some(metric);
                }
                "system" => task.system = Some(text()?).filter(|s| !s.trim().is_empty()),
                "max_new_tokens" => {
                    let raw = text()?;
                    let tokens = raw.trim().parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        error(format!("{file_name}: max_new_tokens is {raw:?}, expected a positive integer"))
                    })?;
                    task.max_new_tokens = Some(tokens);
                }
                "stop" => {
                    task.stop = match &value {
                        TaskValue::List(items) => items.clone(),
                        TaskValue::Text(text) => vec![text.clone()],
                    };
                    if task.stop.iter().any(String::is_empty) {
                        return Err(error(format!("{file_name}: a stop string is empty")));
                    }
                }
                "temperature" => {
                    let raw = text()?;
                    let temperature =
                        raw.trim().parse::<f32>().ok().filter(|t| t.is_finite() && *t >= 0.0).ok_or_else(|| {
                            error(format!("{file_name}: temperature is {raw:?}, expected a number of 0 or more"))
                        })?;
                    task.temperature = Some(temperature);
                }
                _ => unreachable!("every key in KEYS is handled"),
            }
        }
        if task.reference_field.is_empty() {
            return Err(TaskError {
                option: "task-file: reference_field".to_string(),
                message: format!("{file_name}: reference_field is empty"),
            });
        }
        Ok(task)
    }
}

fn parse_json(file_name: &str, text: &str) -> Result<Vec<(String, TaskValue)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{file_name} is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or_else(|| format!("{file_name}: expected a JSON object of settings"))?;
    object
        .iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => TaskValue::Text(s.clone()),
                serde_json::Value::Number(n) => TaskValue::Text(n.to_string()),
                serde_json::Value::Array(items) => TaskValue::List(
                    items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| format!("{file_name}: `{key}` must be a list of strings, found {item}"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other => return Err(format!("{file_name}: `{key}` must be a string, number or list, found {other}")),
            };
            Ok((key.clone(), value))
        })
        .collect()
}

fn parse_yaml(file_name: &str, text: &str) -> Result<Vec<(String, TaskValue)>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut values = Vec::new();
    let mut seen = BTreeMap::new();
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        let number = at + 1;
        at += 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(format!("{file_name}: line {number} is indented but belongs to no key"));
        }
        let Some((key, rest)) = line.split_once(':') else {
            return Err(format!("{file_name}: line {number} is not `key: value`"));
        };
        let key = key.trim().to_string();
        if seen.insert(key.clone(), number).is_some() {
            return Err(format!("{file_name}: key `{key}` appears twice (line {number})"));
        }
        let rest = rest.trim();
        // Indented lines after the key: a block scalar or a block list.
        let block_end = {
            let mut end = at;
            while end < lines.len() && (lines[end].trim().is_empty() || lines[end].starts_with([' ', '\t'])) {
                end += 1;
            }
            end
        };
        let value = if let Some(style) = rest.strip_prefix(['|', '>']) {
            let folded = rest.starts_with('>');
            let strip = match style.trim() {
                "" => false,
                "-" => true,
                other => return Err(format!("{file_name}: line {number}: block indicator `{other}` is not supported")),
            };
            let value = block_scalar(&lines[at..block_end], folded, strip);
            at = block_end;
            TaskValue::Text(value)
        } else if rest.is_empty() || rest.starts_with('#') {
            let mut items = Vec::new();
            for (offset, item_line) in lines[at..block_end].iter().enumerate() {
                let item = item_line.trim();
                if item.is_empty() || item.starts_with('#') {
                    continue;
                }
                let Some(item) = item.strip_prefix('-') else {
                    return Err(format!("{file_name}: line {} should be a `- item` of `{key}`", at + offset + 1));
                };
                items.push(scalar(item.trim()).map_err(|m| format!("{file_name}: line {}: {m}", at + offset + 1))?);
            }
            at = block_end;
            TaskValue::List(items)
        } else if let Some(inner) = rest.strip_prefix('[') {
            let inner = inner
                .trim_end()
                .strip_suffix(']')
                .ok_or_else(|| format!("{file_name}: line {number}: the list is not closed with `]` on its line"))?;
            TaskValue::List(
                split_flow(inner)
                    .map_err(|m| format!("{file_name}: line {number}: {m}"))?
                    .iter()
                    .map(|item| scalar(item.trim()))
                    .collect::<Result<_, _>>()
                    .map_err(|m| format!("{file_name}: line {number}: {m}"))?,
            )
        } else {
            TaskValue::Text(scalar(rest).map_err(|m| format!("{file_name}: line {number}: {m}"))?)
        };
        values.push((key, value));
    }
    Ok(values)
}

/// The lines of a `|` or `>` block, their common indentation removed.
fn block_scalar(lines: &[&str], folded: bool, strip: bool) -> String {
    let indent =
        lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let body: Vec<&str> = lines.iter().map(|l| if l.len() >= indent { &l[indent..] } else { "" }).collect();
    let mut end = body.len();
    while end > 0 && body[end - 1].trim().is_empty() {
        end -= 1;
    }
    let body = &body[..end];
    let mut text = if folded {
        // Lines fold into spaces; an empty line is a line break.
        let mut out = String::new();
        for line in body {
            if line.is_empty() {
                out.push('\n');
            } else {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push(' ');
                }
                out.push_str(line);
            }
        }
        out
    } else {
        body.join("\n")
    };
    if !strip && !text.is_empty() {
        text.push('\n');
    }
    text
}

/// A plain, single-quoted or double-quoted scalar; a ` #` starts a comment after a plain one.
fn scalar(raw: &str) -> Result<String, String> {
    if let Some(inner) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    let rest = chars.as_str().trim();
                    if !rest.is_empty() && !rest.starts_with('#') {
                        return Err(format!("unexpected text after a quoted value: {rest:?}"));
                    }
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some(other) => return Err(format!("unsupported escape `\\{other}`")),
                    None => return Err("a quoted value ends with `\\`".to_string()),
                },
                c => out.push(c),
            }
        }
        return Err("a double-quoted value is not closed".to_string());
    }
    if let Some(inner) = raw.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok(out);
                }
            } else {
                out.push(c);
            }
        }
        return Err("a single-quoted value is not closed".to_string());
    }
    let value = match raw.find(" #") {
        Some(at) => &raw[..at],
        None => raw,
    };
    Ok(value.trim().to_string())
}

/// Splits a flow list's inside on commas outside quotes.
fn split_flow(inner: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in inner.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, ',') => items.push(std::mem::take(&mut current)),
            (_, c) => current.push(c),
        }
    }
    if quote.is_some() {
        return Err("a quoted list item is not closed".to_string());
    }
    if !current.trim().is_empty() || !items.is_empty() {
        items.push(current);
    }
    Ok(items.into_iter().filter(|i| !i.trim().is_empty()).collect())
}

/// A prompt template: text with `{column}` placeholders; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Column(String),
}

impl Template {
    pub fn parse(template: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!("the placeholder `{{{name}` is not closed with `}}`"));
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    let name = name.trim().to_string();
                    if name.is_empty() {
                        return Err("the template has an empty placeholder `{}`".to_string());
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Column(name));
                }
                '}' => return Err("the template has a `}` without a `{` (write `}}` for a literal brace)".to_string()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.iter().any(|p| matches!(p, Part::Column(_))) {
            return Err("the template has no `{column}` placeholder, so every prompt would be the same".to_string());
        }
        Ok(Template { parts })
    }

    /// The columns the template reads, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Fills the placeholders; `value` returns a column's text, or an error naming it.
    pub fn render<E>(&self, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Column(name) => out.push_str(&value(name)?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_task_files_parse() {
        let yaml = "# my task\n\
                    template: |\n  Question: {question}\n  Context: {{ {context} }}\n\n  Answer:\n\
                    reference_field: answer   # the gold column\n\
                    metric: \"f1\"\n\
                    system: 'You answer briefly, don''t explain.'\n\
                    max_new_tokens: 32\n\
                    stop:\n  - \"\\n\\n\"\n  - 'Question:'\n";
        let task = Task::parse("task.yaml", yaml.as_bytes()).unwrap();
        let rendered = task.template.render::<()>(|c| Ok(format!("<{c}>"))).unwrap();
        assert_eq!(rendered, "Question: <question>\nContext: { <context> }\n\nAnswer:\n");
        assert_eq!(task.reference_field, "answer");
        assert_eq!(task.metric, Some(MetricKind::F1));
        assert_eq!(task.system.as_deref(), Some("You answer briefly, don't explain."));
        assert_eq!(task.max_new_tokens, Some(32));
        assert_eq!(task.stop, ["\n\n", "Question:"]);
    }

    #[test]
    fn folded_blocks_and_flow_lists() {
        let yaml = "template: >-\n  Say {word}\n  twice.\nstop: [\"a, b\", c]\n";
        let task = Task::parse("t.yml", yaml.as_bytes()).unwrap();
        assert_eq!(task.template.render::<()>(|_| Ok("hi".into())).unwrap(), "Say hi twice.");
        assert_eq!(task.stop, ["a, b", "c"]);
    }

    #[test]
    fn json_task_files_parse() {
        let json =
            r#"{"template": "Q: {q}\nA:", "metric": "regex", "stop": ["\n"], "max_new_tokens": 8, "temperature": 0.7}"#;
        let task = Task::parse("task.json", json.as_bytes()).unwrap();
        assert_eq!(task.metric, Some(MetricKind::Regex));
        assert_eq!(task.template.columns().collect::<Vec<_>>(), ["q"]);
        assert_eq!((task.max_new_tokens, task.temperature), (Some(8), Some(0.7)));
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("task.yaml", "templat: x {a}\n", "task-file: templat"),
            ("task.json", r#"{"metric": "bleu"}"#, "task-file: metric"),
            ("task.yaml", "template: no placeholder\n", "task-file: template"),
            ("task.yaml", "template: \"{a\"\n", "task-file: template"),
            ("task.yaml", "max_new_tokens: many\n", "task-file: max_new_tokens"),
            ("task.yaml", "stop: [\"\"]\n", "task-file: stop"),
            ("task.yaml", "  indented: x\n", "task-file"),
            ("task.yaml", "metric: f1\nmetric: rouge\n", "task-file"),
            ("task.json", "[1]", "task-file"),
        ];
        for (file, text, option) in cases {
            let error = Task::parse(file, text.as_bytes()).unwrap_err();
            assert_eq!(error.option, *option, "{text}: {error:?}");
            assert!(error.message.contains(file), "{error:?}");
        }
    }
}
