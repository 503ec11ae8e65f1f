//! The ONNX vision tower and whole image+prompt inputs against transformers on the tiny model:
//! vision embeddings (each image, and two packed in one call) within 1e-4, the fp16 export within
//! fp16 noise, then for one- and two-image prompts the expanded ids, mm token types, 3-D
//! positions and rope delta exactly, logits at every position within 1e-4 and the same 16-token
//! greedy continuation; a video clip (frame sampling, temporal pairs, timestamps, embeddings, ids,
//! positions, logits). Also the load-time checks and the CPU fallback of the CUDA switch.

use candle_core::{DType, Device, Tensor};
use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::checkpoint::config::{ModelConfig, VisionConfig};
use folio_glm45v::decoder::text_model::LogitsSelection;
use folio_glm45v::generate::{generate, FinishReason, Flow, GenerationParams};
use folio_glm45v::model::{Glm45v, LoadOptions};
use folio_glm45v::processor::prompt::mm_token_type_ids;
use folio_glm45v::processor::{ImageProcessor, ProcessedImage};
use folio_glm45v::vision::onnx::{ExecutionDevice, VisionOptions, VisionTower};
use folio_glm45v::vision::prompt::Media;

use crate::common::{corpus, fixture, ids, json, onnxruntime_lib, rel_max_diff};
use crate::parity::forward_logits;

const TOL: f32 = 1e-4;

fn refs() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixture("tiny").join("vision_reference.safetensors"),
        &Device::Cpu,
    )
    .expect("vision reference loads")
}

fn vision_config() -> VisionConfig {
    let cfg = ModelConfig::load(&fixture("tiny").join("config.json")).expect("config");
    cfg.vision_config.expect("vision config")
}

fn tower(file: &str, max_patches: usize) -> VisionTower {
    let mut opts = VisionOptions::new(fixture("tiny").join(file), onnxruntime_lib());
    opts.max_patches_per_call = max_patches;
    opts.intra_threads = 2;
    VisionTower::load(&opts, &vision_config()).expect("vision tower loads")
}

fn process(rels: &[&str]) -> Vec<ProcessedImage> {
    let proc = ImageProcessor::from_dir(&fixture("tiny")).expect("processor");
    rels.iter()
        .map(|r| {
            proc.process(&image::open(corpus(r)).expect("decodes"))
                .expect("processes")
        })
        .collect()
}

fn rows_tensor(rows: &[f32], hidden: usize) -> Tensor {
    Tensor::from_slice(rows, (rows.len() / hidden, hidden), &Device::Cpu).expect("tensor")
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn vision_embeddings_match_transformers() {
    let meta = json("tiny/vision_reference.json");
    let refs = refs();
    let t = tower("vision.onnx", 8192);
    assert_eq!(t.provider(), "cpu");
    for case in meta["vision"].as_array().expect("cases") {
        let rel = case["image"].as_str().expect("image");
        let img = process(&[rel]);
        let emb = t.embed(&img).expect("embeds");
        let want = &refs[case["tensor"].as_str().expect("key")];
        let d = rel_max_diff(&rows_tensor(&emb.rows, emb.hidden), want);
        eprintln!("{rel}: vision embeddings rel diff {d:e}");
        assert!(d <= TOL, "{rel}: vision embeddings differ (rel {d:e})");
    }
    // Two images in one call (segment mask) and one call per image agree with the reference.
    let packed = strs(&meta["vision_packed"]["images"]);
    let rels: Vec<&str> = packed.iter().map(String::as_str).collect();
    let imgs = process(&rels);
    let want = &refs["vision.packed"];
    for budget in [8192, 1] {
        let emb = tower("vision.onnx", budget).embed(&imgs).expect("embeds");
        assert_eq!(emb.tokens_per_image.iter().sum::<usize>(), want.dims()[0]);
        let d = rel_max_diff(&rows_tensor(&emb.rows, emb.hidden), want);
        assert!(d <= TOL, "packed (budget {budget}): rel diff {d:e}");
    }
}

#[test]
fn fp16_export_stays_within_half_precision_noise() {
    let meta = json("tiny/vision_reference.json");
    let refs = refs();
    let t = tower("vision.fp16.onnx", 8192);
    assert_eq!(t.meta().dtype, "fp16");
    let case = &meta["vision"][0];
    let img = process(&[case["image"].as_str().expect("image")]);
    let emb = t.embed(&img).expect("embeds");
    let d = rel_max_diff(
        &rows_tensor(&emb.rows, emb.hidden),
        &refs[case["tensor"].as_str().expect("key")],
    );
    eprintln!("fp16 tower: rel diff {d:e}");
    assert!(d <= 1e-2, "fp16 tower rel diff {d:e}");
}

fn load_glm() -> Glm45v {
    let opts = LoadOptions {
        dtype: DType::F32,
        ..LoadOptions::default()
    };
    let mut glm = Glm45v::load(&fixture("tiny"), &opts).expect("checkpoint loads");
    let mut vopts = VisionOptions::new(fixture("tiny").join("vision.onnx"), onnxruntime_lib());
    vopts.intra_threads = 2;
    glm.attach_vision(&vopts).expect("vision attaches");
    glm
}

#[test]
fn image_prompts_match_transformers_end_to_end() {
    let meta = json("tiny/vision_reference.json");
    let refs = refs();
    let glm = load_glm();
    for case in meta["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let images = strs(&case["images"]);
        let rels: Vec<&str> = images.iter().map(String::as_str).collect();
        let processed = process(&rels);
        let messages = [ChatMessage::user_with_images(
            images.len(),
            case["question"].as_str().expect("question"),
        )];
        let opts = ChatOptions {
            enable_thinking: case["enable_thinking"].as_bool().expect("flag"),
            ..ChatOptions::default()
        };
        let media = Media {
            images: &processed,
            videos: &[],
        };
        let got_ids = glm
            .encode_with_media(&messages, opts, media)
            .expect("encodes");
        assert_eq!(
            got_ids,
            ids(&refs[&format!("{name}.input_ids")]),
            "{name}: ids"
        );
        let types: Vec<i64> = mm_token_type_ids(&got_ids, &glm.special)
            .into_iter()
            .map(i64::from)
            .collect();
        let want_types = refs[&format!("{name}.mm_token_type_ids")]
            .to_vec1::<i64>()
            .expect("types");
        assert_eq!(types, want_types, "{name}: mm_token_type_ids");
        let grids = refs[&format!("{name}.image_grid_thw")]
            .to_vec2::<i64>()
            .expect("grids");
        let got_grids: Vec<Vec<i64>> = processed
            .iter()
            .map(|p| p.grid.iter().map(|&g| g as i64).collect())
            .collect();
        assert_eq!(got_grids, grids, "{name}: grids");

        let prompt = glm.media_prompt(got_ids, media).expect("prompt");
        let positions = prompt.positions.clone().expect("positions");
        let want_pos = refs[&format!("{name}.positions")]
            .to_vec2::<i64>()
            .expect("positions");
        for (axis, (got, want)) in positions.rows.iter().zip(&want_pos).enumerate() {
            let got: Vec<i64> = got.iter().map(|&v| i64::from(v)).collect();
            assert_eq!(&got, want, "{name}: position row {axis}");
        }
        let delta = refs[&format!("{name}.rope_delta")]
            .to_vec1::<i64>()
            .expect("delta")[0];
        assert_eq!(positions.rope_delta(), delta, "{name}: rope delta");

        let embeds = prompt.embeds.clone().expect("embeds");
        let pos = positions.to_tensor(&Device::Cpu).expect("positions tensor");
        let mut cache = glm.model.new_cache();
        let logits = forward_logits(&glm.model, &mut cache, &embeds, &pos, LogitsSelection::All);
        let d = rel_max_diff(&logits, &refs[&format!("{name}.logits")]);
        eprintln!("{name}: {} tokens, logits rel diff {d:e}", prompt.ids.len());
        assert!(d <= TOL, "{name}: logits differ (rel {d:e})");

        let params = GenerationParams::greedy(16, vec![]);
        let out = generate(&glm.model, &prompt, &params, None, &mut |_| Flow::Continue)
            .expect("generate");
        assert_eq!(out.finish, FinishReason::Length);
        assert_eq!(
            out.tokens,
            ids(&refs[&format!("{name}.greedy")]),
            "{name}: greedy"
        );
    }
}

#[test]
fn prepare_images_runs_processor_tower_and_merge_in_one_call() {
    let glm = load_glm();
    let img = image::open(corpus("charts/vegalite_layer_falkensee.png")).expect("decodes");
    let messages = [ChatMessage::user_with_images(1, "Describe the chart.")];
    let (prompt, processed) = glm
        .prepare_images(&messages, ChatOptions::default(), &[img])
        .expect("prepares");
    let refs = refs();
    assert_eq!(prompt.ids, ids(&refs["one.input_ids"]));
    assert_eq!(processed[0].original_size, (706, 347));
    // A prompt whose placeholders do not match the images is an error, not a panic.
    let two = [ChatMessage::user_with_images(2, "x")];
    let media = Media {
        images: &processed,
        videos: &[],
    };
    assert!(glm
        .encode_with_media(&two, ChatOptions::default(), media)
        .is_err());
}

#[test]
fn load_checks_give_clear_errors_and_cuda_falls_back_to_cpu() {
    let vcfg = vision_config();
    let missing = VisionOptions::new(fixture("tiny").join("nope.onnx"), onnxruntime_lib());
    let e = VisionTower::load(&missing, &vcfg).expect_err("missing graph");
    assert!(e.to_string().contains("export_vision_onnx.py"), "{e}");

    let mut other = vcfg.clone();
    other.out_hidden_size = 128;
    let opts = VisionOptions::new(fixture("tiny").join("vision.onnx"), onnxruntime_lib());
    let e = VisionTower::load(&opts, &other).expect_err("mismatched config");
    assert!(e.to_string().contains("out_hidden_size"), "{e}");

    let not_vision = VisionOptions::new(fixture("tiny").join("config.json"), onnxruntime_lib());
    assert!(VisionTower::load(&not_vision, &vcfg).is_err());

    let mut cuda = opts.clone();
    cuda.device = ExecutionDevice::Cuda { device_id: 0 };
    let t = VisionTower::load(&cuda, &vcfg).expect("falls back");
    assert_eq!(t.provider(), "cpu");
}

#[test]
fn video_frames_match_transformers_end_to_end() {
    use folio_glm45v::chat::{Content, ContentPart};
    use folio_glm45v::processor::resize::to_rgb_over_white;
    use folio_glm45v::processor::video::{
        process_video, sample_frame_indices, VideoMetadata, VIDEO_FPS, VIDEO_MAX_DURATION,
        VIDEO_MAX_PIXELS,
    };

    let meta = json("tiny/video_reference.json");
    let refs = candle_core::safetensors::load(
        fixture("tiny").join("video_reference.safetensors"),
        &Device::Cpu,
    )
    .expect("video reference loads");
    let as_usize = |v: &serde_json::Value| v.as_u64().expect("int") as usize;
    for case in meta["sampling"].as_array().expect("sampling") {
        let m = VideoMetadata {
            total_frames: as_usize(&case["total_frames"]),
            fps: case["fps"].as_f64().expect("fps"),
            duration: case["duration"].as_f64(),
        };
        let want: Vec<usize> = case["indices"]
            .as_array()
            .expect("indices")
            .iter()
            .map(as_usize)
            .collect();
        let got = sample_frame_indices(&m, VIDEO_FPS, VIDEO_MAX_DURATION).expect("samples");
        assert_eq!(got, want, "sampling {m:?}");
    }

    let clip = &meta["clip"];
    let page = to_rgb_over_white(
        &image::open(corpus(clip["source"].as_str().expect("source"))).expect("decodes"),
    );
    let frames: Vec<image::DynamicImage> = clip["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| {
            let (x, y) = (as_usize(&w[0]) as u32, as_usize(&w[1]) as u32);
            let crop = image::imageops::crop_imm(&page, x, y, 84, 56).to_image();
            image::DynamicImage::ImageRgb8(crop)
        })
        .collect();
    let indices: Vec<usize> = clip["indices"]
        .as_array()
        .expect("indices")
        .iter()
        .map(as_usize)
        .collect();
    let glm = load_glm();
    let fps = clip["fps"].as_f64().expect("fps");
    let video = process_video(
        &glm.processor.config,
        &frames,
        &indices,
        fps,
        VIDEO_MAX_PIXELS,
    )
    .expect("video processes");
    let grid: Vec<usize> = clip["grid"]
        .as_array()
        .expect("grid")
        .iter()
        .map(as_usize)
        .collect();
    assert_eq!(video.grid.to_vec(), grid);
    let want_ts: Vec<f64> = clip["timestamps"]
        .as_array()
        .expect("timestamps")
        .iter()
        .map(|v| v.as_f64().expect("ts"))
        .collect();
    assert_eq!(video.timestamps, want_ts);
    let pv = rows_tensor(&video.pixel_values, glm.processor.config.patch_dim());
    let d = rel_max_diff(&pv, &refs["video.pixel_values"]);
    assert!(d <= 1e-6, "video pixel values differ (rel {d:e})");

    let tower = glm.vision.as_ref().expect("tower");
    let rows = tower
        .run(&video.pixel_values, &[video.grid])
        .expect("embeds");
    let d = rel_max_diff(&rows_tensor(&rows, 64), &refs["video.embeddings"]);
    eprintln!("video: embeddings rel diff {d:e}");
    assert!(d <= TOL, "video embeddings differ (rel {d:e})");

    let messages = [ChatMessage {
        role: "user".into(),
        content: Content::Parts(vec![
            ContentPart::Video,
            ContentPart::Text {
                text: clip["question"].as_str().expect("question").into(),
            },
        ]),
        reasoning_content: None,
    }];
    let videos = [video];
    let media = Media {
        images: &[],
        videos: &videos,
    };
    let got_ids = glm
        .encode_with_media(&messages, ChatOptions::default(), media)
        .expect("encodes");
    assert_eq!(got_ids, ids(&refs["video.input_ids"]), "video prompt ids");
    let types: Vec<i64> = mm_token_type_ids(&got_ids, &glm.special)
        .into_iter()
        .map(i64::from)
        .collect();
    assert_eq!(
        types,
        refs["video.mm_token_type_ids"]
            .to_vec1::<i64>()
            .expect("types")
    );
    let prompt = glm.media_prompt(got_ids, media).expect("prompt");
    let positions = prompt.positions.clone().expect("positions");
    let want_pos = refs["video.positions"].to_vec2::<i64>().expect("positions");
    for (got, want) in positions.rows.iter().zip(&want_pos) {
        let got: Vec<i64> = got.iter().map(|&v| i64::from(v)).collect();
        assert_eq!(&got, want, "video positions");
    }
    assert_eq!(
        positions.rope_delta(),
        refs["video.rope_delta"].to_vec1::<i64>().expect("delta")[0]
    );
    let embeds = prompt.embeds.clone().expect("embeds");
    let pos = positions.to_tensor(&Device::Cpu).expect("positions tensor");
    let mut cache = glm.model.new_cache();
    let logits = forward_logits(&glm.model, &mut cache, &embeds, &pos, LogitsSelection::All);
    let d = rel_max_diff(&logits, &refs["video.logits"]);
    eprintln!("video: {} tokens, logits rel diff {d:e}", prompt.ids.len());
    assert!(d <= TOL, "video logits differ (rel {d:e})");
}
