/*
 * safetensors.c - safetensors files, mapped read-only.  The whole header is
 * validated before any tensor is handed out (see model.h), so the engine can
 * trust every pointer and size it gets.  C library only (see jsonlite.h).
 */
#include "ssfteval/model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonlite.h"

/* The safetensors crate refuses larger headers (MAX_HEADER_SIZE). */
#define MAX_HEADER ((uint64_t)100000000)
/* A header is an object of objects of arrays: 8 levels is ample. */
#define HEADER_DEPTH 8

struct ssf_safetensors {
    char *name;
    void *map; /* NULL when parsed from a caller's buffer */
    size_t map_len;
    struct stat opened;  /* the mapped file's, at open */
    ssf_tensor *tensors; /* in header order */
    size_t n;
    ssf_tensor **by_name; /* sorted, for ssf_safetensors_find */
};

const char *ssf_dtype_name(ssf_dtype t)
{
    return t == SSF_DTYPE_F32 ? "F32" : t == SSF_DTYPE_F16 ? "F16" : "BF16";
}

size_t ssf_dtype_size(ssf_dtype t)
{
    return t == SSF_DTYPE_F32 ? 4 : 2;
}

/* ---- widening ----------------------------------------------------------- */

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE half to float, exactly: subnormals scale by 2^-24, inf and NaN keep
 * their payload. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0) {
        float v = (float)mant * 0x1p-24f; /* exact: mant < 2^10 */
        return sign ? -v : v;
    }
    if (exp == 31) return bits_to_float(sign | 0x7F800000u | (mant << 13));
    return bits_to_float(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/* Data after an odd-length header is unaligned: values are read byte-wise,
 * little-endian. */
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

float ssf_tensor_get_f32(const ssf_tensor *t, int64_t i)
{
    float f;
    ssf_tensor_read_f32(t, i, 1, &f);
    return f;
}

/* The dtype is chosen once per call, not per element: this loop widens a
 * whole checkpoint when a device opens. */
void ssf_tensor_read_f32(const ssf_tensor *t, int64_t first, int64_t n, float *out)
{
    const unsigned char *p =
        (const unsigned char *)t->data + (size_t)first * ssf_dtype_size(t->dtype);
    switch (t->dtype) {
    case SSF_DTYPE_F32:
        for (int64_t i = 0; i < n; i++)
            out[i] = bits_to_float(le32(p + 4 * i));
        break;
    case SSF_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            out[i] = bits_to_float((uint32_t)le16(p + 2 * i) << 16);
        break;
    case SSF_DTYPE_F16:
        for (int64_t i = 0; i < n; i++)
            out[i] = half_to_float(le16(p + 2 * i));
        break;
    }
}

/* ---- header validation ---------------------------------------------------- */

/* What one header check needs to name in its messages. */
typedef struct header_ctx {
    const char *file;
    const unsigned char *data; /* the data section */
    uint64_t data_len;
    ssf_error *err;
} header_ctx;

static const char *const unsupported_dtypes[] = {
    "F64",  "I64",     "I32",     "I16",     "I8",      "U8",      "U16", "U32", "U64",
    "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64",
};

static int parse_dtype(const header_ctx *h, const char *tensor, const jl_value *v, ssf_dtype *out)
{
    if (!v || v->type != JL_STRING)
        return ssf_fail(h->err, "%s: tensor %s: \"dtype\" must be a string, got %s", h->file,
                        tensor, v ? ssf_jl_type_name(v->type) : "nothing");
    const char *s = v->u.str.s;
    if (!strcmp(s, "F32"))
        *out = SSF_DTYPE_F32;
    else if (!strcmp(s, "F16"))
        *out = SSF_DTYPE_F16;
    else if (!strcmp(s, "BF16"))
        *out = SSF_DTYPE_BF16;
    else {
        for (size_t i = 0; i < sizeof unsupported_dtypes / sizeof *unsupported_dtypes; i++)
            if (!strcmp(s, unsupported_dtypes[i]))
                return ssf_fail(h->err,
                                "unsupported dtype %s for tensor %s in %s: ssfteval reads F32, "
                                "F16 and BF16 checkpoints",
                                s, tensor, h->file);
        return ssf_fail(h->err, "unknown dtype \"%.32s\" for tensor %s in %s", s, tensor, h->file);
    }
    return 0;
}

/* A non-negative integer that fits int64. */
static int get_count(const jl_value *v, int64_t *out)
{
    if (!v || v->type != JL_NUMBER || !v->u.num.is_int || v->u.num.i < 0) return -1;
    *out = v->u.num.i;
    return 0;
}

static int parse_shape(const header_ctx *h, ssf_tensor *t, const jl_value *v)
{
    if (!v || v->type != JL_ARRAY)
        return ssf_fail(h->err, "%s: tensor %s: \"shape\" must be an array", h->file, t->name);
    if (v->u.arr.n > SSF_TENSOR_MAX_DIMS)
        return ssf_fail(h->err, "%s: tensor %s has %zu dimensions; at most %d are supported",
                        h->file, t->name, v->u.arr.n, SSF_TENSOR_MAX_DIMS);
    t->ndim = (int)v->u.arr.n;
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const jl_value *d = v->u.arr.items[i];
        if (get_count(d, &t->shape[i]))
            return ssf_fail(h->err,
                            "%s: tensor %s: shape dimension %d is not a non-negative "
                            "integer",
                            h->file, t->name, i);
        if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel))
            return ssf_fail(h->err, "%s: tensor %s: shape overflows 64 bits", h->file, t->name);
    }
    return 0;
}

/* data_offsets [begin, end] inside the data section, end - begin equal to
 * the shape's byte size. */
static int parse_offsets(const header_ctx *h, ssf_tensor *t, const jl_value *v)
{
    int64_t begin, end, want;
    if (!v || v->type != JL_ARRAY || v->u.arr.n != 2 || get_count(v->u.arr.items[0], &begin) ||
        get_count(v->u.arr.items[1], &end))
        return ssf_fail(h->err,
                        "%s: tensor %s: \"data_offsets\" must be [begin, end], two non-negative "
                        "integers",
                        h->file, t->name);
    if (end < begin)
        return ssf_fail(h->err, "%s: tensor %s: data_offsets [%lld, %lld] end before begin",
                        h->file, t->name, (long long)begin, (long long)end);
    if ((uint64_t)end > h->data_len)
        return ssf_fail(h->err,
                        "%s: tensor %s: data_offsets [%lld, %lld] run past the end of the data "
                        "(%llu bytes): the file is truncated; copy or download it again (an hf: "
                        "model's is fetched again by a run with network access)",
                        h->file, t->name, (long long)begin, (long long)end,
                        (unsigned long long)h->data_len);
    if (__builtin_mul_overflow(t->numel, (int64_t)ssf_dtype_size(t->dtype), &want) ||
        want != end - begin)
        return ssf_fail(h->err,
                        "%s: tensor %s: shape needs %lld elements of %s but data_offsets span "
                        "%lld bytes",
                        h->file, t->name, (long long)t->numel, ssf_dtype_name(t->dtype),
                        (long long)(end - begin));
    t->data = h->data + begin;
    t->nbytes = (size_t)(end - begin);
    return 0;
}

static int parse_tensor(const header_ctx *h, ssf_tensor *t, const jl_value *v)
{
    if (v->type != JL_OBJECT)
        return ssf_fail(h->err, "%s: tensor %s: expected an object, got %s", h->file, t->name,
                        ssf_jl_type_name(v->type));
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const char *k = v->u.obj.members[i].key;
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0)
            return ssf_fail(h->err,
                            "%s: tensor %s: unknown key \"%.32s\" (expected dtype, shape, "
                            "data_offsets)",
                            h->file, t->name, k);
    }
    if (parse_dtype(h, t->name, ssf_jl_get(v, "dtype"), &t->dtype) ||
        parse_shape(h, t, ssf_jl_get(v, "shape")))
        return -1;
    return parse_offsets(h, t, ssf_jl_get(v, "data_offsets"));
}

static int check_metadata(const header_ctx *h, const jl_value *v)
{
    if (v->type != JL_OBJECT)
        return ssf_fail(h->err, "%s: __metadata__ must be an object of strings", h->file);
    for (size_t i = 0; i < v->u.obj.n; i++)
        if (v->u.obj.members[i].value->type != JL_STRING)
            return ssf_fail(h->err, "%s: __metadata__ value of \"%.64s\" is not a string", h->file,
                            v->u.obj.members[i].key);
    return 0;
}

/* Names go into one-line messages and are looked up with strcmp. */
static int check_name(const header_ctx *h, const jl_member *m)
{
    if (m->key_len == 0) return ssf_fail(h->err, "%s: a tensor has an empty name", h->file);
    for (size_t i = 0; i < m->key_len; i++)
        if ((unsigned char)m->key[i] < 0x20)
            return ssf_fail(h->err,
                            "%s: the tensor name at header byte %zu contains a control "
                            "character",
                            h->file, m->key_offset);
    return 0;
}

static int by_begin(const void *a, const void *b)
{
    const ssf_tensor *x = *(const ssf_tensor *const *)a, *y = *(const ssf_tensor *const *)b;
    if (x->data != y->data) return (const char *)x->data < (const char *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Sorted by begin, each non-empty tensor must start at or after the
 * furthest end so far.  Empty tensors overlap nothing. */
static int check_overlaps(const header_ctx *h, ssf_safetensors *st)
{
    ssf_tensor **order = ssf_xmalloc((st->n ? st->n : 1) * sizeof *order);
    for (size_t i = 0; i < st->n; i++)
        order[i] = &st->tensors[i];
    qsort(order, st->n, sizeof *order, by_begin);
    const ssf_tensor *furthest = NULL;
    int rc = 0;
    for (size_t i = 0; i < st->n && !rc; i++) {
        const ssf_tensor *t = order[i];
        if (t->nbytes == 0) continue;
        if (furthest && (const char *)t->data < (const char *)furthest->data + furthest->nbytes)
            rc = ssf_fail(h->err, "%s: tensors %s and %s overlap in the data section", h->file,
                          furthest->name, t->name);
        if (!furthest ||
            (const char *)t->data + t->nbytes > (const char *)furthest->data + furthest->nbytes)
            furthest = t;
    }
    free(order);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const ssf_tensor *const *)a)->name, (*(const ssf_tensor *const *)b)->name);
}

static int read_tensors(const header_ctx *h, ssf_safetensors *st, const jl_value *root)
{
    st->tensors = ssf_xcalloc(root->u.obj.n ? root->u.obj.n : 1, sizeof *st->tensors);
    for (size_t i = 0; i < root->u.obj.n; i++) {
        const jl_member *m = &root->u.obj.members[i];
        if (!strcmp(m->key, "__metadata__")) {
            if (check_metadata(h, m->value)) return -1;
            continue;
        }
        if (check_name(h, m)) return -1;
        ssf_tensor *t = &st->tensors[st->n++];
        t->name = ssf_xstrdup(m->key);
        t->file = st->name;
        if (parse_tensor(h, t, m->value)) return -1;
    }
    if (check_overlaps(h, st)) return -1;
    st->by_name = ssf_xmalloc((st->n ? st->n : 1) * sizeof *st->by_name);
    for (size_t i = 0; i < st->n; i++)
        st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, st->n, sizeof *st->by_name, by_name);
    return 0;
}

static int parse_header(ssf_safetensors *st, const unsigned char *buf, size_t len, ssf_error *err)
{
    const char *file = st->name;
    if (len < 8)
        return ssf_fail(err,
                        "%s: truncated: %zu bytes, but a safetensors file starts with an 8-byte "
                        "header length",
                        file, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > len - 8)
        return ssf_fail(err,
                        "%s: header length %llu is larger than the file (%zu bytes): the file is "
                        "truncated or not safetensors",
                        file, (unsigned long long)hlen, len);
    if (hlen > MAX_HEADER)
        return ssf_fail(err, "%s: header length %llu exceeds the 100 MB safetensors limit", file,
                        (unsigned long long)hlen);
    ssf_error jerr = {0};
    jl_value *root = ssf_jl_parse((const char *)buf + 8, (size_t)hlen, HEADER_DEPTH, &jerr);
    if (!root) return ssf_fail(err, "%s: the header is not valid JSON: header %s", file, jerr.msg);
    header_ctx h = {file, buf + 8 + hlen, len - 8 - hlen, err};
    int rc = root->type == JL_OBJECT
                 ? read_tensors(&h, st, root)
                 : ssf_fail(err, "%s: the header is %s, not a JSON object of tensors", file,
                            ssf_jl_type_name(root->type));
    ssf_jl_free(root);
    return rc;
}

static int parse_into(ssf_safetensors *st, const void *buf, size_t len, ssf_safetensors **out,
                      ssf_error *err)
{
    if (parse_header(st, buf, len, err)) {
        ssf_safetensors_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

int ssf_safetensors_parse(const void *buf, size_t len, const char *name, ssf_safetensors **out,
                          ssf_error *err)
{
    *out = NULL;
    ssf_safetensors *st = ssf_xcalloc(1, sizeof *st);
    st->name = ssf_xstrdup(name ? name : "safetensors");
    return parse_into(st, buf, len, out, err);
}

static int map_file(const char *path, void **map, size_t *len, struct stat *opened, ssf_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ssf_fail(err, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = ssf_fail(err, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        rc = ssf_fail(err, "%s is not a regular file", path);
    else if (sb.st_size < 8)
        rc = ssf_fail(err,
                      "%s: truncated: %lld bytes, but a safetensors file starts with an 8-byte "
                      "header length",
                      path, (long long)sb.st_size);
    if (rc == 0) {
        *opened = sb;
        *len = (size_t)sb.st_size;
        *map = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (*map == MAP_FAILED) {
            *map = NULL;
            rc = ssf_fail(err, "cannot map %s: %s", path, strerror(errno));
        }
    }
    close(fd);
    return rc;
}

int ssf_safetensors_open(const char *path, ssf_safetensors **out, ssf_error *err)
{
    *out = NULL;
    void *map = NULL;
    size_t len = 0;
    struct stat opened;
    if (map_file(path, &map, &len, &opened, err)) return -1;
    ssf_safetensors *st = ssf_xcalloc(1, sizeof *st);
    st->name = ssf_xstrdup(path);
    st->map = map;
    st->map_len = len;
    st->opened = opened;
    return parse_into(st, map, len, out, err);
}

size_t ssf_safetensors_count(const ssf_safetensors *st)
{
    return st->n;
}

const ssf_tensor *ssf_safetensors_at(const ssf_safetensors *st, size_t i)
{
    return i < st->n ? &st->tensors[i] : NULL;
}

const void *ssf_safetensors_mapped(const ssf_safetensors *st, size_t *len, struct stat *opened)
{
    if (!st->map) return NULL;
    *len = st->map_len;
    *opened = st->opened;
    return st->map;
}

const ssf_tensor *ssf_safetensors_find(const ssf_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->by_name[mid]->name);
        if (c == 0) return st->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void ssf_safetensors_close(ssf_safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n; i++)
        free((char *)st->tensors[i].name);
    free(st->tensors);
    free(st->by_name);
    if (st->map) munmap(st->map, st->map_len);
    free(st->name);
    free(st);
}
