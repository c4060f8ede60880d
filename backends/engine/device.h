/*
 * device.h - what an engine device (CPU or CUDA) provides: a paged KV cache
 * (a pool of fixed-size blocks) and one forward pass over a batch of token
 * rows of many sequences.
 *
 * The scheduler (engine.c) and the sampler (sampler.c) are shared; only the
 * arithmetic lives behind this interface.  Depends on the C library and
 * model.h alone, so the CUDA device builds on a machine with nvcc and
 * nothing else.
 */
#ifndef SSFTEVAL_ENGINE_DEVICE_H
#define SSFTEVAL_ENGINE_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/model.h"
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ssf_device_options.own_small_gemms */
typedef enum ssf_own_gemms {
    SSF_OWN_GEMMS_DEFAULT = 0,
    SSF_OWN_GEMMS_ALWAYS = 1, /* every GEMM the kernel has a plan for (1: what a boolean "on"
                                 in ssf_device_options meant, so that it still does) */
    SSF_OWN_GEMMS_TUNED,      /* where, at a graph's row count, the own kernel agreed with
                                 cuBLAS and beat its tuned path, on this device (cuda_plan.h);
                                 steps of that many rows outside graphs then take it too */
    SSF_OWN_GEMMS_NEVER,      /* cuBLAS's alone */
} ssf_own_gemms;

typedef struct ssf_device_options {
    int n_slots;     /* sequences in flight (CPU default 8; CUDA 0: min(256, n_blocks)) */
    int max_context; /* positions per sequence (0: the model's max_position_embeddings) */
    int block_size;  /* positions per KV block (0: 16) */
    int n_blocks;    /* KV blocks in the pool (0: CPU n_slots x max_context worth; CUDA: what
                        total memory x gpu_memory_utilization, less the memory in use,
                        holds after weights and activations) */
    int threads;     /* CPU worker threads (0: all cores) */
    double gpu_memory_utilization; /* CUDA: share of device memory to use (default 0.9) */
    int cuda_device;               /* CUDA: device ordinal */
    int disable_cuda_graphs;       /* CUDA: launch decode steps kernel by kernel */
    int kv_fp8; /* CUDA: K and V stored as FP8 e4m3, a scale per row (BF16 otherwise) */
    /* CUDA: prompts through the decode kernel.  By default runs of SSF_PREFILL_MIN_RUN or more
     * rows of a sequence at consecutive positions (prompts, recomputes) go through the flash
     * prefill kernel, BF16 KV only: on an H100, 1.35x the prefill tokens/s at 1.5B and 1.19x
     * at 7B for 1,000-token prompts (run I). */
    int disable_flash_prefill;
    /* CUDA: launch each kernel only once the one before it has completed.  By default the
     * engine's own kernels are programmatic dependent launches (sm_90 on), dispatched while
     * the kernel before drains and waiting for its writes before their first access.  For the
     * whole process (each forward sets it): it changes when a kernel starts, never a value. */
    int disable_pdl;
    /* CUDA: with an fp8 pool, prompts through the flash prefill kernel as well.  The default
     * since SSFK_PREFILL_FP8 is 1 (run O checked and timed it), so this only matters in a build
     * that sets it back to 0. */
    int fp8_flash_prefill;
    /* CUDA: in decode steps, the bias, RoPE and the KV store done by the decode attention kernel
     * as it loads q, one launch a layer fewer, the same bits (tools/cuda-emu has run it; a GPU
     * has not: bench/gpu-check.sh checks and times it).  The default once SSFK_ATTN_ROPE is 1. */
    int rope_in_attention;
    /* CUDA: which GEMMs of up to 64 rows (q|k|v, o, gate|up with SwiGLU's SiLU . up in its
     * epilogue, down) go through the engine's own kernel (cuda_pgemm.cu), which streams its
     * weights through shared memory and starts reading them while the kernel before it drains,
     * rather than cuBLAS: an ssf_own_gemms.  tools/cuda-emu has run the kernel; a GPU has not:
     * bench/gpu-check.sh checks and times it.  SSF_OWN_GEMMS_DEFAULT leaves it to
     * SSFK_OWN_SMALL_GEMMS (cuda_kernels.cuh). */
    int own_small_gemms;
    /* CUDA: the device defers its steps (can_defer), so that the engine builds and stages step
     * n + 1 while the GPU runs step n, each step's tokens fed on the GPU from the step before's
     * draws.  The engine's tests have run it on a fake device; a GPU has not: bench/gpu-check.sh
     * checks and times it.  The default once SSFK_OVERLAP_STEPS is 1. */
    int overlap_steps;
    /* CUDA: where both GEMMs around an RMSNorm take the own kernel (own_small_gemms), the norm
     * fused into them: the residual add and the new rows' sums of squares in the epilogue of the
     * GEMM before (o, down), the norm in the prologue of the GEMM after (gate|up, the next
     * layer's q|k|v), two launches a layer fewer.  tools/cuda-emu has run the kernel; a GPU has
     * not: bench/gpu-check.sh checks and times it.  The default once SSFK_FUSE_NORMS is 1. */
    int fuse_norms;
    /* CUDA: the RMSNorms before q|k|v and gate|up folded into those weights at load (each
     * column times its gain), so that the GEMMs read the residual stream as it is; the RoPE
     * and SiLU kernels after them scale each row by its 1 / rms, and o and down add into the
     * residual stream through cuBLAS's beta: two launches a layer fewer, cuBLAS's GEMMs kept.
     * Not with rope_in_attention, own_small_gemms or fuse_norms.  tools/cuda-emu has run the
     * two kernels; a GPU has not: bench/gpu-check.sh checks and times it.  The default once
     * SSFK_FOLD_NORMS is 1. */
    int fold_norms;
    /* CUDA: the RMSNorms kept as kernels of their own even where SSFK_FOLD_NORMS makes
     * folding them the default.  Not with fold_norms. */
    int disable_fold_norms;
    /* CUDA: before a graph bucket's first capture, the cuBLAS tuner times, beside cublasLt's
     * heuristic picks, the first four of them that split K in fp32 at 2-16 splits each
     * (ssf_gemm_split_counts), for the decode GEMMs whose few output tiles leave SMs idle.  The
     * fastest still wins; a GPU has not timed it: bench/gpu-check.sh does.  The default once
     * SSFK_GEMM_SPLIT_SEARCH is 1. */
    int gemm_split_search;
    /* CUDA: no split search even where SSFK_GEMM_SPLIT_SEARCH makes it the default.  Not with
     * gemm_split_search. */
    int disable_gemm_split_search;
} ssf_device_options;

/* How the device draws one row's next token, with ssf_sample's meaning
 * (sampler.h): temperature <= 0 or top_k == 1 is greedy; top_p 1, top_k
 * <= 0 and min_p 0 are off; the uniform is draw `step` of stream `seed`. */
typedef struct ssf_sample_spec {
    double temperature, top_p, min_p;
    int32_t top_k;
    uint64_t seed, step;
} ssf_sample_spec;

/*
 * The KV cache is paged: a pool of n_blocks blocks of block_size positions
 * (all layers, K and V).  A sequence is its block table, the block ids
 * holding its positions 0, bs, 2bs, ... in order; the scheduler owns the
 * tables (kvblocks.h) and may share blocks between sequences (the samples of
 * one prompt share the prompt's blocks).
 *
 * One forward step.  Row r feeds token[r] at position pos[r] of sequence
 * seq[r], whose table is tables[seq[r]].  Row r writes its K and V at
 * position pos[r] of that table (block pos / bs, offset pos % bs) and
 * attends causally to positions 0..pos[r] of it: positions below pos[r] were
 * written by earlier steps or by earlier rows of this batch (the rows of one
 * sequence come in increasing position order).  A block written by a row is
 * never shared with another sequence (copy_blocks made it private first).
 * Logits are produced only for the rows listed in out_rows, in that order:
 * logits[i * vocab_size ...] for out_rows[i], vocab_size being the config's
 * (padded) embedding rows.
 *
 * A row's result never depends on the other rows in the batch: on the CPU
 * bit for bit, on the GPU up to floating-point summation order.
 */
typedef struct ssf_fwd_batch {
    int n_rows;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;
    int n_seqs;
    const int32_t *const *tables; /* [n_seqs] block ids in position order */
    int n_out;
    const int32_t *out_rows;
    /* Devices with can_sample only: rows whose next token the device draws
     * itself, so that only ids cross to the host.  sampled[i] is the token
     * of sample_rows[i] (-1: no finite logit), among ids below n_valid.  A
     * row is in out_rows or in sample_rows, not both. */
    int n_sample;
    const int32_t *sample_rows;
    const ssf_sample_spec *sample;
    int32_t *sampled;
    int32_t n_valid;
    /* Devices with can_defer only.  feed: NULL, or per row -1 (the token
     * is token[r]) or i: the token is the id the previous forward call drew
     * for its sample row i, which the host need not know yet (token[r] is
     * then not read).  defer: forward returns once the step (of one row or
     * more) is queued and `sampled` is written by collect(); the logits of
     * out_rows are still written before forward returns. */
    const int32_t *feed;
    int defer;
} ssf_fwd_batch;

/* Copy the whole contents (every layer, K and V) of block src into block
 * dst: a shared, partly filled block made private before a write. */
typedef struct ssf_block_copy {
    int32_t src, dst;
} ssf_block_copy;

typedef struct ssf_device ssf_device;
struct ssf_device {
    const char *name; /* "cpu", "cuda" */
    /* How it computes, where two builds or machines of one device differ in
     * the last bits (CPU: "avx2-libmvec", "avx2", "portable"); part of a
     * run's identity.  "" when the name says it all. */
    const char *numerics;
    int n_slots;     /* sequences one step may hold (filled in by open) */
    int max_context; /* positions one sequence may reach */
    int max_rows;    /* most rows one forward call accepts */
    int block_size;  /* positions per KV block */
    int n_blocks;    /* blocks in the pool */
    int can_sample;  /* forward takes sample_rows (else the caller samples logits) */
    /* forward takes feed and defer (can_sample too), so that the host builds
     * step n + 1 while the device runs step n and only then waits for step
     * n's ids.  At most two deferred steps are uncollected at a time. */
    int can_defer;
    int (*forward)(ssf_device *d, const ssf_fwd_batch *b, float *logits, ssf_error *err);
    /* can_defer: waits for the oldest deferred step not yet collected and
     * writes its ids into that call's `sampled` (which must live till then).
     * A fault of the step is reported here (or by a forward before that
     * waits on the device), and the step counts as collected. */
    int (*collect)(ssf_device *d, ssf_error *err);
    int (*copy_blocks)(ssf_device *d, const ssf_block_copy *c, int n, ssf_error *err);
    void (*close)(ssf_device *d);
    /* What the device chose while it ran, for a log line (CUDA: the own GEMMs' tuner, cuda_plan.h),
     * into buf as snprintf writes; 0 when it has nothing to say.  May be NULL. */
    size_t (*report)(const ssf_device *d, char *buf, size_t n);
};

/* fp32 compute with a built-in GEMM (AVX2/FMA, portable C elsewhere) whose
 * every output element is one FMA chain over k in a fixed order: OpenBLAS
 * was measured to round a row differently depending on the batch around
 * it, which would make samples depend on scheduling.  The GEMMs' weights
 * are widened and packed once at open (4 bytes a parameter, F32
 * checkpoints included); norms and an untied embedding are used in place
 * when F32. */
ssf_device *ssf_device_cpu_open(const ssf_model *m, const ssf_device_options *o, ssf_error *err);

/* BF16 weights on the GPU, cuBLAS GEMMs with fp32 accumulation.  Without a
 * CUDA build or a device: NULL and a one-line reason. */
ssf_device *ssf_device_cuda_open(const ssf_model *m, const ssf_device_options *o, ssf_error *err);

/* Whether this build has the CUDA device and a GPU is present. */
int ssf_device_cuda_available(void);

#ifdef __cplusplus
}
#endif
#endif
