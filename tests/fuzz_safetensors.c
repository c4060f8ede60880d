/*
 * fuzz_safetensors.c - libFuzzer target for the model reader: the bytes as a
 * safetensors file (every accepted tensor is read back whole, so a pointer
 * or size the header validation let through would show under ASan), and as
 * config.json with and without a generation_config.json.
 * Built with -Dfuzz=true (clang).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssfteval/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const ssf_safetensors *st)
{
    volatile float sink = 0;
    for (size_t i = 0; i < ssf_safetensors_count(st); i++) {
        const ssf_tensor *t = ssf_safetensors_at(st, i);
        if (ssf_safetensors_find(st, t->name) != t) abort();
        for (int64_t k = 0; k < t->numel; k++)
            sink += ssf_tensor_get_f32(t, k);
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssf_error err;
    ssf_safetensors *st;
    /* A private copy: ASan then catches reads past the input's end. */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    if (ssf_safetensors_parse(copy, size, "fuzz", &st, &err) == 0) {
        read_all(st);
        ssf_safetensors_close(st);
    }
    ssf_model_config cfg;
    ssf_model_config_parse((const char *)copy, size, NULL, 0, "fuzz", &cfg, &err);
    /* Split in two: config.json before the first NUL, generation config after. */
    const uint8_t *nul = memchr(copy, 0, size);
    if (nul) {
        size_t n = (size_t)(nul - copy);
        ssf_model_config_parse((const char *)copy, n, (const char *)nul + 1, size - n - 1, "fuzz",
                               &cfg, &err);
    }
    free(copy);
    return 0;
}
