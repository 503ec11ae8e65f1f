//! The tensor- and expert-parallel decoder (`decoder::parallel`) against the unsharded decoder
//! on the tiny fixtures: N simulated ranks on threads with in-process collectives, the same
//! partition and loading code a multi-GPU worker uses. Prefill (text and image positions) and
//! cached decode steps give the unsharded logits; every rank gets the same logits; each rank
//! holds its share of the weights; a world that would split KV heads is refused.
//!
//! The tiny fixture has 2 KV heads (so at most 2 ranks); world 4 runs on a copy of it with 4
//! KV heads made in a temporary directory (`four_kv_heads`).

use crate::common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{fixture, ids, reference, rel_max_diff};
use folio_glm45v::checkpoint::config::ModelConfig;
use folio_glm45v::checkpoint::fp8::Fp8Weights;
use folio_glm45v::checkpoint::weights::Checkpoint;
use folio_glm45v::decoder::mrope::text_positions;
use folio_glm45v::decoder::parallel::rank::WeightLoad;
use folio_glm45v::decoder::parallel::{ParallelCache, ParallelDecoder};
use folio_glm45v::decoder::text_model::{DecoderInput, LogitsSelection, Record, TextModel};
use folio_glm45v::KvCache;

/// f32 on both sides; only the order of the sums differs (per-rank partial sums).
const TOL: f32 = 1e-5;

/// The unsharded decoder and `world` simulated ranks of the checkpoint in `dir`.
fn load(dir: &Path, world: usize, fp8: Fp8Weights) -> (TextModel, ParallelDecoder) {
    let cfg = ModelConfig::load(&dir.join("config.json")).expect("config");
    let ckpt = Checkpoint::open(dir).expect("checkpoint");
    let weights = WeightLoad {
        dtype: DType::F32,
        fp8,
        quant: cfg.quantization_config.as_ref(),
    };
    let vb = match fp8 {
        Fp8Weights::Resident => ckpt
            .var_builder_fp8(DType::F32, &Device::Cpu, weights.quant)
            .expect("vb"),
        Fp8Weights::Dequantized => ckpt.var_builder(DType::F32, &Device::Cpu).expect("vb"),
    };
    let single = TextModel::new(&cfg.text_config, vb).expect("unsharded model");
    let par = ParallelDecoder::load_local(&cfg.text_config, &ckpt, weights, world)
        .expect("parallel decoder");
    (single, par)
}

fn input<'a>(
    embeds: &'a Tensor,
    positions: &'a Tensor,
    logits: LogitsSelection,
) -> DecoderInput<'a> {
    DecoderInput {
        embeds,
        positions,
        logits,
        record: Record {
            hidden_states: true,
            router: true,
        },
    }
}

/// One step on both decoders; asserts the logits, the layer outputs and the routing agree and
/// that every rank got bitwise the same logits. Returns the unsharded logits.
fn step(
    single: &TextModel,
    par: &ParallelDecoder,
    caches: (&mut KvCache, &mut ParallelCache),
    embeds: &Tensor,
    positions: &Tensor,
    logits: LogitsSelection,
    what: &str,
) -> Tensor {
    let want = single
        .forward(input(embeds, positions, logits), caches.0)
        .expect("unsharded forward");
    let got = par
        .forward_each(input(embeds, positions, logits), caches.1)
        .expect("parallel forward");
    assert_eq!(got.len(), par.world());
    let want_logits = want.logits.expect("logits");
    for (rank, out) in got.iter().enumerate() {
        let l = out.logits.as_ref().expect("logits");
        let d = rel_max_diff(l, &want_logits);
        assert!(d <= TOL, "{what}: rank {rank} logits rel diff {d:e}");
        let first = got[0].logits.as_ref().expect("logits");
        assert_eq!(
            l.flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("values"),
            first
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("values"),
            "{what}: rank {rank} differs from rank 0"
        );
    }
    for (layer, (g, w)) in got[0]
        .layer_hidden
        .iter()
        .zip(&want.layer_hidden)
        .enumerate()
    {
        let d = rel_max_diff(g, w);
        assert!(d <= TOL, "{what}: layer {layer} hidden rel diff {d:e}");
    }
    assert_eq!(got[0].router.len(), want.router.len());
    for (layer, (g, w)) in got[0].router.iter().zip(&want.router).enumerate() {
        assert_eq!(
            g.as_ref().map(|c| &c.experts),
            w.as_ref().map(|c| &c.experts),
            "{what}: layer {layer} routing"
        );
    }
    assert_eq!(caches.0.seq_len(), caches.1.seq_len());
    want_logits
}

/// Prefill of the reference prompt `name`, then `decode` greedy steps, on both decoders.
fn prefill_then_decode(single: &TextModel, par: &ParallelDecoder, prompt: &[u32], decode: usize) {
    let dev = Device::Cpu;
    let (mut kv, mut pkv) = (single.new_cache(), par.new_cache());
    let embeds = single
        .embed(
            &Tensor::new(prompt, &dev)
                .and_then(|t| t.unsqueeze(0))
                .expect("ids"),
        )
        .expect("embed");
    let positions = text_positions(1, 0, prompt.len(), &dev).expect("positions");
    let mut logits = step(
        single,
        par,
        (&mut kv, &mut pkv),
        &embeds,
        &positions,
        LogitsSelection::All,
        "prefill",
    );
    for i in 0..decode {
        let last = logits.squeeze(0).expect("b");
        let last = last.get(last.dim(0).expect("t") - 1).expect("last");
        let next = last
            .argmax(0)
            .and_then(|t| t.to_scalar::<u32>())
            .expect("argmax");
        let embeds = par
            .embed(&Tensor::new(&[[next]], &dev).expect("id"))
            .expect("embed");
        let positions = text_positions(1, prompt.len() + i, 1, &dev).expect("positions");
        logits = step(
            single,
            par,
            (&mut kv, &mut pkv),
            &embeds,
            &positions,
            LogitsSelection::Last,
            &format!("decode step {i}"),
        );
    }
    assert_eq!(pkv.seq_len(), prompt.len() + decode);
}

#[test]
fn parallel_two_ranks_match_unsharded_prefill_and_decode() {
    let (single, par) = load(&fixture("tiny"), 2, Fp8Weights::Dequantized);
    let refs = reference("tiny");
    for name in ["chat", "raw"] {
        prefill_then_decode(&single, &par, &ids(&refs[&format!("{name}.input_ids")]), 4);
    }
    // Image rows spliced in, with distinct (t, h, w) M-RoPE positions.
    let embeds = refs["mm.inputs_embeds"].unsqueeze(0).expect("embeds");
    let positions = refs["mm.positions"].unsqueeze(1).expect("positions");
    let (mut kv, mut pkv) = (single.new_cache(), par.new_cache());
    step(
        &single,
        &par,
        (&mut kv, &mut pkv),
        &embeds,
        &positions,
        LogitsSelection::All,
        "image prompt",
    );
}

#[test]
fn parallel_two_ranks_match_unsharded_fp8_checkpoint() {
    // tiny-fp8: the fused expert layout with FP8 experts and per-row scales, kept FP8 and
    // dequantised at load.
    let refs = reference("tiny-fp8");
    let prompt = ids(&refs["chat.input_ids"]);
    for fp8 in [Fp8Weights::Resident, Fp8Weights::Dequantized] {
        let (single, par) = load(&fixture("tiny-fp8"), 2, fp8);
        prefill_then_decode(&single, &par, &prompt, 3);
    }
}

#[test]
fn parallel_ragged_decode_matches_unsharded() {
    let (single, par) = load(&fixture("tiny"), 2, Fp8Weights::Dequantized);
    let refs = reference("tiny");
    let dev = Device::Cpu;
    let prompts = [ids(&refs["chat.input_ids"]), ids(&refs["raw.input_ids"])];
    let mut kvs = Vec::new();
    let mut pkvs = Vec::new();
    for p in &prompts {
        let (mut kv, mut pkv) = (single.new_cache(), par.new_cache());
        let embeds = single
            .embed(
                &Tensor::new(p.as_slice(), &dev)
                    .and_then(|t| t.unsqueeze(0))
                    .expect("ids"),
            )
            .expect("embed");
        let positions = text_positions(1, 0, p.len(), &dev).expect("positions");
        step(
            &single,
            &par,
            (&mut kv, &mut pkv),
            &embeds,
            &positions,
            LogitsSelection::Last,
            "ragged prefill",
        );
        kvs.push(kv);
        pkvs.push(pkv);
    }
    let embeds = single
        .embed(&Tensor::new(&[[7u32], [100]], &dev).expect("ids"))
        .expect("embed");
    let rows: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
    let positions = Tensor::new(rows.as_slice(), &dev)
        .and_then(|t| t.reshape((1, 2, 1)))
        .and_then(|t| t.repeat((3, 1, 1)))
        .expect("positions");
    let mut kv_refs: Vec<&mut KvCache> = kvs.iter_mut().collect();
    let want = single
        .forward_ragged(&embeds, &positions, &mut kv_refs)
        .expect("unsharded ragged");
    let mut pkv_refs: Vec<&mut ParallelCache> = pkvs.iter_mut().collect();
    let got = par
        .forward_ragged(&embeds, &positions, &mut pkv_refs)
        .expect("parallel ragged");
    let d = rel_max_diff(&got, &want);
    assert!(d <= TOL, "ragged decode logits rel diff {d:e}");
    for (p, c) in prompts.iter().zip(&pkvs) {
        assert_eq!(c.seq_len(), p.len() + 1);
    }
}

#[test]
fn parallel_world_that_splits_kv_heads_is_refused() {
    let dir = fixture("tiny");
    let cfg = ModelConfig::load(&dir.join("config.json")).expect("config");
    let ckpt = Checkpoint::open(&dir).expect("checkpoint");
    let weights = WeightLoad {
        dtype: DType::F32,
        fp8: Fp8Weights::Dequantized,
        quant: None,
    };
    for world in [3, 4] {
        let err = ParallelDecoder::load_local(&cfg.text_config, &ckpt, weights, world)
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("cannot split the decoder over {world} ranks"))
                && msg.contains("num_key_value_heads = 2")
                && msg.contains("world sizes that work for this model: 1, 2"),
            "{msg}"
        );
    }
}

#[test]
fn parallel_bad_input_is_refused_without_breaking_the_group() {
    let (single, par) = load(&fixture("tiny"), 2, Fp8Weights::Dequantized);
    let dev = Device::Cpu;
    let embeds = single
        .embed(&Tensor::new(&[[1u32, 2, 3]], &dev).expect("ids"))
        .expect("embed");
    let mut pkv = par.new_cache();
    let wrong = text_positions(1, 0, 2, &dev).expect("positions");
    let err = par
        .forward(input(&embeds, &wrong, LogitsSelection::Last), &mut pkv)
        .expect_err("refused");
    assert!(err.to_string().contains("positions [3, B, T]"), "{err}");
    let positions = text_positions(1, 0, 3, &dev).expect("positions");
    par.forward(input(&embeds, &positions, LogitsSelection::Last), &mut pkv)
        .expect("the group still works");
    assert_eq!(pkv.seq_len(), 3);
}

#[test]
fn parallel_ranks_hold_their_share_of_the_expert_weights() {
    for (name, fp8) in [
        ("tiny", Fp8Weights::Dequantized),
        ("tiny-fp8", Fp8Weights::Resident),
    ] {
        let dir = fixture(name);
        let (_, one) = load(&dir, 1, fp8);
        let (_, two) = load(&dir, 2, fp8);
        let full = &one.ranks()[0];
        assert!(full.expert_bytes() > 0);
        for rank in two.ranks() {
            assert_eq!(
                rank.expert_bytes() * 2,
                full.expert_bytes(),
                "{name}: rank {:?} experts",
                rank.partition()
            );
            // Experts, attention, dense MLP, shared expert and lm_head are split; embedding,
            // norms and router are whole.
            let (r, f) = (rank.resident_bytes(), full.resident_bytes());
            assert!(r * 10 < f * 7, "{name}: rank holds {r} of {f} bytes");
        }
    }
}

/// A copy of the tiny checkpoint with 4 KV heads (k/v projections and biases get two more
/// heads with other values), written to a temporary directory.
fn four_kv_heads() -> tempfile::TempDir {
    let src = fixture("tiny");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).expect("config"))
            .expect("json");
    config["text_config"]["num_key_value_heads"] = 4.into();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("write config");
    let mut tensors = std::collections::HashMap::new();
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        tensors
            .extend(candle_core::safetensors::load(src.join(shard), &Device::Cpu).expect("shard"));
    }
    for (name, t) in tensors.iter_mut() {
        let kv = name.contains("self_attn.k_proj") || name.contains("self_attn.v_proj");
        if kv && name.starts_with("model.language_model.") {
            let more = t.affine(-0.7, 0.01).expect("affine");
            *t = Tensor::cat(&[&*t, &more], 0).expect("cat");
        }
    }
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).expect("save");
    dir
}

#[test]
fn parallel_four_ranks_match_unsharded_with_four_kv_heads() {
    let dir = four_kv_heads();
    let (single, par) = load(dir.path(), 4, Fp8Weights::Dequantized);
    let refs = reference("tiny");
    prefill_then_decode(&single, &par, &ids(&refs["chat.input_ids"]), 3);
    let (_, two) = load(dir.path(), 2, Fp8Weights::Dequantized);
    prefill_then_decode(&single, &two, &ids(&refs["raw.input_ids"]), 2);
    let full: usize = single_expert_bytes(dir.path());
    for rank in par.ranks() {
        assert_eq!(rank.expert_bytes() * 4, full);
    }
}

fn single_expert_bytes(dir: &Path) -> usize {
    let (_, one) = load(dir, 1, Fp8Weights::Dequantized);
    one.ranks()[0].expert_bytes()
}
