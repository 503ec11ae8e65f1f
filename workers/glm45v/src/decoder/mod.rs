//! The text decoder (GLM-4.5-Air backbone) in candle: 3-D M-RoPE, grouped-query attention with
//! its CUDA kernels, the MoE block (router, routed and shared experts), decoder layers, the KV
//! cache, the linear layers in the checkpoint's weight format (dense or FP8), and the model that
//! stacks them with the embedding and `lm_head`; the same decoder split across ranks (tensor and
//! expert parallel, `parallel/`).

pub mod attention;
pub mod kv_cache;
pub mod layers;
pub mod linear;
pub mod moe;
pub mod mrope;
pub mod parallel;
pub mod plan;
pub mod text_model;
