/*
 * hubserver.h - a local stand-in for the Hugging Face Hub and its dataset
 * viewer, so that the hub client and the CLI can be tested offline.
 *
 * It binds 127.0.0.1 on a port the kernel picks and serves, from a folder laid
 * out like ../shared/data:
 *   /datasets/HuggingFaceH4/MATH-500/resolve/6e4ed1a2.../test.jsonl  math500.jsonl
 *   /datasets/Idavidrein/gpqa/resolve/83022cef.../gpqa_diamond.csv   gated (token)
 *   /datasets/ssfteval-test/corrupt/resolve/{any}/test.jsonl  one byte changed
 *   /datasets/ssfteval-test/flaky/resolve/{any}/test.jsonl    cut off without Range
 *   /datasets/ssfteval-test/norange/resolve/{any}/test.jsonl  ignores Range (200)
 *   /datasets/ssfteval-test/stalling/resolve/{any}/test.jsonl a byte, then
 *                                           6 s of silence without Range
 *   /datasets/ssfteval-test/redirect/resolve/{any}/...  302 to MATH-500's file
 *   /datasets/ssfteval-test/loop/resolve/{any}/...      302 to itself
 *   /datasets/ssfteval-test/downgrade/resolve/{any}/... 302 to MATH-500's file
 *                                           at an http:// URL (downgrade_to)
 *   /datasets/ssfteval-test/unavailable/...             503
 *   /datasets/ssfteval-test/private/...                 401 RepoNotFound, as the
 *                                           Hub answers a private repository
 *   /rows?dataset=&config=default&split=&offset=&length=     the /rows JSON API
 * Other file routes honour "Range: bytes=N-" and "bytes=N-M".  The /rows API
 * also serves dataset ssfteval-test/malformed (split train) as broken JSON.
 * After hubserver_serve_models, model repositories too, any revision:
 *   /{org}/{name}/resolve/{rev}/{path}  models_dir/{org}/{name}/{path}
 * where a file {path}.status beside it, holding an HTTP status, has {path}
 * answered with that status.
 */
#ifndef SSFTEVAL_TESTS_HUBSERVER_H
#define SSFTEVAL_TESTS_HUBSERVER_H

#include <stddef.h>
#include "ssfteval/util.h"

struct hubserver_options {
    const char *data_dir; /* laid out like ../shared/data */
    const char *gpqa_csv; /* plain gpqa_diamond.csv path, may be NULL (then 404) */
    const char *token;    /* required token for the gated repo; NULL: nobody has access */
    const char *tls_dir;  /* https with its server.pem, server-key.pem (NULL: http) */
    /* where the downgrade route sends MATH-500's file ("http://127.0.0.1:PORT";
     * NULL: this server, as http) */
    const char *downgrade_to;
};

struct hubserver;

struct hubserver *hubserver_start(const struct hubserver_options *options, ssf_error *err);
unsigned hubserver_port(struct hubserver *server);
/* Requests received so far, of every kind: lets tests prove a cache hit. */
size_t hubserver_request_count(struct hubserver *server);
/* Serves model repositories from dir/{org}/{name}/ (read at each request).
 * Call before handing out the port. */
void hubserver_serve_models(struct hubserver *server, const char *dir);
void hubserver_stop(struct hubserver *server);

#endif
