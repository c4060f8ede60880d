/*
 * hub.c - Hugging Face Hub client: pinned files from resolve URLs into a
 * cache (resumable, verified, renamed into place only when complete) and
 * dataset rows from the dataset viewer's /rows JSON API.
 */
#include "ssfteval/hub.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define USER_AGENT "ssfteval/0.1"
#define ROWS_PAGE 100 /* the most the /rows API serves per request */
/* A /rows page is at most a few MB; anything much larger is not that API. */
#define MAX_BODY ((size_t)64 << 20)
/* Interrupted downloads are resumed this often within one call. */
#define MAX_ATTEMPTS 5

/* ---- configuration ---------------------------------------------------- */

static char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return ssf_xstrdup(v && *v ? v : def);
}

/* "https://hf-mirror.com/" must not produce "//datasets" in URLs. */
static void strip_trailing_slashes(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
}

/* Accepts the spellings huggingface_hub accepts for its boolean variables. */
static int env_true(const char *name)
{
    const char *v = getenv(name);
    if (!v) return 0;
    return !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
           !strcasecmp(v, "on");
}

static char *cache_dir_from_env(ssf_error *err)
{
    const char *dir = getenv("SSFTEVAL_CACHE");
    if (dir && *dir) return ssf_xstrdup(dir);
    const char *home = getenv("HOME");
    if (!home || !*home) {
        ssf_fail(err, "neither SSFTEVAL_CACHE nor HOME is set: set SSFTEVAL_CACHE to a cache "
                      "directory");
        return NULL;
    }
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/.cache/ssfteval", home);
    return ssf_buf_take(&b);
}

/* SSFTEVAL_MAX_PINNED_BYTES, for a task file that pins a file past the
 * default 1 GiB (0: no cap).  On error the hub is freed. */
static int pinned_cap_from_env(ssf_hub *hub, ssf_error *err)
{
    const char *v = getenv("SSFTEVAL_MAX_PINNED_BYTES");
    long cap = 1L << 30;
    if (v && *v && ssf_parse_long(v, 0, LONG_MAX, &cap) != 0) {
        ssf_hub_free(hub);
        return ssf_fail(err,
                        "SSFTEVAL_MAX_PINNED_BYTES is '%s', not a number of bytes; set it to "
                        "one (0: no cap) or unset it",
                        v);
    }
    hub->max_pinned_bytes = cap;
    return 0;
}

int ssf_hub_init_from_env(ssf_hub *hub, ssf_error *err)
{
    memset(hub, 0, sizeof *hub);
    char *cache = cache_dir_from_env(err);
    if (!cache) return -1;
    /* Done here, once, because curl_easy_init would otherwise do it lazily
     * and not thread-safely. */
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        free(cache);
        return ssf_fail(err, "cannot initialise libcurl: %s", curl_easy_strerror(rc));
    }
    hub->cache_dir = cache;
    hub->endpoint = env_or("HF_ENDPOINT", "https://huggingface.co");
    strip_trailing_slashes(hub->endpoint);
    hub->rows_endpoint = env_or("SSFTEVAL_ROWS_ENDPOINT", "https://datasets-server.huggingface.co");
    strip_trailing_slashes(hub->rows_endpoint);
    const char *token = getenv("HF_TOKEN");
    hub->token = token && *token ? ssf_xstrdup(token) : NULL;
    hub->offline = env_true("HF_HUB_OFFLINE") || env_true("SSFTEVAL_OFFLINE");
    hub->connect_timeout_s = 10;
    hub->low_speed_timeout_s = 60;
    return pinned_cap_from_env(hub, err);
}

void ssf_hub_free(ssf_hub *hub)
{
    if (!hub) return;
    /* Only a hub filled by ssf_hub_init_from_env holds a curl_global_init
     * reference; a zeroed one (failed init) must not drop someone else's. */
    if (hub->cache_dir) curl_global_cleanup();
    free(hub->endpoint);
    free(hub->rows_endpoint);
    free(hub->token);
    free(hub->cache_dir);
    memset(hub, 0, sizeof *hub);
}

/* ---- names, paths and URLs -------------------------------------------- */

/* Names become cache paths: refuse empty, "." and ".." segments (which could
 * climb out of the cache) and control characters (which would break the
 * one-line error messages). */
static int check_name(const char *what, const char *s, int max_slashes, ssf_error *err)
{
    int slashes = 0;
    const char *seg = s;
    for (const char *p = s;; p++) {
        if (*p != '\0' && (unsigned char)*p < 0x20)
            return ssf_fail(err, "invalid %s: it contains a control character", what);
        if (*p != '/' && *p != '\0') continue;
        size_t n = (size_t)(p - seg);
        if (n == 0 || (n <= 2 && strncmp(seg, "..", n) == 0))
            return ssf_fail(err, "invalid %s '%s': empty, '.' or '..' component", what, s);
        if (*p == '\0') return 0;
        if (++slashes > max_slashes) return ssf_fail(err, "invalid %s '%s': too many '/'", what, s);
        seg = p + 1;
    }
}

static int check_file_names(const char *repo, const char *revision, const char *path,
                            const char *sha256, ssf_error *err)
{
    if (check_name("repository", repo, 1, err) || check_name("revision", revision, INT_MAX, err) ||
        check_name("path", path, INT_MAX, err))
        return -1;
    if (sha256 && (strlen(sha256) != 64 || strspn(sha256, "0123456789abcdefABCDEF") != 64))
        return ssf_fail(err, "invalid sha256 '%s' for %s: expected 64 hex digits", sha256, path);
    return 0;
}

static const char *type_dir(ssf_repo_type type)
{
    return type == SSF_REPO_DATASET ? "datasets" : "models";
}

/* huggingface_hub quotes the revision with no safe characters and the path
 * with '/' kept; unreserved characters (RFC 3986) stay as they are. */
static void url_encode(ssf_buf *b, const char *s, int keep_slash)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    strchr("-._~", c) || (keep_slash && c == '/');
        if (plain)
            ssf_buf_putc(b, (char)c);
        else
            ssf_buf_printf(b, "%%%02X", c);
    }
}

static char *file_url(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                      const char *revision, const char *path)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/%s%s/resolve/", hub->endpoint,
                   type == SSF_REPO_DATASET ? "datasets/" : "", repo);
    url_encode(&b, revision, 0);
    ssf_buf_putc(&b, '/');
    url_encode(&b, path, 1);
    return ssf_buf_take(&b);
}

/* The repository's page, where gated terms are accepted. */
static char *repo_page(const ssf_hub *hub, ssf_repo_type type, const char *repo)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/%s%s", hub->endpoint, type == SSF_REPO_DATASET ? "datasets/" : "", repo);
    return ssf_buf_take(&b);
}

char *ssf_hub_cache_path(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                         const char *revision, const char *path)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/hub/%s/%s/%s/%s", hub->cache_dir, type_dir(type), repo, revision, path);
    return ssf_buf_take(&b);
}

char *ssf_hub_rows_cache_path(const ssf_hub *hub, const char *repo, const char *config,
                              const char *split)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/rows/%s/%s/%s.jsonl", hub->cache_dir, repo, config, split);
    return ssf_buf_take(&b);
}

static int mkdirs_for(const char *file, ssf_error *err)
{
    char *dir = ssf_xstrdup(file);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = ssf_mkdirs(dir, err);
    }
    free(dir);
    return rc;
}

/* ---- one HTTP transfer ------------------------------------------------- */

/* What a request is about, for error messages. */
struct target {
    ssf_repo_type type;
    const char *repo;
    const char *endpoint; /* the server named by "cannot reach" */
    const char *missing;  /* what a 404 asks the user to check */
};

struct transfer {
    CURL *curl;
    FILE *file;   /* download target, or NULL to collect into body */
    ssf_buf body; /* NUL-terminated, for JSON answers */
    curl_off_t resume_from;
    curl_off_t received; /* body bytes kept from a 2xx answer */
    curl_off_t cap;      /* the most bytes the file may reach (0: no cap) */
    int restart;         /* the server ignored the Range request */
    int write_errno;     /* writing the local file failed */
    int too_big;         /* a /rows answer past MAX_BODY, or a pinned file past its cap */
    CURLcode result;
    long status;
    char error_code[64];      /* X-Error-Code of the last response */
    char redirect_scheme[16]; /* the last response's Location's scheme ("http", "ftp") */
    int has_location;         /* the last response had one (curl follows the first) */
    char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    size_t n = size * nmemb;
    long status = 0;
    /* Error pages are not content: drop them, the status tells the story. */
    if (curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status < 200 ||
        status > 299)
        return n;
    if (t->resume_from > 0 && status == 200) {
        t->restart = 1; /* a full body would be appended to the partial one */
        return 0;
    }
    if (t->file && t->cap > 0 && t->resume_from + t->received + (curl_off_t)n > t->cap) {
        t->too_big = 1;
        return 0;
    }
    errno = 0;
    if (t->file && fwrite(data, 1, n, t->file) != n) {
        t->write_errno = errno ? errno : EIO;
        return 0;
    }
    if (!t->file) {
        if (t->body.len + n > MAX_BODY) {
            t->too_big = 1;
            return 0;
        }
        ssf_buf_append(&t->body, data, n);
    }
    t->received += (curl_off_t)n;
    return n;
}

/* Copies into out (cap bytes) the value of the header line of n bytes if
 * it is `key` (lower case, with its colon): its printable characters up
 * to the first blank or `stop`, or nothing when they do not fit.  Whether
 * the line was that header. */
static int keep_header(const char *line, size_t n, const char *key, char stop, char *out,
                       size_t cap)
{
    size_t k = strlen(key);
    if (n < k || strncasecmp(line, key, k) != 0) return 0;
    const char *v = line + k, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    size_t len = 0;
    while (v + len < end && v[len] != stop && (unsigned char)v[len] > 0x20 &&
           (unsigned char)v[len] < 0x7f)
        len++;
    if (len > cap - 1) len = 0; /* a part would name something else */
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}

/* Keeps X-Error-Code, which tells a gated repository from a missing one,
 * and the scheme of a redirect's Location, which names a redirect refused. */
static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct transfer *t = ud;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        t->error_code[0] = '\0'; /* a new response, e.g. after a redirect */
        t->redirect_scheme[0] = '\0';
        t->has_location = 0;
    } else if (!keep_header(line, n, "x-error-code:", '\0', t->error_code, sizeof t->error_code) &&
               !t->has_location) {
        t->has_location =
            keep_header(line, n, "location:", ':', t->redirect_scheme, sizeof t->redirect_scheme);
    }
    return n;
}

static CURLcode set_options(CURL *c, const ssf_hub *hub, struct transfer *t, const char *url,
                            struct curl_slist *headers)
{
    CURLcode rc = curl_easy_setopt(c, CURLOPT_URL, url);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L); /* Hub → CDN */
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    /* An https endpoint is never redirected to plain http (a mirror given
     * as http:// may be). */
    int secure = strncasecmp(url, "https://", 8) == 0;
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, secure ? "https" : "http,https");
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM */
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, hub->connect_timeout_s);
    /* No total timeout: a big file may take long, a stalled one may not. */
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, hub->low_speed_timeout_s);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    if (!rc) rc = curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, t->resume_from);
    if (!rc) rc = ssf_tls_trust(c);
    return rc;
}

/* Runs one request.  Fails only if the request could not be set up; how it
 * went is left in t->result and t->status. */
static int run_transfer(const ssf_hub *hub, struct transfer *t, const char *url, ssf_error *err)
{
    struct curl_slist *headers = NULL;
    CURLcode rc = CURLE_OK;
    if (hub->token) {
        ssf_buf h = {0};
        ssf_buf_printf(&h, "Authorization: Bearer %s", hub->token);
        headers = curl_slist_append(NULL, h.data);
        ssf_buf_free(&h);
        if (!headers) rc = CURLE_OUT_OF_MEMORY;
    }
    t->curl = rc ? NULL : curl_easy_init();
    if (!rc && !t->curl) rc = CURLE_FAILED_INIT;
    if (!rc) rc = set_options(t->curl, hub, t, url, headers);
    if (!rc) {
        t->result = curl_easy_perform(t->curl);
        rc = curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
    }
    curl_easy_cleanup(t->curl);
    t->curl = NULL;
    curl_slist_free_all(headers);
    if (rc != CURLE_OK)
        return ssf_fail(err, "cannot set up a request for %s: %s", url, curl_easy_strerror(rc));
    return 0;
}

static int auth_error(const ssf_hub *hub, const struct target *tg, const struct transfer *t,
                      ssf_error *err)
{
    const char *kind = tg->type == SSF_REPO_DATASET ? "dataset" : "model";
    /* Without the header it may as well be private: say both. */
    const char *gated = strcmp(t->error_code, "GatedRepo") == 0 ? "gated" : "gated or private";
    char *page = repo_page(hub, tg->type, tg->repo);
    /* The Hub refuses a name no repository has as it refuses a private
     * one (401, RepoNotFound): the name may be mistyped. */
    if (strcmp(t->error_code, "RepoNotFound") == 0)
        ssf_fail(err,
                 "%s %s not found, or private (HTTP %ld): check the name, or %s an account with "
                 "access to %s",
                 kind, tg->repo, t->status,
                 hub->token ? "HF_TOKEN was refused: use a token of" : "set HF_TOKEN to a token of",
                 page);
    else if (!hub->token)
        ssf_fail(err,
                 "access to %s %s %s refused (HTTP %ld): set HF_TOKEN to a token of an account "
                 "that accepted its terms at %s",
                 gated, kind, tg->repo, t->status, page);
    else
        ssf_fail(err,
                 "HF_TOKEN was refused for %s %s %s (HTTP %ld): use a token of an account that "
                 "accepted its terms at %s",
                 gated, kind, tg->repo, t->status, page);
    free(page);
    return -1;
}

/* Turns a transfer that did not deliver into one line of advice. */
static int transfer_error(const ssf_hub *hub, const struct target *tg, const struct transfer *t,
                          const char *url, ssf_error *err)
{
    const char *why = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
    if (t->too_big)
        return ssf_fail(err, "%s: the answer is larger than %zu MiB, which no /rows page is", url,
                        MAX_BODY >> 20);
    const char *tls_fix = ssf_tls_fix(t->result, why);
    if (tls_fix) return ssf_fail(err, "cannot trust %s: %s; %s", tg->endpoint, why, tls_fix);
    if (t->result != CURLE_OK && t->status == 0)
        return ssf_fail(err,
                        "cannot reach %s: %s; check the network (HF_ENDPOINT names a "
                        "mirror); HF_HUB_OFFLINE=1 works from the cache alone",
                        tg->endpoint, why);
    if (t->result != CURLE_OK && t->status >= 200 && t->status <= 299)
        return ssf_fail(err, "transfer from %s was interrupted: %s; run the command again", url,
                        why);
    if (t->status == 401 || t->status == 403) return auth_error(hub, tg, t, err);
    if (t->status == 404 || strstr(t->error_code, "NotFound"))
        return ssf_fail(err, "%s: not found (HTTP %ld): check the %s", url, t->status, tg->missing);
    if (t->result == CURLE_UNSUPPORTED_PROTOCOL && t->status >= 300 && t->status <= 399 &&
        strcasecmp(t->redirect_scheme, "http") == 0)
        return ssf_fail(err,
                        "%s: redirected from https to plain http, which is not followed (the "
                        "file would travel unencrypted); use an https mirror, or an http:// "
                        "HF_ENDPOINT if plain http is meant",
                        url);
    if (t->result == CURLE_UNSUPPORTED_PROTOCOL && t->status >= 300 && t->status <= 399)
        return ssf_fail(err,
                        "%s: redirected to a URL of the scheme '%s', which is not followed "
                        "(only http and https are); use a mirror that serves the files over https",
                        url, t->redirect_scheme[0] ? t->redirect_scheme : "?");
    if (t->result != CURLE_OK) /* e.g. too many redirects */
        return ssf_fail(err, "%s: %s (HTTP %ld)", url, why, t->status);
    return ssf_fail(err,
                    "%s: the server answered HTTP %ld%s%s: try again later, or check the "
                    "endpoint",
                    url, t->status, t->error_code[0] ? " " : "", t->error_code);
}

/* ---- file downloads ---------------------------------------------------- */

/* One file to fetch, with the names its messages use. */
struct fetch {
    const ssf_hub *hub;
    struct target tg;
    const char *revision, *path, *sha256;
    const char *dest; /* the final cache path */
    char *part;       /* dest + ".incomplete" */
    char *url;
};

enum attempt { ATTEMPT_DONE, ATTEMPT_RESUME, ATTEMPT_RESTART, ATTEMPT_FAILED };

/* The cache could not take the download: what is stored stays, and the
 * next fetch resumes from it. */
static int fail_cache_write(const struct fetch *fx, int errnum, ssf_error *err)
{
    return ssf_fail(err,
                    "cannot write %s: %s; %s (SSFTEVAL_CACHE names the cache's folder); the "
                    "next fetch resumes the download",
                    fx->part, strerror(errnum), ssf_write_fix(errnum));
}

static enum attempt download_attempt(const struct fetch *fx, FILE *f, ssf_error *err)
{
    struct transfer t = {.file = f};
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        ssf_fail(err, "cannot stat %s: %s", fx->part, strerror(errno));
        return ATTEMPT_FAILED;
    }
    t.resume_from = (curl_off_t)st.st_size;
    t.cap = fx->sha256 ? (curl_off_t)fx->hub->max_pinned_bytes : 0;
    if (run_transfer(fx->hub, &t, fx->url, err) != 0) return ATTEMPT_FAILED;
    if (t.too_big) {
        /* Nothing of it is worth resuming.  The lock is still held, so no
         * other process has the file open for writing. */
        int gone = unlink(fx->part) == 0;
        ssf_fail(err,
                 "%s@%s/%s: the server sent more than %lld bytes, the cap on a file pinned by "
                 "its sha256 (task data is megabytes); %s: check HF_ENDPOINT, or raise "
                 "SSFTEVAL_MAX_PINNED_BYTES for a task file pinning a larger file",
                 fx->tg.repo, fx->revision, fx->path, (long long)t.cap,
                 gone ? "the download was deleted" : "remove its .incomplete");
        return ATTEMPT_FAILED;
    }
    if (fflush(f) != 0 && !t.write_errno) t.write_errno = errno;
    if (t.write_errno) {
        fail_cache_write(fx, t.write_errno, err);
        return ATTEMPT_FAILED;
    }
    /* 416: the partial file is as long as the whole (or longer); 200 or a
     * range error: the server does not do ranges.  Either way, start over. */
    if (t.resume_from > 0 &&
        (t.restart || t.result == CURLE_RANGE_ERROR || t.status == 416 || t.status == 200)) {
        ssf_fail(err, "%s: the server would not resume the download", fx->url);
        return ATTEMPT_RESTART;
    }
    if (t.result == CURLE_OK && t.status >= 200 && t.status <= 299) return ATTEMPT_DONE;
    transfer_error(fx->hub, &fx->tg, &t, fx->url, err);
    /* Resume only after progress, so a dead server is not asked forever. */
    return t.result != CURLE_OK && t.received > 0 ? ATTEMPT_RESUME : ATTEMPT_FAILED;
}

static int download_attempts(const struct fetch *fx, FILE *f, ssf_error *err)
{
    for (int i = 0; i < MAX_ATTEMPTS; i++) {
        enum attempt a = download_attempt(fx, f, err);
        if (a == ATTEMPT_DONE) return 0;
        if (a == ATTEMPT_FAILED) return -1;
        if (a == ATTEMPT_RESTART && ftruncate(fileno(f), 0) != 0)
            return ssf_fail(err, "cannot truncate %s: %s", fx->part, strerror(errno));
    }
    return -1; /* err holds the last attempt's failure */
}

static int check_download(const struct fetch *fx, ssf_error *err)
{
    char got[65];
    if (ssf_sha256_file(fx->part, got, err) != 0) return -1;
    if (strcasecmp(got, fx->sha256) == 0) return 0;
    /* Resuming a wrong file would only stay wrong: drop it entirely. */
    unlink(fx->part);
    return ssf_fail(err,
                    "checksum mismatch for %s@%s/%s: expected %s, got %s; the download was "
                    "deleted: run the command again, or check HF_ENDPOINT",
                    fx->tg.repo, fx->revision, fx->path, fx->sha256, got);
}

/* Opens the .incomplete for appending and locks it: two processes appending
 * to one file would interleave their bytes. */
static int open_part(const struct fetch *fx, ssf_error *err)
{
    /* 0600: the gated GPQA's plain text must stay the user's own.  In a
     * cache others can write (a shared SSFTEVAL_CACHE), a link planted at
     * this name would have the download truncate and overwrite its target,
     * and a file someone else made would receive the gated text: only a
     * file made here now, or a regular file of the user's own with no other
     * name, is written.  (A file made now is not asked its owner: an NFS
     * export that squashes users reports another uid for it.)  No blocking
     * open: a FIFO at the name must not hang the download. */
    const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    int fd = open(fx->part, flags | O_CREAT | O_EXCL, 0600), made = fd >= 0;
    if (!made && errno == EEXIST) fd = open(fx->part, flags);
    if (fd < 0 && (errno == ELOOP || errno == ENXIO))
        return ssf_fail(err, "%s is a %s, which ssfteval never makes; remove it", fx->part,
                        errno == ELOOP ? "symbolic link" : "FIFO");
    if (fd < 0) return ssf_fail(err, "cannot open %s: %s", fx->part, strerror(errno));
    struct stat held, named;
    if (fstat(fd, &held) != 0 || !S_ISREG(held.st_mode) ||
        (!made && (held.st_uid != geteuid() || held.st_nlink != 1))) {
        close(fd);
        return ssf_fail(err,
                        "%s is not a file of your own with one name (another user's, a hard "
                        "link, or not a file); remove it",
                        fx->part);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return ssf_fail(err, "%s is locked: another ssfteval is downloading it; wait for it",
                        fx->part);
    }
    /* Opened just before another process renamed it into place: writing
     * would damage the finished file. */
    if (lstat(fx->part, &named) != 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev) {
        close(fd);
        return ssf_fail(err, "%s was finished by another ssfteval meanwhile: run the command again",
                        fx->part);
    }
    return fd;
}

/* Downloads, verifies and renames into place under the lock, so that no
 * other process can resume or truncate the file in between. */
static int download_locked(const struct fetch *fx, ssf_error *err)
{
    int fd = open_part(fx, err);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "ab");
    if (!f) {
        close(fd);
        return ssf_fail(err, "cannot open %s: %s", fx->part, strerror(errno));
    }
    int rc = download_attempts(fx, f, err);
    /* fsync before the rename, so a crash cannot leave a short file in place. */
    if (rc == 0 && (fflush(f) != 0 || fsync(fd) != 0)) rc = fail_cache_write(fx, errno, err);
    if (rc == 0 && fx->sha256) rc = check_download(fx, err);
    if (rc == 0 && rename(fx->part, fx->dest) != 0)
        rc = ssf_fail(err, "cannot rename %s to %s: %s", fx->part, fx->dest, strerror(errno));
    /* An empty leftover has nothing to resume: do not litter the cache. */
    struct stat st;
    if (rc != 0 && fstat(fd, &st) == 0 && st.st_size == 0) unlink(fx->part);
    if (fclose(f) != 0 && rc == 0)
        rc = ssf_fail(err, "cannot close %s: %s", fx->dest, strerror(errno));
    return rc;
}

static int download(const ssf_hub *hub, ssf_repo_type type, const char *repo, const char *revision,
                    const char *path, const char *sha256, const char *dest, ssf_error *err)
{
    struct fetch fx = {hub,      {type, repo, hub->endpoint, "repository, revision and path"},
                       revision, path,
                       sha256,   dest,
                       NULL,     NULL};
    ssf_buf part = {0};
    ssf_buf_printf(&part, "%s.incomplete", dest);
    fx.part = ssf_buf_take(&part);
    fx.url = file_url(hub, type, repo, revision, path);
    int rc = mkdirs_for(dest, err);
    if (rc == 0) rc = download_locked(&fx, err);
    free(fx.part);
    free(fx.url);
    return rc;
}

/* 1: present and matching, 0: absent or stale, -1: unreadable. */
static int cached_ok(const char *dest, const char *sha256, ssf_error *err)
{
    if (access(dest, F_OK) != 0) return 0;
    if (!sha256) return 1;
    char got[65];
    if (ssf_sha256_file(dest, got, err) != 0) return -1;
    return strcasecmp(got, sha256) == 0;
}

/* The fix differs: task data comes with `data fetch` or a data directory,
 * a model with any command that names it while online. */
static int offline_error(ssf_repo_type type, const char *what, const char *repo,
                         const char *revision, ssf_error *err)
{
    if (type == SSF_REPO_MODEL)
        return ssf_fail(err,
                        "%s is not in the cache (offline mode): run `ssfteval model info "
                        "hf:%s@%s` once with network access",
                        what, repo, revision);
    return ssf_fail(err,
                    "%s is not in the cache (offline mode): run `ssfteval data fetch` with network "
                    "access, or give run, prompt and tasks a --data-dir of local files",
                    what);
}

int ssf_hub_fetch_file(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                       const char *revision, const char *path, const char *sha256, char **local,
                       ssf_error *err)
{
    *local = NULL;
    if (check_file_names(repo, revision, path, sha256, err) != 0) return -1;
    char *dest = ssf_hub_cache_path(hub, type, repo, revision, path);
    int rc = cached_ok(dest, sha256, err);
    if (rc == 0 && hub->offline && access(dest, F_OK) == 0) {
        rc = ssf_fail(err,
                      "%s does not match its pinned sha256 (edited or damaged); run once without "
                      "--offline to fetch it again",
                      dest);
    } else if (rc == 0 && hub->offline) {
        ssf_buf what = {0};
        ssf_buf_printf(&what, "%s %s@%s/%s", type == SSF_REPO_DATASET ? "dataset" : "model", repo,
                       revision, path);
        rc = offline_error(type, what.data, repo, revision, err);
        ssf_buf_free(&what);
    } else if (rc == 0 && download(hub, type, repo, revision, path, sha256, dest, err) == 0) {
        rc = 1;
    } else if (rc == 0) {
        rc = -1;
    }
    if (rc == 1) {
        *local = dest;
        return 0;
    }
    free(dest);
    return -1;
}

int ssf_hub_verify_file(const ssf_hub *hub, ssf_repo_type type, const char *repo,
                        const char *revision, const char *path, const char *sha256, ssf_error *err)
{
    if (check_file_names(repo, revision, path, sha256, err) != 0) return -1;
    char *p = ssf_hub_cache_path(hub, type, repo, revision, path);
    char got[65];
    int rc = 0;
    if (access(p, F_OK) != 0)
        rc = ssf_fail(err, "%s@%s/%s is not in the cache (%s): run `ssfteval data fetch`", repo,
                      revision, path, p);
    else if (sha256 && ssf_sha256_file(p, got, err) != 0)
        rc = -1;
    else if (sha256 && strcasecmp(got, sha256) != 0)
        rc = ssf_fail(err,
                      "checksum mismatch for %s@%s/%s in the cache: expected %s, got %s; delete "
                      "%s and run `ssfteval data fetch` again",
                      repo, revision, path, sha256, got, p);
    free(p);
    return rc;
}

/* ---- the /rows API ----------------------------------------------------- */

struct rows_job {
    const ssf_hub *hub;
    const char *repo, *config, *split;
    size_t expected;
    size_t total; /* num_rows_total, from the first page on */
    size_t next;  /* row_idx the next row must have */
    ssf_buf out;  /* JSON Lines so far */
};

static char *rows_url(const struct rows_job *job)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/rows?dataset=", job->hub->rows_endpoint);
    url_encode(&b, job->repo, 0);
    ssf_buf_puts(&b, "&config=");
    url_encode(&b, job->config, 0);
    ssf_buf_puts(&b, "&split=");
    url_encode(&b, job->split, 0);
    ssf_buf_printf(&b, "&offset=%zu&length=%d", job->next, ROWS_PAGE);
    return ssf_buf_take(&b);
}

static int append_row(struct rows_job *job, json_t *item, const char *url, ssf_error *err)
{
    json_t *idx = json_object_get(item, "row_idx");
    json_t *row = json_object_get(item, "row");
    if (!json_is_integer(idx) || !json_is_object(row))
        return ssf_fail(err, "%s: a row lacks row_idx or row", url);
    if (json_integer_value(idx) < 0 || (size_t)json_integer_value(idx) != job->next)
        return ssf_fail(err, "%s: row_idx %" JSON_INTEGER_FORMAT " where %zu was expected", url,
                        json_integer_value(idx), job->next);
    /* the dataset viewer shortens long cells and lists them here */
    json_t *cut = json_object_get(item, "truncated_cells");
    if (json_array_size(cut) > 0) {
        const char *cell = json_string_value(json_array_get(cut, 0));
        return ssf_fail(err, "%s: row %zu came with its cell '%s' truncated by the server", url,
                        job->next, cell ? cell : "?");
    }
    char *line = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!line) return ssf_fail(err, "%s: cannot serialise row %zu", url, job->next);
    ssf_buf_puts(&job->out, line);
    ssf_buf_putc(&job->out, '\n');
    free(line);
    job->next++;
    return 0;
}

/* The first page fixes the row count; later pages must agree with it. */
static int check_total(struct rows_job *job, json_t *page, const char *url, ssf_error *err)
{
    json_t *total = json_object_get(page, "num_rows_total");
    if (!json_is_integer(total) || json_integer_value(total) < 0)
        return ssf_fail(err, "%s: the answer has no num_rows_total: check SSFTEVAL_ROWS_ENDPOINT",
                        url);
    /* Partial exports stop early: the count would silently be short. */
    if (json_is_true(json_object_get(page, "partial")))
        return ssf_fail(err, "%s: the server has only part of %s (\"partial\": true)", url,
                        job->repo);
    size_t n = (size_t)json_integer_value(total);
    if (job->next > 0 && n != job->total)
        return ssf_fail(err,
                        "%s: num_rows_total changed from %zu to %zu while reading: run the "
                        "command again",
                        url, job->total, n);
    if (job->next == 0 && job->expected && n != job->expected)
        return ssf_fail(err,
                        "%s config %s split %s has %zu rows, expected %zu: the dataset "
                        "changed upstream",
                        job->repo, job->config, job->split, n, job->expected);
    job->total = n;
    return 0;
}

static int take_page(struct rows_job *job, json_t *page, const char *url, ssf_error *err)
{
    if (check_total(job, page, url, err) != 0) return -1;
    json_t *rows = json_object_get(page, "rows");
    if (!json_is_array(rows)) return ssf_fail(err, "%s: the answer has no rows array", url);
    /* An empty page before the end would make the caller ask forever. */
    if (json_array_size(rows) == 0 && job->next < job->total)
        return ssf_fail(err, "%s: no rows at offset %zu of %zu", url, job->next, job->total);
    for (size_t i = 0; i < json_array_size(rows); i++)
        if (append_row(job, json_array_get(rows, i), url, err) != 0) return -1;
    if (job->next > job->total)
        return ssf_fail(err, "%s: more rows than num_rows_total (%zu)", url, job->total);
    return 0;
}

static int fetch_page(struct rows_job *job, ssf_error *err)
{
    struct target tg = {SSF_REPO_DATASET, job->repo, job->hub->rows_endpoint,
                        "dataset, config and split"};
    struct transfer t = {0};
    char *url = rows_url(job);
    int rc = run_transfer(job->hub, &t, url, err);
    if (rc == 0 && (t.result != CURLE_OK || t.status != 200))
        rc = transfer_error(job->hub, &tg, &t, url, err);
    json_t *page = NULL;
    if (rc == 0) {
        json_error_t jerr;
        page = json_loadb(t.body.data ? t.body.data : "", t.body.len, 0, &jerr);
        if (!page)
            rc = ssf_fail(err,
                          "%s: the answer is not valid JSON (%s, line %d): check "
                          "SSFTEVAL_ROWS_ENDPOINT",
                          url, jerr.text, jerr.line);
        else if (!json_is_object(page))
            rc = ssf_fail(err, "%s: the answer is not a JSON object: check SSFTEVAL_ROWS_ENDPOINT",
                          url);
    }
    if (rc == 0) rc = take_page(job, page, url, err);
    json_decref(page);
    ssf_buf_free(&t.body);
    free(url);
    return rc;
}

/* The rows API has no revision or hash to check a cached file against, so
 * the download's own sha256 is kept beside it ("<file>.sha256"): an edited,
 * truncated or damaged file is then told from a good one. */
static char *rows_digest_path(const char *dest)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s.sha256", dest);
    return ssf_buf_take(&b);
}

static int write_rows_digest(const char *dest, const char *data, size_t len, ssf_error *err)
{
    char hex[65], *path = rows_digest_path(dest);
    ssf_sha256_hex(data, len, hex);
    int rc = ssf_write_file_atomic(path, hex, 64, err);
    free(path);
    return rc;
}

/* 1 when the cached rows file is whole (its digest matches), 0 when it is
 * missing, damaged or has no digest. */
static int rows_cached_ok(const char *dest)
{
    char *path = rows_digest_path(dest), *want = NULL, got[65];
    size_t want_len = 0;
    ssf_error ignored;
    int ok = ssf_read_file(path, &want, &want_len, &ignored) == 0 && want_len >= 64 &&
             ssf_sha256_file(dest, got, &ignored) == 0 && memcmp(got, want, 64) == 0;
    free(path);
    free(want);
    return ok;
}

/* Reads every page, then writes the JSON Lines in one atomic step, so a
 * failure halfway never leaves a short file that would pass as cached. */
static int download_rows(const ssf_hub *hub, const char *repo, const char *config,
                         const char *split, size_t expected_rows, const char *dest, ssf_error *err)
{
    struct rows_job job = {hub, repo, config, split, expected_rows, 0, 0, {0}};
    int rc;
    /* At least one page: an empty split is one page with no rows. */
    do {
        rc = fetch_page(&job, err);
    } while (rc == 0 && job.next < job.total);
    if (rc == 0) rc = mkdirs_for(dest, err);
    if (rc == 0)
        rc = ssf_write_file_atomic(dest, job.out.data ? job.out.data : "", job.out.len, err);
    if (rc == 0) rc = write_rows_digest(dest, job.out.data ? job.out.data : "", job.out.len, err);
    ssf_buf_free(&job.out);
    return rc;
}

int ssf_hub_fetch_rows(const ssf_hub *hub, const char *repo, const char *config, const char *split,
                       size_t expected_rows, char **local, ssf_error *err)
{
    *local = NULL;
    if (check_name("repository", repo, 1, err) || check_name("config", config, 0, err) ||
        check_name("split", split, 0, err))
        return -1;
    char *dest = ssf_hub_rows_cache_path(hub, repo, config, split);
    int rc = 0;
    int present = access(dest, F_OK) == 0;
    if (present && rows_cached_ok(dest)) {
        /* cached, and whole */
    } else if (hub->offline && present) {
        rc = ssf_fail(err,
                      "%s does not match the digest of its download (edited or damaged); "
                      "run `ssfteval data fetch` with network access to fetch it again",
                      dest);
    } else if (hub->offline) {
        ssf_buf what = {0};
        ssf_buf_printf(&what, "dataset %s (config %s, split %s)", repo, config, split);
        rc = offline_error(SSF_REPO_DATASET, what.data, repo, NULL, err);
        ssf_buf_free(&what);
    } else {
        rc = download_rows(hub, repo, config, split, expected_rows, dest, err);
    }
    if (rc == 0)
        *local = dest;
    else
        free(dest);
    return rc;
}
