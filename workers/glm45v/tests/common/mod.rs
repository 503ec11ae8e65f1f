//! Shared helpers of the parity tests: fixture paths, reference loading, tolerant comparison.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use folio_glm45v::checkpoint::config::ModelConfig;
use folio_glm45v::checkpoint::weights::Checkpoint;
use folio_glm45v::decoder::text_model::TextModel;

/// Directory of a committed fixture (`tiny`, `tiny-fp8`).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reference tensors written by `make_tiny.py`.
pub fn reference(dir: &str) -> HashMap<String, Tensor> {
    let path = fixture(dir).join("reference.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu).expect("reference.safetensors loads")
}

/// Loads the decoder of a fixture in `dtype` on the CPU.
pub fn load_text_model(dir: &str, dtype: DType) -> (ModelConfig, TextModel) {
    let dir = fixture(dir);
    let cfg = ModelConfig::load(&dir.join("config.json")).expect("config loads");
    let ckpt = Checkpoint::open(&dir).expect("checkpoint opens");
    let vb = ckpt.var_builder(dtype, &Device::Cpu).expect("var builder");
    let model = TextModel::new(&cfg.text_config, vb).expect("model loads");
    (cfg, model)
}

/// Loads the decoder of an FP8 fixture with its FP8 weights kept FP8 (the reference path on
/// the CPU), honouring the checkpoint's `quantization_config`.
pub fn load_text_model_fp8(dir: &str, dtype: DType) -> (ModelConfig, TextModel) {
    let dir = fixture(dir);
    let cfg = ModelConfig::load(&dir.join("config.json")).expect("config loads");
    let ckpt = Checkpoint::open(&dir).expect("checkpoint opens");
    let vb = ckpt
        .var_builder_fp8(dtype, &Device::Cpu, cfg.quantization_config.as_ref())
        .expect("var builder");
    let model = TextModel::new(&cfg.text_config, vb).expect("model loads");
    (cfg, model)
}

/// i64 reference ids as u32.
pub fn ids(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<i64>()
        .expect("i64 ids")
        .into_iter()
        .map(|v| u32::try_from(v).expect("id fits u32"))
        .collect()
}

/// max |a − b| / max(1, max |b|) over all elements.
pub fn rel_max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let values = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("tensor as f32 values")
    };
    let (a, b) = (values(a), values(b));
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// A corpus file (`$FOLIO_CORPUS_DIR`, default `<repo>/../shared/corpus`), checked to exist.
pub use folio_test_support::corpus;

/// `libonnxruntime.so.1.31.1` from the runtime folder `scripts/setup` fills
/// (`$FOLIO_RUNTIME_DIR`, default `~/.cache/folio`).
pub fn onnxruntime_lib() -> PathBuf {
    let lib = folio_test_support::runtime_dir().join("lib/libonnxruntime.so.1.31.1");
    assert!(
        lib.is_file(),
        "{} is missing: run `scripts/setup`",
        lib.display()
    );
    lib
}

/// A JSON file of the fixtures.
pub fn json(rel: &str) -> serde_json::Value {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).expect("fixture JSON reads");
    serde_json::from_slice(&bytes).expect("fixture JSON parses")
}
