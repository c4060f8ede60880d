/*
 * model.c - a local model directory: config, generation config, and the
 * safetensors weights (one file or shards named by an index), every tensor
 * the architecture needs found by its Hugging Face name and checked against
 * the config's shape.  C library only (see jsonlite.h).
 */
#include "ssfteval/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonlite.h"
#include "model_internal.h"

struct ssf_model {
    char *dir;
    ssf_model_config cfg;
    ssf_safetensors **files; /* one, or one per shard (index order) */
    size_t n_files;
    ssf_weight_index idx; /* empty for a single-file checkpoint */
    char *index_path, *single_path;
    ssf_model_weights w;
    int64_t params, bytes;
    int64_t per_dtype[3]; /* parameters stored in each ssf_dtype */
};

/* ---- the index -------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int check_shard_name(const char *path, const char *tensor, const char *shard, ssf_error *err)
{
    if (!*shard || strchr(shard, '/') || !strcmp(shard, ".") || !strcmp(shard, ".."))
        return ssf_fail(err, "%s: tensor %s: shard \"%.64s\" is not a plain file name", path,
                        tensor, shard);
    for (const char *p = shard; *p; p++)
        if ((unsigned char)*p < 0x20)
            return ssf_fail(err, "%s: tensor %s: shard name has a control character", path, tensor);
    return 0;
}

/* Distinct shard names, sorted, so each file is opened once. */
static void collect_shards(ssf_weight_index *idx, const jl_value *map)
{
    char **names = ssf_xmalloc((map->u.obj.n ? map->u.obj.n : 1) * sizeof *names);
    for (size_t i = 0; i < map->u.obj.n; i++)
        names[i] = map->u.obj.members[i].value->u.str.s;
    qsort(names, map->u.obj.n, sizeof *names, cmp_str);
    idx->shards = ssf_xmalloc((map->u.obj.n ? map->u.obj.n : 1) * sizeof *idx->shards);
    for (size_t i = 0; i < map->u.obj.n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            idx->shards[idx->n_shards++] = ssf_xstrdup(names[i]);
    free(names);
}

static long find_sorted(char *const *list, size_t n, const char *key)
{
    char *const *hit = bsearch(&key, list, n, sizeof *list, cmp_str);
    return hit ? (long)(hit - list) : -1;
}

/* Tensor names sorted, each with its shard's number. */
static void collect_tensors(ssf_weight_index *idx, const jl_value *map)
{
    size_t n = map->u.obj.n;
    idx->tensors = ssf_xmalloc((n ? n : 1) * sizeof *idx->tensors);
    idx->tensor_shard = ssf_xmalloc((n ? n : 1) * sizeof *idx->tensor_shard);
    for (size_t i = 0; i < n; i++)
        idx->tensors[i] = ssf_xstrdup(map->u.obj.members[i].key);
    qsort(idx->tensors, n, sizeof *idx->tensors, cmp_str);
    idx->n_tensors = n;
    for (size_t i = 0; i < n; i++) {
        const jl_value *shard = ssf_jl_get(map, idx->tensors[i]);
        idx->tensor_shard[i] = (size_t)find_sorted(idx->shards, idx->n_shards, shard->u.str.s);
    }
}

int ssf_weight_index_parse(const char *text, size_t len, const char *path, ssf_weight_index *idx,
                           ssf_error *err)
{
    memset(idx, 0, sizeof *idx);
    ssf_error jerr = {0};
    jl_value *root = ssf_jl_parse(text, len, 16, &jerr);
    if (!root) return ssf_fail(err, "%s is not valid JSON: %s", path, jerr.msg);
    const jl_value *map = ssf_jl_get(root, "weight_map");
    int rc = 0;
    if (!map || map->type != JL_OBJECT || map->u.obj.n == 0)
        rc =
            ssf_fail(err, "%s: \"weight_map\" must be a non-empty object of tensor -> shard", path);
    for (size_t i = 0; rc == 0 && i < map->u.obj.n; i++) {
        const jl_member *m = &map->u.obj.members[i];
        if (m->value->type != JL_STRING)
            rc = ssf_fail(err, "%s: weight_map entry %.128s must be a file name", path, m->key);
        else if (strlen(m->key) != m->key_len || strlen(m->value->u.str.s) != m->value->u.str.len)
            /* \u0000 would cut the name short of the key it is looked up by */
            rc = ssf_fail(err, "%s: weight_map entry %.128s holds a NUL character", path, m->key);
        else
            rc = check_shard_name(path, m->key, m->value->u.str.s, err);
    }
    if (rc == 0) {
        collect_shards(idx, map);
        collect_tensors(idx, map);
    }
    ssf_jl_free(root);
    return rc;
}

long ssf_weight_index_find(const ssf_weight_index *idx, const char *tensor)
{
    long i = find_sorted(idx->tensors, idx->n_tensors, tensor);
    return i < 0 ? -1 : (long)idx->tensor_shard[i];
}

void ssf_weight_index_free(ssf_weight_index *idx)
{
    for (size_t i = 0; i < idx->n_shards; i++)
        free(idx->shards[i]);
    for (size_t i = 0; i < idx->n_tensors; i++)
        free(idx->tensors[i]);
    free(idx->shards);
    free(idx->tensors);
    free(idx->tensor_shard);
    memset(idx, 0, sizeof *idx);
}

/* ---- files -------------------------------------------------------------- */

/* config.json (required) and generation_config.json (if present). */
static int read_configs(ssf_model *m, ssf_error *err)
{
    char *cpath = ssf_path_join(m->dir, "config.json"),
         *gpath = ssf_path_join(m->dir, "generation_config.json");
    char *ctext = NULL, *gtext = NULL;
    size_t clen = 0, glen = 0;
    int rc = 0;
    if (!ssf_path_exists(cpath))
        rc = ssf_fail(err, "%s has no config.json: not a Hugging Face model directory", m->dir);
    if (rc == 0) rc = ssf_read_file(cpath, &ctext, &clen, err);
    if (rc == 0 && ssf_path_exists(gpath)) rc = ssf_read_file(gpath, &gtext, &glen, err);
    if (rc == 0) rc = ssf_model_config_parse(ctext, clen, gtext, glen, m->dir, &m->cfg, err);
    free(cpath);
    free(gpath);
    free(ctext);
    free(gtext);
    return rc;
}

/* Every weight_map entry must be in the shard it names. */
static int check_index_entries(const ssf_model *m, ssf_error *err)
{
    for (size_t i = 0; i < m->idx.n_tensors; i++) {
        size_t s = m->idx.tensor_shard[i];
        if (!ssf_safetensors_find(m->files[s], m->idx.tensors[i]))
            return ssf_fail(err, "tensor %s, which %s places in %s, is missing from %s/%s",
                            m->idx.tensors[i], m->index_path, m->idx.shards[s], m->dir,
                            m->idx.shards[s]);
    }
    return 0;
}

static int open_shards(ssf_model *m, ssf_error *err)
{
    char *text;
    size_t len;
    if (ssf_read_file(m->index_path, &text, &len, err)) return -1;
    int rc = ssf_weight_index_parse(text, len, m->index_path, &m->idx, err);
    free(text);
    if (rc) return -1;
    m->files = ssf_xcalloc(m->idx.n_shards, sizeof *m->files);
    for (size_t i = 0; i < m->idx.n_shards; i++, m->n_files++) {
        char *path = ssf_path_join(m->dir, m->idx.shards[i]);
        if (!ssf_path_exists(path))
            rc = ssf_fail(err, "shard %s named by %s is missing; download it again", path,
                          m->index_path);
        else
            rc = ssf_safetensors_open(path, &m->files[i], err);
        free(path);
        if (rc) return -1;
    }
    return check_index_entries(m, err);
}

/* model.safetensors first, as transformers looks for it first. */
static int open_weights(ssf_model *m, ssf_error *err)
{
    m->single_path = ssf_path_join(m->dir, SSF_SINGLE_FILE);
    m->index_path = ssf_path_join(m->dir, SSF_INDEX_FILE);
    int rc;
    if (ssf_path_exists(m->single_path)) {
        m->files = ssf_xcalloc(1, sizeof *m->files);
        rc = ssf_safetensors_open(m->single_path, &m->files[0], err);
        if (rc == 0) m->n_files = 1;
    } else if (ssf_path_exists(m->index_path)) {
        rc = open_shards(m, err);
    } else {
        rc = ssf_fail(err, "%s has neither %s nor %s: ssfteval reads safetensors checkpoints only",
                      m->dir, SSF_SINGLE_FILE, SSF_INDEX_FILE);
    }
    return rc;
}

/* ---- tensors by name, with shapes checked ------------------------------- */

static int find_tensor(const ssf_model *m, const char *name, const ssf_tensor **out, ssf_error *err)
{
    if (m->idx.n_shards == 0) {
        *out = ssf_safetensors_find(m->files[0], name);
        if (*out) return 0;
        return ssf_fail(err, "tensor %s not found in %s", name, m->single_path);
    }
    long s = ssf_weight_index_find(&m->idx, name);
    if (s < 0) return ssf_fail(err, "tensor %s not found in %s", name, m->index_path);
    *out = ssf_safetensors_find(m->files[s], name); /* present: check_index_entries */
    return 0;
}

static void print_shape(ssf_buf *b, int ndim, const int64_t *shape)
{
    ssf_buf_putc(b, '[');
    for (int i = 0; i < ndim; i++)
        ssf_buf_printf(b, "%s%lld", i ? ", " : "", (long long)shape[i]);
    ssf_buf_putc(b, ']');
}

/* Finds a tensor and checks its shape: [d0] when d1 == 0, else [d0, d1]. */
static int want(ssf_model *m, const char *name, int64_t d0, int64_t d1, const ssf_tensor **out,
                ssf_error *err)
{
    const ssf_tensor *t;
    if (find_tensor(m, name, &t, err)) return -1;
    int ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        int64_t shape[2] = {d0, d1};
        ssf_buf a = {0}, b = {0};
        print_shape(&a, t->ndim, t->shape);
        print_shape(&b, ndim, shape);
        ssf_fail(err, "%s in %s: shape %s, config says %s", name, t->file, a.data, b.data);
        ssf_buf_free(&a);
        ssf_buf_free(&b);
        return -1;
    }
    *out = t;
    m->params += t->numel;
    m->bytes += (int64_t)t->nbytes;
    m->per_dtype[t->dtype] += t->numel;
    return 0;
}

static int want_layer_tensor(ssf_model *m, int layer, const char *part, int64_t d0, int64_t d1,
                             const ssf_tensor **out, ssf_error *err)
{
    char name[128];
    snprintf(name, sizeof name, "model.layers.%d.%s", layer, part);
    return want(m, name, d0, d1, out, err);
}

static int find_layer(ssf_model *m, int i, ssf_error *err)
{
    const ssf_model_config *c = &m->cfg;
    ssf_layer_weights *l = &m->w.layers[i];
    int64_t h = c->hidden_size, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim, in = c->intermediate_size;
    if (want_layer_tensor(m, i, "input_layernorm.weight", h, 0, &l->attn_norm, err) ||
        want_layer_tensor(m, i, "self_attn.q_proj.weight", q, h, &l->q, err) ||
        want_layer_tensor(m, i, "self_attn.k_proj.weight", kv, h, &l->k, err) ||
        want_layer_tensor(m, i, "self_attn.v_proj.weight", kv, h, &l->v, err) ||
        want_layer_tensor(m, i, "self_attn.o_proj.weight", h, q, &l->o, err) ||
        want_layer_tensor(m, i, "post_attention_layernorm.weight", h, 0, &l->mlp_norm, err) ||
        want_layer_tensor(m, i, "mlp.gate_proj.weight", in, h, &l->gate, err) ||
        want_layer_tensor(m, i, "mlp.up_proj.weight", in, h, &l->up, err) ||
        want_layer_tensor(m, i, "mlp.down_proj.weight", h, in, &l->down, err))
        return -1;
    if (!c->qkv_bias) return 0;
    return want_layer_tensor(m, i, "self_attn.q_proj.bias", q, 0, &l->q_bias, err) ||
                   want_layer_tensor(m, i, "self_attn.k_proj.bias", kv, 0, &l->k_bias, err) ||
                   want_layer_tensor(m, i, "self_attn.v_proj.bias", kv, 0, &l->v_bias, err)
               ? -1
               : 0;
}

/* Whether the checkpoint holds layer i (its first tensor, by name). */
static int has_layer(ssf_model *m, int i)
{
    char name[64];
    const ssf_tensor *t;
    ssf_error ignored;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    return find_tensor(m, name, &t, &ignored) == 0;
}

static int find_weights(ssf_model *m, ssf_error *err)
{
    const ssf_model_config *c = &m->cfg;
    if (want(m, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, &m->w.embed, err) ||
        want(m, "model.norm.weight", c->hidden_size, 0, &m->w.final_norm, err))
        return -1;
    /* The last layer before the rest: a num_hidden_layers far past the
     * checkpoint's is named as such, before a table that large is made. */
    if (!has_layer(m, c->n_layers - 1))
        return ssf_fail(err,
                        "%s: config.json says num_hidden_layers %d, but the checkpoint has no "
                        "model.layers.%d.input_layernorm.weight; fix config.json",
                        m->dir, c->n_layers, c->n_layers - 1);
    m->w.layers = ssf_xcalloc((size_t)c->n_layers, sizeof *m->w.layers);
    for (int i = 0; i < c->n_layers; i++)
        if (find_layer(m, i, err)) return -1;
    /* A checkpoint with a layer past num_hidden_layers is not the model the
     * config describes: running without it would run another model. */
    if (has_layer(m, c->n_layers))
        return ssf_fail(err,
                        "%s: the checkpoint has a layer %d, but config.json says "
                        "num_hidden_layers %d; fix config.json",
                        m->dir, c->n_layers, c->n_layers);
    /* Tied: lm_head is the embedding (a stored lm_head.weight is ignored, as
     * transformers ties over it), counted once. */
    if (c->tie_word_embeddings) {
        m->w.lm_head = m->w.embed;
        return 0;
    }
    return want(m, "lm_head.weight", c->vocab_size, c->hidden_size, &m->w.lm_head, err);
}

int ssf_model_open(const char *dir, ssf_model **out, ssf_error *err)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0)
        return ssf_fail(err, "model directory %s not found: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ssf_fail(err, "%s is not a directory: pass a model directory with config.json", dir);
    ssf_model *m = ssf_xcalloc(1, sizeof *m);
    m->dir = ssf_xstrdup(dir);
    size_t n = strlen(m->dir);
    while (n > 1 && m->dir[n - 1] == '/')
        m->dir[--n] = '\0';
    if (read_configs(m, err) || open_weights(m, err) || find_weights(m, err)) {
        ssf_model_close(m);
        return -1;
    }
    *out = m;
    return 0;
}

void ssf_model_close(ssf_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_files; i++)
        ssf_safetensors_close(m->files[i]);
    free(m->files);
    ssf_weight_index_free(&m->idx);
    free(m->index_path);
    free(m->single_path);
    free(m->w.layers);
    free(m->dir);
    free(m);
}

const char *ssf_model_dir(const ssf_model *m)
{
    return m->dir;
}

const ssf_model_config *ssf_model_config_of(const ssf_model *m)
{
    return &m->cfg;
}

const ssf_model_weights *ssf_model_weights_of(const ssf_model *m)
{
    return &m->w;
}

int64_t ssf_model_param_count(const ssf_model *m)
{
    return m->params;
}

int64_t ssf_model_weight_bytes(const ssf_model *m)
{
    return m->bytes;
}

ssf_dtype ssf_model_dtype(const ssf_model *m)
{
    ssf_dtype best = SSF_DTYPE_BF16;
    for (int d = SSF_DTYPE_F32; d <= SSF_DTYPE_BF16; d++)
        if (m->per_dtype[d] > m->per_dtype[best]) best = (ssf_dtype)d;
    return best;
}

size_t ssf_model_file_count(const ssf_model *m)
{
    return m->n_files;
}

const ssf_safetensors *ssf_model_file(const ssf_model *m, size_t i)
{
    return i < m->n_files ? m->files[i] : NULL;
}

char *ssf_model_file_path(const ssf_model *m, size_t i)
{
    if (i >= m->n_files) return NULL;
    return m->idx.n_shards ? ssf_path_join(m->dir, m->idx.shards[i]) : ssf_xstrdup(m->single_path);
}

int64_t ssf_model_kv_bytes_per_token(const ssf_model_config *cfg, int bytes_per_value)
{
    return 2 * (int64_t)cfg->n_layers * cfg->n_kv_heads * cfg->head_dim * bytes_per_value;
}
