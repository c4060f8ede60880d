/*
 * cmd_grade.c - `ssfteval grade`: one gold/prediction pair from the command
 * line, or a JSONL file of pairs, through the grader.
 */
#include "cli.h"
#include "grade.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssfteval/records.h"

static const char help[] =
    "usage: ssfteval grade --gold G --pred P [--profile NAME] [--targets T] [--explain]\n"
    "                      [--gold-is-answer]\n"
    "       ssfteval grade --jsonl FILE [--profile NAME] [--gold-is-answer]\n"
    "\n"
    "Grade a prediction against a gold answer.\n"
    "\n"
    "  --gold G, --pred P  the gold answer and the model's completion\n"
    "  --profile NAME      default (strictest correct), lighteval (LightEval 0.10), or\n"
    "                      ssft-lighteval (as the SSFT reference scored: roles swapped,\n"
    "                      decimal comparisons false)\n"
    "  --targets T         what to extract: latex,expr (default), letters, or a mix\n"
    "  --letters N         number of choices for letters (default 4)\n"
    "  --precision N       decimal places for the rounding rule (default 6)\n"
    "  --gold-is-answer    G is a task's answer, what its solution's last \\boxed{} held,\n"
    "                      as `run` grades it: the lighteval profiles read it as\n"
    "                      \\boxed{G}, as LightEval read the solution (without it they\n"
    "                      read G as LightEval reads any gold text)\n"
    "  --explain           print the extracted answers and the reason\n"
    "  --json              the verdict, extractions and reason as one JSON object\n"
    "  --jsonl FILE        read lines {\"gold\":..., \"pred\":...} with optional \"targets\"\n"
    "                      (list of \"latex\", \"expr\", \"letters\"), \"precision\", "
    "\"profile\",\n"
    "                      \"gold_is_answer\" (true/false);\n"
    "                      write each line back with \"verdict\" (true/false/null),\n"
    "                      \"gold_extracted\", \"pred_extracted\", \"pred_key\" (the vote\n"
    "                      key), \"no_answer\", \"reason\" (--json writes the same keys)\n"
    "  --help              this text\n"
    "\n"
    "Exit status: 0 when every verdict is true (one pair) or the file was graded, 1 for a\n"
    "false or ungradable single pair or a bad line, 2 for a bad command line.  Lines are\n"
    "written as they are read: a bad line stops the command after the ones before it.\n";

enum {
    OPT_GOLD = OPT_COMMAND_BASE,
    OPT_PRED,
    OPT_PROFILE,
    OPT_TARGETS,
    OPT_LETTERS,
    OPT_PRECISION,
    OPT_EXPLAIN,
    OPT_JSONL,
    OPT_GOLD_IS_ANSWER,
};

typedef struct grade_args {
    const char *gold, *pred, *jsonl;
    ssf_profile profile;
    int targets, letters, precision, explain, gold_is_answer;
} grade_args;

/* "latex,expr" -> bits; -1 on an unknown name. */
static int parse_targets(const char *s)
{
    int bits = 0;
    char *copy = ssf_xstrdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "latex") == 0)
            bits |= SSF_TARGET_LATEX;
        else if (strcmp(t, "expr") == 0)
            bits |= SSF_TARGET_EXPR;
        else if (strcmp(t, "letters") == 0)
            bits |= SSF_TARGET_LETTERS;
        else
            bits = -1;
        if (bits < 0) break;
    }
    free(copy);
    return bits;
}

static int handle_option(int opt, const char *arg, void *ud)
{
    grade_args *a = ud;
    long v;
    switch (opt) {
    case OPT_GOLD:
        a->gold = arg;
        return 0;
    case OPT_PRED:
        a->pred = arg;
        return 0;
    case OPT_JSONL:
        a->jsonl = arg;
        return 0;
    case OPT_EXPLAIN:
        a->explain = 1;
        return 0;
    case OPT_GOLD_IS_ANSWER:
        a->gold_is_answer = 1;
        return 0;
    case OPT_LETTERS:
        if (cli_integer_arg("letters", arg, 2, 26, &v)) return -1;
        a->letters = (int)v;
        return 0;
    case OPT_PRECISION:
        if (cli_integer_arg("precision", arg, 0, 50, &v)) return -1;
        a->precision = (int)v;
        return 0;
    case OPT_PROFILE:
        return cli_profile_arg(arg, &a->profile);
    case OPT_TARGETS:
        a->targets = parse_targets(arg);
        if (a->targets > 0) return 0;
        cli_error("--targets: '%s' is not a list of latex, expr, letters", arg);
        return -1;
    default:
        return -1;
    }
}

static json_t *verdict_json(ssf_grade_verdict v)
{
    return v == SSF_GRADE_UNGRADABLE ? json_null() : json_boolean(v == SSF_GRADE_RIGHT);
}

/* A text as JSON, or null when there is none or it is not UTF-8 (which
 * JSON cannot hold), so that every key is always there. */
static json_t *text_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

static void fill_json(json_t *o, const ssf_grade_result *res)
{
    json_object_set_new(o, "verdict", verdict_json(res->verdict));
    json_object_set_new(o, "gold_extracted", text_or_null(res->gold_extracted));
    json_object_set_new(o, "pred_extracted", text_or_null(res->pred_extracted));
    json_object_set_new(o, "pred_key", text_or_null(res->pred_key));
    json_object_set_new(o, "no_answer", json_boolean(res->no_answer));
    json_object_set_new(o, "reason", text_or_null(res->reason));
}

static const char *verdict_word(ssf_grade_verdict v)
{
    return v == SSF_GRADE_RIGHT ? "true" : v == SSF_GRADE_WRONG ? "false" : "ungradable";
}

static int grade_one(const ssf_grader *g, const grade_args *a, int json)
{
    ssf_grade_request req = {.gold = a->gold,
                             .pred = a->pred,
                             .targets = a->targets,
                             .n_letters = a->letters,
                             .precision = a->precision,
                             .gold_is_answer = a->gold_is_answer};
    ssf_grade_result res;
    ssf_grade(g, &req, &res);
    if (json) {
        json_t *o = json_object();
        fill_json(o, &res);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(o);
    } else {
        printf("%s\n", verdict_word(res.verdict));
    }
    if (a->explain && !json) {
        printf("gold extracted: %s\n", res.gold_extracted ? res.gold_extracted : "(none)");
        printf("pred extracted: %s\n", res.pred_extracted ? res.pred_extracted : "(none)");
        printf("pred key: %s\n", res.pred_key);
        printf("reason: %s\n", res.reason);
    }
    int rc = res.verdict == SSF_GRADE_RIGHT ? 0 : EXIT_WORK;
    ssf_grade_result_clear(&res);
    return rc;
}

typedef struct jsonl_ctx {
    const grade_args *args;
    ssf_grader *graders[SSF_N_PROFILES]; /* by profile, built on first use */
    const char *path;
    ssf_error *err;
} jsonl_ctx;

static int line_targets(jsonl_ctx *c, json_t *rec, size_t line, int *targets)
{
    json_t *t = json_object_get(rec, "targets");
    *targets = c->args->targets;
    if (!t || json_is_null(t)) return 0; /* null: the default, as when absent */
    *targets = 0;
    size_t i;
    json_t *item;
    json_array_foreach(t, i, item)
    {
        int bit = json_is_string(item) ? parse_targets(json_string_value(item)) : -1;
        if (bit < 0) break;
        *targets |= bit;
    }
    if (json_is_array(t) && *targets > 0 && i == json_array_size(t)) return 0;
    return ssf_fail(c->err,
                    "%s:%zu: \"targets\" must be a list of \"latex\", \"expr\", "
                    "\"letters\"",
                    c->path, line);
}

static int line_profile(jsonl_ctx *c, json_t *rec, size_t line, ssf_profile *p)
{
    json_t *v = json_object_get(rec, "profile");
    *p = c->args->profile;
    if (!v || json_is_null(v)) return 0;
    int k = json_is_string(v) ? ssf_profile_from_name(json_string_value(v)) : -1;
    if (k < 0)
        return ssf_fail(c->err,
                        "%s:%zu: \"profile\" must be \"default\", \"lighteval\" or "
                        "\"ssft-lighteval\"",
                        c->path, line);
    *p = (ssf_profile)k;
    return 0;
}

static const ssf_grader *grader_for(jsonl_ctx *c, ssf_profile p)
{
    if (!c->graders[p]) c->graders[p] = ssf_grader_new(p, c->err);
    return c->graders[p];
}

static int grade_line(json_t *rec, size_t number, size_t line, void *ud)
{
    jsonl_ctx *c = ud;
    (void)number;
    json_t *gold = json_object_get(rec, "gold"), *pred = json_object_get(rec, "pred");
    if (!json_is_string(pred) || !(json_is_string(gold) || json_is_null(gold)))
        return ssf_fail(c->err, "%s:%zu: each line needs string \"gold\" and \"pred\"", c->path,
                        line);
    ssf_grade_request req = {.gold = json_string_value(gold),
                             .pred = json_string_value(pred),
                             .n_letters = c->args->letters,
                             .precision = c->args->precision,
                             .gold_is_answer = c->args->gold_is_answer};
    ssf_profile p;
    json_t *prec = json_object_get(rec, "precision");
    if (json_is_null(prec)) prec = NULL; /* the default, as when absent */
    if (prec &&
        (!json_is_integer(prec) || json_integer_value(prec) < 0 || json_integer_value(prec) > 50))
        return ssf_fail(c->err, "%s:%zu: \"precision\" must be an integer 0..50, as --precision",
                        c->path, line);
    if (prec) req.precision = (int)json_integer_value(prec);
    json_t *is_answer = json_object_get(rec, "gold_is_answer");
    if (is_answer && !json_is_boolean(is_answer) && !json_is_null(is_answer))
        return ssf_fail(c->err, "%s:%zu: \"gold_is_answer\" must be true or false", c->path, line);
    if (json_is_boolean(is_answer)) req.gold_is_answer = json_is_true(is_answer);
    if (line_targets(c, rec, line, &req.targets) || line_profile(c, rec, line, &p)) return -1;
    const ssf_grader *g = grader_for(c, p);
    if (!g) return -1;
    ssf_grade_result res;
    ssf_grade(g, &req, &res);
    fill_json(rec, &res);
    ssf_grade_result_clear(&res);
    json_dumpf(rec, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
    return 0;
}

static int grade_jsonl(const grade_args *a)
{
    ssf_error err;
    jsonl_ctx c = {.args = a, .path = a->jsonl, .err = &err};
    int rc = ssf_records_read_file(a->jsonl, SSF_FORMAT_JSONL, grade_line, &c, &err);
    if (rc) cli_error("%s", err.msg);
    for (int p = 0; p < SSF_N_PROFILES; p++)
        ssf_grader_free(c.graders[p]);
    return rc ? EXIT_WORK : 0;
}

static int run_grade(const cli *c, const grade_args *a)
{
    if (a->jsonl) {
        if (a->gold || a->pred) {
            cli_error("grade: give either --jsonl or --gold/--pred, not both");
            return EXIT_USAGE;
        }
        return grade_jsonl(a);
    }
    if (!a->gold || !a->pred) {
        cli_error("grade: --gold and --pred are required (or --jsonl FILE); see `ssfteval grade "
                  "--help`");
        return EXIT_USAGE;
    }
    ssf_error err;
    ssf_grader *g = ssf_grader_new(a->profile, &err);
    if (!g) {
        cli_error("%s", err.msg);
        return EXIT_WORK;
    }
    int rc = grade_one(g, a, c->json);
    ssf_grader_free(g);
    return rc;
}

int cmd_grade(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {"gold", required_argument, NULL, OPT_GOLD},
        {"pred", required_argument, NULL, OPT_PRED},
        {"profile", required_argument, NULL, OPT_PROFILE},
        {"targets", required_argument, NULL, OPT_TARGETS},
        {"letters", required_argument, NULL, OPT_LETTERS},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"explain", no_argument, NULL, OPT_EXPLAIN},
        {"gold-is-answer", no_argument, NULL, OPT_GOLD_IS_ANSWER},
        {"jsonl", required_argument, NULL, OPT_JSONL},
        {NULL, 0, NULL, 0},
    };
    grade_args a = {.profile = SSF_PROFILE_DEFAULT, .letters = 4, .precision = -1};
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    if (cli_parse(&c, argc, argv, opts, handle_option, &a, help, &rc) == 0) {
        if (optind < argc) {
            cli_error("grade: unexpected argument '%s'; see `ssfteval grade --help`", argv[optind]);
            rc = EXIT_USAGE;
        } else {
            rc = run_grade(&c, &a);
        }
    }
    cli_free(&c);
    return rc;
}
