//! NVRTC compilation shared by the CUDA kernel files (feature `cuda`): each `.cu` source is
//! compiled once per process for the device's architecture, behind [`common.cu`](common.cu)'s
//! prelude (the raw-bf16 conversions every kernel file uses; NVRTC gets no headers here).

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::sys;
use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::cuda_backend::CudaDevice;

/// The prelude compiled in front of every kernel source.
const PRELUDE: &str = include_str!("common.cu");

/// A kernel source's PTX, or NVRTC's message, made on first use.
pub(crate) type PtxCell = OnceLock<Result<String, String>>;

/// NVRTC's virtual architecture for the device; `None` lets NVRTC pick its default.
pub(crate) fn arch_of(dev: &CudaDevice) -> Option<&'static str> {
    let stream = dev.cuda_stream();
    let ctx = stream.context();
    let major = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .ok()?;
    let minor = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .ok()?;
    Some(match (major, minor) {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

/// The PTX of `source` (after the prelude) for `dev`, compiled once into `cell`.
pub(crate) fn compile_once(
    cell: &'static PtxCell,
    source: &str,
    dev: &CudaDevice,
) -> Result<&'static str, String> {
    let compiled = cell.get_or_init(|| {
        let opts = CompileOptions {
            arch: arch_of(dev),
            options: vec!["--std=c++17".into()],
            ..Default::default()
        };
        compile_ptx_with_opts(format!("{PRELUDE}\n{source}"), opts)
            .map(|p| p.to_src())
            .map_err(|e| format!("{e:?}"))
    });
    compiled.as_deref().map_err(Clone::clone)
}
