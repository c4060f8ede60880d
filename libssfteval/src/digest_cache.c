/*
 * digest_cache.c - SHA-256 of large files, remembered.  A checkpoint's
 * weights are part of a run's identity, and hashing tens of gigabytes at
 * every command would cost a minute; so each file's digest is kept in the
 * cache under the file's device and inode, and used again while the file's
 * size, modification and change times are those it was taken at.  A file
 * rewritten in place changes its times (and ctime cannot be set back), so
 * its digest is taken again.  A file changed in the last seconds (its
 * mtime or ctime) is not remembered: on a file system that keeps times to
 * the second, a second change within that second would leave them as they
 * were.
 */
#include "ssfteval/util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENTRY_MAGIC "ssfteval-sha256-v1"

/* What the digest is valid for: the file's identity and times. */
static void describe_stat(const struct stat *st, char *out, size_t cap)
{
    snprintf(out, cap, ENTRY_MAGIC " %" PRIu64 " %lld.%09ld %lld.%09ld", (uint64_t)st->st_size,
             (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
             st->st_ctim.tv_nsec);
}

static char *entry_path(const char *cache_dir, const struct stat *st)
{
    char name[64];
    snprintf(name, sizeof name, "sha256/%" PRIx64 "-%" PRIx64, (uint64_t)st->st_dev,
             (uint64_t)st->st_ino);
    return ssf_path_join(cache_dir, name);
}

static int is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == '\n' || s[64] == '\0';
}

/* The entry's first bytes, if it is a regular file: whatever else sits at
 * its name (a FIFO, a link to /dev/zero) is no entry, and is not read. */
static size_t read_entry(const char *entry, char *buf, size_t cap)
{
    int fd = open(entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, buf, cap - 1) : -1;
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* The remembered digest, if the entry was taken at these times. */
static int lookup(const char *entry, const char *valid_for, char hex[65])
{
    char text[256];
    size_t len = read_entry(entry, text, sizeof text), head = strlen(valid_for);
    int hit = len >= head + 1 + 64 && memcmp(text, valid_for, head) == 0 && text[head] == ' ' &&
              is_hex64(text + head + 1);
    if (hit) {
        memcpy(hex, text + head + 1, 64);
        hex[64] = '\0';
    }
    return hit;
}

/* A cache that cannot be written only costs the next command the hash. */
static void remember(const char *cache_dir, const char *entry, const char *valid_for,
                     const char *hex)
{
    char *dir = ssf_path_join(cache_dir, "sha256"), line[256];
    ssf_error ignored;
    int n = snprintf(line, sizeof line, "%s %s\n", valid_for, hex);
    if (ssf_mkdirs(dir, &ignored) == 0) ssf_write_file_atomic(entry, line, (size_t)n, &ignored);
    free(dir);
}

/* The digest of the file `before` describes: kept, or taken from data
 * (its bytes as mapped) or else by reading path, and kept when the file was
 * settled and path still holds it unchanged afterwards (one that changed
 * while it was read has no digest to remember). */
static int cached_digest(const char *path, const void *data, size_t len, const struct stat *before,
                         const char *cache_dir, FILE *log, char hex[65], ssf_error *err)
{
    char valid_for[160];
    describe_stat(before, valid_for, sizeof valid_for);
    char *entry = cache_dir ? entry_path(cache_dir, before) : NULL;
    if (entry && lookup(entry, valid_for, hex)) {
        free(entry);
        return 0;
    }
    if (log && before->st_size >= (off_t)1 << 30)
        fprintf(log, "ssfteval: hashing %s (%.1f GB) once, for the run's identity\n", path,
                (double)before->st_size / 1e9);
    time_t started = time(NULL);
    int settled = before->st_mtim.tv_sec + 2 < started && before->st_ctim.tv_sec + 2 < started;
    int rc = 0;
    if (data)
        ssf_sha256_hex(data, len, hex);
    else
        rc = ssf_sha256_file(path, hex, err);
    struct stat after;
    if (rc == 0 && entry && settled && stat(path, &after) == 0) {
        char now[160];
        describe_stat(&after, now, sizeof now);
        if (strcmp(now, valid_for) == 0 && after.st_ino == before->st_ino &&
            after.st_dev == before->st_dev)
            remember(cache_dir, entry, valid_for, hex);
    }
    free(entry);
    return rc;
}

int ssf_sha256_file_cached(const char *path, const char *cache_dir, FILE *log, char hex[65],
                           ssf_error *err)
{
    struct stat before;
    if (stat(path, &before) != 0) return ssf_sha256_file(path, hex, err); /* it names the cause */
    return cached_digest(path, NULL, 0, &before, cache_dir, log, hex, err);
}

void ssf_sha256_mapped_cached(const char *path, const void *data, size_t len,
                              const struct stat *opened, const char *cache_dir, FILE *log,
                              char hex[65])
{
    ssf_error ignored; /* memory is not read with errors */
    cached_digest(path, data, len, opened, cache_dir, log, hex, &ignored);
}
