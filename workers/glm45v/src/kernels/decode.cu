// Decode-step kernels of folio-glm45v (compiled at run time with NVRTC by kernels/cuda.rs).
//
//   decode_attn_partial_*  one block per (chunk of 32 cached positions, KV head, sequence):
//       q/k/v bias, half-split partial RoPE of the block's query heads (and of the new key when
//       the chunk holds the new position, which that block also writes into the KV cache in
//       place), scores of all query heads sharing the KV head against the chunk's keys, a
//       chunk-local softmax (max, sum) and the unnormalised P·V → workspace.
//   decode_attn_combine_*  one block per (query head, sequence): merges the chunks' partial
//       softmaxes (flash-decoding) and writes the head's output in the model dtype.
//   rms_norm_add_*  one block per row: optional residual add (rounded to the dtype, as
//       transformers adds), RMSNorm statistics in f32, normalised value rounded to the dtype,
//       then multiplied by the weight and rounded again (transformers' order of roundings).
// No headers: bf16 is handled as raw 16-bit words (bf16_t, bf2f, f2bf, F_INF: kernels/common.cu,
// prepended by kernels/nvrtc.rs).

#define CHUNK 32

template <typename T> struct Cv;

template <> struct Cv<float> {
    __device__ static float ld(float v) { return v; }
    __device__ static float st(float v) { return v; }
    __device__ static float round(float v) { return v; }
};

template <> struct Cv<bf16_t> {
    __device__ static float ld(bf16_t v) { return bf2f(v); }
    __device__ static bf16_t st(float v) { return f2bf(v); }
    __device__ static float round(float v) { return bf2f(f2bf(v)); }
};

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Element d of a projected head `row` (+ bias, rounded to T as a biased Linear output is).
template <typename T>
__device__ __forceinline__ float biased(const T* row, const T* bias, int d) {
    float x = Cv<T>::ld(row[d]);
    if (bias != nullptr) x = Cv<T>::round(x + Cv<T>::ld(bias[d]));
    return x;
}

// Element d of a head after bias and half-split RoPE on its first 2·half dims (rounded to T).
template <typename T>
__device__ __forceinline__ float roped(const T* row, const T* bias, const T* cos_row,
                                      const T* sin_row, int d, int half) {
    if (d >= 2 * half) return biased<T>(row, bias, d);
    const int j = d < half ? d : d - half;
    const float c = Cv<T>::ld(cos_row[j]);
    const float s = Cv<T>::ld(sin_row[j]);
    const float x1 = biased<T>(row, bias, j);
    const float x2 = biased<T>(row, bias, j + half);
    const float y = d < half ? x1 * c - x2 * s : x2 * c + x1 * s;
    return Cv<T>::round(y);
}

// q [B, nh·D], k/v [B, nkv·D] (projections without bias); qb/kb/vb [nh·D]/[nkv·D] or null;
// cos/sin [B, half]; kc/vc the caches [B, nkv, cap, D] holding `past` positions (position
// `past` is written here); ws_acc [B, nh, splits, D], ws_ml [B, nh, splits, 2].
template <typename T>
__device__ void decode_attn_partial(const T* q, const T* k, const T* v, const T* qb, const T* kb,
                                    const T* vb, const T* cos, const T* sin, T* kc, T* vc,
                                    int past, int cap, int nh, int nkv, int D, int half,
                                    float scale, float* ws_acc, float* ws_ml) {
    extern __shared__ float sm[];
    const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int splits = gridDim.x;
    const int rep = nh / nkv;
    const int Dp = D + 1;  // padded key rows: no bank conflicts when threads walk positions
    float* ks = sm;                  // [CHUNK][Dp]
    float* vs = ks + CHUNK * Dp;     // [CHUNK][D]
    float* qs = vs + CHUNK * D;      // [rep][D]
    float* ps = qs + rep * D;        // [rep][CHUNK]
    const int total = past + 1;
    const int p0 = split * CHUNK;
    const int tid = threadIdx.x, nt = blockDim.x;
    const T* cos_row = cos + (size_t)b * half;
    const T* sin_row = sin + (size_t)b * half;

    for (int i = tid; i < rep * D; i += nt) {
        const int r = i / D, d = i % D, h = kvh * rep + r;
        qs[i] = roped<T>(q + ((size_t)b * nh + h) * D, qb ? qb + h * D : nullptr, cos_row,
                         sin_row, d, half);
    }
    const size_t cache_row0 = ((size_t)b * nkv + kvh) * cap;
    for (int i = tid; i < CHUNK * D; i += nt) {
        const int p = i / D, d = i % D, pos = p0 + p;
        float kv_k = 0.0f, kv_v = 0.0f;
        if (pos < past) {
            kv_k = Cv<T>::ld(kc[(cache_row0 + pos) * D + d]);
            kv_v = Cv<T>::ld(vc[(cache_row0 + pos) * D + d]);
        } else if (pos == past) {
            const T* krow = k + ((size_t)b * nkv + kvh) * D;
            const T* vrow = v + ((size_t)b * nkv + kvh) * D;
            kv_k = roped<T>(krow, kb ? kb + kvh * D : nullptr, cos_row, sin_row, d, half);
            kv_v = biased<T>(vrow, vb ? vb + kvh * D : nullptr, d);
            kc[(cache_row0 + pos) * D + d] = Cv<T>::st(kv_k);
            vc[(cache_row0 + pos) * D + d] = Cv<T>::st(kv_v);
        }
        ks[p * Dp + d] = kv_k;
        vs[p * D + d] = kv_v;
    }
    __syncthreads();

    for (int i = tid; i < rep * CHUNK; i += nt) {
        const int r = i / CHUNK, p = i % CHUNK;
        float s = -F_INF;
        if (p0 + p < total) {
            float acc = 0.0f;
            const float* qr = qs + r * D;
            const float* kr = ks + p * Dp;
            for (int d = 0; d < D; ++d) acc += qr[d] * kr[d];
            s = acc * scale;
        }
        ps[i] = s;
    }
    __syncthreads();

    const int warp = tid / 32, lane = tid % 32, nwarps = nt / 32;
    for (int r = warp; r < rep; r += nwarps) {
        const float s = ps[r * CHUNK + lane];
        const float m = warp_max(s);  // finite: every chunk holds at least one position
        const float e = s == -F_INF ? 0.0f : __expf(s - m);
        ps[r * CHUNK + lane] = e;
        const float l = warp_sum(e);
        if (lane == 0) {
            const size_t at = (((size_t)b * nh + kvh * rep + r) * splits + split) * 2;
            ws_ml[at] = m;
            ws_ml[at + 1] = l;
        }
    }
    __syncthreads();

    for (int i = tid; i < rep * D; i += nt) {
        const int r = i / D, d = i % D;
        float acc = 0.0f;
        const float* pr = ps + r * CHUNK;
        for (int p = 0; p < CHUNK; ++p) acc += pr[p] * vs[p * D + d];
        ws_acc[(((size_t)b * nh + kvh * rep + r) * splits + split) * D + d] = acc;
    }
}

// out [B, nh·D]: Σ_s e^{m_s − M} acc_s / Σ_s e^{m_s − M} l_s per (sequence, head); D threads.
template <typename T>
__device__ void decode_attn_combine(const float* ws_acc, const float* ws_ml, T* out, int nh,
                                    int D, int splits) {
    const int h = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
    if (d >= D) return;
    const size_t base = ((size_t)b * nh + h) * splits;
    float m = -F_INF;
    for (int s = 0; s < splits; ++s) m = fmaxf(m, ws_ml[(base + s) * 2]);
    float l = 0.0f, o = 0.0f;
    for (int s = 0; s < splits; ++s) {
        const float w = __expf(ws_ml[(base + s) * 2] - m);
        l += ws_ml[(base + s) * 2 + 1] * w;
        o += ws_acc[(base + s) * D + d] * w;
    }
    out[((size_t)b * nh + h) * D + d] = Cv<T>::st(o / l);
}

// sum = x + delta (when delta is given), out = weight · RMSNorm(sum); rows of `cols` elements.
template <typename T>
__device__ void rms_norm_add(const T* x, const T* delta, const T* w, T* sum, T* out, int cols,
                             float eps) {
    __shared__ float partial[32];
    const size_t row = blockIdx.x;
    const int tid = threadIdx.x, nt = blockDim.x;
    float acc = 0.0f;
    for (int c = tid; c < cols; c += nt) {
        float xi = Cv<T>::ld(x[row * cols + c]);
        if (delta != nullptr) {
            xi = Cv<T>::round(xi + Cv<T>::ld(delta[row * cols + c]));
            sum[row * cols + c] = Cv<T>::st(xi);
        }
        acc += xi * xi;
    }
    acc = warp_sum(acc);
    if (tid % 32 == 0) partial[tid / 32] = acc;
    __syncthreads();
    if (tid < 32) {
        float v = tid < nt / 32 ? partial[tid] : 0.0f;
        v = warp_sum(v);
        if (tid == 0) partial[0] = v;
    }
    __syncthreads();
    const float scale = rsqrtf(partial[0] / cols + eps);
    for (int c = tid; c < cols; c += nt) {
        float xi = Cv<T>::ld(x[row * cols + c]);
        if (delta != nullptr) xi = Cv<T>::round(xi + Cv<T>::ld(delta[row * cols + c]));
        const float n = Cv<T>::round(scale * xi);
        out[row * cols + c] = Cv<T>::st(n * Cv<T>::ld(w[c]));
    }
}

#define DECODE_ENTRIES(T, SUFFIX)                                                               \
    extern "C" __global__ void decode_attn_partial_##SUFFIX(                                    \
        const T* q, const T* k, const T* v, const T* qb, const T* kb, const T* vb,              \
        const T* cos, const T* sin, T* kc, T* vc, int past, int cap, int nh, int nkv, int D,    \
        int half, float scale, float* ws_acc, float* ws_ml) {                                   \
        decode_attn_partial<T>(q, k, v, qb, kb, vb, cos, sin, kc, vc, past, cap, nh, nkv, D,    \
                               half, scale, ws_acc, ws_ml);                                     \
    }                                                                                           \
    extern "C" __global__ void decode_attn_combine_##SUFFIX(const float* ws_acc,                \
                                                            const float* ws_ml, T* out, int nh, \
                                                            int D, int splits) {                \
        decode_attn_combine<T>(ws_acc, ws_ml, out, nh, D, splits);                              \
    }                                                                                           \
    extern "C" __global__ void rms_norm_add_##SUFFIX(const T* x, const T* delta, const T* w,    \
                                                     T* sum, T* out, int cols, float eps) {     \
        rms_norm_add<T>(x, delta, w, sum, out, cols, eps);                                      \
    }

DECODE_ENTRIES(float, f32)
DECODE_ENTRIES(bf16_t, bf16)
