/*
 * engine.h - the in-process engine: a model, its tokenizer and a device
 * (CPU or CUDA) behind the backend interface of backend.h.
 *
 * The scheduler keeps the device busy over a paged KV cache (kvblocks.h).
 * The samples of one prompt share a single prefill: the prompt is computed
 * once, and each sample forks from it by sharing the prompt's blocks
 * (copy-on-write of the last, partial one) and drawing its first token from
 * the prompt's last logits with its own seed.  Every step feeds one token
 * per running sample, then, within a token budget, the recompute of
 * preempted samples and a chunk of the next prompt.  Admission goes by the
 * blocks sequences hold now, not by their token budget; when the pool runs
 * out, the youngest sample is preempted (its blocks freed) and recomputed
 * later, longest-waiting first.  Sequences finish independently (eos, stop
 * string, token budget, context limit).
 */
#ifndef SSFTEVAL_ENGINE_H
#define SSFTEVAL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "device.h"
#include "ssfteval/tokenizer.h"
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_engine_options {
    const char *device;      /* "auto" (CUDA when available), "cpu", "cuda" */
    ssf_device_options dev;  /* slots, context, threads, GPU memory share */
    int prefill_chunk;       /* prompt tokens fed per step (default 512) */
    const char *const *stop; /* stop strings (not included in the text), may be NULL */
    size_t n_stop;
    int log_progress;              /* a line to stderr now and then */
    const volatile int *interrupt; /* set (e.g. by SIGINT) to stop; unfinished samples fail */
} ssf_engine_options;

void ssf_engine_options_default(ssf_engine_options *o);

/* Opens the model directory (config, weights, tokenizer.json) on the chosen
 * device.  The backend's name is "engine". */
ssf_backend *ssf_backend_engine_new(const char *model_dir, const ssf_engine_options *o,
                                    ssf_error *err);
/* Opens a model directory's weights and tokenizer, the files the engine
 * reads; on failure both are closed and NULL. */
int ssf_backend_engine_open_files(const char *model_dir, ssf_model **model, ssf_tokenizer **tok,
                                  ssf_error *err);
/* The same from a model and its tokenizer already open, which the backend
 * takes over (and frees when it fails): its failures are then the device's
 * refusals of the options, which the command line reports apart from a
 * file that does not open. */
ssf_backend *ssf_backend_engine_open(ssf_model *model, ssf_tokenizer *tok,
                                     const ssf_engine_options *o, ssf_error *err);

/* A one-line description of the open engine ("cpu, 8 sequences x 4096
 * positions, 2048 KV blocks of 16"), owned by the backend. */
const char *ssf_backend_engine_describe(const ssf_backend *b);
/* The device as the run's identity takes it: "cuda", "cpu-avx2-libmvec" ...
 * (its name and numerics). */
const char *ssf_backend_engine_identity(const ssf_backend *b);
/* The context its device holds a sequence to (prompt + output tokens). */
int ssf_backend_engine_max_context(const ssf_backend *b);

/* ---- the scheduler alone, over any device (tests drive it with a fake one) */

typedef struct ssf_engine ssf_engine;

typedef struct ssf_engine_model {
    ssf_device *device;
    int32_t vocab_size; /* logit row width */
    int32_t n_valid;    /* ids a sample may take (tokenizer size) */
    int max_positions;  /* the model's own limit (max_position_embeddings); 0: unknown */
    const int32_t *eos; /* stop token ids */
    int n_eos;
    /* token -> raw bytes (for text and stop strings); NULL for unknown ids */
    const char *(*token_bytes)(void *ud, int32_t id, size_t *len);
    /* text -> ids (malloc'd) */
    int (*encode)(void *ud, const char *text, int32_t **ids, size_t *n, ssf_error *err);
    /* ids -> text (malloc'd, specials dropped) */
    char *(*decode)(void *ud, const int32_t *ids, size_t n, ssf_error *err);
    void *ud;
} ssf_engine_model;

ssf_engine *ssf_engine_new(const ssf_engine_model *m, const ssf_engine_options *o);
void ssf_engine_free(ssf_engine *e);

/* Generates every request, calling done once per request as each
 * finishes.  result->token_ids holds the generated ids. */
int ssf_engine_generate(ssf_engine *e, const ssf_gen_request *reqs, size_t n, ssf_gen_done_fn done,
                        void *ud, ssf_error *err);

typedef struct ssf_engine_stats {
    int64_t steps, prefill_tokens, decode_tokens, forks, preemptions, recomputed_tokens;
    int64_t block_copies;
    /* rows computed for samples that had ended: a deferring device's step
     * is built before the host has seen the step before's ids */
    int64_t discarded_rows;
    /* the most prompts holding their last position's logits at once (a
     * vocabulary of floats each, freed once their last sample starts) */
    int64_t peak_prompt_logits;
    double prefill_s, decode_s;
} ssf_engine_stats;

const ssf_engine_stats *ssf_engine_stats_of(const ssf_engine *e);

#ifdef __cplusplus
}
#endif

#endif
