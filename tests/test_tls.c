/*
 * test_tls.c - the advice for a certificate refused (ssf_tls_fix), for
 * each way curl words a refusal, with and without a CA file named.  The
 * refusals themselves are tested against https mock servers in test_hub
 * and test_openai.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "tls.h"

static void expect_fix(CURLcode result, const char *why, const char *want)
{
    const char *got = ssf_tls_fix(result, why);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    if (!strstr(got, want)) fail_msg("advice for \"%s\": \"%s\" lacks \"%s\"", why, got, want);
}

static void test_fix_by_cause(void **state)
{
    (void)state;
    unsetenv("CURL_CA_BUNDLE");
    unsetenv("SSL_CERT_FILE");
    const CURLcode peer = CURLE_PEER_FAILED_VERIFICATION;
    expect_fix(peer, "SSL certificate problem: unable to get local issuer certificate",
               "name that CA's file in SSL_CERT_FILE");
    expect_fix(peer, "SSL certificate problem: self-signed certificate", "SSL_CERT_FILE");
    expect_fix(peer, NULL, "SSL_CERT_FILE");
    expect_fix(peer,
               "SSL: no alternative certificate subject name matches target host name '10.0.0.7'",
               "give the server by a name its certificate names");
    expect_fix(peer, "SSL certificate problem: certificate has expired",
               "outside the dates it is valid for: renew it on the server, or check this "
               "machine's clock");
    expect_fix(peer, "SSL certificate problem: certificate is not yet valid", "check this machine");
    setenv("SSL_CERT_FILE", "/etc/company-ca.pem", 1);
    expect_fix(peer, "SSL certificate problem: unable to get local issuer certificate",
               "not signed by a CA in the file CURL_CA_BUNDLE or SSL_CERT_FILE names");
    unsetenv("SSL_CERT_FILE");
    expect_fix(CURLE_SSL_CACERT_BADFILE, "error setting certificate file", "check the path");
    expect_fix(CURLE_COULDNT_CONNECT, "Failed to connect", NULL);
    expect_fix(CURLE_OK, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fix_by_cause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
