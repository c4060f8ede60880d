/*
 * test_openai.c - the OpenAI-compatible backend (backends/openai.c) against
 * the in-process mock server (mockserver.h): texts and seeds, n grouping,
 * streaming, reasoning fields, retries and their delays, errors that must
 * not be retried, idle timeouts, an unreachable endpoint, the stop flag and
 * 4096 transfers at once.
 *
 * Every test starts its own server with the faults it needs.  The mock's
 * text is a pure function of (seed, prompt), so each sample's text proves
 * that the backend sent the seed that sample owns and put each choice of an
 * n > 1 answer in the right place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backend.h"
#include "mockserver.h"

#define WATCHDOG_S 40 /* a test that hangs fails instead of blocking the suite */

/* ---- one generate call and what it reported ------------------------------ */

struct outcome {
    int calls;
    size_t order; /* among all done() calls, from 0 */
    char *text, *reasoning, *finish, *error;
    int attempts;
    long long prompt_tokens, completion_tokens;
    double done_s; /* when, in seconds from the start of generate */
};

struct run {
    ssf_gen_request *reqs;
    char **prompts, **users;
    size_t n;
    int chat;
    struct outcome *out;
    size_t calls, unknown;
    size_t stop_after; /* done asks to stop after this many calls (0: never) */
    pthread_t thread;
    int wrong_thread;
    int rc;
    double started, elapsed_s;
    ssf_error err;
    char endpoint[64];
};

static char *dup_or_null(const char *s)
{
    return s ? ssf_xstrdup(s) : NULL;
}

/* docs x tags x samples requests laid out as the pipeline does: sample j of
 * a question with tag t has seed base + 1000 doc + samples t + j, so one
 * (doc, tag) group has consecutive seeds and one prompt. */
static void make_run(struct run *r, int docs, int tags, int samples, uint64_t base, int chat)
{
    memset(r, 0, sizeof *r);
    r->n = (size_t)docs * (size_t)tags * (size_t)samples;
    r->chat = chat;
    r->reqs = ssf_xcalloc(r->n, sizeof *r->reqs);
    r->prompts = ssf_xcalloc(r->n, sizeof *r->prompts);
    r->users = ssf_xcalloc(r->n, sizeof *r->users);
    r->out = ssf_xcalloc(r->n, sizeof *r->out);
    size_t k = 0;
    for (int d = 0; d < docs; d++)
        for (int t = 0; t < tags; t++)
            for (int j = 0; j < samples; j++, k++) {
                ssf_buf p = {0}, u = {0};
                ssf_buf_printf(&u, "Question %d: what is %d + %d?", d, d, d + 1);
                ssf_buf_printf(&p, "<|im_start|>user\n%s<|im_end|>\n<|im_start|><think%d>\n",
                               u.data, t);
                r->prompts[k] = ssf_buf_take(&p);
                r->users[k] = ssf_buf_take(&u);
                r->reqs[k] = (ssf_gen_request){
                    .task = "t",
                    .doc = d,
                    .tag = t,
                    .index = j,
                    .seed = base + 1000u * (uint64_t)d + (uint64_t)(samples * t + j),
                    .prompt = r->prompts[k],
                    .user_content = r->users[k],
                    .sampling = {.temperature = 0.6,
                                 .top_p = 0.95,
                                 .top_k = 20,
                                 .min_p = 0.05,
                                 .max_new_tokens = 4096},
                };
            }
}

static void free_run(struct run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->prompts[i]);
        free(r->users[i]);
        free(r->out[i].text);
        free(r->out[i].reasoning);
        free(r->out[i].finish);
        free(r->out[i].error);
    }
    free(r->prompts);
    free(r->users);
    free(r->out);
    free(r->reqs);
}

/* The backend may hand back a copy of the request, so fall back to its
 * identity when the pointer is not one of ours. */
static size_t find_request(const struct run *r, const ssf_gen_request *req)
{
    if (req >= r->reqs && req < r->reqs + r->n) return (size_t)(req - r->reqs);
    for (size_t i = 0; i < r->n; i++)
        if (r->reqs[i].doc == req->doc && r->reqs[i].tag == req->tag &&
            r->reqs[i].index == req->index)
            return i;
    return SIZE_MAX;
}

static int on_done(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    struct run *r = ud;
    if (!pthread_equal(pthread_self(), r->thread)) r->wrong_thread = 1;
    size_t i = find_request(r, req);
    if (i == SIZE_MAX) {
        r->unknown++;
        return 0;
    }
    struct outcome *o = &r->out[i];
    if (o->calls++ == 0) {
        o->text = dup_or_null(res->text);
        o->reasoning = dup_or_null(res->reasoning);
        o->finish = dup_or_null(res->finish_reason);
        o->error = dup_or_null(res->error);
        o->attempts = res->attempts;
        o->prompt_tokens = res->prompt_tokens;
        o->completion_tokens = res->completion_tokens;
        o->order = r->calls;
        o->done_s = ssf_monotonic_seconds() - r->started;
    }
    r->calls++;
    return r->stop_after && r->calls >= r->stop_after ? 7 : 0;
}

static ssf_openai_options options_for(struct run *r, struct mockserver *m)
{
    ssf_openai_options o;
    ssf_openai_options_default(&o);
    if (m) snprintf(r->endpoint, sizeof r->endpoint, "http://127.0.0.1:%u/v1", mockserver_port(m));
    o.endpoint = r->endpoint;
    o.model = "mock-model";
    o.api = r->chat ? SSF_API_CHAT : SSF_API_COMPLETIONS;
    o.concurrency = 32;
    o.request_n = 1;
    o.stream = 0;
    o.timeout_s = 10;
    o.max_attempts = 4;
    o.max_retry_delay_s = 0.05; /* keeps backoff short; Retry-After is not capped by it */
    return o;
}

/* make_run with options aimed at m (NULL: at r->endpoint, set later), the
 * start that most tests share. */
static ssf_openai_options make_run_for(struct run *r, struct mockserver *m, int docs, int tags,
                                       int samples, uint64_t base, int chat)
{
    make_run(r, docs, tags, samples, base, chat);
    return options_for(r, m);
}

static ssf_backend *new_backend(const ssf_openai_options *o)
{
    ssf_error err = {0};
    ssf_backend *b = ssf_backend_openai_new(o, &err);
    if (!b) fail_msg("ssf_backend_openai_new(%s): %s", o->endpoint, err.msg);
    return b;
}

static void generate_on(ssf_backend *b, struct run *r)
{
    r->thread = pthread_self();
    r->started = ssf_monotonic_seconds();
    r->rc = b->generate(b, r->reqs, r->n, on_done, r, &r->err);
    r->elapsed_s = ssf_monotonic_seconds() - r->started;
    assert_int_equal(r->unknown, 0);
    assert_false(r->wrong_thread);
}

static void generate(const ssf_openai_options *o, struct run *r)
{
    ssf_backend *b = new_backend(o);
    generate_on(b, r);
    b->destroy(b);
}

static struct mockserver *start(const struct mockserver_options *mo)
{
    ssf_error err = {0};
    struct mockserver *m = mockserver_start(mo, &err);
    if (!m) fail_msg("mockserver_start: %s", err.msg);
    return m;
}

/* ---- checks --------------------------------------------------------------- */

static void describe(const struct run *r, size_t i, const char *what)
{
    const struct outcome *o = &r->out[i];
    fprintf(stderr,
            "sample %zu (doc %" PRId64 " tag %d index %d seed %" PRIu64 "): %s\n"
            "  calls %d attempts %d finish %s error %s\n  text %s\n",
            i, r->reqs[i].doc, r->reqs[i].tag, r->reqs[i].index, r->reqs[i].seed, what, o->calls,
            o->attempts, o->finish ? o->finish : "(null)", o->error ? o->error : "(null)",
            o->text ? o->text : "(null)");
}

/* Every sample done once, without error, with its own seed's text; with
 * split reasoning the reasoning part must come back in result->reasoning. */
static void expect_all_ok(const struct run *r, int split)
{
    assert_int_equal(r->rc, 0);
    for (size_t i = 0; i < r->n; i++) {
        const struct outcome *o = &r->out[i];
        const char *key = r->chat ? r->users[i] : r->prompts[i];
        char *reasoning, *content, *full = mockserver_expected_text(r->reqs[i].seed, key);
        mockserver_expected(r->reqs[i].seed, key, &reasoning, &content);
        const char *bad = o->calls != 1          ? "not exactly one done() call"
                          : o->error || !o->text ? "failed"
                          : strcmp(o->text, split ? content : full) != 0 ? "wrong text"
                          : split && (!o->reasoning || strcmp(o->reasoning, reasoning) != 0)
                              ? "wrong reasoning"
                              : NULL;
        if (bad) {
            describe(r, i, bad);
            fprintf(stderr, "  expected %s\n", split ? content : full);
        }
        free(reasoning);
        free(content);
        free(full);
        if (bad) fail_msg("sample %zu: %s", i, bad);
    }
}

/* Every sample done once, failed, after one attempt as the server counts. */
static void expect_all_failed(const struct run *r, struct mockserver *m, const char *needle)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct outcome *o = &r->out[i];
        const char *bad = o->calls != 1                         ? "not exactly one done() call"
                          : !o->error || o->text                ? "did not fail"
                          : needle && !strstr(o->error, needle) ? "error misses its cause"
                          : m && mockserver_attempts(m, r->reqs[i].seed) != 1 ? "was retried"
                                                                              : NULL;
        if (bad) {
            describe(r, i, bad);
            if (m)
                fprintf(stderr, "  server saw %u attempts\n",
                        mockserver_attempts(m, r->reqs[i].seed));
            fail_msg("sample %zu: %s", i, bad);
        }
    }
}

static void expect_attempts(const struct run *r, struct mockserver *m, unsigned want)
{
    for (size_t i = 0; i < r->n; i++) {
        unsigned seen = mockserver_attempts(m, r->reqs[i].seed);
        if (seen != want || r->out[i].attempts != (int)want) {
            describe(r, i, "unexpected attempt count");
            fail_msg("sample %zu: server saw %u attempts, result says %d, want %u", i, seen,
                     r->out[i].attempts, want);
        }
    }
}

/* ---- plain generation --------------------------------------------------- */

static void run_plain(int chat, int stream, int request_n, enum mock_n n_mode)
{
    struct mockserver_options mo = {.n_mode = n_mode};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 4, 3, 8, 1000, chat);
    o.stream = stream;
    o.request_n = request_n;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    /* Each sample's seed was generated, whatever the grouping. */
    for (size_t i = 0; i < r.n; i++)
        assert_true(mockserver_served(m, r.reqs[i].seed) >= 1);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    if (request_n == 1) assert_int_equal(st.multi_n, 0);
    /* auto against a server that does not honour n: one probe with n > 1,
     * then one request a sample */
    if (request_n == 0 && n_mode != MOCK_N_HONOUR) {
        assert_int_equal(st.multi_n, 1);
        assert_int_equal(st.generations, r.n + 1);
    }
    /* a refusing server did refuse n, so the singles were what answered */
    static const int refusal[] = {
        [MOCK_N_REJECT] = 400, [MOCK_N_REJECT_500] = 500, [MOCK_N_REJECT_422] = 422};
    if (request_n != 1 && refusal[n_mode]) assert_true(st.status[refusal[n_mode]] >= 1);
    if (request_n > 1 && n_mode == MOCK_N_HONOUR) {
        assert_true(st.multi_n > 0);
        assert_true(st.max_n <= request_n);
    }
    free_run(&r);
    mockserver_stop(m);
}

static void test_completions(void **state)
{
    (void)state;
    run_plain(0, 0, 1, MOCK_N_HONOUR);
    run_plain(0, 1, 1, MOCK_N_HONOUR);
}

static void test_chat(void **state)
{
    (void)state;
    run_plain(1, 0, 1, MOCK_N_HONOUR);
    run_plain(1, 1, 1, MOCK_N_HONOUR);
}

/* Through the chat API a tagged sample's request opens the assistant turn
 * with its tag and asks the server to continue that turn; an untagged one
 * asks for a new assistant turn. */
static void test_chat_tag_request(void **state)
{
    (void)state;
    struct mockserver *m = start(NULL);
    for (int tag = 0; tag <= 2; tag += 2) {
        struct run r;
        ssf_openai_options o = make_run_for(&r, m, 1, 1, 1, 500 + (uint64_t)tag, 1);
        r.reqs[0].tag = tag;
        generate(&o, &r);
        assert_null(r.out[0].error);
        char *body = mockserver_last_request(m);
        json_t *root = json_loads(body, 0, NULL);
        assert_non_null(root);
        json_t *msgs = json_object_get(root, "messages");
        json_t *cont = json_object_get(root, "continue_final_message");
        json_t *gen = json_object_get(root, "add_generation_prompt");
        assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
                            "user");
        if (tag == 0) {
            assert_int_equal(json_array_size(msgs), 1);
            assert_null(cont);
            assert_true(json_is_true(gen));
        } else {
            json_t *assistant = json_array_get(msgs, 1);
            assert_int_equal(json_array_size(msgs), 2);
            assert_string_equal(json_string_value(json_object_get(assistant, "role")), "assistant");
            assert_string_equal(json_string_value(json_object_get(assistant, "content")),
                                "<|im_start|><think2>\n");
            assert_true(json_is_true(cont));
            assert_true(json_is_false(gen));
        }
        json_decref(root);
        free(body);
        free_run(&r);
    }
    mockserver_stop(m);
}

/* n = 4 requests: choice i must land on the sample whose seed is seed + i. */
static void test_n_honoured(void **state)
{
    (void)state;
    run_plain(0, 0, 4, MOCK_N_HONOUR);
    run_plain(0, 1, 4, MOCK_N_HONOUR);
    run_plain(1, 1, 4, MOCK_N_HONOUR);
}

static void test_n_auto(void **state)
{
    (void)state;
    run_plain(0, 0, 0, MOCK_N_HONOUR);
    run_plain(0, 1, 0, MOCK_N_HONOUR);
}

/* TGI and Ollama answer one choice whatever n says: auto must notice and
 * send one request per sample, each with the sample's own seed. */
static void test_n_ignored_auto(void **state)
{
    (void)state;
    run_plain(0, 0, 0, MOCK_N_IGNORE);
    run_plain(1, 1, 0, MOCK_N_IGNORE);
}

/* llama.cpp refuses n != 1 with a 400 (a validating server with a 422):
 * auto falls back the same way. */
static void test_n_rejected_auto(void **state)
{
    (void)state;
    run_plain(0, 0, 0, MOCK_N_REJECT);
    run_plain(0, 1, 0, MOCK_N_REJECT);
    run_plain(0, 0, 0, MOCK_N_REJECT_422);
}

/* llama.cpp's server refuses n > 1 with a 500: the probe takes that as its
 * answer at once, not as a fault to retry with backoff. */
static void test_n_rejected_500_probe(void **state)
{
    (void)state;
    struct mockserver_options mo = {.n_mode = MOCK_N_REJECT_500};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 4, 1500, 0);
    o.request_n = 0;
    o.max_attempts = 8;
    o.max_retry_delay_s = 2;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    assert_int_equal(st.status[500], 1);
    assert_int_equal(st.multi_n, 1);
    assert_true(r.elapsed_s < 1.0);
    free_run(&r);
    mockserver_stop(m);
}

/* A fixed n the server refuses splits each group into one request a
 * sample, rather than failing every sample. */
static void test_n_rejected_fixed(void **state)
{
    (void)state;
    run_plain(0, 0, 4, MOCK_N_REJECT);
    run_plain(0, 1, 4, MOCK_N_REJECT);
    run_plain(0, 1, 4, MOCK_N_REJECT_500); /* llama.cpp's server, given --request-n 4 */
    run_plain(0, 0, 4, MOCK_N_REJECT_422); /* a 422 is a refusal of n too, not a final error */
}

/* A fixed n against a server that ignores it: short answers never count,
 * so no sample may be given another sample's text. */
static void test_n_ignored_fixed(void **state)
{
    (void)state;
    struct mockserver_options mo = {.n_mode = MOCK_N_IGNORE};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 4, 5000, 0);
    o.request_n = 4;
    generate(&o, &r);
    for (size_t i = 0; i < r.n; i++) {
        const struct outcome *o_ = &r.out[i];
        if (o_->calls != 1) describe(&r, i, "not exactly one done() call");
        assert_int_equal(o_->calls, 1);
        if (!o_->text) continue;
        char *want = mockserver_expected_text(r.reqs[i].seed, r.prompts[i]);
        if (strcmp(want, o_->text) != 0) describe(&r, i, "another sample's text");
        assert_string_equal(want, o_->text);
        free(want);
    }
    free_run(&r);
    mockserver_stop(m);
}

/* Once an answer shows that n is not honoured, later groups go out one
 * sample a request: each group sent with n would have the server generate
 * a sample only to have it thrown away.  One transfer at a time, so that
 * only the first group goes out before that answer. */
static void test_n_ignored_then_single(void **state)
{
    (void)state;
    struct mockserver_options mo = {.n_mode = MOCK_N_IGNORE};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 4, 5100, 0);
    o.request_n = 4;
    o.concurrency = 1;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    assert_int_equal(st.multi_n, 1);
    assert_int_equal(st.generations, r.n + 1);
    free_run(&r);
    mockserver_stop(m);
}

/* A server behind a certificate of one's own CA (a vLLM behind a company's
 * gateway): every sample fails at once, not retried, naming the fix, until
 * SSL_CERT_FILE names that CA; then the run goes through. */
static void test_https_own_ca(void **state)
{
    (void)state;
    ssf_buf tls = {0}, ca = {0};
    ssf_buf_printf(&tls, "%s/tests/fixtures/tls", getenv("SSFTEVAL_SOURCE_ROOT"));
    ssf_buf_printf(&ca, "%s/ca.pem", tls.data);
    struct mockserver_options mo = {.tls_dir = tls.data};
    struct mockserver *m = start(&mo);
    unsetenv("CURL_CA_BUNDLE");
    unsetenv("SSL_CERT_DIR");
    unsetenv("SSL_CERT_FILE");
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 2, 90, 0);
    snprintf(r.endpoint, sizeof r.endpoint, "https://127.0.0.1:%u/v1", mockserver_port(m));
    generate(&o, &r);
    char want[256];
    snprintf(want, sizeof want, "cannot trust %s: ", r.endpoint);
    expect_all_failed(&r, NULL, want);
    expect_all_failed(&r, NULL,
                      "; if a CA of your own signed its certificate, name that CA's "
                      "file in SSL_CERT_FILE");
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.out[i].attempts, 1);
    assert_int_equal(mockserver_attempts(m, r.reqs[0].seed), 0); /* no request got through */
    free_run(&r);

    setenv("SSL_CERT_FILE", ca.data, 1);
    o = make_run_for(&r, m, 1, 1, 2, 90, 0);
    snprintf(r.endpoint, sizeof r.endpoint, "https://127.0.0.1:%u/v1", mockserver_port(m));
    generate(&o, &r);
    expect_all_ok(&r, 0);
    free_run(&r);
    unsetenv("SSL_CERT_FILE");
    mockserver_stop(m);
    ssf_buf_free(&tls);
    ssf_buf_free(&ca);
}

/* A server whose certificate the trusted CA signed for another name (an
 * endpoint given by its address, the certificate made for its DNS name):
 * the fix named is the name in the URL, not a CA file that already holds
 * the right CA. */
static void test_https_other_name(void **state)
{
    (void)state;
    ssf_buf tls = {0}, ca = {0};
    ssf_buf_printf(&tls, "%s/tests/fixtures/tls/other-name", getenv("SSFTEVAL_SOURCE_ROOT"));
    ssf_buf_printf(&ca, "%s/tests/fixtures/tls/ca.pem", getenv("SSFTEVAL_SOURCE_ROOT"));
    struct mockserver_options mo = {.tls_dir = tls.data};
    struct mockserver *m = start(&mo);
    unsetenv("CURL_CA_BUNDLE");
    unsetenv("SSL_CERT_DIR");
    setenv("SSL_CERT_FILE", ca.data, 1);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 2, 90, 0);
    snprintf(r.endpoint, sizeof r.endpoint, "https://127.0.0.1:%u/v1", mockserver_port(m));
    generate(&o, &r);
    expect_all_failed(&r, NULL,
                      "; its certificate is not for the host in the URL: give the server by "
                      "a name its certificate names");
    for (size_t i = 0; i < r.n; i++)
        assert_null(strstr(r.out[i].error, "CA"));
    free_run(&r);
    unsetenv("SSL_CERT_FILE");
    mockserver_stop(m);
    ssf_buf_free(&tls);
    ssf_buf_free(&ca);
}

/* The request carries every sampling parameter and the sample's seed. */
static void test_request_fields(void **state)
{
    (void)state;
    struct mockserver *m = start(NULL);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 1, 77, 0);
    generate(&o, &r);
    expect_all_ok(&r, 0);
    char *body = mockserver_last_request(m);
    assert_non_null(body);
    json_t *root = json_loads(body, 0, NULL);
    assert_non_null(root);
    static const char *const fields[] = {
        "model", "prompt", "seed", "temperature", "top_p", "top_k", "min_p", "max_tokens", "n"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!json_object_get(root, fields[i]))
            fail_msg("request lacks \"%s\": %s", fields[i], body);
    assert_int_equal(json_integer_value(json_object_get(root, "seed")), 77);
    assert_int_equal(json_integer_value(json_object_get(root, "top_k")), 20);
    assert_int_equal(json_integer_value(json_object_get(root, "max_tokens")), 4096);
    assert_true(json_is_array(json_object_get(root, "stop"))); /* none, said so */
    assert_int_equal(json_array_size(json_object_get(root, "stop")), 0);
    /* the tags and <think> markers stay in the text, and the prompt is
     * taken as rendered, its special tokens not added to */
    assert_true(json_is_false(json_object_get(root, "skip_special_tokens")));
    assert_true(json_is_false(json_object_get(root, "add_special_tokens")));
    json_decref(root);
    free(body);
    free_run(&r);

    /* --stop strings go out as the request's "stop". */
    static const char *const stops[] = {"</answer>", "\n\nQ:"};
    o = make_run_for(&r, m, 1, 1, 1, 77, 0);
    o.stop_strings = stops;
    o.n_stop_strings = 2;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    body = mockserver_last_request(m);
    root = json_loads(body, 0, NULL);
    json_t *sent = json_object_get(root, "stop");
    assert_int_equal(json_array_size(sent), 2);
    assert_string_equal(json_string_value(json_array_get(sent, 0)), "</answer>");
    assert_string_equal(json_string_value(json_array_get(sent, 1)), "\n\nQ:");
    json_decref(root);
    free(body);
    free_run(&r);
    mockserver_stop(m);
}

/* A run of samples with top_k off against a server of `dialect`; the
 * server's last request body, parsed. */
static json_t *run_dialect(enum mock_dialect dialect, int chat, int tags, double min_p,
                           struct run *r)
{
    struct mockserver_options mo = {.dialect = dialect};
    struct mockserver *m = start(&mo);
    ssf_openai_options o = make_run_for(r, m, 2, tags, 2, 600, chat);
    for (size_t i = 0; i < r->n; i++) {
        r->reqs[i].sampling.top_k = 0;
        r->reqs[i].sampling.min_p = min_p;
    }
    generate(&o, r);
    char *body = mockserver_last_request(m);
    json_t *root = body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    mockserver_stop(m);
    return root;
}

/* Which request fields a server takes is probed once: vLLM's spelling of
 * top_k off (-1), llama-cpp-python's (0), or OpenAI's own fields only. */
static void test_server_fields(void **state)
{
    (void)state;
    struct run r;
    json_t *last = run_dialect(MOCK_DIALECT_VLLM, 0, 1, 0.05, &r);
    expect_all_ok(&r, 0);
    assert_int_equal(json_integer_value(json_object_get(last, "top_k")), -1);
    json_decref(last);
    free_run(&r);

    last = run_dialect(MOCK_DIALECT_LLAMA_PY, 0, 1, 0.05, &r);
    expect_all_ok(&r, 0);
    assert_int_equal(json_integer_value(json_object_get(last, "top_k")), 0);
    json_decref(last);
    free_run(&r);

    last = run_dialect(MOCK_DIALECT_OPENAI, 1, 1, 0, &r);
    expect_all_ok(&r, 0);
    static const char *const extensions[] = {"top_k",
                                             "min_p",
                                             "stop",
                                             "skip_special_tokens",
                                             "add_special_tokens",
                                             "add_generation_prompt"};
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++)
        if (json_object_get(last, extensions[i]))
            fail_msg("a strict server was sent \"%s\"", extensions[i]);
    assert_non_null(json_object_get(last, "seed"));
    json_decref(last);
    free_run(&r);

    /* min_p on, or an SSFT tag to continue: such samples cannot be sent. */
    json_decref(run_dialect(MOCK_DIALECT_OPENAI, 1, 1, 0.05, &r));
    expect_all_failed(&r, NULL, "no min_p; drop --min-p");
    free_run(&r);
    json_decref(run_dialect(MOCK_DIALECT_OPENAI, 1, 2, 0, &r));
    for (size_t i = 0; i < r.n; i++) {
        const struct outcome *o = &r.out[i];
        int bad = r.reqs[i].tag ? !o->error || !strstr(o->error, "SSFT tag") : o->error != NULL;
        if (bad) {
            describe(&r, i, "tagged samples must fail naming the tag, the others succeed");
            fail_msg("sample %zu", i);
        }
    }
    free_run(&r);
}

/* model NULL: the backend asks /v1/models which id the server serves. */
static void test_model_discovery(void **state)
{
    (void)state;
    struct mockserver_options mo = {.model = "served-elsewhere"};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 1, 4, 300, 0);
    o.model = NULL;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    assert_true(st.models >= 1);
    free_run(&r);
    mockserver_stop(m);
}

/* A server that lists no model is named, with the fix, before anything is
 * generated (ssf_backend_openai_model, which run asks first). */
static void test_model_discovery_none(void **state)
{
    (void)state;
    struct mockserver_options mo = {.no_models = 1};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 1, 350, 0);
    o.model = NULL;
    ssf_backend *b = new_backend(&o);
    ssf_error err = {0};
    assert_null(ssf_backend_openai_model(b, &err));
    assert_non_null(strstr(err.msg, "no --model given, and asking the server failed: "));
    assert_non_null(strstr(err.msg, "/v1/models lists no model; pass --model NAME"));
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    assert_int_equal(st.generations, 0);
    b->destroy(b);
    free_run(&r);
    mockserver_stop(m);
}

/* ---- reasoning and finish_reason ---------------------------------------- */

static void run_reasoning(enum mock_reasoning mode, int stream)
{
    struct mockserver_options mo = {.reasoning = mode};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 4, 2000, 1);
    o.stream = stream;
    generate(&o, &r);
    expect_all_ok(&r, 1);
    free_run(&r);
    mockserver_stop(m);
}

static void test_reasoning_fields(void **state)
{
    (void)state;
    run_reasoning(MOCK_REASONING_CONTENT, 0);
    run_reasoning(MOCK_REASONING_CONTENT, 1);
    run_reasoning(MOCK_REASONING_FIELD, 0);
    run_reasoning(MOCK_REASONING_FIELD, 1);
}

/* lm-eval #3244: empty (or null) content with "length" is a wrong answer to
 * store, not an error to retry. */
static void run_length_empty(int chat, int stream, enum mock_reasoning mode)
{
    struct mockserver_options mo = {.reasoning = mode, .rules = {{.fault = MOCK_LENGTH_EMPTY}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 1, 4, 3000, chat);
    o.stream = stream;
    generate(&o, &r);
    assert_int_equal(r.rc, 0);
    for (size_t i = 0; i < r.n; i++) {
        const struct outcome *x = &r.out[i];
        if (x->calls != 1 || x->error || !x->text || strcmp(x->text, "") != 0 || !x->finish ||
            strcmp(x->finish, "length") != 0 || mockserver_attempts(m, r.reqs[i].seed) != 1) {
            describe(&r, i, "empty length answer not delivered once as a result");
            fail_msg("sample %zu (chat %d stream %d): server saw %u attempts", i, chat, stream,
                     mockserver_attempts(m, r.reqs[i].seed));
        }
        if (chat && mode != MOCK_REASONING_OFF) {
            char *reasoning, *content;
            mockserver_expected(r.reqs[i].seed, r.users[i], &reasoning, &content);
            if (!x->reasoning || strcmp(x->reasoning, reasoning) != 0)
                fail_msg("sample %zu: reasoning lost with null content: %s", i,
                         x->reasoning ? x->reasoning : "(null)");
            free(reasoning);
            free(content);
        }
    }
    free_run(&r);
    mockserver_stop(m);
}

static void test_length_empty(void **state)
{
    (void)state;
    run_length_empty(0, 0, MOCK_REASONING_OFF);
    run_length_empty(0, 1, MOCK_REASONING_OFF);
    run_length_empty(1, 0, MOCK_REASONING_CONTENT);
    run_length_empty(1, 1, MOCK_REASONING_FIELD);
}

/* ---- retries ------------------------------------------------------------- */

/* The first two attempts of every seed fail with `fault`; the third must
 * succeed and be the only result. */
static void run_transient(enum mock_fault fault, int stream)
{
    struct mockserver_options mo = {.rules = {{.fault = fault, .count = 2}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 6, 4000, 0);
    o.stream = stream;
    generate(&o, &r);
    if (r.rc != 0 || r.out[0].error)
        fprintf(stderr, "fault %d stream %d: rc %d, first error %s\n", (int)fault, stream, r.rc,
                r.out[0].error ? r.out[0].error : "(none)");
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 3);
    free_run(&r);
    mockserver_stop(m);
}

static void test_retry_transient(void **state)
{
    (void)state;
    static const enum mock_fault faults[] = {MOCK_500,          MOCK_503,       MOCK_TGI_429,
                                             MOCK_RESET,        MOCK_TRUNCATED, MOCK_INVALID_JSON,
                                             MOCK_STREAM_ERROR, MOCK_ABORT,     MOCK_NO_CHOICES};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        run_transient(faults[i], 0);
        run_transient(faults[i], 1);
    }
}

/* A stream that reaches [DONE] with no finish_reason lost its end on the
 * way (a proxy, a worker that died between events), so it is retried; a
 * non-streaming body that parsed whole is the whole generation even when
 * the server leaves finish_reason null, and is kept at once. */
static void test_no_finish_reason(void **state)
{
    (void)state;
    run_transient(MOCK_NO_FINISH, 1);
    struct mockserver_options mo = {.rules = {{.fault = MOCK_NO_FINISH}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 6, 4100, 0);
    generate(&o, &r);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 1);
    for (size_t i = 0; i < r.n; i++)
        assert_null(r.out[i].finish);
    free_run(&r);
    mockserver_stop(m);
}

static long long words(const char *s)
{
    long long n = 0;
    for (int in = 0; *s; s++) {
        int space = *s == ' ' || *s == '\n';
        n += !space && !in;
        in = !space;
    }
    return n;
}

/* A sample asked alone gets the server's token counts (the mock counts
 * words); one of n > 1 gets -1, since usage covers the whole request. */
static void test_token_usage(void **state)
{
    (void)state;
    struct mockserver *m = start(NULL);
    for (int stream = 0; stream <= 1; stream++)
        for (int n = 1; n <= 4; n += 3) {
            struct run r;
            ssf_openai_options o =
                make_run_for(&r, m, 1, 1, 4, 4800 + (uint64_t)(10 * stream + n), 0);
            o.stream = stream;
            o.request_n = n;
            generate(&o, &r);
            expect_all_ok(&r, 0);
            for (size_t i = 0; i < r.n; i++) {
                if (n == 1) {
                    assert_int_equal(r.out[i].prompt_tokens, words(r.prompts[i]));
                    assert_true(r.out[i].completion_tokens >= words(r.out[i].text));
                } else {
                    assert_int_equal(r.out[i].prompt_tokens, -1);
                    assert_int_equal(r.out[i].completion_tokens, -1);
                }
            }
            free_run(&r);
        }
    mockserver_stop(m);
}

/* No more requests in flight than --concurrency, each on its connection:
 * 12 samples answered 200 ms late, 3 at a time, take 4 rounds. */
static void test_concurrency_cap(void **state)
{
    (void)state;
    struct mockserver_options mo = {.slow_ms = 200, .rules = {{.fault = MOCK_SLOW}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 12, 4700, 0);
    o.concurrency = 3;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    assert_true(st.peak_connections >= 2 && st.peak_connections <= 3);
    assert_true(r.elapsed_s >= 0.75);
    free_run(&r);
    mockserver_stop(m);
}

/* A server that answered and keeps failing gets max_attempts tries a
 * sample, no more, and each failure says so with the last cause. */
static void run_persistent(enum mock_fault fault, int stream, const char *cause)
{
    struct mockserver_options mo = {.rules = {{.fault = fault}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 4, 4500, 0);
    o.max_attempts = 3;
    o.stream = stream;
    generate(&o, &r);
    expect_attempts(&r, m, 3);
    for (size_t i = 0; i < r.n; i++) {
        assert_null(r.out[i].text);
        assert_non_null(r.out[i].error);
        assert_true(strncmp(r.out[i].error, "gave up after 3 attempts: ", 26) == 0);
        assert_non_null(strstr(r.out[i].error, cause));
    }
    free_run(&r);
    mockserver_stop(m);
}

static void test_retry_gives_up(void **state)
{
    (void)state;
    run_persistent(MOCK_503, 0, "HTTP 503");
    run_persistent(MOCK_500, 0, "HTTP 500");
    run_persistent(MOCK_NO_FINISH, 1, "ended without a finish_reason");
}

/* 429 with a wait the server names: the retry waits at least that long,
 * though it is longer than max_retry_delay_s. */
static void run_retry_after(double after_s, unsigned after_ms, double want_s)
{
    struct mockserver_options mo = {.retry_after_s = after_s,
                                    .retry_after_ms = after_ms,
                                    .rules = {{.fault = MOCK_429, .count = 1}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 8, 6000, 0);
    generate(&o, &r);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 2);
    if (r.elapsed_s < want_s || r.elapsed_s > want_s + 2.0)
        fail_msg("Retry-After %g s / retry-after-ms %u: took %.3f s, want about %.3f s", after_s,
                 after_ms, r.elapsed_s, want_s);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    assert_int_equal(st.status[429], r.n);
    free_run(&r);
    mockserver_stop(m);
}

static void test_retry_after(void **state)
{
    (void)state;
    run_retry_after(1, 0, 1.0);
    /* retry-after-ms is the finer value and wins (openai-python). */
    run_retry_after(0, 400, 0.4);
    run_retry_after(5, 300, 0.3);
}

/* Without a Retry-After the waits are openai-python's, 0.5 s and then 1 s
 * (each shortened by up to a quarter), capped by max_retry_delay_s. */
static void test_backoff_delays(void **state)
{
    (void)state;
    struct mockserver_options mo = {.rules = {{.fault = MOCK_500, .count = 2}}};
    struct mockserver *m = start(&mo);
    static const struct {
        double cap, lo, hi; /* the two waits: [0.375, 0.5] + [0.75, 1]; [0.225, 0.3] twice */
    } cases[] = {{60, 1.12, 2.1}, {0.3, 0.44, 1.0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        ssf_openai_options o = make_run_for(&r, m, 1, 1, 1, 6100 + i, 0);
        o.max_retry_delay_s = cases[i].cap;
        generate(&o, &r);
        expect_all_ok(&r, 0);
        expect_attempts(&r, m, 3);
        if (r.elapsed_s < cases[i].lo || r.elapsed_s > cases[i].hi)
            fail_msg("two retries under a cap of %g s: took %.3f s, want %g to %g s", cases[i].cap,
                     r.elapsed_s, cases[i].lo, cases[i].hi);
        free_run(&r);
    }
    mockserver_stop(m);
}

/* A retry its server told to wait holds up only itself: the other
 * samples' retries, due sooner, go first (even seeds get a 429 with
 * Retry-After: 2, odd ones a 500 and the short backoff). */
static void test_retry_waits_apart(void **state)
{
    (void)state;
    struct mockserver_options mo = {.retry_after_s = 2,
                                    .rules = {{.fault = MOCK_429, .count = 1, .mod = 2, .rem = 0},
                                              {.fault = MOCK_500, .count = 1, .mod = 2, .rem = 1}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 8, 6200, 0);
    generate(&o, &r);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 2);
    for (size_t i = 0; i < r.n; i++) {
        int told = r.reqs[i].seed % 2 == 0;
        if (told ? r.out[i].done_s < 1.9 : r.out[i].done_s > 1.5) {
            describe(&r, i, told ? "retried before its Retry-After" : "waited for another's");
            fail_msg("sample %zu done after %.3f s", i, r.out[i].done_s);
        }
    }
    free_run(&r);
    mockserver_stop(m);
}

/* Bytes stop mid-stream for longer than the idle timeout: the attempt is
 * abandoned well before the stall ends and retried. */
static void test_stall_stream(void **state)
{
    (void)state;
    struct mockserver_options mo = {.stall_ms = 20000,
                                    .rules = {{.fault = MOCK_STALL, .count = 1}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 2, 4, 7000, 0);
    o.stream = 1;
    o.timeout_s = 1;
    generate(&o, &r);
    fprintf(stderr, "stalled stream: %.3f s\n", r.elapsed_s);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 2);
    /* The progress callback ends it at the idle limit (it took 1.0 s);
     * libcurl's low-speed check alone, which averages over a 5 s window,
     * took 6 to 7 s.  The stall itself lasts 20 s. */
    if (r.elapsed_s < 0.9 || r.elapsed_s > 3.5)
        fail_msg("stalled stream: took %.3f s with a 1 s idle timeout and a 20 s stall",
                 r.elapsed_s);
    free_run(&r);
    mockserver_stop(m);
}

/* Non-streaming: timeout_s bounds each attempt. */
static void test_stall_plain(void **state)
{
    (void)state;
    struct mockserver_options mo = {.stall_ms = 20000,
                                    .rules = {{.fault = MOCK_STALL, .count = 1}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 4, 7100, 0);
    o.timeout_s = 1;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 2);
    if (r.elapsed_s < 0.9 || r.elapsed_s > 4.5)
        fail_msg("stalled answer: took %.3f s with a 1 s timeout and a 20 s stall", r.elapsed_s);
    free_run(&r);
    mockserver_stop(m);
}

/* Slow tokens keep bytes flowing: the idle timeout must not fire although
 * the whole stream takes longer than it. */
static void test_slow_tokens(void **state)
{
    (void)state;
    struct mockserver_options mo = {.token_delay_ms = 250, .chunks = 8}; /* about 2.5 s */
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 4, 7200, 0);
    o.stream = 1;
    o.timeout_s = 1;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 1);
    assert_true(r.elapsed_s > 1.0);
    free_run(&r);
    mockserver_stop(m);
}

/* A timeout names the limit and the fix: streaming, the idle limit; not
 * streaming, the attempt's, with streaming as the other way out. */
static void test_timeout_messages(void **state)
{
    (void)state;
    struct mockserver_options mo = {.stall_ms = 20000, .rules = {{.fault = MOCK_STALL}}};
    struct mockserver *m = start(&mo);
    for (int stream = 0; stream <= 1; stream++) {
        struct run r;
        ssf_openai_options o = make_run_for(&r, m, 1, 1, 1, 7300 + (uint64_t)stream, 0);
        o.stream = stream;
        o.timeout_s = 1;
        o.max_attempts = 1;
        generate(&o, &r);
        char head[256];
        const char *tail = stream ? " (idle timeout); raise --timeout if the server is just slow"
                                  : "); raise --timeout or use --stream on";
        snprintf(head, sizeof head,
                 stream ? "gave up after 1 attempt: %s/completions sent nothing for 1 s"
                        : "gave up after 1 attempt: no answer from %s/completions within 1 s (",
                 r.endpoint);
        expect_all_failed(&r, m, head);
        if (strncmp(r.out[0].error, head, strlen(head)) != 0 || !strstr(r.out[0].error, tail))
            fail_msg("stream %d: %s", stream, r.out[0].error);
        free_run(&r);
    }
    mockserver_stop(m);
}

/* A stream that reached [DONE] with every choice finished is whole though
 * the connection then drops before the body's end (a proxy or a server
 * closing abruptly): kept, not asked again. */
static void test_done_then_drop(void **state)
{
    (void)state;
    struct mockserver_options mo = {.rules = {{.fault = MOCK_DONE_DROP}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 2, 4, 7400, 0);
    o.stream = 1;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    expect_attempts(&r, m, 1);
    free_run(&r);
    mockserver_stop(m);
}

/* ---- errors that must not be retried ------------------------------------ */

static void run_fatal(enum mock_fault fault, int stream, const char *needle)
{
    struct mockserver_options mo = {.rules = {{.fault = fault}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 1, 5, 8000, 0);
    o.stream = stream;
    generate(&o, &r);
    expect_all_failed(&r, m, needle);
    free_run(&r);
    mockserver_stop(m);
}

static void test_not_retried(void **state)
{
    (void)state;
    run_fatal(MOCK_400, 0, "maximum context length");
    run_fatal(MOCK_400, 1, "maximum context length");
    run_fatal(MOCK_QUOTA, 0, "quota");
    run_fatal(MOCK_QUOTA, 1, "quota");
    run_fatal(MOCK_FILTERED, 0, "content_filter");
    run_fatal(MOCK_FILTERED, 1, "content_filter");
    /* a refusal after HTTP 200 (in a stream, or as the body) is final too */
    run_fatal(MOCK_REFUSED_IN_BAND, 0, "maximum context length");
    run_fatal(MOCK_REFUSED_IN_BAND, 1, "maximum context length");
    /* Refusals that the command line causes name the option that fixes them. */
    run_fatal(MOCK_401, 0,
              "Incorrect API key provided: sk-wrong. You can find your API key at "
              "https://platform.openai.com/account/api-keys; set OPENAI_API_KEY or name the "
              "variable with --api-key-env");
    run_fatal(MOCK_401, 1, "HTTP 401 from");
    run_fatal(MOCK_403, 0,
              "does not have access to model `mock-model`; set OPENAI_API_KEY or name the "
              "variable with --api-key-env");
}

/* A key, or an endpoint's user:password, that a server or proxy echoes back
 * in its error text is hidden in the samples' errors, which are stored and
 * printed.  (The mock's 401 repeats the key "sk-wrong".) */
static void test_echoed_secrets_hidden(void **state)
{
    (void)state;
    struct mockserver_options mo = {.rules = {{.fault = MOCK_401}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 1, 5, 8000, 0);
    o.api_key = "sk-wrong";
    generate(&o, &r);
    expect_all_failed(&r, m, "Incorrect API key provided: ***. You can find");
    free_run(&r);
    /* A key so long that the server's text is cut inside it. */
    char long_key[701] = "sk-";
    memset(long_key + 3, 'k', sizeof long_key - 4);
    o = make_run_for(&r, m, 1, 1, 5, 20000, 0);
    o.api_key = long_key;
    generate(&o, &r);
    expect_all_failed(&r, m, "Incorrect API key provided: ***...");
    assert_null(strstr(r.out[0].error, "sk-k"));
    free_run(&r);
    /* No server: the endpoint's password goes into "cannot reach ..." */
    o = make_run_for(&r, NULL, 1, 1, 5, 8000, 0);
    o.endpoint = "http://user:pw-TESTSECRET@127.0.0.1:1/v1";
    o.max_attempts = 1;
    generate(&o, &r);
    expect_all_failed(&r, NULL, "cannot reach http://***@127.0.0.1:1/v1");
    assert_null(strstr(r.out[0].error, "TESTSECRET"));
    free_run(&r);
    mockserver_stop(m);
}

/* A server that takes the request and closes without a word was reached:
 * the failure is the request's, not "cannot reach ...; is the server
 * running?", which would send the user to look for a server that runs. */
static void test_hangup_is_not_unreachable(void **state)
{
    (void)state;
    struct mockserver_options mo = {.rules = {{.fault = MOCK_HANGUP}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 5, 8100, 0);
    o.max_attempts = 1;
    generate(&o, &r);
    expect_all_failed(&r, m, "/v1/completions failed: ");
    assert_null(strstr(r.out[0].error, "cannot reach"));
    free_run(&r);
    mockserver_stop(m);
}

/* Samples whose responses never end, streamed and not, under the two
 * caps: each must fail saying needle, after one attempt (expect_all_failed). */
static void run_endless(int samples, size_t max_response, size_t max_held, const char *needle)
{
    for (int stream = 0; stream <= 1; stream++) {
        struct mockserver_options mo = {.rules = {{.fault = MOCK_ENDLESS}}};
        struct mockserver *m = start(&mo);
        struct run r;
        ssf_openai_options o = make_run_for(&r, m, 1, 1, samples, 8000, 0);
        o.stream = stream;
        o.max_attempts = 3;
        o.timeout_s = 60;
        o.max_response_bytes = max_response;
        o.max_held_bytes = max_held;
        generate(&o, &r);
        expect_all_failed(&r, m, needle);
        free_run(&r);
        mockserver_stop(m);
    }
}

/* A response without end ends as a failed sample once it passes
 * max_response_bytes (1 MiB here, 256 MiB by default), and is not asked
 * again. */
static void test_endless_response(void **state)
{
    (void)state;
    run_endless(5, (size_t)1 << 20, 0, "a response of more than 1 MiB from the server");
}

/* A cap that is not whole MiB is said in bytes, not rounded down to a
 * figure the response did not pass. */
static void test_endless_response_cap_in_bytes(void **state)
{
    (void)state;
    run_endless(5, 1500000, 0, "a response of more than 1500000 bytes from the server");
    run_endless(8, (size_t)1 << 30, ((size_t)4 << 20) + 1,
                "responses held at once past 4194305 bytes in all from the server");
}

/* Many responses that each stay under max_response_bytes still end once
 * what they hold together passes max_held_bytes, and are not asked again. */
static void test_endless_responses_together(void **state)
{
    (void)state;
    run_endless(8, (size_t)1 << 30, (size_t)4 << 20,
                "responses held at once past 4 MiB in all from the server");
}

/* The cap counts responses in flight, not those over: a sample answered
 * after another has finished does not fail for what that one held (here
 * each answer is about 420 bytes, over half the cap).  Seed 8001 is
 * answered half a second after 8000. */
static void test_held_counts_in_flight_only(void **state)
{
    (void)state;
    struct mockserver_options mo = {.rules = {{.fault = MOCK_SLOW, .mod = 2, .rem = 1}},
                                    .slow_ms = 500};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 2, 8000, 0);
    o.concurrency = 2;
    o.max_held_bytes = 600;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    free_run(&r);
    mockserver_stop(m);
}

/* A model the server does not serve: 404, never retried, and the message
 * points at --endpoint and --model. */
static void test_not_found(void **state)
{
    (void)state;
    struct mockserver_options mo = {.model = "served-elsewhere"};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 1, 3, 8500, 0);
    generate(&o, &r);
    char needle[256];
    snprintf(needle, sizeof needle,
             "HTTP 404 from %s/completions: The model `mock-model` does not exist; check "
             "--endpoint (%s) and --model",
             r.endpoint, r.endpoint);
    expect_all_failed(&r, NULL, needle); /* the mock counts no attempt of a 404 */
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.out[i].attempts, 1);
    free_run(&r);
    mockserver_stop(m);
}

/* Nothing listens on port 1: every sample fails, naming the endpoint, and
 * soon (two attempts, short backoff). */
static void test_unreachable(void **state)
{
    (void)state;
    struct run r;
    ssf_openai_options o = make_run_for(&r, NULL, 2, 2, 5, 9000, 0);
    snprintf(r.endpoint, sizeof r.endpoint, "http://127.0.0.1:1/v1");
    o.max_attempts = 2;
    generate(&o, &r);
    expect_all_failed(&r, NULL, "127.0.0.1:1");
    if (r.elapsed_s > 5.0) fail_msg("unreachable endpoint: took %.3f s", r.elapsed_s);
    free_run(&r);
    /* The default attempts too: a port where nothing ever answered is named
     * after two tries, not after a minute of backoff (it took 55 s). */
    o = make_run_for(&r, NULL, 2, 2, 5, 9000, 0);
    snprintf(r.endpoint, sizeof r.endpoint, "http://127.0.0.1:1/v1");
    o.max_attempts = 8;
    o.max_retry_delay_s = 60; /* the default: backoff 0.5, 1, 2, 4, 8 ... s */
    generate(&o, &r);
    expect_all_failed(&r, NULL, "127.0.0.1:1");
    if (r.elapsed_s > 5.0) fail_msg("unreachable endpoint, 8 attempts: took %.3f s", r.elapsed_s);
    free_run(&r);
}

/* The server goes away mid-run and is back on the same port a second
 * later, as a restarted vLLM is: it answered before, so its samples keep
 * every attempt (production backoff), and each is done once, none failed. */
struct restarter {
    struct mockserver_options mo;
    struct mockserver *m, *again; /* m NULL: already stopped */
    unsigned up_ms, down_ms;      /* m serves for up_ms, then is gone for down_ms */
    ssf_error err;
};

static void nap_ms(unsigned ms)
{
    struct timespec nap = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&nap, NULL);
}

static void *restart_later(void *arg)
{
    struct restarter *c = arg;
    nap_ms(c->up_ms);
    if (c->m) mockserver_stop(c->m);
    nap_ms(c->down_ms);
    c->again = mockserver_start(&c->mo, &c->err);
    return NULL;
}

static void test_server_restart(void **state)
{
    (void)state;
    struct restarter c = {.mo = {.delay_ms = 100}, .up_ms = 300, .down_ms = 1000};
    c.m = start(&c.mo);
    c.mo.port = mockserver_port(c.m);
    struct run r;
    ssf_openai_options o = make_run_for(&r, c.m, 2, 2, 6, 9700, 0), def;
    ssf_openai_options_default(&def);
    o.max_attempts = def.max_attempts;
    o.max_retry_delay_s = def.max_retry_delay_s;
    o.concurrency = 4;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, restart_later, &c), 0);
    generate(&o, &r);
    pthread_join(t, NULL);
    if (!c.again) fail_msg("restart on port %u: %s", c.mo.port, c.err.msg);
    struct mockserver_stats st;
    mockserver_get_stats(c.again, &st);
    fprintf(stderr, "restart: %.2f s, %zu of %zu samples after it\n", r.elapsed_s, st.choices, r.n);
    expect_all_ok(&r, 0);
    assert_true(st.choices > 0 && st.choices < r.n); /* it did go away mid-run */
    free_run(&r);
    mockserver_stop(c.again);
}

/* A server that answered once, then refuses connections for longer than
 * the samples' attempts last (2 attempts, 50 ms apart): the failures from
 * the 20th on, which open the breaker, are the outage's and not charged,
 * so every sample waits for /health and succeeds once the server is back.
 * 19 samples: their first attempts are the 19 failures charged before the
 * breaker trips, so the 20th is a second attempt that, charged, would be
 * the sample's last. */
/* The backend's notices, joined by newlines. */
static void collect_notice(const char *line, void *ud)
{
    ssf_buf_printf(ud, "%s\n", line);
}

static void expect_notice(const ssf_buf *said, const char *needle)
{
    if (!said->data || !strstr(said->data, needle))
        fail_msg("no notice with '%s' in: %s", needle, said->data ? said->data : "(none)");
}

static void test_breaker_refunds_attempts(void **state)
{
    (void)state;
    struct restarter c = {.down_ms = 600};
    struct mockserver *m = start(&c.mo);
    c.mo.port = mockserver_port(m);
    struct run warm, r;
    make_run(&warm, 1, 1, 1, 9800, 0);
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 19, 9900, 0);
    o.max_attempts = 2;
    ssf_backend *b = new_backend(&o);
    ssf_buf said = {0};
    b->notice = collect_notice;
    b->notice_ud = &said;
    generate_on(b, &warm); /* the server has answered */
    expect_all_ok(&warm, 0);
    assert_null(said.data); /* nothing to say while it answers */
    mockserver_stop(m);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, restart_later, &c), 0);
    generate_on(b, &r);
    pthread_join(t, NULL);
    b->destroy(b);
    /* the outage is named when it begins, and when it ends */
    expect_notice(&said, " stopped answering (20 connections failed in a row): requests paused, "
                         "waiting up to 900 s for it to answer again (--outage-wait)");
    expect_notice(&said, " answers again after ");
    ssf_buf_free(&said);
    if (!c.again) fail_msg("restart on port %u: %s", c.mo.port, c.err.msg);
    struct mockserver_stats st;
    mockserver_get_stats(c.again, &st);
    fprintf(stderr, "breaker refund: %.2f s, %zu /health polls, %zu of %zu samples after it\n",
            r.elapsed_s, st.health, st.choices, r.n);
    expect_all_ok(&r, 0);
    assert_int_equal(st.choices, r.n); /* none was answered before the outage ended */
    assert_true(st.health >= 1);       /* the breaker waited on /health */
    free_run(&warm);
    free_run(&r);
    mockserver_stop(c.again);
}

/* A server that answered, then is gone for good: the breaker waits
 * outage_wait_s, says so, and the samples fail as their attempts run out
 * (900 s of silence with the default before it said anything). */
static void test_outage_wait(void **state)
{
    (void)state;
    struct mockserver *m = start(&(struct mockserver_options){0});
    struct run warm, r;
    make_run(&warm, 1, 1, 1, 9850, 0);
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 19, 9950, 0);
    o.max_attempts = 2;
    o.outage_wait_s = 0.3;
    ssf_backend *b = new_backend(&o);
    ssf_buf said = {0};
    b->notice = collect_notice;
    b->notice_ud = &said;
    generate_on(b, &warm);
    expect_all_ok(&warm, 0);
    mockserver_stop(m);
    generate_on(b, &r);
    b->destroy(b);
    fprintf(stderr, "outage wait: %.2f s\n", r.elapsed_s);
    expect_all_failed(&r, NULL, NULL);
    expect_notice(&said, "waiting up to 0.3 s for it to answer again");
    expect_notice(&said, " did not answer for 0 s: its remaining samples fail as their attempts "
                         "run out; rerun the command once it is back");
    assert_true(r.elapsed_s < 60);
    ssf_buf_free(&said);
    free_run(&warm);
    free_run(&r);
}

/* Many connections reset in a row, from a server that answered before,
 * open the circuit breaker: traffic pauses while /health is polled (503
 * "loading" twice), then every sample still succeeds.  The second batch
 * reuses the first one's seeds, whose attempts 1 to 4 are reset. */
/* One breaker scenario on a fresh mock; the number of /health polls. */
static size_t breaker_scenario(void)
{
    struct mockserver_options mo = {.health_fail = 2,
                                    .rules = {{.fault = MOCK_RESET, .from = 1, .count = 4}}};
    struct mockserver *m = start(&mo);
    struct run warm, r;
    make_run(&warm, 2, 2, 8, 9500, 0);
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 8, 9500, 0);
    o.max_attempts = 8; /* failures before the breaker trips are charged to samples */
    /* one request (one fault key) per sample: 16 keys failing 4 times each
     * give far more than 20 failures before any key can succeed, even when
     * a slow (sanitized) build spreads the retries out */
    o.request_n = 1;
    ssf_backend *b = new_backend(&o);
    generate_on(b, &warm);
    expect_all_ok(&warm, 0);
    generate_on(b, &r);
    b->destroy(b);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    fprintf(stderr, "breaker: %.2f s, %zu /health polls, %zu resets\n", r.elapsed_s, st.health,
            st.resets);
    expect_all_ok(&r, 0);
    free_run(&warm);
    free_run(&r);
    mockserver_stop(m);
    return st.health;
}

/* 20 connection failures in a row open the breaker, which polls /health.
 * Whether 20 land in a row depends on how the resets interleave with the
 * retries' successes (libcurl may also resend once on a reused connection),
 * so the scenario gets three tries: a breaker that never opens fails all. */
static void test_breaker(void **state)
{
    (void)state;
    size_t polls = 0;
    for (int try = 0; try < 3 && polls == 0; try++)
        polls = breaker_scenario();
    assert_true(polls >= 1); /* only the breaker asks /health */
}

/* One slow request must not hold up the others: libcurl's PIPEWAIT makes
 * every transfer wait for the first connection's answer before opening
 * more, which on HTTP/1.1 serializes the start of a run behind its first
 * request (and charges the wait to each transfer's timeout). */
static void test_no_head_of_line(void **state)
{
    (void)state;
    struct mockserver_options mo = {.slow_ms = 2000,
                                    .rules = {{.fault = MOCK_SLOW, .mod = 1000, .rem = 0}}};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 1, 1, 16, 12000, 0); /* only seed 12000 is slow */
    generate(&o, &r);
    expect_all_ok(&r, 0);
    if (r.out[0].order != r.n - 1)
        fail_msg("the slow sample finished %zu of %zu: the others waited for it",
                 r.out[0].order + 1, r.n);
    free_run(&r);
    mockserver_stop(m);
}

/* ---- stopping ------------------------------------------------------------ */

struct timer {
    volatile int *flag;
    unsigned ms;
};

static void *raise_flag(void *arg)
{
    struct timer *t = arg;
    usleep(t->ms * 1000u);
    *t->flag = 1;
    return NULL;
}

/* SIGINT sets the flag: generate gives up promptly with -1, and no sample
 * is reported twice. */
static void test_stop_flag(void **state)
{
    (void)state;
    struct mockserver_options mo = {.delay_ms = 8000};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 4, 2, 8, 10000, 0);
    volatile int stop = 0;
    o.stop = &stop;
    struct timer t = {&stop, 300};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raise_flag, &t), 0);
    generate(&o, &r);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, -1);
    if (r.elapsed_s > 2.0) fail_msg("stop flag: generate took %.3f s to return", r.elapsed_s);
    for (size_t i = 0; i < r.n; i++) {
        if (r.out[i].calls > 1) describe(&r, i, "reported twice after stop");
        assert_true(r.out[i].calls <= 1);
        assert_null(r.out[i].text);
    }
    free_run(&r);
    mockserver_stop(m);
}

/* The flag raised while the backend still probes the server (here whether
 * n is honoured, against a server answering 8 s late): generate returns at
 * once, saying so, and reports no sample. */
static void test_stop_flag_while_probing(void **state)
{
    (void)state;
    struct mockserver_options mo = {.delay_ms = 8000};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 2, 2, 4, 10500, 0);
    o.request_n = 0;
    volatile int stop = 0;
    o.stop = &stop;
    struct timer t = {&stop, 300};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raise_flag, &t), 0);
    generate(&o, &r);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err.msg, "interrupted: 16 samples not finished");
    assert_int_equal(r.calls, 0);
    if (r.elapsed_s > 2.0) fail_msg("stop flag: generate took %.3f s to return", r.elapsed_s);
    free_run(&r);
    mockserver_stop(m);
}

/* done() returning non-zero stops the backend, which returns that value
 * and calls done() no more. */
static void test_done_stops(void **state)
{
    (void)state;
    struct mockserver_options mo = {.delay_ms = 50};
    struct mockserver *m = start(&mo);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 4, 2, 8, 11000, 0);
    r.stop_after = 5;
    o.concurrency = 4;
    generate(&o, &r);
    assert_int_equal(r.rc, 7);
    assert_int_equal(r.calls, 5);
    free_run(&r);
    mockserver_stop(m);
}

/* ---- scale -------------------------------------------------------------- */

static void test_concurrency_4096(void **state)
{
    (void)state;
    /* 4096 client and 4096 server sockets live in this one process. */
    if (mockserver_raise_fd_limit(16384) < 9000) {
        fprintf(stderr, "skipped: RLIMIT_NOFILE cannot be raised to 9000\n");
        skip();
    }
    struct mockserver *m = start(NULL);
    struct run r;
    ssf_openai_options o = make_run_for(&r, m, 64, 1, 64, 100000, 0);
    o.concurrency = 4096;
    generate(&o, &r);
    expect_all_ok(&r, 0);
    struct mockserver_stats st;
    mockserver_get_stats(m, &st);
    fprintf(stderr, "4096 requests at concurrency 4096: %.2f s, %zu connections, peak %zu\n",
            r.elapsed_s, st.connections, st.peak_connections);
    assert_int_equal(st.generations, 4096);
    free_run(&r);
    mockserver_stop(m);
}

/* ---- main ------------------------------------------------------------------ */

static void on_alarm(int sig)
{
    static const char msg[] = "test_openai: a test hung (watchdog)\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

static int arm_watchdog(void **state)
{
    (void)state;
    alarm(WATCHDOG_S);
    return 0;
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_completions, arm_watchdog),
        cmocka_unit_test_setup(test_chat, arm_watchdog),
        cmocka_unit_test_setup(test_chat_tag_request, arm_watchdog),
        cmocka_unit_test_setup(test_request_fields, arm_watchdog),
        cmocka_unit_test_setup(test_https_own_ca, arm_watchdog),
        cmocka_unit_test_setup(test_https_other_name, arm_watchdog),
        cmocka_unit_test_setup(test_server_fields, arm_watchdog),
        cmocka_unit_test_setup(test_model_discovery, arm_watchdog),
        cmocka_unit_test_setup(test_model_discovery_none, arm_watchdog),
        cmocka_unit_test_setup(test_n_honoured, arm_watchdog),
        cmocka_unit_test_setup(test_n_auto, arm_watchdog),
        cmocka_unit_test_setup(test_n_ignored_auto, arm_watchdog),
        cmocka_unit_test_setup(test_n_rejected_auto, arm_watchdog),
        cmocka_unit_test_setup(test_n_rejected_fixed, arm_watchdog),
        cmocka_unit_test_setup(test_n_rejected_500_probe, arm_watchdog),
        cmocka_unit_test_setup(test_n_ignored_fixed, arm_watchdog),
        cmocka_unit_test_setup(test_n_ignored_then_single, arm_watchdog),
        cmocka_unit_test_setup(test_reasoning_fields, arm_watchdog),
        cmocka_unit_test_setup(test_length_empty, arm_watchdog),
        cmocka_unit_test_setup(test_retry_transient, arm_watchdog),
        cmocka_unit_test_setup(test_no_finish_reason, arm_watchdog),
        cmocka_unit_test_setup(test_server_restart, arm_watchdog),
        cmocka_unit_test_setup(test_retry_gives_up, arm_watchdog),
        cmocka_unit_test_setup(test_concurrency_cap, arm_watchdog),
        cmocka_unit_test_setup(test_token_usage, arm_watchdog),
        cmocka_unit_test_setup(test_retry_after, arm_watchdog),
        cmocka_unit_test_setup(test_backoff_delays, arm_watchdog),
        cmocka_unit_test_setup(test_retry_waits_apart, arm_watchdog),
        cmocka_unit_test_setup(test_stall_stream, arm_watchdog),
        cmocka_unit_test_setup(test_stall_plain, arm_watchdog),
        cmocka_unit_test_setup(test_slow_tokens, arm_watchdog),
        cmocka_unit_test_setup(test_timeout_messages, arm_watchdog),
        cmocka_unit_test_setup(test_done_then_drop, arm_watchdog),
        cmocka_unit_test_setup(test_not_retried, arm_watchdog),
        cmocka_unit_test_setup(test_echoed_secrets_hidden, arm_watchdog),
        cmocka_unit_test_setup(test_hangup_is_not_unreachable, arm_watchdog),
        cmocka_unit_test_setup(test_endless_response, arm_watchdog),
        cmocka_unit_test_setup(test_endless_response_cap_in_bytes, arm_watchdog),
        cmocka_unit_test_setup(test_endless_responses_together, arm_watchdog),
        cmocka_unit_test_setup(test_held_counts_in_flight_only, arm_watchdog),
        cmocka_unit_test_setup(test_not_found, arm_watchdog),
        cmocka_unit_test_setup(test_unreachable, arm_watchdog),
        cmocka_unit_test_setup(test_breaker, arm_watchdog),
        cmocka_unit_test_setup(test_outage_wait, arm_watchdog),
        cmocka_unit_test_setup(test_breaker_refunds_attempts, arm_watchdog),
        cmocka_unit_test_setup(test_no_head_of_line, arm_watchdog),
        cmocka_unit_test_setup(test_stop_flag, arm_watchdog),
        cmocka_unit_test_setup(test_stop_flag_while_probing, arm_watchdog),
        cmocka_unit_test_setup(test_done_stops, arm_watchdog),
        cmocka_unit_test_setup(test_concurrency_4096, arm_watchdog),
    };
    /* TEST_FILTER=test_stall* runs the matching tests alone. */
    const char *filter = getenv("TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
