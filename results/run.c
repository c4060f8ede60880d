/*
 * run.c - the evaluation pipeline (see run.h).
 *
 * plan -> generate -> grade -> store happens per sample, so a run killed at
 * any moment has every finished sample graded and committed; metrics are
 * computed afterwards from the store alone, which is also how rescore and
 * report rebuild them.
 */
#include "run.h"
#include "run-internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#define MAX_METRICS 32
/* Bounds a stored configuration is held to before its numbers size a table:
 * past them the store was damaged or crafted (2^59 documents overflowed the
 * table's size). */
#define MAX_STORED_DOCUMENTS 100000000
#define MAX_STORED_SAMPLES 4096 /* run --samples' bound */

/* ---- identity ------------------------------------------------------------ */

uint64_t ssf_sample_seed(uint64_t run_seed, const char *task, int64_t doc, int tag, int index)
{
    ssf_buf key = {0};
    ssf_buf_printf(&key, "ssfteval-seed-v1\n%" PRIu64 "\n%s\n%" PRId64 "\n%d", run_seed, task, doc,
                   tag);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(key.data, key.len, md, &len, EVP_sha256(), NULL);
    ssf_buf_free(&key);
    uint64_t base = 0;
    for (int i = 0; i < 8; i++)
        base = (base << 8) | md[i];
    /* 62 bits: servers take the seed as a signed 64-bit integer, and base +
     * index must not wrap. */
    return (base >> 2) + (uint64_t)index;
}

static const char *protocol_name(ssf_protocol p)
{
    return p == SSF_PROTOCOL_SSFT ? "ssft" : "none";
}

static const char *compat_name(ssf_compat c)
{
    return c == SSF_COMPAT_SSFT_LIGHTEVAL ? "ssft-lighteval" : "";
}

/* A task's sampling: the command line's values, else the task's defaults,
 * else the reference's (T 0.7, top-p 0.95, 32768 new tokens). */
static ssf_sampling task_sampling(const ssf_run_config *cfg, const ssf_task *t)
{
    const ssf_generation_defaults *g = &t->generation;
    ssf_sampling s = cfg->sampling;
    if (s.temperature < 0) s.temperature = g->temperature >= 0 ? g->temperature : 0.7;
    if (s.top_p < 0) s.top_p = g->top_p >= 0 ? g->top_p : 0.95;
    if (s.top_k < 0) s.top_k = g->top_k >= 0 ? g->top_k : 0;
    if (s.min_p < 0) s.min_p = g->min_p >= 0 ? g->min_p : 0;
    if (s.max_new_tokens <= 0) s.max_new_tokens = g->max_new_tokens > 0 ? g->max_new_tokens : 32768;
    return s;
}

static json_t *sampling_json(const ssf_sampling *s)
{
    return json_pack("{s:f, s:f, s:I, s:f, s:I}", "temperature", s->temperature, "top_p", s->top_p,
                     "top_k", (json_int_t)s->top_k, "min_p", s->min_p, "max_new_tokens",
                     (json_int_t)s->max_new_tokens);
}

/* ---- per-task plan ---------------------------------------------------- */

typedef struct task_plan {
    const ssf_task *task;
    ssf_docs docs;
    size_t n_docs; /* after --limit */
    ssf_metric metrics[MAX_METRICS];
    size_t n_metrics;
    ssf_metric_context ctx;
    int need[SSF_MAX_TAGS + 1];
    ssf_sampling sampling;
} task_plan;

static void context_for(const ssf_run_config *cfg, const ssf_task *t, const char *const *names,
                        size_t n_names, ssf_metric_context *ctx)
{
    *ctx = (ssf_metric_context){.protocol = cfg->protocol,
                                .compat = cfg->compat,
                                .samples = cfg->samples,
                                .groups = cfg->groups,
                                .task_groups = t->groups > 0 ? t->groups : 6};
    if (ctx->samples == 0) ctx->samples = ssf_metric_default_samples(names, n_names, ctx);
}

static int plan_metrics(const ssf_run_config *cfg, task_plan *p, ssf_error *err)
{
    const ssf_task *t = p->task;
    char **names = cfg->metrics ? (char **)cfg->metrics : t->metrics;
    size_t n = cfg->metrics ? cfg->n_metrics : t->n_metrics;
    if (n == 0) return ssf_fail(err, "task %s has no default metrics; pass --metric", t->name);
    if (n > MAX_METRICS) return ssf_fail(err, "at most %d metrics", MAX_METRICS);
    context_for(cfg, t, (const char *const *)names, n, &p->ctx);
    memset(p->need, 0, sizeof p->need);
    p->n_metrics = 0;
    for (size_t i = 0; i < n; i++) {
        ssf_metric *m = &p->metrics[p->n_metrics];
        if (ssf_metric_parse(names[i], &p->ctx, m, err)) {
            if (!cfg->metrics && ssf_metric_needs_tags(names[i], &p->ctx)) {
                /* the task's SSFT metric on a run without tags: the rest still apply */
                if (cfg->log)
                    fprintf(cfg->log,
                            "ssfteval: task %s: default metric %s left out: it needs "
                            "--protocol ssft\n",
                            t->name, names[i]);
                continue;
            }
            return cfg->metrics ? ssf_fail_prefix(err, "--metric")
                                : ssf_fail_prefix(err, "task %s's default metrics", t->name);
        }
        int need[SSF_MAX_TAGS + 1];
        ssf_metric_need(m, &p->ctx, need);
        for (int k = 0; k <= SSF_MAX_TAGS; k++)
            if (need[k] > p->need[k]) p->need[k] = need[k];
        p->n_metrics++;
    }
    if (p->n_metrics == 0)
        return ssf_fail(err,
                        "task %s: none of its default metrics applies without --protocol ssft; "
                        "pass --protocol ssft or --metric",
                        t->name);
    return 0;
}

static int plan_task(const ssf_run_config *cfg, const ssf_task *t, task_plan *p, ssf_error *err)
{
    memset(p, 0, sizeof *p);
    p->task = t;
    if (ssf_task_load_docs(t, &cfg->data, &p->docs, err)) return -1;
    p->n_docs = cfg->limit > 0 && (size_t)cfg->limit < p->docs.n ? (size_t)cfg->limit : p->docs.n;
    p->sampling = task_sampling(cfg, t);
    return plan_metrics(cfg, p, err);
}

/* SHA-256 of what the samples are asked and graded against: each planned
 * document's user message, prompt and gold.  Built-in tasks pin their data
 * by SHA-256, but a --task-file's data or prompt may be edited between two
 * attempts; the second is then another run, not more samples of the first. */
void ssf_run_documents_digest(const ssf_task *t, const ssf_docs *docs, size_t n,
                              ssf_chat_template tpl, char hex[65])
{
    ssf_buf b = {0};
    for (size_t i = 0; i < n && i < docs->n; i++) {
        const ssf_doc *d = &docs->items[i];
        char *content = ssf_prompt_user_content(t, d);
        char *prompt = ssf_prompt_render(t, d, tpl, 0);
        /* NUL-separated: no field can end inside another. */
        ssf_buf_append(&b, content, strlen(content) + 1);
        ssf_buf_append(&b, prompt, strlen(prompt) + 1);
        ssf_buf_append(&b, d->gold ? d->gold : "", d->gold ? strlen(d->gold) + 1 : 1);
        free(content);
        free(prompt);
    }
    ssf_sha256_hex(b.data ? b.data : "", b.len, hex);
    ssf_buf_free(&b);
}

/* SHA-256 of which questions were asked, in order, and their answers,
 * whatever the prompt: each planned question's text and gold answer (for a
 * multiple-choice task the correct choice's text, not its letter, which
 * the choice order places).  compare pairs two runs' questions by their
 * order, which this tells is the same, though the models' prompts differ. */
static void questions_digest(const ssf_docs *docs, size_t n, char hex[65])
{
    ssf_buf b = {0};
    for (size_t i = 0; i < n && i < docs->n; i++) {
        const ssf_doc *d = &docs->items[i];
        const char *answer = d->gold_index >= 0 && (size_t)d->gold_index < d->n_choices
                                 ? d->choices[d->gold_index]
                                 : d->gold;
        ssf_buf_append(&b, d->question ? d->question : "", d->question ? strlen(d->question) : 0);
        ssf_buf_append(&b, "", 1);
        ssf_buf_append(&b, answer ? answer : "", answer ? strlen(answer) : 0);
        ssf_buf_append(&b, "", 1);
    }
    ssf_sha256_hex(b.data ? b.data : "", b.len, hex);
    ssf_buf_free(&b);
}

const json_t *ssf_run_config_task(const json_t *conf, const char *name)
{
    const json_t *entry = NULL, *t;
    size_t i;
    json_array_foreach(json_object_get(conf, "tasks"), i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && strcmp(n, name) == 0) entry = t;
    }
    return entry;
}

int ssf_run_check_documents(const char *config_json, int64_t run, const ssf_task *t,
                            const ssf_docs *docs, ssf_error *err)
{
    json_t *conf = json_loads(config_json ? config_json : "", 0, NULL);
    const json_t *entry = ssf_run_config_task(conf, t->name);
    json_int_t n = json_integer_value(json_object_get(entry, "documents"));
    const char *want = json_string_value(json_object_get(entry, "documents_sha256"));
    int tpl =
        ssf_chat_template_from_name(json_string_value(json_object_get(conf, "chat_template")));
    char got[65] = "";
    if (want && tpl >= 0 && n >= 0 && (size_t)n <= docs->n)
        ssf_run_documents_digest(t, docs, (size_t)n, (ssf_chat_template)tpl, got);
    int same = n >= 0 && (size_t)n <= docs->n && (!want || tpl < 0 || strcmp(want, got) == 0);
    json_decref(conf);
    if (same) return 0;
    return ssf_fail(err,
                    "task %s: the data loaded now (%zu documents from %s) is not what run %" PRId64
                    " asked and graded against (%" JSON_INTEGER_FORMAT
                    " documents); pass the --task-file and --data-dir it was run with",
                    t->name, docs->n, docs->origin ? docs->origin : "?", run, n);
}

static json_t *task_config(const ssf_run_config *cfg, const task_plan *p)
{
    json_t *metrics = json_array();
    for (size_t i = 0; i < p->n_metrics; i++)
        json_array_append_new(metrics, json_string(p->metrics[i].name));
    char digest[65];
    ssf_run_documents_digest(p->task, &p->docs, p->n_docs, cfg->chat_template, digest);
    /* "samples": the n its pass@K metrics took (ssf_metric_default_samples
     * when --samples was not given), so that a stored run says how it was
     * scored; runs stored before it was kept took n = K. */
    return json_pack("{s:s, s:s, s:i, s:i, s:I, s:s, s:o, s:o}", "name", p->task->name,
                     "answer_type", ssf_answer_type_name(p->task->answer_type), "groups",
                     p->ctx.task_groups, "samples", p->ctx.samples, "documents",
                     (json_int_t)p->n_docs, "documents_sha256", digest, "metrics", metrics,
                     "sampling", sampling_json(&p->sampling));
}

/* The run's configuration: everything that changes its outputs, and
 * nothing secret.  The hash of its canonical form identifies the run. */
static json_t *run_config(const ssf_run_config *cfg, const task_plan *plans)
{
    json_t *tasks = json_array();
    for (size_t i = 0; i < cfg->n_tasks; i++)
        json_array_append_new(tasks, task_config(cfg, &plans[i]));
    return json_pack("{s:o, s:s, s:s, s:i, s:i, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "tasks", tasks,
                     "protocol", protocol_name(cfg->protocol), "compat", compat_name(cfg->compat),
                     "groups", cfg->groups, "samples", cfg->samples, "limit",
                     (json_int_t)cfg->limit, "seed", (json_int_t)cfg->seed, "chat_template",
                     ssf_chat_template_name(cfg->chat_template), "profile",
                     ssf_profile_name(cfg->profile), "model", cfg->model ? cfg->model : "",
                     "backend", cfg->backend_desc ? cfg->backend_desc : "", "gpqa_order",
                     cfg->data.order_override >= 0
                         ? ssf_choice_order_name((ssf_choice_order)cfg->data.order_override)
                         : "task");
}

/* ---- progress ------------------------------------------------------------ */

typedef struct progress {
    int mode; /* 1 bar, 0 lines, -1 quiet */
    FILE *log;
    size_t total, done, failed;
    size_t shown; /* lines mode: the count the last line showed, +1 (0: none yet) */
    int64_t tokens;
    double start, last;
} progress;

static void progress_show(progress *p, int final)
{
    double t = ssf_monotonic_seconds();
    if (!p->log || p->mode < 0 || (!final && t - p->last < (p->mode ? 0.2 : 10.0))) return;
    if (p->mode == 0 && p->shown == p->done + 1) return; /* that line is out already */
    p->last = t;
    p->shown = p->done + 1;
    double elapsed = t - p->start > 1e-9 ? t - p->start : 1e-9;
    double rate = (double)p->done / elapsed;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    fprintf(p->log, "%s[%zu/%zu] %.1f samples/s, %.0f tokens/s, ETA %.0f s, %zu failed%s",
            p->mode ? "\r" : "", p->done, p->total, rate, (double)p->tokens / elapsed, eta,
            p->failed, p->mode && !final ? "   " : "\n");
}

/* ---- generation ---------------------------------------------------------- */

typedef struct pending {
    const task_plan *plan;
    const ssf_doc *doc;
} pending;

/* Distinct failure messages said on the log (stderr in the CLI) as they arrive; the rest are
 * counted by the progress line and stored with their samples. */
enum { FAILURES_SAID = 3 };

typedef struct gen_ctx {
    const ssf_run_config *cfg;
    const ssf_grader *grader;
    ssf_store *store;
    int64_t run_id;
    int grade_all; /* grade every stored sample again, not only those without a grade */
    const ssf_gen_request *reqs;
    const pending *pend;
    progress prog;
    ssf_run_summary *summary;
    ssf_error *err;
    char *failures_said[FAILURES_SAID];
    int n_failures_said;
} gen_ctx;

/* Samples the run needs in all, whatever this process got to plan. */
static int64_t samples_needed(const task_plan *plans, size_t n)
{
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        for (int tag = 0; tag <= SSF_MAX_TAGS; tag++)
            total += (int64_t)plans[i].n_docs * plans[i].need[tag];
    return total;
}

ssf_grade_request ssf_sample_grade_request(const ssf_task *t, const ssf_doc *d, const char *text,
                                           const char *finish_reason)
{
    ssf_grade_request req = {.gold = d->gold,
                             .pred = text,
                             .precision = -1,
                             .cut_by_length =
                                 finish_reason && strcmp(finish_reason, "length") == 0};
    if (t->answer_type == SSF_ANSWER_LETTERS) {
        req.targets = SSF_TARGET_LETTERS;
        req.n_letters = (int)d->n_choices;
    } else {
        req.gold_is_answer = 1; /* a task's gold is its answer, not a solution */
    }
    return req;
}

static ssf_grade_row grade_row(const ssf_run_config *cfg, const ssf_grade_result *res)
{
    return (ssf_grade_row){.profile = ssf_profile_name(cfg->profile),
                           .verdict = res->verdict,
                           .no_answer = res->no_answer,
                           .gold_extracted = res->gold_extracted,
                           .pred_extracted = res->pred_extracted,
                           .pred_key = res->pred_key,
                           .reason = res->reason};
}

/* A failed sample's reason goes to the log (stderr in the CLI) the first time it is seen, so
 * that a dead server or a refused request is named while the run goes on,
 * not only in the store; a flood of one reason is said once. */
static void say_failure(gen_ctx *c, const ssf_gen_request *q, const char *error)
{
    for (int i = 0; i < c->n_failures_said; i++)
        if (strcmp(c->failures_said[i], error) == 0) return;
    if (c->n_failures_said == FAILURES_SAID) return;
    c->failures_said[c->n_failures_said++] = ssf_xstrdup(error);
    FILE *log = c->cfg->log;
    if (!log) return;
    fprintf(log, "%sssfteval: %s doc %lld tag %d sample %d failed: %s",
            c->prog.mode > 0 ? "\n" : "", q->task, (long long)q->doc, q->tag, q->index, error);
    if (c->n_failures_said == FAILURES_SAID)
        fprintf(log, " (further reasons: ssfteval show %lld --doc N)", (long long)c->run_id);
    fputc('\n', log);
}

/* The backend's notices (a server that stopped answering, and when it is
 * back) go to the log as they come, on a line of their own. */
static void say_notice(const char *line, void *ud)
{
    gen_ctx *c = ud;
    FILE *log = c->cfg->log;
    if (log) fprintf(log, "%sssfteval: %s\n", c->prog.mode > 0 ? "\n" : "", line);
}

static int on_generated(const ssf_gen_request *q, const ssf_gen_result *r, void *ud)
{
    gen_ctx *c = ud;
    const pending *pd = &c->pend[q - c->reqs];
    ssf_sample_row row = {.task = q->task,
                          .doc = q->doc,
                          .tag = q->tag,
                          .index = q->index,
                          .seed = q->seed,
                          .request_json = r->request_json,
                          .text = r->text,
                          .reasoning = r->reasoning,
                          .finish_reason = r->finish_reason,
                          .prompt_tokens = r->prompt_tokens,
                          .completion_tokens = r->completion_tokens,
                          .latency_ms = r->latency_ms,
                          .attempts = r->attempts,
                          .error = r->error ? r->error : (r->text ? NULL : "no text returned")};
    ssf_grade_result res = {0};
    int graded = row.error == NULL;
    if (graded) {
        ssf_grade_request req =
            ssf_sample_grade_request(pd->plan->task, pd->doc, r->text, r->finish_reason);
        ssf_grade(c->grader, &req, &res);
    }
    ssf_grade_row g = grade_row(c->cfg, &res);
    int rc = ssf_store_put_sample(c->store, c->run_id, &row, graded ? &g : NULL, c->err);
    ssf_grade_result_clear(&res);
    c->prog.done++;
    if (row.error) {
        say_failure(c, q, row.error);
        c->prog.failed++;
        c->summary->failed++;
    } else {
        c->summary->generated++;
    }
    if (r->completion_tokens > 0) c->prog.tokens += r->completion_tokens;
    progress_show(&c->prog, 0);
    return rc;
}

/* ---- planning against the store ----------------------------------------- */

/* Notes the key of each stored, successful sample in the object ud. */
static int note_stored(const ssf_stored_sample *s, void *ud)
{
    if (s->error || !s->text) return 0;
    ssf_buf key = {0};
    ssf_sample_key(&key, s->task, s->doc, s->tag, s->index);
    json_object_set_new(ud, key.data, json_true());
    ssf_buf_free(&key);
    return 0;
}

typedef struct request_list {
    ssf_gen_request *reqs;
    pending *pend;
    size_t n, cap;
} request_list;

static void add_request(request_list *l, const ssf_gen_request *q, const pending *p)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->reqs = ssf_xrealloc(l->reqs, l->cap * sizeof *l->reqs);
        l->pend = ssf_xrealloc(l->pend, l->cap * sizeof *l->pend);
    }
    l->reqs[l->n] = *q;
    l->pend[l->n++] = *p;
}

/* Requests for the samples of task p not in done (keys of stored ones). */
static void plan_requests(gen_ctx *c, const task_plan *p, const json_t *done, request_list *l)
{
    ssf_buf key = {0};
    for (size_t k = 0; k < p->n_docs; k++) {
        const ssf_doc *d = &p->docs.items[k];
        for (int tag = 0; tag <= SSF_MAX_TAGS; tag++) {
            for (int i = 0; i < p->need[tag]; i++) {
                c->summary->planned++;
                ssf_sample_key(&key, p->task->name, (int64_t)d->index, tag, i);
                if (json_object_get(done, key.data)) {
                    c->summary->reused++;
                    continue;
                }
                ssf_gen_request q = {
                    .task = p->task->name,
                    .doc = (int64_t)d->index,
                    .tag = tag,
                    .index = i,
                    .seed = ssf_sample_seed(c->cfg->seed, p->task->name, (int64_t)d->index, tag, i),
                    .prompt = NULL,
                    .sampling = p->sampling};
                add_request(l, &q, &(pending){p, d});
            }
        }
    }
    ssf_buf_free(&key);
}

/* Prompts are rendered once per (question, tag) and shared by its samples;
 * the bare user message (for chat APIs) once per question. */
static void render_prompts(const ssf_run_config *cfg, request_list *l, char ***owned,
                           size_t *n_owned)
{
    *owned = ssf_xcalloc(2 * l->n + 1, sizeof **owned);
    *n_owned = 0;
    for (size_t i = 0; i < l->n; i++) {
        const pending *p = &l->pend[i];
        int same_doc = i > 0 && p->doc == l->pend[i - 1].doc;
        if (same_doc) {
            l->reqs[i].user_content = l->reqs[i - 1].user_content;
        } else {
            char *content = ssf_prompt_user_content(p->plan->task, p->doc);
            (*owned)[(*n_owned)++] = content;
            l->reqs[i].user_content = content;
        }
        if (same_doc && l->reqs[i].tag == l->reqs[i - 1].tag) {
            l->reqs[i].prompt = l->reqs[i - 1].prompt;
            continue;
        }
        char *prompt = ssf_prompt_render(p->plan->task, p->doc, cfg->chat_template, l->reqs[i].tag);
        (*owned)[(*n_owned)++] = prompt;
        l->reqs[i].prompt = prompt;
    }
}

static int generate_all(gen_ctx *c, ssf_backend *backend, task_plan *plans)
{
    json_t *done = json_object();
    request_list l = {0};
    int rc = 0;
    const char *profile = ssf_profile_name(c->cfg->profile);
    for (size_t t = 0; t < c->cfg->n_tasks && rc == 0; t++) {
        /* Stored samples without a grade under this run's profile (the run
         * began under another, or stopped between a sample and its grade),
         * or all of them where another build graded them. */
        rc = ssf_run_grade_stored(c->store, c->run_id, plans[t].task, &plans[t].docs, c->grader,
                                  profile, !c->grade_all, NULL, c->err);
        ssf_sample_query keys = {.task = plans[t].task->name, .keys_only = 1};
        if (rc == 0)
            rc = ssf_store_visit_samples(c->store, c->run_id, &keys, note_stored, done, c->err);
        if (rc == 0) plan_requests(c, &plans[t], done, &l);
        json_object_clear(done);
    }
    char **prompts = NULL;
    size_t n_prompts = 0;
    if (rc == 0 && l.n) {
        render_prompts(c->cfg, &l, &prompts, &n_prompts);
        c->reqs = l.reqs;
        c->pend = l.pend;
        c->prog = (progress){.mode = c->cfg->progress,
                             .log = c->cfg->log,
                             .total = l.n,
                             .start = ssf_monotonic_seconds()};
        backend->notice = say_notice;
        backend->notice_ud = c;
        rc = backend->generate(backend, l.reqs, l.n, on_generated, c, c->err);
        backend->notice = NULL;
        progress_show(&c->prog, 1);
    }
    for (int i = 0; i < c->n_failures_said; i++)
        free(c->failures_said[i]);
    for (size_t i = 0; i < n_prompts; i++)
        free(prompts[i]);
    free(prompts);
    free(l.reqs);
    free(l.pend);
    json_decref(done);
    return rc;
}

static void free_plans(task_plan *plans, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ssf_docs_free(&plans[i].docs);
    free(plans);
}

static int by_task_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

/* The canonical text the run's identity hashes: conf with its tasks in
 * name order, so that `run a,b` and `run b,a` are one run. */
static char *canonical_config(const json_t *conf)
{
    json_t *copy = json_deep_copy(conf), *tasks = json_object_get(copy, "tasks");
    size_t n = json_array_size(tasks);
    json_t **items = ssf_xmalloc((n ? n : 1) * sizeof *items), *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(tasks, i);
    qsort(items, n, sizeof *items, by_task_name);
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, items[i]);
    json_object_set_new(copy, "tasks", sorted);
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    free(items);
    json_decref(copy);
    return text;
}

/* ---- a run not resumed ---------------------------------------------------- */

/* Keys stored with a run but outside its identity: they may differ freely. */
static int stored_only(const char *key)
{
    return strcmp(key, "version") == 0 || strcmp(key, "task_documents") == 0 ||
           strcmp(key, "questions_sha256") == 0;
}

enum { MAX_DIFFS_SAID = 4 };

typedef struct config_diff {
    ssf_buf paths; /* "temperature, tasks[aime25].max_tokens" */
    int n;
} config_diff;

static void diff_json(const json_t *a, const json_t *b, const char *path, config_diff *d);

static void add_diff(config_diff *d, const char *path)
{
    if (d->n++ < MAX_DIFFS_SAID) ssf_buf_printf(&d->paths, "%s%s", d->n > 1 ? ", " : "", path);
}

static char *child_path(const char *path, const char *key)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s%s%s", path, *path ? "." : "", key);
    return ssf_buf_take(&b);
}

static void diff_objects(const json_t *a, const json_t *b, const char *path, config_diff *d)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)a, key, value)
    {
        if (stored_only(key)) continue;
        char *sub = child_path(path, key);
        diff_json(value, json_object_get(b, key), sub, d);
        free(sub);
    }
    json_object_foreach((json_t *)b, key, value)
    {
        if (stored_only(key) || json_object_get(a, key)) continue;
        char *sub = child_path(path, key);
        add_diff(d, sub);
        free(sub);
    }
}

/* Tasks pair by name, whatever their order. */
static void diff_tasks(const json_t *a, const json_t *b, config_diff *d)
{
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(a, i, x)
    {
        const char *name = json_string_value(json_object_get(x, "name"));
        json_t *match = NULL;
        json_array_foreach(b, j, y)
        {
            const char *other = json_string_value(json_object_get(y, "name"));
            if (name && other && strcmp(name, other) == 0) match = y;
        }
        ssf_buf path = {0};
        ssf_buf_printf(&path, "tasks[%s]", name ? name : "?");
        diff_json(x, match, path.data, d);
        ssf_buf_free(&path);
    }
}

static void diff_json(const json_t *a, const json_t *b, const char *path, config_diff *d)
{
    if (json_is_object(a) && json_is_object(b))
        diff_objects(a, b, path, d);
    else if (strcmp(path, "tasks") == 0 && json_is_array(a) && json_is_array(b) &&
             json_array_size(a) == json_array_size(b))
        diff_tasks(a, b, d);
    else if (!json_equal((json_t *)a, (json_t *)b))
        add_diff(d, path);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "b,a" as "a,b": a run's tasks in any order are the same run. */
static char *sorted_tasks(const char *csv)
{
    char *copy = ssf_xstrdup(csv), *save = NULL;
    size_t most = 1;
    for (const char *c = csv; *c; c++)
        most += *c == ',';
    char **names = ssf_xcalloc(most, sizeof *names);
    size_t n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    qsort(names, n, sizeof *names, by_string);
    ssf_buf b = {0};
    for (size_t i = 0; i < n; i++)
        ssf_buf_printf(&b, "%s%s", i ? "," : "", names[i]);
    free(names);
    free(copy);
    return b.data ? ssf_buf_take(&b) : ssf_xstrdup("");
}

typedef struct unfinished {
    char *tasks; /* sorted */
    const char *model;
    int64_t skip;
    ssf_run_row newest; /* id 0: none */
} unfinished;

static int same_tasks(const char *stored, const char *sorted)
{
    char *mine = sorted_tasks(stored);
    int same = strcmp(mine, sorted) == 0;
    free(mine);
    return same;
}

static int find_unfinished(const ssf_run_row *run, void *ud)
{
    unfinished *u = ud;
    if (run->id == u->skip || run->id < u->newest.id || !run->status ||
        strcmp(run->status, "done") == 0 || !run->tasks ||
        strcmp(run->model ? run->model : "", u->model) != 0 || !run->config_json ||
        !same_tasks(run->tasks, u->tasks))
        return 0;
    ssf_run_row_clear(&u->newest);
    u->newest = (ssf_run_row){.id = run->id,
                              .status = ssf_xstrdup(run->status),
                              .config_json = ssf_xstrdup(run->config_json)};
    return 0;
}

/* A new run where an unfinished one of the same tasks and model is: says
 * what of its configuration changed, so that nobody wonders where that
 * run's samples went (an option given otherwise, or an identity that grew:
 * a checkpoint's files, another ssfteval). */
static void note_not_resumed(const ssf_run_config *cfg, ssf_store *store, const json_t *conf,
                             const ssf_run_meta *meta, int64_t id)
{
    if (!cfg->log) return;
    unfinished u = {
        .tasks = sorted_tasks(meta->tasks), .model = meta->model ? meta->model : "", .skip = id};
    ssf_error ignored;
    if (ssf_store_foreach_run(store, find_unfinished, &u, &ignored) == 0 && u.newest.id) {
        json_t *old = json_loads(u.newest.config_json, 0, NULL);
        config_diff d = {0};
        ssf_buf why = {0};
        if (!old) {
            ssf_buf_puts(&why, "its stored configuration cannot be read");
        } else {
            diff_json(old, conf, "", &d);
            ssf_buf_printf(&why, "its configuration differs in %s%s",
                           d.n ? d.paths.data : "the run's identity",
                           d.n > MAX_DIFFS_SAID ? " and more" : "");
        }
        fprintf(cfg->log,
                "note: run %" PRId64 " (%s, the same tasks and model) is not resumed: %s; "
                "this is run %" PRId64 "\n",
                u.newest.id, ssf_store_run_status(store, &u.newest), why.data, id);
        ssf_buf_free(&why);
        ssf_buf_free(&d.paths);
        json_decref(old);
    }
    ssf_run_row_clear(&u.newest);
    free(u.tasks);
}

static int begin_run(const ssf_run_config *cfg, const task_plan *plans, ssf_store *store,
                     ssf_run_summary *summary, ssf_error *err)
{
    json_t *conf = run_config(cfg, plans);
    char *canonical = conf ? canonical_config(conf) : NULL;
    if (!canonical) { /* json_pack refuses a string that is not UTF-8 */
        json_decref(conf);
        return ssf_fail(err, "the run's configuration cannot be stored: the model's name, the "
                             "backend or a task's name is not valid UTF-8");
    }
    char hash[65];
    ssf_sha256_hex(canonical, strlen(canonical), hash);
    /* Stored, not hashed: what the run is does not change with them. */
    json_object_set_new(conf, "version", json_string(ssf_version()));
    for (size_t i = 0; i < cfg->n_tasks; i++) {
        json_t *task = json_array_get(json_object_get(conf, "tasks"), i);
        /* so that reports can tell a --limit run */
        json_object_set_new(task, "task_documents", json_integer((json_int_t)plans[i].docs.n));
        char questions[65]; /* so that compare can tell another question set */
        questions_digest(&plans[i].docs, plans[i].n_docs, questions);
        json_object_set_new(task, "questions_sha256", json_string(questions));
    }
    char *full = json_dumps(conf, JSON_COMPACT | JSON_SORT_KEYS);
    ssf_buf tasks = {0}, metrics = {0};
    for (size_t i = 0; i < cfg->n_tasks; i++) {
        ssf_buf_printf(&tasks, "%s%s", i ? "," : "", plans[i].task->name);
        for (size_t m = 0; m < plans[i].n_metrics && i == 0; m++)
            ssf_buf_printf(&metrics, "%s%s", m ? "," : "", plans[i].metrics[m].name);
    }
    ssf_run_meta meta = {.config_json = full,
                         .config_hash = hash,
                         .tasks = tasks.data ? tasks.data : "",
                         .metrics = metrics.data ? metrics.data : "",
                         .model = cfg->model,
                         .backend = cfg->backend_desc,
                         .protocol = protocol_name(cfg->protocol),
                         .compat = compat_name(cfg->compat),
                         .profile = ssf_profile_name(cfg->profile),
                         .version = ssf_version()};
    int rc = ssf_store_begin_run(store, &meta, &summary->run_id, &summary->resumed, err);
    if (rc == 0 && !summary->resumed) note_not_resumed(cfg, store, conf, &meta, summary->run_id);
    ssf_buf_free(&tasks);
    ssf_buf_free(&metrics);
    free(full);
    free(canonical);
    json_decref(conf);
    return rc;
}

/* ---- the other profiles -------------------------------------------------- */

/* A grade made while a task's samples are read, stored once the read is
 * over: a write inside the read needs the read's snapshot to be the newest,
 * and once a run writing the same store commits it is not; SQLite then
 * refuses the write at once (SQLITE_BUSY_SNAPSHOT), without waiting. */
typedef struct graded_sample {
    int64_t doc;
    int tag, index, verdict, no_answer;
    char *gold_extracted, *pred_extracted, *pred_key, *reason;
} graded_sample;

typedef struct regrade {
    const ssf_task *task;
    const ssf_docs *docs;
    const ssf_grader *grader;
    graded_sample *items;
    size_t n, cap;
} regrade;

static int grade_while_read(const ssf_stored_sample *s, void *ud)
{
    regrade *r = ud;
    if (s->error || !s->text || s->doc < 0 || (size_t)s->doc >= r->docs->n) return 0;
    ssf_grade_request req =
        ssf_sample_grade_request(r->task, &r->docs->items[s->doc], s->text, s->finish_reason);
    ssf_grade_result res;
    ssf_grade(r->grader, &req, &res);
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->items = ssf_xrealloc(r->items, r->cap * sizeof *r->items);
    }
    /* The result's strings move into the list: no ssf_grade_result_clear. */
    r->items[r->n++] = (graded_sample){.doc = s->doc,
                                       .tag = s->tag,
                                       .index = s->index,
                                       .verdict = res.verdict,
                                       .no_answer = res.no_answer,
                                       .gold_extracted = res.gold_extracted,
                                       .pred_extracted = res.pred_extracted,
                                       .pred_key = res.pred_key,
                                       .reason = ssf_xstrdup(res.reason)};
    return 0;
}

static void free_regrade(regrade *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->items[i].gold_extracted);
        free(r->items[i].pred_extracted);
        free(r->items[i].pred_key);
        free(r->items[i].reason);
    }
    free(r->items);
}

int ssf_run_grade_stored(ssf_store *store, int64_t run_id, const ssf_task *t, const ssf_docs *docs,
                         const ssf_grader *g, const char *profile, int only_ungraded,
                         size_t *graded, ssf_error *err)
{
    regrade r = {.task = t, .docs = docs, .grader = g};
    /* Only the texts to grade are read: a resume's are the few it lacks. */
    ssf_sample_query q = {
        .task = t->name, .profile = only_ungraded ? profile : NULL, .ungraded_only = only_ungraded};
    int rc = ssf_store_visit_samples(store, run_id, &q, grade_while_read, &r, err);
    /* each grade in its own transaction, as a run stores its samples, so a
     * run writing the same store waits little */
    for (size_t i = 0; i < r.n && rc == 0; i++) {
        const graded_sample *p = &r.items[i];
        ssf_grade_row row = {.profile = profile,
                             .verdict = p->verdict,
                             .no_answer = p->no_answer,
                             .gold_extracted = p->gold_extracted,
                             .pred_extracted = p->pred_extracted,
                             .pred_key = p->pred_key,
                             .reason = p->reason};
        rc = ssf_store_put_grade(store, run_id, t->name, p->doc, p->tag, p->index, &row, err);
        if (rc == 0 && graded) (*graded)++;
    }
    free_regrade(&r);
    return rc;
}

static int note_profile(const ssf_metric_row *m, void *ud)
{
    int *seen = ud, k = m->profile ? ssf_profile_from_name(m->profile) : -1;
    if (k >= 0) seen[k] = 1;
    return 0;
}

/* Metrics a rescore stored under another profile than the run's would be
 * out of date once the run adds samples: its new samples are graded under
 * each such profile too, and those metrics computed again. */
static int keep_other_profiles(const ssf_run_config *cfg, const task_plan *plans, ssf_store *store,
                               int64_t run_id, int grade_all, ssf_error *err)
{
    int seen[SSF_N_PROFILES] = {0};
    if (ssf_store_foreach_metric(store, run_id, note_profile, seen, err)) return -1;
    int rc = 0;
    for (int k = 0; k < SSF_N_PROFILES && rc == 0; k++) {
        if (!seen[k] || k == (int)cfg->profile) continue;
        const char *name = ssf_profile_name((ssf_profile)k);
        ssf_grader *g = ssf_grader_new((ssf_profile)k, err);
        rc = g ? 0 : -1;
        for (size_t i = 0; i < cfg->n_tasks && rc == 0; i++)
            rc = ssf_run_grade_stored(store, run_id, plans[i].task, &plans[i].docs, g, name,
                                      !grade_all, NULL, err);
        ssf_grader_free(g);
        if (rc == 0) rc = ssf_run_compute_metrics(store, run_id, name, NULL, err);
    }
    return rc;
}

/* Whether a resumed run's stored grades must be made again: another build
 * made them (its grader may read answers otherwise), or this build's
 * files differ from its commit, so that its version does not say what it
 * grades like.  The run takes this build's version once all are made
 * again (ssf_run_execute): a resume stopped before keeps the old one, and
 * the next grades again. */
static int graded_by_another_build(const ssf_run_config *cfg, ssf_store *store, int64_t run_id,
                                   int *grade_all, ssf_error *err)
{
    ssf_run_row row;
    if (ssf_store_get_run(store, run_id, &row, err)) return -1;
    const char *now = ssf_version();
    /* Only a commit without changes says how a build grades: one built
     * without its commit (a tarball, a git that refuses the tree) may be
     * any, so it grades again too. */
    int exact = strstr(now, "+g") && !strstr(now, "-dirty");
    *grade_all = !row.version || strcmp(row.version, now) != 0 || !exact;
    if (*grade_all && cfg->log && (!row.version || strcmp(row.version, now) != 0))
        fprintf(cfg->log, "run %lld was graded by ssfteval %s: grading its samples again with %s\n",
                (long long)run_id, row.version ? row.version : "(unknown)", now);
    ssf_run_row_clear(&row);
    return 0;
}

int ssf_run_execute(const ssf_run_config *cfg, ssf_backend *backend, ssf_store *store,
                    ssf_run_summary *summary, ssf_error *err)
{
    memset(summary, 0, sizeof *summary);
    task_plan *plans = ssf_xcalloc(cfg->n_tasks, sizeof *plans);
    int rc = 0;
    for (size_t i = 0; i < cfg->n_tasks && rc == 0; i++)
        rc = plan_task(cfg, cfg->tasks[i], &plans[i], err);
    if (rc == 0) rc = begin_run(cfg, plans, store, summary, err);
    int grade_all = 0;
    if (rc == 0 && summary->resumed)
        rc = graded_by_another_build(cfg, store, summary->run_id, &grade_all, err);
    ssf_grader *grader = rc == 0 ? ssf_grader_new(cfg->profile, err) : NULL;
    if (rc == 0 && !grader) rc = -1;
    if (rc == 0) {
        gen_ctx c = {.cfg = cfg,
                     .grader = grader,
                     .store = store,
                     .run_id = summary->run_id,
                     .grade_all = grade_all,
                     .summary = summary,
                     .err = err};
        rc = generate_all(&c, backend, plans);
        if (rc) { /* interrupted or failed: what finished is stored; say so in the run */
            ssf_error ignored;
            summary->status = "incomplete";
            ssf_store_abandon_run(store, summary->run_id, &summary->status, &ignored);
        }
    }
    if (rc == 0)
        rc = ssf_run_compute_metrics(store, summary->run_id, ssf_profile_name(cfg->profile),
                                     cfg->out, err);
    if (rc == 0 && (summary->generated > 0 || grade_all))
        rc = keep_other_profiles(cfg, plans, store, summary->run_id, grade_all, err);
    if (rc == 0 && grade_all)
        rc = ssf_store_set_run_version(store, summary->run_id, ssf_version(), err);
    if (rc == 0) /* by the store, which counts what earlier processes stored too */
        rc = ssf_store_settle_run(store, summary->run_id, samples_needed(plans, cfg->n_tasks),
                                  &summary->status, err);
    if (summary->run_id > 0) ssf_store_release_run(store, summary->run_id);
    ssf_grader_free(grader);
    free_plans(plans, cfg->n_tasks);
    return rc;
}

/* ---- metrics from the store ---------------------------------------------- */

/* One task of a stored run, as its configuration describes it, with the
 * outcome of every stored sample in a [doc][tag][index] table. */
typedef struct task_table {
    const char *name;
    int letters;
    int groups;
    size_t n_docs;
    int max_index; /* samples per (doc, tag) the table holds */
    ssf_outcome *cells;
    char **strings; /* copies the outcomes point into */
    size_t n_strings, cap_strings;
    size_t n_failed, n_samples;
    size_t n_ungraded; /* stored with text but no grade under the profile asked */
    int keep_text;     /* whether a vote reads the completions (ssf_metric_votes_on_text) */
} task_table;

static ssf_outcome *cell(task_table *t, int64_t doc, int tag, int index)
{
    if (doc < 0 || (size_t)doc >= t->n_docs || tag < 0 || tag > SSF_MAX_TAGS || index < 0 ||
        index >= t->max_index)
        return NULL;
    return &t->cells[((size_t)doc * (SSF_MAX_TAGS + 1) + (size_t)tag) * (size_t)t->max_index +
                     (size_t)index];
}

static const char *keep_string(task_table *t, const char *s)
{
    if (!s) return NULL;
    if (t->n_strings == t->cap_strings) {
        t->cap_strings = t->cap_strings ? 2 * t->cap_strings : 256;
        t->strings = ssf_xrealloc(t->strings, t->cap_strings * sizeof *t->strings);
    }
    return t->strings[t->n_strings++] = ssf_xstrdup(s);
}

static int fill_cell(const ssf_stored_sample *s, void *ud)
{
    task_table *t = ud;
    ssf_outcome *o = cell(t, s->doc, s->tag, s->index);
    if (!o) return 0; /* outside the configured plan (an older, larger plan) */
    t->n_samples++;
    o->present = 1;
    o->failed = s->error != NULL || !s->text;
    if (o->failed) {
        t->n_failed++;
        return 0;
    }
    if (!s->graded) { /* never scored as wrong: load_table refuses the table */
        o->present = 0;
        t->n_ungraded++;
        return 0;
    }
    o->verdict = s->verdict;
    o->no_answer = s->no_answer;
    o->empty_text = s->text[0] == '\0';
    o->key = keep_string(t, s->pred_key);
    /* Completions run to megabytes a run: held only where a vote reads them. */
    if (t->keep_text) o->raw_text = keep_string(t, s->text);
    o->extracted = keep_string(t, s->pred_extracted);
    o->gold_extracted = keep_string(t, s->gold_extracted);
    return 0;
}

static void free_table(task_table *t)
{
    for (size_t i = 0; i < t->n_strings; i++)
        free(t->strings[i]);
    free(t->strings);
    free(t->cells);
}

typedef struct doc_view {
    task_table *t;
    int64_t doc;
} doc_view;

static const ssf_outcome *view_outcome(int tag, int index, void *ud)
{
    doc_view *v = ud;
    ssf_outcome *o = cell(v->t, v->doc, tag, index);
    return o && o->present ? o : NULL;
}

/* The largest sample index any metric of the task asks for, plus one. */
static int table_width(const json_t *task, const ssf_metric_context *ctx, ssf_metric *ms,
                       size_t n_ms)
{
    int width = 1;
    (void)task;
    for (size_t i = 0; i < n_ms; i++) {
        int need[SSF_MAX_TAGS + 1];
        ssf_metric_need(&ms[i], ctx, need);
        for (int k = 0; k <= SSF_MAX_TAGS; k++)
            if (need[k] > width) width = need[k];
    }
    return width;
}

/* The metric context a stored configuration gives all its tasks. */
static ssf_metric_context base_context(const json_t *root)
{
    const char *protocol = json_string_value(json_object_get(root, "protocol"));
    const char *compat = json_string_value(json_object_get(root, "compat"));
    return (ssf_metric_context){
        .protocol =
            protocol && strcmp(protocol, "ssft") == 0 ? SSF_PROTOCOL_SSFT : SSF_PROTOCOL_NONE,
        .compat = compat && strcmp(compat, "ssft-lighteval") == 0 ? SSF_COMPAT_SSFT_LIGHTEVAL
                                                                  : SSF_COMPAT_NONE,
        .samples = (int)json_integer_value(json_object_get(root, "samples")),
        .groups = (int)json_integer_value(json_object_get(root, "groups"))};
}

/* One task's context: the base, with the task's group count and its own
 * sample count where the entry has one (older runs: n = K). */
static ssf_metric_context task_context(const ssf_metric_context *base, const json_t *task)
{
    ssf_metric_context ctx = *base;
    int groups = (int)json_integer_value(json_object_get(task, "groups"));
    ctx.task_groups = groups > 0 ? groups : 6;
    const json_t *samples = json_object_get(task, "samples");
    if (json_is_integer(samples)) ctx.samples = (int)json_integer_value(samples);
    return ctx;
}

int ssf_run_metric_shape(const json_t *conf, const char *task, const char *metric, int *k, int *n)
{
    const json_t *entry = ssf_run_config_task(conf, task);
    if (!entry) return -1;
    ssf_metric_context base = base_context(conf), ctx = task_context(&base, entry);
    ssf_metric m;
    ssf_error ignored;
    if (ssf_metric_parse(metric, &ctx, &m, &ignored)) return -1;
    *k = m.k;
    *n = m.n;
    return 0;
}

typedef struct stored_config {
    json_t *root;
    ssf_metric_context base; /* protocol, compat, samples, groups */
} stored_config;

static int read_stored_config(ssf_store *store, int64_t run_id, stored_config *sc, ssf_error *err)
{
    ssf_run_row run;
    if (ssf_store_get_run(store, run_id, &run, err)) return -1;
    json_error_t jerr;
    sc->root = json_loads(run.config_json ? run.config_json : "", 0, &jerr);
    ssf_run_row_clear(&run);
    if (!json_is_object(sc->root)) {
        json_decref(sc->root);
        return ssf_fail(err, "run %" PRId64 ": its stored configuration is not valid JSON", run_id);
    }
    sc->base = base_context(sc->root);
    return 0;
}

/* Parses a stored task entry's metrics and loads its samples. */
static int load_table(ssf_store *store, int64_t run_id, const char *profile, const json_t *task,
                      const ssf_metric_context *base, ssf_metric_context *ctx, ssf_metric *ms,
                      size_t *n_ms, task_table *t, ssf_error *err)
{
    memset(t, 0, sizeof *t);
    t->name = json_string_value(json_object_get(task, "name"));
    const char *type = json_string_value(json_object_get(task, "answer_type"));
    t->letters = type && strcmp(type, "letters") == 0;
    t->groups = (int)json_integer_value(json_object_get(task, "groups"));
    json_int_t docs = json_integer_value(json_object_get(task, "documents"));
    if (!t->name || docs < 0 || docs > MAX_STORED_DOCUMENTS)
        return ssf_fail(err,
                        "run %" PRId64 ": its stored configuration names a task without a name "
                        "or with %" JSON_INTEGER_FORMAT " documents; the store is damaged",
                        run_id, docs);
    t->n_docs = (size_t)docs;
    const json_t *metrics = json_object_get(task, "metrics");
    const json_t *samples = json_object_get(task, "samples"); /* absent in older runs: n = K */
    if (samples && (!json_is_integer(samples) || json_integer_value(samples) < 0 ||
                    json_integer_value(samples) > MAX_STORED_SAMPLES))
        return ssf_fail(err,
                        "run %" PRId64 " task %s: its stored sample count is not one; the "
                        "store is damaged",
                        run_id, t->name);
    *ctx = task_context(base, task);
    *n_ms = 0;
    for (size_t i = 0; i < json_array_size(metrics) && i < MAX_METRICS; i++) {
        if (ssf_metric_parse(json_string_value(json_array_get(metrics, i)), ctx, &ms[i], err))
            return -1;
        (*n_ms)++;
    }
    t->max_index = table_width(task, ctx, ms, *n_ms);
    if (t->max_index > MAX_STORED_SAMPLES)
        return ssf_fail(err,
                        "run %" PRId64 " task %s: its metrics need %d samples a tag; the "
                        "store is damaged",
                        run_id, t->name, t->max_index);
    size_t n_cells = t->n_docs * (SSF_MAX_TAGS + 1) * (size_t)t->max_index + 1;
    t->cells = calloc(n_cells, sizeof *t->cells); /* within the bounds, still maybe too many */
    if (!t->cells)
        return ssf_fail(err, "run %" PRId64 " task %s: no memory for its table of %zu samples",
                        run_id, t->name, n_cells);
    t->keep_text = ssf_metric_votes_on_text(ctx, t->letters);
    if (ssf_store_foreach_sample(store, run_id, t->name, profile, fill_cell, t, err)) return -1;
    if (t->n_ungraded)
        return ssf_fail(err,
                        "run %" PRId64 " task %s: %zu samples have no grade under profile %s; "
                        "grade them with `ssfteval rescore %" PRId64 " --profile %s`",
                        run_id, t->name, t->n_ungraded, profile, run_id, profile);
    return 0;
}

static void metric_values(task_table *t, const ssf_metric *m, const ssf_metric_context *ctx,
                          double *values)
{
    for (size_t d = 0; d < t->n_docs; d++) {
        doc_view v = {t, (int64_t)d};
        values[d] = ssf_metric_question(m, ctx, t->letters, view_outcome, &v);
    }
}

/* A share in percent, or "-" where there is none (no question scored, or
 * one question's standard error), as the Markdown report writes it. */
static const char *percent_text(char *buf, size_t size, double share)
{
    if (isfinite(share))
        snprintf(buf, size, "%.2f", 100 * share);
    else
        snprintf(buf, size, "-");
    return buf;
}

static void print_metric(FILE *out, const char *task, const ssf_metric *m, const ssf_aggregate *a,
                         const task_table *t)
{
    if (!out) return;
    char value[32], se[32], lo[32], hi[32];
    fprintf(out, "%-14s %-16s %7s  ±%5s  [%6s, %6s]  %4zu question%s", task, m->name,
            percent_text(value, sizeof value, a->value), percent_text(se, sizeof se, a->stderr_),
            percent_text(lo, sizeof lo, a->ci_lo), percent_text(hi, sizeof hi, a->ci_hi),
            a->n_questions, a->n_questions == 1 ? "" : "s");
    if (a->n_excluded || t->n_failed)
        fprintf(out, "  (%zu excluded: missing or failed samples; %zu failed)", a->n_excluded,
                t->n_failed);
    fputc('\n', out);
}

static int task_metrics(ssf_store *store, int64_t run_id, const char *profile, const json_t *task,
                        const ssf_metric_context *base, FILE *out, ssf_error *err)
{
    ssf_metric ms[MAX_METRICS];
    size_t n_ms = 0;
    ssf_metric_context ctx;
    task_table t;
    int rc = load_table(store, run_id, profile, task, base, &ctx, ms, &n_ms, &t, err);
    double *values = ssf_xcalloc(t.n_docs + 1, sizeof *values);
    for (size_t i = 0; i < n_ms && rc == 0; i++) {
        metric_values(&t, &ms[i], &ctx, values);
        ssf_aggregate a;
        ssf_aggregate_values(values, t.n_docs, 2000, 20251126, &a);
        ssf_metric_row row = {.task = t.name,
                              .metric = ms[i].name,
                              .profile = profile,
                              .value = a.value,
                              .stderr_ = a.stderr_,
                              .ci_lo = a.ci_lo,
                              .ci_hi = a.ci_hi,
                              .n_questions = (int64_t)a.n_questions,
                              .n_samples = (int64_t)t.n_samples,
                              .n_failed = (int64_t)t.n_failed,
                              .n_missing = (int64_t)a.n_excluded};
        rc = ssf_store_put_metric(store, run_id, &row, err);
        print_metric(out, t.name, &ms[i], &a, &t);
    }
    free(values);
    free_table(&t);
    return rc;
}

int ssf_run_compute_metrics(ssf_store *store, int64_t run_id, const char *profile, FILE *out,
                            ssf_error *err)
{
    stored_config sc;
    if (read_stored_config(store, run_id, &sc, err)) return -1;
    if (out)
        fprintf(out, "%-14s %-16s %7s  %6s  %-16s  %s\n", "task", "metric", "value", "±SE",
                "95% CI", "N");
    const json_t *tasks = json_object_get(sc.root, "tasks");
    int rc = 0;
    for (size_t i = 0; i < json_array_size(tasks) && rc == 0; i++)
        rc = task_metrics(store, run_id, profile, json_array_get(tasks, i), &sc.base, out, err);
    json_decref(sc.root);
    return rc;
}

int ssf_run_question_values(ssf_store *store, int64_t run_id, const char *task_name,
                            const char *metric, const char *profile, double **values,
                            int64_t **docs, size_t *n, ssf_error *err)
{
    stored_config sc;
    if (read_stored_config(store, run_id, &sc, err)) return -1;
    const json_t *tasks = json_object_get(sc.root, "tasks"), *task = NULL;
    int rc = 0;
    for (size_t i = 0; i < json_array_size(tasks) && rc == 0; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(tasks, i), "name"));
        if (!name)
            rc = ssf_fail(err,
                          "run %" PRId64 ": its stored configuration names a task without a name; "
                          "the store is damaged",
                          run_id);
        else if (strcmp(name, task_name) == 0)
            task = json_array_get(tasks, i);
    }
    if (rc == 0 && !task) rc = ssf_fail(err, "run %" PRId64 " has no task %s", run_id, task_name);
    ssf_metric ms[MAX_METRICS];
    memset(ms, 0, sizeof ms); /* only the first n_ms are set by load_table */
    size_t n_ms = 0;
    ssf_metric_context ctx;
    task_table t = {0};
    if (rc == 0) rc = load_table(store, run_id, profile, task, &sc.base, &ctx, ms, &n_ms, &t, err);
    size_t which = n_ms;
    for (size_t i = 0; i < n_ms; i++)
        if (strcmp(ms[i].name, metric) == 0) which = i;
    if (rc == 0 && which == n_ms)
        rc = ssf_fail(err,
                      "run %" PRId64 " task %s has no metric %s; name one it has with --metric "
                      "(`ssfteval report %" PRId64 "` lists them)",
                      run_id, task_name, metric, run_id);
    if (rc == 0) {
        *n = t.n_docs;
        *values = ssf_xcalloc(t.n_docs + 1, sizeof **values);
        *docs = ssf_xcalloc(t.n_docs + 1, sizeof **docs);
        metric_values(&t, &ms[which], &ctx, *values);
        for (size_t d = 0; d < t.n_docs; d++)
            (*docs)[d] = (int64_t)d;
    }
    free_table(&t);
    json_decref(sc.root);
    return rc;
}
