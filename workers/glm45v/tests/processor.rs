//! The image processor against transformers' `Glm4vImageProcessorPil` on real corpus images of
//! different sizes, aspect ratios and pixel formats (RGB and RGBA PNG, 1-bit TIFF, JPEG), under
//! transformers' default budget and the tiny fixture's: same grid, same 8-bit levels everywhere
//! (sha256 of the pixel values mapped back to levels), and sampled rows equal within 1e-6.

use folio_glm45v::processor::resize::to_rgb_over_white;
use folio_glm45v::processor::{
    ImageProcessor, PreprocessorConfig, SizeBudget, CLIP_MEAN, CLIP_STD,
};
use sha2::{Digest, Sha256};

use crate::common::{corpus, fixture, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 8-bit level each value came from (the reference computes the same in f64).
fn levels(pv: &[f32], dim: usize) -> Vec<u8> {
    let per_channel = dim / 3;
    pv.iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = (i % dim) / per_channel;
            let l = ((x as f64 * CLIP_STD[c] + CLIP_MEAN[c]) * 255.0).round();
            assert!((0.0..=255.0).contains(&l), "value {x} maps outside 0..255");
            l as u8
        })
        .collect()
}

#[test]
fn pixel_values_match_transformers_on_corpus_images() {
    let refs = json("processor_reference.json");
    let rows = candle_core::safetensors::load(
        fixture("processor_reference.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("reference rows load");
    let cases = refs["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10, "reference has {} cases", cases.len());
    for case in cases {
        let rel = case["image"].as_str().expect("image");
        let budget = case["budget"].as_str().expect("budget");
        let name = format!("{rel}@{budget}");
        let img = image::open(corpus(rel)).expect("image decodes");
        let rgb = to_rgb_over_white(&img);
        assert_eq!(
            hex(&Sha256::digest(rgb.as_raw())),
            case["rgb_sha256"].as_str().expect("sha"),
            "{name}: decoded RGB differs from Pillow's"
        );
        let size = &case["size"];
        let cfg = PreprocessorConfig {
            size: SizeBudget {
                shortest_edge: size["shortest_edge"].as_u64().expect("min"),
                longest_edge: size["longest_edge"].as_u64().expect("max"),
            },
            ..PreprocessorConfig::default()
        };
        let proc = ImageProcessor::new(cfg).expect("processor");
        let out = proc.process(&img).expect("processes");
        let grid: Vec<usize> = case["grid"]
            .as_array()
            .expect("grid")
            .iter()
            .map(|v| v.as_u64().expect("int") as usize)
            .collect();
        assert_eq!(out.grid.to_vec(), grid, "{name}: grid");
        let dim = proc.config.patch_dim();
        assert_eq!(out.pixel_values.len(), out.num_patches() * dim);
        let want = case["levels_sha256"].as_str().expect("sha");
        assert_eq!(
            hex(&Sha256::digest(levels(&out.pixel_values, dim))),
            want,
            "{name}: resized 8-bit levels differ from Pillow's bicubic"
        );
        let sample = rows[case["tensor"].as_str().expect("key")]
            .to_vec2::<f32>()
            .expect("rows");
        for (row, want) in case["rows"].as_array().expect("rows").iter().zip(&sample) {
            let r = row.as_u64().expect("row") as usize;
            let got = &out.pixel_values[r * dim..(r + 1) * dim];
            let diff = got
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-6, "{name}: row {r} differs by {diff:e}");
        }
    }
}

#[test]
fn tiny_checkpoint_reads_its_preprocessor_config() {
    let proc = ImageProcessor::from_dir(&fixture("tiny")).expect("config");
    assert_eq!(proc.config.size.longest_edge, 28 * 28 * 2 * 48);
    let defaults = ImageProcessor::from_dir(&fixture("tiny-fp8")).expect("defaults");
    assert_eq!(defaults.config, PreprocessorConfig::default());
}
