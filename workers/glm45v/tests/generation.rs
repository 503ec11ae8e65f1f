//! Generation on the tiny model: greedy continuations equal transformers' (text, image-position
//! and FP8 prompts), stopping, cancelling, streaming and seeded sampling.

use candle_core::DType;
use folio_glm45v::decoder::mrope::Positions3;
use folio_glm45v::generate::{
    generate, Decoding, FinishReason, Flow, GenerationParams, Prompt, SamplingParams,
};
use folio_glm45v::model::{Glm45v, LoadOptions};

use crate::common::{fixture, ids, reference};

fn load(dir: &str) -> Glm45v {
    let opts = LoadOptions {
        dtype: DType::F32,
        ..LoadOptions::default()
    };
    Glm45v::load(&fixture(dir), &opts).expect("checkpoint loads")
}

fn greedy(glm: &Glm45v, prompt: &Prompt, n: usize) -> Vec<u32> {
    let params = GenerationParams::greedy(n, vec![]);
    let out =
        generate(&glm.model, prompt, &params, None, &mut |_| Flow::Continue).expect("generate");
    assert_eq!(out.finish, FinishReason::Length);
    out.tokens
}

#[test]
fn greedy_continuations_match_transformers() {
    let glm = load("tiny");
    let refs = reference("tiny");
    for name in ["chat", "raw"] {
        let prompt = Prompt::text(ids(&refs[&format!("{name}.input_ids")]));
        assert_eq!(
            greedy(&glm, &prompt, 16),
            ids(&refs[&format!("{name}.greedy")]),
            "{name}"
        );
    }
}

#[test]
fn greedy_after_an_image_prompt_uses_the_rope_delta() {
    let glm = load("tiny");
    let refs = reference("tiny");
    let positions = mm_positions(&refs);
    assert_eq!(
        positions.rope_delta(),
        refs["mm.rope_delta"].to_vec1::<i64>().expect("delta")[0]
    );
    let prompt = Prompt {
        ids: ids(&refs["mm.input_ids"]),
        embeds: Some(refs["mm.inputs_embeds"].unsqueeze(0).expect("embeds")),
        positions: Some(positions),
    };
    assert_eq!(greedy(&glm, &prompt, 8), ids(&refs["mm.greedy"]));
}

#[test]
fn fp8_checkpoint_generates_like_its_reference() {
    let glm = load("tiny-fp8");
    let refs = reference("tiny-fp8");
    let prompt = Prompt::text(ids(&refs["chat.input_ids"]));
    assert_eq!(greedy(&glm, &prompt, 16), ids(&refs["chat.greedy"]));
    // Its generation_config asks for sampling; the defaults follow it.
    let p = glm.default_params(3);
    assert!(
        matches!(p.decoding, Decoding::Sample(s) if (s.temperature - 0.8).abs() < 1e-6 && s.top_k == 2)
    );
    assert!((p.repetition_penalty - 1.1).abs() < 1e-6);
}

#[test]
fn stops_on_a_stop_id_and_on_request() {
    let glm = load("tiny");
    let refs = reference("tiny");
    let prompt = Prompt::text(ids(&refs["raw.input_ids"]));
    let full = ids(&refs["raw.greedy"]);
    let stop = full[5];
    let first = full.iter().position(|&t| t == stop).expect("present");
    let params = GenerationParams::greedy(16, vec![stop]);
    let out =
        generate(&glm.model, &prompt, &params, None, &mut |_| Flow::Continue).expect("generate");
    assert_eq!(out.finish, FinishReason::Stop(stop));
    assert_eq!(out.tokens, full[..first].to_vec());
    let mut seen = 0;
    let out = generate(
        &glm.model,
        &prompt,
        &GenerationParams::greedy(16, vec![]),
        None,
        &mut |_| {
            seen += 1;
            if seen == 3 {
                Flow::Stop
            } else {
                Flow::Continue
            }
        },
    )
    .expect("generate");
    assert_eq!(out.finish, FinishReason::Cancelled);
    assert_eq!(out.tokens, full[..3].to_vec());
}

#[test]
fn streamed_text_equals_the_final_text() {
    let glm = load("tiny");
    let refs = reference("tiny");
    let prompt = Prompt::text(ids(&refs["chat.input_ids"]));
    let mut streamed = String::new();
    let reply = glm
        .generate_text(
            &prompt,
            &GenerationParams::greedy(16, glm.special.eos.clone()),
            None,
            &mut |d| {
                streamed.push_str(d);
                Flow::Continue
            },
        )
        .expect("generate");
    assert_eq!(streamed, reply.text);
    assert_eq!(
        reply.text,
        glm.tokenizer
            .decode(&reply.generation.tokens, false)
            .expect("decode")
    );
}

#[test]
fn seeded_sampling_is_reproducible() {
    let glm = load("tiny");
    let refs = reference("tiny");
    let prompt = Prompt::text(ids(&refs["chat.input_ids"]));
    let run = |seed| {
        let params = sampled(seed);
        generate(&glm.model, &prompt, &params, None, &mut |_| Flow::Continue)
            .expect("generate")
            .tokens
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// 12 tokens sampled hot (temperature 1.5, top-p 0.95, top-k 50, repetition penalty 1.2) with
/// `seed`, no stop ids: the sampling case of this file and of the batch tests.
pub(crate) fn sampled(seed: u64) -> GenerationParams {
    GenerationParams {
        max_new_tokens: 12,
        decoding: Decoding::Sample(SamplingParams {
            temperature: 1.5,
            top_p: 0.95,
            top_k: 50,
            seed,
        }),
        repetition_penalty: 1.2,
        stop_ids: vec![],
    }
}

/// The 3-row M-RoPE positions of the reference's image prompt (`mm.positions`).
pub(crate) fn mm_positions(
    refs: &std::collections::HashMap<String, candle_core::Tensor>,
) -> Positions3 {
    let rows = refs["mm.positions"].to_vec2::<i64>().expect("positions");
    let to_u32 = |r: &Vec<i64>| r.iter().map(|&v| v as u32).collect::<Vec<u32>>();
    Positions3 {
        rows: [to_u32(&rows[0]), to_u32(&rows[1]), to_u32(&rows[2])],
    }
}
