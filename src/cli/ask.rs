//! `folio ask --model DIR [--thinking] [--draw OUT.png] IMAGE... "prompt"`: GLM-4.5V on images
//! with a free prompt, on this machine. Prints the answer (and the reasoning with `--thinking`)
//! and the boxes the answer marks, scaled to the first image's pixels; `--draw` writes that image
//! with the boxes drawn.
//!
//! DIR is a checkpoint directory (zai-org/GLM-4.5V layout) plus the vision tower exported by
//! `workers/glm45v/scripts/export_vision_onnx.py` (`DIR/vision.onnx` unless `--vision`).

use super::{CliError, Exit};
use crate::runtime::RuntimeLayout;
use anyhow::anyhow;
use clap::Args;
use folio_glm45v::chat::{ChatMessage, ChatOptions};
use folio_glm45v::generate::output::ParsedOutput;
use folio_glm45v::generate::{Decoding, Flow};
use folio_glm45v::model::{Glm45v, Precision};
use folio_glm45v::vision::onnx::{ExecutionDevice, VisionOptions};
use folio_workers::engines::glm45v::config::check_model_dir;
use image::{DynamicImage, ImageDecoder, ImageReader, Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct AskArgs {
    /// Checkpoint directory: config.json, tokenizer.json, safetensors weights, vision.onnx.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Images, then the prompt as the last argument.
    #[arg(required = true, num_args = 2.., value_name = "IMAGE... PROMPT")]
    inputs: Vec<String>,
    /// Let the model reason first and print the reasoning (default: answer directly).
    #[arg(long)]
    thinking: bool,
    /// Write the first image with the answer's boxes drawn on it (PNG).
    #[arg(long, value_name = "OUT.png")]
    draw: Option<PathBuf>,
    /// Exported vision tower (default DIR/vision.onnx).
    #[arg(long, value_name = "FILE")]
    vision: Option<PathBuf>,
    /// Run the vision tower on the CUDA execution provider (falls back to the CPU with a warning).
    #[arg(long)]
    cuda: bool,
    /// Decoder precision: auto (bf16 compute, FP8 checkpoints stay FP8), fp8, bf16 or f32.
    #[arg(long, default_value = "auto")]
    dtype: Precision,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 2048)]
    max_new_tokens: usize,
    /// Seed when the checkpoint samples (its generation_config.json decides).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Intra-op threads of the vision tower (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Decodes an image file and applies its EXIF orientation.
fn load_image(path: &Path) -> Result<DynamicImage, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut decoder = ImageReader::open(path)
        .map_err(|e| fail(&e))?
        .with_guessed_format()
        .map_err(|e| fail(&e))?
        .into_decoder()
        .map_err(|e| fail(&e))?;
    let orientation = decoder.orientation().map_err(|e| fail(&e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| fail(&e))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// The image with every pixel box of `parsed` drawn as a 3-pixel red frame.
fn draw_boxes(img: &DynamicImage, parsed: &ParsedOutput) -> RgbImage {
    let mut canvas = img.to_rgb8();
    let (w, h) = canvas.dimensions();
    for b in parsed.boxes.iter().flat_map(|s| &s.pixels) {
        let (x0, y0) = (b[0].min(b[2]).max(0.0), b[1].min(b[3]).max(0.0));
        let (x1, y1) = (b[0].max(b[2]).min(w as f32), b[1].max(b[3]).min(h as f32));
        for t in 0..3i32 {
            let (rw, rh) = ((x1 - x0) as i32 - 2 * t, (y1 - y0) as i32 - 2 * t);
            if rw > 0 && rh > 0 {
                let rect = Rect::at(x0 as i32 + t, y0 as i32 + t).of_size(rw as u32, rh as u32);
                draw_hollow_rect_mut(&mut canvas, rect, Rgb([230, 30, 30]));
            }
        }
    }
    canvas
}

pub fn run(args: AskArgs, runtime: &RuntimeLayout) -> Result<Exit, CliError> {
    let usage = |m: String| CliError::new(Exit::Usage, anyhow!(m));
    let (prompt, image_args) = args
        .inputs
        .split_last()
        .ok_or_else(|| usage("give at least one image and a prompt".into()))?;
    let vision_path = args
        .vision
        .clone()
        .unwrap_or_else(|| args.model.join("vision.onnx"));
    check_model_dir(&args.model, &vision_path).map_err(usage)?;
    runtime.check(&[runtime.onnxruntime()])?;
    let rejected = |m: String| CliError::new(Exit::InputRejected, anyhow!(m));
    let images = image_args
        .iter()
        .map(|p| load_image(Path::new(p)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(rejected)?;

    let model_err = |e: folio_glm45v::Error| {
        CliError::new(Exit::Usage, anyhow!("{}: {e}", args.model.display()))
    };
    let opts = args
        .dtype
        .load_options(&args.model, candle_core::Device::Cpu)
        .map_err(model_err)?;
    let mut glm = Glm45v::load(&args.model, &opts).map_err(model_err)?;
    let mut vopts = VisionOptions::new(&vision_path, runtime.onnxruntime());
    vopts.intra_threads = args.threads;
    if args.cuda {
        vopts.device = ExecutionDevice::Cuda { device_id: 0 };
    }
    glm.attach_vision(&vopts).map_err(model_err)?;

    let chat = ChatOptions {
        enable_thinking: args.thinking,
        ..ChatOptions::default()
    };
    let messages = [ChatMessage::user_with_images(images.len(), prompt.as_str())];
    let (input, processed) = glm
        .prepare_images(&messages, chat, &images)
        .map_err(|e| rejected(e.to_string()))?;
    let mut params = glm.default_params(args.seed);
    params.max_new_tokens = args.max_new_tokens;
    if let Decoding::Sample(_) = params.decoding {
        tracing::info!(
            "sampling as generation_config.json asks (seed {})",
            args.seed
        );
    }
    let size = processed.first().map(|p| p.original_size);
    let reply = glm
        .generate_text(&input, &params, size, &mut |_| Flow::Continue)
        .map_err(CliError::internal)?;
    let parsed = &reply.parsed;
    let mut out = std::io::stdout().lock();
    let mut print = |s: String| writeln!(out, "{s}").map_err(CliError::internal);
    if args.thinking {
        if let Some(r) = &parsed.reasoning {
            print(format!(
                "Reasoning{}:\n{r}\n",
                if parsed.reasoning_truncated {
                    " (cut short)"
                } else {
                    ""
                }
            ))?;
        }
    }
    print(parsed.answer.clone())?;
    if !parsed.boxes.is_empty() {
        print(format!("\nBoxes (pixels of {}):", image_args[0]))?;
        for b in parsed.boxes.iter().flat_map(|s| &s.pixels) {
            print(format!(
                "  [{:.0}, {:.0}, {:.0}, {:.0}]",
                b[0], b[1], b[2], b[3]
            ))?;
        }
    }
    tracing::info!(
        prompt_tokens = reply.generation.prompt_tokens,
        new_tokens = reply.generation.tokens.len(),
        prefill_s = reply.generation.prefill_secs,
        decode_s = reply.generation.decode_secs,
        "generated"
    );
    if let Some(path) = &args.draw {
        draw_boxes(&images[0], parsed)
            .save(path)
            .map_err(|e| CliError::internal(anyhow!("{}: {e}", path.display())))?;
        eprintln!(
            "folio: wrote {} ({} boxes)",
            path.display(),
            parsed.boxes.iter().map(|b| b.pixels.len()).sum::<usize>()
        );
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_glm45v::generate::output::parse_output;

    #[test]
    fn boxes_are_drawn_in_pixels_of_the_image() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(200, 100, Rgb([255, 255, 255])));
        let parsed = parse_output(
            "<|begin_of_box|>[100,200,500,800]<|end_of_box|>",
            Some((200, 100)),
        );
        let out = draw_boxes(&img, &parsed);
        // Box in pixels: x 20..100, y 20..80; its top-left corner is red, the centre stays white.
        assert_eq!(out.get_pixel(20, 20).0, [230, 30, 30]);
        assert_eq!(out.get_pixel(60, 50).0, [255, 255, 255]);
    }

    #[test]
    fn an_incomplete_model_directory_names_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("write");
        let e =
            check_model_dir(dir.path(), &dir.path().join("vision.onnx")).expect_err("incomplete");
        assert!(
            e.contains("tokenizer.json")
                && e.contains("model.safetensors")
                && e.contains("export_vision_onnx.py"),
            "{e}"
        );
        let e =
            check_model_dir(Path::new("/nonexistent/glm"), Path::new("/x")).expect_err("missing");
        assert!(e.contains("does not exist"), "{e}");
    }
}
