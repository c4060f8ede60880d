/*
 * tls.h - which certificate authorities the HTTP clients (the Hub's and the
 * openai backend's) trust, and what to say when a server's certificate is
 * refused.
 *
 * A server signed by a CA of one's own (a vLLM behind a company's gateway,
 * a Hub mirror, a proxy that inspects TLS) is trusted the way curl's tool
 * and Python's HTTP clients are told to: CURL_CA_BUNDLE or SSL_CERT_FILE
 * names a file of CAs, SSL_CERT_DIR a folder of them.  Without them,
 * libcurl's own bundle (the system's) is used.
 */
#ifndef SSFTEVAL_BACKENDS_TLS_H
#define SSFTEVAL_BACKENDS_TLS_H

#include <curl/curl.h>

/* Points the handle at the CAs the environment names, if it names any. */
CURLcode ssf_tls_trust(CURL *e);

/* For a transfer that ended with this result and error text (curl's error
 * buffer), what to do about the certificate (static text, no full stop),
 * or NULL when the result is not about one. */
const char *ssf_tls_fix(CURLcode result, const char *why);

#endif
