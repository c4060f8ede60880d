/*
 * cmd_model.c - `ssfteval model info PATH|hf:ORG/NAME[@REV]`: what a
 * checkpoint is and what running it costs (weights, KV cache), read by the
 * same code the engine loads it with, so a model that `info` accepts is one
 * the engine can open.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ssfteval/model.h"
#include "ssfteval/records.h"

static const char help[] =
    "usage: ssfteval model info PATH|hf:ORG/NAME[@REV] [--json] [--offline]\n"
    "\n"
    "Describe a model checkpoint: architecture, sizes, parameters, stored dtype,\n"
    "weight memory, KV cache per token, shards, and the built-in chat template\n"
    "its chat_template.jinja, or else its tokenizer_config.json, maps to.  PATH\n"
    "is a directory with config.json and\n"
    "model.safetensors (or model.safetensors.index.json and its shards);\n"
    "hf:ORG/NAME[@REV] downloads those files from the Hub into the cache first\n"
    "($SSFTEVAL_CACHE; REV defaults to main).\n"
    "\n"
    "  --json     machine-readable output\n"
    "  --offline  use the cache only (also HF_HUB_OFFLINE=1)\n"
    "  --help     this text\n";

/* 494032768 -> "494.0M". */
static void human_count(char *out, size_t n, int64_t v)
{
    if (v >= 1000000000)
        snprintf(out, n, "%.2fB", (double)v / 1e9);
    else if (v >= 1000000)
        snprintf(out, n, "%.1fM", (double)v / 1e6);
    else if (v >= 1000)
        snprintf(out, n, "%.1fK", (double)v / 1e3);
    else
        snprintf(out, n, "%lld", (long long)v);
}

static void human_bytes(char *out, size_t n, int64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%lld B", (long long)v);
    else
        snprintf(out, n, "%.1f %s", d, units[u]);
}

/* A tokenizer_config.json that is there must be JSON: the engine's
 * tokenizer refuses it otherwise, even when chat_template.jinja holds the
 * template, so info must not describe the model as usable. */
static int check_config(const char *path, ssf_error *err)
{
    json_error_t jerr;
    json_t *config = json_load_file(path, 0, &jerr);
    json_decref(config);
    if (config) return 0;
    if (jerr.line > 0)
        return ssf_fail(err, "%s:%d: cannot read the tokenizer config: %s", path, jerr.line,
                        jerr.text);
    return ssf_fail(err, "cannot read the tokenizer config %s: %s", path, jerr.text);
}

/* The built-in template the model's tokenizer_config.json maps to in *tpl;
 * NULL with a reason in *why when there is none.  -1 when the config is
 * there and cannot be read. */
static int chat_template(const char *dir, const char **tpl, const char **why, ssf_error *err)
{
    char path[4096], jinja[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    snprintf(jinja, sizeof jinja, "%s/chat_template.jinja", dir);
    ssf_chat_template t;
    *tpl = NULL;
    *why = "none found (pass --chat-template)";
    int have_config = access(path, F_OK) == 0;
    if (have_config && check_config(path, err)) return -1;
    if (!have_config && access(jinja, F_OK) != 0) return 0;
    if (ssf_chat_template_detect(path, &t, err) == 0)
        *tpl = ssf_chat_template_name(t);
    else
        *why = "not one ssfteval renders (pass --chat-template)";
    return 0;
}

static void print_text(const ssf_model *m, const char *tpl, const char *why)
{
    const ssf_model_config *c = ssf_model_config_of(m);
    char params[32], weights[32], kv[32], kv_seq[32];
    int64_t kv_token = ssf_model_kv_bytes_per_token(c, 2);
    human_count(params, sizeof params, ssf_model_param_count(m));
    human_bytes(weights, sizeof weights, ssf_model_weight_bytes(m));
    human_bytes(kv, sizeof kv, kv_token);
    human_bytes(kv_seq, sizeof kv_seq, kv_token * c->max_position_embeddings);
    printf("directory          %s\n", ssf_model_dir(m));
    printf("architecture       %s (model_type %s)\n", c->architecture, c->model_type);
    printf("layers             %d\n", c->n_layers);
    printf("hidden size        %d\n", c->hidden_size);
    printf("attention heads    %d query, %d KV (GQA ratio %d), head dim %d%s\n", c->n_heads,
           c->n_kv_heads, c->n_heads / c->n_kv_heads, c->head_dim, c->qkv_bias ? ", QKV bias" : "");
    printf("intermediate size  %d\n", c->intermediate_size);
    printf("vocabulary         %d rows\n", c->vocab_size);
    printf("rope theta         %.10g\n", c->rope_theta);
    printf("rms norm eps       %g\n", c->rms_norm_eps);
    printf("tied embeddings    %s\n", c->tie_word_embeddings ? "yes" : "no");
    printf("max positions      %d\n", c->max_position_embeddings);
    printf("eos token ids      ");
    for (int i = 0; i < c->n_eos; i++)
        printf("%s%d", i ? ", " : "", (int)c->eos_ids[i]);
    printf("%s\n", c->n_eos ? "" : "none");
    printf("parameters         %s (%lld)\n", params, (long long)ssf_model_param_count(m));
    printf("stored dtype       %s\n", ssf_dtype_name(ssf_model_dtype(m)));
    printf("weight memory      %s\n", weights);
    printf("KV cache (bf16)    %s per token, %s for one %d-token sequence\n", kv, kv_seq,
           c->max_position_embeddings);
    printf("safetensors files  %zu\n", ssf_model_file_count(m));
    printf("chat template      %s\n", tpl ? tpl : why);
}

static int print_json(const ssf_model *m, const char *tpl)
{
    const ssf_model_config *c = ssf_model_config_of(m);
    const char *dir = ssf_model_dir(m);
    if (!ssf_utf8_valid(dir, strlen(dir))) { /* the rest comes from JSON files */
        cli_error("%s: the directory's name is not valid UTF-8 and cannot be written as JSON; "
                  "rename it, or leave out --json",
                  dir);
        return -1;
    }
    json_t *eos = json_array();
    for (int i = 0; i < c->n_eos; i++)
        json_array_append_new(eos, json_integer(c->eos_ids[i]));
    int64_t kv = ssf_model_kv_bytes_per_token(c, 2);
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:b,s:i,s:i,s:o,s:I,s:s,s:I,"
        "s:I,s:I,s:I,s:o}",
        "directory", dir, "architecture", c->architecture, "model_type", c->model_type, "layers",
        c->n_layers, "hidden_size", c->hidden_size, "heads", c->n_heads, "kv_heads", c->n_kv_heads,
        "gqa_ratio", c->n_heads / c->n_kv_heads, "head_dim", c->head_dim, "intermediate_size",
        c->intermediate_size, "vocab_size", c->vocab_size, "rope_theta", c->rope_theta,
        "rms_norm_eps", c->rms_norm_eps, "tie_word_embeddings", c->tie_word_embeddings, "qkv_bias",
        c->qkv_bias, "max_position_embeddings", c->max_position_embeddings, "bos_token_id",
        c->bos_token_id, "eos_token_ids", eos, "parameters", (json_int_t)ssf_model_param_count(m),
        "dtype", ssf_dtype_name(ssf_model_dtype(m)), "weight_bytes",
        (json_int_t)ssf_model_weight_bytes(m), "kv_bytes_per_token_bf16", (json_int_t)kv,
        "kv_bytes_max_sequence_bf16", (json_int_t)kv * c->max_position_embeddings, "files",
        (json_int_t)ssf_model_file_count(m), "chat_template", tpl ? json_string(tpl) : json_null());
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text);
    free(text);
    json_decref(o);
    return 0;
}

static int model_info(const cli *c, const char *spec)
{
    char *dir;
    ssf_model *m;
    ssf_error err = {0};
    if (ssf_model_resolve(spec, &c->hub, &dir, &err)) {
        cli_error("%s", err.msg);
        return EXIT_WORK;
    }
    const char *tpl, *why;
    int rc = ssf_model_open(dir, &m, &err);
    if (rc == 0) {
        rc = chat_template(dir, &tpl, &why, &err);
        if (rc)
            cli_error("%s", err.msg);
        else if (c->json)
            rc = print_json(m, tpl);
        else
            print_text(m, tpl, why);
        ssf_model_close(m);
    } else {
        cli_error("%s", err.msg);
    }
    free(dir);
    return rc ? EXIT_WORK : 0;
}

int cmd_model(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPT_OFFLINE, CLI_OPT_JSON, CLI_OPT_HELP, {NULL, 0, NULL, 0}};
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    if (cli_parse(&c, argc, argv, opts, NULL, NULL, help, &rc) == 0) {
        const char *action = optind < argc ? argv[optind] : "";
        if (strcmp(action, "info") != 0) {
            cli_error("model: expected 'info', got '%s'; see `ssfteval model --help`", action);
            rc = EXIT_USAGE;
        } else if (argc - optind != 2) {
            cli_error("model info: expected one PATH or hf:ORG/NAME[@REV]; see `ssfteval model "
                      "--help`");
            rc = EXIT_USAGE;
        } else {
            rc = model_info(&c, argv[optind + 1]);
        }
    }
    cli_free(&c);
    return rc;
}
