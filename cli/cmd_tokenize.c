/*
 * cmd_tokenize.c - `ssfteval tokenize`: text to token ids (or back) with a
 * byte-level BPE tokenizer, for one string or a JSONL file.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssfteval/records.h"
#include "ssfteval/tokenizer.h"

static const char help[] =
    "usage: ssfteval tokenize --tokenizer PATH --text T\n"
    "       ssfteval tokenize --tokenizer PATH --jsonl FILE [--decode [--skip-special]]\n"
    "\n"
    "Encode text to token ids (or decode ids) exactly as the Hugging Face `tokenizers`\n"
    "package does for byte-level BPE tokenizers (Qwen2, Qwen2.5, Qwen3, GPT-2 style).\n"
    "\n"
    "  --tokenizer PATH    a tokenizer.json, or a directory holding it, or one holding\n"
    "                      vocab.json + merges.txt (+ tokenizer_config.json)\n"
    "  --text T            encode T; prints {\"text\": T, \"ids\": [...]}\n"
    "  --jsonl FILE        read lines {\"text\": ...}; write each back with \"ids\" added\n"
    "                      (- reads standard input)\n"
    "  --decode            with --jsonl: read lines {\"ids\": [...]}, add \"text\"\n"
    "  --skip-special      with --decode: drop added tokens flagged special\n"
    "  --help              this text\n"
    "\n"
    "Exit status: 0 on success, 1 when the tokenizer or a line is bad (one line on\n"
    "stderr naming the file and line), 2 for a bad command line.  --jsonl writes lines as\n"
    "it reads them: a bad line stops it after the ones before it.\n";

enum {
    OPT_TOKENIZER = OPT_COMMAND_BASE,
    OPT_TEXT,
    OPT_JSONL,
    OPT_DECODE,
    OPT_SKIP_SPECIAL,
};

typedef struct tok_args {
    const char *tokenizer, *text, *jsonl;
    int decode, skip_special;
} tok_args;

static int handle_option(int opt, const char *arg, void *ud)
{
    tok_args *a = ud;
    switch (opt) {
    case OPT_TOKENIZER:
        a->tokenizer = arg;
        return 0;
    case OPT_TEXT:
        a->text = arg;
        return 0;
    case OPT_JSONL:
        a->jsonl = arg;
        return 0;
    case OPT_DECODE:
        a->decode = 1;
        return 0;
    case OPT_SKIP_SPECIAL:
        a->skip_special = 1;
        return 0;
    default:
        return -1;
    }
}

static json_t *ids_json(const int32_t *ids, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    return arr;
}

static void print_line(json_t *o)
{
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
}

/* Encodes text into o["ids"]. */
static int encode_into(ssf_tokenizer *t, json_t *o, const char *text, size_t len, ssf_error *err)
{
    int32_t *ids;
    size_t n;
    if (ssf_tokenizer_encode(t, text, len, &ids, &n, err)) return -1;
    json_object_set_new(o, "ids", ids_json(ids, n));
    free(ids);
    return 0;
}

typedef struct line_ctx {
    ssf_tokenizer *tok;
    const tok_args *args;
    const char *path;
    ssf_error *err;
} line_ctx;

static int encode_line(line_ctx *c, json_t *rec, size_t line)
{
    json_t *text = json_object_get(rec, "text");
    if (!json_is_string(text))
        return ssf_fail(c->err, "%s:%zu: each line needs a string \"text\"", c->path, line);
    if (encode_into(c->tok, rec, json_string_value(text), json_string_length(text), c->err))
        return ssf_fail_prefix(c->err, "%s:%zu", c->path, line);
    return 0;
}

static int decode_line(line_ctx *c, json_t *rec, size_t line)
{
    json_t *arr = json_object_get(rec, "ids");
    size_t n = json_array_size(arr), i;
    json_t *v;
    if (!json_is_array(arr))
        return ssf_fail(c->err, "%s:%zu: each line needs an array \"ids\"", c->path, line);
    int32_t *ids = ssf_xmalloc((n + 1) * sizeof *ids);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX) {
            free(ids);
            return ssf_fail(c->err, "%s:%zu: \"ids\"[%zu] is not an integer id (0..%d)", c->path,
                            line, i, INT32_MAX);
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    size_t len;
    char *text = ssf_tokenizer_decode(c->tok, ids, n, c->args->skip_special, &len, c->err);
    free(ids);
    if (!text) return ssf_fail_prefix(c->err, "%s:%zu", c->path, line);
    json_object_set_new(rec, "text", json_stringn(text, len)); /* a NUL inside is \u0000 */
    free(text);
    return 0;
}

static int each_line(json_t *rec, size_t number, size_t line, void *ud)
{
    line_ctx *c = ud;
    (void)number;
    int rc = c->args->decode ? decode_line(c, rec, line) : encode_line(c, rec, line);
    if (rc == 0) print_line(rec);
    return rc;
}

static int run_jsonl(ssf_tokenizer *t, const tok_args *a)
{
    ssf_error err;
    int is_stdin = strcmp(a->jsonl, "-") == 0;
    line_ctx c = {.tok = t, .args = a, .path = is_stdin ? "(stdin)" : a->jsonl, .err = &err};
    int rc =
        is_stdin
            ? ssf_records_read_stream(stdin, c.path, SSF_FORMAT_JSONL_WITH_NUL, each_line, &c, &err)
            : ssf_records_read_file(a->jsonl, SSF_FORMAT_JSONL_WITH_NUL, each_line, &c, &err);
    if (rc) cli_error("%s", err.msg);
    return rc ? EXIT_WORK : 0;
}

static int run_text(ssf_tokenizer *t, const tok_args *a)
{
    ssf_error err;
    json_t *o = json_object();
    /* Encoding first: it names the first byte that is not UTF-8. */
    int rc = encode_into(t, o, a->text, strlen(a->text), &err);
    if (rc == 0) {
        json_t *ids = json_incref(json_object_get(o, "ids"));
        json_object_clear(o);
        json_object_set_new(o, "text", json_string(a->text));
        json_object_set_new(o, "ids", ids);
        print_line(o);
    } else {
        cli_error("--text: %s", err.msg);
    }
    json_decref(o);
    return rc ? EXIT_WORK : 0;
}

static int check_args(const tok_args *a)
{
    if (!a->tokenizer) {
        cli_error("tokenize: --tokenizer PATH is required; see `ssfteval tokenize --help`");
        return EXIT_USAGE;
    }
    if (!a->text == !a->jsonl) {
        cli_error("tokenize: give exactly one of --text T and --jsonl FILE");
        return EXIT_USAGE;
    }
    if (a->decode && !a->jsonl) {
        cli_error("tokenize: --decode reads ids from --jsonl FILE (lines {\"ids\": [...]})");
        return EXIT_USAGE;
    }
    if (a->skip_special && !a->decode) {
        cli_error("tokenize: --skip-special applies to --decode only");
        return EXIT_USAGE;
    }
    return 0;
}

static int run_tokenize(const tok_args *a)
{
    int rc = check_args(a);
    if (rc) return rc;
    ssf_error err;
    ssf_tokenizer *t;
    if (ssf_tokenizer_load(a->tokenizer, &t, &err)) {
        cli_error("%s", err.msg);
        return EXIT_WORK;
    }
    rc = a->jsonl ? run_jsonl(t, a) : run_text(t, a);
    ssf_tokenizer_free(t);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"text", required_argument, NULL, OPT_TEXT},
        {"jsonl", required_argument, NULL, OPT_JSONL},
        {"decode", no_argument, NULL, OPT_DECODE},
        {"skip-special", no_argument, NULL, OPT_SKIP_SPECIAL},
        {NULL, 0, NULL, 0},
    };
    tok_args a = {0};
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    if (cli_parse(&c, argc, argv, opts, handle_option, &a, help, &rc) == 0) {
        if (optind < argc) {
            cli_error("tokenize: unexpected argument '%s'; see `ssfteval tokenize --help`",
                      argv[optind]);
            rc = EXIT_USAGE;
        } else {
            rc = run_tokenize(&a);
        }
    }
    cli_free(&c);
    return rc;
}
