/*
 * records.c - JSON Lines, JSON array and CSV readers that hand each record to
 * a callback as a jansson object.
 *
 * JSONL and CSV are read as streams, one record at a time, so a bad record
 * deep in a file is reported after the good ones before it were delivered,
 * exactly as a reader of the file would see it.  A JSON array is parsed whole
 * because that is how jansson reads it.
 */
#include "ssfteval/records.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <utf8proc.h>

static const char utf8_bom[] = "\xEF\xBB\xBF";

/* ------------------------------------------------------------------------ */
/* Format names                                                              */
/* ------------------------------------------------------------------------ */

int ssf_format_from_name(const char *name)
{
    static const struct {
        const char *name;
        ssf_format format;
    } names[] = {
        {"auto", SSF_FORMAT_AUTO},
        {"jsonl", SSF_FORMAT_JSONL},
        {"json", SSF_FORMAT_JSON},
        {"csv", SSF_FORMAT_CSV},
    };
    if (!name) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) return (int)names[i].format;
    return -1;
}

ssf_format ssf_format_from_path(const char *path)
{
    if (!path) return SSF_FORMAT_AUTO;
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base + 1 : path, '.');
    if (!dot) return SSF_FORMAT_AUTO;
    int format = ssf_format_from_name(dot + 1);
    return format < 0 ? SSF_FORMAT_AUTO : (ssf_format)format;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */
/* ------------------------------------------------------------------------ */

static void skip_bom(const char **s, size_t *n)
{
    if (*n >= 3 && memcmp(*s, utf8_bom, 3) == 0) {
        *s += 3;
        *n -= 3;
    }
}

/* How an error message names a JSON value that should have been an object. */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static int read_error(const char *name, ssf_error *err)
{
    return ssf_fail(err, "cannot read %s: %s", name, strerror(errno));
}

/* ------------------------------------------------------------------------ */
/* JSON Lines                                                                */
/* ------------------------------------------------------------------------ */

/* JSON's own whitespace: a line of only this is a blank line, not a record. */
static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* Whether jansson refused the text for a \u0000, naming its option
 * JSON_ALLOW_NUL, which means nothing to a user. */
static int holds_nul_escape(const json_error_t *jerr)
{
    return strstr(jerr->text, "\\u0000") != NULL;
}

/* Decodes one line into a new reference to an object.  JSON_DECODE_ANY lets a
 * scalar line parse, so that it gets the clearer "expected an object" error;
 * the end-of-input check stays on, so trailing junk on a line is an error.
 * A trailing CR is JSON whitespace, which is what makes CRLF files work. */
static int jsonl_decode(const char *s, size_t n, const char *name, size_t lineno, int allow_nul,
                        json_t **out, ssf_error *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | (allow_nul ? JSON_ALLOW_NUL : 0), &jerr);
    if (!v && holds_nul_escape(&jerr))
        return ssf_fail(err,
                        "%s:%zu: a string holds \\u0000, which ssfteval's texts cannot; "
                        "remove it from that line",
                        name, lineno);
    if (!v)
        return ssf_fail(err, "%s:%zu: malformed JSON line: %s; fix or remove that line", name,
                        lineno, jerr.text);
    if (!json_is_object(v)) {
        ssf_fail(err, "%s:%zu: expected a JSON object per line, got %s", name, lineno,
                 json_kind(v));
        json_decref(v);
        return -1;
    }
    *out = v;
    return 0;
}

static int read_jsonl(FILE *f, const char *name, int allow_nul, ssf_record_fn fn, void *ud,
                      ssf_error *err)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0, number = 0;
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        const char *s = line;
        size_t n = (size_t)got;
        if (++lineno == 1) skip_bom(&s, &n);
        if (is_blank(s, n)) continue;
        json_t *rec = NULL;
        rc = jsonl_decode(s, n, name, lineno, allow_nul, &rec, err);
        if (rc != 0) break;
        rc = fn(rec, ++number, lineno, ud);
        json_decref(rec);
    }
    if (rc == 0 && ferror(f)) rc = read_error(name, err);
    free(line);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* JSON array                                                                */
/* ------------------------------------------------------------------------ */

static int slurp(FILE *f, const char *name, ssf_buf *b, ssf_error *err)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ssf_buf_append(b, chunk, n);
    if (ferror(f)) {
        ssf_buf_free(b);
        return read_error(name, err);
    }
    return 0;
}

/* Index of the quote that closes the string opening at s[i]. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
    return i;
}

/* jansson keeps no positions for values, so the line where each top-level
 * element starts comes from a scan that tracks only strings and nesting.  The
 * text has already parsed, so the scan can trust it to be valid JSON, whose
 * strings never hold a raw newline. */
static size_t *element_lines(const char *s, size_t n, size_t count)
{
    size_t *lines = ssf_xcalloc(count, sizeof *lines);
    size_t line = 1, depth = 0, k = 0;
    int want = 0; /* the next token starts an element */
    for (size_t i = 0; i < n && k < count; i++) {
        char c = s[i];
        if (c == '\n') line++;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (want) {
            lines[k++] = line;
            want = 0;
        }
        if (c == '"')
            i = skip_string(s, n, i);
        else if (c == '[' || c == '{')
            want = ++depth == 1;
        else if (c == ']' || c == '}')
            depth--;
        else if (c == ',' && depth == 1)
            want = 1;
    }
    return lines;
}

static int json_each(json_t *root, const char *s, size_t n, const char *name, ssf_record_fn fn,
                     void *ud, ssf_error *err)
{
    size_t count = json_array_size(root);
    size_t *lines = element_lines(s, n, count);
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        json_t *rec = json_array_get(root, i);
        if (json_is_object(rec))
            rc = fn(rec, i + 1, lines[i], ud);
        else
            rc = ssf_fail(err, "%s:%zu: array element %zu (record %zu) is %s, expected an object",
                          name, lines[i], i, i + 1, json_kind(rec));
    }
    free(lines);
    return rc;
}

static int read_json(FILE *f, const char *name, ssf_record_fn fn, void *ud, ssf_error *err)
{
    ssf_buf b = {0};
    if (slurp(f, name, &b, err) != 0) return -1;
    const char *s = b.data ? b.data : "";
    size_t n = b.len;
    skip_bom(&s, &n);

    json_error_t jerr;
    json_t *root = json_loadb(s, n, JSON_DECODE_ANY, &jerr);
    int rc;
    if (!root && holds_nul_escape(&jerr))
        rc = ssf_fail(err,
                      "%s:%d:%d: a string holds \\u0000, which ssfteval's texts cannot; "
                      "remove it",
                      name, jerr.line, jerr.column);
    else if (!root)
        rc = ssf_fail(err, "%s:%d:%d: malformed JSON: %s", name, jerr.line, jerr.column, jerr.text);
    else if (!json_is_array(root))
        rc = ssf_fail(err, "%s: expected a JSON array of objects, got %s", name, json_kind(root));
    else
        rc = json_each(root, s, n, name, fn, ud, err);
    json_decref(root);
    ssf_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* CSV (RFC 4180)                                                            */
/* ------------------------------------------------------------------------ */

enum csv_end { CSV_COMMA, CSV_EOL, CSV_EOF };

typedef struct csv_reader {
    FILE *f;
    const char *name;
    int pending[3]; /* pushed-back bytes, a stack: BOM sniffing and peeks */
    int npending;
    int prev;           /* last byte consumed, so CRLF counts as one line end */
    size_t line;        /* line of the next byte */
    size_t record;      /* record being read, 1-based; 0 while reading the header */
    size_t record_line; /* line where that record starts */
    ssf_buf *fields;    /* the record's fields, reused from record to record */
    size_t nfields, cap;
    int quoted;  /* whether the last field read was quoted */
    char **keys; /* the header */
    size_t nkeys;
} csv_reader;

/* Fails with "{name}: record {n} (line {l}): ..." so every CSV error says
 * where the record that broke starts. */
static int csv_fail(csv_reader *r, ssf_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int csv_fail(csv_reader *r, ssf_error *err, const char *fmt, ...)
{
    char msg[SSF_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->record == 0)
        return ssf_fail(err, "%s: header (line %zu): %s", r->name, r->record_line, msg);
    return ssf_fail(err, "%s: record %zu (line %zu): %s", r->name, r->record, r->record_line, msg);
}

static int csv_raw(csv_reader *r)
{
    if (r->npending > 0) return r->pending[--r->npending];
    return getc(r->f);
}

static int csv_peek(csv_reader *r)
{
    int c = csv_raw(r);
    if (c != EOF) r->pending[r->npending++] = c;
    return c;
}

/* Consumes a byte.  CR, LF and CRLF each end one line, as they end records. */
static int csv_getc(csv_reader *r)
{
    int c = csv_raw(r);
    if (c == '\r' || (c == '\n' && r->prev != '\r')) r->line++;
    r->prev = c;
    return c;
}

static void csv_skip_bom(csv_reader *r)
{
    int c[3];
    int n = 0;
    while (n < 3 && (c[n] = csv_raw(r)) == (unsigned char)utf8_bom[n])
        n++;
    if (n == 3) return;
    /* Not a BOM: push back what was read, last byte first. */
    if (c[n] != EOF) r->pending[r->npending++] = c[n];
    while (n > 0)
        r->pending[r->npending++] = c[--n];
}

/* After a CR or LF that ends a record: a CR may be followed by its LF. */
static enum csv_end csv_line_end(csv_reader *r, int c)
{
    if (c == '\r' && csv_peek(r) == '\n') csv_getc(r);
    return CSV_EOL;
}

/* Whether c ends a field (a comma, a line end, the end of the input),
 * and how. */
static int csv_ends_field(csv_reader *r, int c, enum csv_end *end)
{
    switch (c) {
    case EOF:
        *end = CSV_EOF;
        return 1;
    case ',':
        *end = CSV_COMMA;
        return 1;
    case '\r':
    case '\n':
        *end = csv_line_end(r, c);
        return 1;
    default:
        return 0;
    }
}

static int csv_unquoted(csv_reader *r, int c, ssf_buf *out, enum csv_end *end, ssf_error *err)
{
    for (;; c = csv_getc(r)) {
        if (csv_ends_field(r, c, end)) return 0;
        if (c == '"')
            return csv_fail(r, err,
                            "quote inside unquoted field %zu on line %zu; quote the whole field "
                            "and double the quotes inside it",
                            r->nfields + 1, r->line);
        ssf_buf_putc(out, (char)c);
    }
}

/* What may follow the closing quote of a field: a separator or the end. */
static int csv_after_quote(csv_reader *r, int c, enum csv_end *end, ssf_error *err)
{
    if (csv_ends_field(r, c, end)) return 0;
    return csv_fail(r, err, "text after the closing quote of field %zu on line %zu", r->nfields + 1,
                    r->line);
}

/* The opening quote has been consumed.  Commas, CR and LF are data here and
 * are kept as they are; "" stands for one quote. */
static int csv_quoted(csv_reader *r, ssf_buf *out, enum csv_end *end, ssf_error *err)
{
    size_t open_line = r->line;
    for (;;) {
        int c = csv_getc(r);
        if (c == EOF)
            return csv_fail(r, err, "unterminated quoted field %zu, opened on line %zu",
                            r->nfields + 1, open_line);
        if (c != '"') {
            ssf_buf_putc(out, (char)c);
            continue;
        }
        c = csv_getc(r);
        if (c != '"') return csv_after_quote(r, c, end, err);
        ssf_buf_putc(out, '"');
    }
}

static int csv_next_field(csv_reader *r, ssf_buf *out, enum csv_end *end, ssf_error *err)
{
    ssf_buf_reset(out);
    int c = csv_getc(r);
    r->quoted = c == '"';
    if (r->quoted) return csv_quoted(r, out, end, err);
    return csv_unquoted(r, c, out, end, err);
}

static ssf_buf *csv_slot(csv_reader *r)
{
    if (r->nfields == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        r->fields = ssf_xrealloc(r->fields, cap * sizeof *r->fields);
        memset(r->fields + r->cap, 0, (cap - r->cap) * sizeof *r->fields);
        r->cap = cap;
    }
    return &r->fields[r->nfields];
}

/* An empty line reads as one empty unquoted field.  Like Python's DictReader
 * and pandas, such lines are skipped rather than taken as records, which also
 * makes a trailing empty line at the end of the file harmless. */
static int csv_is_blank(const csv_reader *r)
{
    return r->nfields == 1 && !r->quoted && r->fields[0].len == 0;
}

/* Reads the next non-blank record into r->fields.  Returns 1, 0 at the end of
 * the input, or -1 with err set. */
static int csv_next_record(csv_reader *r, ssf_error *err)
{
    do {
        r->record_line = r->line;
        r->nfields = 0;
        if (csv_peek(r) == EOF) return 0;
        enum csv_end end = CSV_COMMA;
        while (end == CSV_COMMA) {
            if (csv_next_field(r, csv_slot(r), &end, err) != 0) return -1;
            r->nfields++;
        }
    } while (csv_is_blank(r));
    return 1;
}

static const char *field_str(const ssf_buf *b)
{
    return b->data ? b->data : "";
}

/* Takes the header from r->fields.  Keys must be distinct (a JSON object
 * cannot hold two), NUL-free and UTF-8 (jansson keys are C strings). */
static int csv_take_header(csv_reader *r, ssf_error *err)
{
    json_t *seen = json_object();
    int rc = 0;
    for (size_t i = 0; i < r->nfields && rc == 0; i++) {
        const char *key = field_str(&r->fields[i]);
        json_t *first = json_object_get(seen, key);
        if (strlen(key) != r->fields[i].len)
            rc = csv_fail(r, err, "column %zu's name contains a NUL byte", i + 1);
        else if (first)
            rc = csv_fail(r, err, "duplicate column name \"%s\" (columns %lld and %zu)", key,
                          (long long)json_integer_value(first), i + 1);
        else if (json_object_set_new(seen, key, json_integer((json_int_t)i + 1)) != 0)
            rc = csv_fail(r, err, "column %zu's name is not valid UTF-8", i + 1);
    }
    json_decref(seen);
    if (rc != 0) return rc;
    r->keys = ssf_xcalloc(r->nfields, sizeof *r->keys);
    for (r->nkeys = 0; r->nkeys < r->nfields; r->nkeys++)
        r->keys[r->nkeys] = ssf_xstrdup(field_str(&r->fields[r->nkeys]));
    return 0;
}

/* Builds the record's object in header order; every value is a string. */
static int csv_object(csv_reader *r, json_t **out, ssf_error *err)
{
    if (r->nfields != r->nkeys)
        return csv_fail(r, err, "%zu fields, the header has %zu", r->nfields, r->nkeys);
    json_t *obj = json_object();
    for (size_t i = 0; i < r->nfields; i++) {
        /* jansson would keep a NUL, but the texts made from fields are C
         * strings that would end there: refused, as JSONL refuses \u0000. */
        if (memchr(field_str(&r->fields[i]), '\0', r->fields[i].len)) {
            json_decref(obj);
            return csv_fail(r, err,
                            "field %zu (\"%s\") holds a NUL byte, which ssfteval's texts "
                            "cannot; remove it",
                            i + 1, r->keys[i]);
        }
        json_t *v = json_stringn(field_str(&r->fields[i]), r->fields[i].len);
        if (!v) {
            json_decref(obj);
            return csv_fail(r, err, "field %zu (\"%s\") is not valid UTF-8", i + 1, r->keys[i]);
        }
        json_object_set_new(obj, r->keys[i], v);
    }
    *out = obj;
    return 0;
}

static int csv_records(csv_reader *r, ssf_record_fn fn, void *ud, ssf_error *err)
{
    int got = csv_next_record(r, err);
    if (got <= 0) return got; /* an empty file has no header and no records */
    if (csv_take_header(r, err) != 0) return -1;
    for (r->record = 1;; r->record++) {
        got = csv_next_record(r, err);
        if (got <= 0) return got;
        json_t *rec = NULL;
        if (csv_object(r, &rec, err) != 0) return -1;
        int rc = fn(rec, r->record, r->record_line, ud);
        json_decref(rec);
        if (rc != 0) return rc;
    }
}

static void csv_free(csv_reader *r)
{
    for (size_t i = 0; i < r->cap; i++)
        ssf_buf_free(&r->fields[i]);
    free(r->fields);
    for (size_t i = 0; i < r->nkeys; i++)
        free(r->keys[i]);
    free(r->keys);
}

static int read_csv(FILE *f, const char *name, ssf_record_fn fn, void *ud, ssf_error *err)
{
    csv_reader r = {.f = f, .name = name, .line = 1, .prev = EOF};
    csv_skip_bom(&r);
    int rc = csv_records(&r, fn, ud, err);
    /* A read error also looks like an early end of input; report the cause. */
    if (rc <= 0 && ferror(f)) rc = read_error(name, err);
    csv_free(&r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */
/* ------------------------------------------------------------------------ */

static int resolve_format(const char *name, ssf_format *format, ssf_error *err)
{
    if (*format != SSF_FORMAT_AUTO) return 0;
    *format = ssf_format_from_path(name);
    if (*format != SSF_FORMAT_AUTO) return 0;
    return ssf_fail(err,
                    "%s: cannot tell the format from the file name; use a .jsonl, .json or .csv "
                    "extension or name the format (jsonl, json, csv)",
                    name);
}

int ssf_records_read_stream(FILE *f, const char *name, ssf_format format, ssf_record_fn fn,
                            void *ud, ssf_error *err)
{
    if (resolve_format(name, &format, err) != 0) return -1;
    switch (format) {
    case SSF_FORMAT_JSONL:
        return read_jsonl(f, name, 0, fn, ud, err);
    case SSF_FORMAT_JSONL_WITH_NUL:
        return read_jsonl(f, name, 1, fn, ud, err);
    case SSF_FORMAT_JSON:
        return read_json(f, name, fn, ud, err);
    case SSF_FORMAT_CSV:
        return read_csv(f, name, fn, ud, err);
    default:
        return ssf_fail(err, "%s: unknown record format %d", name, (int)format);
    }
}

int ssf_records_read_file(const char *path, ssf_format format, ssf_record_fn fn, void *ud,
                          ssf_error *err)
{
    if (resolve_format(path, &format, err) != 0) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return ssf_fail(err, "cannot open %s: %s; check the path", path, strerror(errno));
    int rc = ssf_records_read_stream(f, path, format, fn, ud, err);
    fclose(f);
    return rc;
}

int ssf_records_read_memory(const char *data, size_t len, const char *name, ssf_format format,
                            ssf_record_fn fn, void *ud, ssf_error *err)
{
    if (resolve_format(name, &format, err) != 0) return -1;
    /* fmemopen wants a writable buffer, but mode "r" never writes to it. */
    FILE *f = fmemopen((void *)(len ? data : ""), len, "r");
    if (!f) return ssf_fail(err, "%s: cannot read from memory: %s", name, strerror(errno));
    int rc = ssf_records_read_stream(f, name, format, fn, ud, err);
    fclose(f);
    return rc;
}

/* ASCII is skipped byte by byte; utf8proc judges the rest. */
size_t ssf_utf8_valid_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) break;
        i += (size_t)k;
    }
    return i;
}

int ssf_utf8_valid(const char *s, size_t n)
{
    return ssf_utf8_valid_prefix(s, n) == n;
}
