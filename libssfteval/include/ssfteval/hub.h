/*
 * hub.h - a Hugging Face Hub client on libcurl.
 *
 * Files are fetched from {endpoint}/{datasets/|}{repo}/resolve/{revision}/{path}
 * into a cache, with resumable downloads (.incomplete + Range), atomic
 * renames and sha256 verification.  Parquet-only datasets are read through the
 * dataset viewer's /rows JSON API and cached as JSON Lines.
 *
 * Cache layout under cache_dir:
 *   hub/{datasets|models}/{owner}/{name}/{revision}/{path}
 *   rows/{owner}/{name}/{config}/{split}.jsonl
 */
#ifndef SSFTEVAL_HUB_H
#define SSFTEVAL_HUB_H

#include <stddef.h>
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_repo_type {
    SSF_REPO_DATASET,
    SSF_REPO_MODEL,
} ssf_repo_type;

typedef struct ssf_hub {
    char *endpoint; /* HF_ENDPOINT, default https://huggingface.co */
    /* SSFTEVAL_ROWS_ENDPOINT, default https://datasets-server.huggingface.co */
    char *rows_endpoint;
    char *token;     /* HF_TOKEN, may be NULL */
    char *cache_dir; /* SSFTEVAL_CACHE, default ~/.cache/ssfteval */
    int offline; /* HF_HUB_OFFLINE=1, SSFTEVAL_OFFLINE=1 or --offline: never touch the network */
    long connect_timeout_s;
    long low_speed_timeout_s; /* abort a transfer slower than 1 byte/s for this long */
    /* A file pinned by its sha256 (task data) is refused once its download
     * passes this many bytes, not after filling the disk
     * (SSFTEVAL_MAX_PINNED_BYTES, default 1 GiB: task data is megabytes);
     * 0: no cap. */
    long long max_pinned_bytes;
} ssf_hub;

/* Fills hub from the environment (see the field comments).  Free with
 * ssf_hub_free. */
int ssf_hub_init_from_env(ssf_hub *hub, ssf_error *err);
void ssf_hub_free(ssf_hub *hub);

/* The cache path a file would have, whether present or not (free it). */
char *ssf_hub_cache_path(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                         const char *revision, const char *path);
/* The JSON Lines file the /rows API's pages of a split are kept in,
 * whether present or not (free it). */
char *ssf_hub_rows_cache_path(const ssf_hub *hub, const char *repo, const char *config,
                              const char *split);

/* Makes sure a file is in the cache and returns its path in *local (free it).
 * sha256 (64 hex digits) may be NULL; when given, a download that does not
 * match is deleted and reported, and a cached file is trusted only if it
 * matches.  In offline mode a missing file is an error. */
int ssf_hub_fetch_file(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                       const char *revision, const char *path, const char *sha256, char **local,
                       ssf_error *err);

/* Makes sure all rows of a dataset split are cached as JSON Lines (one "row"
 * object per line, in row order) and returns the path.  expected_rows, when
 * non-zero, must equal num_rows_total. */
int ssf_hub_fetch_rows(const ssf_hub *hub, const char *repo, const char *config, const char *split,
                       size_t expected_rows, char **local, ssf_error *err);

/* Re-checks a cached file against sha256 without touching the network. */
int ssf_hub_verify_file(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                        const char *revision, const char *path, const char *sha256, ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
