//! Per-token overhead of JSON-schema constrained decoding (mask + commit), printed as a table.
//!
//! `cargo run --release -p folio-workers --example constraint_overhead [-- TOKENIZER_JSON...]`
//!
//! Without arguments it measures the tiny fixture's tokenizer (512 ids) and a synthetic
//! byte-level BPE vocabulary of GLM-4.5V's size (151,552 ids: word pieces with and without a
//! leading space, punctuation, digits, CJK characters and stray UTF-8 bytes, in proportions
//! like a multilingual vocabulary's). Each run walks the chart and prescription schemas with
//! random logits (seeded) to the stop id, timing every mask and commit separately, and splits
//! the mask time into steps inside strings and steps at structural positions.
//!
//! A second table is the batch view (issue 14): `BATCH` (64) constrained sequences, half chart and
//! half prescription, stepped together as the batch scheduler does. Per step: the masks worked out
//! one after another on the decoding thread (what a step cost before), the same work with
//! [`prepare_all`] on the other cores (what now runs beside the GPU's decoder step), and what is
//! left after the step (applying the prepared masks, picking, committing), which the scheduler
//! spreads over every core as this does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use folio_glm45v::chat::tokenizer::GlmTokenizer;
use folio_glm45v::generate::constraint::{
    prepare_all, ConstraintVocab, JsonSchemaConstraint, TokenConstraint,
};
use folio_glm45v::generate::{GenerationParams, Sampler};
use folio_glm45v::Result;
use folio_workers::engines::glm45v::profiles::{Profile, ProfileKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const GLM_VOCAB: usize = 151_552;
/// Sequences stepped together in the batch view.
const BATCH: usize = 64;
/// Steps timed in the batch view.
const BATCH_STEPS: usize = 40;

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let dir = tempfile_dir();
    // Where the fixture was at build time, else relative to the repository root (the binary
    // also runs from another checkout on the GPU machine).
    let built =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("glm45v/tests/fixtures/tiny/tokenizer.json");
    let tiny = if built.is_file() {
        built
    } else {
        PathBuf::from("workers/glm45v/tests/fixtures/tiny/tokenizer.json")
    };
    let mut paths = vec![tiny];
    if args.is_empty() {
        let synthetic = dir.join("synthetic-151552.json");
        write_synthetic(&synthetic, GLM_VOCAB);
        paths.push(synthetic);
    } else {
        paths = args;
    }
    println!(
        "| vocabulary | ids | index (ms) | steps | mask mean (µs) | mask p50 | mask p99 | in-string mean | structural mean | commit mean (µs) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for path in &paths {
        measure(path)?;
    }
    println!();
    println!(
        "| vocabulary | batch | threads | serial: mask + pick + commit, one thread, ms/step (p50) | prepare_all beside the step, ms/step (p50) | after the step: apply + pick + commit on all cores, ms/step (p50) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for path in &paths {
        measure_batch(path)?;
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn measure(path: &Path) -> Result<()> {
    let tok = GlmTokenizer::from_file(path)?;
    let start = Instant::now();
    let vocab = std::sync::Arc::new(ConstraintVocab::new(&tok)?);
    let index_ms = start.elapsed().as_secs_f64() * 1e3;
    let stop = tok.token_id("<|endoftext|>").unwrap_or(0);
    let (mut masks, mut in_string, mut structural, mut commits) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, kind) in [ProfileKind::Chart, ProfileKind::Prescription]
        .iter()
        .cycle()
        .take(10)
        .enumerate()
    {
        let schema = Profile::new(*kind).json_schema().expect("schema");
        let mut c = JsonSchemaConstraint::with_vocab(vocab.clone(), &schema, &[stop])?;
        c.set_max_tokens(400);
        let mut rng = StdRng::seed_from_u64(i as u64);
        let mut text = String::new();
        loop {
            let mut logits: Vec<f32> = (0..tok.vocab_size()).map(|_| rng.random::<f32>()).collect();
            let t = Instant::now();
            c.mask(&mut logits)?;
            let us = t.elapsed().as_secs_f64() * 1e6;
            masks.push(us);
            // Inside a string: an odd number of unescaped quotes so far.
            if text.matches('"').count() % 2 == 1 {
                in_string.push(us);
            } else {
                structural.push(us);
            }
            let pick = (0..logits.len())
                .filter(|&i| logits[i].is_finite())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .expect("a token is allowed") as u32;
            let t = Instant::now();
            c.commit(pick)?;
            commits.push(t.elapsed().as_secs_f64() * 1e6);
            if pick == stop {
                break;
            }
            text.push_str(&tok.decode(&[pick], false)?);
        }
    }
    masks.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "| {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
        path.file_name().map_or("?".into(), |n| n.to_string_lossy()),
        tok.vocab_size(),
        index_ms,
        masks.len(),
        mean(&masks),
        pct(&masks, 0.5),
        pct(&masks, 0.99),
        mean(&in_string),
        mean(&structural),
        mean(&commits),
    );
    Ok(())
}

/// One sequence of the batch view: its constraint, its seeded logits, its sampler.
type Seq = (JsonSchemaConstraint, Vec<f32>, Sampler);

/// `BATCH` constraints of the two schemas over `tok`, each with its own seeded logits.
fn batch_of(
    tok: &GlmTokenizer,
    vocab: &std::sync::Arc<ConstraintVocab>,
    stop: u32,
) -> Result<Vec<Seq>> {
    (0..BATCH)
        .map(|i| {
            let kind = [ProfileKind::Chart, ProfileKind::Prescription][i % 2];
            let schema = Profile::new(kind).json_schema().expect("schema");
            let mut c = JsonSchemaConstraint::with_vocab(vocab.clone(), &schema, &[stop])?;
            c.set_max_tokens(400);
            let mut rng = StdRng::seed_from_u64(1000 + i as u64);
            let logits: Vec<f32> = (0..tok.vocab_size()).map(|_| rng.random::<f32>()).collect();
            let sampler = Sampler::new(&GenerationParams::greedy(400, vec![]), &[], logits.len());
            Ok((c, logits, sampler))
        })
        .collect()
}

/// What the scheduler does for one sequence after the step ([`Sampler::next_with`], built at
/// the model crate's optimisation level): mask (prepared or not), greedy pick, commit.
fn pick_and_commit((c, base, sampler): &mut Seq, logits: &mut Vec<f32>, step: usize) -> Result<()> {
    logits.clear();
    // Rotate the seeded logits each step, so the picks differ from step to step.
    let k = (step * 7919) % base.len();
    logits.extend_from_slice(&base[k..]);
    logits.extend_from_slice(&base[..k]);
    sampler
        .next_with(logits, Some(c as &mut dyn TokenConstraint))
        .map(|_| ())
}

fn measure_batch(path: &Path) -> Result<()> {
    let tok = GlmTokenizer::from_file(path)?;
    let vocab = std::sync::Arc::new(ConstraintVocab::new(&tok)?);
    let stop = tok.token_id("<|endoftext|>").unwrap_or(0);
    let mut serial_batch = batch_of(&tok, &vocab, stop)?;
    let mut overlapped = batch_of(&tok, &vocab, stop)?;
    let (mut serial, mut prepare, mut left) = (Vec::new(), Vec::new(), Vec::new());
    let mut logits = Vec::with_capacity(tok.vocab_size());
    for step in 0..BATCH_STEPS {
        let t = Instant::now();
        for seq in serial_batch.iter_mut() {
            pick_and_commit(seq, &mut logits, step)?;
        }
        serial.push(t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let mut refs: Vec<&mut dyn TokenConstraint> = overlapped
            .iter_mut()
            .map(|(c, _, _)| c as &mut dyn TokenConstraint)
            .collect();
        prepare_all(&mut refs);
        prepare.push(t.elapsed().as_secs_f64() * 1e3);
        // After the step the scheduler chooses on every core (`choose_all`): apply the prepared
        // masks, pick, commit.
        let t = Instant::now();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = overlapped.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = overlapped
                .chunks_mut(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut logits = Vec::new();
                        chunk
                            .iter_mut()
                            .try_for_each(|seq| pick_and_commit(seq, &mut logits, step))
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("no panic"))
        })?;
        left.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let p50 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "| {} | {BATCH} | {} | {:.1} | {:.1} | {:.1} |",
        path.file_name().map_or("?".into(), |n| n.to_string_lossy()),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        p50(&mut serial),
        p50(&mut prepare),
        p50(&mut left),
    );
    Ok(())
}

fn tempfile_dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("folio-constraint-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// GPT-2's byte → character table.
fn byte_char(b: u8) -> char {
    if matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
        return b as char;
    }
    let extra = (0..b)
        .filter(|x| !matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
        .count();
    char::from_u32(256 + extra as u32).expect("valid")
}

fn spell(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_char(b)).collect()
}

/// A byte-level BPE `tokenizer.json` with `n` ids (no merges: only the vocabulary matters).
fn write_synthetic(path: &Path, n: usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut vocab = serde_json::Map::new();
    let add = |s: String, vocab: &mut serde_json::Map<String, serde_json::Value>| {
        if !vocab.contains_key(&s) {
            let id = vocab.len();
            vocab.insert(s, id.into());
        }
    };
    for b in 0..=255u8 {
        add(spell(&[b]), &mut vocab);
    }
    let letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let punct = b".,;:!?()[]{}<>\"'-_/\\=+*&%$#@|`~";
    let specials = 36;
    while vocab.len() < n - specials {
        let roll = rng.random_range(0..100);
        let mut bytes = Vec::new();
        if roll < 62 {
            if rng.random::<bool>() {
                bytes.push(b' ');
            }
            for _ in 0..rng.random_range(2..10) {
                bytes.push(letters[rng.random_range(0..letters.len())]);
            }
        } else if roll < 72 {
            for _ in 0..rng.random_range(1..4) {
                bytes.push(punct[rng.random_range(0..punct.len())]);
            }
            if rng.random::<bool>() {
                bytes.push(letters[rng.random_range(0..letters.len())]);
            }
        } else if roll < 78 {
            for _ in 0..rng.random_range(1..4) {
                bytes.push(b'0' + rng.random_range(0..10u8));
            }
        } else if roll < 96 {
            for _ in 0..rng.random_range(1..4) {
                let c = char::from_u32(rng.random_range(0x4E00..0x9FA5)).expect("cjk");
                bytes.extend(c.to_string().as_bytes());
            }
        } else {
            // A split multi-byte character.
            let c = char::from_u32(rng.random_range(0x4E00..0x9FA5)).expect("cjk");
            bytes.extend(&c.to_string().as_bytes()[..rng.random_range(1..3)]);
        }
        add(spell(&bytes), &mut vocab);
    }
    let added: Vec<serde_json::Value> = (0..specials)
        .map(|i| {
            let content = if i == 0 {
                "<|endoftext|>".to_string()
            } else {
                format!("<|special_{i}|>")
            };
            serde_json::json!({"id": n - specials + i, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []}
    });
    std::fs::write(path, serde_json::to_vec(&json).expect("json")).expect("write tokenizer");
}
