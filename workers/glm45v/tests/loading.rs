//! Checkpoint loading failures name what is wrong: missing shard, missing or misshaped tensor.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use folio_glm45v::model::{Glm45v, LoadOptions};

use crate::common::fixture;

/// Copies the tiny checkpoint into a temp dir, letting `edit` change the tensors of shard 1 (the text weights).
fn edited_copy(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixture("tiny")).expect("fixture dir") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, tmp.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let shard = tmp.path().join("model-00001-of-00002.safetensors");
    let mut tensors = candle_core::safetensors::load(&shard, &Device::Cpu).expect("shard loads");
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, &shard).expect("shard saves");
    tmp
}

fn load_err(dir: &Path) -> String {
    let opts = LoadOptions {
        dtype: DType::F32,
        ..LoadOptions::default()
    };
    Glm45v::load(dir, &opts)
        .expect_err("load must fail")
        .to_string()
}

const VICTIM: &str = "model.language_model.layers.2.post_attention_layernorm.weight";

#[test]
fn a_missing_tensor_is_named() {
    let dir = edited_copy(|t| {
        assert!(t.remove(VICTIM).is_some(), "victim lives in shard 1");
    });
    let e = load_err(dir.path());
    assert!(e.contains(VICTIM), "{e}");
}

#[test]
fn a_misshaped_tensor_is_named() {
    let dir = edited_copy(|t| {
        t.insert(
            VICTIM.to_string(),
            Tensor::ones(65, DType::F32, &Device::Cpu).expect("ones"),
        );
    });
    let e = load_err(dir.path());
    assert!(e.contains(VICTIM) && e.contains("65"), "{e}");
}

#[test]
fn a_missing_shard_is_named() {
    let dir = edited_copy(|_| {});
    std::fs::remove_file(dir.path().join("model-00001-of-00002.safetensors")).expect("rm");
    let e = load_err(dir.path());
    assert!(e.contains("model-00001-of-00002.safetensors"), "{e}");
}

#[test]
fn a_bad_config_is_reported() {
    let dir = edited_copy(|_| {});
    let cfg_path = dir.path().join("config.json");
    let raw = std::fs::read_to_string(&cfg_path).expect("config");
    std::fs::write(&cfg_path, raw.replace("\"n_group\": 4", "\"n_group\": 3")).expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("n_group"), "{e}");
    std::fs::write(&cfg_path, "{ not json").expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("config.json"), "{e}");
}
