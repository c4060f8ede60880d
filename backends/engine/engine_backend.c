/*
 * engine_backend.c - the engine as a backend: opens the model directory, its
 * tokenizer and a device, and runs the scheduler for the pipeline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "ssfteval/model.h"
#include "ssfteval/tokenizer.h"

typedef struct engine_backend {
    ssf_model *model;
    ssf_tokenizer *tok;
    ssf_device *device;
    ssf_engine *engine;
    char *description;
    char *identity; /* ssf_backend_engine_identity */
    int log;        /* a summary line on stderr after each generate */
} engine_backend;

static const char *token_bytes(void *ud, int32_t id, size_t *len)
{
    return ssf_tokenizer_token_bytes(ud, id, len);
}

static int encode(void *ud, const char *text, int32_t **ids, size_t *n, ssf_error *err)
{
    return ssf_tokenizer_encode(ud, text, strlen(text), ids, n, err);
}

static char *decode(void *ud, const int32_t *ids, size_t n, ssf_error *err)
{
    size_t len;
    char *text = ssf_tokenizer_decode(ud, ids, n, 1, &len, err);
    if (!text || !memchr(text, '\0', len)) return text;
    ssf_buf b = {0}; /* a generated text is a C string (backend.h) */
    ssf_buf_append_text(&b, text, len);
    free(text);
    return ssf_buf_take(&b);
}

static int generate(ssf_backend *b, const ssf_gen_request *reqs, size_t n, ssf_gen_done_fn done,
                    void *ud, ssf_error *err)
{
    engine_backend *eb = b->impl;
    int rc = ssf_engine_generate(eb->engine, reqs, n, done, ud, err);
    if (eb->log) {
        const ssf_engine_stats *st = ssf_engine_stats_of(eb->engine);
        fprintf(stderr,
                "engine: %lld steps, %lld prompt tokens at %.0f tok/s, %lld decode tokens at %.0f "
                "tok/s, %lld forks, %lld preemptions (%lld tokens recomputed), %lld rows past a "
                "sample's end (deferred steps)\n",
                (long long)st->steps, (long long)st->prefill_tokens,
                st->prefill_s > 0 ? (double)st->prefill_tokens / st->prefill_s : 0.0,
                (long long)st->decode_tokens,
                st->decode_s > 0 ? (double)st->decode_tokens / st->decode_s : 0.0,
                (long long)st->forks, (long long)st->preemptions, (long long)st->recomputed_tokens,
                (long long)st->discarded_rows);
        char line[4096];
        if (eb->device->report && eb->device->report(eb->device, line, sizeof line) > 0)
            fprintf(stderr, "engine: %s\n", line);
    }
    return rc;
}

static void destroy(ssf_backend *b)
{
    if (!b) return;
    engine_backend *eb = b->impl;
    ssf_engine_free(eb->engine);
    if (eb->device) eb->device->close(eb->device);
    ssf_tokenizer_free(eb->tok);
    ssf_model_close(eb->model);
    free(eb->description);
    free(eb->identity);
    free(eb);
    free(b);
}

static ssf_device *open_device(const ssf_model *m, const ssf_engine_options *o, ssf_error *err)
{
    const char *want = o->device ? o->device : "auto";
    if (strcmp(want, "cuda") == 0) return ssf_device_cuda_open(m, &o->dev, err);
    if (strcmp(want, "cpu") == 0) return ssf_device_cpu_open(m, &o->dev, err);
    if (strcmp(want, "auto") != 0) {
        ssf_fail_usage(err, "--device: '%s' is not a device; use auto, cpu or cuda", want);
        return NULL;
    }
    if (ssf_device_cuda_available()) return ssf_device_cuda_open(m, &o->dev, err);
    return ssf_device_cpu_open(m, &o->dev, err);
}

static int open_on_device(engine_backend *eb, const ssf_engine_options *o, ssf_error *err)
{
    eb->device = open_device(eb->model, o, err);
    if (!eb->device) return -1;
    if (eb->device->max_rows < eb->device->n_slots + 1)
        return ssf_fail(err, "engine: device accepts %d rows a step, fewer than its %d slots",
                        eb->device->max_rows, eb->device->n_slots);
    return 0;
}

/* A tokenizer with ids past the model's vocabulary is another model's: its
 * prompts would fail sample by sample, each stored failed, at every rerun. */
static int check_vocabulary(const char *model_dir, const ssf_model *model, const ssf_tokenizer *tok,
                            ssf_error *err)
{
    const ssf_model_config *cfg = ssf_model_config_of(model);
    int32_t n_ids = ssf_tokenizer_n_ids(tok);
    if (n_ids <= cfg->vocab_size) return 0;
    return ssf_fail(err,
                    "model %s: its tokenizer has ids up to %d, past the vocab_size of %d in "
                    "config.json: it is another model's; use the tokenizer saved with the "
                    "checkpoint",
                    model_dir, (int)n_ids - 1, (int)cfg->vocab_size);
}

int ssf_backend_engine_open_files(const char *model_dir, ssf_model **model, ssf_tokenizer **tok,
                                  ssf_error *err)
{
    *model = NULL;
    *tok = NULL;
    if (ssf_model_open(model_dir, model, err)) return -1;
    int rc = ssf_tokenizer_load(model_dir, tok, err);
    if (rc)
        ssf_fail_prefix(err, "model %s: its tokenizer", model_dir);
    else
        rc = check_vocabulary(model_dir, *model, *tok, err);
    if (rc == 0) return 0;
    ssf_tokenizer_free(*tok);
    *tok = NULL;
    ssf_model_close(*model);
    *model = NULL;
    return -1;
}

ssf_backend *ssf_backend_engine_new(const char *model_dir, const ssf_engine_options *o,
                                    ssf_error *err)
{
    ssf_model *model;
    ssf_tokenizer *tok;
    if (ssf_backend_engine_open_files(model_dir, &model, &tok, err)) return NULL;
    return ssf_backend_engine_open(model, tok, o, err);
}

ssf_backend *ssf_backend_engine_open(ssf_model *model, ssf_tokenizer *tok,
                                     const ssf_engine_options *o, ssf_error *err)
{
    engine_backend *eb = ssf_xcalloc(1, sizeof *eb);
    ssf_backend *b = ssf_xcalloc(1, sizeof *b);
    *b = (ssf_backend){.name = "engine", .generate = generate, .destroy = destroy, .impl = eb};
    eb->model = model;
    eb->tok = tok;
    if (open_on_device(eb, o, err)) {
        destroy(b);
        return NULL;
    }
    const ssf_model_config *cfg = ssf_model_config_of(eb->model);
    int32_t n_ids = ssf_tokenizer_n_ids(eb->tok);
    ssf_engine_model m = {.device = eb->device,
                          .vocab_size = cfg->vocab_size,
                          .n_valid = n_ids < cfg->vocab_size ? n_ids : cfg->vocab_size,
                          .max_positions = cfg->max_position_embeddings,
                          .eos = cfg->eos_ids,
                          .n_eos = cfg->n_eos,
                          .token_bytes = token_bytes,
                          .encode = encode,
                          .decode = decode,
                          .ud = eb->tok};
    eb->engine = ssf_engine_new(&m, o);
    eb->log = o->log_progress;
    ssf_buf d = {0};
    ssf_buf_printf(&d, "%s, %d sequences x %d positions, %d KV blocks of %d%s", eb->device->name,
                   eb->device->n_slots, eb->device->max_context, eb->device->n_blocks,
                   eb->device->block_size, o->dev.kv_fp8 ? " (fp8 e4m3 KV)" : "");
    eb->description = ssf_buf_take(&d);
    const char *numerics = eb->device->numerics ? eb->device->numerics : "";
    ssf_buf_printf(&d, "%s%s%s", eb->device->name, numerics[0] ? "-" : "", numerics);
    eb->identity = ssf_buf_take(&d);
    return b;
}

const char *ssf_backend_engine_identity(const ssf_backend *b)
{
    return ((const engine_backend *)b->impl)->identity;
}

const char *ssf_backend_engine_describe(const ssf_backend *b)
{
    return ((const engine_backend *)b->impl)->description;
}

int ssf_backend_engine_max_context(const ssf_backend *b)
{
    return ((const engine_backend *)b->impl)->device->max_context;
}
