/*
 * model_config.c - config.json and generation_config.json, read with the
 * defaults transformers' Qwen2Config and LlamaConfig apply, and checked so
 * that the engine never sees a shape it cannot run.  C library only.
 */
#include "ssfteval/model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsonlite.h"

#define CONFIG_DEPTH 32

typedef struct arch_info {
    const char *architecture, *model_type;
    int qkv_bias_always; /* qwen2: always; llama: "attention_bias" */
    int default_max_positions;
} arch_info;

static const arch_info archs[] = {
    {"Qwen2ForCausalLM", "qwen2", 1, 32768},
    {"LlamaForCausalLM", "llama", 0, 2048},
};
#define N_ARCHS (sizeof archs / sizeof archs[0])
#define SUPPORTED "Qwen2ForCausalLM (qwen2), LlamaForCausalLM (llama)"

/* Where a message comes from: "NAME: config.json". */
typedef struct ctx {
    const char *name, *file;
    ssf_error *err;
} ctx;

static int bad(const ctx *c, const char *key, const char *want, const jl_value *v)
{
    return ssf_fail(c->err, "%s: %s: \"%s\" must be %s, got %s", c->name, c->file, key, want,
                    v ? ssf_jl_type_name(v->type) : "nothing");
}

#define REQUIRED INT_MIN

/* An int in [lo, INT_MAX]; a missing (or null) key takes def, or is an error
 * when def is REQUIRED. */
static int get_int(const ctx *c, const jl_value *root, const char *key, int lo, int def, int *out)
{
    const jl_value *v = ssf_jl_get(root, key);
    if (!v || v->type == JL_NULL) {
        *out = def;
        if (def != REQUIRED) return 0;
        return ssf_fail(c->err, "%s: %s: required key \"%s\" is missing", c->name, c->file, key);
    }
    if (v->type != JL_NUMBER || !v->u.num.is_int || v->u.num.i < lo || v->u.num.i > INT_MAX) {
        char want[64];
        snprintf(want, sizeof want, "an integer >= %d", lo);
        return bad(c, key, want, v);
    }
    *out = (int)v->u.num.i;
    return 0;
}

static int get_positive_double(const ctx *c, const jl_value *root, const char *key, double def,
                               double *out)
{
    const jl_value *v = ssf_jl_get(root, key);
    if (!v || v->type == JL_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != JL_NUMBER || !(v->u.num.d > 0)) return bad(c, key, "a positive number", v);
    *out = v->u.num.d;
    return 0;
}

static int get_bool(const ctx *c, const jl_value *root, const char *key, int def, int *out)
{
    const jl_value *v = ssf_jl_get(root, key);
    if (!v || v->type == JL_NULL) {
        *out = def;
        return 0;
    }
    return ssf_jl_is_bool(v, out) ? 0 : bad(c, key, "true or false", v);
}

/* Copies a string value (or def when absent) into out[size]. */
static int get_string(const ctx *c, const jl_value *root, const char *key, const char *def,
                      char *out, size_t size)
{
    const jl_value *v = ssf_jl_get(root, key);
    const char *s = def;
    if (v && v->type != JL_NULL) {
        if (v->type != JL_STRING) return bad(c, key, "a string", v);
        s = v->u.str.s;
    }
    if (strlen(s) >= size)
        return ssf_fail(c->err, "%s: %s: \"%s\" is longer than %zu characters", c->name, c->file,
                        key, size - 1);
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

/* ---- architecture ------------------------------------------------------- */

static const arch_info *find_arch(const char *architecture, const char *model_type)
{
    for (size_t i = 0; i < N_ARCHS; i++)
        if ((architecture && !strcmp(architecture, archs[i].architecture)) ||
            (!architecture && model_type && !strcmp(model_type, archs[i].model_type)))
            return &archs[i];
    return NULL;
}

/* architectures[0] names the class; without it, model_type does. */
static const arch_info *read_arch(const ctx *c, const jl_value *root, ssf_model_config *cfg)
{
    const jl_value *list = ssf_jl_get(root, "architectures"), *mt = ssf_jl_get(root, "model_type");
    const char *architecture = NULL, *model_type = NULL;
    if (list && list->type != JL_NULL) {
        if (list->type != JL_ARRAY || list->u.arr.n == 0 ||
            list->u.arr.items[0]->type != JL_STRING) {
            bad(c, "architectures", "a non-empty array of strings", list);
            return NULL;
        }
        architecture = list->u.arr.items[0]->u.str.s;
    }
    if (mt && mt->type == JL_STRING) model_type = mt->u.str.s;
    const arch_info *a = find_arch(architecture, model_type);
    if (!a) {
        ssf_fail(c->err, "%s: %s: architecture \"%.64s\" is not supported; supported: " SUPPORTED,
                 c->name, c->file,
                 architecture ? architecture
                 : model_type ? model_type
                              : "(none given)");
        return NULL;
    }
    if (model_type && strcmp(model_type, a->model_type) != 0) {
        ssf_fail(c->err, "%s: %s: model_type \"%.32s\" does not match architecture %s", c->name,
                 c->file, model_type, a->architecture);
        return NULL;
    }
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", a->architecture);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", a->model_type);
    return a;
}

/* ---- features ssfteval does not implement ----------------------------- */

static int check_unsupported(const ctx *c, const jl_value *root)
{
    char act[32];
    int flag;
    if (get_string(c, root, "hidden_act", "silu", act, sizeof act)) return -1;
    if (strcmp(act, "silu") != 0)
        return ssf_fail(c->err, "%s: %s: hidden_act \"%s\" is not supported (only silu)", c->name,
                        c->file, act);
    if (get_bool(c, root, "use_sliding_window", 0, &flag)) return -1;
    if (flag)
        return ssf_fail(c->err,
                        "%s: %s: use_sliding_window is true, which ssfteval does not support; "
                        "set it to false for full attention on every layer",
                        c->name, c->file);
    if (get_bool(c, root, "mlp_bias", 0, &flag)) return -1;
    if (flag)
        return ssf_fail(c->err, "%s: %s: mlp_bias is true, which ssfteval does not support",
                        c->name, c->file);
    /* transformers >= 4.53 also lists each layer's attention kind. */
    const jl_value *lt = ssf_jl_get(root, "layer_types");
    for (size_t i = 0; lt && lt->type == JL_ARRAY && i < lt->u.arr.n; i++) {
        const jl_value *k = lt->u.arr.items[i];
        if (k->type != JL_STRING || strcmp(k->u.str.s, "full_attention") != 0)
            return ssf_fail(c->err,
                            "%s: %s: layer_types[%zu] is not \"full_attention\"; ssfteval "
                            "supports full attention only",
                            c->name, c->file, i);
    }
    return 0;
}

/* ---- RoPE --------------------------------------------------------------- */

/* Whether a RoPE settings object asks for plain RoPE: absent, null, rope_type
 * (older: type) "default", or no type and nothing but rope_theta.  *kind
 * names what it asks for. */
static int plain_rope(const jl_value *settings, const char **kind)
{
    const jl_value *t = settings ? ssf_jl_get(settings, "rope_type") : NULL;
    if (settings && !t) t = ssf_jl_get(settings, "type");
    *kind = t && t->type == JL_STRING ? t->u.str.s : "unnamed";
    if (!settings || settings->type == JL_NULL) return 1;
    if (settings->type != JL_OBJECT) return 0;
    if (t) return t->type == JL_STRING && strcmp(t->u.str.s, "default") == 0;
    for (size_t i = 0; i < settings->u.obj.n; i++)
        if (strcmp(settings->u.obj.members[i].key, "rope_theta") != 0) return 0;
    return 1;
}

/* RoPE's base and type.  transformers 4 writes rope_theta and rope_scaling
 * at the top level; transformers 5 writes both inside rope_parameters
 * (and nothing at the top level), so a reader of the top level alone would
 * run a v5 checkpoint with theta 10000: every logit off, and no error. */
static int read_rope(const ctx *c, const jl_value *root, ssf_model_config *cfg)
{
    const jl_value *params = ssf_jl_get(root, "rope_parameters");
    if (params && params->type != JL_NULL && params->type != JL_OBJECT)
        return bad(c, "rope_parameters", "an object", params);
    if (params && params->type == JL_NULL) params = NULL;
    /* Either may ask for scaling (transformers 5 takes rope_scaling first). */
    static const char *const keys[] = {"rope_scaling", "rope_parameters"};
    for (size_t i = 0; i < 2; i++) {
        const char *kind;
        if (!plain_rope(ssf_jl_get(root, keys[i]), &kind))
            return ssf_fail(c->err,
                            "%s: %s: %s asks for RoPE of type \"%.32s\", which is not "
                            "supported yet; remove it (or set rope_type \"default\") to run at "
                            "the native context length",
                            c->name, c->file, keys[i], kind);
    }
    double top = 10000.0;
    if (get_positive_double(c, root, "rope_theta", 10000.0, &top)) return -1;
    cfg->rope_theta = top;
    if (!params) return 0;
    ctx inner = *c;
    inner.file = "config.json rope_parameters";
    if (get_positive_double(&inner, params, "rope_theta", top, &cfg->rope_theta)) return -1;
    const jl_value *top_theta = ssf_jl_get(root, "rope_theta");
    if (top_theta && top_theta->type != JL_NULL && cfg->rope_theta != top)
        return ssf_fail(c->err,
                        "%s: %s: rope_theta %.10g and rope_parameters.rope_theta %.10g differ; "
                        "keep one",
                        c->name, c->file, top, cfg->rope_theta);
    return 0;
}

/* ---- sizes -------------------------------------------------------------- */

static int read_sizes(const ctx *c, const jl_value *root, const arch_info *a, ssf_model_config *cfg)
{
    if (get_int(c, root, "hidden_size", 1, REQUIRED, &cfg->hidden_size) ||
        get_int(c, root, "num_hidden_layers", 1, REQUIRED, &cfg->n_layers) ||
        get_int(c, root, "num_attention_heads", 1, REQUIRED, &cfg->n_heads) ||
        get_int(c, root, "intermediate_size", 1, REQUIRED, &cfg->intermediate_size) ||
        get_int(c, root, "vocab_size", 1, REQUIRED, &cfg->vocab_size) ||
        get_int(c, root, "num_key_value_heads", 1, cfg->n_heads, &cfg->n_kv_heads) ||
        get_int(c, root, "max_position_embeddings", 1, a->default_max_positions,
                &cfg->max_position_embeddings))
        return -1;
    if (ssf_jl_get(root, "head_dim") && ssf_jl_get(root, "head_dim")->type != JL_NULL)
        return get_int(c, root, "head_dim", 1, REQUIRED, &cfg->head_dim);
    if (cfg->hidden_size % cfg->n_heads)
        return ssf_fail(c->err,
                        "%s: %s: hidden_size %d is not a multiple of num_attention_heads %d and "
                        "there is no head_dim",
                        c->name, c->file, cfg->hidden_size, cfg->n_heads);
    cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    return 0;
}

static int check_sizes(const ctx *c, const ssf_model_config *cfg)
{
    if (cfg->n_heads % cfg->n_kv_heads)
        return ssf_fail(c->err,
                        "%s: %s: num_attention_heads %d is not a multiple of num_key_value_heads "
                        "%d",
                        c->name, c->file, cfg->n_heads, cfg->n_kv_heads);
    if (cfg->head_dim % 2)
        return ssf_fail(c->err, "%s: %s: head_dim %d is odd; rotary embeddings need it even",
                        c->name, c->file, cfg->head_dim);
    /* Every row count the engine computes must fit an int. */
    if ((int64_t)cfg->n_heads * cfg->head_dim > INT_MAX ||
        (int64_t)cfg->vocab_size * cfg->hidden_size > INT64_MAX / 4)
        return ssf_fail(c->err, "%s: %s: sizes too large", c->name, c->file);
    return 0;
}

/* ---- token ids and generation defaults --------------------------------- */

/* An int or a list of ints (or null, or absent: nothing changes). */
static int read_eos(const ctx *c, const jl_value *root, ssf_model_config *cfg)
{
    const jl_value *v = ssf_jl_get(root, "eos_token_id");
    if (!v || v->type == JL_NULL) return 0;
    size_t n = v->type == JL_ARRAY ? v->u.arr.n : 1;
    if (n > SSF_MAX_EOS)
        return ssf_fail(c->err, "%s: %s: eos_token_id lists %zu ids; at most %d are supported",
                        c->name, c->file, n, SSF_MAX_EOS);
    for (size_t i = 0; i < n; i++) {
        const jl_value *id = v->type == JL_ARRAY ? v->u.arr.items[i] : v;
        if (id->type != JL_NUMBER || !id->u.num.is_int || id->u.num.i < 0 ||
            id->u.num.i > INT32_MAX)
            return bad(c, "eos_token_id", "a token id or a list of token ids", id);
        if (id->u.num.i >= cfg->vocab_size) /* never sampled: generation would never stop */
            return ssf_fail(c->err,
                            "%s: %s: eos_token_id %lld is outside the vocabulary (vocab_size %d "
                            "in config.json); correct the id",
                            c->name, c->file, (long long)id->u.num.i, (int)cfg->vocab_size);
        cfg->eos_ids[i] = (int32_t)id->u.num.i;
    }
    cfg->n_eos = (int)n;
    return 0;
}

/* generation_config.json's number at key when it lies in [lo, hi], else
 * -1.  The sampling defaults are only reported (a run samples as its task
 * and command line say), so an odd one does not keep the model shut. */
static double sampling_default(const jl_value *root, const char *key, double lo, double hi)
{
    const jl_value *v = ssf_jl_get(root, key);
    return v && v->type == JL_NUMBER && v->u.num.d >= lo && v->u.num.d <= hi ? v->u.num.d : -1;
}

static int read_generation(const ctx *c, const jl_value *root, ssf_model_config *cfg)
{
    if (root->type != JL_OBJECT)
        return ssf_fail(c->err, "%s: %s: expected a JSON object, got %s", c->name, c->file,
                        ssf_jl_type_name(root->type));
    if (read_eos(c, root, cfg)) return -1;
    cfg->gen_temperature = sampling_default(root, "temperature", 0, 1e6);
    cfg->gen_top_p = sampling_default(root, "top_p", 1e-9, 1);
    double top_k = sampling_default(root, "top_k", 0, 1e9);
    cfg->gen_top_k = top_k == floor(top_k) ? (long)top_k : -1;
    return 0;
}

static int read_config(const ctx *c, const jl_value *root, ssf_model_config *cfg)
{
    if (root->type != JL_OBJECT)
        return ssf_fail(c->err, "%s: %s: expected a JSON object, got %s", c->name, c->file,
                        ssf_jl_type_name(root->type));
    const arch_info *a = read_arch(c, root, cfg);
    if (!a || check_unsupported(c, root) || read_sizes(c, root, a, cfg) || check_sizes(c, cfg) ||
        read_rope(c, root, cfg) ||
        get_positive_double(c, root, "rms_norm_eps", 1e-6, &cfg->rms_norm_eps) ||
        get_bool(c, root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings) ||
        get_bool(c, root, "attention_bias", 0, &cfg->qkv_bias) ||
        get_int(c, root, "bos_token_id", 0, -1, &cfg->bos_token_id) || read_eos(c, root, cfg))
        return -1;
    if (a->qkv_bias_always)
        cfg->qkv_bias = 1;
    else if (cfg->qkv_bias)
        /* Llama's attention_bias also puts a bias on o_proj, which the
         * devices do not apply: refuse rather than compute wrong logits */
        return ssf_fail(c->err,
                        "%s: %s: attention_bias is true (biases on q, k, v and o_proj), which "
                        "ssfteval does not support",
                        c->name, c->file);
    /* transformers >= 4.56 writes "dtype"; older ones "torch_dtype". */
    const char *dkey = ssf_jl_get(root, "torch_dtype") ? "torch_dtype" : "dtype";
    return get_string(c, root, dkey, "", cfg->torch_dtype, sizeof cfg->torch_dtype);
}

static int parse_one(const ctx *c, const char *text, size_t len, jl_value **out)
{
    ssf_error jerr = {0};
    *out = ssf_jl_parse(text, len, CONFIG_DEPTH, &jerr);
    if (!*out) return ssf_fail(c->err, "%s: %s is not valid JSON: %s", c->name, c->file, jerr.msg);
    return 0;
}

int ssf_model_config_parse(const char *config_json, size_t config_len, const char *gen_json,
                           size_t gen_len, const char *name, ssf_model_config *cfg, ssf_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_token_id = -1;
    cfg->gen_temperature = cfg->gen_top_p = -1;
    cfg->gen_top_k = -1;
    ctx c = {name ? name : "model", "config.json", err};
    jl_value *root;
    if (parse_one(&c, config_json, config_len, &root)) return -1;
    int rc = read_config(&c, root, cfg);
    ssf_jl_free(root);
    if (rc || !gen_json) return rc;
    c.file = "generation_config.json";
    if (parse_one(&c, gen_json, gen_len, &root)) return -1;
    rc = read_generation(&c, root, cfg);
    ssf_jl_free(root);
    return rc;
}
