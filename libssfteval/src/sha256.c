/*
 * sha256.c - SHA-256 of memory blocks and files through OpenSSL's EVP
 * interface (declared in util.h).  Kept out of util.c so that util.c needs
 * the C library alone.
 */
#include "ssfteval/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static void digest_to_hex(const unsigned char *md, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

void ssf_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    digest_to_hex(md, hex);
}

/* The context is OpenSSL's own: ssf_sha256_ctx only names it. */
ssf_sha256_ctx *ssf_sha256_begin(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        fprintf(stderr, "ssfteval: out of memory starting a SHA-256\n");
        abort();
    }
    return (ssf_sha256_ctx *)ctx;
}

void ssf_sha256_update(ssf_sha256_ctx *c, const void *data, size_t len)
{
    EVP_DigestUpdate((EVP_MD_CTX *)c, data, len);
}

void ssf_sha256_end(ssf_sha256_ctx *c, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex((EVP_MD_CTX *)c, md, &mdlen);
    EVP_MD_CTX_free((EVP_MD_CTX *)c);
    digest_to_hex(md, hex);
}

int ssf_sha256_file(const char *path, char hex[65], ssf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ssf_fail(err, "cannot open %s: %s", path, strerror(errno));
    ssf_sha256_ctx *ctx = ssf_sha256_begin();
    unsigned char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ssf_sha256_update(ctx, chunk, n);
    int failed = ferror(f);
    fclose(f);
    ssf_sha256_end(ctx, hex);
    if (failed) return ssf_fail(err, "cannot read %s: %s", path, strerror(errno));
    return 0;
}
