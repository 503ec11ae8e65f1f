// Prelude of every CUDA source of folio-glm45v (prepended by kernels/nvrtc.rs before NVRTC
// compiles decode.cu, prefill.cu and moe/kernels.cu). No headers: bf16 is handled as raw
// 16-bit words, rounded to nearest even as PyTorch does.

typedef unsigned short bf16_t;
typedef unsigned int u32;

#define F_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf2f(bf16_t v) { return __uint_as_float(((u32)v) << 16); }

__device__ __forceinline__ bf16_t f2bf(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
    return (bf16_t)(u >> 16);
}
