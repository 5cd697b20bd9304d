//! Renders Hugging Face chat templates (Jinja) into the text a chat model was trained on.
//!
//! HF renders with Python's jinja2 (`trim_blocks`, `lstrip_blocks`) and templates lean on Python string
//! methods (`.strip()`, `.startswith()`...), `raise_exception` and the variables `messages`, `bos_token`,
//! `eos_token`, `add_generation_prompt`; minijinja with minijinja-contrib's pycompat provides the same.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, context};

use crate::prompt::ChatMessage;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::Role;

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
}
