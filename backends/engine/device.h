/*
 * device.h - what an engine device (CPU or CUDA) provides: a KV cache of
 * `n_slots` sequence slots, each holding up to `max_context` positions, and
 * one forward pass over a batch of token rows.
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

typedef struct ssf_device_options {
    int n_slots;     /* sequences the KV cache holds at once (0: as many as fit, CUDA only) */
    int max_context; /* positions per slot (0: the model's max_position_embeddings) */
    int threads;     /* CPU worker threads (0: all cores) */
    double gpu_memory_utilization; /* CUDA: share of device memory to use (default 0.9) */
    int cuda_device;               /* CUDA: device ordinal */
} ssf_device_options;

/*
 * One forward step.  Row r feeds token[r] at position pos[r] of sequence
 * slot[r].  The rows of one slot come in increasing position order and
 * continue that slot's cache without a gap: positions 0..pos-1 of the slot
 * are either already cached or earlier rows of this batch.  Every row's K and
 * V are written to the cache; each row attends causally to positions
 * 0..pos[r] of its own slot.  Logits are produced only for the rows listed
 * in out_rows, in that order: logits[i * vocab_size ...] for out_rows[i],
 * vocab_size being the config's (padded) embedding rows.
 *
 * A row's result never depends on the other rows in the batch: on the CPU
 * bit for bit, on the GPU up to floating-point summation order.
 */
typedef struct ssf_fwd_batch {
    int n_rows;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *slot;
    int n_out;
    const int32_t *out_rows;
} ssf_fwd_batch;

typedef struct ssf_device ssf_device;
struct ssf_device {
    const char *name; /* "cpu", "cuda" */
    int n_slots;      /* filled in by open */
    int max_context;
    int max_rows; /* most rows one forward call accepts */
    int (*forward)(ssf_device *d, const ssf_fwd_batch *b, float *logits, ssf_error *err);
    /* Copies positions 0..n_tokens-1 of slot src's KV into slot dst (the
     * samples of a question fork from its one prefill). */
    int (*copy_slot)(ssf_device *d, int src, int dst, int n_tokens, ssf_error *err);
    void (*close)(ssf_device *d);
};

/* fp32 compute with a built-in GEMM (AVX2/FMA, portable C elsewhere) whose
 * every output element is one dot product in a fixed order: OpenBLAS was
 * measured to round a row differently depending on the batch around it,
 * which would make samples depend on scheduling.  Weights are widened from
 * BF16/F16 once at open (4 bytes a parameter); F32 checkpoints are used in
 * place from the mapping. */
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
