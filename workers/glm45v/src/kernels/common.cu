// Prelude of every CUDA source of folio-glm45v (prepended by kernels/nvrtc.rs before NVRTC
// compiles decode.cu, prefill.cu, fp8.cu and moe/kernels.cu). No headers: bf16 is handled as raw
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

// 16-byte streaming (L1 no-allocate) and cached read-only loads, and the element types the GEMV
// kernels unpack from them (moe/kernels.cu, fp8.cu).
struct alignas(16) V16 {
    u32 a, b, c, d;
};

__device__ __forceinline__ V16 ld_stream(const char* p) {
    V16 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.a), "=r"(v.b), "=r"(v.c), "=r"(v.d)
        : "l"(p));
    return v;
}

__device__ __forceinline__ V16 ld_cached(const char* p) {
    V16 v;
    asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.a), "=r"(v.b), "=r"(v.c), "=r"(v.d)
        : "l"(p));
    return v;
}

template <typename T> struct Elem;

template <> struct Elem<float> {
    static constexpr int N = 4;  // elements per 16 bytes
    __device__ static void unpack(const V16& v, float* f) {
        f[0] = __uint_as_float(v.a);
        f[1] = __uint_as_float(v.b);
        f[2] = __uint_as_float(v.c);
        f[3] = __uint_as_float(v.d);
    }
    __device__ static float load(float v) { return v; }
    __device__ static float store(float v) { return v; }
};

template <> struct Elem<bf16_t> {
    static constexpr int N = 8;
    __device__ static void unpack(const V16& v, float* f) {
        const u32 w[4] = {v.a, v.b, v.c, v.d};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            f[2 * j] = __uint_as_float(w[j] << 16);
            f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
        }
    }
    __device__ static float load(bf16_t v) { return bf2f(v); }
    __device__ static bf16_t store(float v) { return f2bf(v); }
};
