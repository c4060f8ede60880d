/*
 * model_digest.c - a checkpoint's fingerprint, the engine's part of a run's
 * identity.  Not in the libc-only model reader: it hashes through
 * OpenSSL (sha256.c) and remembers digests in the cache (digest_cache.c).
 */
#include "ssfteval/model.h"
#include "ssfteval/util.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The tokenizer's files, whole (a few MB): a revision that fixes only the
 * tokenizer changes what the model reads and writes.  tokenizer_config.json
 * is one of them: the tokenizer reads split_special_tokens from it (and,
 * for vocab.json + merges.txt, the added tokens). */
static void hash_tokenizer_files(ssf_buf *b, const char *dir)
{
    static const char *const names[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                        "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *path = ssf_path_join(dir, names[i]), hex[65];
        ssf_error ignored;
        if (ssf_path_exists(path) && ssf_sha256_file(path, hex, &ignored) == 0)
            ssf_buf_printf(b, " %s=%s", names[i], hex);
        free(path);
    }
}

/* A double by its bits: the text of "%g" follows the program's locale. */
static uint64_t bits_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

int ssf_model_fingerprint(const ssf_model *m, const char *cache_dir, FILE *log, char hex[65],
                          ssf_error *err)
{
    const ssf_model_config *c = ssf_model_config_of(m);
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s %d %d %d %d %d %d %d %" PRIx64 " %" PRIx64 " %d %d %d", c->architecture,
                   c->hidden_size, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                   c->intermediate_size, c->vocab_size, bits_of(c->rope_theta),
                   bits_of(c->rms_norm_eps), c->tie_word_embeddings, c->qkv_bias, c->bos_token_id);
    for (int i = 0; i < c->n_eos; i++)
        ssf_buf_printf(&b, " %d", (int)c->eos_ids[i]);
    hash_tokenizer_files(&b, ssf_model_dir(m));
    int rc = 0;
    for (size_t i = 0; i < ssf_model_file_count(m) && rc == 0; i++) {
        /* The bytes the engine maps, not what the path holds by now: a file
         * replaced since it was opened must not name the run. */
        char *path = ssf_model_file_path(m, i), file_hex[65];
        struct stat opened;
        size_t len;
        const void *data = ssf_safetensors_mapped(ssf_model_file(m, i), &len, &opened);
        if (data)
            ssf_sha256_mapped_cached(path, data, len, &opened, cache_dir, log, file_hex);
        else
            rc = ssf_sha256_file_cached(path, cache_dir, log, file_hex, err);
        if (rc == 0) ssf_buf_printf(&b, " weights%zu=%s", i, file_hex);
        free(path);
    }
    if (rc == 0) ssf_sha256_hex(b.data, b.len, hex);
    ssf_buf_free(&b);
    return rc;
}
