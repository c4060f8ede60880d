/*
 * mockserver_main.c - runs the mock OpenAI-compatible server (mockserver.h)
 * as a program for shell tests and benchmarks:
 *   mockserver [--port-file FILE] [--stats-file FILE] [--model ID]
 *              [--n honour|ignore|reject|reject-500] [--reasoning off|reasoning_content|reasoning]
 *              [--delay-ms N] [--token-delay-ms N] [--slow-ms N] [--stall-ms N]
 *              [--fault-after N] [--chunks N] [--retry-after S] [--retry-after-ms N]
 *              [--health-fail K] [--fault SPEC]...
 * SPEC is KIND[,from=A][,count=C][,mod=M][,rem=R] (see struct mock_rule);
 * "--fault 503,count=2" fails the first two attempts of every seed.
 * It prints the port (or writes it to --port-file, atomically) and serves
 * until SIGTERM or SIGINT; then it writes its counters as JSON to
 * --stats-file, if given.
 */
#include "mockserver.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <pthread.h>

static const char *const fault_names[] = {
    [MOCK_OK] = "ok",
    [MOCK_SLOW] = "slow",
    [MOCK_429] = "429",
    [MOCK_TGI_429] = "tgi429",
    [MOCK_500] = "500",
    [MOCK_503] = "503",
    [MOCK_RESET] = "reset",
    [MOCK_STALL] = "stall",
    [MOCK_TRUNCATED] = "truncated",
    [MOCK_INVALID_JSON] = "invalid-json",
    [MOCK_STREAM_ERROR] = "stream-error",
    [MOCK_400] = "400",
    [MOCK_QUOTA] = "quota",
    [MOCK_LENGTH_EMPTY] = "length-empty",
    [MOCK_401] = "401",
    [MOCK_ENDLESS] = "endless",
    [MOCK_NO_CHOICES] = "no-choices",
};

static void usage(FILE *out)
{
    fputs("usage: mockserver [--port-file FILE] [--stats-file FILE] [--model ID]\n"
          "                  [--n honour|ignore|reject|reject-500]\n"
          "                  [--reasoning off|reasoning_content|reasoning]\n"
          "                  [--delay-ms N] [--token-delay-ms N] [--slow-ms N] [--stall-ms N]\n"
          "                  [--fault-after N] [--chunks N] [--retry-after S]\n"
          "                  [--retry-after-ms N] [--health-fail K] [--fault SPEC]...\n"
          "SPEC: KIND[,from=A][,count=C][,mod=M][,rem=R]; KIND: slow 429 tgi429 500 503 reset\n"
          "      stall truncated invalid-json stream-error 400 401 quota length-empty\n",
          out);
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 0xFFFFFFFFul) return -1;
    *out = (unsigned)v;
    return 0;
}

/* Kinds without a name here (abort, filtered) leave holes in fault_names. */
static int parse_kind(const char *s, size_t len, enum mock_fault *out)
{
    for (size_t i = 1; i < sizeof fault_names / sizeof fault_names[0]; i++)
        if (fault_names[i] && strlen(fault_names[i]) == len &&
            strncmp(s, fault_names[i], len) == 0) {
            *out = (enum mock_fault)i;
            return 0;
        }
    return -1;
}

/* KIND[,key=value]... into r. */
static int parse_rule(const char *spec, struct mock_rule *r)
{
    const char *comma = strchr(spec, ',');
    if (parse_kind(spec, comma ? (size_t)(comma - spec) : strlen(spec), &r->fault) != 0) return -1;
    while (comma) {
        const char *item = comma + 1;
        comma = strchr(item, ',');
        char field[64];
        size_t n = comma ? (size_t)(comma - item) : strlen(item);
        if (n >= sizeof field) return -1;
        memcpy(field, item, n);
        field[n] = '\0';
        char *eq = strchr(field, '=');
        if (!eq) return -1;
        *eq = '\0';
        unsigned *dst = !strcmp(field, "from")    ? &r->from
                        : !strcmp(field, "count") ? &r->count
                        : !strcmp(field, "mod")   ? &r->mod
                        : !strcmp(field, "rem")   ? &r->rem
                                                  : NULL;
        if (!dst || parse_uint(eq + 1, dst) != 0) return -1;
    }
    return 0;
}

static int parse_mode(const char *s, const char *const *names, size_t count, int *out)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    return -1;
}

struct args {
    struct mockserver_options o;
    const char *port_file, *stats_file;
    size_t rules;
};

static int parse_option(int c, const char *arg, struct args *a)
{
    static const char *const n_modes[] = {"honour", "ignore", "reject", "reject-500"};
    static const char *const reasoning[] = {"off", "reasoning_content", "reasoning"};
    struct mockserver_options *o = &a->o;
    int mode;
    char *end;
    switch (c) {
    case 'p':
        a->port_file = arg;
        return 0;
    case 'S':
        a->stats_file = arg;
        return 0;
    case 'm':
        o->model = arg;
        return 0;
    case 'n':
        if (parse_mode(arg, n_modes, 4, &mode) != 0) return -1;
        o->n_mode = (enum mock_n)mode;
        return 0;
    case 'r':
        if (parse_mode(arg, reasoning, 3, &mode) != 0) return -1;
        o->reasoning = (enum mock_reasoning)mode;
        return 0;
    case 'd':
        return parse_uint(arg, &o->delay_ms);
    case 't':
        return parse_uint(arg, &o->token_delay_ms);
    case 'w':
        return parse_uint(arg, &o->slow_ms);
    case 's':
        return parse_uint(arg, &o->stall_ms);
    case 'a':
        return parse_uint(arg, &o->fault_after);
    case 'c':
        return parse_uint(arg, &o->chunks);
    case 'R':
        o->retry_after_s = strtod(arg, &end);
        return *arg && !*end && o->retry_after_s >= 0 ? 0 : -1;
    case 'M':
        return parse_uint(arg, &o->retry_after_ms);
    case 'H':
        return parse_uint(arg, &o->health_fail);
    case 'f':
        if (a->rules == MOCK_MAX_RULES) return -1;
        return parse_rule(arg, &o->rules[a->rules++]);
    default:
        return -1;
    }
}

/* 0: run, 1: --help, -1: bad arguments. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"port-file", required_argument, NULL, 'p'},
        {"stats-file", required_argument, NULL, 'S'},
        {"model", required_argument, NULL, 'm'},
        {"n", required_argument, NULL, 'n'},
        {"reasoning", required_argument, NULL, 'r'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"token-delay-ms", required_argument, NULL, 't'},
        {"slow-ms", required_argument, NULL, 'w'},
        {"stall-ms", required_argument, NULL, 's'},
        {"fault-after", required_argument, NULL, 'a'},
        {"chunks", required_argument, NULL, 'c'},
        {"retry-after", required_argument, NULL, 'R'},
        {"retry-after-ms", required_argument, NULL, 'M'},
        {"health-fail", required_argument, NULL, 'H'},
        {"fault", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') return 1;
        if (parse_option(c, optarg, a) != 0) {
            fprintf(stderr, "mockserver: bad value for an option: %s\n", optarg ? optarg : "");
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int publish_port(unsigned port, const char *port_file, ssf_error *err)
{
    char text[16];
    int n = snprintf(text, sizeof text, "%u\n", port);
    if (port_file) return ssf_write_file_atomic(port_file, text, (size_t)n, err);
    if (fputs(text, stdout) == EOF || fflush(stdout) != 0)
        return ssf_fail(err, "cannot write the port to stdout");
    return 0;
}

static int write_stats(struct mockserver *server, const char *path, ssf_error *err)
{
    struct mockserver_stats st;
    mockserver_get_stats(server, &st);
    json_t *status = json_object();
    for (unsigned i = 0; i < 600; i++) {
        char key[8];
        snprintf(key, sizeof key, "%u", i);
        if (st.status[i]) json_object_set_new(status, key, json_integer((json_int_t)st.status[i]));
    }
    json_t *root = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "requests",
                             (json_int_t)st.requests, "generations", (json_int_t)st.generations,
                             "health", (json_int_t)st.health, "models", (json_int_t)st.models,
                             "choices", (json_int_t)st.choices, "resets", (json_int_t)st.resets,
                             "multi_n", (json_int_t)st.multi_n, "max_n", (json_int_t)st.max_n,
                             "connections", (json_int_t)st.connections, "peak_connections",
                             (json_int_t)st.peak_connections, "status", status);
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s\n", text);
    free(text);
    int rc = ssf_write_file_atomic(path, b.data, b.len, err);
    ssf_buf_free(&b);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    int parsed = parse_args(argc, argv, &a);
    if (parsed != 0) {
        usage(parsed > 0 ? stdout : stderr);
        return parsed > 0 ? 0 : 2;
    }
    /* Blocked before the server threads exist, so that they inherit the mask
     * and the signals reach sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    ssf_error err = {0};
    int rc = 1;
    struct mockserver *server = mockserver_start(&a.o, &err);
    if (server && publish_port(mockserver_port(server), a.port_file, &err) == 0) {
        int sig = 0;
        sigwait(&stop, &sig);
        rc = a.stats_file && write_stats(server, a.stats_file, &err) != 0 ? 1 : 0;
    }
    if (rc != 0) fprintf(stderr, "mockserver: %s\n", err.msg);
    mockserver_stop(server);
    return rc;
}
