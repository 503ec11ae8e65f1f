// FP8 (E4M3, compressed-tensors per-output-channel) kernels of folio-glm45v (kernels/fp8.rs and
// decoder/moe/cuda.rs; compiled at run time with NVRTC behind kernels/common.cu's prelude).
//
//   fp8_gemv_*      decode W8A16: y[m, n] = T(s[n] · Σ_k e4m3(w[n, k]) · x[m, k] (+ b[n])): the
//                   weights are streamed once with 16-byte loads (16 values), widened in registers
//                   (`cvt.rn.f16x2.e4m3x2`, exact) and accumulated in f32 for up to FP8_MT rows of
//                   x at a time; the per-channel scale and the bias are applied once per output.
//   fp8_moe_gemv_*  the same inner loop over the (token, expert) pairs of moe_align's buckets,
//                   weights [E, n, k] with scales [E, n] (and the routing weight of each pair).
//   fp8_dequant_*   out[r, c] = T(e4m3(w[r, c]) · s[r]) (the prefill path's weight, on the fly).
//   fp8_fill_normal synthetic weights: e4m3(N(0, sigma²)) from a counter-based hash (splitmix64 +
//                   Box–Muller), no host data and no f32 temporary.
// sm_89+ (the e4m3 conversions); the crate asks NVRTC for the device's own architecture.

typedef unsigned char u8;
typedef unsigned long long u64;

__device__ __forceinline__ float h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// Four E4M3 bytes (little-endian in v: byte j is value j) → four floats, exactly.
__device__ __forceinline__ void e4m3x4(u32 v, float* f) {
    u32 lo, hi;
    asm("{\n\t.reg .b16 a, b;\n\tmov.b32 {a, b}, %2;\n\t"
        "cvt.rn.f16x2.e4m3x2 %0, a;\n\tcvt.rn.f16x2.e4m3x2 %1, b;\n\t}"
        : "=r"(lo), "=r"(hi)
        : "r"(v));
    f[0] = h2f((unsigned short)(lo & 0xffffu));
    f[1] = h2f((unsigned short)(lo >> 16));
    f[2] = h2f((unsigned short)(hi & 0xffffu));
    f[3] = h2f((unsigned short)(hi >> 16));
}

__device__ __forceinline__ void e4m3x16(const V16& v, float* f) {
    e4m3x4(v.a, f);
    e4m3x4(v.b, f + 4);
    e4m3x4(v.c, f + 8);
    e4m3x4(v.d, f + 12);
}

// Two floats → two E4M3 bytes (lo in the low byte), round to nearest even, saturating to ±448.
__device__ __forceinline__ u32 f2e4m3x2(float lo, float hi) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return (u32)r;
}

// 16 activations of type T starting at p (16-byte aligned) → floats.
template <typename T>
__device__ __forceinline__ void load16(const char* p, float* f) {
    constexpr int V = Elem<T>::N;
#pragma unroll
    for (int j = 0; j < 16 / V; ++j) Elem<T>::unpack(ld_cached(p + j * 16), f + j * V);
}

#define FP8_WARPS 8
#define FP8_RPW 2
#define FP8_MT 4

// One warp: FP8_RPW weight rows (row_bytes = k apart) × MT activation rows; acc in f32 (unscaled).
template <typename T, int MT>
__device__ __forceinline__ void fp8_tile(const char* wbase, int k, int rows,
                                         const char* const* xrow, float (*acc)[FP8_MT],
                                         int lane) {
    const int kv = k / 16;
#pragma unroll 2
    for (int c = lane; c < kv; c += 32) {
        float wf[FP8_RPW][16];
#pragma unroll
        for (int r = 0; r < FP8_RPW; ++r) {
            const int rr = r < rows ? r : 0;
            e4m3x16(ld_stream(wbase + (size_t)rr * k + (size_t)c * 16), wf[r]);
        }
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            float xf[16];
            load16<T>(xrow[i] + (size_t)c * 16 * sizeof(T), xf);
#pragma unroll
            for (int r = 0; r < FP8_RPW; ++r)
#pragma unroll
                for (int j = 0; j < 16; ++j) acc[r][i] = fmaf(wf[r][j], xf[j], acc[r][i]);
        }
    }
#pragma unroll
    for (int r = 0; r < FP8_RPW; ++r)
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                acc[r][i] += __shfl_xor_sync(0xffffffffu, acc[r][i], off);
}

template <typename T>
__device__ __forceinline__ void fp8_tile_n(int mt, const char* wbase, int k, int rows,
                                           const char* const* xrow, float (*acc)[FP8_MT],
                                           int lane) {
#pragma unroll
    for (int r = 0; r < FP8_RPW; ++r)
#pragma unroll
        for (int i = 0; i < FP8_MT; ++i) acc[r][i] = 0.0f;
    switch (mt) {
        case 1: fp8_tile<T, 1>(wbase, k, rows, xrow, acc, lane); break;
        case 2: fp8_tile<T, 2>(wbase, k, rows, xrow, acc, lane); break;
        case 3: fp8_tile<T, 3>(wbase, k, rows, xrow, acc, lane); break;
        default: fp8_tile<T, 4>(wbase, k, rows, xrow, acc, lane); break;
    }
}

// x [m, k] T, w [n, k] e4m3, scale [n] f32, bias [n] T or null → y [m, n] T.
// grid ceil(n / (FP8_WARPS · FP8_RPW)), block 32 · FP8_WARPS; k % 16 == 0, aligned rows.
template <typename T>
__device__ void fp8_gemv(const T* __restrict__ x, const u8* __restrict__ w,
                         const float* __restrict__ scale, const T* __restrict__ bias,
                         T* __restrict__ y, int m, int n, int k) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * FP8_WARPS + warp) * FP8_RPW;
    if (row0 >= n) return;
    const int rows = min(FP8_RPW, n - row0);
    const char* wbase = (const char*)(w + (size_t)row0 * k);
    float acc[FP8_RPW][FP8_MT];
    for (int t0 = 0; t0 < m; t0 += FP8_MT) {
        const int mt = min(FP8_MT, m - t0);
        const char* xrow[FP8_MT];
#pragma unroll
        for (int i = 0; i < FP8_MT; ++i) xrow[i] = (const char*)(x + (size_t)(t0 + min(i, mt - 1)) * k);
        fp8_tile_n<T>(mt, wbase, k, rows, xrow, acc, lane);
        if (lane == 0) {
            for (int i = 0; i < mt; ++i)
                for (int r = 0; r < rows; ++r) {
                    float v = acc[r][i] * scale[row0 + r];
                    // transformers' Linear rounds x·Wᵀ to T, then adds the bias in T.
                    if (bias) v = Elem<T>::load(Elem<T>::store(v)) + Elem<T>::load(bias[row0 + r]);
                    y[(size_t)(t0 + i) * n + row0 + r] = Elem<T>::store(v);
                }
        }
    }
}

// The fused-MoE GEMV with FP8 experts: x [*, k] (row = pair / x_div), w [E, n, k] e4m3,
// scale [E, n] f32, out [n_pairs, n]; pair_w [n_pairs] or null. Same grid as moe_gemv.
template <typename T, typename O>
__device__ void fp8_moe_gemv(const T* __restrict__ x, const u8* __restrict__ w,
                             const float* __restrict__ scale, const int* __restrict__ offsets,
                             const int* __restrict__ sorted, const int* __restrict__ active,
                             const int* __restrict__ n_active, const float* __restrict__ pair_w,
                             O* __restrict__ out, int n, int k, int x_div) {
    const int slot = blockIdx.y;
    if (slot >= *n_active) return;
    const int e = active[slot];
    const int beg = offsets[e], end = offsets[e + 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * FP8_WARPS + warp) * FP8_RPW;
    if (row0 >= n) return;
    const int rows = min(FP8_RPW, n - row0);
    const char* wbase = (const char*)(w + ((size_t)e * n + row0) * k);
    const float* srow = scale + (size_t)e * n + row0;
    float acc[FP8_RPW][FP8_MT];
    for (int t0 = beg; t0 < end; t0 += FP8_MT) {
        const int mt = min(FP8_MT, end - t0);
        int pair[FP8_MT];
        const char* xrow[FP8_MT];
#pragma unroll
        for (int i = 0; i < FP8_MT; ++i) {
            pair[i] = sorted[t0 + min(i, mt - 1)];
            xrow[i] = (const char*)(x + (size_t)(pair[i] / x_div) * k);
        }
        fp8_tile_n<T>(mt, wbase, k, rows, xrow, acc, lane);
        if (lane == 0) {
            for (int i = 0; i < mt; ++i) {
                const float pw = pair_w ? pair_w[pair[i]] : 1.0f;
                for (int r = 0; r < rows; ++r)
                    out[(size_t)pair[i] * n + row0 + r] = Elem<O>::store(acc[r][i] * srow[r] * pw);
            }
        }
    }
}

// w [rows, cols] e4m3, scale [rows] → out [rows, cols] T; one thread per 16 values, cols % 16 == 0.
template <typename T>
__device__ void fp8_dequant(const u8* __restrict__ w, const float* __restrict__ scale,
                            T* __restrict__ out, long long rows, int cols) {
    const long long groups = rows * (cols / 16);
    for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < groups;
         g += (long long)gridDim.x * blockDim.x) {
        const long long r = g / (cols / 16);
        const float s = scale[r];
        float f[16];
        e4m3x16(ld_stream((const char*)w + g * 16), f);
        T* o = out + g * 16;
#pragma unroll
        for (int j = 0; j < 16; ++j) o[j] = Elem<T>::store(f[j] * s);
    }
}

__device__ __forceinline__ u64 splitmix64(u64 z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// out [n] e4m3 ← N(0, sigma²) values (saturating at ±448); n % 4 == 0; one u32 per thread step.
extern "C" __global__ void fp8_fill_normal(u32* __restrict__ out, long long n4, u64 seed,
                                           float sigma) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (long long)gridDim.x * blockDim.x) {
        float z[4];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const u64 h = splitmix64(seed ^ splitmix64((u64)i * 2 + j));
            const float u1 = ((float)(h >> 40) + 1.0f) * (1.0f / 16777217.0f);  // (0, 1]
            const float u2 = (float)((h >> 16) & 0xffffffull) * (1.0f / 16777216.0f);
            const float r = sqrtf(-2.0f * logf(u1)) * sigma;
            float sn, cs;
            sincospif(2.0f * u2, &sn, &cs);
            z[2 * j] = r * cs;
            z[2 * j + 1] = r * sn;
        }
        out[i] = f2e4m3x2(z[0], z[1]) | (f2e4m3x2(z[2], z[3]) << 16);
    }
}

#define FP8_ENTRIES(SFX, T)                                                                       \
    extern "C" __global__ void __launch_bounds__(32 * FP8_WARPS)                                 \
        fp8_gemv_##SFX(const T* x, const u8* w, const float* scale, const T* bias, T* y, int m,  \
                       int n, int k) {                                                            \
        fp8_gemv<T>(x, w, scale, bias, y, m, n, k);                                               \
    }                                                                                             \
    extern "C" __global__ void fp8_dequant_##SFX(const u8* w, const float* scale, T* out,         \
                                                 long long rows, int cols) {                      \
        fp8_dequant<T>(w, scale, out, rows, cols);                                                \
    }

FP8_ENTRIES(f32, float)
FP8_ENTRIES(bf16, bf16_t)

#define FP8_MOE_ENTRY(NAME, T, O)                                                                 \
    extern "C" __global__ void __launch_bounds__(32 * FP8_WARPS)                                 \
        NAME(const T* x, const u8* w, const float* scale, const int* offsets, const int* sorted, \
             const int* active, const int* n_active, const float* pair_w, O* out, int n, int k,  \
             int x_div) {                                                                         \
        fp8_moe_gemv<T, O>(x, w, scale, offsets, sorted, active, n_active, pair_w, out, n, k,     \
                           x_div);                                                                \
    }

FP8_MOE_ENTRY(fp8_moe_gemv_f32_f32, float, float)
FP8_MOE_ENTRY(fp8_moe_gemv_bf16_bf16, bf16_t, bf16_t)
FP8_MOE_ENTRY(fp8_moe_gemv_bf16_f32, bf16_t, float)
