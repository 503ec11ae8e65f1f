//! Serde mirror of GLM-4.5V's `config.json` and `generation_config.json` (spec §1.1, §1.5, §4.3).
//!
//! Both spellings of the rotary settings are accepted: transformers 4.5x files (the zai-org repos)
//! put `rope_theta`, `partial_rotary_factor` and `rope_scaling.mrope_section` in `text_config`;
//! transformers v5 files use one `rope_parameters` object. [`TextConfig::rope`] resolves them.
//! Every special token id comes from these files, never from constants.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A JSON field that is either one value or a list (`eos_token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(id) => vec![*id],
            OneOrMany::Many(ids) => ids.clone(),
        }
    }
}

/// Rotary settings as spelled in either config generation (`rope_scaling` or `rope_parameters`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
}

/// `text_config` of GLM-4.5V (model_type `glm4v_moe_text`).
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub intermediate_size: usize,
    pub moe_intermediate_size: usize,
    pub n_routed_experts: usize,
    #[serde(default = "one")]
    pub n_shared_experts: usize,
    pub num_experts_per_tok: usize,
    #[serde(default = "one")]
    pub first_k_dense_replace: usize,
    #[serde(default = "one")]
    pub n_group: usize,
    #[serde(default = "one")]
    pub topk_group: usize,
    #[serde(default = "yes")]
    pub norm_topk_prob: bool,
    #[serde(default = "one_f64")]
    pub routed_scaling_factor: f64,
    #[serde(default = "yes")]
    pub attention_bias: bool,
    #[serde(default)]
    pub use_qk_norm: bool,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub num_nextn_predict_layers: Option<usize>,
}

/// Resolved rotary settings of the text decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSettings {
    pub theta: f64,
    /// Number of leading dims of each head that rotate (`head_dim * partial_rotary_factor`).
    pub rotary_dim: usize,
    /// Frequencies per axis (temporal, height, width); sums to `rotary_dim / 2`.
    pub mrope_section: [usize; 3],
}

fn one() -> usize {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "silu".to_string()
}
fn default_max_pos() -> usize {
    65536
}

impl TextConfig {
    /// Per-head dimension (explicit `head_dim`, else hidden / heads).
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Rotary settings from whichever spelling the file uses (v5 `rope_parameters` wins).
    pub fn rope(&self) -> Result<RopeSettings> {
        let params = self.rope_parameters.as_ref();
        let legacy = self.rope_scaling.as_ref();
        let theta = params
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .or(legacy.and_then(|p| p.rope_theta))
            .unwrap_or(10000.0);
        let factor = params
            .and_then(|p| p.partial_rotary_factor)
            .or(self.partial_rotary_factor)
            .or(legacy.and_then(|p| p.partial_rotary_factor))
            .unwrap_or(0.5);
        for p in [params, legacy].into_iter().flatten() {
            let kind = p.rope_type.as_deref().or(p.legacy_type.as_deref());
            if let Some(kind) = kind {
                if kind != "default" && kind != "mrope" {
                    return Err(Error::Config(format!(
                        "rope type `{kind}` is not supported (only `default` M-RoPE)"
                    )));
                }
            }
        }
        let head_dim = self.head_dim();
        let rotary_dim = (head_dim as f64 * factor) as usize;
        if rotary_dim == 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim {
            return Err(Error::Config(format!(
                "partial_rotary_factor {factor} gives rotary dim {rotary_dim} for head_dim {head_dim}"
            )));
        }
        let section = params
            .and_then(|p| p.mrope_section.clone())
            .or(legacy.and_then(|p| p.mrope_section.clone()))
            .unwrap_or_else(|| vec![8, 12, 12]);
        let mrope_section: [usize; 3] = section.as_slice().try_into().map_err(|_| {
            Error::Config(format!(
                "mrope_section must have 3 entries, got {section:?}"
            ))
        })?;
        if mrope_section.iter().sum::<usize>() * 2 != rotary_dim {
            return Err(Error::Config(format!(
                "mrope_section {mrope_section:?} must sum to rotary_dim/2 = {}",
                rotary_dim / 2
            )));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::Config(format!(
                "rope_theta {theta} must be positive"
            )));
        }
        Ok(RopeSettings {
            theta,
            rotary_dim,
            mrope_section,
        })
    }

    /// Checks shapes and routing parameters for consistency; called by [`ModelConfig::load`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("text_config: {m}")));
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("intermediate_size", self.intermediate_size),
            ("moe_intermediate_size", self.moe_intermediate_size),
            ("num_experts_per_tok", self.num_experts_per_tok),
            ("n_group", self.n_group),
            ("topk_group", self.topk_group),
        ];
        for (name, v) in positive {
            if v == 0 {
                return bad(format!("{name} must be > 0"));
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim() == 0 {
            return bad("head_dim must be > 0".into());
        }
        if self.hidden_act != "silu" {
            return bad(format!(
                "hidden_act `{}` is not supported (silu)",
                self.hidden_act
            ));
        }
        if self.use_qk_norm {
            return bad("use_qk_norm=true is not supported by GLM-4.5V".into());
        }
        if self.first_k_dense_replace < self.num_hidden_layers {
            if self.n_routed_experts == 0 {
                return bad("MoE layers need n_routed_experts > 0".into());
            }
            if self.n_routed_experts % self.n_group != 0 {
                return bad(format!(
                    "n_routed_experts {} is not a multiple of n_group {}",
                    self.n_routed_experts, self.n_group
                ));
            }
            if self.topk_group > self.n_group {
                return bad(format!(
                    "topk_group {} > n_group {}",
                    self.topk_group, self.n_group
                ));
            }
            let selectable = self.topk_group * (self.n_routed_experts / self.n_group);
            if self.num_experts_per_tok > selectable {
                return bad(format!(
                    "num_experts_per_tok {} > experts in the kept groups {selectable}",
                    self.num_experts_per_tok
                ));
            }
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!(
                "rms_norm_eps {} must be positive",
                self.rms_norm_eps
            ));
        }
        self.rope()?;
        Ok(())
    }
}

/// `vision_config` (used by the vision tower; parsed and kept here so the checkpoint is one object).
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub patch_size: usize,
    #[serde(default = "two")]
    pub temporal_patch_size: usize,
    #[serde(default = "two")]
    pub spatial_merge_size: usize,
    pub image_size: usize,
    #[serde(default = "three")]
    pub in_channels: usize,
    pub out_hidden_size: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub attention_bias: bool,
}

fn two() -> usize {
    2
}
fn three() -> usize {
    3
}

/// The weight part of a compressed-tensors config group.
#[derive(Debug, Clone, Deserialize)]
pub struct QuantArgs {
    pub num_bits: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub strategy: String,
    #[serde(default)]
    pub symmetric: Option<bool>,
    #[serde(default)]
    pub dynamic: Option<serde_json::Value>,
}

/// One compressed-tensors config group.
#[derive(Debug, Clone, Deserialize)]
pub struct QuantGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    pub weights: Option<QuantArgs>,
    #[serde(default)]
    pub input_activations: Option<QuantArgs>,
}

/// `quantization_config` of the FP8 checkpoint (spec §1.5).
#[derive(Debug, Clone, Deserialize)]
pub struct QuantizationConfig {
    pub quant_method: String,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub config_groups: BTreeMap<String, QuantGroup>,
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub weight_block_size: Option<Vec<usize>>,
}

/// The weight formats the loader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Plain bf16 / f16 / f32 tensors.
    Dense,
    /// F8E4M3 weights with a per-output-channel `weight_scale` [out, 1] (compressed-tensors).
    Fp8PerChannel,
}

impl QuantizationConfig {
    /// Maps the config to a supported format or explains why it is not supported.
    pub fn weight_format(&self) -> Result<WeightFormat> {
        if self.quant_method != "compressed-tensors" {
            let block = self
                .weight_block_size
                .as_ref()
                .map(|b| format!(" with weight_block_size {b:?}"))
                .unwrap_or_default();
            return Err(Error::UnsupportedQuantization(format!(
                "quant_method `{}`{block}; only compressed-tensors FP8 per-channel is supported",
                self.quant_method
            )));
        }
        if let Some(fmt) = &self.format {
            if fmt != "float-quantized" && fmt != "naive-quantized" {
                return Err(Error::UnsupportedQuantization(format!(
                    "compressed-tensors format `{fmt}`"
                )));
            }
        }
        if self.config_groups.is_empty() {
            return Err(Error::UnsupportedQuantization(
                "compressed-tensors config without config_groups".into(),
            ));
        }
        for (name, group) in &self.config_groups {
            let w = group.weights.as_ref().ok_or_else(|| {
                Error::UnsupportedQuantization(format!("group `{name}` has no weights scheme"))
            })?;
            if w.num_bits != 8 || w.kind != "float" || w.strategy != "channel" {
                return Err(Error::UnsupportedQuantization(format!(
                    "group `{name}`: {}-bit {} weights with strategy `{}` (need 8-bit float, channel)",
                    w.num_bits, w.kind, w.strategy
                )));
            }
        }
        Ok(WeightFormat::Fp8PerChannel)
    }
}

/// Top-level `config.json` of `Glm4vMoeForConditionalGeneration`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    pub text_config: TextConfig,
    pub vision_config: Option<VisionConfig>,
    pub image_token_id: u32,
    #[serde(default)]
    pub video_token_id: Option<u32>,
    pub image_start_token_id: u32,
    pub image_end_token_id: u32,
    #[serde(default)]
    pub video_start_token_id: Option<u32>,
    #[serde(default)]
    pub video_end_token_id: Option<u32>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub quantization_config: Option<QuantizationConfig>,
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let cfg: ModelConfig = read_json(path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Consistency checks across sections.
    pub fn validate(&self) -> Result<()> {
        if let Some(mt) = &self.model_type {
            if mt != "glm4v_moe" {
                return Err(Error::Config(format!("model_type `{mt}` is not glm4v_moe")));
            }
        }
        self.text_config.validate()?;
        let vocab = self.text_config.vocab_size as u32;
        let ids = [
            ("image_token_id", Some(self.image_token_id)),
            ("video_token_id", self.video_token_id),
            ("image_start_token_id", Some(self.image_start_token_id)),
            ("image_end_token_id", Some(self.image_end_token_id)),
            ("video_start_token_id", self.video_start_token_id),
            ("video_end_token_id", self.video_end_token_id),
            ("pad_token_id", self.text_config.pad_token_id),
        ];
        for (name, id) in ids {
            if let Some(id) = id {
                if id >= vocab {
                    return Err(Error::Config(format!(
                        "{name} {id} is outside the vocabulary ({vocab})"
                    )));
                }
            }
        }
        for id in self.eos_token_ids() {
            if id >= vocab {
                return Err(Error::Config(format!(
                    "eos_token_id {id} is outside the vocabulary ({vocab})"
                )));
            }
        }
        if let Some(v) = &self.vision_config {
            if v.out_hidden_size != self.text_config.hidden_size {
                return Err(Error::Config(format!(
                    "vision out_hidden_size {} != text hidden_size {}",
                    v.out_hidden_size, self.text_config.hidden_size
                )));
            }
        }
        self.weight_format()?;
        Ok(())
    }

    /// The weight format announced by `quantization_config` (dense when absent).
    pub fn weight_format(&self) -> Result<WeightFormat> {
        match &self.quantization_config {
            None => Ok(WeightFormat::Dense),
            Some(q) => q.weight_format(),
        }
    }

    /// End-of-sequence ids from `text_config` (generation_config may override).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.text_config
            .eos_token_id
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default()
    }
}

/// `generation_config.json`: stop ids and the checkpoint's sampling defaults.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub repetition_penalty: Option<f64>,
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
}

impl GenerationConfig {
    /// Reads `generation_config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        read_json(path)
    }
}

/// Reads a JSON file into `T` with errors that name the file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(extra: serde_json::Value) -> TextConfig {
        let mut base = serde_json::json!({
            "vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 96,
            "moe_intermediate_size": 32, "n_routed_experts": 16, "num_experts_per_tok": 4,
            "n_group": 4, "topk_group": 2
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).expect("test config parses")
    }

    #[test]
    fn both_rope_spellings_resolve_identically() {
        let v5 = text(
            serde_json::json!({"rope_parameters": {"rope_type": "default",
            "rope_theta": 10000.0, "partial_rotary_factor": 0.5, "mrope_section": [2, 3, 3]}}),
        );
        let v4 = text(
            serde_json::json!({"rope_theta": 10000.0, "partial_rotary_factor": 0.5,
            "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3]}}),
        );
        let a = v5.rope().expect("v5 rope");
        assert_eq!(a, v4.rope().expect("v4 rope"));
        assert_eq!(a.rotary_dim, 16);
        assert_eq!(a.mrope_section, [2, 3, 3]);
    }

    #[test]
    fn bad_section_and_routing_are_rejected() {
        let c = text(serde_json::json!({"rope_parameters": {"mrope_section": [2, 3, 4]}}));
        let e = c.validate().expect_err("section sum");
        assert!(e.to_string().contains("mrope_section"), "{e}");
        let c = text(serde_json::json!({"n_group": 3,
            "rope_parameters": {"mrope_section": [2, 3, 3]}}));
        assert!(c
            .validate()
            .expect_err("groups")
            .to_string()
            .contains("n_group"));
        let c = text(serde_json::json!({"num_key_value_heads": 3,
            "rope_parameters": {"mrope_section": [2, 3, 3]}}));
        assert!(c.validate().is_err());
    }

    #[test]
    fn block_fp8_is_reported_as_unsupported() {
        let q: QuantizationConfig = serde_json::from_value(serde_json::json!({
            "quant_method": "fp8", "weight_block_size": [128, 128]}))
        .expect("parses");
        let e = q.weight_format().expect_err("block fp8");
        assert!(e.to_string().contains("weight_block_size"), "{e}");
    }
}
