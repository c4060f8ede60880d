/*
 * model-fixture.h - writes tiny Qwen2-shaped checkpoints for the model
 * tests: safetensors files (F32, F16 or BF16, one file or shards with an
 * index), config.json and generation_config.json.  Values are small
 * multiples of 1/8, exact in every dtype, so reading them back can be
 * compared exactly.
 */
#ifndef SSFTEVAL_TESTS_MODEL_FIXTURE_H
#define SSFTEVAL_TESTS_MODEL_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssfteval/util.h"

/* The tiny model: hidden 8, 2 layers, 2 heads, 1 KV head, head_dim 4. */
enum {
    FX_HIDDEN = 8,
    FX_LAYERS = 2,
    FX_HEADS = 2,
    FX_KV = 1,
    FX_HD = 4,
    FX_INTER = 12,
    FX_VOCAB = 16
};
/* Parameters: 128 embed + 2 x 512 per layer + 8 final norm (+ 128 lm_head). */
#define FX_PARAMS_TIED 1160
#define FX_PARAMS_UNTIED 1288

typedef struct fx_entry {
    char name[96];
    const char *dtype;
    int ndim;
    int64_t shape[4];
    int seed; /* values: fx_value(seed, i) */
} fx_entry;

typedef struct fx_file {
    fx_entry e[64];
    int n;
} fx_file;

static inline float fx_value(int seed, int64_t i)
{
    return (float)(((int64_t)seed * 7 + i) % 61 - 30) / 8.0f;
}

static inline size_t fx_dsize(const char *dtype)
{
    return strcmp(dtype, "F32") == 0 ? 4 : 2;
}

static inline int64_t fx_numel(const fx_entry *e)
{
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++)
        n *= e->shape[i];
    return n;
}

/* Encodes one value.  Plain truncation (BF16) and a normal-only F16 path
 * are exact here because fx_value gives multiples of 1/8 below 4, which need
 * at most 5 significant bits. */
static inline void fx_encode(const char *dtype, float v, unsigned char *out)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    if (!strcmp(dtype, "F32")) {
        for (int i = 0; i < 4; i++)
            out[i] = (unsigned char)(u >> (8 * i));
        return;
    }
    uint16_t h;
    if (!strcmp(dtype, "BF16")) {
        h = (uint16_t)(u >> 16);
    } else { /* F16 of a normal value with few mantissa bits, or zero */
        uint32_t sign = (u >> 16) & 0x8000, exp = (u >> 23) & 0xFF, mant = u & 0x7FFFFF;
        h = exp == 0 ? (uint16_t)sign : (uint16_t)(sign | ((exp - 127 + 15) << 10) | (mant >> 13));
    }
    out[0] = (unsigned char)h;
    out[1] = (unsigned char)(h >> 8);
}

static inline void fx_add(fx_file *f, const char *name, const char *dtype, int ndim, int64_t d0,
                          int64_t d1, int seed)
{
    fx_entry *e = &f->e[f->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->seed = seed;
}

/* The safetensors bytes of f (header padded with spaces to 8 bytes). */
static inline unsigned char *fx_serialize(const fx_file *f, size_t *len)
{
    ssf_buf h = {0};
    size_t off = 0;
    ssf_buf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < f->n; i++) {
        const fx_entry *e = &f->e[i];
        size_t nb = (size_t)fx_numel(e) * fx_dsize(e->dtype);
        ssf_buf_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e->name, e->dtype);
        for (int d = 0; d < e->ndim; d++)
            ssf_buf_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        ssf_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    ssf_buf_putc(&h, '}');
    while (h.len % 8)
        ssf_buf_putc(&h, ' ');
    *len = 8 + h.len + off;
    unsigned char *buf = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.data, h.len);
    unsigned char *p = buf + 8 + h.len;
    for (int i = 0; i < f->n; i++) {
        const fx_entry *e = &f->e[i];
        for (int64_t k = 0; k < fx_numel(e); k++, p += fx_dsize(e->dtype))
            fx_encode(e->dtype, fx_value(e->seed, k), p);
    }
    ssf_buf_free(&h);
    return buf;
}

static inline void fx_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(data, 1, len, out) != len || fclose(out) != 0) {
        perror(path);
        abort();
    }
}

static inline void fx_write_st(const char *dir, const char *name, const fx_file *f)
{
    size_t len;
    unsigned char *buf = fx_serialize(f, &len);
    fx_write(dir, name, buf, len);
    free(buf);
}

static inline void fx_write_text(const char *dir, const char *name, const char *text)
{
    fx_write(dir, name, text, strlen(text));
}

/* The tensors of the tiny model, in HF order, all in one dtype; without
 * the q/k/v biases for a Llama (their seeds still counted, so the other
 * tensors hold the same values). */
static inline void fx_model_tensors_of(fx_file *f, const char *dtype, int tied, int qkv_bias)
{
    char n[96];
    int seed = 1;
    f->n = 0;
    fx_add(f, "model.embed_tokens.weight", dtype, 2, FX_VOCAB, FX_HIDDEN, seed++);
    for (int l = 0; l < FX_LAYERS; l++) {
        static const struct {
            const char *part;
            int ndim;
            int64_t d0, d1;
        } parts[] = {
            {"input_layernorm.weight", 1, FX_HIDDEN, 0},
            {"self_attn.q_proj.weight", 2, (int64_t)FX_HEADS * FX_HD, FX_HIDDEN},
            {"self_attn.q_proj.bias", 1, (int64_t)FX_HEADS * FX_HD, 0},
            {"self_attn.k_proj.weight", 2, (int64_t)FX_KV * FX_HD, FX_HIDDEN},
            {"self_attn.k_proj.bias", 1, (int64_t)FX_KV * FX_HD, 0},
            {"self_attn.v_proj.weight", 2, (int64_t)FX_KV * FX_HD, FX_HIDDEN},
            {"self_attn.v_proj.bias", 1, (int64_t)FX_KV * FX_HD, 0},
            {"self_attn.o_proj.weight", 2, FX_HIDDEN, (int64_t)FX_HEADS * FX_HD},
            {"post_attention_layernorm.weight", 1, FX_HIDDEN, 0},
            {"mlp.gate_proj.weight", 2, FX_INTER, FX_HIDDEN},
            {"mlp.up_proj.weight", 2, FX_INTER, FX_HIDDEN},
            {"mlp.down_proj.weight", 2, FX_HIDDEN, FX_INTER},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", l, parts[i].part);
            if (qkv_bias || !strstr(parts[i].part, ".bias"))
                fx_add(f, n, dtype, parts[i].ndim, parts[i].d0, parts[i].d1, seed);
            seed++;
        }
    }
    fx_add(f, "model.norm.weight", dtype, 1, FX_HIDDEN, 0, seed++);
    if (!tied) fx_add(f, "lm_head.weight", dtype, 2, FX_VOCAB, FX_HIDDEN, seed++);
}

static inline void fx_model_tensors(fx_file *f, const char *dtype, int tied)
{
    fx_model_tensors_of(f, dtype, tied, 1);
}

static inline void fx_write_config(const char *dir, int tied, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\",\n"
             " \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,\n"
             " \"num_key_value_heads\": %d, \"intermediate_size\": %d, \"vocab_size\": %d,\n"
             " \"max_position_embeddings\": 64, \"rope_theta\": 1000000.0,\n"
             " \"rms_norm_eps\": 1e-06, \"tie_word_embeddings\": %s, \"hidden_act\": \"silu\",\n"
             " \"use_sliding_window\": false, \"sliding_window\": 32768, \"rope_scaling\": null,\n"
             " \"torch_dtype\": \"bfloat16\", \"bos_token_id\": 14, \"eos_token_id\": 15%s}\n",
             FX_HIDDEN, FX_LAYERS, FX_HEADS, FX_KV, FX_INTER, FX_VOCAB, tied ? "true" : "false",
             extra ? extra : "");
    fx_write_text(dir, "config.json", text);
}

/* A Llama of the same shapes, in one F32 file: no q/k/v biases. */
static inline void fx_write_llama_model(const char *dir)
{
    char text[2048];
    snprintf(
        text, sizeof text,
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
        " \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,\n"
        " \"num_key_value_heads\": %d, \"intermediate_size\": %d, \"vocab_size\": %d,\n"
        " \"max_position_embeddings\": 64, \"rope_theta\": 500000.0, \"rms_norm_eps\": 1e-05,\n"
        " \"tie_word_embeddings\": false, \"hidden_act\": \"silu\", \"attention_bias\": false,\n"
        " \"bos_token_id\": 14, \"eos_token_id\": 15}\n",
        FX_HIDDEN, FX_LAYERS, FX_HEADS, FX_KV, FX_INTER, FX_VOCAB);
    fx_write_text(dir, "config.json", text);
    fx_file all;
    fx_model_tensors_of(&all, "F32", 0, 0);
    fx_write_st(dir, "model.safetensors", &all);
}

/* A whole model directory: one file, or `shards` shards with an index
 * (tensors dealt round-robin). */
static inline void fx_write_model(const char *dir, const char *dtype, int tied, int shards)
{
    fx_file all;
    fx_model_tensors(&all, dtype, tied);
    fx_write_config(dir, tied, NULL);
    fx_write_text(dir, "generation_config.json",
                  "{\"bos_token_id\": 14, \"eos_token_id\": [15, 13], \"temperature\": 0.7,\n"
                  " \"top_p\": 0.8, \"top_k\": 20}\n");
    if (shards <= 1) {
        fx_write_st(dir, "model.safetensors", &all);
        return;
    }
    ssf_buf idx = {0};
    ssf_buf_puts(&idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int s = 0; s < shards; s++) {
        fx_file part = {.n = 0};
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
        for (int i = s; i < all.n; i += shards) {
            part.e[part.n++] = all.e[i];
            ssf_buf_printf(&idx, "%s\"%s\": \"%s\"", idx.data[idx.len - 1] == '{' ? "" : ", ",
                           all.e[i].name, name);
        }
        fx_write_st(dir, name, &part);
    }
    ssf_buf_puts(&idx, "}}\n");
    fx_write_text(dir, "model.safetensors.index.json", idx.data);
    ssf_buf_free(&idx);
}

#endif
