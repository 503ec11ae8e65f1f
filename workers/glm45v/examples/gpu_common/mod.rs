//! Helpers shared by the GPU examples (`gpu_parity`, `gpu_bench`): device choice with a clear
//! message when no driver is present, synchronised timing, medians, comparisons, JSON lines.
#![allow(dead_code)]

use std::io::Write;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

/// Boxed error of the examples (they are binaries; the library keeps its typed errors).
pub type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The CUDA device 0, or the CPU with `--cpu` (dry runs of the scripts' logic).
pub fn device(cpu: bool) -> AnyResult<Device> {
    if cpu {
        return Ok(Device::Cpu);
    }
    if !candle_core::utils::cuda_is_available() {
        return Err(
            "this binary was built without the `cuda` feature (scripts/gpu/build); use --cpu"
                .into(),
        );
    }
    let driver = ["/proc/driver/nvidia/version", "/dev/nvidiactl"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !driver {
        return Err(
            "no NVIDIA driver found (/proc/driver/nvidia, /dev/nvidiactl); use --cpu".into(),
        );
    }
    // candle panics rather than erroring when libcuda cannot be loaded.
    match std::panic::catch_unwind(|| Device::new_cuda(0)) {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(format!("cannot open CUDA device 0: {e}").into()),
        Err(_) => Err("opening CUDA device 0 panicked (libcuda.so.1 missing?)".into()),
    }
}

/// Runs `f` and returns (its value, seconds), synchronising the device before both clock reads.
pub fn timed<T>(dev: &Device, f: impl FnOnce() -> AnyResult<T>) -> AnyResult<(T, f64)> {
    dev.synchronize()?;
    let start = Instant::now();
    let v = f()?;
    dev.synchronize()?;
    Ok((v, start.elapsed().as_secs_f64()))
}

/// Median of a non-empty sample (0 for an empty one).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// (min, max) of a sample.
pub fn spread(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// max |a − b| / max(1, max |b|), as the CPU parity tests measure.
pub fn rel_max_diff(a: &Tensor, b: &Tensor) -> AnyResult<f64> {
    if a.dims() != b.dims() {
        return Err(format!("shape mismatch {:?} vs {:?}", a.dims(), b.dims()).into());
    }
    let a = host_f64(a)?;
    let b = host_f64(b)?;
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    if a.iter().any(|x| !x.is_finite()) {
        return Ok(f64::INFINITY);
    }
    Ok(diff / scale)
}

/// ‖a − b‖₂ / ‖b‖₂ (METHOD.md's relative error); ∞ when `a` holds a non-finite value.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> AnyResult<f64> {
    if a.dims() != b.dims() {
        return Err(format!("shape mismatch {:?} vs {:?}", a.dims(), b.dims()).into());
    }
    let a = host_f64(a)?;
    let b = host_f64(b)?;
    if a.iter().any(|x| !x.is_finite()) {
        return Ok(f64::INFINITY);
    }
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    Ok((num / den.max(f64::MIN_POSITIVE)).sqrt())
}

/// All values of `t` as f64 on the host.
pub fn host_f64(t: &Tensor) -> AnyResult<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

/// Appends JSON lines to a file (and echoes nothing; tables are printed separately).
pub struct JsonLines {
    file: Option<std::fs::File>,
}

impl JsonLines {
    /// Opens `path` for appending, or discards lines when `None`.
    pub fn open(path: Option<&str>) -> AnyResult<Self> {
        let file = match path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(Self { file })
    }

    /// Writes one JSON value as a line.
    pub fn write(&mut self, v: &serde_json::Value) -> AnyResult<()> {
        if let Some(f) = &mut self.file {
            writeln!(f, "{v}")?;
            f.flush()?;
        }
        Ok(())
    }
}

/// Simple `--flag value` parsing shared by the examples.
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    /// The process arguments after the program name.
    pub fn from_env() -> Self {
        Self {
            rest: std::env::args().skip(1).collect(),
        }
    }

    /// True (and consumed) when `--name` is present.
    pub fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    /// The value after `--name`, consumed.
    pub fn value(&mut self, name: &str) -> AnyResult<Option<String>> {
        match self.rest.iter().position(|a| a == name) {
            Some(i) if i + 1 < self.rest.len() => {
                let v = self.rest.remove(i + 1);
                self.rest.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(format!("{name} needs a value").into()),
            None => Ok(None),
        }
    }

    /// A parsed value after `--name`, or `default`.
    pub fn parsed<T: std::str::FromStr>(&mut self, name: &str, default: T) -> AnyResult<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.value(name)? {
            Some(v) => v.parse().map_err(|e| format!("{name}: {e}").into()),
            None => Ok(default),
        }
    }

    /// A comma-separated list after `--name`, or `default`.
    pub fn list(&mut self, name: &str, default: &[usize]) -> AnyResult<Vec<usize>> {
        match self.value(name)? {
            Some(v) => v
                .split(',')
                .map(|x| x.trim().parse().map_err(|e| format!("{name}: {e}").into()))
                .collect(),
            None => Ok(default.to_vec()),
        }
    }

    /// Errors on anything left unconsumed.
    pub fn finish(self) -> AnyResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected arguments {:?}", self.rest).into())
        }
    }
}

/// Keeps memory freed to the device's default pool (candle allocates with `cuMemAllocAsync`)
/// instead of handing it back to the driver at every synchronisation (release threshold 0),
/// so that steady-state allocations are pool hits.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub fn keep_pool_memory(dev: &Device) -> AnyResult<()> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let Device::Cuda(c) = dev else { return Ok(()) };
    let stream = c.cuda_stream();
    let ctx = stream.context();
    ctx.bind_to_thread()
        .map_err(|e| format!("bind context: {e:?}"))?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = u64::MAX;
    // SAFETY: driver calls with valid out-pointers on the device of the bound context; the
    // attribute value is a u64 as CU_MEMPOOL_ATTR_RELEASE_THRESHOLD requires.
    let (r1, r2) = unsafe {
        let r1 = sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device());
        let r2 = sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        );
        (r1, r2)
    };
    if r1 != sys::CUresult::CUDA_SUCCESS || r2 != sys::CUresult::CUDA_SUCCESS {
        return Err(format!("setting the pool release threshold: {r1:?} {r2:?}").into());
    }
    Ok(())
}

/// No pool to tune without CUDA.
#[cfg(not(feature = "cuda"))]
pub fn keep_pool_memory(_dev: &Device) -> AnyResult<()> {
    Ok(())
}

/// The default memory pool's (current, high-water mark) bytes in use and the device's
/// (free, total) bytes; candle allocates every tensor from that pool (`cuMemAllocAsync`), so
/// the high-water mark is the peak of everything allocated so far.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub fn device_memory(dev: &Device) -> AnyResult<Option<[u64; 4]>> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    let Device::Cuda(c) = dev else {
        return Ok(None);
    };
    let stream = c.cuda_stream();
    let ctx = stream.context();
    ctx.bind_to_thread()
        .map_err(|e| format!("bind context: {e:?}"))?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let (mut current, mut high) = (0u64, 0u64);
    // SAFETY: driver calls with valid out-pointers on the bound context's device; both
    // attributes are u64 values.
    let (r1, r2, r3) = unsafe {
        let r1 = sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device());
        let r2 = sys::cuMemPoolGetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
            (&mut current as *mut u64).cast(),
        );
        let r3 = sys::cuMemPoolGetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            (&mut high as *mut u64).cast(),
        );
        (r1, r2, r3)
    };
    if [r1, r2, r3]
        .iter()
        .any(|r| *r != sys::CUresult::CUDA_SUCCESS)
    {
        return Err(format!("reading the pool's usage: {r1:?} {r2:?} {r3:?}").into());
    }
    let (free, total) = result::mem_get_info().map_err(|e| format!("mem_get_info: {e:?}"))?;
    Ok(Some([current, high, free as u64, total as u64]))
}

/// No device memory without CUDA.
#[cfg(not(feature = "cuda"))]
pub fn device_memory(_dev: &Device) -> AnyResult<Option<[u64; 4]>> {
    Ok(None)
}

/// The process's peak resident host memory (`VmHWM` of /proc/self/status), bytes.
pub fn host_peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Seconds of `reps` device-to-device copies of `src` (bf16, contiguous) into one buffer
/// allocated once; `None` off CUDA.
#[cfg(feature = "cuda")]
pub fn memcpy_seconds(src: &Tensor, reps: usize) -> AnyResult<Option<Vec<f64>>> {
    let Device::Cuda(dev) = src.device() else {
        return Ok(None);
    };
    let stream = dev.cuda_stream();
    let (storage, layout) = src.storage_and_layout();
    let candle_core::Storage::Cuda(c) = &*storage else {
        return Ok(None);
    };
    let slice = c.as_cuda_slice::<half::bf16>()?;
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or("source is not contiguous")?;
    let view = slice.slice(a..b);
    let mut dst = stream
        .alloc_zeros::<half::bf16>(b - a)
        .map_err(|e| format!("alloc: {e:?}"))?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        stream.synchronize().map_err(|e| format!("sync: {e:?}"))?;
        let start = Instant::now();
        stream
            .memcpy_dtod(&view, &mut dst)
            .map_err(|e| format!("memcpy: {e:?}"))?;
        stream.synchronize().map_err(|e| format!("sync: {e:?}"))?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(Some(times))
}

/// No device copy without CUDA.
#[cfg(not(feature = "cuda"))]
pub fn memcpy_seconds(_src: &Tensor, _reps: usize) -> AnyResult<Option<Vec<f64>>> {
    Ok(None)
}

pub mod fused;

/// One decoder forward of `embeds` at `pos`, returning the last position's logits.
pub fn forward_last(
    model: &folio_glm45v::decoder::text_model::TextModel,
    embeds: &Tensor,
    pos: &Tensor,
    cache: &mut folio_glm45v::KvCache,
) -> AnyResult<Tensor> {
    use folio_glm45v::decoder::text_model::{DecoderInput, LogitsSelection, Record};
    let input = DecoderInput {
        embeds,
        positions: pos,
        logits: LogitsSelection::Last,
        record: Record::default(),
    };
    Ok(model.forward(input, cache)?.logits.ok_or("no logits")?)
}

/// The process exit of an example: success, or its error printed after its name.
pub fn exit_code(name: &str, result: AnyResult<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// 3-row M-RoPE positions of a page prompt: `pre` text tokens, an `h`×`w` merged image grid
/// (temporal row constant, height and width rows walking the grid), then `post` text tokens that
/// continue after the grid's largest position.
pub fn page_positions(
    pre: usize,
    h: usize,
    w: usize,
    post: usize,
) -> folio_glm45v::decoder::mrope::Positions3 {
    let mut rows: [Vec<u32>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for p in 0..pre as u32 {
        rows.iter_mut().for_each(|r| r.push(p));
    }
    let start = pre as u32;
    for r in 0..h as u32 {
        for c in 0..w as u32 {
            rows[0].push(start);
            rows[1].push(start + r);
            rows[2].push(start + c);
        }
    }
    let next = start + h.max(w) as u32;
    for p in 0..post as u32 {
        rows.iter_mut().for_each(|r| r.push(next + p));
    }
    folio_glm45v::decoder::mrope::Positions3 { rows }
}
