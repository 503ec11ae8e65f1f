// Fused MoE kernels of folio-glm45v (compiled at run time with NVRTC by moe/cuda.rs).
//
// Decode-sized MoE without a host round trip (spec §2.5 semantics, same as moe.rs's host path):
//   moe_route   one warp per token: sigmoid, + e_score_correction_bias, group-limited top-k
//               (value desc, index asc — the host order), weights from un-biased scores,
//               normalised, scaled.                                    → ids [N,k], w [N,k]
//   moe_align   one block: per-expert counts, offsets, pairs sorted by expert, active experts.
//   moe_gemv_*  y[p, n] = (w_p ·) Σ_k W[e(p), n, k] · x[p / x_div, k] for the pairs p of each
//               active expert; a warp streams GEMV_RPW weight rows with 16-byte loads and
//               reuses them for up to GEMV_MT pairs; f32 accumulation.
//   moe_silu_mul_*  act[p, i] = silu(gu[p, i]) · gu[p, I + i] (f32 math, one rounding).
// No headers: bf16 is handled as raw 16-bit words (bf16_t, bf2f, f2bf, F_INF, V16, ld_stream,
// ld_cached, Elem: kernels/common.cu, prepended by kernels/nvrtc.rs).

__device__ __forceinline__ void warp_best(float& v, int& i) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, off);
        const int oi = __shfl_xor_sync(0xffffffffu, i, off);
        if (ov > v || (ov == v && oi < i)) {
            v = ov;
            i = oi;
        }
    }
    v = __shfl_sync(0xffffffffu, v, 0);
    i = __shfl_sync(0xffffffffu, i, 0);
}

#define ROUTE_WARPS 4
#define NO_INDEX 0x7fffffff

// logits [n_tok, n_exp] f32, bias [n_exp] f32 → ids [n_tok, top_k] u32, w [n_tok, top_k] f32.
// Dynamic shared memory: ROUTE_WARPS * 2 * n_exp floats. Needs n_group <= 32, top_k <= n_exp.
extern "C" __global__ void moe_route(const float* __restrict__ logits, const float* __restrict__ bias,
                                     int n_tok, int n_exp, int top_k, int n_group, int topk_group,
                                     int norm, float scale, u32* __restrict__ ids,
                                     float* __restrict__ wout) {
    extern __shared__ float smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int tok = blockIdx.x * ROUTE_WARPS + warp;
    if (tok >= n_tok) return;  // whole warps leave; the kernel has no block barrier
    float* sc = smem + (size_t)warp * 2 * n_exp;
    float* ch = sc + n_exp;
    for (int e = lane; e < n_exp; e += 32) {
        const float s = 1.0f / (1.0f + expf(-logits[(size_t)tok * n_exp + e]));
        sc[e] = s;
        ch[e] = s + bias[e];
    }
    __syncwarp();
    if (n_group > 1) {
        const int per = n_exp / n_group;
        float gs = -F_INF;
        if (lane < n_group) {
            float t1 = -F_INF, t2 = -F_INF;
            for (int j = 0; j < per; ++j) {
                const float v = ch[lane * per + j];
                if (v > t1) {
                    t2 = t1;
                    t1 = v;
                } else if (v > t2) {
                    t2 = v;
                }
            }
            gs = per > 1 ? t1 + t2 : t1;
        }
        u32 keep = 0;
        for (int r = 0; r < topk_group; ++r) {
            const bool open = lane < n_group && !((keep >> lane) & 1u);
            float v = open ? gs : -F_INF;
            int i = open ? lane : NO_INDEX;
            warp_best(v, i);
            if (i < n_group) keep |= 1u << i;
        }
        for (int e = lane; e < n_exp; e += 32)
            if (!((keep >> (e / per)) & 1u)) ch[e] = -F_INF;
        __syncwarp();
    }
    float wsum = 0.0f;
    for (int r = 0; r < top_k; ++r) {
        float v = -F_INF;
        int i = NO_INDEX;
        for (int e = lane; e < n_exp; e += 32) {
            const float c = ch[e];
            if (c != -F_INF && (c > v || (c == v && e < i))) {
                v = c;
                i = e;
            }
        }
        warp_best(v, i);
        if (lane == 0) {
            const bool ok = i < n_exp;
            const int idx = ok ? i : 0;
            const float s = ok ? sc[idx] : __int_as_float(0x7fc00000);
            ids[(size_t)tok * top_k + r] = (u32)idx;
            wout[(size_t)tok * top_k + r] = s;
            wsum += s;
            if (ok) ch[idx] = -F_INF;
        }
        __syncwarp();
    }
    if (lane == 0) {
        const float denom = wsum + 1e-20f;
        for (int r = 0; r < top_k; ++r) {
            float w = wout[(size_t)tok * top_k + r];
            if (norm) w = w / denom;
            wout[(size_t)tok * top_k + r] = w * scale;
        }
    }
}

// ids [n_pairs] (expert of each pair, < n_exp) → offsets [n_exp + 1], sorted [n_pairs] (pair
// indices grouped by expert), active [n_exp] (experts with pairs, ascending), n_active [1].
// One block; dynamic shared memory 2 * n_exp ints.
extern "C" __global__ void moe_align(const u32* __restrict__ ids, int n_pairs, int n_exp,
                                     int* __restrict__ offsets, int* __restrict__ sorted,
                                     int* __restrict__ active, int* __restrict__ n_active) {
    extern __shared__ int ismem[];
    int* count = ismem;
    int* cursor = ismem + n_exp;
    for (int e = threadIdx.x; e < n_exp; e += blockDim.x) count[e] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const u32 e = ids[p];
        if (e < (u32)n_exp) atomicAdd(&count[e], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0, na = 0;
        for (int e = 0; e < n_exp; ++e) {
            offsets[e] = run;
            cursor[e] = run;
            if (count[e] > 0) active[na++] = e;
            run += count[e];
        }
        offsets[n_exp] = run;
        *n_active = na;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const u32 e = ids[p];
        if (e < (u32)n_exp) sorted[atomicAdd(&cursor[e], 1)] = p;
    }
}

#define GEMV_WARPS 8
#define GEMV_RPW 2
#define GEMV_MT 4

// One warp: GEMV_RPW rows × MT pairs, the k loop unrolled so several 16-byte weight loads per
// lane are in flight; x rows are small and read through the cache.
template <typename T, typename O, int MT>
__device__ __forceinline__ void gemv_tile(const char* wbase, size_t row_bytes, int rows, int kv,
                                          const char* const* xrow, const int* pair,
                                          const float* __restrict__ pair_w, O* __restrict__ out,
                                          int n, int row0, int lane) {
    constexpr int V = Elem<T>::N;
    float acc[GEMV_RPW][MT];
#pragma unroll
    for (int r = 0; r < GEMV_RPW; ++r)
#pragma unroll
        for (int i = 0; i < MT; ++i) acc[r][i] = 0.0f;
#pragma unroll 4
    for (int c = lane; c < kv; c += 32) {
        float wf[GEMV_RPW][V];
#pragma unroll
        for (int r = 0; r < GEMV_RPW; ++r) {
            const int rr = r < rows ? r : 0;
            Elem<T>::unpack(ld_stream(wbase + rr * row_bytes + (size_t)c * 16), wf[r]);
        }
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            float xf[V];
            Elem<T>::unpack(ld_cached(xrow[i] + (size_t)c * 16), xf);
#pragma unroll
            for (int r = 0; r < GEMV_RPW; ++r)
#pragma unroll
                for (int j = 0; j < V; ++j) acc[r][i] = fmaf(wf[r][j], xf[j], acc[r][i]);
        }
    }
#pragma unroll
    for (int r = 0; r < GEMV_RPW; ++r)
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
                acc[r][i] += __shfl_xor_sync(0xffffffffu, acc[r][i], off);
    if (lane == 0) {
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            const float scale = pair_w ? pair_w[pair[i]] : 1.0f;
            for (int r = 0; r < rows; ++r)
                out[(size_t)pair[i] * n + row0 + r] = Elem<O>::store(acc[r][i] * scale);
        }
    }
}

// x [*, k] (row = pair / x_div), w [n_exp, n, k], out [n_pairs, n]; pair_w [n_pairs] or null.
// grid (ceil(n / (GEMV_WARPS * GEMV_RPW)), slots ≥ number of active experts), block 32*GEMV_WARPS.
// Needs k % (16 / sizeof(T)) == 0 and 16-byte aligned rows.
template <typename T, typename O>
__device__ void moe_gemv(const T* __restrict__ x, const T* __restrict__ w,
                         const int* __restrict__ offsets, const int* __restrict__ sorted,
                         const int* __restrict__ active, const int* __restrict__ n_active,
                         const float* __restrict__ pair_w, O* __restrict__ out, int n, int k,
                         int x_div) {
    const int slot = blockIdx.y;
    if (slot >= *n_active) return;
    const int e = active[slot];
    const int beg = offsets[e], end = offsets[e + 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * GEMV_WARPS + warp) * GEMV_RPW;
    if (row0 >= n) return;
    const int kv = k / Elem<T>::N;
    const size_t row_bytes = (size_t)k * sizeof(T);
    const char* wbase = (const char*)(w + ((size_t)e * n + row0) * k);
    const int rows = min(GEMV_RPW, n - row0);
    for (int t0 = beg; t0 < end; t0 += GEMV_MT) {
        const int mt = min(GEMV_MT, end - t0);
        int pair[GEMV_MT];
        const char* xrow[GEMV_MT];
#pragma unroll
        for (int i = 0; i < GEMV_MT; ++i) {
            pair[i] = sorted[t0 + min(i, mt - 1)];
            xrow[i] = (const char*)(x + (size_t)(pair[i] / x_div) * k);
        }
        switch (mt) {
            case 1: gemv_tile<T, O, 1>(wbase, row_bytes, rows, kv, xrow, pair, pair_w, out, n, row0, lane); break;
            case 2: gemv_tile<T, O, 2>(wbase, row_bytes, rows, kv, xrow, pair, pair_w, out, n, row0, lane); break;
            case 3: gemv_tile<T, O, 3>(wbase, row_bytes, rows, kv, xrow, pair, pair_w, out, n, row0, lane); break;
            default: gemv_tile<T, O, 4>(wbase, row_bytes, rows, kv, xrow, pair, pair_w, out, n, row0, lane); break;
        }
    }
}

// act [rows, inter] = silu(gu[:, :inter]) * gu[:, inter:], gu [rows, 2 * inter].
template <typename T>
__device__ void moe_silu_mul(const T* __restrict__ gu, T* __restrict__ act, int rows, int inter) {
    const size_t total = (size_t)rows * inter;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const size_t r = idx / inter, c = idx % inter;
        const float g = Elem<T>::load(gu[r * 2 * inter + c]);
        const float u = Elem<T>::load(gu[r * 2 * inter + inter + c]);
        act[idx] = Elem<T>::store(g / (1.0f + expf(-g)) * u);
    }
}

#define GEMV_ENTRY(NAME, T, O)                                                                   \
    extern "C" __global__ void __launch_bounds__(32 * GEMV_WARPS)                               \
        NAME(const T* x, const T* w, const int* offsets, const int* sorted, const int* active,  \
             const int* n_active, const float* pair_w, O* out, int n, int k, int x_div) {       \
        moe_gemv<T, O>(x, w, offsets, sorted, active, n_active, pair_w, out, n, k, x_div);      \
    }

GEMV_ENTRY(moe_gemv_f32_f32, float, float)
GEMV_ENTRY(moe_gemv_bf16_bf16, bf16_t, bf16_t)
GEMV_ENTRY(moe_gemv_bf16_f32, bf16_t, float)

extern "C" __global__ void moe_silu_mul_f32(const float* gu, float* act, int rows, int inter) {
    moe_silu_mul<float>(gu, act, rows, inter);
}

extern "C" __global__ void moe_silu_mul_bf16(const bf16_t* gu, bf16_t* act, int rows, int inter) {
    moe_silu_mul<bf16_t>(gu, act, rows, inter);
}

// ---- Gathered prefill MoE (moe/gather.rs): pack rows per expert, batched GEMMs, gather back ----
//   moe_pack_rows  xs[row(e, m), :] = x[token of the m-th pair of expert e, :]: rows m < m_cap
//                  of expert e at e * m_cap + m (zero rows up to m_cap: the batched part), rows
//                  m ≥ m_cap at e_cap + over[e] + m − m_cap (the overflow of the few large
//                  buckets, multiplied per expert); slot[pair] = the packed row of each pair.
//   moe_combine_*  out[t, :] = T(T(Σ_j w[t, j] · y[slot[t·k + j], :]) + shared[t, :]): each token
//                  reads its k expert rows and writes its row once (no atomics, no scatter);
//                  the routed sum in f32, rounded to T before the shared expert is added, as the
//                  other kernels of moe.rs round.

// grid (max(m_cap, largest bucket), n_exp), block PACK_THREADS; e_cap = n_exp * m_cap;
// over [n_exp] overflow offsets; row_bytes % 16 == 0, 16-byte aligned rows.
extern "C" __global__ void moe_pack_rows(const char* __restrict__ x, int row_bytes, int top_k,
                                         const int* __restrict__ offsets,
                                         const int* __restrict__ sorted, int m_cap,
                                         const int* __restrict__ over, char* __restrict__ xs,
                                         int* __restrict__ slot) {
    const int m = blockIdx.x, e = blockIdx.y;
    const int beg = offsets[e], count = offsets[e + 1] - beg;
    if (m >= count && m >= m_cap) return;
    const size_t row = m < m_cap ? (size_t)e * m_cap + m
                                 : (size_t)gridDim.y * m_cap + over[e] + (m - m_cap);
    V16* dst = (V16*)(xs + row * (size_t)row_bytes);
    const int nv = row_bytes / 16;
    if (m < count) {
        const int pair = sorted[beg + m];
        if (threadIdx.x == 0) slot[pair] = (int)row;
        const char* src = x + (size_t)(pair / top_k) * (size_t)row_bytes;
        for (int c = threadIdx.x; c < nv; c += blockDim.x) dst[c] = ld_cached(src + (size_t)c * 16);
    } else {
        const V16 z = {0u, 0u, 0u, 0u};
        for (int c = threadIdx.x; c < nv; c += blockDim.x) dst[c] = z;
    }
}

// y [*, h] (packed expert outputs), slot [n_tok * top_k], w [n_tok * top_k] f32,
// shared [n_tok, h] → out [n_tok, h]. grid (n_tok, ceil(h / blockDim.x)).
template <typename T>
__device__ void moe_combine(const T* __restrict__ y, const int* __restrict__ slot,
                            const float* __restrict__ w, const T* __restrict__ shared,
                            T* __restrict__ out, int top_k, int h) {
    const int t = blockIdx.x;
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= h) return;
    float acc = 0.0f;
    for (int j = 0; j < top_k; ++j) {
        const int p = t * top_k + j;
        acc += Elem<T>::load(y[(size_t)slot[p] * h + c]) * w[p];
    }
    const float routed = Elem<T>::load(Elem<T>::store(acc));
    out[(size_t)t * h + c] = Elem<T>::store(routed + Elem<T>::load(shared[(size_t)t * h + c]));
}

extern "C" __global__ void moe_combine_f32(const float* y, const int* slot, const float* w,
                                           const float* shared, float* out, int top_k, int h) {
    moe_combine<float>(y, slot, w, shared, out, top_k, h);
}

extern "C" __global__ void moe_combine_bf16(const bf16_t* y, const int* slot, const float* w,
                                            const bf16_t* shared, bf16_t* out, int top_k, int h) {
    moe_combine<bf16_t>(y, slot, w, shared, out, top_k, h);
}
