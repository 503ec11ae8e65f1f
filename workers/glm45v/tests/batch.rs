//! Batched generation on the tiny model (f32, CPU): ragged decode logits equal single-sequence
//! decode; text and image prompts of different lengths generated together (fewer slots than
//! requests, so admission and retirement happen) give exactly the tokens each gives alone —
//! greedy, seeded sampling and schema-constrained; the token budget is respected and a request
//! larger than it fails clearly; per-sequence stop ids, `max_new_tokens` and cancellation.

use candle_core::{DType, Device, Tensor};
use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::decoder::mrope::{decode_positions, Positions3};
use folio_glm45v::decoder::text_model::{DecoderInput, LogitsSelection, Record};
use folio_glm45v::generate::batch::{generate_batch, BatchOptions, BatchRequest, Scheduler};
use folio_glm45v::generate::constraint::JsonSchemaConstraint;
use folio_glm45v::generate::{generate, FinishReason, Flow, GenerationParams, Prompt};
use folio_glm45v::model::{Glm45v, LoadOptions};
use folio_glm45v::vision::onnx::VisionOptions;

use crate::common::{corpus, fixture, ids, onnxruntime_lib, reference, rel_max_diff};
use crate::generation::{mm_positions, sampled};

fn load() -> Glm45v {
    let opts = LoadOptions {
        dtype: DType::F32,
        ..LoadOptions::default()
    };
    Glm45v::load(&fixture("tiny"), &opts).expect("checkpoint loads")
}

/// The recorded image prompt of the reference (spliced embeddings, 3-D positions).
fn mm_prompt() -> Prompt {
    let refs = reference("tiny");
    let positions = mm_positions(&refs);
    assert_ne!(
        positions.rope_delta(),
        0,
        "the image prompt has a rope delta"
    );
    Prompt {
        ids: ids(&refs["mm.input_ids"]),
        embeds: Some(refs["mm.inputs_embeds"].unsqueeze(0).expect("embeds")),
        positions: Some(positions),
    }
}

/// An image prompt through the processor and the ONNX vision tower (a corpus chart).
fn tower_prompt(glm: &mut Glm45v) -> Prompt {
    let mut vopts = VisionOptions::new(fixture("tiny").join("vision.onnx"), onnxruntime_lib());
    vopts.intra_threads = 2;
    glm.attach_vision(&vopts).expect("vision attaches");
    let img = image::open(corpus("charts/vegalite_layer_falkensee.png")).expect("decodes");
    let messages = [ChatMessage::user_with_images(1, "Read the chart.")];
    let (prompt, _) = glm
        .prepare_images(&messages, ChatOptions::default(), &[img])
        .expect("prepares");
    prompt
}

/// Text prompts of different lengths (prefixes of the recorded chat and raw prompts).
fn text_prompts() -> Vec<Prompt> {
    let refs = reference("tiny");
    let chat = ids(&refs["chat.input_ids"]);
    let raw = ids(&refs["raw.input_ids"]);
    vec![
        Prompt::text(chat.clone()),
        Prompt::text(raw.clone()),
        Prompt::text(chat[..chat.len() / 2].to_vec()),
        Prompt::text(raw[..3.min(raw.len())].to_vec()),
    ]
}

fn alone(glm: &Glm45v, prompt: &Prompt, params: &GenerationParams) -> (Vec<u32>, FinishReason) {
    let out =
        generate(&glm.model, prompt, params, None, &mut |_| Flow::Continue).expect("generates");
    (out.tokens, out.finish)
}

fn batch(
    glm: &Glm45v,
    reqs: Vec<BatchRequest>,
    opts: BatchOptions,
) -> Vec<folio_glm45v::Result<folio_glm45v::generate::Generation>> {
    generate_batch(&glm.model, reqs, &opts, &mut |_, _| Flow::Continue).expect("batch runs")
}

#[test]
fn ragged_decode_matches_single_sequence_decode() {
    let glm = load();
    let dev = Device::Cpu;
    let prompts = [
        text_prompts().remove(0),
        mm_prompt(),
        text_prompts().remove(3),
    ];
    let next = [7u32, 100, 311];
    let mut caches = Vec::new();
    let mut want = Vec::new();
    let mut pos = Vec::new();
    for (p, &tok) in prompts.iter().zip(&next) {
        let n = p.ids.len();
        let embeds = match &p.embeds {
            Some(e) => e.clone(),
            None => glm
                .model
                .embed(
                    &Tensor::new(p.ids.as_slice(), &dev)
                        .unwrap()
                        .unsqueeze(0)
                        .unwrap(),
                )
                .unwrap(),
        };
        let positions = p.positions.clone().unwrap_or_else(|| Positions3::text(n));
        let mut cache = glm.model.new_cache();
        let input = DecoderInput {
            embeds: &embeds,
            positions: &positions.to_tensor(&dev).unwrap(),
            logits: LogitsSelection::Last,
            record: Record::default(),
        };
        glm.model.forward(input, &mut cache).expect("prefill");
        // The reference: the next token decoded alone on a copy of the cache.
        let mut single = cache.clone();
        let e = glm
            .model
            .embed(&Tensor::new(&[[tok]], &dev).unwrap())
            .unwrap();
        let p1 = decode_positions(n, positions.rope_delta(), 1, &dev).unwrap();
        let input = DecoderInput {
            embeds: &e,
            positions: &p1,
            logits: LogitsSelection::Last,
            record: Record::default(),
        };
        let l = glm.model.forward(input, &mut single).expect("decode");
        want.push(
            l.logits
                .expect("logits")
                .reshape(glm.model.vocab_size())
                .unwrap(),
        );
        pos.push((n as i64 + positions.rope_delta()) as u32);
        caches.push(cache);
    }
    let e = glm
        .model
        .embed(
            &Tensor::new(next.as_slice(), &dev)
                .unwrap()
                .unsqueeze(1)
                .unwrap(),
        )
        .unwrap();
    let rows: Vec<u32> = pos.iter().cycle().take(9).copied().collect();
    let positions = Tensor::from_vec(rows, (3, 3, 1), &dev).unwrap();
    let mut refs: Vec<_> = caches.iter_mut().collect();
    let got = glm
        .model
        .forward_ragged(&e, &positions, &mut refs)
        .expect("ragged decode");
    assert_eq!(got.dims(), &[3, glm.model.vocab_size()]);
    for (i, (c, w)) in caches.iter().zip(&want).enumerate() {
        assert_eq!(c.seq_len(), prompts[i].ids.len() + 1, "cache {i} appended");
        let d = rel_max_diff(&got.get(i).unwrap(), w);
        eprintln!("sequence {i}: ragged vs single logits rel diff {d:e}");
        assert!(d <= 1e-5, "sequence {i}: ragged logits differ (rel {d:e})");
    }
    // Mismatched inputs are errors, not panics.
    let mut two: Vec<_> = caches.iter_mut().take(2).collect();
    assert!(glm.model.forward_ragged(&e, &positions, &mut two).is_err());
}

#[test]
fn batched_results_equal_each_prompt_alone() {
    let mut glm = load();
    let tower = tower_prompt(&mut glm);
    let mut prompts = text_prompts();
    prompts.insert(1, mm_prompt());
    prompts.push(tower);
    let lens: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    eprintln!("prompt lengths {lens:?}");
    let news = [14usize, 9, 20, 5, 11, 16];
    let mut params: Vec<GenerationParams> = news
        .iter()
        .map(|&n| GenerationParams::greedy(n, vec![]))
        .collect();
    params[2] = sampled(7);
    params[4].repetition_penalty = 1.3;
    let want: Vec<_> = prompts
        .iter()
        .zip(&params)
        .map(|(p, q)| alone(&glm, p, q))
        .collect();
    for max_batch in [2, 4] {
        let reqs = prompts
            .iter()
            .zip(&params)
            .map(|(p, q)| BatchRequest::new(p.clone(), q.clone()))
            .collect();
        let opts = BatchOptions {
            max_batch,
            max_tokens_in_flight: 1 << 20,
        };
        let mut streamed = vec![Vec::new(); prompts.len()];
        let got = generate_batch(&glm.model, reqs, &opts, &mut |i, t| {
            streamed[i].push(t);
            Flow::Continue
        })
        .expect("batch runs");
        for (i, (g, (tokens, finish))) in got.into_iter().zip(&want).enumerate() {
            let g = g.expect("request succeeds");
            assert_eq!(&g.tokens, tokens, "request {i} (max_batch {max_batch})");
            assert_eq!(g.finish, *finish, "request {i}");
            assert_eq!(g.prompt_tokens, lens[i]);
            assert_eq!(streamed[i], g.tokens, "request {i}: streamed tokens");
        }
    }
}

#[test]
fn admission_respects_batch_size_and_token_budget() {
    let glm = load();
    let prompts = text_prompts();
    let new = 10;
    let reserved: Vec<usize> = prompts.iter().map(|p| p.ids.len() + new).collect();
    // The first two cannot run together; the second and third can.
    let budget = reserved[0] + reserved[1] - 1;
    assert!(
        reserved[1] + reserved[2] <= budget,
        "fixture prompts: {reserved:?}"
    );
    let opts = BatchOptions {
        max_batch: 3,
        max_tokens_in_flight: budget,
    };
    let mut sched = Scheduler::new(&glm.model, opts).expect("scheduler");
    for p in &prompts {
        sched
            .submit(BatchRequest::new(
                p.clone(),
                GenerationParams::greedy(new, vec![]),
            ))
            .expect("fits");
    }
    let mut results = vec![None; prompts.len()];
    let (mut steps, mut most) = (0, 0);
    while !sched.is_idle() {
        for (id, r) in sched.step(&mut |_, _| Flow::Continue).expect("step") {
            results[id] = Some(r.expect("succeeds").tokens);
        }
        if steps == 0 {
            // The budget, not the batch size, held the second request back.
            assert_eq!((sched.running(), sched.waiting()), (1, 3));
        }
        assert!(sched.running() <= opts.max_batch);
        assert!(sched.tokens_in_flight() <= budget, "budget exceeded");
        most = most.max(sched.running());
        steps += 1;
        assert!(steps < 1000, "the scheduler does not finish");
    }
    assert!(most >= 2, "sequences ran together");
    for (i, p) in prompts.iter().enumerate() {
        let (tokens, _) = alone(&glm, p, &GenerationParams::greedy(new, vec![]));
        assert_eq!(results[i].as_ref(), Some(&tokens), "request {i}");
    }

    // A request larger than the whole budget fails at once with a clear error; others run.
    let reqs = vec![
        BatchRequest::new(prompts[0].clone(), GenerationParams::greedy(new, vec![])),
        BatchRequest::new(prompts[1].clone(), GenerationParams::greedy(budget, vec![])),
    ];
    let got = batch(&glm, reqs, opts);
    assert!(got[0].is_ok());
    let err = got[1].as_ref().expect_err("too large").to_string();
    assert!(
        err.contains("budget") && err.contains(&budget.to_string()),
        "{err}"
    );

    // Invalid options and inputs are errors, not hangs or panics.
    let zero = BatchOptions {
        max_batch: 0,
        max_tokens_in_flight: 10,
    };
    assert!(generate_batch(&glm.model, vec![], &zero, &mut |_, _| Flow::Continue).is_err());
    let mut bad = prompts[0].clone();
    bad.embeds =
        Some(Tensor::zeros((1, 2, glm.model.hidden_size()), DType::F32, &Device::Cpu).unwrap());
    let got = batch(
        &glm,
        vec![
            BatchRequest::new(bad, GenerationParams::greedy(4, vec![])),
            BatchRequest::new(Prompt::text(vec![]), GenerationParams::greedy(4, vec![])),
            BatchRequest::new(prompts[1].clone(), GenerationParams::greedy(4, vec![])),
        ],
        opts,
    );
    assert!(got[0].is_err() && got[1].is_err());
    assert_eq!(got[2].as_ref().expect("runs").tokens.len(), 4);
}

#[test]
fn each_sequence_stops_on_its_own_terms() {
    let glm = load();
    let prompts = text_prompts();
    let full: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| alone(&glm, p, &GenerationParams::greedy(16, vec![])).0)
        .collect();
    let stop = full[0][5];
    let first = full[0].iter().position(|&t| t == stop).expect("present");
    let reqs = vec![
        BatchRequest::new(prompts[0].clone(), GenerationParams::greedy(16, vec![stop])),
        BatchRequest::new(prompts[1].clone(), GenerationParams::greedy(3, vec![])),
        BatchRequest::new(prompts[2].clone(), GenerationParams::greedy(0, vec![])),
        BatchRequest::new(prompts[3].clone(), GenerationParams::greedy(16, vec![])),
        BatchRequest::new(prompts[1].clone(), GenerationParams::greedy(16, vec![])),
    ];
    let opts = BatchOptions {
        max_batch: 2,
        max_tokens_in_flight: 1 << 16,
    };
    // Request 3 is cancelled by the callback after its 4th token.
    let mut seen = 0;
    let got = generate_batch(&glm.model, reqs, &opts, &mut |i, _| {
        if i == 3 {
            seen += 1;
            if seen == 4 {
                return Flow::Stop;
            }
        }
        Flow::Continue
    })
    .expect("batch runs");
    let got: Vec<_> = got.into_iter().map(|r| r.expect("succeeds")).collect();
    assert_eq!(got[0].finish, FinishReason::Stop(stop));
    assert_eq!(got[0].tokens, full[0][..first].to_vec());
    assert_eq!(got[1].finish, FinishReason::Length);
    assert_eq!(got[1].tokens, full[1][..3].to_vec());
    assert_eq!(got[2].finish, FinishReason::Length);
    assert!(got[2].tokens.is_empty());
    assert_eq!(got[3].finish, FinishReason::Cancelled);
    assert_eq!(got[3].tokens, full[3][..4].to_vec());
    assert_eq!(got[4].tokens, full[1]);
}

#[test]
fn constrained_sequences_decode_as_alone() {
    let glm = load();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "kind": {"enum": ["bar", "line"]},
            "n": {"type": "integer"},
            "title": {"type": "string", "maxLength": 12}
        },
        "required": ["kind", "n", "title"]
    });
    let eos = glm.special.eos.clone();
    let constraint =
        || Box::new(JsonSchemaConstraint::new(&glm.tokenizer, &schema, &eos).expect("constraint"));
    let prompts = text_prompts();
    let params = GenerationParams::greedy(40, eos.clone());
    let want: Vec<_> = prompts[..3]
        .iter()
        .map(|p| {
            let mut c = constraint();
            generate(&glm.model, p, &params, Some(c.as_mut()), &mut |_| {
                Flow::Continue
            })
            .expect("generates")
            .tokens
        })
        .collect();
    let reqs = prompts[..3]
        .iter()
        .enumerate()
        .map(|(i, p)| BatchRequest {
            prompt: p.clone(),
            params: params.clone(),
            // The middle one runs unconstrained beside the constrained ones.
            constraint: (i != 1).then(|| constraint() as _),
        })
        .collect();
    let opts = BatchOptions {
        max_batch: 2,
        max_tokens_in_flight: 1 << 16,
    };
    let got = batch(&glm, reqs, opts);
    for (i, g) in got.into_iter().enumerate() {
        let g = g.expect("succeeds");
        if i == 1 {
            assert_eq!(g.tokens, alone(&glm, &prompts[1], &params).0);
            continue;
        }
        assert_eq!(g.tokens, want[i], "request {i}");
        let text = glm.tokenizer.decode(&g.tokens, false).expect("decodes");
        eprintln!(
            "constrained request {i}: {text:?} {:?} {:?}",
            g.tokens, g.finish
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("constrained output parses");
        assert!(v["kind"] == "bar" || v["kind"] == "line", "{text}");
    }
}
