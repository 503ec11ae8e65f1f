//! Schema-constrained decoding on hand-written schemas with the tiny fixture's tokenizer: long
//! numbers never dead-end, unsupported schema keywords are clear errors. The profiles' own
//! schemas (chart, prescription) are exercised by the engine's tests
//! (`workers/tests/glm_constraint.rs`), where the profiles live.

use std::path::PathBuf;

use folio_glm45v::chat::tokenizer::GlmTokenizer;
use folio_glm45v::generate::constraint::{prepare_all, JsonSchemaConstraint, TokenConstraint};
use serde_json::json;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

fn tokenizer() -> GlmTokenizer {
    GlmTokenizer::from_file(&fixture().join("tokenizer.json")).expect("tokenizer")
}

#[test]
fn long_numbers_never_dead_end() {
    let tok = tokenizer();
    let s = json!({"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]});
    for tail in ["", ".", "e", "e-", ".5e"] {
        let mut c = JsonSchemaConstraint::new(&tok, &s, &[476]).expect("constraint");
        let mut text = String::from("{\"n\":-");
        text.push_str(&"1".repeat(24 - 1 - tail.len() - 1));
        text.push_str(tail);
        let ok = tok
            .encode(&text)
            .expect("encode")
            .into_iter()
            .all(|id| c.commit(id).is_ok());
        if ok {
            let mut logits = vec![0.0; tok.vocab_size()];
            c.mask(&mut logits)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }
}

#[test]
fn unsupported_schemas_are_clear_errors() {
    let tok = tokenizer();
    for bad in [
        json!({"type": "string", "pattern": "^a"}),
        json!({"type": "object", "additionalProperties": true}),
        json!({"anyOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}),
        json!(true),
    ] {
        assert!(
            JsonSchemaConstraint::new(&tok, &bad, &[476]).is_err(),
            "{bad}"
        );
    }
}

/// Masks worked out ahead of time (`prepare`, as the batch scheduler does beside the decoder
/// step, several constraints at once with `prepare_all`) are the masks `mask` works out itself,
/// step after step, and a commit invalidates them.
#[test]
fn prepared_masks_equal_masks_worked_out_in_place() {
    let tok = tokenizer();
    let s = json!({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 12},
        "n": {"type": "integer"}}, "required": ["name", "n"]});
    let text = r#"{"name":"ab c","n":42}"#;
    let ids = tok.encode(text).expect("encode");
    let new = || {
        let mut c = JsonSchemaConstraint::new(&tok, &s, &[476]).expect("constraint");
        c.set_max_tokens(64);
        c
    };
    let (mut inplace, mut a, mut b) = (new(), new(), new());
    for &id in &ids {
        let mut want = vec![0.0; tok.vocab_size()];
        inplace.mask(&mut want).expect("mask");
        let mut refs: Vec<&mut dyn TokenConstraint> = vec![&mut a, &mut b];
        prepare_all(&mut refs);
        for c in [&mut a, &mut b] {
            let mut got = vec![0.0; tok.vocab_size()];
            c.mask(&mut got).expect("prepared mask");
            assert_eq!(got, want, "after {:?}", tok.decode(&[id], false));
        }
        for c in [&mut inplace, &mut a, &mut b] {
            c.commit(id).expect("the text is valid");
        }
    }
    assert!(inplace.is_complete() && a.is_complete() && b.is_complete());
}
