/*
 * model_internal.h - what model.c and model_hub.c share: the reader of
 * model.safetensors.index.json.  C library only.
 */
#ifndef SSFTEVAL_MODEL_INTERNAL_H
#define SSFTEVAL_MODEL_INTERNAL_H

#include <stddef.h>

#include "ssfteval/util.h"

#define SSF_INDEX_FILE "model.safetensors.index.json"
#define SSF_SINGLE_FILE "model.safetensors"

typedef struct ssf_weight_index {
    char **shards; /* distinct shard file names, sorted */
    size_t n_shards;
    char **tensors;       /* weight_map keys, sorted */
    size_t *tensor_shard; /* index into shards, per tensor */
    size_t n_tensors;
} ssf_weight_index;

/* Parses an index's weight_map.  Shard names must be plain file names (no
 * '/', not "." or ".."), so an index cannot point outside its directory.
 * `path` names the file in messages. */
int ssf_weight_index_parse(const char *text, size_t len, const char *path, ssf_weight_index *idx,
                           ssf_error *err);
/* The shard holding a tensor, or -1 when the index does not list it. */
long ssf_weight_index_find(const ssf_weight_index *idx, const char *tensor);
void ssf_weight_index_free(ssf_weight_index *idx);

#endif
