//! Renders Hugging Face chat templates (Jinja) into the text a chat model was trained on.
//!
//! HF renders with Python's jinja2 (`trim_blocks`, `lstrip_blocks`) and templates lean on Python string
//! methods (`.strip()`, `.startswith()`...), `raise_exception` and the variables `messages`, `bos_token`,
//! `eos_token`, `add_generation_prompt`; minijinja with minijinja-contrib's pycompat provides the same.
//!
//! [`PromptOptions`] applies the run's prompt settings before rendering: a system prompt (`--system-prompt`)
//! and plain text instead of the template (`--no-chat-template`, for base models), in the documented
//! format of [`plain_text`].

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, context};

use crate::prompt::{ChatMessage, Prompt, Role};

const TEMPLATE_NAME: &str = "chat_template";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the model's chat template does not parse: {0:#}")]
    Parse(Error),
    #[error("rendering the chat template failed: {0:#}")]
    Render(Error),
    #[error(
        "the model has no chat template (neither chat_template.jinja nor tokenizer_config.json `chat_template`), so chat prompts cannot be rendered; use a text prompt"
    )]
    Missing,
}

/// A parsed chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn new(source: String, bos_token: Option<String>, eos_token: Option<String>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let syntax =
            SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(TemplateError::Parse)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(TEMPLATE_NAME, source).map_err(TemplateError::Parse)?;
        Ok(ChatTemplate { env, bos_token: bos_token.unwrap_or_default(), eos_token: eos_token.unwrap_or_default() })
    }

    /// The prompt text for `messages`, ending with the assistant's turn opener when `add_generation_prompt`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, TemplateError> {
        let template = self.env.get_template(TEMPLATE_NAME).map_err(TemplateError::Render)?;
        template
            .render(context! {
                messages => minijinja::Value::from(minijinja::value::Serde(messages)),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(TemplateError::Render)
    }
}

/// The run's prompt settings, applied to every prompt a scenario builds before the engine renders it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptOptions {
    /// A system message for chat prompts (see [`with_system_prompt`]); text prompts get it as a first
    /// paragraph (the text, a blank line, then the prompt).
    pub system_prompt: Option<String>,
    /// Chat prompts go to the model as plain text ([`plain_text`]) instead of through the chat template.
    pub no_chat_template: bool,
}

impl PromptOptions {
    pub fn apply(&self, prompt: Prompt) -> Prompt {
        let prompt = match (&self.system_prompt, prompt) {
            (Some(system), Prompt::Chat(messages)) => Prompt::Chat(with_system_prompt(messages, system)),
            (Some(system), Prompt::Text(text)) => Prompt::Text(format!("{system}\n\n{text}")),
            (None, prompt) => prompt,
        };
        match prompt {
            Prompt::Chat(messages) if self.no_chat_template => Prompt::Text(plain_text(&messages)),
            prompt => prompt,
        }
    }
}

/// `messages` with `system` as their system message. Many templates read only a first system message, so
/// when the scenario wrote one already, `system` goes in front of it (a blank line between) rather than in
/// a second message.
pub fn with_system_prompt(mut messages: Vec<ChatMessage>, system: &str) -> Vec<ChatMessage> {
    match messages.first_mut() {
        Some(first) if first.role == Role::System => first.content = format!("{system}\n\n{}", first.content),
        _ => messages.insert(0, ChatMessage { role: Role::System, content: system.to_string() }),
    }
    messages
}

/// Chat messages as plain text for a model without (or not using) a chat template. The format:
/// - system messages come first, as paragraphs without a label;
/// - a single user message (the usual scenario prompt) follows as is, so the text is exactly what the
///   scenario wrote;
/// - a conversation (several user/assistant turns, e.g. few-shot examples) is written as `User: …` and
///   `Assistant: …` paragraphs ending with `Assistant:`, so a base model continues as the assistant.
///
/// Paragraphs are separated by a blank line. The tokenizer adds its own special tokens (BOS) as it does for
/// any text prompt.
pub fn plain_text(messages: &[ChatMessage]) -> String {
    let mut paragraphs: Vec<String> =
        messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.clone()).collect();
    let turns: Vec<&ChatMessage> = messages.iter().filter(|m| m.role != Role::System).collect();
    match turns.as_slice() {
        [only] if only.role == Role::User => paragraphs.push(only.content.clone()),
        _ => {
            for turn in &turns {
                let label = if turn.role == Role::User { "User" } else { "Assistant" };
                paragraphs.push(format!("{label}: {}", turn.content));
            }
            paragraphs.push("Assistant:".to_string());
        }
    }
    paragraphs.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template, as its GGUF and tokenizer_config.json carry it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn user(text: &str) -> ChatMessage {
        ChatMessage { role: Role::User, content: text.to_string() }
    }

    #[test]
    fn smollm2_inserts_default_system_prompt() {
        let template =
            ChatTemplate::new(SMOLLM2.into(), Some("<|im_start|>".into()), Some("<|im_end|>".into())).unwrap();
        let text = template.render(&[user("What is the capital of France?")], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn smollm2_keeps_given_system_prompt_and_omits_generation_prompt() {
        let template = ChatTemplate::new(SMOLLM2.into(), None, None).unwrap();
        let messages = [ChatMessage { role: Role::System, content: "Be terse.".into() }, user("Hi")];
        let text = template.render(&messages, false).unwrap();
        assert_eq!(text, "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    }

    #[test]
    fn python_methods_tokens_and_raise_exception_work() {
        let source = "{{ bos_token }}{% for m in messages %}{% if m.role == 'assistant' %}{{ raise_exception('no assistant turns') }}{% endif %}\
                      {{ m.content.strip().upper() }}{% if not loop.last %}|{% endif %}{% endfor %}{{ eos_token }}";
        let template = ChatTemplate::new(source.into(), Some("<s>".into()), Some("</s>".into())).unwrap();
        assert_eq!(template.render(&[user("  a "), user("b\n")], true).unwrap(), "<s>A|B</s>");
        let err = template.render(&[ChatMessage { role: Role::Assistant, content: "x".into() }], true).unwrap_err();
        assert!(err.to_string().contains("no assistant turns"), "{err}");
    }

    #[test]
    fn hf_whitespace_rules_apply() {
        // trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before one.
        let source = "{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}";
        let template = ChatTemplate::new(source.into(), None, None).unwrap();
        assert_eq!(template.render(&[user("x"), user("y")], false).unwrap(), "[x]\n[y]\n");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(ChatTemplate::new("{% for %}".into(), None, None), Err(TemplateError::Parse(_))));
    }
    /// Meta-Llama-3-8B-Instruct's template, as its tokenizer_config.json carries it.
    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    /// Qwen2.5-Instruct's template without its tool-calling branches: a default system prompt unless the
    /// conversation brings one, written with `{%-` whitespace control over several lines.
    const QWEN25: &str = "{%- if messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n{%- else %}\n    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

    /// DeepSeek-R1's template shape: the generation prompt opens the thinking block.
    const R1_LIKE: &str = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}{% elif m.role == 'user' %}<｜User｜>{{ m.content }}{% endif %}{% endfor %}{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}";

    fn system_prompt(text: &str) -> PromptOptions {
        PromptOptions { system_prompt: Some(text.into()), no_chat_template: false }
    }

    fn render_chat(template: &ChatTemplate, prompt: Prompt) -> String {
        let Prompt::Chat(messages) = prompt else { panic!("expected a chat prompt: {prompt:?}") };
        template.render(&messages, true).unwrap()
    }

    #[test]
    fn llama3_renders_the_system_prompt_as_its_first_header() {
        let template = ChatTemplate::new(LLAMA3.into(), Some("<|begin_of_text|>".into()), None).unwrap();
        let prompt = system_prompt("You solve math problems.").apply(Prompt::Chat(vec![user(" 2+2? ")]));
        assert_eq!(
            render_chat(&template, prompt),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou solve math problems.<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn qwen_replaces_its_default_system_prompt_with_ours() {
        let template = ChatTemplate::new(QWEN25.into(), None, Some("<|im_end|>".into())).unwrap();
        let without = render_chat(&template, Prompt::Chat(vec![user("Hi")]));
        assert_eq!(
            without,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let with = render_chat(&template, system_prompt("Answer in French.").apply(Prompt::Chat(vec![user("Hi")])));
        assert_eq!(
            with,
            "<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn our_system_prompt_goes_before_the_scenarios_own() {
        let messages = vec![ChatMessage { role: Role::System, content: "Use words.".into() }, user("Hi")];
        let prompt = system_prompt("Be brief.").apply(Prompt::Chat(messages));
        let Prompt::Chat(messages) = prompt else { panic!() };
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], ChatMessage { role: Role::System, content: "Be brief.\n\nUse words.".into() });
        // The SmolLM2 template then uses it instead of its default.
        let template = ChatTemplate::new(SMOLLM2.into(), None, None).unwrap();
        let text = template.render(&messages, true).unwrap();
        assert!(text.starts_with("<|im_start|>system\nBe brief.\n\nUse words.<|im_end|>"), "{text}");
        assert!(!text.contains("SmolLM"), "{text}");
    }

    #[test]
    fn a_text_prompt_gets_the_system_prompt_as_a_first_paragraph() {
        assert_eq!(
            system_prompt("Be brief.").apply(Prompt::Text("Q: 1+1\nA:".into())),
            Prompt::Text("Be brief.\n\nQ: 1+1\nA:".into())
        );
    }

    #[test]
    fn no_chat_template_gives_plain_text() {
        let plain = PromptOptions { system_prompt: None, no_chat_template: true };
        assert_eq!(plain.apply(Prompt::Chat(vec![user("Question: 2+2?")])), Prompt::Text("Question: 2+2?".into()));
        let with_system = PromptOptions { system_prompt: Some("Be brief.".into()), no_chat_template: true };
        assert_eq!(with_system.apply(Prompt::Chat(vec![user("Q?")])), Prompt::Text("Be brief.\n\nQ?".into()));
        let few_shot = vec![user("1+1?"), ChatMessage { role: Role::Assistant, content: "2".into() }, user("2+2?")];
        assert_eq!(
            plain.apply(Prompt::Chat(few_shot)),
            Prompt::Text("User: 1+1?\n\nAssistant: 2\n\nUser: 2+2?\n\nAssistant:".into())
        );
        // Text prompts are already plain.
        assert_eq!(plain.apply(Prompt::Text("as is".into())), Prompt::Text("as is".into()));
    }

    #[test]
    fn a_template_that_opens_thinking_is_recognised() {
        let template = ChatTemplate::new(R1_LIKE.into(), Some("<bos>".into()), None).unwrap();
        let text = render_chat(&template, system_prompt("Think step by step.").apply(Prompt::Chat(vec![user("2+2?")])));
        assert_eq!(text, "<bos>Think step by step.<｜User｜>2+2?<｜Assistant｜><think>\n");
        assert!(crate::engine::ThinkMarkers::default().opened_by(&text));
    }
}
