/*
 * test_engine_cuda.c - the CUDA device: each kernel against a CPU reference
 * computed from the same BF16-rounded inputs (cuda_ops.h), then whole
 * forwards of the tiny checkpoints under tests/fixtures/engine against the
 * fp32 logits transformers computed for them, through full prefills,
 * chunked prefill then decode, forks (shared blocks plus copy_blocks) and
 * mixed batches, with block sizes 1 and 16 and scattered block tables.
 *
 * Without a GPU (or without a CUDA build) only the refusal is checked; the
 * rest skips.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_ops.h"
#include "cuda_plan.h"
#include "device.h"
#include "fixture-vocab.h"
#include "ssfteval/model.h"
#include "ssfteval/util.h"

/* max|d| / max|ref| per logit row, BF16 vs fp32: transformers' own BF16
 * model is 0.014-0.029 off on these fixtures (bench/README-gpu.md) */
#define REL_TOL 4e-2
/* share of decisive rows whose argmax agrees: rows whose reference top-1
 * leads by more than twice the row's max|d|, which no error of that size
 * could overturn (near-ties flip in transformers' BF16 model too) */
#define TOP1_MIN 0.99
#define N_SEQS 4
#define MAX_CONTEXT 128

/* ---- helpers ---------------------------------------------------------------- */

static float bf16r(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* A deterministic uniform draw in [-1, 1), rounded to BF16. */
static float draw(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return bf16r((float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0));
}

static float *draws(size_t n, float scale, float offset, uint64_t seed)
{
    float *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++)
        x[i] = bf16r(offset + scale * draw(&seed));
    return x;
}

static void skip_without_gpu(void)
{
    if (!ssf_device_cuda_available()) {
        fprintf(stderr, "skipped: no CUDA device (or a build without CUDA)\n");
        skip();
    }
}

/* |got - ref| <= rtol |ref| + atol for every element, reporting the first
 * failure. */
static void expect_close(const char *what, const float *got, const double *ref, size_t n,
                         double rtol, double atol)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= rtol * fabs(ref[i]) + atol)) {
            fail_msg("%s: element %zu: got %.6g, reference %.6g", what, i, (double)got[i], ref[i]);
        }
    }
}

static char *fixture_root(void)
{
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    size_t n = strlen(root ? root : ".") + 32;
    char *p = malloc(n);
    snprintf(p, n, "%s/tests/fixtures/engine", root ? root : ".");
    return p;
}

/* A table for n_ctx positions in blocks of bs, scattered backwards over a
 * pool twice as large (the blocks in between hold NaN: a stray read shows). */
typedef struct op_pages {
    int32_t tab[4096];
    ssf_cuda_op_pages pg;
} op_pages;

static const ssf_cuda_op_pages *op_pages_make(op_pages *p, int n_ctx, int bs)
{
    int need = (n_ctx + bs - 1) / bs;
    assert_true(need <= 4096);
    for (int i = 0; i < need; i++)
        p->tab[i] = 2 * (need - 1 - i) + 1;
    p->pg = (ssf_cuda_op_pages){.block_size = bs, .table = p->tab, .n_blocks = 2 * need + 1};
    return &p->pg;
}

/* ---- without a GPU: a clear refusal --------------------------------------------- */

/* The test model the refusals open: any will do. */
static ssf_model *open_gqa5(void)
{
    char *root = fixture_root(), dir[1024];
    snprintf(dir, sizeof dir, "%s/gqa5-hd128", root);
    free(root);
    ssf_model *m = NULL;
    ssf_error err = {0};
    if (ssf_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    return m;
}

static void test_refusal_without_device(void **state)
{
    (void)state;
    if (ssf_device_cuda_available()) skip();
    ssf_model *m = open_gqa5();
    ssf_device_options o = {
        .n_slots = 1, .max_context = 64, .block_size = 16, .gpu_memory_utilization = 0.9};
    ssf_error e2 = {0};
    assert_null(ssf_device_cuda_open(m, &o, &e2));
    /* either "no CUDA device found; ..." or "this build has no CUDA ..." */
    assert_non_null(strstr(e2.msg, "CUDA"));
    assert_non_null(strstr(e2.msg, "--device cpu"));
    assert_null(strchr(e2.msg, '\n'));
    assert_int_equal(e2.usage, 0); /* the machine, not the command line */
    float out[4];
    assert_int_equal(ssf_cuda_op_silu_mul(1, 2, 0, out, out, &e2), -1);
    ssf_model_close(m);
}

/* Bad device options are refused, a line naming the fix, before a device
 * is looked for (a build without CUDA refuses them all as such). */
static void test_option_refusals(void **state)
{
    (void)state;
    ssf_model *m = open_gqa5();
    ssf_error err = {0};
    ssf_device_options o = {.n_slots = 1,
                            .max_context = 64,
                            .block_size = 16,
                            .gpu_memory_utilization = 0.9,
                            .own_small_gemms = SSF_OWN_GEMMS_TUNED,
                            .disable_cuda_graphs = 1};
    assert_null(ssf_device_cuda_open(m, &o, &err));
    int built = strstr(err.msg, "this build has no CUDA") == NULL;
    if (built) assert_non_null(strstr(err.msg, "drop --no-cuda-graphs"));
    assert_int_equal(err.usage, built); /* refused as given: a bad command line */
    assert_null(strchr(err.msg, '\n'));
    o.disable_cuda_graphs = 0;
    o.own_small_gemms = 99;
    assert_null(ssf_device_cuda_open(m, &o, &err));
    if (built) assert_non_null(strstr(err.msg, "own_small_gemms 99"));
    assert_int_equal(err.usage, built);
    /* folded norms keep cuBLAS's GEMMs and the RoPE kernel */
    o.own_small_gemms = SSF_OWN_GEMMS_DEFAULT;
    o.fold_norms = 1;
    o.disable_fold_norms = 1;
    assert_null(ssf_device_cuda_open(m, &o, &err));
    if (built) assert_non_null(strstr(err.msg, "--fold-norms and --no-fold-norms"));
    assert_int_equal(err.usage, built);
    o.disable_fold_norms = 0;
    o.fold_norms = 0;
    o.gemm_split_search = o.disable_gemm_split_search = 1;
    assert_null(ssf_device_cuda_open(m, &o, &err));
    if (built) assert_non_null(strstr(err.msg, "--gemm-split-search and --no-gemm-split-search"));
    assert_int_equal(err.usage, built);
    o.gemm_split_search = o.disable_gemm_split_search = 0;
    o.fold_norms = 1;
    for (int k = 0; k < 3; k++) {
        o.rope_in_attention = k == 0, o.fuse_norms = k == 1;
        o.own_small_gemms = k == 2 ? SSF_OWN_GEMMS_ALWAYS : SSF_OWN_GEMMS_DEFAULT;
        assert_null(ssf_device_cuda_open(m, &o, &err));
        if (built) assert_non_null(strstr(err.msg, "--fold-norms keeps cuBLAS's GEMMs"));
        assert_int_equal(err.usage, built);
    }
    ssf_model_close(m);
}

/* The benches' replay timing refuses what is not a CUDA device, a line
 * each (a build without CUDA refuses it as such). */
static void test_replay_time_refusals(void **state)
{
    (void)state;
    ssf_error err = {0};
    long replays = -1;
    double ms = -1;
    assert_int_equal(ssf_cuda_time_replays(NULL, &err), -1);
    assert_non_null(strstr(err.msg, "CUDA"));
    assert_null(strchr(err.msg, '\n'));
    err.msg[0] = 0;
    assert_int_equal(ssf_cuda_replay_time(NULL, &replays, &ms, &err), -1);
    assert_non_null(strstr(err.msg, "CUDA"));
    assert_true(replays == -1 && ms == -1);
}

/* ---- kernels -------------------------------------------------------------------- */

static void check_rmsnorm(int rows, int C, int with_add)
{
    size_t n = (size_t)rows * C;
    float *x = draws(n, 3.0f, 0.0f, 11 + C), *add = with_add ? draws(n, 1.0f, 0.0f, 12) : NULL;
    float *w = draws((size_t)C, 0.1f, 1.0f, 13), *xo = malloc(n * 4), *out = malloc(n * 4);
    ssf_error err = {0};
    if (ssf_cuda_op_rmsnorm(rows, C, 1e-6f, x, add, w, xo, out, &err)) fail_msg("%s", err.msg);
    double *rx = malloc(n * 8), *ro = malloc(n * 8);
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < C; i++) {
            size_t k = (size_t)r * C + i;
            rx[k] = add ? bf16r(x[k] + add[k]) : x[k];
            ss += rx[k] * rx[k];
        }
        double rstd = 1.0 / sqrt(ss / C + 1e-6);
        for (int i = 0; i < C; i++) {
            size_t k = (size_t)r * C + i;
            ro[k] = (double)bf16r((float)((double)bf16r((float)(rx[k] * rstd)) * w[i]));
        }
    }
    expect_close("rmsnorm residual", xo, rx, n, 0, 0);
    /* one BF16 step either way from a different summation order */
    expect_close("rmsnorm", out, ro, n, 1.6e-2, 1e-6);
    free(x), free(add), free(w), free(xo), free(out), free(rx), free(ro);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    skip_without_gpu();
    check_rmsnorm(3, 640, 0);
    check_rmsnorm(5, 896, 1);
    check_rmsnorm(1, 1001, 1); /* not a multiple of the block */
}

/* The column of gate|up that holds output i's gate: gate's half, or (block)
 * the first of each pair of `block` columns; up's is `block` (or inter)
 * further. */
static size_t gate_column(size_t i, int inter, int block)
{
    return block ? i / block * 2 * block + i % block : i;
}

static void check_silu_mul(int rows, int inter, int block)
{
    size_t n = (size_t)rows * inter, up = block ? (size_t)block : (size_t)inter;
    float *gu = draws(2 * n, 6.0f, 0.0f, 21), *h = malloc(n * 4);
    double *ref = malloc(n * 8);
    ssf_error err = {0};
    if (ssf_cuda_op_silu_mul(rows, inter, block, gu, h, &err)) fail_msg("%s", err.msg);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < inter; i++) {
            const float *row = gu + (size_t)r * 2 * inter;
            size_t c = gate_column((size_t)i, inter, block);
            double g = row[c], u = row[c + up];
            ref[(size_t)r * inter + i] =
                bf16r((float)((double)bf16r((float)(g / (1 + exp(-g)))) * u));
        }
    expect_close("silu_mul", h, ref, n, 1.6e-2, 1e-6);
    free(gu), free(h), free(ref);
}

/* gate's then up's halves, and the pairs of 64 columns the own GEMM's
 * SwiGLU epilogue has the weights' rows in */
static void test_silu_mul(void **state)
{
    (void)state;
    skip_without_gpu();
    check_silu_mul(7, 300, 0);
    check_silu_mul(5, 320, 64);
}

/* A kernel launched as the engine launches its own (launch_pdl) reads what
 * the kernel before it wrote, on a stream and from a graph, even when it
 * starts before that kernel ends, as it does on an sm_90 device. */
static void test_pdl_order(void **state)
{
    (void)state;
    skip_without_gpu();
    int seen = 0;
    double early_us[2] = {0, 0};
    ssf_error err = {0};
    for (int spin_us = 0; spin_us <= 100; spin_us += 50) {
        if (ssf_cuda_op_pdl_order(spin_us, &seen, early_us, &err)) fail_msg("%s", err.msg);
        fprintf(stderr,
                "spin %d us: second kernel started %.1f us (stream), %.1f us (graph) "
                "before the first ended\n",
                spin_us, early_us[0], early_us[1]);
        assert_int_equal(seen, 1);
    }
}

/* Y against ref, each within 1e-5 of its products' magnitude mag plus
 * `rel` of itself and of `product` where given (BF16 roundings of the
 * output and of the product), NaN-safe: an element
 * left unwritten (NaN) fails. */
static void check_gemm(int M, int N, int K, const ssf_gemm_op *op, const float *Y,
                       const double *ref, const double *mag, double rel, const double *product)
{
    for (size_t i = 0; i < (size_t)M * N; i++)
        if (!(fabs(Y[i] - ref[i]) <=
              1e-5 * mag[i] + rel * (fabs(ref[i]) + (product ? fabs(product[i]) : 0)) + 1e-6))
            fail_msg("gemm %dx%dx%d, splits %d%s%s (%s): [%zu][%zu] got %.7g, reference %.7g", M, N,
                     K, op->splits, op->bf16_out ? ", BF16 out" : "",
                     op->accumulate ? ", accumulating" : "", op->how, i / (size_t)N, i % (size_t)N,
                     (double)Y[i], ref[i]);
}

/* One run of the GEMM as op says, checked against the double reference
 * (with accumulate, C's draws rounded as Y holds them, plus the sums). */
static void run_checked(int M, int N, int K, const float *X, const float *W, ssf_gemm_op *op,
                        const double *sums, const double *mag)
{
    size_t n = (size_t)M * N;
    float *Y = malloc(n * 4);
    double *ref = malloc(n * 8);
    float *C = draws(n, 2.0f, 0.0f, 77);
    for (size_t i = 0; i < n; i++) {
        double c = op->bf16_out ? bf16r(C[i]) : C[i];
        Y[i] = C[i];
        ref[i] = sums[i] + (op->accumulate ? c : 0.0);
    }
    ssf_error err = {0};
    if (ssf_cuda_op_gemm(M, N, K, X, W, Y, op, &err)) fail_msg("%s", err.msg);
    char pinned[32];
    snprintf(pinned, sizeof pinned, "cublasLt-split%d", op->splits);
    if (op->splits > 1 && strcmp(op->how, pinned) != 0)
        fail_msg("gemm %dx%dx%d pinned at %d splits ran as %s", M, N, K, op->splits, op->how);
    /* a BF16 output is one rounding of the fp32 result: half a step, 2^-8 of
     * it; added to C, cuBLAS may round the product to BF16 before the sum
     * (run P, H200: 2 units off at 7 x 1408 x 640), so a rounding of the
     * product's size too */
    check_gemm(M, N, K, op, Y, ref, mag, op->bf16_out ? 1.0 / 256 : 0.0,
               op->bf16_out && op->accumulate ? sums : NULL);
    free(Y), free(ref), free(C);
}

/* The tuned path, and at K of 512 and more each split count the split
 * search may time (ssf_gemm_split_counts), pinned and named as it ran:
 * fp32 out, and as the engine's layers run it, BF16 out added in place to
 * the residual stream (beta 1, C == D).  Split partials must be summed in
 * fp32 like the unsplit sums.  The 64 x 384 x 4096 shape is a decode
 * GEMM's: few output tiles over a long K. */
static void test_gemm(void **state)
{
    (void)state;
    skip_without_gpu();
    int shapes[][3] = {
        {1, 97, 640}, {7, 1408, 640}, {33, 512, 128}, {300, 64, 896}, {64, 384, 4096}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *X = draws((size_t)M * K, 1.0f, 0.0f, 31 + s), *W = draws((size_t)N * K, 0.1f, 0, 32);
        double *sums = malloc((size_t)M * N * 8), *mag = malloc((size_t)M * N * 8);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double acc = 0, sum = 0;
                for (int k = 0; k < K; k++) {
                    acc += (double)X[(size_t)m * K + k] * W[(size_t)n * K + k];
                    sum += fabs((double)X[(size_t)m * K + k] * W[(size_t)n * K + k]);
                }
                sums[(size_t)m * N + n] = acc, mag[(size_t)m * N + n] = sum;
            }
        int counts[1 + SSF_GEMM_SPLIT_COUNTS] = {0};
        int n_runs = 1 + ssf_gemm_split_counts(K, counts + 1);
        for (int r = 0; r < n_runs; r++) {
            ssf_gemm_op plain = {.splits = counts[r]};
            run_checked(M, N, K, X, W, &plain, sums, mag);
            ssf_gemm_op layer = {.splits = counts[r], .bf16_out = 1, .accumulate = 1};
            run_checked(M, N, K, X, W, &layer, sums, mag);
        }
        free(X), free(W), free(sums), free(mag);
    }
}

/* The SiLU product's element as the kernels make it (cuda_common.cuh),
 * from BF16 g and u. */
static double silu_times(float g, float u)
{
    float a = bf16r(g / (1.0f + expf(-g)));
    return bf16r(a * u);
}

static double row_dot(const float *x, const float *w, int K, double *mag)
{
    double acc = 0;
    for (int k = 0; k < K; k++) { /* draws are BF16 values */
        acc += (double)x[k] * w[k];
        *mag += fabs((double)x[k] * w[k]);
    }
    return acc;
}

/* Row m of Y against doubles: X . W^T, or with SwiGLU's epilogue h from
 * the rows of gate and up that the tiles of bn columns interleave.  A
 * BF16-rounded gate or up may be a unit of the last place off the
 * kernel's (fp32 sums), which SiLU and the product carry to h. */
static void check_own_gemm_row(const float *X, const float *W, const float *Y, int m, int N, int K,
                               int swiglu, int bn)
{
    const float *x = X + (size_t)m * K;
    for (int n = 0; n < (swiglu ? N / 2 : N); n++) {
        double mag = 0, want, got = Y[(size_t)m * (swiglu ? N / 2 : N) + n], tol;
        if (swiglu) {
            size_t gate = gate_column((size_t)n, N / 2, bn / 2), up = gate + (size_t)bn / 2;
            double g = row_dot(x, W + gate * K, K, &mag), u = row_dot(x, W + up * K, K, &mag);
            want = silu_times(bf16r((float)g), bf16r((float)u));
            tol = fabs(want) / 32 + 1e-3;
        } else {
            want = row_dot(x, W + (size_t)n * K, K, &mag);
            tol = fabs(want) / 256 + 1e-5 * mag + 1e-6; /* BF16 out: half a unit of its 8 bits */
        }
        if (fabs(got - want) > tol)
            fail_msg("own gemm N %d K %d%s: [%d][%d] got %.7g, reference %.7g", N, K,
                     swiglu ? " SwiGLU" : "", m, n, got, want);
    }
}

/* The own GEMM kernel against a double GEMM: 1.5B's q|k|v and o (4 and 6
 * splits on an H100), gate|up with SwiGLU's epilogue (128-column tiles,
 * 24 slices through a ring of 4) and down (5 splits of 28 slices through
 * a ring of 8), 0.5B's q|k|v at rows that leave warps idle and its
 * gate|up at 40 rows (64-column tiles); the op launches each three times,
 * which must agree bit for bit. */
static void test_pgemm(void **state)
{
    (void)state;
    skip_without_gpu();
    int shapes[][4] = {{64, 2048, 1536, 0}, {64, 1536, 1536, 0}, {64, 17920, 1536, 1},
                       {64, 1536, 8960, 0}, {33, 1152, 896, 0},  {1, 1152, 896, 0},
                       {17, 64, 1024, 0},   {40, 9728, 896, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], swiglu = shapes[s][3];
        float *X = draws((size_t)M * K, 1.0f, 0.0f, 41 + s);
        float *W = draws((size_t)N * K, 0.1f, 0, 42), *Y = malloc((size_t)M * N * 4);
        ssf_pgemm_shape sh;
        ssf_error err = {0};
        if (ssf_cuda_op_pgemm(M, N, K, swiglu, X, W, Y, &sh, &err)) fail_msg("%s", err.msg);
        fprintf(stderr, "# own GEMM %dx%dx%d%s: %d tiles of %d x %d splits of %d, a ring of %d\n",
                M, N, K, swiglu ? " SwiGLU" : "", sh.tiles, sh.bn, sh.splits, sh.chunk, sh.stages);
        for (int m = 0; m < M; m++)
            check_own_gemm_row(X, W, Y, m, N, K, swiglu, sh.bn);
        free(X), free(W), free(Y);
    }
}

/* ref (n_rows of hd doubles) replaced by what an fp8 pool holds of it. */
static void fp8_expect(double *ref, size_t n_rows, int hd)
{
    size_t n = n_rows * (size_t)hd;
    float *x = calloc(n + 1, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)ref[i];
    ssf_error err = {0};
    if (ssf_cuda_op_fp8_rows((int)n_rows, hd, x, x, &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < n; i++)
        ref[i] = x[i];
    free(x);
}

/* fp8: the pool holds e4m3 rows, read back scaled */
static void check_rope(int nh, int nkv, int hd, int with_bias, int bs, int fp8)
{
    int pos[] = {0, 1, 2, 17, 4095, 30000};
    int rows = (int)(sizeof pos / sizeof pos[0]), width = (nh + 2 * nkv) * hd, half = hd / 2;
    float *qkv = draws((size_t)rows * width, 2.0f, 0.0f, 41);
    float *bias = with_bias ? draws((size_t)width, 0.5f, 0.0f, 42) : NULL;
    float *q = malloc((size_t)rows * nh * hd * 4), *k = malloc((size_t)rows * nkv * hd * 4);
    float *v = malloc((size_t)rows * nkv * hd * 4);
    int32_t p32[6];
    for (int r = 0; r < rows; r++)
        p32[r] = pos[r];
    ssf_error err = {0};
    op_pages pages;
    op_pages_make(&pages, 30001, bs);
    pages.pg.fp8 = fp8;
    if (ssf_cuda_op_rope_store(rows, nh, nkv, hd, 1e6, qkv, bias, p32, &pages.pg, q, k, v, &err))
        fail_msg("%s", err.msg);
    double *rq = calloc((size_t)rows * nh * hd, 8), *rk = calloc((size_t)rows * nkv * hd, 8);
    double *rv = calloc((size_t)rows * nkv * hd, 8);
    for (int r = 0; r < rows; r++) {
        const float *row = qkv + (size_t)r * width;
        for (int h = 0; h < nh + nkv; h++)
            for (int d = 0; d < half; d++) {
                int j1 = h * hd + d, j2 = j1 + half;
                double x1 = row[j1], x2 = row[j2];
                if (bias) x1 = bf16r((float)(x1 + bias[j1])), x2 = bf16r((float)(x2 + bias[j2]));
                float inv = 1.0f / powf(1e6f, (float)(2 * d) / (float)hd);
                double a = (double)((float)pos[r] * inv);
                double o1 = x1 * cos(a) - x2 * sin(a), o2 = x2 * cos(a) + x1 * sin(a);
                double *dst = h < nh ? rq + (size_t)r * nh * hd + (size_t)h * hd
                                     : rk + (size_t)r * nkv * hd + (size_t)(h - nh) * hd;
                dst[d] = o1;
                dst[d + half] = o2;
            }
        for (int i = 0; i < nkv * hd; i++) {
            int j = (nh + nkv) * hd + i;
            rv[(size_t)r * nkv * hd + i] = bf16r(row[j] + (bias ? bias[j] : 0.0f));
        }
    }
    /* rounding of the output and of sincosf at 30000 rad */
    expect_close("rope q", q, rq, (size_t)rows * nh * hd, 8e-3, 2e-3);
    if (fp8) {
        /* v: exactly the host's e4m3 rows; k: BF16's differences may move
         * a value by one e4m3 step (1/8 of it at most) */
        fp8_expect(rk, (size_t)rows * nkv, hd);
        fp8_expect(rv, (size_t)rows * nkv, hd);
    }
    expect_close("rope k", k, rk, (size_t)rows * nkv * hd, fp8 ? 0.13 : 8e-3, 2e-3);
    expect_close("cache v", v, rv, (size_t)rows * nkv * hd, 0, 1e-6);
    free(qkv), free(bias), free(q), free(k), free(v), free(rq), free(rk), free(rv);
}

static void test_rope_store(void **state)
{
    (void)state;
    skip_without_gpu();
    for (int fp8 = 0; fp8 <= 1; fp8++) {
        check_rope(5, 1, 128, 1, 16, fp8);
        check_rope(14, 2, 64, 1, 16, fp8);
        check_rope(4, 4, 64, 0, 16, fp8);
        check_rope(12, 2, 128, 1, 32, fp8);
        check_rope(16, 8, 128, 1, 48, fp8); /* 16 K and V rows: two passes of 8 warps */
    }
}

/* ref[r] = softmax(q[r] k^T / sqrt(hd)) v over positions 0..pos[r], in
 * double, each q-head with its KV head. */
static void reference_attention(const float *q, const float *k, const float *v, const int32_t *pos,
                                int rows, int nh, int nkv, int hd, double *ref)
{
    int qd = nh * hd, kvd = nkv * hd, group = nh / nkv, n_ctx = 0;
    for (int r = 0; r < rows; r++)
        n_ctx = pos[r] + 1 > n_ctx ? pos[r] + 1 : n_ctx;
    double *s = malloc((size_t)n_ctx * 8);
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < nh; h++) {
            const float *qh = q + (size_t)r * qd + (size_t)h * hd;
            int kh = h / group;
            double mx = -INFINITY, sum = 0;
            for (int t = 0; t <= pos[r]; t++) {
                double dot = 0;
                for (int d = 0; d < hd; d++)
                    dot += (double)qh[d] * k[(size_t)t * kvd + (size_t)kh * hd + d];
                s[t] = dot / sqrt((double)hd);
                mx = s[t] > mx ? s[t] : mx;
            }
            for (int t = 0; t <= pos[r]; t++)
                sum += s[t] = exp(s[t] - mx);
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int t = 0; t <= pos[r]; t++)
                    o += s[t] * v[(size_t)t * kvd + (size_t)kh * hd + d];
                ref[(size_t)r * qd + (size_t)h * hd + d] = o / sum;
            }
        }
    free(s);
}

/* slots 1 plans without splits, 10000 with them wherever the context is
 * long enough (cuda_plan.c).  fp8: the pool holds e4m3 rows, and the
 * reference attends over the values they hold. */
static void check_attention(int nh, int nkv, int hd, int n_ctx, int bs, int slots, int fp8)
{
    int32_t pos[] = {0, 1, (int32_t)(n_ctx / 2), (int32_t)(n_ctx - 2), (int32_t)(n_ctx - 1)};
    int rows = 5, qd = nh * hd, kvd = nkv * hd;
    float *q = draws((size_t)rows * qd, 2.0f, 0.0f, 51 + nh),
          *k = draws((size_t)n_ctx * kvd, 2.0f, 0, 52);
    float *v = draws((size_t)n_ctx * kvd, 1.0f, 0.0f, 53), *out = malloc((size_t)rows * qd * 4);
    ssf_error err = {0};
    op_pages pages;
    int splits = 0;
    op_pages_make(&pages, n_ctx, bs);
    pages.pg.fp8 = fp8;
    if (ssf_cuda_op_attention(rows, nh, nkv, hd, n_ctx, q, k, v, pos, &pages.pg, slots, out,
                              &splits, &err))
        fail_msg("%s", err.msg);
    if (fp8 && (ssf_cuda_op_fp8_rows(n_ctx * nkv, hd, k, k, &err) ||
                ssf_cuda_op_fp8_rows(n_ctx * nkv, hd, v, v, &err)))
        fail_msg("%s", err.msg);
    /* the path asked for was the one taken */
    if (slots == 1) assert_int_equal(splits, 1);
    if (slots > 1000 && n_ctx >= 2 * SSF_ATTN_MIN_CHUNK) assert_true(splits >= 2);
    double *ref = malloc((size_t)rows * qd * 8);
    reference_attention(q, k, v, pos, rows, nh, nkv, hd, ref);
    char what[64];
    snprintf(what, sizeof what, "attention %d/%d heads hd %d ctx %d bs %d splits %d%s", nh, nkv, hd,
             n_ctx, bs, splits, fp8 ? " fp8" : "");
    expect_close(what, out, ref, (size_t)rows * qd, 8e-3, 2e-3);
    free(q), free(k), free(v), free(out), free(ref);
}

static void test_attention(void **state)
{
    (void)state;
    skip_without_gpu();
    /* GQA 5, 6, 7, 8, 1 (MHA) and 12 (two CTAs a KV head); contexts inside
     * one tile and across several; block sizes 1, 16 and 48 (not a tile's
     * divisor) */
    for (int fp8 = 0; fp8 <= 1; fp8++) {
        check_attention(5, 1, 128, 3, 16, 1, fp8);
        check_attention(10, 2, 128, 300, 16, 1, fp8);
        check_attention(12, 2, 128, 129, 1, 1, fp8);
        check_attention(14, 2, 64, 200, 16, 1, fp8);
        check_attention(7, 1, 64, 64, 48, 1, fp8);
        check_attention(16, 2, 128, 1000, 16, 1, fp8);
        check_attention(4, 4, 64, 65, 16, 1, fp8);
        check_attention(12, 1, 64, 100, 16, 1, fp8);
        /* split-KV: partials merged by log-sum-exp */
        check_attention(5, 1, 128, 2000, 16, 10000, fp8);
        check_attention(14, 2, 64, 1000, 1, 10000, fp8);
        check_attention(16, 2, 128, 777, 48, 10000, fp8);
        check_attention(4, 4, 64, 4096, 16, 10000, fp8);
    }
}

/* count rows at positions first .. first + count - 1, then two rows that
 * break the run (the last position again, and a third of the way), through
 * the engine's split: runs of SSF_PREFILL_MIN_RUN or more take the prefill
 * kernel in q-blocks of SSF_PREFILL_QB, the rest the decode kernel, whose
 * row list then is not the identity (and long contexts split it); against
 * the reference (over the values an fp8 pool holds, with fp8). */
static void check_prefill(int nh, int nkv, int hd, int first, int count, int bs, int fp8)
{
    int rows = count + 2, n_ctx = first + count, qd = nh * hd, kvd = nkv * hd;
    int32_t *pos = malloc((size_t)rows * sizeof(int32_t));
    for (int i = 0; i < count; i++)
        pos[i] = first + i;
    pos[count] = n_ctx - 1, pos[count + 1] = n_ctx / 3;
    float *q = draws((size_t)rows * qd, 2.0f, 0.0f, 61 + nh),
          *k = draws((size_t)n_ctx * kvd, 2.0f, 0, 62);
    float *v = draws((size_t)n_ctx * kvd, 1.0f, 0.0f, 63), *out = malloc((size_t)rows * qd * 4);
    ssf_error err = {0};
    op_pages pages;
    op_pages_make(&pages, n_ctx, bs);
    pages.pg.fp8 = fp8;
    int nq = -1;
    if (ssf_cuda_op_prefill_attention(rows, nh, nkv, hd, n_ctx, q, k, v, pos, &pages.pg, out, &nq,
                                      &err))
        fail_msg("%s", err.msg);
    if (fp8 && (ssf_cuda_op_fp8_rows(n_ctx * nkv, hd, k, k, &err) ||
                ssf_cuda_op_fp8_rows(n_ctx * nkv, hd, v, v, &err)))
        fail_msg("%s", err.msg);
    int want = count >= SSF_PREFILL_MIN_RUN ? (count + SSF_PREFILL_QB - 1) / SSF_PREFILL_QB : 0;
    assert_int_equal(nq, want);
    double *ref = malloc((size_t)rows * qd * 8);
    reference_attention(q, k, v, pos, rows, nh, nkv, hd, ref);
    char what[96];
    snprintf(what, sizeof what, "prefill %d/%d heads hd %d rows %d from %d bs %d, %d q-blocks%s",
             nh, nkv, hd, count, first, bs, nq, fp8 ? " fp8" : "");
    expect_close(what, out, ref, (size_t)rows * qd, 8e-3, 2e-3);
    free(pos), free(q), free(k), free(v), free(out), free(ref);
}

static void test_prefill_attention(void **state)
{
    (void)state;
    skip_without_gpu();
    /* GQA 5, 6, 7, 1 (MHA) and 8; a whole prompt, runs starting off a
     * q-block and tile boundary, a last q-block of a few rows, block sizes
     * 16, 1 (a table read a row) and 48; a run too short for a q-block */
    for (int fp8 = 0; fp8 <= 1; fp8++) {
        check_prefill(5, 1, 128, 0, 300, 16, fp8);
        check_prefill(12, 2, 128, 37, 150, 1, fp8);
        check_prefill(14, 2, 64, 100, 29, 48, fp8);
        check_prefill(4, 4, 64, 0, 70, 16, fp8);
        check_prefill(7, 1, 64, 990, 10, 16, fp8);
        check_prefill(16, 2, 128, 1000, 1048, 16, fp8);
        check_prefill(8, 1, 128, 5, 16, 16, fp8);
    }
}

/* The e4m3 rounding the fp8 op tests compare against, on the host (no GPU
 * needed, only a CUDA build): a row's largest magnitude maps to 448 and
 * stays exact, values that e4m3 holds at the row's scale stay exact, the
 * rest move by at most half a step (1/16 of the value, or half the
 * smallest subnormal step, 2^-10 of the scale), and a row of zeros stays
 * zero. */
static void test_fp8_rows_host(void **state)
{
    (void)state;
    enum { HD = 64 };
    float x[3 * HD] = {0}, out[3 * HD];
    float exact[] = {448.0f, -448.0f, 1.0f, 0.5f, -2.0f, 240.0f, 0.015625f, 0.001953125f};
    for (int d = 0; d < HD; d++)
        x[d] = d < 8 ? exact[d] : 0.0f; /* row 0: scale 1 */
    uint64_t seed = 7;
    for (int d = 0; d < HD; d++)
        x[HD + d] = bf16r(3.0f * draw(&seed)); /* row 1: any scale; row 2: zeros */
    ssf_error err = {0};
    if (ssf_cuda_op_fp8_rows(3, HD, x, out, &err)) {
        assert_non_null(strstr(err.msg, "CUDA")); /* a build without CUDA says so */
        skip();
    }
    for (int d = 0; d < HD; d++)
        if (out[d] != x[d]) fail_msg("row 0 element %d: %g became %g", d, x[d], out[d]);
    float amax = 0;
    for (int d = 0; d < HD; d++)
        amax = fmaxf(amax, fabsf(x[HD + d]));
    float scale = amax / 448.0f;
    for (int d = 0; d < HD; d++) {
        float v = x[HD + d], got = out[HD + d];
        if (fabsf(v) == amax) assert_true(got == v);
        if (!(fabsf(got - v) <= fabsf(v) / 16 + scale / 1024))
            fail_msg("row 1 element %d: %g became %g (scale %g)", d, v, got, scale);
    }
    for (int d = 0; d < HD; d++)
        assert_true(out[2 * HD + d] == 0.0f);
}

/* ---- whole models ----------------------------------------------------------------- */

typedef struct fixture {
    char dir[1024];
    ssf_model *model;
    ssf_safetensors *expected;
    int vocab, n_valid;
} fixture;

typedef struct prompt_ref {
    int32_t *tok; /* prompt ids then the greedy continuation */
    int len, n;   /* prompt length; tokens fed (len + gen - 1) */
    float *ref;   /* [n][vocab] fp32 logits from transformers */
} prompt_ref;

static float *read_all(const ssf_tensor *t)
{
    float *x = malloc((size_t)t->numel * sizeof *x + 1);
    ssf_tensor_read_f32(t, 0, t->numel, x);
    return x;
}

/* Prompt p of the fixture: logits rows 0..len-1 from the full forward, and
 * gen_logits[j] at position len - 1 + j. */
static int load_prompt(const fixture *f, int p, prompt_ref *pr)
{
    char name[64];
    snprintf(name, sizeof name, "prompt%d.ids", p);
    const ssf_tensor *ids = ssf_safetensors_find(f->expected, name);
    if (!ids) return 0;
    snprintf(name, sizeof name, "prompt%d.gen_ids", p);
    const ssf_tensor *gen = ssf_safetensors_find(f->expected, name);
    snprintf(name, sizeof name, "prompt%d.logits", p);
    const ssf_tensor *lg = ssf_safetensors_find(f->expected, name);
    snprintf(name, sizeof name, "prompt%d.gen_logits", p);
    const ssf_tensor *gl = ssf_safetensors_find(f->expected, name);
    assert_true(gen && lg && gl);
    int len = (int)ids->numel, ng = (int)gen->numel, V = f->vocab;
    float *fi = read_all(ids), *fg = read_all(gen), *fl = read_all(lg), *fgl = read_all(gl);
    pr->len = len;
    pr->n = len + ng - 1;
    pr->tok = malloc((size_t)(len + ng) * sizeof(int32_t));
    for (int i = 0; i < len; i++)
        pr->tok[i] = (int32_t)fi[i];
    for (int j = 0; j < ng; j++)
        pr->tok[len + j] = (int32_t)fg[j];
    pr->ref = malloc((size_t)pr->n * V * sizeof(float));
    memcpy(pr->ref, fl, (size_t)len * V * sizeof(float));
    for (int j = 1; j < ng; j++)
        memcpy(pr->ref + (size_t)(len - 1 + j) * V, fgl + (size_t)j * V, (size_t)V * sizeof(float));
    free(fi), free(fg), free(fl), free(fgl);
    return 1;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* How far the top logit of x leads the runner-up. */
static double top_margin(const float *x, int n)
{
    double a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > a)
            b = a, a = x[i];
        else if (x[i] > b)
            b = x[i];
    return a - b;
}

/* Worst per-row relative error; the decisive rows and how many of them
 * agree on the argmax. */
static double compare_rows(const fixture *f, const float *got, const float *ref, int rows,
                           int *decisive, int *agree)
{
    double worst = 0;
    *decisive = *agree = 0;
    for (int r = 0; r < rows; r++) {
        const float *g = got + (size_t)r * f->vocab, *e = ref + (size_t)r * f->vocab;
        double md = 0, mr = 0;
        for (int i = 0; i < f->vocab; i++) {
            md = fmax(md, fabs((double)g[i] - e[i]));
            mr = fmax(mr, fabs((double)e[i]));
        }
        worst = fmax(worst, md / (mr > 0 ? mr : 1));
        if (top_margin(e, f->n_valid) > 2 * md) {
            (*decisive)++;
            *agree += argmax(g, f->n_valid) == argmax(e, f->n_valid);
        }
    }
    return worst;
}

static void expect_rows(const fixture *f, const char *what, const float *got, const float *ref,
                        int rows)
{
    int decisive, agree;
    double rel = compare_rows(f, got, ref, rows, &decisive, &agree);
    fprintf(stderr, "# %s %s: rel err %.3g, top-1 %d/%d decisive rows\n", f->dir, what, rel, agree,
            decisive);
    if (rel > REL_TOL) fail_msg("%s %s: relative error %.3g > %g", f->dir, what, rel, REL_TOL);
    if (agree < TOP1_MIN * decisive)
        fail_msg("%s %s: top-1 agrees on %d of %d decisive rows", f->dir, what, agree, decisive);
}

/* Block tables for N_SEQS sequences of MAX_CONTEXT positions: sequence s
 * owns per_seq blocks, spread over the pool in a non-monotonic order when
 * `scatter` (i -> 37 i + 11 mod n_blocks is a permutation). */
typedef struct paging {
    int bs, per_seq, n_blocks, scatter;
    int32_t *tab[N_SEQS];
    const int32_t *tables[N_SEQS];
} paging;

static void paging_layout(paging *pg)
{
    for (int s = 0; s < N_SEQS; s++)
        for (int i = 0; i < pg->per_seq; i++) {
            int idx = s * pg->per_seq + i;
            pg->tab[s][i] = pg->scatter ? pg->n_blocks - 1 - (idx * 37 + 11) % pg->n_blocks : idx;
        }
}

static void paging_init(paging *pg, int bs, int scatter)
{
    pg->bs = bs;
    pg->per_seq = (MAX_CONTEXT + bs - 1) / bs;
    pg->n_blocks = N_SEQS * pg->per_seq + 1; /* one spare: odd, coprime to 37 */
    assert_int_not_equal(pg->n_blocks % 37, 0);
    pg->scatter = scatter;
    for (int s = 0; s < N_SEQS; s++) {
        pg->tab[s] = malloc((size_t)pg->per_seq * sizeof(int32_t));
        pg->tables[s] = pg->tab[s];
    }
    paging_layout(pg);
}

static void paging_free(paging *pg)
{
    for (int s = 0; s < N_SEQS; s++)
        free(pg->tab[s]);
}

/* Rows (token, position, sequence) over pg's tables, nothing asked yet. */
static ssf_fwd_batch rows_batch(const paging *pg, const int32_t *tok, const int32_t *pos,
                                const int32_t *seq, int rows)
{
    ssf_fwd_batch b = {.n_rows = rows,
                       .token = tok,
                       .pos = pos,
                       .seq = seq,
                       .n_seqs = N_SEQS,
                       .tables = pg->tables};
    return b;
}

static void forward_ok(ssf_device *d, const paging *pg, const int32_t *tok, const int32_t *pos,
                       const int32_t *seq, int rows, const int32_t *out, int n_out, float *logits)
{
    ssf_fwd_batch b = rows_batch(pg, tok, pos, seq, rows);
    b.n_out = n_out;
    b.out_rows = out;
    ssf_error err = {0};
    if (d->forward(d, &b, logits, &err)) fail_msg("forward: %s", err.msg);
}

/* Every row of tok[0..n) at positions 0.. in `seq`, logits for all rows. */
static float *full_forward(ssf_device *d, const paging *pg, const prompt_ref *pr, int vocab,
                           int seq)
{
    int n = pr->n;
    int32_t *pos = malloc((size_t)n * 4), *sq = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++)
        pos[i] = out[i] = i, sq[i] = seq;
    float *lg = malloc((size_t)n * vocab * sizeof(float));
    forward_ok(d, pg, pr->tok, pos, sq, n, out, n, lg);
    free(pos), free(sq), free(out);
    return lg;
}

/* The prompt in chunks of `chunk` rows, then one token per call; logits of
 * the last prompt row and every decoded row land at their positions. */
static float *prefill_decode(ssf_device *d, const paging *pg, const prompt_ref *pr, int vocab,
                             int seq, int chunk)
{
    float *lg = malloc((size_t)pr->n * vocab * sizeof(float));
    int32_t pos[64], sq[64], last;
    for (int i = 0; i < 64; i++)
        sq[i] = seq;
    for (int s = 0; s < pr->len; s += chunk) {
        int n = pr->len - s < chunk ? pr->len - s : chunk;
        for (int i = 0; i < n; i++)
            pos[i] = s + i;
        last = n - 1;
        int is_last = s + n == pr->len;
        forward_ok(d, pg, pr->tok + s, pos, sq, n, &last, is_last,
                   lg + (size_t)(pr->len - 1) * vocab);
    }
    for (int p = pr->len; p < pr->n; p++) {
        int32_t zero = 0;
        pos[0] = p;
        forward_ok(d, pg, pr->tok + p, pos, sq, 1, &zero, 1, lg + (size_t)p * vocab);
    }
    return lg;
}

/* Sequence `to` forks `from`'s first len positions as the engine does:
 * sharing the full blocks, copying the partial last one (copy_blocks), then
 * decodes len..n-1 itself; `from` must still decode its own last row after
 * (the shared blocks were not written). */
static void check_fork(fixture *f, ssf_device *d, paging *pg, const prompt_ref *pr, const float *pd,
                       int from, int to)
{
    int V = f->vocab, full = pr->len / pg->bs;
    ssf_error err = {0};
    memcpy(pg->tab[to], pg->tab[from], (size_t)full * sizeof(int32_t));
    if (pr->len % pg->bs) {
        ssf_block_copy c = {pg->tab[from][full], pg->tab[to][full]};
        if (d->copy_blocks(d, &c, 1, &err)) fail_msg("copy_blocks: %s", err.msg);
    }
    float *fk = malloc((size_t)pr->n * V * sizeof(float));
    for (int q = pr->len; q < pr->n; q++) {
        int32_t pos = q, seq = to, zero = 0;
        forward_ok(d, pg, pr->tok + q, &pos, &seq, 1, &zero, 1, fk + (size_t)q * V);
    }
    expect_rows(f, "forked decode vs decode", fk + (size_t)pr->len * V, pd + (size_t)pr->len * V,
                pr->n - pr->len);
    int32_t pos = pr->n - 1, seq = from, zero = 0;
    forward_ok(d, pg, pr->tok + pos, &pos, &seq, 1, &zero, 1, fk);
    expect_rows(f, "parent after the fork", fk, pd + (size_t)pos * V, 1);
    paging_layout(pg);
    free(fk);
}

static void check_prompt(fixture *f, ssf_device *d, paging *pg, const prompt_ref *pr)
{
    int V = f->vocab;
    assert_true(pr->n <= MAX_CONTEXT);
    float *full = full_forward(d, pg, pr, V, 0);
    expect_rows(f, "full forward vs transformers", full, pr->ref, pr->n);
    float *pd = prefill_decode(d, pg, pr, V, 1, 5);
    int first = pr->len - 1, rows = pr->n - first;
    expect_rows(f, "prefill+decode vs transformers", pd + (size_t)first * V,
                pr->ref + (size_t)first * V, rows);
    expect_rows(f, "prefill+decode vs full forward", pd + (size_t)first * V,
                full + (size_t)first * V, rows);
    check_fork(f, d, pg, pr, pd, 1, 3);
    free(full), free(pd);
}

/* Both sequences in one batch (sequences 2 and 0), interleaved output list. */
static void check_mixed(fixture *f, ssf_device *d, const paging *pg, const prompt_ref *pr)
{
    int n = pr[0].n + pr[1].n, V = f->vocab;
    int32_t *tok = malloc((size_t)n * 4), *pos = malloc((size_t)n * 4);
    int32_t *sq = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) {
        int a = i < pr[0].n;
        int j = a ? i : i - pr[0].n;
        tok[i] = (a ? pr[0] : pr[1]).tok[j];
        pos[i] = j;
        sq[i] = a ? 2 : 0;
        /* prompt 1's rows first in the output list */
        out[a ? pr[1].n + i : i - pr[0].n] = i;
    }
    float *lg = malloc((size_t)n * V * sizeof(float));
    forward_ok(d, pg, tok, pos, sq, n, out, n, lg);
    expect_rows(f, "mixed batch, prompt 1", lg, pr[1].ref, pr[1].n);
    expect_rows(f, "mixed batch, prompt 0", lg + (size_t)pr[1].n * V, pr[0].ref, pr[0].n);
    free(tok), free(pos), free(sq), free(out), free(lg);
}

#define DECODE_STEPS 12

/* One forward of n rows of `seq` from position `at` whose last row is drawn
 * greedily on the device into *id: tokens tok (or, with feed, the one the
 * call before drew), deferred or not. */
static int forward_drawn(ssf_device *d, const paging *pg, const fixture *f, const int32_t *tok,
                         int n, int at, int seq, const int32_t *feed, int defer, int32_t *id,
                         ssf_error *err)
{
    int32_t pos[MAX_CONTEXT], sq[MAX_CONTEXT], last = n - 1;
    for (int i = 0; i < n; i++)
        pos[i] = at + i, sq[i] = seq;
    ssf_sample_spec greedy = {.temperature = 0, .top_p = 1};
    ssf_fwd_batch b = rows_batch(pg, tok, pos, sq, n);
    b.n_sample = 1;
    b.sample_rows = &last;
    b.sample = &greedy;
    b.sampled = id;
    b.n_valid = f->n_valid;
    b.feed = feed;
    b.defer = defer;
    return d->forward(d, &b, NULL, err);
}

/* pr's prompt in sequence `seq`, then DECODE_STEPS - 1 greedy steps of one
 * row, the ids drawn on the device into ids[]: each step's token the host's
 * copy of the step before's, or (deferred) fed on the device from its draw,
 * the ids collected one step late. */
static void greedy_decode(ssf_device *d, const paging *pg, const fixture *f, const prompt_ref *pr,
                          int seq, int deferred, int32_t *ids)
{
    ssf_error err = {0};
    static const int32_t from_last = 0;
    if (forward_drawn(d, pg, f, pr->tok, pr->len, 0, seq, NULL, 0, &ids[0], &err))
        fail_msg("prompt: %s", err.msg);
    for (int s = 1; s < DECODE_STEPS; s++) {
        const int32_t *feed = deferred && s > 1 ? &from_last : NULL;
        if (forward_drawn(d, pg, f, &ids[s - 1], 1, pr->len + s - 1, seq, feed, deferred, &ids[s],
                          &err))
            fail_msg("decode step %d: %s", s, err.msg);
        if (deferred && s > 1 && d->collect(d, &err)) fail_msg("collect %d: %s", s - 1, err.msg);
    }
    if (deferred && d->collect(d, &err)) fail_msg("last collect: %s", err.msg);
}

/* Deferred steps fed on the device draw the ids that steps fed by the host
 * draw, and the device refuses what the contract forbids. */
static void check_deferred(const fixture *f, ssf_device *d, paging *pg, const prompt_ref *pr)
{
    assert_int_equal(d->can_defer, 1);
    assert_true(pr->len + DECODE_STEPS <= MAX_CONTEXT);
    int32_t want[DECODE_STEPS], got[DECODE_STEPS];
    greedy_decode(d, pg, f, pr, 1, 0, want);
    greedy_decode(d, pg, f, pr, 2, 1, got);
    assert_memory_equal(got, want, sizeof want);
    ssf_error err = {0};
    int32_t id, feed_past = 1, tok = 0;
    assert_int_equal(d->collect(d, &err), -1);
    assert_non_null(strstr(err.msg, "no deferred step"));
    assert_int_equal(forward_drawn(d, pg, f, &tok, 1, 0, 3, &feed_past, 1, &id, &err), -1);
    assert_non_null(strstr(err.msg, "fed from sample row 1"));
    for (int i = 0; i < 2; i++)
        assert_int_equal(forward_drawn(d, pg, f, &tok, 1, i, 3, NULL, 1, &id, &err), 0);
    assert_int_equal(forward_drawn(d, pg, f, &tok, 1, 2, 3, NULL, 1, &id, &err), -1);
    assert_non_null(strstr(err.msg, "after two deferred"));
    for (int i = 0; i < 2; i++)
        assert_int_equal(d->collect(d, &err), 0);
}

/* Bad input is refused, not run. */
static void check_refusals(ssf_device *d, paging *pg, int V)
{
    ssf_error err = {0};
    int32_t bad_tok = V, zero = 0, tok = 0, bad_seq = N_SEQS;
    ssf_fwd_batch b = {.n_rows = 1,
                       .token = &bad_tok,
                       .pos = &zero,
                       .seq = &zero,
                       .n_seqs = N_SEQS,
                       .tables = pg->tables,
                       .n_out = 0,
                       .out_rows = NULL};
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "token"));
    b.token = &tok;
    b.seq = &bad_seq;
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "sequence"));
    b.seq = &zero;
    pg->tab[0][0] = d->n_blocks;
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "block"));
    paging_layout(pg);
    ssf_block_copy c = {0, d->n_blocks};
    assert_int_equal(d->copy_blocks(d, &c, 1, &err), -1);
    assert_non_null(strstr(err.msg, "copy_blocks"));
    assert_int_equal(d->copy_blocks(d, NULL, 0, &err), 0);
    if (d->can_defer) return;
    b.defer = 1;
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "overlap_steps"));
}

/* What run_fixture's device does beside the defaults: decode steps' RoPE
 * and KV store in the attention kernel, the GEMMs of up to 64 rows through
 * the own GEMM, deferred steps, the RMSNorms between own GEMMs fused in,
 * the RMSNorms folded into cuBLAS's GEMMs. */
enum { ROPE = 1, OWN_GEMMS = 2, OVERLAP = 4, FUSE = 8, FOLD = 16 };

/* The fixture's model on GPU 0 over pg's pool (fp8: an e4m3 KV cache;
 * flash: prompts through the prefill kernel; with: ROPE | OWN_GEMMS). */
static ssf_device *open_paged(const fixture *f, const paging *pg, int fp8, int flash, int with)
{
    ssf_device_options o = {.n_slots = N_SEQS,
                            .max_context = MAX_CONTEXT,
                            .block_size = pg->bs,
                            .n_blocks = pg->n_blocks,
                            .gpu_memory_utilization = 0.9,
                            .cuda_device = 0,
                            .kv_fp8 = fp8,
                            .disable_flash_prefill = !flash,
                            .rope_in_attention = (with & ROPE) != 0,
                            .own_small_gemms =
                                with & OWN_GEMMS ? SSF_OWN_GEMMS_ALWAYS : SSF_OWN_GEMMS_DEFAULT,
                            .overlap_steps = (with & OVERLAP) != 0,
                            .fuse_norms = (with & FUSE) != 0,
                            .fold_norms = (with & FOLD) != 0};
    ssf_error err = {0};
    ssf_device *d = ssf_device_cuda_open(f->model, &o, &err);
    if (!d) fail_msg("%s%s: %s", f->dir, fp8 ? " (fp8 KV)" : "", err.msg);
    return d;
}

static void run_fixture(fixture *f, int bs, int scatter, int flash, int with)
{
    paging pg;
    paging_init(&pg, bs, scatter);
    ssf_device *d = open_paged(f, &pg, 0, flash, with);
    assert_int_equal(d->n_slots, N_SEQS);
    assert_int_equal(d->max_context, MAX_CONTEXT);
    assert_int_equal(d->block_size, bs);
    assert_int_equal(d->n_blocks, pg.n_blocks);
    fprintf(stderr, "# block size %d, %s tables%s%s%s%s%s%s\n", bs,
            scatter ? "scattered" : "contiguous", flash ? ", flash prefill" : "",
            with & ROPE ? ", RoPE in the attention" : "", with & OWN_GEMMS ? ", own GEMMs" : "",
            with & OVERLAP ? ", deferred steps" : "", with & FUSE ? ", norms fused" : "",
            with & FOLD ? ", norms folded" : "");
    prompt_ref pr[2];
    int np = 0;
    while (np < 2 && load_prompt(f, np, &pr[np]))
        np++;
    assert_true(np >= 1);
    for (int p = 0; p < np; p++)
        check_prompt(f, d, &pg, &pr[p]);
    if (np == 2) check_mixed(f, d, &pg, pr);
    if (with & OVERLAP) check_deferred(f, d, &pg, &pr[0]);
    check_refusals(d, &pg, f->vocab);
    for (int p = 0; p < np; p++)
        free(pr[p].tok), free(pr[p].ref);
    d->close(d);
    paging_free(&pg);
}

/* An fp8 KV cache forks as BF16 does: the forked sequence reads the
 * copied partial block's e4m3 rows and scales, so its decode equals the
 * parent's (a scale left behind would read as NaN). */
static void run_fixture_fp8_fork(fixture *f, int bs, int with)
{
    paging pg;
    paging_init(&pg, bs, 1);
    ssf_device *d = open_paged(f, &pg, 1, 0, with);
    fprintf(stderr, "# fp8 KV, block size %d%s%s\n", bs,
            with & ROPE ? ", RoPE in the attention" : "", with & FOLD ? ", norms folded" : "");
    prompt_ref pr;
    for (int p = 0; p < 2 && load_prompt(f, p, &pr); p++) {
        float *pd = prefill_decode(d, &pg, &pr, f->vocab, 1, 5);
        check_fork(f, d, &pg, &pr, pd, 1, 3);
        free(pd), free(pr.tok), free(pr.ref);
    }
    d->close(d);
    paging_free(&pg);
}

static int open_fixture(fixture *f, const char *dir)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    char path[1100];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    ssf_error err = {0};
    if (ssf_safetensors_open(path, &f->expected, &err)) return 0;
    if (ssf_model_open(dir, &f->model, &err)) fail_msg("%s", err.msg);
    f->vocab = ssf_model_config_of(f->model)->vocab_size;
    f->n_valid = fixture_tokenizer_ids(dir, f->vocab);
    if (f->n_valid < 0) fail_msg("%s/expected.json: tokenizer_ids is not an integer", dir);
    return 1;
}

static void test_fixture_models(void **state)
{
    (void)state;
    skip_without_gpu();
    char *root = fixture_root();
    DIR *dh = opendir(root);
    if (!dh) fail_msg("%s: cannot open", root);
    int n = 0;
    struct dirent *de;
    /* dh: fail_msg longjmps, which the analyzer does not know */
    while (dh && (de = readdir(dh))) {
        if (de->d_name[0] == '.') continue;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, de->d_name);
        fixture f;
        if (!open_fixture(&f, dir)) continue;
        run_fixture(&f, 16, 0, 0, 0);
        run_fixture(&f, 16, 1, 0, 0);
        run_fixture(&f, 1, 1, 0, 0);
        run_fixture(&f, 16, 1, 1, 0);
        run_fixture(&f, 1, 1, 1, 0);
        run_fixture(&f, 16, 1, 1, ROPE);
        run_fixture(&f, 1, 1, 0, ROPE);
        run_fixture(&f, 16, 1, 1, OWN_GEMMS);
        run_fixture(&f, 16, 1, 1, ROPE | OWN_GEMMS);
        run_fixture(&f, 16, 1, 1, ROPE | OWN_GEMMS | FUSE);
        run_fixture(&f, 16, 1, 1, OVERLAP);
        run_fixture(&f, 16, 1, 1, FOLD);
        run_fixture(&f, 1, 1, 0, FOLD);
        run_fixture_fp8_fork(&f, 16, 0);
        run_fixture_fp8_fork(&f, 16, ROPE);
        run_fixture_fp8_fork(&f, 16, FOLD);
        ssf_safetensors_close(f.expected);
        ssf_model_close(f.model);
        n++;
    }
    if (dh) closedir(dh);
    free(root);
    assert_true(n >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusal_without_device),
        cmocka_unit_test(test_option_refusals),
        cmocka_unit_test(test_replay_time_refusals),
        cmocka_unit_test(test_fp8_rows_host),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_silu_mul),
        cmocka_unit_test(test_pdl_order),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_pgemm),
        cmocka_unit_test(test_rope_store),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_prefill_attention),
        cmocka_unit_test(test_fixture_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
