//! Numerical parity of the candle decoder with transformers' `Glm4vMoeForConditionalGeneration`
//! on the committed tiny random model (fp32): per-layer hidden states (a failure names the first
//! diverging layer), router choices, logits at every position, M-RoPE with image positions,
//! KV-cache decoding, the FP8 checkpoint layout and the fused expert layout.

use crate::common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{fixture, ids, load_text_model, load_text_model_fp8, reference, rel_max_diff};
use folio_glm45v::decoder::mrope::text_positions;
use folio_glm45v::decoder::text_model::{DecoderInput, LogitsSelection, Record, TextModel};

const TOL: f32 = 1e-4;

fn run(
    model: &TextModel,
    embeds: &Tensor,
    positions: &Tensor,
) -> folio_glm45v::decoder::text_model::DecoderOutput {
    let record = Record {
        hidden_states: true,
        router: true,
    };
    let mut cache = model.new_cache();
    forward(
        model,
        &mut cache,
        embeds,
        positions,
        LogitsSelection::All,
        record,
    )
}

/// One forward pass of `model` over `embeds` at `positions` on `cache`.
fn forward(
    model: &TextModel,
    cache: &mut folio_glm45v::KvCache,
    embeds: &Tensor,
    positions: &Tensor,
    logits: LogitsSelection,
    record: Record,
) -> folio_glm45v::decoder::text_model::DecoderOutput {
    let input = DecoderInput {
        embeds,
        positions,
        logits,
        record,
    };
    model.forward(input, cache).expect("forward")
}

/// Logits of one forward pass over `embeds` at `positions` on `cache` (nothing recorded), the
/// batch dimension removed. Shared by the decoder tests of this binary.
pub(crate) fn forward_logits(
    model: &TextModel,
    cache: &mut folio_glm45v::KvCache,
    embeds: &Tensor,
    positions: &Tensor,
    logits: LogitsSelection,
) -> Tensor {
    forward(model, cache, embeds, positions, logits, Record::default())
        .logits
        .expect("logits")
        .squeeze(0)
        .expect("squeeze")
}

/// Compares layer by layer, then routers, then logits; panics naming the first divergence.
fn check_against(
    model: &TextModel,
    refs: &HashMap<String, Tensor>,
    name: &str,
    embeds: &Tensor,
    positions: &Tensor,
) {
    let out = run(model, embeds, positions);
    for (layer, hidden) in out.layer_hidden.iter().enumerate() {
        let want = &refs[&format!("{name}.layer{layer}.hidden")];
        let d = rel_max_diff(&hidden.squeeze(0).unwrap(), want);
        assert!(
            d <= TOL,
            "{name}: first diverging layer is {layer} (rel diff {d:e})"
        );
    }
    for (layer, choice) in out.router.iter().enumerate() {
        let Some(choice) = choice else { continue };
        let want_e = refs[&format!("{name}.layer{layer}.router_experts")]
            .to_vec2::<i64>()
            .unwrap();
        let want_w = refs[&format!("{name}.layer{layer}.router_weights")]
            .to_vec2::<f32>()
            .unwrap();
        for (tok, (we, ww)) in want_e.iter().zip(&want_w).enumerate() {
            let k = choice.top_k;
            let mut got: Vec<(u32, f32)> = (0..k)
                .map(|j| (choice.experts[tok * k + j], choice.weights[tok * k + j]))
                .collect();
            got.sort_by_key(|p| p.0);
            let got_e: Vec<i64> = got.iter().map(|p| i64::from(p.0)).collect();
            assert_eq!(
                &got_e, we,
                "{name}: layer {layer} token {tok} chose other experts"
            );
            for (g, w) in got.iter().zip(ww) {
                assert!(
                    (g.1 - w).abs() <= 1e-5,
                    "{name}: layer {layer} token {tok} weight {} vs {w}",
                    g.1
                );
            }
        }
    }
    let logits = out.logits.expect("logits").squeeze(0).unwrap();
    let d = rel_max_diff(&logits, &refs[&format!("{name}.logits")]);
    assert!(d <= TOL, "{name}: logits differ (rel {d:e})");
}

fn text_inputs(model: &TextModel, ids: &[u32]) -> (Tensor, Tensor) {
    let t = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    (
        model.embed(&t).unwrap(),
        text_positions(1, 0, ids.len(), &Device::Cpu).unwrap(),
    )
}

#[test]
fn text_prompts_match_transformers_layer_by_layer() {
    let (_, model) = load_text_model("tiny", DType::F32);
    let refs = reference("tiny");
    for name in ["chat", "nothink", "raw"] {
        let (embeds, positions) = text_inputs(&model, &ids(&refs[&format!("{name}.input_ids")]));
        check_against(&model, &refs, name, &embeds, &positions);
    }
}

#[test]
fn image_positions_and_spliced_embeddings_match() {
    let (_, model) = load_text_model("tiny", DType::F32);
    let refs = reference("tiny");
    let embeds = refs["mm.inputs_embeds"].unsqueeze(0).unwrap();
    let positions = refs["mm.positions"].unsqueeze(1).unwrap();
    // The reference really exercises distinct (t, h, w) rows.
    let rows = refs["mm.positions"].to_vec2::<i64>().unwrap();
    assert_ne!(rows[1], rows[2]);
    check_against(&model, &refs, "mm", &embeds, &positions);
}

#[test]
fn cached_decoding_reproduces_full_forward_logits() {
    let (_, model) = load_text_model("tiny", DType::F32);
    let refs = reference("tiny");
    let all = ids(&refs["raw.input_ids"]);
    let want = &refs["raw.logits"];
    let split = 20;
    let mut cache = model.new_cache();
    let (embeds, _) = text_inputs(&model, &all[..split]);
    let positions = text_positions(1, 0, split, &Device::Cpu).unwrap();
    let out = forward_logits(
        &model,
        &mut cache,
        &embeds,
        &positions,
        LogitsSelection::Last,
    );
    let d = rel_max_diff(&out, &want.narrow(0, split - 1, 1).unwrap());
    assert!(d <= TOL, "prefill last logits rel diff {d:e}");
    // Then one token at a time, and a chunk of 5 at once.
    let mut pos = split;
    while pos < all.len() {
        let n = if pos == 30 { 5 } else { 1 };
        let (embeds, _) = text_inputs(&model, &all[pos..pos + n]);
        let positions = text_positions(1, pos, n, &Device::Cpu).unwrap();
        let out = forward_logits(
            &model,
            &mut cache,
            &embeds,
            &positions,
            LogitsSelection::All,
        );
        let d = rel_max_diff(&out, &want.narrow(0, pos, n).unwrap());
        assert!(d <= TOL, "decode at {pos}: rel diff {d:e}");
        pos += n;
    }
    assert_eq!(cache.seq_len(), all.len());
}

#[test]
fn fp8_checkpoint_matches_the_dequantised_reference() {
    let (cfg, model) = load_text_model("tiny-fp8", DType::F32);
    assert_eq!(
        cfg.weight_format().unwrap(),
        folio_glm45v::checkpoint::config::WeightFormat::Fp8PerChannel
    );
    let refs = reference("tiny-fp8");
    for name in ["chat", "raw"] {
        let (embeds, positions) = text_inputs(&model, &ids(&refs[&format!("{name}.input_ids")]));
        let out = run(&model, &embeds, &positions);
        let d = rel_max_diff(
            &out.logits.unwrap().squeeze(0).unwrap(),
            &refs[&format!("{name}.logits")],
        );
        assert!(d <= TOL, "fp8 {name}: logits rel diff {d:e}");
    }
}

#[test]
fn fp8_resident_weights_match_the_dequantised_model() {
    let (_, dequantised) = load_text_model("tiny-fp8", DType::F32);
    let (cfg, resident) = load_text_model_fp8("tiny-fp8", DType::F32);
    // FP8 stays FP8: the text linears (attention, dense MLP, shared experts; this fixture's
    // routed experts are bf16) hold one byte per value plus a scale per row instead of four.
    let tc = &cfg.text_config;
    let (dense_bytes, fp8_bytes) = (dequantised.resident_bytes(), resident.resident_bytes());
    let (h, d) = (tc.hidden_size, tc.head_dim());
    let attn = h * tc.num_attention_heads * d * 2 + 2 * h * tc.num_key_value_heads * d;
    let fp8_values = tc.num_hidden_layers * attn
        + 3 * h * tc.intermediate_size
        + (tc.num_hidden_layers - 1) * 3 * h * tc.moe_intermediate_size;
    assert!(
        dense_bytes - fp8_bytes >= 3 * fp8_values - 4 * fp8_values / 16,
        "FP8 linears not held as FP8: {dense_bytes} vs {fp8_bytes} B ({fp8_values} FP8 values)"
    );
    let refs = reference("tiny-fp8");
    for name in ["chat", "raw"] {
        let (embeds, positions) = text_inputs(&resident, &ids(&refs[&format!("{name}.input_ids")]));
        let got = run(&resident, &embeds, &positions).logits.unwrap();
        let want = run(&dequantised, &embeds, &positions).logits.unwrap();
        // Widening per call is the same f32 product as widening at load: the same numbers.
        assert_eq!(
            rel_max_diff(&got, &want),
            0.0,
            "fp8 {name}: resident vs dequantised"
        );
        let d = rel_max_diff(&got.squeeze(0).unwrap(), &refs[&format!("{name}.logits")]);
        assert!(d <= TOL, "fp8 {name}: logits rel diff {d:e}");
    }
}

/// The tiny FP8 fixture with its routed experts quantised too (the zai-org checkpoint's
/// per-expert layout, and the fused layout with `…_proj_scale`), written to a temporary
/// checkpoint: FP8 experts kept resident give the dequantised model's logits exactly, in both
/// layouts, and hold one byte per expert value.
#[test]
fn fp8_experts_in_both_layouts_match_the_dequantised_model() {
    let src = fixture("tiny-fp8");
    let cfg =
        folio_glm45v::checkpoint::config::ModelConfig::load(&src.join("config.json")).unwrap();
    let tc = cfg.text_config.clone();
    let mut base = HashMap::new();
    for f in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        base.extend(candle_core::safetensors::load(src.join(f), &Device::Cpu).unwrap());
    }
    // compressed-tensors' per-row quantisation: scale = max|w| / 448 (bf16), q = e4m3(w / scale).
    let quantise = |w: &Tensor| -> (Tensor, Tensor) {
        let w = w.to_dtype(DType::F32).unwrap();
        let scale = (w
            .abs()
            .unwrap()
            .max_keepdim(candle_core::D::Minus1)
            .unwrap()
            / 448.0)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let q = w
            .broadcast_div(&scale.to_dtype(DType::F32).unwrap())
            .unwrap()
            .to_dtype(DType::F8E4M3)
            .unwrap();
        (q, scale)
    };
    let (i, h) = (tc.moe_intermediate_size, tc.hidden_size);
    let mut per_expert = base.clone();
    let mut fused = base.clone();
    for layer in tc.first_k_dense_replace..tc.num_hidden_layers {
        let p = format!("model.language_model.layers.{layer}.mlp.experts");
        let gate_up = base[&format!("{p}.gate_up_proj")].clone();
        let down = base[&format!("{p}.down_proj")].clone();
        for m in [&mut per_expert, &mut fused] {
            m.remove(&format!("{p}.gate_up_proj"));
            m.remove(&format!("{p}.down_proj"));
        }
        let (gq, gs) = quantise(&gate_up);
        let (dq, ds) = quantise(&down);
        fused.insert(format!("{p}.gate_up_proj"), gq.clone());
        fused.insert(format!("{p}.gate_up_proj_scale"), gs.clone());
        fused.insert(format!("{p}.down_proj"), dq.clone());
        fused.insert(format!("{p}.down_proj_scale"), ds.clone());
        for e in 0..tc.n_routed_experts {
            let (g, gsc) = (gq.get(e).unwrap(), gs.get(e).unwrap());
            for (name, w, sc) in [
                (
                    "gate_proj",
                    g.narrow(0, 0, i).unwrap(),
                    gsc.narrow(0, 0, i).unwrap(),
                ),
                (
                    "up_proj",
                    g.narrow(0, i, i).unwrap(),
                    gsc.narrow(0, i, i).unwrap(),
                ),
                ("down_proj", dq.get(e).unwrap(), ds.get(e).unwrap()),
            ] {
                per_expert.insert(format!("{p}.{e}.{name}.weight"), w.contiguous().unwrap());
                per_expert.insert(
                    format!("{p}.{e}.{name}.weight_scale"),
                    sc.contiguous().unwrap(),
                );
            }
        }
    }
    let refs = reference("tiny-fp8");
    let (embeds_ids, positions) = (
        ids(&refs["chat.input_ids"]),
        folio_glm45v::decoder::mrope::text_positions(
            1,
            0,
            refs["chat.input_ids"].dim(0).unwrap(),
            &Device::Cpu,
        )
        .unwrap(),
    );
    let mut logits = Vec::new();
    for tensors in [per_expert, fused] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
        candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
        let ckpt = folio_glm45v::checkpoint::weights::Checkpoint::open(dir.path()).unwrap();
        let resident = TextModel::new(
            &tc,
            ckpt.var_builder_fp8(DType::F32, &Device::Cpu, cfg.quantization_config.as_ref())
                .unwrap(),
        )
        .unwrap();
        let dequantised =
            TextModel::new(&tc, ckpt.var_builder(DType::F32, &Device::Cpu).unwrap()).unwrap();
        let expert_values =
            (tc.num_hidden_layers - tc.first_k_dense_replace) * tc.n_routed_experts * 3 * h * i;
        assert!(
            dequantised.resident_bytes() - resident.resident_bytes() >= 3 * expert_values,
            "experts not held as FP8"
        );
        let embeds = resident
            .embed(
                &Tensor::new(embeds_ids.as_slice(), &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
            )
            .unwrap();
        let a = run(&resident, &embeds, &positions).logits.unwrap();
        let b = run(&dequantised, &embeds, &positions).logits.unwrap();
        assert_eq!(rel_max_diff(&a, &b), 0.0, "resident vs dequantised");
        logits.push(a);
    }
    assert_eq!(
        rel_max_diff(&logits[0], &logits[1]),
        0.0,
        "per-expert vs fused layout"
    );
}

#[test]
fn fused_expert_layout_gives_identical_logits() {
    let dir = fixture("tiny");
    let mut tensors = HashMap::new();
    for f in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        tensors.extend(candle_core::safetensors::load(dir.join(f), &Device::Cpu).unwrap());
    }
    let cfg =
        folio_glm45v::checkpoint::config::ModelConfig::load(&dir.join("config.json")).unwrap();
    let tc = &cfg.text_config;
    for layer in tc.first_k_dense_replace..tc.num_hidden_layers {
        let p = format!("model.language_model.layers.{layer}.mlp.experts");
        let (mut gate_up, mut down) = (vec![], vec![]);
        for e in 0..tc.n_routed_experts {
            let g = tensors
                .remove(&format!("{p}.{e}.gate_proj.weight"))
                .unwrap();
            let u = tensors.remove(&format!("{p}.{e}.up_proj.weight")).unwrap();
            gate_up.push(Tensor::cat(&[g, u], 0).unwrap());
            down.push(
                tensors
                    .remove(&format!("{p}.{e}.down_proj.weight"))
                    .unwrap(),
            );
        }
        tensors.insert(
            format!("{p}.gate_up_proj"),
            Tensor::stack(&gate_up, 0).unwrap(),
        );
        tensors.insert(format!("{p}.down_proj"), Tensor::stack(&down, 0).unwrap());
    }
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let fused = TextModel::new(tc, vb).unwrap();
    let (_, per_expert) = load_text_model("tiny", DType::F32);
    let refs = reference("tiny");
    let (embeds, positions) = text_inputs(&per_expert, &ids(&refs["chat.input_ids"]));
    let a = run(&fused, &embeds, &positions).logits.unwrap();
    let b = run(&per_expert, &embeds, &positions).logits.unwrap();
    assert_eq!(rel_max_diff(&a, &b), 0.0);
}

#[test]
fn bf16_compute_agrees_with_the_fp32_reference_on_most_tokens() {
    // transformers' own bf16 run of this random model agrees on 88% (raw) / 100% (chat) of the
    // fp32 argmaxes, with rel logit diffs of 0.43 / 0.16: routing flips dominate in bf16.
    let (_, model) = load_text_model("tiny", DType::BF16);
    let refs = reference("tiny");
    for (name, min_agree) in [("raw", 0.8f32), ("chat", 0.95)] {
        let (embeds, positions) = text_inputs(&model, &ids(&refs[&format!("{name}.input_ids")]));
        let out = run(&model, &embeds, &positions);
        let got = out
            .logits
            .unwrap()
            .squeeze(0)
            .unwrap()
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        let want = refs[&format!("{name}.logits")]
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        let agree =
            got.iter().zip(&want).filter(|(a, b)| a == b).count() as f32 / want.len() as f32;
        assert!(agree >= min_agree, "bf16 {name}: argmax agreement {agree}");
    }
}
