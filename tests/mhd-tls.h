/*
 * mhd-tls.h - https for the tests' servers (hubserver, mockserver): the
 * libmicrohttpd options that present DIR/server.pem and DIR/server-key.pem,
 * tests/fixtures/tls's certificate for 127.0.0.1, signed by the CA beside
 * it (tools/make-tls-fixtures.sh).
 */
#ifndef SSFTEVAL_TESTS_MHD_TLS_H
#define SSFTEVAL_TESTS_MHD_TLS_H

#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "ssfteval/util.h"

typedef struct mhd_tls {
    char *cert, *key; /* PEM texts, kept while the daemon runs */
    struct MHD_OptionItem items[3];
} mhd_tls;

static inline char *mhd_tls_read(const char *dir, const char *name, ssf_error *err)
{
    ssf_buf path = {0};
    ssf_buf_printf(&path, "%s/%s", dir, name);
    char *text = NULL;
    size_t len = 0;
    int rc = ssf_read_file(path.data, &text, &len, err);
    ssf_buf_free(&path);
    return rc == 0 ? text : NULL;
}

/* With dir NULL the options are only their end: plain http. */
static inline int mhd_tls_load(mhd_tls *t, const char *dir, ssf_error *err)
{
    memset(t, 0, sizeof *t);
    t->items[0].option = t->items[1].option = t->items[2].option = MHD_OPTION_END;
    if (!dir) return 0;
    t->cert = mhd_tls_read(dir, "server.pem", err);
    t->key = t->cert ? mhd_tls_read(dir, "server-key.pem", err) : NULL;
    if (!t->key) return -1;
    t->items[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert};
    t->items[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, t->key};
    return 0;
}

static inline unsigned mhd_tls_flags(const mhd_tls *t)
{
    return t->cert ? MHD_USE_TLS : 0;
}

static inline void mhd_tls_free(mhd_tls *t)
{
    free(t->cert);
    free(t->key);
}

#endif
