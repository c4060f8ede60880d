/*
 * zip.c - reads one member of a zip archive into memory with libzip.
 *
 * The GPQA data ships as a ZipCrypto-encrypted archive whose password is
 * public; decrypting at load time keeps the plain CSV off the disk.
 */
#include "ssfteval/records.h"

#include <stdint.h>
#include <stdlib.h>

#include <zip.h>

/* libzip's own text for an error code, e.g. "Not a zip archive". */
static int fail_code(ssf_error *err, const char *what, int code)
{
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    ssf_fail(err, "%s: %s", what, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return -1;
}

static int open_error(const char *zip_path, int code, ssf_error *err)
{
    switch (code) {
    case ZIP_ER_NOENT:
        return ssf_fail(err, "cannot open %s: no such file; check --data-dir", zip_path);
    case ZIP_ER_NOZIP: /* also what a download cut short looks like: the directory is last */
        return ssf_fail(err,
                        "%s is not a zip archive (cut short, or another file); replace it with "
                        "the published one",
                        zip_path);
    case ZIP_ER_INCONS:
        return ssf_fail(err, "%s is a damaged zip archive; replace it with the published one",
                        zip_path);
    default: {
        ssf_buf what = {0};
        ssf_buf_printf(&what, "cannot open %s", zip_path);
        fail_code(err, what.data, code);
        ssf_buf_free(&what);
        return -1;
    }
    }
}

/* Errors from opening or reading an encrypted member.  ZipCrypto checks the
 * password against one byte only, so 1 wrong password in 256 gets past the
 * open and shows up as a CRC mismatch instead. */
static int member_error(const char *zip_path, const char *member, zip_error_t *ze, ssf_error *err)
{
    switch (zip_error_code_zip(ze)) {
    case ZIP_ER_NOPASSWD:
        return ssf_fail(err, "%s: member %s is encrypted: no password given", zip_path, member);
    case ZIP_ER_WRONGPASSWD:
        return ssf_fail(err, "%s: member %s is encrypted: wrong password", zip_path, member);
    case ZIP_ER_CRC:
        return ssf_fail(err,
                        "%s: member %s: CRC mismatch (wrong password or damaged archive); "
                        "replace the archive with the published one",
                        zip_path, member);
    case ZIP_ER_ZLIB:
    case ZIP_ER_COMPRESSED_DATA:
    case ZIP_ER_INCONS: /* the member ends before the size its entry gives */
        return ssf_fail(err,
                        "%s: member %s: %s (a damaged archive); replace it with the published one",
                        zip_path, member, zip_error_strerror(ze));
    default:
        return ssf_fail(err, "%s: member %s: %s", zip_path, member, zip_error_strerror(ze));
    }
}

/* Reads exactly st->size bytes, then one more read that must return 0: libzip
 * verifies the CRC only when the member's data reaches its end. */
static int read_all(zip_file_t *zf, const char *zip_path, const char *member, char *buf,
                    size_t size, ssf_error *err)
{
    size_t got = 0;
    for (;;) {
        char extra;
        zip_int64_t n =
            got < size ? zip_fread(zf, buf + got, size - got) : zip_fread(zf, &extra, 1);
        if (n < 0) return member_error(zip_path, member, zip_file_get_error(zf), err);
        if (n == 0) break;
        if (got == size)
            return ssf_fail(err, "%s: member %s is longer than its directory entry says", zip_path,
                            member);
        got += (size_t)n;
    }
    if (got < size)
        return ssf_fail(err, "%s: member %s is truncated (%zu of %zu bytes)", zip_path, member, got,
                        size);
    return 0;
}

enum { MAX_MEMBER_BYTES = 1 << 30 }; /* 1 GiB: GPQA's CSV is 1.6 MB */

static int read_member(zip_t *za, const char *zip_path, const char *member, const char *password,
                       char **out, size_t *len, ssf_error *err)
{
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(za, member, 0, &st) != 0) {
        if (zip_error_code_zip(zip_get_error(za)) == ZIP_ER_NOENT)
            return ssf_fail(err, "%s: no member named %s", zip_path, member);
        return member_error(zip_path, member, zip_get_error(za), err);
    }
    if (!(st.valid & ZIP_STAT_SIZE) || st.size >= SIZE_MAX)
        return ssf_fail(err, "%s: member %s has no usable size", zip_path, member);
    /* The size is the archive's word, allocated before a byte is read: a
     * small crafted archive must not claim gigabytes. */
    if (st.size > MAX_MEMBER_BYTES)
        return ssf_fail(err,
                        "%s: member %s claims %llu bytes, more than the %d MiB a task's data "
                        "may have; check the archive",
                        zip_path, member, (unsigned long long)st.size, MAX_MEMBER_BYTES >> 20);
    zip_file_t *zf = zip_fopen_index_encrypted(za, st.index, 0, password);
    if (!zf) return member_error(zip_path, member, zip_get_error(za), err);

    size_t size = (size_t)st.size;
    char *buf = ssf_xmalloc(size + 1);
    int rc = read_all(zf, zip_path, member, buf, size, err);
    int close_code = zip_fclose(zf);
    if (rc == 0 && close_code != 0) rc = fail_code(err, zip_path, close_code);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    buf[size] = '\0';
    *out = buf;
    if (len) *len = size;
    return 0;
}

int ssf_zip_read_member(const char *zip_path, const char *member, const char *password, char **out,
                        size_t *len, ssf_error *err)
{
    int code = 0;
    zip_t *za = zip_open(zip_path, ZIP_RDONLY, &code);
    if (!za) return open_error(zip_path, code, err);
    int rc = read_member(za, zip_path, member, password, out, len, err);
    /* Opened read-only, so there is nothing to write back. */
    zip_discard(za);
    return rc;
}
