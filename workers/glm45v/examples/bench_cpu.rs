//! CPU throughput of the GLM-4.5V text decoder: prefill and greedy decode tokens/s.
//!
//! `cargo run --release -p folio-glm45v --example bench_cpu -- DIR [--prompt N] [--new M]
//! [--dtype f32|bf16] [--repeats R]` prints one JSON line. The prompt is synthetic ids (the
//! numbers do not depend on text); decode runs exactly M steps (no stop ids). Driven by
//! `scripts/bench_glm_cpu.sh`, which runs transformers on the same checkpoint beside it.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use folio_glm45v::checkpoint::config::ModelConfig;
use folio_glm45v::checkpoint::weights::Checkpoint;
use folio_glm45v::decoder::mrope::text_positions;
use folio_glm45v::decoder::text_model::{DecoderInput, LogitsSelection, Record, TextModel};
use folio_glm45v::generate::{generate, Flow, GenerationParams, Prompt};

mod bench_common;

/// `bench_cpu DIR [--prompt N] [--new M] [--dtype f32|bf16] [--repeats R]`
#[derive(clap::Parser)]
struct Args {
    /// The checkpoint directory.
    dir: PathBuf,
    #[arg(long, default_value_t = 128)]
    prompt: usize,
    #[arg(long, default_value_t = 32)]
    new: usize,
    #[arg(long, default_value = "f32", value_parser = bench_common::dtype)]
    dtype: DType,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(args: &Args) -> folio_glm45v::Result<String> {
    let cfg = ModelConfig::load(&args.dir.join("config.json"))?;
    let t0 = Instant::now();
    let vb = Checkpoint::open(&args.dir)?.var_builder(args.dtype, &Device::Cpu)?;
    let model = TextModel::new(&cfg.text_config, vb)?;
    let load_s = t0.elapsed().as_secs_f64();
    let vocab = model.vocab_size() as u32;
    let ids: Vec<u32> = (0..args.prompt as u32)
        .map(|i| (i * 7919 + 13) % vocab)
        .collect();
    let tokens = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let positions = text_positions(1, 0, ids.len(), &Device::Cpu)?;
    // Warm-up, then timed prefills (full forward of the prompt, last logits).
    let mut prefill = Vec::new();
    for i in 0..=args.repeats {
        let start = Instant::now();
        let embeds = model.embed(&tokens)?;
        let mut cache = model.new_cache();
        let input = DecoderInput {
            embeds: &embeds,
            positions: &positions,
            logits: LogitsSelection::Last,
            record: Record::default(),
        };
        model.forward(input, &mut cache)?;
        if i > 0 {
            prefill.push(start.elapsed().as_secs_f64());
        }
    }
    let mut decode = Vec::new();
    for _ in 0..args.repeats {
        let params = GenerationParams::greedy(args.new, vec![]);
        let out = generate(
            &model,
            &Prompt::text(ids.clone()),
            &params,
            None,
            &mut |_| Flow::Continue,
        )?;
        // The first token comes from the prefill logits; decode_secs covers the other new-1 steps.
        decode.push(out.decode_secs / (out.tokens.len().saturating_sub(1).max(1)) as f64);
    }
    let prefill_s = median(prefill);
    let step_s = median(decode);
    Ok(format!(
        "{{\"engine\":\"folio\",\"dtype\":\"{:?}\",\"threads\":{},\"prompt\":{},\"new\":{},\"load_s\":{:.3},\"prefill_s\":{:.4},\"prefill_tok_s\":{:.1},\"decode_step_s\":{:.5},\"decode_tok_s\":{:.2}}}",
        args.dtype,
        candle_core::utils::get_num_threads(),
        args.prompt,
        args.new,
        load_s,
        prefill_s,
        args.prompt as f64 / prefill_s,
        step_s,
        1.0 / step_s
    ))
}

fn main() -> std::process::ExitCode {
    let mut args = <Args as clap::Parser>::parse();
    args.repeats = args.repeats.max(1);
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_cpu: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
