//! CPU timings of the image processor and the ONNX vision tower, one JSON line on stdout.
//!
//! `cargo run --release -p folio-glm45v --example bench_vision -- --onnx FILE --ort LIB
//! [--threads N] [--repeats R] [--tower-image PNG] PNG...` times `ImageProcessor::process` (decoded
//! image in, pixel values out; transformers' default budget) on each PNG, and the tower on the
//! pixel values of `--tower-image` processed with the same budget. Medians after one warm-up.
//! Driven by `workers/glm45v/scripts/bench_vision.py`, which times transformers beside it.

use std::path::PathBuf;
use std::time::Instant;

use folio_glm45v::checkpoint::config::ModelConfig;
use folio_glm45v::processor::{ImageProcessor, PreprocessorConfig};
use folio_glm45v::vision::onnx::{VisionOptions, VisionTower};

struct Args {
    onnx: PathBuf,
    ort: PathBuf,
    config: PathBuf,
    threads: usize,
    repeats: usize,
    tower_image: Option<PathBuf>,
    images: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        onnx: PathBuf::new(),
        ort: PathBuf::new(),
        config: PathBuf::new(),
        threads: 2,
        repeats: 5,
        tower_image: None,
        images: Vec::new(),
    };
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--onnx" => a.onnx = val("--onnx")?.into(),
            "--ort" => a.ort = val("--ort")?.into(),
            "--config" => a.config = val("--config")?.into(),
            "--threads" => a.threads = val("--threads")?.parse().map_err(|e| format!("{e}"))?,
            "--repeats" => a.repeats = val("--repeats")?.parse().map_err(|e| format!("{e}"))?,
            "--tower-image" => a.tower_image = Some(val("--tower-image")?.into()),
            other => a.images.push(other.into()),
        }
    }
    if a.onnx.as_os_str().is_empty()
        || a.ort.as_os_str().is_empty()
        || a.config.as_os_str().is_empty()
    {
        return Err("--onnx, --ort and --config are required".into());
    }
    Ok(a)
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN) * 1e3
}

fn main() -> Result<(), String> {
    let a = parse_args()?;
    let proc = ImageProcessor::new(PreprocessorConfig::default()).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for path in &a.images {
        let img = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut times = Vec::new();
        let mut grid = [0; 3];
        for i in 0..=a.repeats {
            let t = Instant::now();
            let out = proc.process(&img).map_err(|e| e.to_string())?;
            if i > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
            grid = out.grid;
        }
        rows.push(serde_json::json!({
            "image": path.display().to_string(), "width": img.width(), "height": img.height(),
            "grid": grid, "ms": median_ms(times),
        }));
    }
    let mut tower_row = serde_json::Value::Null;
    if let Some(path) = &a.tower_image {
        let cfg = ModelConfig::load(&a.config).map_err(|e| e.to_string())?;
        let vcfg = cfg
            .vision_config
            .ok_or("config.json has no vision_config")?;
        let mut opts = VisionOptions::new(&a.onnx, &a.ort);
        opts.intra_threads = a.threads;
        let tower = VisionTower::load(&opts, &vcfg).map_err(|e| e.to_string())?;
        let img = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let processed = proc.process(&img).map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        let mut tokens = 0;
        for i in 0..=a.repeats {
            let t = Instant::now();
            let emb = tower
                .embed(std::slice::from_ref(&processed))
                .map_err(|e| e.to_string())?;
            if i > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
            tokens = emb.len();
        }
        tower_row = serde_json::json!({
            "image": path.display().to_string(), "patches": processed.num_patches(),
            "tokens": tokens, "ms": median_ms(times), "provider": tower.provider(),
        });
    }
    println!(
        "{}",
        serde_json::json!({"processor": rows, "tower": tower_row, "threads": a.threads})
    );
    Ok(())
}
