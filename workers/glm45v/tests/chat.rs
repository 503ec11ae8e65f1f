//! Chat rendering and tokenisation against transformers (jinja2 + tokenizers) on the fixtures.

use folio_glm45v::chat::tokenizer::GlmTokenizer;
use folio_glm45v::chat::{render_builtin, ChatMessage, ChatOptions, ChatTemplate};
use serde::Deserialize;

use crate::common::fixture;

#[derive(Deserialize)]
struct Case {
    name: String,
    messages: Vec<ChatMessage>,
    kwargs: serde_json::Map<String, serde_json::Value>,
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Encoding {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

#[derive(Deserialize)]
struct Reference {
    chats: Vec<Case>,
    encodings: Vec<Encoding>,
}

fn reference() -> Reference {
    let raw = std::fs::read_to_string(fixture("chat_reference.json")).expect("chat_reference.json");
    serde_json::from_str(&raw).expect("chat reference parses")
}

fn options(case: &Case) -> ChatOptions {
    ChatOptions {
        add_generation_prompt: true,
        enable_thinking: case
            .kwargs
            .get("enable_thinking")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
    }
}

#[test]
fn templates_render_exactly_like_transformers() {
    let from_jinja_file = ChatTemplate::from_dir(&fixture("tiny")).expect("jinja file");
    let from_tokenizer_config =
        ChatTemplate::from_dir(&fixture("tiny-fp8")).expect("tokenizer_config");
    assert!(matches!(from_jinja_file, ChatTemplate::Jinja(_)));
    assert!(matches!(from_tokenizer_config, ChatTemplate::Jinja(_)));
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        ChatTemplate::from_dir(empty.path()).expect("builtin"),
        ChatTemplate::Builtin
    ));
    for case in reference().chats {
        let opts = options(&case);
        let a = from_jinja_file
            .render(&case.messages, opts)
            .expect("render");
        assert_eq!(a, case.text, "{}: chat_template.jinja", case.name);
        let b = from_tokenizer_config
            .render(&case.messages, opts)
            .expect("render");
        assert_eq!(b, case.text, "{}: tokenizer_config.json", case.name);
        assert_eq!(
            render_builtin(&case.messages, opts),
            case.text,
            "{}: built-in",
            case.name
        );
    }
}

#[test]
fn tokenizer_matches_transformers() {
    let tok = GlmTokenizer::from_file(&fixture("tiny/tokenizer.json")).expect("tokenizer");
    let r = reference();
    for case in &r.chats {
        assert_eq!(
            tok.encode(&case.text).expect("encode"),
            case.ids,
            "{}",
            case.name
        );
    }
    for e in &r.encodings {
        assert_eq!(tok.encode(&e.text).expect("encode"), e.ids, "{:?}", e.text);
        assert_eq!(tok.decode(&e.ids, false).expect("decode"), e.decoded);
    }
    // Specials are single tokens and round-trip.
    let ids = tok
        .encode("[gMASK]<sop><|user|>\n<|begin_of_box|>")
        .expect("encode");
    assert_eq!(ids.len(), 5);
}

#[test]
fn special_tokens_come_from_the_config() {
    let glm_dir = fixture("tiny");
    let cfg = folio_glm45v::checkpoint::config::ModelConfig::load(&glm_dir.join("config.json"))
        .expect("config");
    let gen = folio_glm45v::checkpoint::config::GenerationConfig::load(
        &glm_dir.join("generation_config.json"),
    )
    .expect("gen");
    let tok = GlmTokenizer::from_file(&glm_dir.join("tokenizer.json")).expect("tokenizer");
    let s =
        folio_glm45v::chat::tokenizer::SpecialTokens::resolve(&cfg, &gen, &tok).expect("specials");
    assert_eq!(s.eos, vec![476, 483, 485]);
    assert_eq!(s.image, 510);
    assert_eq!(
        tok.token(s.think_end.expect("</think>")).as_deref(),
        Some("</think>")
    );
    assert_eq!(
        tok.token(s.box_start.expect("box")).as_deref(),
        Some("<|begin_of_box|>")
    );
    // A config whose image id is not `<|image|>` in the tokenizer is rejected with the field name.
    let mut bad = cfg.clone();
    bad.image_token_id = 500;
    let e = folio_glm45v::chat::tokenizer::SpecialTokens::resolve(&bad, &gen, &tok)
        .expect_err("mismatch");
    assert!(e.to_string().contains("image_token_id"), "{e}");
}
