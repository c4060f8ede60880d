/*
 * jsonlite.h - a small, strict, bounded JSON reader (RFC 8259) for the
 * model reader: safetensors headers, config.json, generation_config.json and
 * model.safetensors.index.json.
 *
 * Why not jansson or cJSON: the model module (jsonlite.c, safetensors.c,
 * model_config.c, model.c, util.c) must depend on the C library alone,
 * because the inference engine built on it has to compile on a GPU machine
 * that has only nvcc and libc.  The rest of libssfteval keeps using jansson.
 *
 * Strict: no comments, no trailing commas, no NaN/Infinity, no leading zeros,
 * no control characters or invalid UTF-8 in strings, no lone surrogates, no
 * duplicate keys, nothing but whitespace after the value.  Bounded: nesting
 * deeper than max_depth is an error.  Every error names the byte offset.
 */
#ifndef SSFTEVAL_JSONLITE_H
#define SSFTEVAL_JSONLITE_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

typedef enum jl_type {
    JL_NULL,
    JL_FALSE,
    JL_TRUE,
    JL_NUMBER,
    JL_STRING,
    JL_ARRAY,
    JL_OBJECT,
} jl_type;

typedef struct jl_value jl_value;

typedef struct jl_member {
    const char *key; /* NUL-terminated; key_len excludes the NUL */
    size_t key_len;
    size_t key_offset; /* byte offset of the key's opening quote */
    jl_value *value;
} jl_member;

struct jl_value {
    jl_type type;
    size_t offset; /* byte offset of the value's first character */
    union {
        struct {
            double d;
            int64_t i;  /* exact value when is_int */
            int is_int; /* no fraction or exponent and fits int64 */
        } num;
        struct {
            char *s; /* UTF-8, NUL-terminated; may hold NULs from \u0000 */
            size_t len;
        } str;
        struct {
            jl_value **items;
            size_t n;
        } arr;
        struct {
            jl_member *members; /* in document order */
            size_t n;
        } obj;
    } u;
};

#define JL_DEFAULT_DEPTH 64

/* Parses exactly one JSON value filling buf[0..len).  On error returns NULL
 * and writes "byte N: what" into err. */
jl_value *ssf_jl_parse(const char *buf, size_t len, int max_depth, ssf_error *err);
void ssf_jl_free(jl_value *v);

/* Member of an object by key, or NULL (also when v is not an object). */
const jl_value *ssf_jl_get(const jl_value *v, const char *key);
/* "null", "a number", "a string", "an array", ... for messages. */
const char *ssf_jl_type_name(jl_type t);
/* 1 for true/false, setting *out; 0 otherwise. */
int ssf_jl_is_bool(const jl_value *v, int *out);

#endif
