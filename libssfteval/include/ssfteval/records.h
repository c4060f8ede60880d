/*
 * records.h - streaming readers for tabular data: JSON Lines, JSON arrays and
 * CSV (RFC 4180, quoted fields may span lines).
 *
 * Every record reaches the caller as a jansson object.  For CSV the first row
 * is the header and every value is a string.  Errors name the source and the
 * line (JSONL, JSON) or record and line (CSV) where reading stopped.
 */
#ifndef SSFTEVAL_RECORDS_H
#define SSFTEVAL_RECORDS_H

#include <stdio.h>
#include <jansson.h>
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_format {
    SSF_FORMAT_AUTO = 0, /* from the file name: .jsonl, .json, .csv */
    SSF_FORMAT_JSONL,
    SSF_FORMAT_JSON,
    SSF_FORMAT_CSV,
    /* JSONL whose strings may hold \u0000 (a tokenizer's text can): read
     * them with json_string_length(), not as C strings. */
    SSF_FORMAT_JSONL_WITH_NUL,
} ssf_format;

/* Called once per record, with its 1-based number and the line where it
 * starts.  The record is borrowed: json_incref() it to keep it.  A non-zero
 * return stops reading and is passed back (set err yourself first). */
typedef int (*ssf_record_fn)(json_t *record, size_t number, size_t line, void *ud);

/* name is what errors call the source (usually the path). */
int ssf_records_read_stream(FILE *f, const char *name, ssf_format format, ssf_record_fn fn,
                            void *ud, ssf_error *err);
int ssf_records_read_file(const char *path, ssf_format format, ssf_record_fn fn, void *ud,
                          ssf_error *err);
int ssf_records_read_memory(const char *data, size_t len, const char *name, ssf_format format,
                            ssf_record_fn fn, void *ud, ssf_error *err);

/* Whether s[0..n) is well-formed UTF-8, as JSON text must be. */
int ssf_utf8_valid(const char *s, size_t n);
/* The length of the longest well-formed UTF-8 prefix of s[0..n). */
size_t ssf_utf8_valid_prefix(const char *s, size_t n);

/* Parses a format name ("jsonl", "json", "csv", "auto"); -1 if unknown. */
int ssf_format_from_name(const char *name);
/* Guesses the format from a path's extension; SSF_FORMAT_AUTO if it can't. */
ssf_format ssf_format_from_path(const char *path);

/* Reads one member of a zip archive (ZipCrypto- or AES-encrypted when
 * password is not NULL) into memory.  *out is NUL-terminated. */
int ssf_zip_read_member(const char *zip_path, const char *member, const char *password, char **out,
                        size_t *len, ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
