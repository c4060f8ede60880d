/*
 * model_hub.c - model specs: a local directory, or hf:ORG/NAME[@REV]
 * downloaded file by file into the Hub cache (hub.c), giving a snapshot
 * directory ssf_model_open reads.  Unlike the rest of the model module this
 * needs libcurl, through hub.c.
 */
#include "ssfteval/hub.h"
#include "ssfteval/model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"

/* One repository at one revision, for the fetches below. */
typedef struct repo_ref {
    const ssf_hub *hub;
    char *repo, *revision;
} repo_ref;

static int resolve_local(const char *spec, char **dir_out, ssf_error *err)
{
    struct stat st;
    if (stat(spec, &st) != 0 || !S_ISDIR(st.st_mode))
        return ssf_fail(err,
                        "model directory %s not found; pass a directory with config.json or "
                        "hf:ORG/NAME[@REV]",
                        spec);
    *dir_out = ssf_xstrdup(spec);
    return 0;
}

/* "ORG/NAME[@REV]" -> repo and revision (main by default). */
static int parse_spec(const char *spec, repo_ref *r, ssf_error *err)
{
    const char *at = strchr(spec, '@'), *slash = strchr(spec, '/');
    size_t repo_len = at ? (size_t)(at - spec) : strlen(spec);
    if (!slash || slash == spec || (size_t)(slash - spec) + 1 >= repo_len ||
        memchr(slash + 1, '/', repo_len - (size_t)(slash - spec) - 1) || (at && !at[1]))
        return ssf_fail(err, "model spec 'hf:%s' is not hf:ORG/NAME[@REVISION]", spec);
    r->repo = ssf_xstrndup(spec, repo_len);
    r->revision = ssf_xstrdup(at ? at + 1 : "main");
    return 0;
}

static int cached(const repo_ref *r, const char *path)
{
    char *p = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, path);
    int yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

static int fetch(const repo_ref *r, const char *path, ssf_error *err)
{
    char *local = NULL;
    int rc =
        ssf_hub_fetch_file(r->hub, SSF_REPO_MODEL, r->repo, r->revision, path, NULL, &local, err);
    free(local);
    return rc;
}

/* 1: fetched, 0: the repository has no such file (404; offline: not
 * cached), -1: failed.  hub.c reports a missing file as "not found (HTTP
 * 404)", which is how a 404 is told from other failures. */
static int fetch_optional(const repo_ref *r, const char *path, ssf_error *err)
{
    if (r->hub->offline && !cached(r, path)) return 0;
    ssf_error e = {0};
    if (fetch(r, path, &e) == 0) return 1;
    if (strstr(e.msg, "not found (HTTP")) return 0;
    *err = e;
    return -1;
}

/* Fetches a weights file; one already in the cache that does not open as
 * safetensors is removed and fetched again, once.  Downloads land whole (an
 * .incomplete file, then a rename), so such a file was cut short or
 * overwritten in the cache (a full disk under a copy, an edit), and the
 * Hub still has it whole.  Offline, model open reports the damage. */
static int fetch_weights(const repo_ref *r, const char *path, ssf_error *err)
{
    int was_cached = cached(r, path);
    if (fetch(r, path, err)) return -1;
    if (!was_cached || r->hub->offline) return 0;
    char *local = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, path);
    ssf_safetensors *st;
    ssf_error damage = {0};
    int rc = 0;
    if (ssf_safetensors_open(local, &st, &damage) == 0)
        ssf_safetensors_close(st);
    else if (unlink(local) != 0)
        rc = ssf_fail(err, "%s; removing it to fetch it again failed: %s; remove it by hand",
                      damage.msg, strerror(errno));
    else
        rc = fetch(r, path, err);
    free(local);
    return rc;
}

static int fetch_shards(const repo_ref *r, ssf_error *err)
{
    char *index = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, SSF_INDEX_FILE);
    char *text = NULL;
    size_t len;
    ssf_weight_index idx = {0};
    int rc = ssf_read_file(index, &text, &len, err);
    if (rc == 0) rc = ssf_weight_index_parse(text, len, index, &idx, err);
    free(text);
    free(index);
    for (size_t i = 0; rc == 0 && i < idx.n_shards; i++)
        if (fetch_weights(r, idx.shards[i], err))
            rc = ssf_fail_prefix(err, "shard %s named by %s", idx.shards[i], SSF_INDEX_FILE);
    ssf_weight_index_free(&idx);
    return rc;
}

static int fetch_model(const repo_ref *r, ssf_error *err)
{
    if (fetch(r, "config.json", err) || fetch_optional(r, "generation_config.json", err) < 0 ||
        fetch_optional(r, "tokenizer_config.json", err) < 0 ||
        fetch_optional(r, "chat_template.jinja", err) < 0 || fetch(r, "tokenizer.json", err))
        return -1;
    int sharded = fetch_optional(r, SSF_INDEX_FILE, err);
    if (sharded < 0) return -1;
    return sharded ? fetch_shards(r, err) : fetch_weights(r, SSF_SINGLE_FILE, err);
}

int ssf_model_resolve(const char *spec, const ssf_hub *hub, char **dir_out, ssf_error *err)
{
    *dir_out = NULL;
    if (strncmp(spec, "hf:", 3) != 0) return resolve_local(spec, dir_out, err);
    repo_ref r = {hub, NULL, NULL};
    if (parse_spec(spec + 3, &r, err)) return -1;
    int rc = fetch_model(&r, err);
    if (rc)
        ssf_fail_prefix(err, "model %s@%s", r.repo, r.revision);
    else
        *dir_out = ssf_hub_cache_path(hub, SSF_REPO_MODEL, r.repo, r.revision, "config.json");
    if (*dir_out) *strrchr(*dir_out, '/') = '\0'; /* the snapshot directory */
    free(r.repo);
    free(r.revision);
    return rc;
}
