//! GLM-4.5V's vision tower in ONNX Runtime: the graph written by
//! `workers/glm45v/scripts/export_vision_onnx.py`, one session created at load and reused.
//!
//! The session runs on the CPU execution provider by default; [`ExecutionDevice::Cuda`] asks for
//! the CUDA execution provider and falls back to the CPU with one warning when its library
//! (`libonnxruntime_providers_cuda.so` beside `libonnxruntime.so`) is absent or fails to register.
//! Input and output names, the graph's format tag and its shape metadata are checked against the
//! checkpoint's `vision_config` at load, so a mismatched export fails with a clear message.
//!
//! ONNX Runtime is loaded once per process through `folio_onnx::onnxruntime_environment` (one
//! environment per process is all ort allows), which also builds the session and picks the
//! execution provider. Images are packed into as few calls as the
//! patch budget allows; inside a call each image attends only to itself (segment ids).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use folio_onnx::{build_session, session_on_device, SessionSettings};
use ort::session::Session;
use ort::value::TensorRef;

use crate::checkpoint::config::VisionConfig;
use crate::error::{Error, Result};
use crate::processor::{GridThw, ProcessedImage};
use crate::vision::inputs::{VisionGeometry, POS_TAPS};

/// Format tag the export script writes into the graph's metadata.
pub const ONNX_FORMAT: &str = "folio-glm45v-vision/1";
/// Graph inputs, in the export's order.
pub const INPUT_NAMES: [&str; 6] = [
    "patches",
    "rope_cos",
    "rope_sin",
    "pos_idx",
    "pos_w",
    "segment_ids",
];
/// Graph output.
pub const OUTPUT_NAME: &str = "embeddings";
/// Where the tower runs (CPU, or CUDA with a CPU fallback), and the CUDA provider's file name.
pub use folio_onnx::{ExecutionDevice, CUDA_PROVIDER_LIB};

/// How to load the tower.
#[derive(Debug, Clone)]
pub struct VisionOptions {
    /// The exported graph (`vision.onnx`; external weights sit beside it).
    pub onnx_path: PathBuf,
    /// `libonnxruntime.so.1.31.1`.
    pub onnxruntime_lib: PathBuf,
    pub device: ExecutionDevice,
    /// Intra-op threads of the CPU provider (0 = all cores).
    pub intra_threads: usize,
    /// Images are packed into one call while their patches sum to at most this (an image larger
    /// than the budget runs alone). Attention memory grows with the square of a call's patches.
    pub max_patches_per_call: usize,
}

impl VisionOptions {
    /// CPU defaults for `onnx_path` with the runtime library at `onnxruntime_lib`.
    pub fn new(onnx_path: impl Into<PathBuf>, onnxruntime_lib: impl Into<PathBuf>) -> Self {
        Self {
            onnx_path: onnx_path.into(),
            onnxruntime_lib: onnxruntime_lib.into(),
            device: ExecutionDevice::Cpu,
            intra_threads: 0,
            max_patches_per_call: 8192,
        }
    }
}

/// Shape metadata of an export, read from the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxVisionMeta {
    /// "fp32" or "fp16".
    pub dtype: String,
    pub head_dim: usize,
    pub out_hidden_size: usize,
    pub patch_dim: usize,
    pub geometry: VisionGeometry,
}

/// Vision embeddings of several images, in prompt order.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionEmbeddings {
    /// [Σ tokens, hidden] row-major f32.
    pub rows: Vec<f32>,
    pub hidden: usize,
    /// LLM tokens per image (prompt order).
    pub tokens_per_image: Vec<usize>,
}

impl VisionEmbeddings {
    /// Total number of rows.
    pub fn len(&self) -> usize {
        self.tokens_per_image.iter().sum()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded vision tower.
#[derive(Debug)]
pub struct VisionTower {
    session: Mutex<Session>,
    meta: OnnxVisionMeta,
    provider: &'static str,
    max_patches_per_call: usize,
}

fn meta_usize(session: &Session, key: &str, path: &Path) -> Result<usize> {
    let meta = session
        .metadata()
        .map_err(|e| Error::Vision(format!("{}: metadata: {e}", path.display())))?;
    meta.custom(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::Vision(format!(
                "{}: metadata `{key}` missing or not a number (export it with scripts/export_vision_onnx.py)",
                path.display()
            ))
        })
}

impl VisionTower {
    /// Loads the graph, checks it against `vision` (the checkpoint's `vision_config`) and creates
    /// the session on the requested device.
    pub fn load(opts: &VisionOptions, vision: &VisionConfig) -> Result<Self> {
        let path = &opts.onnx_path;
        if !path.is_file() {
            return Err(Error::Vision(format!(
                "{} not found: export it with `python workers/glm45v/scripts/export_vision_onnx.py MODEL_DIR`",
                path.display()
            )));
        }
        let env = folio_onnx::onnxruntime_environment(&opts.onnxruntime_lib)
            .map_err(|e| Error::Vision(e.to_string()))?;
        let (session, provider) = session_on_device(
            &opts.onnxruntime_lib,
            opts.device,
            "the vision tower",
            |cuda| Self::session(&env, opts, cuda),
        )?;
        let meta = Self::check(&session, path, vision)?;
        tracing::info!(path = %path.display(), provider, dtype = %meta.dtype, "vision tower loaded");
        Ok(Self {
            session: Mutex::new(session),
            meta,
            provider,
            max_patches_per_call: opts.max_patches_per_call.max(1),
        })
    }

    fn session(
        env: &ort::environment::Environment,
        opts: &VisionOptions,
        cuda: Option<i32>,
    ) -> Result<Session> {
        let threads = if opts.intra_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.intra_threads
        };
        let settings = SessionSettings {
            intra_threads: threads,
            inter_threads: None,
            cuda_device: cuda,
        };
        build_session(env, &opts.onnx_path, &settings)
            .map_err(|e| Error::Vision(format!("{}: {e}", opts.onnx_path.display())))
    }

    /// Input/output names, format tag and shapes against the checkpoint's vision config.
    fn check(session: &Session, path: &Path, vision: &VisionConfig) -> Result<OnnxVisionMeta> {
        let bad = |m: String| Err(Error::Vision(format!("{}: {m}", path.display())));
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if inputs != INPUT_NAMES {
            return bad(format!(
                "graph inputs are {inputs:?}, expected {INPUT_NAMES:?} (re-export with scripts/export_vision_onnx.py)"
            ));
        }
        if !session.outputs().iter().any(|o| o.name() == OUTPUT_NAME) {
            let outs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            return bad(format!(
                "graph outputs are {outs:?}, expected `{OUTPUT_NAME}`"
            ));
        }
        let meta = session
            .metadata()
            .map_err(|e| Error::Vision(format!("{}: metadata: {e}", path.display())))?;
        let format = meta.custom("folio_format").unwrap_or_default();
        if format != ONNX_FORMAT {
            return bad(format!(
                "format tag `{format}`, expected `{ONNX_FORMAT}` (not exported by Folio's script?)"
            ));
        }
        let dtype = meta.custom("dtype").unwrap_or_else(|| "fp32".into());
        drop(meta);
        let head_dim = meta_usize(session, "head_dim", path)?;
        let out_hidden = meta_usize(session, "out_hidden_size", path)?;
        let hidden = meta_usize(session, "hidden_size", path)?;
        let pos_side = meta_usize(session, "pos_side", path)?;
        let merge = meta_usize(session, "spatial_merge_size", path)?;
        let patch = meta_usize(session, "patch_size", path)?;
        let tps = meta_usize(session, "temporal_patch_size", path)?;
        let chans = meta_usize(session, "in_channels", path)?;
        let want = [
            ("hidden_size", hidden, vision.hidden_size),
            (
                "head_dim",
                head_dim,
                vision.hidden_size / vision.num_heads.max(1),
            ),
            ("out_hidden_size", out_hidden, vision.out_hidden_size),
            (
                "pos_side",
                pos_side,
                vision.image_size / vision.patch_size.max(1),
            ),
            ("spatial_merge_size", merge, vision.spatial_merge_size),
            ("patch_size", patch, vision.patch_size),
            ("temporal_patch_size", tps, vision.temporal_patch_size),
            ("in_channels", chans, vision.in_channels),
        ];
        for (name, got, expected) in want {
            if got != expected {
                return bad(format!(
                    "{name} is {got} in the graph but {expected} in config.json: the export belongs to another checkpoint"
                ));
            }
        }
        Ok(OnnxVisionMeta {
            dtype,
            head_dim,
            out_hidden_size: out_hidden,
            patch_dim: chans * tps * patch * patch,
            geometry: VisionGeometry {
                head_dim,
                merge_size: merge,
                pos_side,
                rope_theta: 10000.0,
            },
        })
    }

    /// The graph's metadata.
    pub fn meta(&self) -> &OnnxVisionMeta {
        &self.meta
    }

    /// The execution provider the session runs on ("cpu" or "cuda").
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Embeds `images` (prompt order), packing them into calls of at most
    /// `max_patches_per_call` patches.
    pub fn embed(&self, images: &[ProcessedImage]) -> Result<VisionEmbeddings> {
        let merge2 = self.meta.geometry.merge_size.pow(2);
        let hidden = self.meta.out_hidden_size;
        let mut rows = Vec::new();
        let mut start = 0;
        while start < images.len() {
            let mut end = start + 1;
            let mut patches = images[start].num_patches();
            while end < images.len()
                && patches + images[end].num_patches() <= self.max_patches_per_call
            {
                patches += images[end].num_patches();
                end += 1;
            }
            let group = &images[start..end];
            let grids: Vec<GridThw> = group.iter().map(|i| i.grid).collect();
            let mut pixels = Vec::with_capacity(patches * self.meta.patch_dim);
            for img in group {
                pixels.extend_from_slice(&img.pixel_values);
            }
            rows.extend(self.run(&pixels, &grids)?);
            start = end;
        }
        Ok(VisionEmbeddings {
            rows,
            hidden,
            tokens_per_image: images.iter().map(|i| i.num_patches() / merge2).collect(),
        })
    }

    /// One call on packed `pixel_values` of `grids` → [Σ N/merge², out_hidden] f32.
    pub fn run(&self, pixel_values: &[f32], grids: &[GridThw]) -> Result<Vec<f32>> {
        let inputs = self.meta.geometry.inputs(grids)?;
        let n = inputs.patches;
        let dim = self.meta.patch_dim;
        if n == 0 || pixel_values.len() != n * dim {
            return Err(Error::InvalidInput(format!(
                "{} pixel values for {n} patches of {dim} (grids {grids:?})",
                pixel_values.len()
            )));
        }
        let hd = self.meta.head_dim;
        let err = |e: ort::Error| Error::Vision(e.to_string());
        let feeds = ort::inputs![
            "patches" => TensorRef::from_array_view(([n, dim], pixel_values)).map_err(err)?,
            "rope_cos" => TensorRef::from_array_view(([n, hd], inputs.rope_cos.as_slice())).map_err(err)?,
            "rope_sin" => TensorRef::from_array_view(([n, hd], inputs.rope_sin.as_slice())).map_err(err)?,
            "pos_idx" => TensorRef::from_array_view(([n, POS_TAPS], inputs.pos_idx.as_slice())).map_err(err)?,
            "pos_w" => TensorRef::from_array_view(([n, POS_TAPS], inputs.pos_w.as_slice())).map_err(err)?,
            "segment_ids" => TensorRef::from_array_view(([n], inputs.segment_ids.as_slice())).map_err(err)?,
        ];
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(feeds).map_err(err)?;
        let value = outputs
            .get(OUTPUT_NAME)
            .ok_or_else(|| Error::Vision(format!("output `{OUTPUT_NAME}` missing")))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
        let want = [
            (n / self.meta.geometry.merge_size.pow(2)) as i64,
            self.meta.out_hidden_size as i64,
        ];
        if **shape != want {
            return Err(Error::Vision(format!(
                "output shape {:?}, expected {want:?}",
                &**shape
            )));
        }
        Ok(data.to_vec())
    }
}
