/*
 * cuda_plan.h - the launch shape of the CUDA device's paged decode/prefill
 * attention, computed on the host in plain C so that it can be unit-tested
 * without a GPU (tests/test_attn_plan.c).
 *
 * One CTA serves one (row, KV head, split): it loads each K/V row of its
 * positions once and scores it against every query head of the KV head's
 * group (GQA packing) on the tensor cores, the heads being the rows of an
 * MMA.  Groups above 8 take several CTAs per KV head (head_chunks).  Each
 * warp of the CTA walks its own tiles of SSF_ATTN_TILE positions with a
 * two-stage copy pipeline in shared memory.  When rows x KV heads leave
 * the device's CTA slots under-filled (measured on an H200: 128 CTAs of 4
 * warps at batch 64 made the kernel latency-bound, where 256 kept the
 * memory busy) and the context is long, the positions are split into chunks
 * (flash-decoding): each CTA writes a partial (max, sum, acc) and a second
 * kernel merges them with log-sum-exp.
 */
#ifndef SSFTEVAL_CUDA_PLAN_H
#define SSFTEVAL_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SSF_ATTN_TILE 16         /* positions a warp loads, scores and sums per step */
#define SSF_ATTN_THREADS 128     /* threads a CTA: 4 warps */
#define SSF_ATTN_KV_PAD 8        /* BF16 padding after each K, V row in shared memory */
#define SSF_ATTN_MAX_GROUP 8     /* query heads one CTA computes */
#define SSF_ATTN_MIN_CHUNK 128   /* fewest positions worth a split of their own */
#define SSF_ATTN_OVERSUB 4       /* at most this many CTAs a slot, split */
#define SSF_ATTN_WHOLE (1 << 30) /* an unsplit chunk: past any context */
#define SSF_ATTN_SMEM_MAX 101376 /* the opt-in shared memory of the smallest target, sm_86/89 */
/* The share of the slots whose CTAs keep the memory busy reading K and V.
 * On an H200 (run O) 256 CTAs on 396 slots (7B at batch 64) took 1-8%
 * less time unsplit than in 3 splits, and 128 (1.5B at batch 64) 12-15%
 * more time unsplit than in 3 splits from 1,224 positions on. */
#define SSF_ATTN_SATURATE_PCT 60

typedef struct ssf_attn_shape {
    int group_pad;         /* query heads per CTA, padded to 1, 2, 4 or 8 */
    int head_chunks;       /* CTAs per KV head, ceil(group / 8) */
    int splits;            /* position chunks per (row, KV head); 1: no split */
    int chunk;             /* positions per split, a multiple of block_size (unsplit: about
                              SSF_ATTN_WHOLE, so that the shape does not follow the context) */
    int grid[3];           /* rows, n_kv_heads x head_chunks, splits */
    int threads;           /* SSF_ATTN_THREADS */
    size_t smem;           /* dynamic shared memory bytes */
    size_t partial_floats; /* split workspace: acc then (max, sum), 0 without splits */
} ssf_attn_shape;

/* The shape for n_rows query rows whose longest context is max_ctx
 * positions, on a device that runs `slots` CTAs at once (SMs x the CTAs
 * one SM holds, ssfk_attention_slots).  Returns -1 for arguments the
 * kernel cannot run (head_dim not 64 or 128, a count below 1, a context
 * past SSF_ATTN_WHOLE rounded down to whole chunk units: whole blocks). */
int ssf_attn_plan(int n_rows, int n_kv_heads, int group, int max_ctx, int head_dim, int block_size,
                  int slots, ssf_attn_shape *out);

/* Dynamic shared memory of one CTA: two stages of a tile of K and V rows
 * per warp (the warps' merge reuses it). */
size_t ssf_attn_smem(int head_dim);

/* The largest partial_floats any plan for `slots` and head_dim asks for:
 * the device sizes its workspace once with it. */
size_t ssf_attn_partial_floats_max(int slots, int head_dim);

/*
 * Prefill attention, flash style: a CTA of SSF_PREFILL_THREADS takes up to
 * SSF_PREFILL_QB rows of one sequence at consecutive positions (a q-block)
 * and one query head; its warps hold 16 query rows each and share each
 * SSF_PREFILL_KT positions of K and V in shared memory, so a prompt's K and
 * V are read once per q-block instead of once per row, as the decode kernel
 * would read them.
 */
#define SSF_PREFILL_QB 64 /* query rows a prefill CTA computes */
#define SSF_PREFILL_KT 64 /* positions of K and V a prefill CTA loads a step */
#define SSF_PREFILL_THREADS 128
#define SSF_PREFILL_MIN_RUN 16 /* fewest consecutive rows worth a q-block */

/* Dynamic shared memory of a prefill CTA: two stages of SSF_PREFILL_KT
 * padded K and V rows (fp8: one, which two stages of e4m3 rows and their
 * scales are widened into), and the two stages' row offsets.  The kernel's
 * own layout (prefill_smem in cuda_prefill.cu) must add up to this:
 * tools/cuda-emu checks it. */
size_t ssf_prefill_smem(int head_dim, int fp8);

/* Splits a step's rows between the two kernels.  A run is a maximal span
 * of rows of one sequence at consecutive positions, in row order; runs of
 * at least min_run (>= 2) rows become q-blocks of at most SSF_PREFILL_QB
 * rows: qblocks[2i] is the first row, qblocks[2i + 1] the count.  The other
 * rows go, in order, to decode_rows (n_rows entries of room), *n_decode
 * their count.  qblocks needs n_rows entries of room.  Returns the
 * q-blocks. */
int ssf_prefill_split(const int32_t *seq, const int32_t *pos, int n_rows, int min_run,
                      int32_t *qblocks, int32_t *decode_rows, int *n_decode);

/*
 * The decode step's GEMMs of few rows through the engine's own kernel
 * (cuda_pgemm.cu): Y[M][N] = X[M][K] . W[N][K]^T for M <= SSF_PGEMM_MAX_M.
 * cuBLAS takes about 7 us for 1.5B's 5-6 MB q|k|v or o at 64 rows on an
 * H100, three times their bytes' time, and reads the 27.5 MB down
 * projection at 1.7 TB/s where a copy runs at 3 (bench/README-gpu.md, run
 * N).  Each CTA of this kernel takes `bn` columns of W over one of `splits`
 * equal chunks of K, in slices of SSF_PGEMM_KS streamed through a ring of
 * `stages` in shared memory.  Every CTA of a column tile reads X's rows
 * of its chunk again (from L2): 128 columns a CTA halve that traffic,
 * which at 64 rows and 64 columns equals W's, so a GEMM wide enough for a
 * wave of 128-column tiles without splits takes them.  The grid is one
 * wave, and the ring's first slices of W, which no kernel writes, are
 * copied in before the CTA waits for the kernel before it (a programmatic
 * dependent launch): for q|k|v and o the ring holds the whole chunk, so
 * all of W is read while that kernel drains.  Then X's slices, the MMAs,
 * and with splits a partial per CTA, summed in split order by the tile's
 * last CTA.
 *
 * With `swiglu` (gate|up, no splits), W's rows interleave gate's and up's
 * in blocks of bn / 2 (ssfk_silu_mul's `block`), so that a tile holds the
 * gate and up columns of the same bn / 2 outputs, and the kernel writes
 * SwiGLU's h = SiLU(gate) . up, [M][N / 2], in place of gate|up: the SiLU
 * computed once an element, with no launch of its own.
 */
#define SSF_PGEMM_MAX_M 64    /* rows: 4 warps of 16 */
#define SSF_PGEMM_BN 64       /* columns a CTA ... */
#define SSF_PGEMM_BN_WIDE 128 /* ... or, without splits, these */
#define SSF_PGEMM_KS 64       /* K a slice of the ring */
#define SSF_PGEMM_THREADS 128
#define SSF_PGEMM_PAD 8        /* BF16 after each row in shared memory: 16 bytes */
#define SSF_PGEMM_MAX_STAGES 8 /* the ring's slices at most */
/* CTAs an SM holds at most: the kernel is bound to 80 registers with 64
 * columns, 128 with 128 */
#define SSF_PGEMM_SM_CTAS(bn) ((bn) > SSF_PGEMM_BN ? 4 : 6)
/* a slot of the ring: a slice's bn rows of W, then X's, then (with a
 * norm fused in, ssfk_pgemm_fuse) the norm's gains */
#define SSF_PGEMM_SLOT_BYTES(bn)                                                                   \
    ((size_t)((bn) + SSF_PGEMM_MAX_M + 1) * (SSF_PGEMM_KS + SSF_PGEMM_PAD) * 2)

typedef struct ssf_pgemm_shape {
    int tiles, splits;     /* grid: column tiles x K chunks */
    int bn;                /* columns a tile: SSF_PGEMM_BN or SSF_PGEMM_BN_WIDE */
    int chunk;             /* K a CTA, whole slices */
    int stages;            /* slices the ring holds, at most chunk's */
    int swiglu;            /* Y is h = SiLU(gate) . up of W's interleaved gate|up rows */
    size_t smem;           /* the ring: each slice W's rows, then X's */
    size_t partial_floats; /* splits x SSF_PGEMM_MAX_M x N with splits, else 0 */
} ssf_pgemm_shape;

/* The shape for N x K weights (swiglu: gate|up, N twice the intermediate
 * size) on a device of `sms` SMs, each CTA taking at most cta_smem bytes
 * of shared memory and an SM sm_smem.  Tiles of SSF_PGEMM_BN_WIDE columns
 * when they run as one wave over at least 9 in 10 of the SMs without
 * splits; else of SSF_PGEMM_BN, with the fewest splits whose CTAs do so,
 * else the most that run as one wave (swiglu: without splits, or none).  The ring: as many slices
 * as one wave leaves room for, at most the chunk's (and at least two, or the one a chunk of one
 * slice has).  -1 when none runs as one wave, or N is not a multiple of SSF_PGEMM_BN or K of
 * SSF_PGEMM_KS. */
int ssf_pgemm_plan(int N, int K, int swiglu, int sms, size_t cta_smem, size_t sm_smem,
                   ssf_pgemm_shape *out);

/* Shared memory of a CTA of `bn` columns whose ring holds `stages` slices. */
size_t ssf_pgemm_smem(int bn, int stages);

/* The shapes around the plan's pick, for the GPU check to time beside it:
 * each tile width, each split count that divides K's slices (1 with
 * swiglu) and whose CTAs run as one wave over at least half the SMs, each
 * with rings of 2, 4 and the most slices that fit.  Writes the first `max`
 * into out; returns how many there are.  The plan's pick is among them. */
int ssf_pgemm_shapes(int N, int K, int swiglu, int sms, size_t cta_smem, size_t sm_smem,
                     ssf_pgemm_shape *out, int max);

/*
 * The own kernel as a tuned candidate (the device option own_small_gemms
 * "tuned"): before a graph's first capture the engine runs each GEMM the
 * kernel has a plan for both ways at the graph's row count, on the first
 * layer's weights and a probe X, and keeps the own kernel only where its
 * output agrees with cuBLAS's and it is the faster by SSF_PGEMM_MARGIN.
 * A kernel whose sums come out wrong on some card, at a shape and row
 * count it is judged at, then costs speed, not answers.
 */
#define SSF_PGEMM_MARGIN 0.97f

/* n BF16 values (their bits) spread over [-1, 1], the same for a seed. */
void ssf_pgemm_probe(uint16_t *x, size_t n, uint32_t seed);

/* Whether got, n BF16 values, agrees with ref: all finite, and each
 * within (|ref_i| + rms(ref)) / 32 of ref's.  A BF16 step is 2^-8 to 2^-7
 * of a value: two fp32 sums of the same products in different orders,
 * each rounded, land a step apart at most, and SwiGLU's h, a rounded SiLU
 * of a rounded gate times a rounded up, a few; a row, column or split out
 * of place misses by the values' whole size.  A non-finite ref vouches for
 * nothing: it disagrees too.  *worst (may be NULL): the largest error in
 * units of its bound (infinity for a non-finite value). */
int ssf_pgemm_agrees(const uint16_t *ref, const uint16_t *got, size_t n, double *worst);

/* Whether the own kernel, own_ms a call, takes the GEMM from cuBLAS's
 * choice at blas_ms: faster by SSF_PGEMM_MARGIN, so that timing noise
 * does not flip a tie. */
int ssf_pgemm_wins(double own_ms, double blas_ms);

/* The tuner's verdict on the own kernel for one GEMM of a graph's rows. */
typedef struct ssf_pgemm_verdict {
    const char *gemm;       /* "qkv", "o", "gate_up" (with SwiGLU's SiLU), "down" */
    int rows;               /* the graph's rows */
    int tuned;              /* 0: no such graph yet, another mode, or no plan for the shape */
    int agrees;             /* the kernel's output agreed with cuBLAS's (ssf_pgemm_agrees) */
    int own;                /* ... and beat cuBLAS's path (ssf_pgemm_wins): the steps take it */
    double worst;           /* ssf_pgemm_agrees's worst error, in units of its bound */
    double blas_ms, own_ms; /* a call by each path (cuBLAS's gate|up: with the SiLU kernel) */
} ssf_pgemm_verdict;

/* The verdicts v[rows][gemms] (row r: the graphs of r rows) as one log
 * line, "cuda: own GEMM where tuned, its time over cuBLAS's: 8 rows: qkv
 * 0.92 own, o 1.10; 64 rows: qkv 0.71 own, down disagrees" ("own" where
 * the steps take it; the untuned left out), into buf as snprintf writes (n
 * bytes, NUL-terminated, cut short when full).  Returns the line's length,
 * 0 when none was tuned. */
size_t ssf_pgemm_report(char *buf, size_t n, const ssf_pgemm_verdict *v, int rows, int gemms);

/*
 * The cuBLAS tuner's split search (cuda_gemm.cuh, gemm_split_search).
 * cublasLt's heuristic offers up to 16 algorithms for a shape, ranked by a
 * model; a decode GEMM with few output tiles (o and down at 64 rows: a
 * few dozen) needs its K split to give every SM a share of the weights,
 * and the heuristic's few split-K picks may not be the best the card runs.
 * The search adds, for the heuristic's first split-capable algorithms,
 * each split count ssf_gemm_split_counts gives, and the tuner times them
 * all on the device.
 */
#define SSF_GEMM_SPLIT_MAX 16    /* the most splits tried */
#define SSF_GEMM_MIN_SPLIT_K 256 /* the fewest of K a split takes */
#define SSF_GEMM_SPLIT_COUNTS 7  /* at most this many counts */

/* The split counts worth timing for a GEMM over K, into out (room for
 * SSF_GEMM_SPLIT_COUNTS), ascending: 2, 3, 4, 6, 8, 12 and 16, those
 * whose splits each take at least SSF_GEMM_MIN_SPLIT_K of K.  Returns how
 * many (0 when K is too short to split). */
int ssf_gemm_split_counts(int K, int *out);

/* A tuned GEMM shape's pick: the GEMM's name, the graph's rows, and the
 * ways cuBLAS's chosen algorithm splits K (1: unsplit). */
typedef struct ssf_gemm_split_pick {
    const char *gemm;
    int rows, splits;
} ssf_gemm_split_pick;

/* The picks that split K (in the order given, runs of equal rows grouped)
 * as one log line, "cuda: cuBLAS's choices split K: 8 rows: o 2; 64 rows:
 * o 4, down 6", into buf as snprintf writes (n bytes, NUL-terminated, cut
 * short when full; buf may be NULL when n is 0).  Returns the line's
 * length, 0 when none splits. */
size_t ssf_gemm_split_report(char *buf, size_t n, const ssf_gemm_split_pick *p, int count);

#ifdef __cplusplus
}
#endif
#endif
