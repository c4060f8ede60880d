/*
 * model.h - a model's own files, read exactly as Hugging Face reads them:
 * safetensors checkpoints (one file or shards with an index), config.json
 * and generation_config.json.
 *
 * This module depends on the C library alone (its JSON reader is the small
 * one in jsonlite.c), so the engine built on it compiles on a GPU machine
 * that has nvcc and nothing else.  Hub downloads (`hf:ORG/NAME[@REV]`) are
 * in model_hub.c, which needs libcurl.
 */
#ifndef SSFTEVAL_MODEL_H
#define SSFTEVAL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- safetensors ---------------------------------------------------------- */

typedef enum ssf_dtype {
    SSF_DTYPE_F32,
    SSF_DTYPE_F16,
    SSF_DTYPE_BF16,
} ssf_dtype;

#define SSF_TENSOR_MAX_DIMS 4

typedef struct ssf_tensor {
    const char *name;
    ssf_dtype dtype;
    int ndim;
    int64_t shape[SSF_TENSOR_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the mapping, little-endian, row-major */
    size_t nbytes;
    const char *file; /* the file it came from, for messages */
} ssf_tensor;

const char *ssf_dtype_name(ssf_dtype t); /* "F32", "F16", "BF16" */
size_t ssf_dtype_size(ssf_dtype t);

/* Widens one element to float (BF16 and F16 exactly). */
float ssf_tensor_get_f32(const ssf_tensor *t, int64_t i);
/* Widens n elements starting at element `first` into out. */
void ssf_tensor_read_f32(const ssf_tensor *t, int64_t first, int64_t n, float *out);

typedef struct ssf_safetensors ssf_safetensors;

/* Maps a file and validates its whole header before anything is used: the
 * 8-byte length, a JSON object of tensors with known dtypes, shapes whose
 * byte size equals end - begin, offsets inside the file, no two tensors
 * overlapping.  Errors name the file and the tensor. */
int ssf_safetensors_open(const char *path, ssf_safetensors **out, ssf_error *err);

/* The same validation over a buffer already in memory (the fuzz target);
 * `buf` must outlive the result.  `name` is used in messages. */
int ssf_safetensors_parse(const void *buf, size_t len, const char *name, ssf_safetensors **out,
                          ssf_error *err);

size_t ssf_safetensors_count(const ssf_safetensors *st);
const ssf_tensor *ssf_safetensors_at(const ssf_safetensors *st, size_t i);
const ssf_tensor *ssf_safetensors_find(const ssf_safetensors *st, const char *name);
/* The whole file as mapped, and its stat when it was opened (NULL for one
 * parsed from a caller's buffer): what the engine reads, whatever the path
 * holds by now. */
struct stat;
const void *ssf_safetensors_mapped(const ssf_safetensors *st, size_t *len, struct stat *opened);
void ssf_safetensors_close(ssf_safetensors *st);

/* ---- config.json + generation_config.json --------------------------------- */

#define SSF_MAX_EOS 8

typedef struct ssf_model_config {
    char architecture[64]; /* architectures[0]: "Qwen2ForCausalLM", "LlamaForCausalLM" */
    char model_type[32];   /* "qwen2", "llama" */
    int hidden_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim; /* "head_dim" if given, else hidden_size / n_heads */
    int intermediate_size;
    int vocab_size; /* embedding rows (padded) */
    int max_position_embeddings;
    double rope_theta;
    double rms_norm_eps;
    int tie_word_embeddings;
    int qkv_bias; /* qwen2: always; llama: "attention_bias" */
    char torch_dtype[16];
    int bos_token_id; /* -1 when absent */
    int n_eos;        /* eos ids: generation_config's, else config's */
    int32_t eos_ids[SSF_MAX_EOS];
    /* generation_config.json sampling defaults; < 0 when absent */
    double gen_temperature, gen_top_p;
    long gen_top_k;
} ssf_model_config;

/* Reads config.json (and generation_config.json, which may be NULL) with
 * Hugging Face's defaults and checks them: positive sizes, heads dividing
 * evenly into KV groups, silu activation, no rope_scaling we cannot apply.
 * `name` prefixes messages. */
int ssf_model_config_parse(const char *config_json, size_t config_len, const char *gen_json,
                           size_t gen_len, const char *name, ssf_model_config *cfg, ssf_error *err);

/* ---- a whole checkpoint --------------------------------------------------- */

typedef struct ssf_layer_weights {
    const ssf_tensor *attn_norm;                /* [hidden] */
    const ssf_tensor *q, *k, *v;                /* [heads*hd, hidden], [kv*hd, hidden] */
    const ssf_tensor *q_bias, *k_bias, *v_bias; /* NULL without qkv_bias */
    const ssf_tensor *o;                        /* [hidden, heads*hd] */
    const ssf_tensor *mlp_norm;                 /* [hidden] */
    const ssf_tensor *gate, *up;                /* [inter, hidden] */
    const ssf_tensor *down;                     /* [hidden, inter] */
} ssf_layer_weights;

typedef struct ssf_model_weights {
    const ssf_tensor *embed;      /* [vocab, hidden] */
    const ssf_tensor *final_norm; /* [hidden] */
    const ssf_tensor *lm_head;    /* [vocab, hidden]; == embed when tied */
    ssf_layer_weights *layers;    /* [n_layers] */
} ssf_model_weights;

typedef struct ssf_model ssf_model;

/* Opens a local model directory: config.json, generation_config.json (if
 * present), model.safetensors or model.safetensors.index.json with its
 * shards (all mapped, never read whole).  Every expected tensor is found by
 * name across shards and checked against the config's shape; dtypes must be
 * F32, F16 or BF16.  A missing or extra-large tensor, a shard named by the
 * index but absent, a truncated file: one line naming file and tensor. */
int ssf_model_open(const char *dir, ssf_model **out, ssf_error *err);
void ssf_model_close(ssf_model *m);

const char *ssf_model_dir(const ssf_model *m);
const ssf_model_config *ssf_model_config_of(const ssf_model *m);
const ssf_model_weights *ssf_model_weights_of(const ssf_model *m);
/* Parameters stored (the tied lm_head counted once) and their bytes. */
int64_t ssf_model_param_count(const ssf_model *m);
int64_t ssf_model_weight_bytes(const ssf_model *m);
/* The dtype most parameters are stored in. */
ssf_dtype ssf_model_dtype(const ssf_model *m);
/* Bytes of KV cache one token needs at `bytes_per_value` (2 for bf16). */
int64_t ssf_model_kv_bytes_per_token(const ssf_model_config *cfg, int bytes_per_value);
/* safetensors files mapped: 1, or the number of shards. */
size_t ssf_model_file_count(const ssf_model *m);
/* The path of file i of those (free it), NULL past the last. */
char *ssf_model_file_path(const ssf_model *m, size_t i);
/* File i of those, NULL past the last. */
const ssf_safetensors *ssf_model_file(const ssf_model *m, size_t i);

/* ---- models on the Hub (model_hub.c: needs libcurl via hub.h) ------------- */

typedef struct ssf_hub ssf_hub;

/* Turns a model spec into a local directory (free *dir_out).  A directory is
 * returned as it is.  "hf:ORG/NAME[@REV]" (REV defaults to main) downloads
 * config.json, generation_config.json, tokenizer_config.json and
 * chat_template.jinja (if the repository has them), tokenizer.json, and model.safetensors or
 * model.safetensors.index.json with every shard it names into the Hub cache,
 * and returns that snapshot directory.  Not part of the libc-only reader. */
int ssf_model_resolve(const char *spec, const ssf_hub *hub, char **dir_out, ssf_error *err);

/* The checkpoint's fingerprint, part of a run's identity (model_digest.c;
 * not part of the libc-only reader): SHA-256 of its config, of every weight
 * file whole and of its tokenizer's files, so that two checkpoints that
 * differ in a byte are two runs.  Each weight file's digest is kept under
 * cache_dir (NULL: not kept; ssf_sha256_file_cached), so a file is read
 * once; log (may be NULL) hears of files of a gigabyte or more read. */
int ssf_model_fingerprint(const ssf_model *m, const char *cache_dir, FILE *log, char hex[65],
                          ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
