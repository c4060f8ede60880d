/*
 * http_bench.c - the openai backend's client cost: N requests through
 * generate() against a server that answers at once, at a given number in
 * flight.  Prints "<wall s> <cpu s> <ok> <failed>", CPU being this process's
 * user + system time (the server runs in another process).
 *
 * usage: http_bench ENDPOINT REQUESTS CONCURRENCY [stream]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench-args.h"
#include "backend.h"

typedef struct tally {
    size_t ok, failed;
} tally;

static int on_done(const ssf_gen_request *q, const ssf_gen_result *r, void *ud)
{
    (void)q;
    tally *t = ud;
    if (r->error)
        t->failed++;
    else
        t->ok++;
    return 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: http_bench ENDPOINT REQUESTS CONCURRENCY [stream]\n");
        return 2;
    }
    size_t n = (size_t)bench_long_arg("http_bench REQUESTS", argv[2], 1, 100000000);
    ssf_openai_options o;
    ssf_openai_options_default(&o);
    o.endpoint = argv[1];
    o.model = "mock";
    o.concurrency = (int)bench_long_arg("http_bench CONCURRENCY", argv[3], 1, 4096);
    o.request_n = 1; /* one sample per request: the Python client sends them one by one too */
    o.stream = argc > 4 && strcmp(argv[4], "stream") == 0;
    ssf_error err;
    ssf_backend *b = ssf_backend_openai_new(&o, &err);
    if (!b) {
        fprintf(stderr, "http_bench: %s\n", err.msg);
        return 1;
    }
    ssf_gen_request *reqs = calloc(n, sizeof *reqs);
    for (size_t i = 0; i < n; i++)
        reqs[i] = (ssf_gen_request){.task = "bench",
                                    .doc = (int64_t)i,
                                    .seed = 1000 + i,
                                    .prompt = "What is 2+2?",
                                    .user_content = "What is 2+2?",
                                    .sampling = {0.7, 0.95, 0, 0, 16}};
    tally t = {0};
    double c0 = cpu_seconds(), w0 = ssf_monotonic_seconds();
    int rc = b->generate(b, reqs, n, on_done, &t, &err);
    double w1 = ssf_monotonic_seconds(), c1 = cpu_seconds();
    if (rc) fprintf(stderr, "http_bench: %s\n", err.msg);
    printf("%.4f %.4f %zu %zu\n", w1 - w0, c1 - c0, t.ok, t.failed);
    b->destroy(b);
    free(reqs);
    return rc ? 1 : 0;
}
