//! CPU throughput of batched generation ([`folio_glm45v::generate::batch`]): the same requests decoded
//! one at a time (`max_batch` 1) and together (`max_batch` B), tokens/s of each.
//!
//! `cargo run --release -p folio-glm45v --example bench_batch -- [DIR] [--requests 4]
//! [--prompt 128] [--new 32] [--batches 1,4] [--dtype f32|bf16] [--repeats 2]`
//!
//! Without DIR the model is the mid-size config of `scripts/bench_glm_cpu.py` (hidden 1024, 8
//! layers, 8 q / 2 kv heads of 128, dense 2816, 32 experts of 512 with top-4 and one shared,
//! vocabulary 16384) with random weights made in memory (`folio_glm45v::checkpoint::synthetic`); with DIR
//! (e.g. `bench-out/glm-mid` written by that script) the checkpoint's weights. Request i has a
//! prompt of `prompt · (1 + i mod 3) / 2` synthetic ids (different lengths, as pages differ)
//! and decodes exactly `--new` tokens (no stop ids). One JSON line per batch size:
//! wall time, total tokens/s and decode tokens/s (generated tokens after each sequence's
//! first, over the wall time minus the prefills).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};
use folio_glm45v::checkpoint::config::{ModelConfig, TextConfig};
use folio_glm45v::checkpoint::weights::Checkpoint;
use folio_glm45v::decoder::text_model::TextModel;
use folio_glm45v::generate::batch::{generate_batch, BatchOptions, BatchRequest};
use folio_glm45v::generate::{Flow, GenerationParams, Prompt};

mod bench_common;

/// `bench_batch [DIR] [--requests 4] [--prompt 128] [--new 32] [--batches 1,4] [--dtype f32|bf16] [--repeats 2]`
#[derive(clap::Parser)]
struct Args {
    /// A checkpoint directory; without it, the synthetic mid-size model.
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    requests: usize,
    #[arg(long, default_value_t = 128)]
    prompt: usize,
    #[arg(long, default_value_t = 32)]
    new: usize,
    /// Batch sizes, each ≥ 1.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    batches: Vec<usize>,
    #[arg(long, default_value = "f32", value_parser = bench_common::dtype)]
    dtype: DType,
    #[arg(long, default_value_t = 2)]
    repeats: usize,
}

/// The mid-size config of `scripts/bench_glm_cpu.py`.
fn mid_config() -> folio_glm45v::Result<TextConfig> {
    let cfg = TextConfig {
        vocab_size: 16384,
        hidden_size: 1024,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        head_dim: Some(128),
        intermediate_size: 2816,
        moe_intermediate_size: 512,
        n_routed_experts: 32,
        num_experts_per_tok: 4,
        max_position_embeddings: 8192,
        // M-RoPE as the synthetic config has it (default, θ 10000, half rotary, sections 8/12/12).
        ..folio_glm45v::checkpoint::synthetic::text_config(8)?
    };
    cfg.validate()?;
    Ok(cfg)
}

fn load(args: &Args) -> folio_glm45v::Result<(TextModel, String)> {
    match &args.dir {
        Some(dir) => {
            let cfg = ModelConfig::load(&dir.join("config.json"))?;
            let vb = Checkpoint::open(dir)?.var_builder(args.dtype, &Device::Cpu)?;
            Ok((
                TextModel::new(&cfg.text_config, vb)?,
                dir.display().to_string(),
            ))
        }
        None => {
            let vb = folio_glm45v::checkpoint::synthetic::var_builder(args.dtype, &Device::Cpu, 1)?;
            Ok((TextModel::new(&mid_config()?, vb)?, "synthetic-mid".into()))
        }
    }
}

fn requests(args: &Args, vocab: u32) -> Vec<BatchRequest> {
    (0..args.requests)
        .map(|r| {
            let len = args.prompt * (1 + r % 3) / 2;
            let ids = (0..len as u32)
                .map(|i| (i * 7919 + 13 + r as u32 * 104_729) % vocab)
                .collect();
            BatchRequest::new(
                Prompt::text(ids),
                GenerationParams::greedy(args.new, vec![]),
            )
        })
        .collect()
}

fn run(args: &Args) -> folio_glm45v::Result<Vec<String>> {
    let (model, name) = load(args)?;
    let vocab = model.vocab_size() as u32;
    let mut lines = Vec::new();
    // Warm-up (allocations, thread pool).
    let warm = BatchOptions {
        max_batch: args.requests,
        max_tokens_in_flight: usize::MAX,
    };
    generate_batch(&model, requests(args, vocab), &warm, &mut |_, _| {
        Flow::Continue
    })?;
    for &b in &args.batches {
        let opts = BatchOptions {
            max_batch: b,
            max_tokens_in_flight: usize::MAX,
        };
        let mut best: Option<(f64, f64, usize)> = None;
        for _ in 0..args.repeats {
            let start = Instant::now();
            let out = generate_batch(&model, requests(args, vocab), &opts, &mut |_, _| {
                Flow::Continue
            })?;
            let wall = start.elapsed().as_secs_f64();
            let mut prefill = 0.0;
            let mut tokens = 0;
            for g in out {
                let g = g?;
                prefill += g.prefill_secs;
                tokens += g.tokens.len();
            }
            if best.is_none_or(|(w, _, _)| wall < w) {
                best = Some((wall, prefill, tokens));
            }
        }
        let (wall, prefill, tokens) = best.unwrap_or((f64::NAN, 0.0, 0));
        let decode_tokens = tokens.saturating_sub(args.requests);
        lines.push(format!(
            "{{\"bench\":\"batch\",\"model\":\"{name}\",\"dtype\":\"{:?}\",\"threads\":{},\"requests\":{},\"prompt\":{},\"new\":{},\"max_batch\":{b},\"wall_s\":{wall:.3},\"prefill_s\":{prefill:.3},\"tok_s\":{:.2},\"decode_tok_s\":{:.2}}}",
            args.dtype,
            candle_core::utils::get_num_threads(),
            args.requests,
            args.prompt,
            args.new,
            tokens as f64 / wall,
            decode_tokens as f64 / (wall - prefill),
        ));
        println!("{}", lines[lines.len() - 1]);
    }
    Ok(lines)
}

fn main() -> std::process::ExitCode {
    let mut args = <Args as clap::Parser>::parse();
    args.requests = args.requests.max(1);
    args.prompt = args.prompt.max(2);
    args.new = args.new.max(1);
    args.repeats = args.repeats.max(1);
    if args.batches.contains(&0) {
        eprintln!("--batches: sizes must be ≥ 1");
        return std::process::ExitCode::from(2);
    }
    match run(&args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_batch: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
