/*
 * model_hub.c - model specs: a local directory, or hf:ORG/NAME[@REV]
 * downloaded file by file into the Hub cache (hub.c), giving a snapshot
 * directory ssf_model_open reads.  Unlike the rest of the model module this
 * needs libcurl, through hub.c.
 */
#include "ssfteval/hub.h"
#include "ssfteval/model.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
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

/* Where the cache keeps that the repository had no such file, as the
 * Hub's own cache does (.no_exist): a resolve with the Hub out of reach
 * then knows the snapshot whole. */
static char *absent_marker(const repo_ref *r, const char *path)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, ".absent/%s", path);
    char *marker = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, b.data);
    ssf_buf_free(&b);
    return marker;
}

static void mark_absent(const repo_ref *r, const char *path)
{
    char *marker = absent_marker(r, path);
    ssf_error ignored;
    char *slash = strrchr(marker, '/');
    *slash = '\0';
    int ok = ssf_mkdirs(marker, &ignored) == 0;
    *slash = '/';
    if (ok) ssf_write_file_atomic(marker, "", 0, &ignored); /* a cache: best effort */
    free(marker);
}

static int marked_absent(const repo_ref *r, const char *path)
{
    char *marker = absent_marker(r, path);
    int yes = access(marker, F_OK) == 0;
    free(marker);
    return yes;
}

/* 1: fetched, 0: the repository has no such file (404, or a 404 kept from
 * before when the Hub is out of reach; offline: not cached), -1: failed.
 * hub.c reports a missing file as "not found (HTTP 404)" and an unreachable
 * Hub as "cannot reach", which is how they are told from other failures:
 * taken for absent, a file that failed would change the model (another
 * generation_config.json, other end-of-sequence ids). */
static int fetch_optional(const repo_ref *r, const char *path, ssf_error *err)
{
    if (r->hub->offline && !cached(r, path)) return 0;
    ssf_error e = {0};
    if (fetch(r, path, &e) == 0) return 1;
    if (strstr(e.msg, "not found (HTTP")) {
        mark_absent(r, path);
        return 0;
    }
    if (strstr(e.msg, "cannot reach") && marked_absent(r, path)) return 0;
    *err = e;
    return -1;
}

/* The shards the cached index names; 0 (and none) when it is not cached. */
static int cached_shards(const repo_ref *r, ssf_weight_index *idx, ssf_error *err)
{
    memset(idx, 0, sizeof *idx);
    if (!cached(r, SSF_INDEX_FILE)) return 0;
    char *index = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, SSF_INDEX_FILE);
    char *text = NULL;
    size_t len;
    int rc = ssf_read_file(index, &text, &len, err);
    if (rc == 0) rc = ssf_weight_index_parse(text, len, index, idx, err);
    free(text);
    free(index);
    return rc;
}

static int fetch_shards(const repo_ref *r, ssf_error *err)
{
    ssf_weight_index idx;
    int rc = cached_shards(r, &idx, err);
    for (size_t i = 0; rc == 0 && i < idx.n_shards; i++)
        if (fetch(r, idx.shards[i], err))
            rc = ssf_fail_prefix(err, "shard %s named by %s", idx.shards[i], SSF_INDEX_FILE);
    ssf_weight_index_free(&idx);
    return rc;
}

/* tokenizer.json, or else the vocab.json and merges.txt of a slow
 * tokenizer, which the tokenizer reads too. */
static int fetch_tokenizer(const repo_ref *r, ssf_error *err)
{
    int json = fetch_optional(r, "tokenizer.json", err);
    if (json != 0) return json < 0 ? -1 : 0;
    int vocab = fetch_optional(r, "vocab.json", err);
    if (vocab < 0) return -1;
    if (vocab == 0)
        return ssf_fail(err,
                        "tokenizer.json: not found (HTTP 404), nor vocab.json and merges.txt; the "
                        "repository holds no tokenizer ssfteval reads");
    return fetch(r, "merges.txt", err);
}

static int fetch_model(const repo_ref *r, ssf_error *err)
{
    if (fetch(r, "config.json", err) || fetch_optional(r, "generation_config.json", err) < 0 ||
        fetch_optional(r, "tokenizer_config.json", err) < 0 ||
        fetch_optional(r, "chat_template.jinja", err) < 0 || fetch_tokenizer(r, err))
        return -1;
    int sharded = fetch_optional(r, SSF_INDEX_FILE, err);
    if (sharded < 0) return -1;
    return sharded ? fetch_shards(r, err) : fetch(r, SSF_SINGLE_FILE, err);
}

/* Whether a cached weights file of the snapshot fails to open (cut short by
 * a full disk under a copy, overwritten), with why in *damage.  Downloads
 * land whole (an .incomplete file, then a rename), so such a file was
 * damaged in the cache. */
static int weights_damaged(const repo_ref *r, ssf_error *damage)
{
    ssf_weight_index idx;
    if (cached_shards(r, &idx, damage)) return 1;
    int bad = 0;
    size_t n = idx.n_shards ? idx.n_shards : 1;
    for (size_t i = 0; i < n && !bad; i++) {
        const char *name = idx.n_shards ? idx.shards[i] : SSF_SINGLE_FILE;
        if (!cached(r, name)) continue;
        char *path = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, name);
        ssf_safetensors *st;
        if (ssf_safetensors_open(path, &st, damage) == 0)
            ssf_safetensors_close(st);
        else /* cut short; a dtype ssfteval lacks is no damage, nor fetched again */
            bad = strstr(damage->msg, "truncated") != NULL;
        free(path);
    }
    ssf_weight_index_free(&idx);
    return bad;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *at)
{
    (void)st;
    (void)type;
    (void)at;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The snapshot directory (free it). */
static char *snapshot_dir(const repo_ref *r)
{
    char *dir = ssf_hub_cache_path(r->hub, SSF_REPO_MODEL, r->repo, r->revision, "config.json");
    *strrchr(dir, '/') = '\0';
    return dir;
}

/* Fetches the model again whole, its damaged snapshot set aside meanwhile:
 * one file fetched alone could come from a newer commit of a branch than
 * the rest.  Where the fetch fails (the Hub out of reach) the old snapshot
 * is put back, and the error names the damage too. */
static int refetch_model(const repo_ref *r, const ssf_error *damage, ssf_error *err)
{
    char *dir = snapshot_dir(r);
    ssf_buf aside = {0};
    ssf_buf_printf(&aside, "%s.damaged", dir);
    remove_tree(aside.data); /* left by a process that died here */
    int rc = 0;
    if (rename(dir, aside.data) != 0)
        rc = ssf_fail(err,
                      "%s; setting %s aside to fetch the model again failed: %s; remove it by "
                      "hand",
                      damage->msg, dir, strerror(errno));
    if (rc == 0 && fetch_model(r, err) != 0) {
        ssf_error why = *err;
        remove_tree(dir);
        /* the old snapshot back; should that fail, it goes, and the next
         * resolve fetches the model whole */
        if (rename(aside.data, dir) != 0) remove_tree(aside.data);
        rc = ssf_fail(err, "%s, and fetching the model again failed: %s", damage->msg, why.msg);
    } else if (rc == 0) {
        remove_tree(aside.data);
    }
    free(dir);
    ssf_buf_free(&aside);
    return rc;
}

int ssf_model_resolve(const char *spec, const ssf_hub *hub, char **dir_out, ssf_error *err)
{
    *dir_out = NULL;
    if (strncmp(spec, "hf:", 3) != 0) return resolve_local(spec, dir_out, err);
    repo_ref r = {hub, NULL, NULL};
    if (parse_spec(spec + 3, &r, err)) return -1;
    ssf_error damage = {0};
    int rc; /* offline, a damaged file stays, and model open names it */
    if (!hub->offline && weights_damaged(&r, &damage))
        rc = refetch_model(&r, &damage, err);
    else
        rc = fetch_model(&r, err);
    if (rc)
        ssf_fail_prefix(err, "model %s@%s", r.repo, r.revision);
    else
        *dir_out = snapshot_dir(&r);
    free(r.repo);
    free(r.revision);
    return rc;
}
