/*
 * tls.c - the CAs the HTTP clients trust (see tls.h).
 */
#include "tls.h"

#include <stdlib.h>
#include <string.h>

/* An environment variable's value, or NULL when unset or empty. */
static const char *env_value(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* CURL_CA_BUNDLE first, as curl's tool reads them. */
static const char *ca_file(void)
{
    const char *file = env_value("CURL_CA_BUNDLE");
    return file ? file : env_value("SSL_CERT_FILE");
}

CURLcode ssf_tls_trust(CURL *e)
{
    CURLcode rc = CURLE_OK;
    const char *file = ca_file(), *dir = env_value("SSL_CERT_DIR");
    if (file) rc = curl_easy_setopt(e, CURLOPT_CAINFO, file);
    if (!rc && dir) rc = curl_easy_setopt(e, CURLOPT_CAPATH, dir);
    return rc;
}

const char *ssf_tls_fix(CURLcode result, const char *why)
{
    switch (result) {
    case CURLE_PEER_FAILED_VERIFICATION:
        /* A name the certificate does not cover is refused with the same
         * code as a CA not trusted; only the text tells them apart, in the
         * words every TLS backend of curl's uses ("... does not match
         * target host name 'NAME'"), and no CA file would help it. */
        if (why && strstr(why, "target host name"))
            return "its certificate is not for the host in the URL: give the server by a name "
                   "its certificate names";
        /* OpenSSL's words for a certificate outside its dates, which no CA
         * file would help either */
        if (why && (strstr(why, "certificate has expired") || strstr(why, "not yet valid")))
            return "its certificate is outside the dates it is valid for: renew it on the "
                   "server, or check this machine's clock";
        return ca_file() ? "its certificate is not signed by a CA in the file CURL_CA_BUNDLE or "
                           "SSL_CERT_FILE names: name the file of the CA that signed it"
                         : "if a CA of your own signed its certificate, name that CA's file in "
                           "SSL_CERT_FILE";
    case CURLE_SSL_CACERT_BADFILE:
        return "the CA file or folder that CURL_CA_BUNDLE, SSL_CERT_FILE or SSL_CERT_DIR names "
               "cannot be read: check the path";
    default:
        return NULL;
    }
}
