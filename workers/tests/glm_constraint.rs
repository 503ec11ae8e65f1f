//! Schema-constrained decoding of the profiles' schemas on the tiny fixture (random weights):
//! constrained generation of the chart and prescription schemas always yields JSON that parses
//! and validates, within the token budget, greedy or sampled; unconstrained generation does not.
//! Also the matcher alone under random logits (many runs, small and large budgets) and on
//! hand-made token sequences. The mechanism's own tests on hand-written schemas are in
//! `workers/glm45v/tests/constraint.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::DType;
use folio_glm45v::chat::tokenizer::GlmTokenizer;
use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::generate::constraint::{ConstraintVocab, JsonSchemaConstraint, TokenConstraint};
use folio_glm45v::generate::{
    generate, Decoding, FinishReason, Flow, GenerationParams, Prompt, SamplingParams,
};
use folio_glm45v::model::{Glm45v, LoadOptions};
use folio_workers::engines::glm45v::profiles::{Profile, ProfileKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("glm45v/tests/fixtures/tiny")
}

fn tokenizer() -> GlmTokenizer {
    GlmTokenizer::from_file(&fixture().join("tokenizer.json")).expect("tokenizer")
}

fn schema(kind: ProfileKind) -> Value {
    Profile::new(kind).json_schema().expect("schema")
}

/// Parses `text` and validates it against `schema`; the error says which step failed.
fn check(schema: &Value, text: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("parse: {e}: {text}"))?;
    let validator = jsonschema::validator_for(schema).map_err(|e| format!("schema: {e}"))?;
    if let Some(e) = validator.iter_errors(&value).next() {
        return Err(format!("invalid: {e}: {text}"));
    }
    Ok(())
}

/// Runs a constraint under random logits until a stop id; returns the decoded text.
fn random_walk(
    tok: &GlmTokenizer,
    c: &mut JsonSchemaConstraint,
    stop: u32,
    max_tokens: usize,
    rng: &mut StdRng,
) -> (String, usize) {
    c.set_max_tokens(max_tokens);
    let mut ids = Vec::new();
    loop {
        let mut logits: Vec<f32> = (0..tok.vocab_size())
            .map(|_| rng.random::<f32>() * 8.0)
            .collect();
        c.mask(&mut logits).expect("some token allowed");
        let allowed: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i] > f32::NEG_INFINITY)
            .collect();
        // Pick by the masked logits' argmax half the time, uniformly otherwise.
        let pick = if rng.random::<bool>() {
            *allowed
                .iter()
                .max_by(|&&a, &&b| logits[a].total_cmp(&logits[b]))
                .expect("nonempty")
        } else {
            allowed[rng.random_range(0..allowed.len())]
        } as u32;
        c.commit(pick).expect("allowed token commits");
        if pick == stop {
            assert!(c.is_complete());
            break;
        }
        ids.push(pick);
        assert!(ids.len() < max_tokens, "budget overrun");
    }
    (tok.decode(&ids, false).expect("decode"), ids.len())
}

#[test]
fn random_logits_always_give_valid_json_within_the_budget() {
    let tok = tokenizer();
    let vocab = Arc::new(ConstraintVocab::new(&tok).expect("vocab"));
    let stop = 476;
    for kind in [ProfileKind::Chart, ProfileKind::Prescription] {
        let schema = schema(kind);
        for (seed, budget) in (0..40u64).map(|s| (s, [130usize, 250, 600][s as usize % 3])) {
            let mut c = JsonSchemaConstraint::with_vocab(vocab.clone(), &schema, &[stop])
                .expect("constraint");
            let mut rng = StdRng::seed_from_u64(seed);
            let (text, n) = random_walk(&tok, &mut c, stop, budget, &mut rng);
            assert!(n < budget);
            check(&schema, &text).unwrap_or_else(|e| panic!("{kind:?} seed {seed}: {e}"));
        }
    }
}

#[test]
fn hand_made_token_sequences_are_accepted_or_rejected() {
    let tok = tokenizer();
    let s = schema(ProfileKind::Prescription);
    let good = r#"{"patient":"Ann","age":null,"date":"1.2.24","prescriber":null,"medications":[{"name":"Tea","strength":"1 g","form":null,"frequency":"bid","duration":null,"instructions":"hot \"now\""}]}"#;
    check(&s, good).expect("the sample is valid");
    let mut c = JsonSchemaConstraint::new(&tok, &s, &[476]).expect("constraint");
    for id in tok.encode(good).expect("encode") {
        c.commit(id).expect("token of a valid document");
    }
    assert!(c.is_complete());
    c.commit(476).expect("stop after the value");
    // Whitespace, missing required keys, wrong types and extra keys are refused.
    for bad in [
        r#"{ "patient""#,
        r#"{"age":null"#,
        r#"{"patient":12"#,
        r#"{"patient":null,"age":null,"date":null,"prescriber":null,"medications":[],"x""#,
    ] {
        let mut c = JsonSchemaConstraint::new(&tok, &s, &[476]).expect("constraint");
        let ids = tok.encode(bad).expect("encode");
        let ok = ids.iter().all(|&id| c.commit(id).is_ok());
        assert!(!ok, "{bad} was accepted");
    }
    // The stop id is refused before the value is complete, and masked out.
    let mut c = JsonSchemaConstraint::new(&tok, &s, &[476]).expect("constraint");
    assert!(c.commit(476).is_err());
    let mut logits = vec![0.0; tok.vocab_size()];
    c.mask(&mut logits).expect("mask");
    assert_eq!(logits[476], f32::NEG_INFINITY);
    let open = tok.token_id("{").expect("{") as usize;
    assert_eq!(logits[open], 0.0);
    assert!(logits.iter().filter(|l| l.is_finite()).count() < 20);
}

#[test]
fn a_profile_schema_without_stop_ids_or_with_a_short_budget_is_an_error() {
    let tok = tokenizer();
    let s = schema(ProfileKind::Chart);
    assert!(JsonSchemaConstraint::new(&tok, &s, &[]).is_err());
    // A budget below the shortest valid document cannot be met.
    let mut c = JsonSchemaConstraint::new(&tok, &s, &[476]).expect("constraint");
    c.set_max_tokens(10);
    assert!(c.mask(&mut vec![0.0; tok.vocab_size()]).is_err());
}

fn load() -> Glm45v {
    let opts = LoadOptions {
        dtype: DType::F32,
        ..LoadOptions::default()
    };
    Glm45v::load(&fixture(), &opts).expect("checkpoint loads")
}

fn prompt(glm: &Glm45v, kind: ProfileKind) -> Prompt {
    let text = Profile::new(kind).prompt(None);
    let ids = glm
        .encode_chat(&[ChatMessage::text("user", text)], ChatOptions::default())
        .expect("chat");
    Prompt::text(ids)
}

fn run(
    glm: &Glm45v,
    kind: ProfileKind,
    decoding: Decoding,
    constrained: bool,
) -> (String, FinishReason) {
    let max = 160;
    let mut params = GenerationParams::greedy(max, glm.special.eos.clone());
    params.decoding = decoding;
    let vocab = Arc::new(ConstraintVocab::new(&glm.tokenizer).expect("vocab"));
    let schema = schema(kind);
    let mut c =
        JsonSchemaConstraint::with_vocab(vocab, &schema, &glm.special.eos).expect("constraint");
    let out = generate(
        &glm.model,
        &prompt(glm, kind),
        &params,
        constrained.then_some(&mut c as &mut dyn TokenConstraint),
        &mut |_| Flow::Continue,
    )
    .expect("generate");
    let text = glm.tokenizer.decode(&out.tokens, false).expect("decode");
    (text, out.finish)
}

#[test]
fn tiny_model_constrained_output_always_validates_and_unconstrained_does_not() {
    let glm = load();
    let mut decodings = vec![Decoding::Greedy];
    decodings.extend((0..4).map(|seed| {
        Decoding::Sample(SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed,
        })
    }));
    for kind in [ProfileKind::Chart, ProfileKind::Prescription] {
        let schema = schema(kind);
        for &d in &decodings {
            let (text, finish) = run(&glm, kind, d, true);
            assert!(
                matches!(finish, FinishReason::Stop(_)),
                "{kind:?} {d:?}: {finish:?} {text}"
            );
            check(&schema, &text).unwrap_or_else(|e| panic!("{kind:?} {d:?}: {e}"));
            let (text, _) = run(&glm, kind, d, false);
            assert!(
                check(&schema, &text).is_err(),
                "unconstrained output validated: {text}"
            );
        }
    }
}
