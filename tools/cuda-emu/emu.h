/*
 * emu.h - what the CPU emulators of tools/cuda-emu share: the CUDA keywords
 * a kernel's source uses, emptied; the host types and structs the kernels
 * read (cuda_kernels.cuh's, less their CUDA types); fail(); BF16 rounding as
 * the device rounds.  Each emulator keeps its own scheduler and checks.
 */
#ifndef SSFTEVAL_CUDA_EMU_H
#define SSFTEVAL_CUDA_EMU_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <algorithm>
#include <random>
#include <vector>

#define __device__
#define __global__
#define __forceinline__
#define __launch_bounds__(...)
#define __align__(x)
#define __noinline__ __attribute__((noinline))
#define WARP 32

typedef uint16_t bf16;
struct dim3e {
    unsigned x, y, z;
};

/* A grid is one launch here, after the last has finished: the programmatic
 * launch's wait and trigger (cuda_common.cuh) have nothing to wait for.
 * An emulator that checks what a kernel touches before its wait sets
 * g_on_grid_dep_wait, which the wait calls in the waiting thread. */
static void (*g_on_grid_dep_wait)(void);
static inline void grid_dep_wait(void)
{
    if (g_on_grid_dep_wait) g_on_grid_dep_wait();
}
static inline void grid_dep_launch(void) {}
static inline void grid_dep_enter(void)
{
    grid_dep_wait();
}

static inline int min(int a, int b)
{
    return a < b ? a : b;
}

/* ---- the structs the attention kernels read (cuda_kernels.cuh) ---- */
typedef struct ssfk_kv_layout {
    size_t block_stride, layer_stride, v_offset, head_stride;
    int block_size, head_dim;
    int fp8;
    float *scales;
} ssfk_kv_layout;
typedef struct ssfk_tables {
    const int32_t *seq, *tab_off, *tab;
} ssfk_tables;
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w)
{
    return float4{x, y, z, w};
}
typedef struct ssfk_attn_io {
    bf16 *out;
    const bf16 *qkv;
    void *pool;
    ssfk_kv_layout kv;
    int layer;
    const int32_t *pos;
    ssfk_tables tb;
    int n_heads, n_kv_heads;
} ssfk_attn_io;
typedef struct ssfk_attn_rope {
    const float2 *cs;
    const float *bias;
} ssfk_attn_rope;

/* A check that failed: the message, and the run ends. */
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "EMU ERROR: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ---- bf16 ---- */
static inline float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* round to nearest even, NaN kept a NaN, as __float2bfloat16 */
static inline uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static inline uint32_t pack_bf16(float lo, float hi)
{
    return (uint32_t)f2bf(lo) | ((uint32_t)f2bf(hi) << 16);
}

/* ---- the vector types and the fp8 conversions the kernels use ---- */
struct uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w)
{
    return uint4{x, y, z, w};
}
static inline float2 make_float2(float x, float y)
{
    return float2{x, y};
}

/* e4m3 (OCP FN): bias 7, no infinities, S.1111.111 NaN */
static inline float e4m3(uint8_t b)
{
    int e = b >> 3 & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    float v = e ? ldexpf((float)(8 + m), e - 10) : ldexpf((float)m, -9);
    return b & 0x80 ? -v : v;
}
typedef unsigned short __nv_fp8x2_storage_t;
enum { __NV_E4M3, __NV_E5M2 };
struct __half2 {
    float x, y; /* a half's value: every e4m3 value is exact in both */
};
static inline __half2 __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t v, int kind)
{
    if (kind != __NV_E4M3) fail("fp8 kind %d", kind);
    return __half2{e4m3((uint8_t)(v & 0xff)), e4m3((uint8_t)(v >> 8))}; /* .x: the low byte */
}
static inline float2 __half22float2(__half2 h)
{
    return float2{h.x, h.y};
}

/* the e4m3 byte nearest x (|x| <= 448), ties to the even code */
static inline uint8_t to_e4m3(float x)
{
    static float pos[127];
    if (pos[1] == 0)
        for (int c = 0; c < 127; c++)
            pos[c] = e4m3((uint8_t)c);
    float a = fabsf(x);
    int c = (int)(std::lower_bound(pos, pos + 127, a) - pos);
    if (c == 127) c = 126;
    if (c > 0 && (a - pos[c - 1] < pos[c] - a || (a - pos[c - 1] == pos[c] - a && c % 2))) c--;
    return (uint8_t)(c | (x < 0 ? 0x80 : 0));
}

/* a uniform draw in [-1, 1) */
static inline double urand(std::mt19937 &r)
{
    return std::uniform_real_distribution<double>(-1, 1)(r);
}

/* The reference the attention emulators hold the kernels to: out[d] =
 * softmax(q . K^T / sqrt(hd)) V over positions 0..p, in double, for one
 * query head q (BF16, hd values) and its KV head kh of K and V ([position]
 * [n_kv][hd]). */
template <typename T>
static inline void attention_ref(const bf16 *q, const std::vector<T> &K, const std::vector<T> &V,
                                 int p, int n_kv, int kh, int hd, double *out)
{
    std::vector<double> sc(p + 1);
    double mx = -INFINITY, sum = 0;
    for (int t = 0; t <= p; t++) {
        double dot = 0;
        for (int d = 0; d < hd; d++)
            dot += (double)bf2f(q[d]) * K[((size_t)t * n_kv + kh) * hd + d];
        sc[t] = dot / sqrt((double)hd);
        mx = sc[t] > mx ? sc[t] : mx;
    }
    for (int t = 0; t <= p; t++)
        sum += sc[t] = exp(sc[t] - mx);
    for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int t = 0; t <= p; t++)
            o += sc[t] * V[((size_t)t * n_kv + kh) * hd + d];
        out[d] = o / sum;
    }
}

#endif
