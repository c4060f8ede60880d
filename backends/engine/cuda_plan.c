/*
 * cuda_plan.c - the paged attention's launch shape (cuda_plan.h).
 */
#include "cuda_plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int pad_group(int g)
{
    int p = 1;
    while (p < g)
        p *= 2;
    return p;
}

/* a >= 0, b >= 1; a + b - 1 would overflow for a context of 2^30 */
static int ceil_div(int a, int b)
{
    return a / b + (a % b != 0);
}

/* Chunks are whole blocks (a CTA never shares a block with another) and,
 * where the two nest, whole rounds of the CTA's warps' tiles too. */
static int chunk_unit(int block_size)
{
    int round = SSF_ATTN_TILE * (SSF_ATTN_THREADS / 32);
    if (round % block_size == 0) return round;
    return block_size;
}

size_t ssf_attn_smem(int head_dim)
{
    size_t stages = (size_t)(SSF_ATTN_THREADS / 32) * 2 * 2 * SSF_ATTN_TILE *
                    (size_t)(head_dim + SSF_ATTN_KV_PAD) * 2;
    size_t merge = (size_t)(SSF_ATTN_THREADS / 32) * SSF_ATTN_MAX_GROUP * (head_dim + 2) * 4;
    return stages > merge ? stages : merge;
}

/* Positions a split walks when max_ctx is cut into s of them: whole
 * units, so rounding up may leave fewer, longer splits than asked for. */
static int split_chunk(int max_ctx, int s, int unit)
{
    return ceil_div(ceil_div(max_ctx, s), unit) * unit;
}

/* A launch of n equal CTAs takes ceil(n / slots) waves, each as long as
 * one CTA's positions, but no less than the memory takes: past
 * SSF_ATTN_SATURATE_PCT of the slots, CTAs share the bandwidth rather than
 * add to it, and the whole launch reads base unsplit CTAs' K and V at
 * that many CTAs' rate.  Modelled time of asking for s splits, in
 * unsplit CTA times, costed from the chunk they round to: 4,096 positions
 * asked for in 31 splits round to 22 of 192, half as long again as 32 of
 * 128. */
static double split_cost(int base, int s, int max_ctx, int unit, int slots)
{
    int chunk = s == 1 ? max_ctx : split_chunk(max_ctx, s, unit);
    if (chunk > max_ctx) chunk = max_ctx; /* the longest row's positions, at most */
    long long ctas = (long long)base * ceil_div(max_ctx, chunk);
    long long waves = (ctas + slots - 1) / slots; /* whole waves: integer division */
    double waves_time = (double)waves * chunk / max_ctx;
    double saturating = (double)slots * SSF_ATTN_SATURATE_PCT / 100;
    double memory_time = base / (saturating > 1 ? saturating : 1);
    return waves_time > memory_time ? waves_time : memory_time;
}

/* The fewest splits within 5% of the best modelled time, among those that
 * give every split at least SSF_ATTN_MIN_CHUNK positions of the longest
 * context and keep the CTAs within SSF_ATTN_OVERSUB x slots.  Under-filled
 * launches split until the memory is busy (128 CTAs on 396 slots: 2); a
 * launch that keeps it busy unsplit is not split (256 CTAs on 396 slots:
 * 3 splits would make 2 waves of a third, no faster for the bytes). */
static int choose_splits(int base, int max_ctx, int unit, int slots)
{
    int by_ctx = max_ctx / SSF_ATTN_MIN_CHUNK;
    long long by_slots = (long long)SSF_ATTN_OVERSUB * slots / base;
    int most = by_slots < by_ctx ? (int)by_slots : by_ctx;
    double best = split_cost(base, 1, max_ctx, unit, slots);
    for (int s = 2; s <= most; s++) {
        double cost = split_cost(base, s, max_ctx, unit, slots);
        if (cost < best) best = cost;
    }
    for (int s = 1; s <= most; s++)
        if (split_cost(base, s, max_ctx, unit, slots) <= best * 1.05) return s;
    return 1;
}

int ssf_attn_plan(int n_rows, int n_kv_heads, int group, int max_ctx, int head_dim, int block_size,
                  int slots, ssf_attn_shape *out)
{
    if ((head_dim != 64 && head_dim != 128) || n_rows < 1 || n_kv_heads < 1 || group < 1 ||
        max_ctx < 1 || block_size < 1 || slots < 1)
        return -1;
    /* one chunk of any length, in whole units: the shape stays the same as
     * contexts grow, so a decode graph captured with it keeps replaying.
     * Past it an unsplit chunk would miss positions (SSF_ATTN_WHOLE itself
     * where the unit divides it, up to a unit less where it does not), and
     * the chunk arithmetic overflows an int near INT_MAX. */
    int unit = chunk_unit(block_size), whole = SSF_ATTN_WHOLE / unit * unit;
    if (max_ctx > whole) return -1;
    ssf_attn_shape s;
    s.head_chunks = ceil_div(group, SSF_ATTN_MAX_GROUP);
    s.group_pad = pad_group(ceil_div(group, s.head_chunks));
    int base = n_rows * n_kv_heads * s.head_chunks;
    s.splits = choose_splits(base, max_ctx, unit, slots);
    if (s.splits == 1) {
        s.chunk = whole;
    } else {
        s.chunk = split_chunk(max_ctx, s.splits, unit);
        /* rounding up may leave the last splits empty for every row: drop them */
        s.splits = ceil_div(max_ctx, s.chunk);
    }
    s.grid[0] = n_rows;
    s.grid[1] = n_kv_heads * s.head_chunks;
    s.grid[2] = s.splits;
    s.threads = SSF_ATTN_THREADS;
    s.smem = ssf_attn_smem(head_dim);
    s.partial_floats =
        s.splits > 1 ? (size_t)n_rows * n_kv_heads * group * s.splits * (head_dim + 2) : 0;
    *out = s;
    return 0;
}

size_t ssf_attn_partial_floats_max(int slots, int head_dim)
{
    return (size_t)SSF_ATTN_OVERSUB * slots * SSF_ATTN_MAX_GROUP * (head_dim + 2);
}

size_t ssf_prefill_smem(int head_dim, int fp8)
{
    size_t stage = (size_t)2 * SSF_PREFILL_KT * (size_t)(head_dim + SSF_ATTN_KV_PAD) * 2;
    size_t raw = (size_t)2 * SSF_PREFILL_KT * (size_t)head_dim;
    size_t scales = (size_t)2 * SSF_PREFILL_KT * sizeof(float);
    size_t rows = fp8 ? stage + 2 * (raw + scales) : 2 * stage;
    return rows + (size_t)2 * SSF_PREFILL_KT * sizeof(size_t);
}

/* Rows from `first` on that continue its sequence one position at a time. */
static int run_length(const int32_t *seq, const int32_t *pos, int n_rows, int first)
{
    int n = 1;
    while (first + n < n_rows && seq[first + n] == seq[first] && pos[first + n] == pos[first] + n)
        n++;
    return n;
}

int ssf_prefill_split(const int32_t *seq, const int32_t *pos, int n_rows, int min_run,
                      int32_t *qblocks, int32_t *decode_rows, int *n_decode)
{
    int nq = 0, nd = 0;
    if (min_run < 2) min_run = 2; /* a q-block's two entries need two rows of room */
    for (int r = 0; r < n_rows;) {
        int n = run_length(seq, pos, n_rows, r);
        if (n < min_run) {
            for (int i = 0; i < n; i++)
                decode_rows[nd++] = r + i;
        } else {
            for (int at = 0; at < n; at += SSF_PREFILL_QB) {
                qblocks[2 * (size_t)nq] = r + at;
                qblocks[2 * (size_t)nq + 1] = n - at < SSF_PREFILL_QB ? n - at : SSF_PREFILL_QB;
                nq++;
            }
        }
        r += n;
    }
    *n_decode = nd;
    return nq;
}

/* ---- the small GEMMs' own kernel ---------------------------------------------- */

/* Shared memory the device keeps of each CTA's, beside the kernel's. */
#define CTA_RESERVED_SMEM 1024

size_t ssf_pgemm_smem(int bn, int stages)
{
    return (size_t)stages * SSF_PGEMM_SLOT_BYTES(bn);
}

/* The ring for `ctas` CTAs of `slices` slices each in one wave: 0 when
 * they do not fit, else its slices. */
static int pgemm_stages(long long ctas, int bn, int slices, int sms, size_t cta_smem,
                        size_t sm_smem)
{
    long long per_sm = (ctas + sms - 1) / sms;
    if (per_sm > SSF_PGEMM_SM_CTAS(bn)) return 0;
    size_t room = sm_smem / (size_t)per_sm;
    room = room > CTA_RESERVED_SMEM ? room - CTA_RESERVED_SMEM : 0;
    if (room > cta_smem) room = cta_smem;
    int stages = (int)(room / SSF_PGEMM_SLOT_BYTES(bn));
    if (stages > slices) stages = slices;
    if (stages > SSF_PGEMM_MAX_STAGES) stages = SSF_PGEMM_MAX_STAGES;
    return stages >= (slices < 2 ? slices : 2) ? stages : 0;
}

/* Whether `ctas` CTAs cover 9 in 10 of the SMs: a wave over most SMs
 * reads W at the device's rate. */
static int covers(long long ctas, int sms)
{
    return 10 * ctas >= 9LL * sms;
}

static void pgemm_shape(int N, int K, int swiglu, int bn, int splits, int stages,
                        ssf_pgemm_shape *out)
{
    out->tiles = N / bn;
    out->splits = splits;
    out->bn = bn;
    out->chunk = K / splits;
    out->stages = stages;
    out->swiglu = swiglu != 0;
    out->smem = ssf_pgemm_smem(bn, stages);
    out->partial_floats = splits > 1 ? (size_t)splits * SSF_PGEMM_MAX_M * (size_t)N : 0;
}

int ssf_pgemm_plan(int N, int K, int swiglu, int sms, size_t cta_smem, size_t sm_smem,
                   ssf_pgemm_shape *out)
{
    if (N < SSF_PGEMM_BN || N % SSF_PGEMM_BN || K < SSF_PGEMM_KS || K % SSF_PGEMM_KS || sms < 1)
        return -1;
    int slices = K / SSF_PGEMM_KS, wide = SSF_PGEMM_BN_WIDE;
    if (N % wide == 0 && covers(N / wide, sms)) {
        int stages = pgemm_stages(N / wide, wide, slices, sms, cta_smem, sm_smem);
        if (stages) {
            pgemm_shape(N, K, swiglu, wide, 1, stages, out);
            return 0;
        }
    }
    /* past a wave over most SMs, each split more is partials to write and
     * sum; SwiGLU's epilogue needs a tile's whole sums */
    int tiles = N / SSF_PGEMM_BN, pick = 0, pick_stages = 0;
    for (int s = 1; s <= (swiglu ? 1 : slices); s++) {
        if (slices % s) continue;
        long long ctas = (long long)tiles * s;
        int stages = pgemm_stages(ctas, SSF_PGEMM_BN, slices / s, sms, cta_smem, sm_smem);
        if (!stages) continue;
        pick = s, pick_stages = stages;
        if (covers(ctas, sms)) break;
    }
    if (!pick) return -1;
    pgemm_shape(N, K, swiglu, SSF_PGEMM_BN, pick, pick_stages, out);
    return 0;
}

/* Adds each distinct ring of 2, 4 and `most` slices (at most `most`). */
static int add_rings(int N, int K, int swiglu, int bn, int splits, int most, ssf_pgemm_shape *out,
                     int n, int max)
{
    const int rings[] = {2, 4, most};
    int last = 0; /* rings ascend: one clamped to `most` repeats the one before */
    for (int i = 0; i < 3; i++) {
        int stages = rings[i] < most ? rings[i] : most;
        if (stages == last) continue;
        if (n < max) pgemm_shape(N, K, swiglu, bn, splits, stages, &out[n]);
        n++, last = stages;
    }
    return n;
}

int ssf_pgemm_shapes(int N, int K, int swiglu, int sms, size_t cta_smem, size_t sm_smem,
                     ssf_pgemm_shape *out, int max)
{
    if (N < SSF_PGEMM_BN || N % SSF_PGEMM_BN || K < SSF_PGEMM_KS || K % SSF_PGEMM_KS || sms < 1)
        return 0;
    const int widths[] = {SSF_PGEMM_BN, SSF_PGEMM_BN_WIDE};
    int slices = K / SSF_PGEMM_KS, n = 0;
    for (int w = 0; w < 2; w++) {
        int bn = widths[w];
        if (N % bn) continue;
        for (int s = 1; s <= (swiglu ? 1 : slices); s++) {
            long long ctas = (long long)(N / bn) * s;
            if (slices % s || 2 * ctas < sms) continue;
            int most = pgemm_stages(ctas, bn, slices / s, sms, cta_smem, sm_smem);
            if (most) n = add_rings(N, K, swiglu, bn, s, most, out, n, max);
        }
    }
    return n;
}

/* ---- the own kernel against cuBLAS -------------------------------------------- */

static float bf16_value(uint16_t bits)
{
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void ssf_pgemm_probe(uint16_t *x, size_t n, uint32_t seed)
{
    uint32_t s = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5;              /* xorshift32 */
        float v = (float)(s >> 8) / (float)(1u << 23) - 1.0f; /* [-1, 1) */
        uint32_t u;
        memcpy(&u, &v, sizeof u);
        x[i] = (uint16_t)(u >> 16); /* truncated: exact in BF16, still in [-1, 1) */
    }
}

int ssf_pgemm_agrees(const uint16_t *ref, const uint16_t *got, size_t n, double *worst)
{
    double sq = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        double r = bf16_value(ref[i]);
        sq += r * r;
    }
    double rms = n ? sqrt(sq / (double)n) : 0;
    for (size_t i = 0; i < n; i++) {
        double r = bf16_value(ref[i]), g = bf16_value(got[i]);
        double bound = (fabs(r) + rms) / 32, e = fabs(g - r);
        double units = !isfinite(e) || !isfinite(bound) ? INFINITY
                       : bound > 0                      ? e / bound
                       : e > 0                          ? INFINITY
                                                        : 0;
        if (units > max) max = units;
    }
    if (worst) *worst = max;
    return max <= 1;
}

int ssf_pgemm_wins(double own_ms, double blas_ms)
{
    return own_ms > 0 && own_ms < SSF_PGEMM_MARGIN * blas_ms;
}

int ssf_gemm_split_counts(int K, int *out)
{
    /* steps of about 1.5x: between them a wave's fill changes little */
    static const int counts[SSF_GEMM_SPLIT_COUNTS] = {2, 3, 4, 6, 8, 12, SSF_GEMM_SPLIT_MAX};
    int n = 0;
    for (int i = 0; i < SSF_GEMM_SPLIT_COUNTS; i++)
        if (K / counts[i] >= SSF_GEMM_MIN_SPLIT_K) out[n++] = counts[i];
    return n;
}

/* snprintf's to buf + *used, *used counting what the text would take. */
static void append(char *buf, size_t n, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t n, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*used < n ? buf + *used : NULL, *used < n ? n - *used : 0, fmt, ap);
    va_end(ap);
    if (k > 0) *used += (size_t)k;
}

/* "qkv 0.71 own", "o 1.02" or "down disagrees". */
static void verdict_text(char *buf, size_t n, size_t *used, const ssf_pgemm_verdict *v)
{
    if (!v->agrees)
        append(buf, n, used, "%s disagrees", v->gemm);
    else
        append(buf, n, used, "%s %.2f%s", v->gemm, v->blas_ms > 0 ? v->own_ms / v->blas_ms : 0.0,
               v->own ? " own" : "");
}

size_t ssf_gemm_split_report(char *buf, size_t n, const ssf_gemm_split_pick *p, int count)
{
    size_t used = 0;
    if (n) buf[0] = 0;
    for (int i = 0, rows = -1; i < count; i++) {
        if (p[i].splits <= 1) continue;
        if (p[i].rows != rows)
            append(buf, n, &used,
                   "%s%d rows: ", used ? "; " : "cuda: cuBLAS's choices split K: ", p[i].rows);
        else
            append(buf, n, &used, ", ");
        rows = p[i].rows;
        append(buf, n, &used, "%s %d", p[i].gemm, p[i].splits);
    }
    return used;
}

size_t ssf_pgemm_report(char *buf, size_t n, const ssf_pgemm_verdict *v, int rows, int gemms)
{
    size_t used = 0;
    if (n) buf[0] = 0;
    for (int r = 0; r < rows; r++)
        for (int g = 0, first = 1; g < gemms; g++) {
            const ssf_pgemm_verdict *at = &v[(size_t)r * (size_t)gemms + g];
            if (!at->tuned) continue;
            if (first)
                append(
                    buf, n, &used, "%s%d rows: ",
                    used ? "; " : "cuda: own GEMM where tuned, its time over cuBLAS's: ", at->rows);
            else
                append(buf, n, &used, ", ");
            first = 0;
            verdict_text(buf, n, &used, at);
        }
    return used;
}
