//! Checkpoint directory → memory-mapped safetensors → a candle `VarBuilder` (spec §1.3, §1.5).
//!
//! Accepts the zai-org layouts: `model.safetensors.index.json` + shards, or a single
//! `model.safetensors`. Tensors are converted to the compute dtype on load (bf16 / f16 / f32),
//! one tensor at a time straight from the mapped shard to the device (no whole-model host copy).
//! FP8 (compressed-tensors, per-output-channel): an `F8_E4M3` `X.weight` with its `X.weight_scale`
//! [out, 1] is either kept FP8 ([`Checkpoint::var_builder_fp8`]: the stored bytes go to the
//! device unchanged and the decoder's FP8 layers use them, `fp8.rs` describes the convention)
//! or dequantised on load, `W = w_fp8 · scale[row]`, into the compute dtype
//! ([`Checkpoint::var_builder`]). Lookups go through [`CheckpointBackend`], so a missing tensor
//! or a tensor of the wrong shape fails at load with its full name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::checkpoint::config::{read_json, QuantizationConfig};
use crate::checkpoint::fp8::KEEP_SUFFIX;
use crate::checkpoint::shard::{load_narrow, RankShard};
use crate::error::{Error, Result};

/// Name of the sharded-checkpoint index file.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

#[derive(Debug, Deserialize)]
struct Index {
    weight_map: std::collections::BTreeMap<String, String>,
}

/// An opened (memory-mapped) checkpoint directory.
#[derive(Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    files: Vec<PathBuf>,
    tensors: Arc<MmapedSafetensors>,
    /// Set by [`Checkpoint::sharded`]: lookups may ask for one rank's shard (`shard.rs`).
    shard: Option<RankShard>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("files", &self.files)
            .field("shard", &self.shard)
            .finish()
    }
}

impl Checkpoint {
    /// Finds the shards of `dir` (index first, else `model.safetensors`) and memory-maps them.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let files: Vec<PathBuf> = if index_path.is_file() {
            let index: Index = read_json(&index_path)?;
            let names: BTreeSet<&String> = index.weight_map.values().collect();
            if names.is_empty() {
                return Err(Error::Checkpoint(format!(
                    "{} lists no tensors",
                    index_path.display()
                )));
            }
            let mut files = Vec::with_capacity(names.len());
            for name in names {
                if name.contains('/') || name.contains("..") {
                    return Err(Error::Checkpoint(format!(
                        "{} names a shard outside the directory: {name}",
                        index_path.display()
                    )));
                }
                let path = dir.join(name);
                if !path.is_file() {
                    return Err(Error::Checkpoint(format!(
                        "shard {} listed in {INDEX_FILE} is missing",
                        path.display()
                    )));
                }
                files.push(path);
            }
            files
        } else if dir.join(SINGLE_FILE).is_file() {
            vec![dir.join(SINGLE_FILE)]
        } else {
            return Err(Error::Checkpoint(format!(
                "{} has neither {INDEX_FILE} nor {SINGLE_FILE}",
                dir.display()
            )));
        };
        let tensors = mmap_all(&files)?;
        tracing::debug!(dir = %dir.display(), shards = files.len(), "checkpoint mapped");
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            tensors: Arc::new(tensors),
            shard: None,
        })
    }

    /// The same checkpoint whose `VarBuilder`s hand out `shard`'s part of any tensor asked for
    /// with one dimension `world` times smaller than stored (`shard.rs`): what each rank of a
    /// tensor-/expert-parallel decoder loads. The mapping is shared, not copied.
    pub fn sharded(&self, shard: RankShard) -> Self {
        Self {
            shard: Some(shard),
            ..self.clone()
        }
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shard files, in index order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// True when a tensor of that exact name is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.get(name).is_ok()
    }

    /// A `VarBuilder` that yields tensors in `dtype` on `device`, dequantising FP8 weights.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(Error::InvalidInput(format!(
                "compute dtype {dtype:?} is not supported (bf16, f16, f32)"
            )));
        }
        Ok(self.builder(dtype, device, None))
    }

    /// Like [`Checkpoint::var_builder`], but every `F8_E4M3` weight whose module is not in
    /// `quant.ignore` stays FP8 on `device` (with its f32 scale) for the decoder's FP8 layers;
    /// everything else comes in `dtype` as before.
    pub fn var_builder_fp8(
        &self,
        dtype: DType,
        device: &Device,
        quant: Option<&QuantizationConfig>,
    ) -> Result<VarBuilder<'static>> {
        self.var_builder(dtype, device)?;
        let ignore: BTreeSet<String> = quant
            .map(|q| q.ignore.iter().cloned().collect())
            .unwrap_or_default();
        if let Some(re) = ignore.iter().find(|i| i.starts_with("re:")) {
            return Err(Error::UnsupportedQuantization(format!(
                "quantization_config.ignore entry `{re}`: regular-expression entries are not supported (exact module names are)"
            )));
        }
        Ok(self.builder(dtype, device, Some(Arc::new(ignore))))
    }

    fn builder(
        &self,
        dtype: DType,
        device: &Device,
        keep_fp8: Option<Arc<BTreeSet<String>>>,
    ) -> VarBuilder<'static> {
        let backend = CheckpointBackend {
            tensors: self.tensors.clone(),
            keep_fp8,
            shard: self.shard,
        };
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
    }

    /// Bytes the text decoder will hold on the device when loaded in `dtype`: stored F8_E4M3
    /// tensors count one byte per value when `keep_fp8` (else `dtype`'s size), their scales and
    /// the router f32, the rest `dtype`; the vision tower's tensors are not counted (it runs in
    /// ONNX Runtime). An estimate for the memory plan before anything is loaded.
    pub fn resident_estimate(&self, dtype: DType, keep_fp8: bool) -> u64 {
        self.tensors
            .tensors()
            .iter()
            .filter(|(name, _)| !name.starts_with("model.visual.") && !name.starts_with("visual."))
            .map(|(name, view)| {
                let elems: usize = view.shape().iter().product();
                let fp8 = DType::try_from(view.dtype()).ok() == Some(DType::F8E4M3);
                let per = if fp8 && keep_fp8 {
                    1
                } else if name.ends_with("_scale")
                    || name.ends_with("mlp.gate.weight")
                    || name.ends_with("e_score_correction_bias")
                {
                    4
                } else {
                    dtype.size_in_bytes()
                };
                (elems * per) as u64
            })
            .sum()
    }

    /// True when the checkpoint stores at least one `F8_E4M3` tensor.
    pub fn has_fp8(&self) -> bool {
        self.tensors
            .tensors()
            .iter()
            .any(|(_, v)| DType::try_from(v.dtype()).ok() == Some(DType::F8E4M3))
    }
}

#[allow(unsafe_code)]
fn mmap_all(files: &[PathBuf]) -> Result<MmapedSafetensors> {
    // SAFETY: the shards are mapped read-only and must not be truncated or rewritten while the
    // model is loaded; candle copies every tensor out of the mapping when it is loaded.
    let mapped = unsafe { MmapedSafetensors::multi(files) };
    mapped.map_err(|e| Error::Checkpoint(format!("cannot map safetensors shards: {e}")))
}

/// The `SimpleBackend` behind [`Checkpoint::var_builder`].
pub struct CheckpointBackend {
    tensors: Arc<MmapedSafetensors>,
    /// `Some(modules to leave alone)` when FP8 weights stay FP8 (`quantization_config.ignore`).
    keep_fp8: Option<Arc<BTreeSet<String>>>,
    /// The rank whose shards are handed out (`None`: whole tensors only).
    shard: Option<RankShard>,
}

impl CheckpointBackend {
    fn stored_fp8(&self, name: &str) -> bool {
        self.tensors
            .get(name)
            .is_ok_and(|t| DType::try_from(t.dtype()).ok() == Some(DType::F8E4M3))
    }

    /// Whether the stored tensor `name` stays FP8: FP8 kept, stored as F8_E4M3, and its module
    /// (`name` without `.weight`) not ignored.
    fn keeps(&self, name: &str) -> bool {
        let Some(ignore) = &self.keep_fp8 else {
            return false;
        };
        let module = name.strip_suffix(".weight").unwrap_or(name);
        self.stored_fp8(name) && !ignore.contains(module)
    }

    /// The stored tensor `name` on `dev` as stored, whole or (`split = Some(dim)`) this rank's
    /// chunk of `dim`, read from the mapping without the rest.
    fn raw(&self, name: &str, dev: &Device, split: Option<usize>) -> candle_core::Result<Tensor> {
        match (split, self.shard) {
            (Some(dim), Some(shard)) => {
                let view = self.tensors.get(name)?;
                let dtype = DType::try_from(view.dtype())?;
                load_narrow(view.data(), view.shape(), dtype, dim, shard, dev)
                    .map_err(|e| candle_core::Error::Msg(format!("sharding `{name}`: {e}")))
            }
            _ => self.tensors.load(name, dev),
        }
    }

    /// Loads `name` in `dtype` (whole, or this rank's chunk of dimension `split`).
    fn load(
        &self,
        name: &str,
        dtype: DType,
        dev: &Device,
        split: Option<usize>,
    ) -> candle_core::Result<Tensor> {
        if !self.stored_fp8(name) {
            return self.raw(name, dev, split)?.to_dtype(dtype);
        }
        if dtype == DType::F8E4M3 {
            // Kept FP8: the stored bytes, copied from the mapped shard to the device as they are.
            return self.raw(name, dev, split);
        }
        // FP8 is dequantised on the host and the result moved: candle 0.11.1's CUDA build failed
        // here with CUDA_ERROR_NOT_FOUND on the H200 (docs/gpu-notes.md).
        let host = Device::Cpu;
        let raw = self.raw(name, &host, split)?;
        // `X.weight` → `X.weight_scale`; the fused expert tensors `…_proj` → `…_proj_scale`.
        // The scale ([.., out, 1]) follows a split of any dimension but the input one.
        let scale_name = format!("{name}_scale");
        let scale_split = split.filter(|&d| d + 1 < raw.rank());
        let scale = match self.raw(&scale_name, &host, scale_split) {
            Ok(s) => s,
            Err(_) if self.tensors.get(&format!("{name}_scale_inv")).is_ok() => {
                candle_core::bail!(
                    "FP8 tensor `{name}` uses block scales (`{name}_scale_inv`), which are not supported"
                )
            }
            Err(_) => candle_core::bail!("FP8 tensor `{name}` has no `{scale_name}`"),
        };
        crate::checkpoint::fp8::dequantize_per_channel(&raw, &scale, dtype)
            .and_then(|w| w.to_device(dev))
            .map_err(|e| candle_core::Error::Msg(format!("dequantising `{name}`: {e}")))
    }
}

impl SimpleBackend for CheckpointBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let stored = self.tensors.get(name)?;
        let split = match self.shard {
            None if stored.shape() == s.dims() => None,
            Some(shard) => match shard.split_dim(stored.shape(), s.dims()) {
                Ok(split) => split,
                Err(why) => candle_core::bail!(
                    "tensor `{name}` in the checkpoint, rank {} of {}: {why}",
                    shard.rank,
                    shard.world
                ),
            },
            None => {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("tensor `{name}` in the checkpoint"),
                    expected: s,
                    got: stored.shape().into(),
                }
                .bt())
            }
        };
        self.load(name, dtype, dev, split)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dtype, dev, None)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match name.strip_suffix(KEEP_SUFFIX) {
            Some(stored) => self.keeps(stored),
            None => self.tensors.get(name).is_ok(),
        }
    }
}
