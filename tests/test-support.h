/*
 * test-support.h - small helpers the tests share: where ../shared is, and
 * temporary directories.
 */
#ifndef SSFTEVAL_TEST_SUPPORT_H
#define SSFTEVAL_TEST_SUPPORT_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ../shared as the build told the test (SSFTEVAL_SHARED). */
static inline const char *shared_dir(void)
{
    const char *d = getenv("SSFTEVAL_SHARED");
    return d && *d ? d : NULL;
}

static inline int shared_available(void)
{
    struct stat st;
    const char *d = shared_dir();
    if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    fprintf(stderr, "skipped: ../shared not found (SSFTEVAL_SHARED=%s)\n", d ? d : "");
    return 0;
}

/* shared_dir()/rel, malloc'd. */
static inline char *shared_path(const char *rel)
{
    const char *d = shared_dir();
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", d, rel);
    return p;
}

/* A fresh temporary directory (malloc'd path). */
static inline char *make_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    size_t n = strlen(base ? base : "/tmp") + 32;
    char *p = malloc(n);
    snprintf(p, n, "%s/ssfteval-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

/* Writes text to dir/name and returns the path (malloc'd). */
static inline char *write_temp_file(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

static inline int remove_tree_entry(const char *path, const struct stat *st, int flag,
                                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf of a test's temporary directory, without a shell: nftw visits the
 * children first (FTW_DEPTH) and does not follow symlinks (FTW_PHYS).  A
 * directory already gone is not an error, as with rm -f. */
static inline void remove_tree(const char *dir)
{
    if (nftw(dir, remove_tree_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}
#endif
