/*
 * util.h - error reporting, growable buffers and allocation helpers shared by
 * every module of libssfteval.
 *
 * Errors: a failing function returns -1 (or NULL) and writes one line into the
 * caller's ssf_error.  The line names the thing that failed and, where there
 * is one, the fix.  Nothing is global, so every module is reentrant.
 */
#ifndef SSFTEVAL_UTIL_H
#define SSFTEVAL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SSF_ERROR_MAX 1024

/* This build: the project's version, with "+g" and the commit (and
 * "-dirty" for changed files) when built from a git checkout. */
const char *ssf_version(void);

typedef struct ssf_error {
    char msg[SSF_ERROR_MAX];
    /* Nonzero when what failed is the caller's options as given (an unknown
     * device, a context past the model's, an option the chosen device lacks)
     * rather than the machine or the files (no GPU, too little memory, a
     * corrupt file), so that a program can tell a bad command line from work
     * that failed. */
    int usage;
} ssf_error;

/* Formats one line into err (which may be NULL).  Always returns -1 so that
 * callers can write `return ssf_fail(err, ...)`. */
int ssf_fail(ssf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ssf_fail for options refused as such: sets err->usage as well. */
int ssf_fail_usage(ssf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the message already in err, to add context such as
 * the file name as an error travels up. */
int ssf_fail_prefix(ssf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What to do about a file that could not be written, by its errno: a
 * full disk or quota, a file past the size limit, a read-only file system,
 * a folder without write permission, a folder missing from the path; else
 * "check the disk". */
const char *ssf_write_fix(int errnum);
/* "cannot write PATH: why; fix" for errno errnum; returns -1. */
int ssf_fail_write(ssf_error *err, const char *path, int errnum);

#ifdef __clang_analyzer__
/* The static analyzer does not follow calls to variadic functions, so it
 * would walk paths on which `rc = ssf_fail(...)` left rc at 0.  Spell out the
 * -1 for it (util.c defines the functions under parenthesised names). */
#define ssf_fail(...) ((void)ssf_fail(__VA_ARGS__), -1)
#define ssf_fail_usage(...) ((void)ssf_fail_usage(__VA_ARGS__), -1)
#define ssf_fail_prefix(...) ((void)ssf_fail_prefix(__VA_ARGS__), -1)
#endif

/* Allocation that never returns NULL: out of memory is not a recoverable
 * condition for an evaluation harness, so these print and abort. */
void *ssf_xmalloc(size_t n);
void *ssf_xcalloc(size_t count, size_t size);
void *ssf_xrealloc(void *p, size_t n);
char *ssf_xstrdup(const char *s);
char *ssf_xstrndup(const char *s, size_t n);

/* A growable byte buffer, always NUL-terminated when data is not NULL. */
typedef struct ssf_buf {
    char *data;
    size_t len;
    size_t cap;
} ssf_buf;

void ssf_buf_append(ssf_buf *b, const char *s, size_t n);
void ssf_buf_puts(ssf_buf *b, const char *s);
/* Appends text that is to stay one C string: each NUL byte (a U+0000 a
 * model wrote) becomes U+FFFD, so nothing after it is lost. */
void ssf_buf_append_text(ssf_buf *b, const char *s, size_t n);
void ssf_buf_putc(ssf_buf *b, char c);
void ssf_buf_printf(ssf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ssf_buf_reset(ssf_buf *b);
/* Hands the string over to the caller (free() it) and empties the buffer. */
char *ssf_buf_take(ssf_buf *b);
void ssf_buf_free(ssf_buf *b);

/* The whole of s as a decimal integer, or a number, in [lo, hi]: 0, or -1
 * (and *out untouched) when s is anything else: empty, trailing characters,
 * out of range, or not finite. */
int ssf_parse_long(const char *s, long lo, long hi, long *out);
int ssf_parse_double(const char *s, double lo, double hi, double *out);
/* strtod in the "C" locale, whatever locale the program has set: numbers
 * in options and files are written with a '.'. */
double ssf_strtod(const char *s, char **end);

/* Reads a whole file.  On success *out is NUL-terminated and owned by the
 * caller. */
int ssf_read_file(const char *path, char **out, size_t *len, ssf_error *err);

/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, then rename, so readers never see a partial file (mode 0600).  A
 * writer holds a lock on its temporary file; one a killed writer left (no
 * lock, a minute old) is removed by the next write to path. */
int ssf_write_file_atomic(const char *path, const void *data, size_t len, ssf_error *err);

/* The same for a file written piece by piece through f: begin makes the
 * temporary file (public_mode: with the mode the umask gives new files,
 * else 0600); commit flushes, syncs and renames it over path; abandon
 * removes it, leaving whatever path held untouched.  Both end the writer. */
typedef struct ssf_atomic_file {
    FILE *f;
    char *tmp_path, *path;
} ssf_atomic_file;
int ssf_atomic_begin(ssf_atomic_file *a, const char *path, int public_mode, ssf_error *err);
int ssf_atomic_commit(ssf_atomic_file *a, ssf_error *err);
void ssf_atomic_abandon(ssf_atomic_file *a);

/* Seconds on the monotonic clock (for durations and rates). */
double ssf_monotonic_seconds(void);

/* "dir/name", malloc'd. */
char *ssf_path_join(const char *dir, const char *name);
/* Whether path exists (anything), and whether it is a regular file. */
int ssf_path_exists(const char *path);
int ssf_is_file(const char *path);

/* mkdir -p. */
int ssf_mkdirs(const char *path, ssf_error *err);

/* SHA-256 as 64 lowercase hex digits (+ NUL) of a memory block or a file. */
void ssf_sha256_hex(const void *data, size_t len, char hex[65]);
int ssf_sha256_file(const char *path, char hex[65], ssf_error *err);

/* ssf_sha256_file, remembered under cache_dir/sha256/ (NULL: not at all)
 * for the file's device and inode while its size, modification and change
 * times stay those it was taken at.  Says on log (may be NULL) when it
 * reads a file of a gigabyte or more. */
int ssf_sha256_file_cached(const char *path, const char *cache_dir, FILE *log, char hex[65],
                           ssf_error *err);
/* The same for a file already mapped: data[0..len) are its bytes and
 * opened its stat when it was opened (ssf_safetensors_mapped), so the
 * digest is of what was read, whatever path holds by now; it is kept only
 * while path still holds that file unchanged. */
struct stat;
void ssf_sha256_mapped_cached(const char *path, const void *data, size_t len,
                              const struct stat *opened, const char *cache_dir, FILE *log,
                              char hex[65]);

/* SHA-256 fed piece by piece, for bytes read once for another purpose (a
 * file that is parsed and digested in the same pass).  ssf_sha256_end
 * writes the digest and frees the context. */
typedef struct ssf_sha256_ctx ssf_sha256_ctx;
ssf_sha256_ctx *ssf_sha256_begin(void);
void ssf_sha256_update(ssf_sha256_ctx *c, const void *data, size_t len);
void ssf_sha256_end(ssf_sha256_ctx *c, char hex[65]);

#ifdef __cplusplus
}
#endif
#endif
