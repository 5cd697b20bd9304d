//! Few-shot chat prompts as the generation benchmarks here write them: each example a user turn with its
//! input and an assistant turn with its answer, then the sample's user turn; the first user turn opens
//! with the instruction. For scenarios whose prompts are the user's own (custom, prompts): the
//! `--scenario-arg format=chat|text` choice ([`Format`]) and a system-then-user chat ([`system_and_user`]).

use std::collections::BTreeMap;

use crate::records::field;
use crate::{ConfigError, Message, Role, Sample, config};

/// How a prompt reaches the model: through the chat template (the default), or as plain text for base
/// models that have none; `--scenario-arg format=chat|text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Chat,
    Text,
}

impl Format {
    /// The `format` argument of [`config::check`]'s map; another value than `chat` or `text` is a
    /// `config-error` for `args: format`.
    pub fn from_args(args: &BTreeMap<String, String>) -> Result<Format, ConfigError> {
        match args.get("format").map(String::as_str) {
            None | Some("chat") => Ok(Format::Chat),
            Some("text") => Ok(Format::Text),
            Some(other) => Err(config::error("args: format", format!("is {other:?}; expected `chat` or `text`"))),
        }
    }
}

/// A chat of the `system` message, when there is one, then the user's.
pub fn system_and_user(system: Option<String>, user: String) -> Vec<Message> {
    let system = system.map(|content| Message { role: Role::System, content });
    system.into_iter().chain([Message { role: Role::User, content: user }]).collect()
}

/// How a scenario's user turns read: `"{instruction}\n\n{label}: {input}"` first, `"{label}: {input}"` after,
/// where the input is the sample's field `field`.
#[derive(Debug, Clone, Copy)]
pub struct UserTurns<'a> {
    pub instruction: &'a str,
    pub label: &'a str,
    pub field: &'a str,
}

impl UserTurns<'_> {
    fn turn(&self, first: bool, sample: &Sample) -> Result<Message, String> {
        let input = field(sample, self.field)?;
        let content = if first {
            format!("{}\n\n{}: {input}", self.instruction, self.label)
        } else {
            format!("{}: {input}", self.label)
        };
        Ok(Message { role: Role::User, content })
    }
}

/// The chat for `sample` after its few-shot `examples`, each answered by `answer(example)`.
pub fn few_shot_chat(
    turns: &UserTurns<'_>,
    sample: &Sample,
    examples: &[Sample],
    answer: impl Fn(&Sample) -> Result<String, String>,
) -> Result<Vec<Message>, String> {
    let mut messages = Vec::new();
    for example in examples {
        messages.push(turns.turn(messages.is_empty(), example)?);
        messages.push(Message { role: Role::Assistant, content: answer(example)? });
    }
    messages.push(turns.turn(messages.is_empty(), sample)?);
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Field;

    fn sample(id: &str, text: &str) -> Sample {
        Sample {
            id: id.into(),
            subset: None,
            fields: vec![Field { name: "text".into(), value: text.into() }],
            reference: format!("{text}!"),
        }
    }

    #[test]
    fn the_first_user_turn_carries_the_instruction_and_examples_are_answered() {
        let turns = UserTurns { instruction: "Do it.", label: "Input", field: "text" };
        let chat = |examples: &[Sample]| {
            few_shot_chat(&turns, &sample("s", "c"), examples, |e| Ok(e.reference.clone()))
                .unwrap()
                .into_iter()
                .map(|m| (m.role, m.content))
                .collect::<Vec<_>>()
        };
        assert_eq!(chat(&[]), [(Role::User, "Do it.\n\nInput: c".to_string())]);
        let with_examples = chat(&[sample("a", "a"), sample("b", "b")]);
        let contents: Vec<&str> = with_examples.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(contents, ["Do it.\n\nInput: a", "a!", "Input: b", "b!", "Input: c"]);
        assert_eq!(with_examples[1].0, Role::Assistant);
        let error =
            few_shot_chat(&UserTurns { field: "other", ..turns }, &sample("s", "c"), &[], |_| Ok(String::new()))
                .unwrap_err();
        assert_eq!(error, "sample s has no `other` field");
    }

    #[test]
    fn the_format_argument_and_a_system_message() {
        let args = |value: &str| BTreeMap::from([("format".to_string(), value.to_string())]);
        assert_eq!(Format::from_args(&BTreeMap::new()).unwrap(), Format::Chat);
        assert_eq!(
            (Format::from_args(&args("chat")).unwrap(), Format::from_args(&args("text")).unwrap()),
            (Format::Chat, Format::Text)
        );
        let error = Format::from_args(&args("xml")).unwrap_err();
        assert_eq!(
            (error.option.as_str(), error.message.as_str()),
            ("args: format", "is \"xml\"; expected `chat` or `text`")
        );
        let roles = |messages: Vec<Message>| messages.into_iter().map(|m| (m.role, m.content)).collect::<Vec<_>>();
        assert_eq!(roles(system_and_user(None, "hi".into())), [(Role::User, "hi".to_string())]);
        assert_eq!(
            roles(system_and_user(Some("be brief".into()), "hi".into())),
            [(Role::System, "be brief".to_string()), (Role::User, "hi".to_string())]
        );
    }
}
