/*
 * cuda_gemm.cuh - the CUDA device's GEMMs with a per-shape choice between
 * cublasGemmEx (ssfk_gemm, cuBLAS's own pick) and a cublasLt algorithm
 * timed on the device.
 *
 * Decode GEMMs are skinny (M = 1..256 rows against weights of thousands):
 * cuBLAS's default for the small ones runs too few CTAs to stream the
 * weights at the device's bandwidth.  cublasLt offers split-K and other
 * tilings; which one wins depends on the shape and the card, so each shape
 * the graphs will replay is timed once (ssfk_gemm_tune) and the winner
 * stored in a small table that ssfk_gemm_run looks up.
 *
 * The math is ssfk_gemm's: Y[M][N] = X[M][K] . W[N][K]^T with BF16 X, W,
 * fp32 compute and scale, alpha 1, beta 0 (or 1: Y +=), Y BF16 or fp32.  A split-K
 * algorithm is only taken when its partial sums are reduced in fp32 (the
 * compute type), never in a BF16 output.
 */
#ifndef SSFTEVAL_CUDA_GEMM_CUH
#define SSFTEVAL_CUDA_GEMM_CUH

#include <stddef.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_kernels.cuh"

/* Shapes one context remembers: 5 GEMMs x 20 graph buckets, and room. */
#define SSFK_GEMM_TABLE 128
/* The workspace cuBLAS and cublasLt share (one stream).  32 MiB is what
 * cuBLAS advises for Hopper.  It bounds cublasLt's split-K partials (splits
 * x M x N fp32): 7 splits of 7B's q|k|v at 256 rows, 28 at 64 rows, where
 * splits matter; gate|up and lm_head have the CTAs without. */
#define SSFK_GEMM_WORKSPACE (32u << 20)

/* One tuned shape and how to run it.  The descriptors live here (built in
 * place, never copied), so a run allocates nothing. */
typedef struct ssfk_gemm_choice {
    int M, N, K;
    cudaDataType_t y_type;
    int lt;     /* 1: cublasLtMatmul with `algo`; 0: cublasGemmEx won */
    int splits; /* the winner's split-K count (1: unsplit, and cublasGemmEx) */
    cublasLtMatmulAlgo_t algo;
    cublasLtMatmulDescOpaque_t op;
    cublasLtMatrixLayoutOpaque_t a, b, c; /* W (K x N, op T), X (K x M), Y (N x M) */
} ssfk_gemm_choice;

typedef struct ssfk_gemm_ctx {
    cublasLtHandle_t lt;
    void *workspace; /* shared with the cuBLAS handle: both run on one stream */
    size_t workspace_bytes;
    /* the split search (ssf_gemm_split_counts): the heuristic's first
     * SSFK_GEMM_SPLIT_BASES split-capable algorithms timed at each count
     * too; 0 after init (SSFK_GEMM_SPLIT_SEARCH is the device's default) */
    int split_search;
    int n;
    ssfk_gemm_choice tab[SSFK_GEMM_TABLE];
} ssfk_gemm_ctx;

/* Creates the cublasLt handle; the workspace (device memory, 256-byte
 * aligned) stays the caller's. */
cublasStatus_t ssfk_gemm_ctx_init(ssfk_gemm_ctx *ctx, void *workspace, size_t bytes);
void ssfk_gemm_ctx_free(ssfk_gemm_ctx *ctx);

/* The stored choice for a shape, NULL when it was never tuned. */
const ssfk_gemm_choice *ssfk_gemm_find(const ssfk_gemm_ctx *ctx, int M, int N, int K,
                                       cudaDataType_t y_type);

/* Algorithms of the heuristic's whose split counts the search varies. */
#define SSFK_GEMM_SPLIT_BASES 4

/*
 * Times cublasGemmEx and up to 16 of cublasLt's heuristic candidates (with
 * split_search, their split variants as well) for the shape on these buffers (their contents do not
 * matter; Y is overwritten) and stores the fastest.  Call i of a timing run reads W[i % n_w]: with
 * a model's layers as W, the weights are not all in L2 as they would not be in a step.  `blas` must
 * be bound to `st`.  Synchronises st: never inside stream capture.  A shape already stored returns
 * at once; a full table stores nothing (ssfk_gemm_run falls back to cublasGemmEx).
 */
int ssfk_gemm_tune(ssfk_gemm_ctx *ctx, cublasHandle_t blas, const bf16 *X, const bf16 *const *W,
                   int n_w, void *Y, cudaDataType_t y_type, int M, int N, int K, cudaStream_t st,
                   ssf_error *err);

/* Stores, for a shape not yet chosen, the first of cublasLt's heuristic
 * algorithms that splits K in fp32, split `splits` ways: the tests' way to
 * run a split the search may time (ssf_cuda_op_gemm).  -1 with err when
 * none does, or the table is full. */
int ssfk_gemm_pin_split(ssfk_gemm_ctx *ctx, int M, int N, int K, cudaDataType_t y_type, int splits,
                        ssf_error *err);

/* ssfk_gemm through the stored choice when the shape was tuned (and the
 * buffers are 256-byte aligned, as when tuned), cublasGemmEx otherwise.
 * Enqueues on st with the fixed workspace: no allocation, no host sync, so
 * it may be captured into a CUDA graph.  `blas` must be bound to `st`;
 * ctx may be NULL.  accumulate: Y += X . W^T (the choice was timed with
 * beta 0; cublasLt's algorithms take either). */
cublasStatus_t ssfk_gemm_run(const ssfk_gemm_ctx *ctx, cublasHandle_t blas, const bf16 *X,
                             const bf16 *W, void *Y, cudaDataType_t y_type, int M, int N, int K,
                             int accumulate, cudaStream_t st);

/* "cublas", "cublasLt" or "cublasLt-splitN" (N splits of K): what
 * ssfk_gemm_run does for the shape (bench output, static). */
const char *ssfk_gemm_how_name(const ssfk_gemm_ctx *ctx, int M, int N, int K,
                               cudaDataType_t y_type);

#endif
