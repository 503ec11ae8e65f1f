// Causal GQA prefill attention of folio-glm45v (compiled at run time with NVRTC by
// kernels/prefill.rs), flash-attention style: the [T, S] scores are never materialised.
//
//   prefill_attn_bf16_d{32,64,128}  one block of 4 warps per (64 queries, query head,
//       sequence); each warp owns 16 query rows held as mma fragments; keys and values come in
//       tiles of 64 through shared memory; S = Q·Kᵀ and O += P·V on the tensor cores
//       (mma.sync m16n8k16 bf16 → f32), online softmax in f32 (P rounded to bf16 for the
//       second product, the normaliser summed from the same rounded values), one rounding of
//       the output to bf16.
//   prefill_attn_f32_d{32,64,128}  the same algorithm without tensor cores: 16 query rows per
//       block (4 per warp), tiles of 32 keys, one lane per key for the scores and D/32 output
//       dims per lane.
//
// q [B, nh, T, D] contiguous (after bias and RoPE); k, v: element (b, kv head, s, d) at
// b·sb + h·sh + s·D + d (the KV cache, this call's keys included); out [B, T, nh·D].
// Query t sits at position past + t (past = S − T) and sees the keys 0 ..= past + t.
// No headers: bf16 is handled as raw 16-bit words (bf16_t, bf2f, f2bf, F_INF: kernels/common.cu,
// prepended by kernels/nvrtc.rs).

#define LOG2E 1.4426950408889634f

__device__ __forceinline__ u32 pack2(float lo, float hi) {
    return (u32)f2bf(lo) | ((u32)f2bf(hi) << 16);
}

struct alignas(16) U4 {
    u32 a, b, c, d;
};

// c += a · b for one 16×8 f32 tile: a 16×16 bf16 (row), b 16×8 bf16 (col).
__device__ __forceinline__ void mma_bf16(float* c, const u32* a, const u32* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#define BR 64  // query rows per bf16 block (4 warps × 16)
#define BC 64  // keys per bf16 tile
#define PAD 8  // shared-memory row padding (elements): conflict-free fragment reads

template <int D>
__device__ __forceinline__ void prefill_attn_bf16(const bf16_t* __restrict__ q,
                                                  const bf16_t* __restrict__ k,
                                                  const bf16_t* __restrict__ v,
                                                  bf16_t* __restrict__ out, int T, int S, int nh,
                                                  int nkv, long long sb, long long sh,
                                                  float scale) {
    constexpr int LD = D + PAD;
    constexpr int KD = D / 16;  // k-steps of Q·Kᵀ
    constexpr int ND = D / 8;   // n-tiles of the output
    constexpr int NS = BC / 8;  // n-tiles of the scores
    constexpr int VPR = D / 8;  // 16-byte vectors per row
    __shared__ __align__(16) bf16_t ks[BC * LD];
    __shared__ __align__(16) bf16_t vs[BC * LD];
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (nh / nkv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int past = S - T;
    // Longest query tiles (most keys) first: shorter ones fill the tail of the grid.
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    const int qw = q0 + warp * 16;

    // A fragments of the warp's 16 query rows: regs {row g, row g+8} × {cols 2t4, 2t4+8}.
    u32 qa[KD][4];
    const bf16_t* qbase = q + ((size_t)b * nh + h) * (size_t)T * D;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int row = qw + g + ((r & 1) ? 8 : 0);
            const int col = kk * 16 + 2 * t4 + ((r & 2) ? 8 : 0);
            qa[kk][r] = row < T ? *(const u32*)(qbase + (size_t)row * D + col) : 0u;
        }
    }
    float o[ND][4];
#pragma unroll
    for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-F_INF, -F_INF}, l[2] = {0.0f, 0.0f};
    const float sl2 = scale * LOG2E;
    const int last_q = min(q0 + BR, T) - 1;
    const int kend = min(S, past + last_q + 1);
    const bf16_t* kbase = k + (size_t)b * sb + (size_t)kvh * sh;
    const bf16_t* vbase = v + (size_t)b * sb + (size_t)kvh * sh;
    const int warp_last = past + qw + 15;

    for (int k0 = 0; k0 < kend; k0 += BC) {
        __syncthreads();  // the previous tile is consumed
        for (int i = threadIdx.x; i < BC * VPR; i += blockDim.x) {
            const int r = i / VPR, c = (i % VPR) * 8;
            U4 kv = {0u, 0u, 0u, 0u}, vv = {0u, 0u, 0u, 0u};
            if (k0 + r < S) {
                kv = *(const U4*)(kbase + (size_t)(k0 + r) * D + c);
                vv = *(const U4*)(vbase + (size_t)(k0 + r) * D + c);
            }
            *(U4*)(ks + r * LD + c) = kv;
            *(U4*)(vs + r * LD + c) = vv;
        }
        __syncthreads();
        if (k0 > warp_last) continue;  // every key of the tile follows the warp's queries

        float s[NS][4];
#pragma unroll
        for (int n = 0; n < NS; ++n) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            const bf16_t* krow = ks + (n * 8 + g) * LD + 2 * t4;
#pragma unroll
            for (int kk = 0; kk < KD; ++kk) {
                u32 bb[2];
                bb[0] = *(const u32*)(krow + kk * 16);
                bb[1] = *(const u32*)(krow + kk * 16 + 8);
                mma_bf16(s[n], qa[kk], bb);
            }
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int qpos = past + qw + g + 8 * i;
            float mx = -F_INF;
#pragma unroll
            for (int n = 0; n < NS; ++n) {
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    const int key = k0 + n * 8 + 2 * t4 + j;
                    const float val = (key <= qpos && key < S) ? s[n][2 * i + j] * sl2 : -F_INF;
                    s[n][2 * i + j] = val;
                    mx = fmaxf(mx, val);
                }
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[i], mx);
            const float m_use = m_new == -F_INF ? 0.0f : m_new;
            const float alpha = exp2f(m[i] - m_use);
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < NS; ++n) {
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    // P as the tensor cores will see it (bf16), summed from the same values.
                    const float p = bf2f(f2bf(exp2f(s[n][2 * i + j] - m_use)));
                    s[n][2 * i + j] = p;
                    sum += p;
                }
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            l[i] = l[i] * alpha + sum;
            m[i] = m_new;
#pragma unroll
            for (int n = 0; n < ND; ++n) {
                o[n][2 * i] *= alpha;
                o[n][2 * i + 1] *= alpha;
            }
        }
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) {
            u32 pa[4];
            pa[0] = pack2(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack2(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            const bf16_t* v0 = vs + (kk * 16 + 2 * t4) * LD + g;
#pragma unroll
            for (int n = 0; n < ND; ++n) {
                const bf16_t* vp = v0 + n * 8;
                u32 bb[2];
                bb[0] = (u32)vp[0] | ((u32)vp[LD] << 16);
                bb[1] = (u32)vp[8 * LD] | ((u32)vp[9 * LD] << 16);
                mma_bf16(o[n], pa, bb);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int row = qw + g + 8 * i;
        if (row >= T) continue;
        const float inv = 1.0f / l[i];
        bf16_t* orow = out + ((size_t)b * T + row) * (size_t)nh * D + (size_t)h * D + 2 * t4;
#pragma unroll
        for (int n = 0; n < ND; ++n)
            *(u32*)(orow + n * 8) = pack2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
    }
}

#define FR 16  // query rows per f32 block (4 warps × 4)
#define FC 32  // keys per f32 tile

template <int D>
__device__ __forceinline__ void prefill_attn_f32(const float* __restrict__ q,
                                                 const float* __restrict__ k,
                                                 const float* __restrict__ v,
                                                 float* __restrict__ out, int T, int S, int nh,
                                                 int nkv, long long sb, long long sh,
                                                 float scale) {
    constexpr int DL = D / 32;  // output dims per lane
    __shared__ float ks[FC][D + 1];
    __shared__ float vs[FC][D];
    __shared__ float qs[FR][D];
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (nh / nkv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int past = S - T;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * FR;
    const float* qbase = q + ((size_t)b * nh + h) * (size_t)T * D;
    for (int i = threadIdx.x; i < FR * D; i += blockDim.x) {
        const int r = i / D, d = i % D;
        qs[r][d] = q0 + r < T ? qbase[(size_t)(q0 + r) * D + d] : 0.0f;
    }
    float o[4][DL], m[4], l[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        m[r] = -F_INF;
        l[r] = 0.0f;
#pragma unroll
        for (int j = 0; j < DL; ++j) o[r][j] = 0.0f;
    }
    const int kend = min(S, past + min(q0 + FR, T));
    const float* kbase = k + (size_t)b * sb + (size_t)kvh * sh;
    const float* vbase = v + (size_t)b * sb + (size_t)kvh * sh;
    for (int k0 = 0; k0 < kend; k0 += FC) {
        __syncthreads();
        for (int i = threadIdx.x; i < FC * D; i += blockDim.x) {
            const int r = i / D, d = i % D;
            const bool in = k0 + r < S;
            ks[r][d] = in ? kbase[(size_t)(k0 + r) * D + d] : 0.0f;
            vs[r][d] = in ? vbase[(size_t)(k0 + r) * D + d] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int row = warp * 4 + r;
            const int qpos = past + q0 + row;
            const int key = k0 + lane;
            float sc = -F_INF;
            if (key < S && key <= qpos) {
                float acc = 0.0f;
                for (int d = 0; d < D; ++d) acc = fmaf(qs[row][d], ks[lane][d], acc);
                sc = acc * scale;
            }
            float mx = sc;
            for (int off = 16; off > 0; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float m_new = fmaxf(m[r], mx);
            if (m_new == -F_INF) continue;  // warp-uniform: no key of this tile is visible
            const float alpha = expf(m[r] - m_new);
            const float p = sc == -F_INF ? 0.0f : expf(sc - m_new);
            float sum = p;
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            l[r] = l[r] * alpha + sum;
            m[r] = m_new;
#pragma unroll
            for (int j = 0; j < DL; ++j) o[r][j] *= alpha;
            for (int jj = 0; jj < FC; ++jj) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int j = 0; j < DL; ++j) o[r][j] = fmaf(pj, vs[jj][lane + 32 * j], o[r][j]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const int row = q0 + warp * 4 + r;
        if (row >= T) continue;
        const float inv = 1.0f / l[r];
        float* orow = out + ((size_t)b * T + row) * (size_t)nh * D + (size_t)h * D;
#pragma unroll
        for (int j = 0; j < DL; ++j) orow[lane + 32 * j] = o[r][j] * inv;
    }
}

#define PREFILL_ENTRY(NAME, IMPL, T, D)                                                        \
    extern "C" __global__ void __launch_bounds__(128)                                         \
        NAME(const T* q, const T* k, const T* v, T* out, int n_q, int n_kv, int nh, int nkv,  \
             long long sb, long long sh, float scale) {                                       \
        IMPL<D>(q, k, v, out, n_q, n_kv, nh, nkv, sb, sh, scale);                             \
    }

PREFILL_ENTRY(prefill_attn_bf16_d32, prefill_attn_bf16, bf16_t, 32)
PREFILL_ENTRY(prefill_attn_bf16_d64, prefill_attn_bf16, bf16_t, 64)
PREFILL_ENTRY(prefill_attn_bf16_d128, prefill_attn_bf16, bf16_t, 128)
PREFILL_ENTRY(prefill_attn_f32_d32, prefill_attn_f32, float, 32)
PREFILL_ENTRY(prefill_attn_f32_d64, prefill_attn_f32, float, 64)
PREFILL_ENTRY(prefill_attn_f32_d128, prefill_attn_f32, float, 128)
