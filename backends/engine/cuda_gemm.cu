/*
 * cuda_gemm.cu - the device's GEMMs through a per-shape choice
 * (cuda_gemm.cuh): cublasLt's heuristic candidates timed against
 * cublasGemmEx on the device, the fastest kept.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_gemm.cuh"

/* heuristic candidates asked for */
#define TUNE_CANDIDATES 16
/* with the split search's variants */
#define TUNE_MAX (TUNE_CANDIDATES + SSFK_GEMM_SPLIT_BASES * SSF_GEMM_SPLIT_COUNTS)
/* calls timed per candidate and round, after one warm-up call */
#define TUNE_REPS 10
/* rounds over every candidate, each keeping its best: an idle card's
 * clocks are still ramping up during the first */
#define TUNE_ROUNDS 2
/* A shape whose cublasGemmEx call takes longer (lm_head: 0.1-0.4 ms) times
 * steadily: its candidates get one round of 2 calls, ~10 ms of lm_head
 * timing for a 1.5B model rather than ~70. */
#define TUNE_LONG_MS 0.05f
#define TUNE_LONG_REPS 2
/* cublasLt must beat cublasGemmEx by 3%, so that timing noise does not
 * swap a shape's algorithm (and its rounding) from one run to the next */
#define TUNE_MARGIN 0.97f

#define BLAS_OK CUBLAS_STATUS_SUCCESS

cublasStatus_t ssfk_gemm_ctx_init(ssfk_gemm_ctx *ctx, void *workspace, size_t bytes)
{
    ctx->lt = NULL;
    ctx->workspace = workspace;
    ctx->workspace_bytes = bytes;
    ctx->split_search = 0;
    ctx->n = 0;
    return cublasLtCreate(&ctx->lt);
}

void ssfk_gemm_ctx_free(ssfk_gemm_ctx *ctx)
{
    if (ctx->lt) cublasLtDestroy(ctx->lt);
    ctx->lt = NULL;
    ctx->n = 0;
}

const ssfk_gemm_choice *ssfk_gemm_find(const ssfk_gemm_ctx *ctx, int M, int N, int K,
                                       cudaDataType_t y_type)
{
    for (int i = 0; i < ctx->n; i++) {
        const ssfk_gemm_choice *c = &ctx->tab[i];
        if (c->M == M && c->N == N && c->K == K && c->y_type == y_type) return c;
    }
    return NULL;
}

/* ssfk_gemm's column-major view: Y^T (N x M) = (W as K x N)^T . (X as K x M). */
static cublasStatus_t describe(ssfk_gemm_choice *c)
{
    int32_t t = CUBLAS_OP_T;
    cublasStatus_t s = cublasLtMatmulDescInit(&c->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s == BLAS_OK)
        s = cublasLtMatmulDescSetAttribute(&c->op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t);
    if (s == BLAS_OK) s = cublasLtMatrixLayoutInit(&c->a, CUDA_R_16BF, c->K, c->N, c->K);
    if (s == BLAS_OK) s = cublasLtMatrixLayoutInit(&c->b, CUDA_R_16BF, c->K, c->M, c->K);
    if (s == BLAS_OK) s = cublasLtMatrixLayoutInit(&c->c, c->y_type, c->N, c->M, c->N);
    return s;
}

/* cublasLtMatmul takes its descriptors as non-const pointers but only reads
 * them. */
static cublasStatus_t lt_matmul(const ssfk_gemm_ctx *ctx, const ssfk_gemm_choice *c,
                                const cublasLtMatmulAlgo_t *algo, const bf16 *X, const bf16 *W,
                                void *Y, int accumulate, cudaStream_t st)
{
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasLtMatrixLayout_t a = (cublasLtMatrixLayout_t)&c->a, b = (cublasLtMatrixLayout_t)&c->b;
    cublasLtMatrixLayout_t y = (cublasLtMatrixLayout_t)&c->c;
    return cublasLtMatmul(ctx->lt, (cublasLtMatmulDesc_t)&c->op, &alpha, W, a, X, b, &beta, Y, y, Y,
                          y, algo, ctx->workspace, ctx->workspace_bytes, st);
}

/* An algorithm's split-K count (0 and 1 both mean unsplit: NVIDIA's own
 * samples set 0), -1 when cublasLt will not say. */
static int splits_of(const cublasLtMatmulAlgo_t *a)
{
    int32_t splits = 1;
    size_t w = 0;
    return cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                                sizeof splits, &w) == BLAS_OK
               ? splits
               : -1;
}

/* Whether an algorithm accumulates in fp32 throughout: with a BF16 output,
 * split-K partial sums must be reduced in the compute type, not in place in
 * Y nor in a buffer of Y's type. */
static int keeps_fp32(const cublasLtMatmulAlgo_t *a, cudaDataType_t y_type)
{
    int splits = splits_of(a);
    uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
    size_t w = 0;
    if (splits < 0 || cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                           &scheme, sizeof scheme, &w) != BLAS_OK)
        return 0;
    return y_type == CUDA_R_32F || splits <= 1 || scheme == CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
}

/* cublasLt's candidates for the shape that fit the workspace and keep fp32
 * accumulation, into res; returns how many (0 when it has none). */
static int candidates(const ssfk_gemm_ctx *ctx, ssfk_gemm_choice *c,
                      cublasLtMatmulHeuristicResult_t *res)
{
    cublasLtMatmulPreferenceOpaque_t pref;
    uint64_t ws = ctx->workspace_bytes;
    /* the mask filters the split-K schemes; unsplit algorithms always pass */
    uint32_t mask = c->y_type == CUDA_R_32F ? (uint32_t)CUBLASLT_REDUCTION_SCHEME_MASK
                                            : (uint32_t)CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    int n = 0;
    if (cublasLtMatmulPreferenceInit(&pref) != BLAS_OK ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                             sizeof ws) != BLAS_OK ||
        cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                             &mask, sizeof mask) != BLAS_OK ||
        cublasLtMatmulAlgoGetHeuristic(ctx->lt, &c->op, &c->a, &c->b, &c->c, &c->c, &pref,
                                       TUNE_CANDIDATES, res, &n) != BLAS_OK)
        return 0;
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (res[i].state == BLAS_OK && res[i].workspaceSize <= ws &&
            keeps_fp32(&res[i].algo, c->y_type))
            res[kept++] = res[i];
    return kept;
}

/* Whether cublasLt can split the algorithm's K, its partials reduced in
 * fp32. */
static int splits_in_fp32(const cublasLtMatmulAlgo_t *a)
{
    int32_t can = 0;
    uint32_t schemes = 0;
    size_t w = 0;
    return cublasLtMatmulAlgoCapGetAttribute(a, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &can, sizeof can,
                                             &w) == BLAS_OK &&
           can &&
           cublasLtMatmulAlgoCapGetAttribute(a, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes,
                                             sizeof schemes, &w) == BLAS_OK &&
           (schemes & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE);
}

/* base split `splits` ways, reduced in fp32, into *out when cublasLt
 * accepts it for the shape within the workspace. */
static int split_variant(const ssfk_gemm_ctx *ctx, ssfk_gemm_choice *c,
                         const cublasLtMatmulAlgo_t *base, int32_t splits,
                         cublasLtMatmulHeuristicResult_t *out)
{
    uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    /* cublasLtMatmulAlgoCheck promises the workspace size and waves, not
     * state: zeroed, an unwritten state reads as success */
    memset(out, 0, sizeof *out);
    out->algo = *base;
    return cublasLtMatmulAlgoConfigSetAttribute(&out->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
                                                &splits, sizeof splits) == BLAS_OK &&
           cublasLtMatmulAlgoConfigSetAttribute(&out->algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                &scheme, sizeof scheme) == BLAS_OK &&
           cublasLtMatmulAlgoCheck(ctx->lt, &c->op, &c->a, &c->b, &c->c, &c->c, &out->algo, out) ==
               BLAS_OK &&
           out->state == BLAS_OK && out->workspaceSize <= ctx->workspace_bytes;
}

/* Whether res[0..n) holds the algorithm (its configuration's bytes: the
 * heuristic may list one tiling at two split counts, whose variants
 * would be timed twice). */
static int listed(const cublasLtMatmulHeuristicResult_t *res, int n, const cublasLtMatmulAlgo_t *a)
{
    for (int i = 0; i < n; i++)
        if (memcmp(&res[i].algo, a, sizeof *a) == 0) return 1;
    return 0;
}

/* The split search: appends to res[0..n) each split count of
 * ssf_gemm_split_counts for the first SSFK_GEMM_SPLIT_BASES algorithms of
 * the heuristic's that split in fp32, each variant once; returns the new
 * count (room: TUNE_MAX). */
static int add_split_variants(const ssfk_gemm_ctx *ctx, ssfk_gemm_choice *c,
                              cublasLtMatmulHeuristicResult_t *res, int n)
{
    int counts[SSF_GEMM_SPLIT_COUNTS], n_counts = ssf_gemm_split_counts(c->K, counts);
    int total = n;
    /* a base counts once it adds a variant: the heuristic may list one
     * tiling at several split counts, all of whose variants are the same */
    for (int i = 0, bases = 0; i < n && bases < SSFK_GEMM_SPLIT_BASES; i++) {
        if (!splits_in_fp32(&res[i].algo)) continue;
        int before = total;
        for (int s = 0; s < n_counts; s++)
            if (split_variant(ctx, c, &res[i].algo, counts[s], &res[total]) &&
                !listed(res, total, &res[total].algo))
                total++;
        bases += total > before;
    }
    return total;
}

/* What a timing run multiplies: call i reads W[i % n_w]. */
typedef struct operands {
    const bf16 *X;
    const bf16 *const *W;
    int n_w;
    void *Y;
} operands;

/* One call of a candidate: cublasGemmEx when algo is NULL.  A failed call
 * may leave its launch error behind: cleared, so that the next kernel's
 * check does not report it. */
static cublasStatus_t call(const ssfk_gemm_ctx *ctx, const ssfk_gemm_choice *c,
                           const cublasLtMatmulAlgo_t *algo, cublasHandle_t blas, const operands *o,
                           int i, cudaStream_t st)
{
    const bf16 *W = o->W[i % o->n_w];
    cublasStatus_t s = algo ? lt_matmul(ctx, c, algo, o->X, W, o->Y, 0, st)
                            : ssfk_gemm(blas, o->X, W, o->Y, c->y_type, c->M, c->N, c->K, 0);
    if (s != BLAS_OK) (void)cudaGetLastError();
    return s;
}

/* Mean milliseconds of `reps` calls after a warm-up (which also loads the
 * kernel's module, before any capture needs it), queued behind ssfk_hold
 * so that they run back to back as a graph replays them; INFINITY when a
 * call fails.  The error returned is the device's: events, or a fault. */
static cudaError_t time_candidate(const ssfk_gemm_ctx *ctx, const ssfk_gemm_choice *c,
                                  const cublasLtMatmulAlgo_t *algo, cublasHandle_t blas,
                                  const operands *o, int reps, cudaStream_t st, cudaEvent_t *ev,
                                  float *ms)
{
    *ms = INFINITY;
    if (call(ctx, c, algo, blas, o, 0, st) != BLAS_OK) return cudaSuccess;
    int ok = 1;
    cudaError_t e = ssfk_hold(SSFK_HOLD_NS(reps), st);
    if (e == cudaSuccess) e = cudaEventRecord(ev[0], st);
    for (int i = 0; ok && e == cudaSuccess && i < reps; i++)
        ok = call(ctx, c, algo, blas, o, i, st) == BLAS_OK;
    if (e == cudaSuccess) e = cudaEventRecord(ev[1], st);
    if (e == cudaSuccess) e = cudaEventSynchronize(ev[1]);
    float total = 0;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&total, ev[0], ev[1]);
    if (e == cudaSuccess && ok) *ms = total / reps;
    return e;
}

/* best[0] for cublasGemmEx, best[1 + i] for res[i]. */
static cudaError_t time_all(const ssfk_gemm_ctx *ctx, const ssfk_gemm_choice *c,
                            const cublasLtMatmulHeuristicResult_t *res, int n, cublasHandle_t blas,
                            const operands *o, cudaStream_t st, float *best)
{
    cudaEvent_t ev[2] = {NULL, NULL};
    cudaError_t e = cudaEventCreate(&ev[0]);
    if (e == cudaSuccess) e = cudaEventCreate(&ev[1]);
    for (int i = 0; i <= n; i++)
        best[i] = INFINITY;
    int reps = TUNE_REPS, rounds = TUNE_ROUNDS;
    for (int r = 0; e == cudaSuccess && r < rounds; r++)
        for (int i = 0; e == cudaSuccess && i <= n; i++) {
            float ms = INFINITY;
            e = time_candidate(ctx, c, i ? &res[i - 1].algo : NULL, blas, o, reps, st, ev, &ms);
            best[i] = fminf(best[i], ms);
            if (i == 0 && best[0] > TUNE_LONG_MS) reps = TUNE_LONG_REPS, rounds = 1;
        }
    if (ev[0]) cudaEventDestroy(ev[0]);
    if (ev[1]) cudaEventDestroy(ev[1]);
    return e;
}

/* The table's next entry, described for the shape; ctx->n does not yet
 * count it (ssfk_gemm_find sees it once it does). */
static ssfk_gemm_choice *next_choice(ssfk_gemm_ctx *ctx, int M, int N, int K, cudaDataType_t y_type,
                                     ssf_error *err)
{
    if (M < 1 || N < 1 || K < 1) {
        ssf_fail(err, "cuda: a %dx%dx%d GEMM has an empty dimension", M, N, K);
        return NULL;
    }
    ssfk_gemm_choice *c = &ctx->tab[ctx->n];
    memset(c, 0, sizeof *c);
    c->M = M, c->N = N, c->K = K, c->y_type = y_type;
    cublasStatus_t s = describe(c);
    if (s == BLAS_OK) return c;
    ssf_fail(err, "cublasLt: describing a %dx%dx%d GEMM: %s", M, N, K, cublasGetStatusString(s));
    return NULL;
}

int ssfk_gemm_pin_split(ssfk_gemm_ctx *ctx, int M, int N, int K, cudaDataType_t y_type, int splits,
                        ssf_error *err)
{
    if (!ctx->lt) return ssf_fail(err, "cublasLt: no handle");
    if (ctx->n == SSFK_GEMM_TABLE || ssfk_gemm_find(ctx, M, N, K, y_type))
        return ssf_fail(err, "cuda: pinning a %dx%dx%d GEMM: the table is full or has it", M, N, K);
    ssfk_gemm_choice *c = next_choice(ctx, M, N, K, y_type, err);
    if (!c) return -1;
    cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES], split;
    int n = candidates(ctx, c, res), i = 0;
    /* the first split-capable candidate that takes this count, as the search would */
    while (i < n &&
           !(splits_in_fp32(&res[i].algo) && split_variant(ctx, c, &res[i].algo, splits, &split)))
        i++;
    if (i == n)
        return ssf_fail(err, "cublasLt: no algorithm of a %dx%dx%d GEMM splits %d ways", M, N, K,
                        splits);
    c->lt = 1, c->algo = split.algo, c->splits = splits_of(&c->algo);
    ctx->n++;
    return 0;
}

int ssfk_gemm_tune(ssfk_gemm_ctx *ctx, cublasHandle_t blas, const bf16 *X, const bf16 *const *W,
                   int n_w, void *Y, cudaDataType_t y_type, int M, int N, int K, cudaStream_t st,
                   ssf_error *err)
{
    if (!ctx->lt || ctx->n == SSFK_GEMM_TABLE || ssfk_gemm_find(ctx, M, N, K, y_type)) return 0;
    if (n_w < 1) return ssf_fail(err, "cuda: tuning a %dx%dx%d GEMM over %d weights", M, N, K, n_w);
    ssfk_gemm_choice *c = next_choice(ctx, M, N, K, y_type, err);
    if (!c) return -1;
    cublasLtMatmulHeuristicResult_t res[TUNE_MAX];
    int n_heuristic = candidates(ctx, c, res);
    int n = ctx->split_search ? add_split_variants(ctx, c, res, n_heuristic) : n_heuristic;
    float best[1 + TUNE_MAX];
    operands o = {X, W, n_w, Y};
    cudaError_t e = time_all(ctx, c, res, n, blas, &o, st, best);
    if (e != cudaSuccess)
        return ssf_fail(err, "cuda: timing %dx%dx%d GEMMs: %s", M, N, K, cudaGetErrorString(e));
    if (!isfinite(best[0])) return ssf_fail(err, "cublas: the %dx%dx%d GEMM fails", M, N, K);
    int win = 0;
    for (int i = 1; i <= n_heuristic; i++)
        if (best[i] < best[win]) win = i;
    if (win > 0 && best[win] >= TUNE_MARGIN * best[0]) win = 0;
    /* a searched split must beat that by the margin too: each differs in
     * its rounding, and noise must not swap them from run to run */
    int searched = 0;
    for (int i = n_heuristic + 1; i <= n; i++)
        if (searched == 0 || best[i] < best[searched]) searched = i;
    if (searched > 0 && best[searched] < TUNE_MARGIN * best[win]) win = searched;
    c->lt = win > 0;
    if (c->lt) c->algo = res[win - 1].algo;
    c->splits = c->lt ? splits_of(&c->algo) : 1;
    ctx->n++;
    return 0;
}

/* The heuristic assumed 256-byte aligned operands (its default). */
static int aligned(const void *p)
{
    return ((uintptr_t)p & 255) == 0;
}

cublasStatus_t ssfk_gemm_run(const ssfk_gemm_ctx *ctx, cublasHandle_t blas, const bf16 *X,
                             const bf16 *W, void *Y, cudaDataType_t y_type, int M, int N, int K,
                             int accumulate, cudaStream_t st)
{
    const ssfk_gemm_choice *c = ctx ? ssfk_gemm_find(ctx, M, N, K, y_type) : NULL;
    if (!c || !c->lt || !aligned(X) || !aligned(W) || !aligned(Y))
        return ssfk_gemm(blas, X, W, Y, y_type, M, N, K, accumulate);
    return lt_matmul(ctx, c, &c->algo, X, W, Y, accumulate, st);
}

const char *ssfk_gemm_how_name(const ssfk_gemm_ctx *ctx, int M, int N, int K, cudaDataType_t y_type)
{
    static const char *const split[] = {"cublasLt",         "cublasLt",         "cublasLt-split2",
                                        "cublasLt-split3",  "cublasLt-split4",  "cublasLt-split5",
                                        "cublasLt-split6",  "cublasLt-split7",  "cublasLt-split8",
                                        "cublasLt-split9",  "cublasLt-split10", "cublasLt-split11",
                                        "cublasLt-split12", "cublasLt-split13", "cublasLt-split14",
                                        "cublasLt-split15", "cublasLt-split16"};
    const ssfk_gemm_choice *c = ctx ? ssfk_gemm_find(ctx, M, N, K, y_type) : NULL;
    if (!c || !c->lt) return "cublas";
    int n = (int)(sizeof split / sizeof *split);
    if (c->splits < 0) return "cublasLt";
    return c->splits < n ? split[c->splits] : "cublasLt-splitmany";
}
