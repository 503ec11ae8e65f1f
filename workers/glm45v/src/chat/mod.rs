//! Chat messages → GLM-4.5V prompt text (spec §4.1).
//!
//! The checkpoint's own template is used when present (`chat_template.jinja`, else
//! `tokenizer_config.json`'s `chat_template`), rendered with minijinja configured like
//! transformers' jinja2 (trim_blocks, lstrip_blocks, Python string methods, `tojson` with
//! `ensure_ascii`, `raise_exception`). Without one, [`render_builtin`] writes the same format:
//!
//! ```text
//! [gMASK]<sop><|system|>\n{system}<|user|>\n{text with <|begin_of_image|><|image|><|end_of_image|>}
//! <|assistant|>\n<think></think>\n{past answer}<|user|>\n…<|assistant|>\n
//! ```
//! Thinking off appends `/nothink` to user turns and `<think></think>\n` to the generation prompt.

pub mod tokenizer;

use std::path::Path;

use minijinja::value::{Kwargs, Value};
use minijinja::Environment;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One part of a multimodal message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentPart {
    Text { text: String },
    Image,
    Video,
}

/// Message content: plain text or a list of parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One chat message (`role`: system, user, assistant, observation/tool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    /// A text message.
    pub fn text(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: Content::Text(text.into()),
            reasoning_content: None,
        }
    }

    /// A user message with `images` image placeholders followed by `text`.
    pub fn user_with_images(images: usize, text: impl Into<String>) -> Self {
        let mut parts = vec![ContentPart::Image; images];
        parts.push(ContentPart::Text { text: text.into() });
        Self {
            role: "user".into(),
            content: Content::Parts(parts),
            reasoning_content: None,
        }
    }
}

/// Rendering switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatOptions {
    pub add_generation_prompt: bool,
    pub enable_thinking: bool,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            add_generation_prompt: true,
            enable_thinking: true,
        }
    }
}

/// The template a checkpoint renders prompts with.
pub enum ChatTemplate {
    /// A jinja template from the checkpoint.
    Jinja(Box<Environment<'static>>),
    /// The built-in GLM-4.5V format.
    Builtin,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatTemplate::Jinja(_) => f.write_str("ChatTemplate::Jinja"),
            ChatTemplate::Builtin => f.write_str("ChatTemplate::Builtin"),
        }
    }
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    /// `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template`, else built-in.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let src = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
            return Self::from_source(src);
        }
        let tc = dir.join("tokenizer_config.json");
        if tc.is_file() {
            let v: serde_json::Value = crate::checkpoint::config::read_json(&tc)?;
            match v.get("chat_template") {
                Some(serde_json::Value::String(s)) => return Self::from_source(s.clone()),
                Some(serde_json::Value::Array(named)) => {
                    let default = named.iter().find(|t| t["name"] == "default");
                    if let Some(s) = default.and_then(|t| t["template"].as_str()) {
                        return Self::from_source(s.to_string());
                    }
                }
                _ => {}
            }
        }
        tracing::debug!(dir = %dir.display(), "no chat template in checkpoint, using the built-in one");
        Ok(ChatTemplate::Builtin)
    }

    /// Compiles a jinja template with transformers-compatible settings.
    pub fn from_source(src: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(TEMPLATE_NAME, src)
            .map_err(|e| Error::Template(format!("compile: {e:#}")))?;
        Ok(ChatTemplate::Jinja(Box::new(env)))
    }

    /// Renders `messages` to prompt text.
    pub fn render(&self, messages: &[ChatMessage], opts: ChatOptions) -> Result<String> {
        match self {
            ChatTemplate::Builtin => Ok(render_builtin(messages, opts)),
            ChatTemplate::Jinja(env) => {
                let tmpl = env
                    .get_template(TEMPLATE_NAME)
                    .map_err(|e| Error::Template(e.to_string()))?;
                let ctx = minijinja::context! {
                    messages => Value::from_serialize(messages),
                    add_generation_prompt => opts.add_generation_prompt,
                    enable_thinking => opts.enable_thinking,
                };
                tmpl.render(ctx)
                    .map_err(|e| Error::Template(format!("render: {e:#}")))
            }
        }
    }
}

fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let json = match indent {
        Some(_) => serde_json::to_string_pretty(&value),
        None => serde_json::to_string(&value),
    }
    .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(Value::from_safe_string(json))
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        msg,
    ))
}

/// Visible text of a message: text parts concatenated, images/videos as their placeholders.
pub fn content_text(content: &Content) -> String {
    match content {
        Content::Text(t) => t.clone(),
        Content::Parts(parts) => parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => text.as_str(),
                ContentPart::Image => "<|begin_of_image|><|image|><|end_of_image|>",
                ContentPart::Video => "<|begin_of_video|><|video|><|end_of_video|>",
            })
            .collect(),
    }
}

/// The built-in GLM-4.5V chat format (identical output to the committed jinja template).
pub fn render_builtin(messages: &[ChatMessage], opts: ChatOptions) -> String {
    let mut out = String::from("[gMASK]<sop>");
    let last_user = messages.iter().rposition(|m| m.role == "user");
    for (i, m) in messages.iter().enumerate() {
        let text = content_text(&m.content);
        match m.role.as_str() {
            "system" => {
                out.push_str("<|system|>\n");
                out.push_str(&text);
            }
            "user" => {
                out.push_str("<|user|>\n");
                out.push_str(&text);
                if !opts.enable_thinking && !text.ends_with("/nothink") {
                    out.push_str("/nothink");
                }
            }
            "assistant" => {
                let (mut reasoning, mut answer) = (
                    m.reasoning_content.clone().unwrap_or_default(),
                    text.clone(),
                );
                if let Some((before, after)) = split_think(&text) {
                    reasoning = before;
                    answer = after;
                }
                out.push_str("<|assistant|>\n");
                let after_last_user = last_user.is_none_or(|u| i > u);
                if after_last_user && !reasoning.trim().is_empty() {
                    out.push_str("<think>");
                    out.push_str(reasoning.trim());
                    out.push_str("</think>");
                } else {
                    out.push_str("<think></think>");
                }
                if !answer.trim().is_empty() {
                    out.push('\n');
                    out.push_str(answer.trim());
                }
            }
            "observation" | "tool" => {
                out.push_str("<|observation|>\n<tool_response>\n");
                out.push_str(&text);
                out.push_str("\n</tool_response>");
            }
            other => tracing::warn!(role = other, "chat message with unknown role skipped"),
        }
    }
    if opts.add_generation_prompt {
        out.push_str("<|assistant|>\n");
        if !opts.enable_thinking {
            out.push_str("<think></think>\n");
        }
    }
    out
}

/// `text.split('</think>')[0].split('<think>')[-1]` and `text.split('</think>')[-1]`.
fn split_think(text: &str) -> Option<(String, String)> {
    if !text.contains("</think>") {
        return None;
    }
    let first = text.split("</think>").next().unwrap_or_default();
    let reasoning = first.rsplit("<think>").next().unwrap_or_default();
    let answer = text.rsplit("</think>").next().unwrap_or_default();
    Some((reasoning.to_string(), answer.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_thinking_off_marks_user_turns_and_prompt() {
        let msgs = [ChatMessage::text("user", "Hi")];
        let off = ChatOptions {
            enable_thinking: false,
            ..ChatOptions::default()
        };
        assert_eq!(
            render_builtin(&msgs, off),
            "[gMASK]<sop><|user|>\nHi/nothink<|assistant|>\n<think></think>\n"
        );
        assert_eq!(
            render_builtin(&msgs, ChatOptions::default()),
            "[gMASK]<sop><|user|>\nHi<|assistant|>\n"
        );
    }

    #[test]
    fn template_errors_are_reported_not_panicked() {
        let e = ChatTemplate::from_source("{% if %}".into()).expect_err("bad template");
        assert!(e.to_string().contains("compile"), "{e}");
        let t = ChatTemplate::from_source("{{ raise_exception('no tools') }}".into()).expect("ok");
        let e = t.render(&[], ChatOptions::default()).expect_err("raises");
        assert!(e.to_string().contains("no tools"), "{e}");
    }
}
