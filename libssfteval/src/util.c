/*
 * util.c - errors, allocation, buffers and small file helpers.  It needs the
 * C library alone (SHA-256, which needs OpenSSL, is in sha256.c), so the
 * model reader built on it compiles where only libc is.
 */
#include "ssfteval/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What ssf_fail and ssf_fail_usage share: the line, and whether it is a
 * refused option. */
static void fail_with(ssf_error *err, int usage, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void fail_with(ssf_error *err, int usage, const char *fmt, va_list ap)
{
    if (!err) return;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    err->usage = usage;
}

int(ssf_fail)(ssf_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_with(err, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int(ssf_fail_usage)(ssf_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_with(err, 1, fmt, ap);
    va_end(ap);
    return -1;
}

int(ssf_fail_prefix)(ssf_error *err, const char *fmt, ...)
{
    if (!err) return -1;
    char prefix[SSF_ERROR_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right to make room for "prefix: ", cutting its
     * tail if the whole would not fit. */
    size_t head = strlen(prefix) + 2;
    size_t old = strnlen(err->msg, SSF_ERROR_MAX - 1);
    if (head + old > SSF_ERROR_MAX - 1) old = SSF_ERROR_MAX - 1 - head;
    memmove(err->msg + head, err->msg, old);
    err->msg[head + old] = '\0';
    memcpy(err->msg, prefix, head - 2);
    err->msg[head - 2] = ':';
    err->msg[head - 1] = ' ';
    return -1;
}

static void out_of_memory(size_t n)
{
    fprintf(stderr, "ssfteval: out of memory allocating %zu bytes\n", n);
    abort();
}

const char *ssf_write_fix(int errnum)
{
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: /* past the process's file size limit (ulimit -f) */
        return "free some space, or write to another disk";
    case EROFS:
        return "the file system is read-only: write to another one";
    case EACCES:
    case EPERM:
        return "check the folder's permissions";
    case ENOENT:
    case ENOTDIR: /* a folder of the path is missing */
        return "check the path";
    default:
        return "check the disk";
    }
}

int ssf_fail_write(ssf_error *err, const char *path, int errnum)
{
    return ssf_fail(err, "cannot write %s: %s; %s", path, strerror(errnum), ssf_write_fix(errnum));
}

void *ssf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *ssf_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *ssf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *ssf_xstrdup(const char *s)
{
    return ssf_xstrndup(s, strlen(s));
}

char *ssf_xstrndup(const char *s, size_t n)
{
    char *p = ssf_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void buf_reserve(ssf_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = ssf_xrealloc(b->data, cap);
    b->cap = cap;
}

void ssf_buf_append(ssf_buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ssf_buf_append_text(ssf_buf *b, const char *s, size_t n)
{
    for (const char *end = s + n; s < end;) {
        const char *nul = memchr(s, '\0', (size_t)(end - s));
        size_t run = nul ? (size_t)(nul - s) : (size_t)(end - s);
        ssf_buf_append(b, s, run);
        if (nul) ssf_buf_append(b, "\xEF\xBF\xBD", 3);
        s += run + (nul != NULL);
    }
    if (!b->data) ssf_buf_append(b, "", 0);
}

void ssf_buf_puts(ssf_buf *b, const char *s)
{
    ssf_buf_append(b, s, strlen(s));
}

void ssf_buf_putc(ssf_buf *b, char c)
{
    ssf_buf_append(b, &c, 1);
}

void ssf_buf_printf(ssf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ssf_buf_reset(ssf_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

char *ssf_buf_take(ssf_buf *b)
{
    char *s = b->data ? b->data : ssf_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void ssf_buf_free(ssf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* strtol and strtod skip leading white space, which a whole number has not. */
static int starts_with_space(const char *s)
{
    return isspace((unsigned char)*s) != 0;
}

int ssf_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (starts_with_space(s) || errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Run seeds, sizes and counts are read into longs: a 32-bit long would
 * refuse every --seed and overflow sizes, so such targets are refused. */
_Static_assert(sizeof(long) == 8 && sizeof(size_t) == 8,
               "ssfteval is built for 64-bit Linux (LP64)");

/* The "C" locale, made once: a program that links the library may have
 * set another (setlocale(LC_ALL, "") under de_DE reads "0.5" as 0). */
static locale_t c_numeric_locale(void)
{
    static locale_t made;
    locale_t have = __atomic_load_n(&made, __ATOMIC_ACQUIRE);
    if (have) return have;
    locale_t fresh = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!fresh) return (locale_t)0;
    if (!__atomic_compare_exchange_n(&made, &have, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        freelocale(fresh); /* another thread made it first */
    return __atomic_load_n(&made, __ATOMIC_ACQUIRE);
}

double ssf_strtod(const char *s, char **end)
{
    locale_t c = c_numeric_locale();
    return c ? strtod_l(s, end, c) : strtod(s, end);
}

int ssf_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = ssf_strtod(s, &end);
    if (starts_with_space(s) || errno || end == s || *end || !isfinite(v) || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int ssf_read_file(const char *path, char **out, size_t *len, ssf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ssf_fail(err, "cannot open %s: %s", path, strerror(errno));
    ssf_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ssf_buf_append(&b, chunk, n);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        ssf_buf_free(&b);
        return ssf_fail(err, "cannot read %s: %s", path, strerror(errno));
    }
    if (len) *len = b.len;
    *out = ssf_buf_take(&b);
    return 0;
}

/* A writer killed between its write and its rename (kill -9, a crash, a
 * power cut) leaves its temporary file, PATH.tmp.XXXXXX, behind.  The next
 * write to PATH removes such a file when nothing holds the lock every writer
 * holds on its own (flock, which a process on another host of a shared file
 * system, or in another PID namespace, holds as well) and it has not been
 * written for a minute (which covers the instant between a writer's mkstemp
 * and its flock). */
enum { ORPHAN_AGE_S = 60 };

/* PATH.tmp. and the six letters or digits mkstemp puts for its XXXXXX. */
static int temp_name_of(const char *name, const char *base, size_t base_len)
{
    if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, ".tmp.", 5) != 0) return 0;
    const char *suffix = name + base_len + 5;
    size_t n = 0;
    while (n < 7 && suffix[n] && isalnum((unsigned char)suffix[n]))
        n++;
    return n == 6 && suffix[6] == '\0';
}

/* Opened without blocking (a FIFO at the name must not hang the write) and
 * locked shared, which the writer's exclusive lock refuses and which NFS
 * grants on a descriptor opened for reading. */
static void remove_if_orphaned(int dir_fd, const char *name)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && time(NULL) - st.st_mtime >= ORPHAN_AGE_S &&
        flock(fd, LOCK_SH | LOCK_NB) == 0)
        (void)unlinkat(dir_fd, name, 0);
    close(fd);
}

static void remove_orphaned_temps(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = ssf_xstrdup(!slash ? "." : slash == path ? "/" : path);
    if (slash && slash != path) dir[slash - path] = '\0';
    const char *base = slash ? slash + 1 : path;
    size_t base_len = strlen(base);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (temp_name_of(e->d_name, base, base_len)) remove_if_orphaned(dirfd(d), e->d_name);
    if (d) closedir(d);
    free(dir);
}

int ssf_atomic_begin(ssf_atomic_file *a, const char *path, int public_mode, ssf_error *err)
{
    remove_orphaned_temps(path);
    ssf_buf tmp = {0};
    ssf_buf_printf(&tmp, "%s.tmp.XXXXXX", path);
    *a = (ssf_atomic_file){0};
    int fd = mkostemp(tmp.data, O_CLOEXEC); /* mode 0600; no child inherits it, or its lock */
    if (fd < 0) { /* where a folder's permissions or a read-only file system show */
        int errnum = errno;
        ssf_fail(err, "cannot create a temporary file beside %s: %s; %s", path, strerror(errnum),
                 ssf_write_fix(errnum));
        ssf_buf_free(&tmp);
        return -1;
    }
    (void)flock(fd, LOCK_EX); /* held until the file is closed: see remove_orphaned_temps */
    if (public_mode) {        /* what open(path, O_CREAT, 0666) would have made */
        mode_t mask = umask(0);
        umask(mask);
        (void)fchmod(fd, 0666 & ~mask);
    }
    a->f = fdopen(fd, "w");
    int errnum = errno; /* before the allocations below */
    a->tmp_path = ssf_buf_take(&tmp);
    a->path = ssf_xstrdup(path);
    if (a->f) return 0;
    ssf_fail_write(err, a->tmp_path, errnum);
    close(fd);
    ssf_atomic_abandon(a);
    return -1;
}

void ssf_atomic_abandon(ssf_atomic_file *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp_path) unlink(a->tmp_path);
    free(a->tmp_path);
    free(a->path);
    *a = (ssf_atomic_file){0};
}

int ssf_atomic_commit(ssf_atomic_file *a, ssf_error *err)
{
    errno = 0;
    int rc = fflush(a->f) == 0 && !ferror(a->f) && fsync(fileno(a->f)) == 0 ? 0 : -1;
    if (rc != 0) /* errno 0: an earlier write failed, its cause gone */
        ssf_fail_write(err, a->tmp_path, errno ? errno : EIO);
    /* Renamed before the close, which drops the lock: another writer's
     * cleanup must never find a finished file unlocked under its temp name. */
    else if (rename(a->tmp_path, a->path) != 0)
        rc = ssf_fail(err, "cannot rename %s to %s: %s", a->tmp_path, a->path, strerror(errno));
    else
        free(a->tmp_path), a->tmp_path = NULL; /* nothing left to remove */
    if (fclose(a->f) != 0 && rc == 0)
        rc = ssf_fail(err, "cannot close %s: %s", a->path, strerror(errno));
    a->f = NULL;
    ssf_atomic_abandon(a);
    return rc;
}

int ssf_write_file_atomic(const char *path, const void *data, size_t len, ssf_error *err)
{
    ssf_atomic_file a;
    if (ssf_atomic_begin(&a, path, 0, err)) return -1;
    if (len && fwrite(data, 1, len, a.f) != len) {
        ssf_fail_write(err, a.tmp_path, errno);
        ssf_atomic_abandon(&a);
        return -1;
    }
    return ssf_atomic_commit(&a, err);
}

int ssf_mkdirs(const char *path, ssf_error *err)
{
    char *p = ssf_xstrdup(path);
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            ssf_fail(err, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = c;
        if (c == '\0') break;
    }
    free(p);
    return 0;
}

double ssf_monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *ssf_path_join(const char *dir, const char *name)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/%s", dir, name);
    return ssf_buf_take(&b);
}

int ssf_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int ssf_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
