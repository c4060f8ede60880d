#!/usr/bin/env bash
# make-tls-fixtures.sh - writes tests/fixtures/tls/: a certificate authority
# of the tests' own (ca.pem) and a certificate it signed for 127.0.0.1 and
# localhost (server.pem, server-key.pem), which the mock servers present
# when a test asks them for https; and other-name/, a certificate the same
# CA signed for ssfteval.invalid alone, which a server at 127.0.0.1 presents
# to test a name its certificate does not cover.  The keys guard nothing: they exist only
# so that the clients' certificate checks can be tested offline.  Valid for
# 100 years, so that a committed copy does not expire under the tests.
#
# usage: tools/make-tls-fixtures.sh   (needs the openssl command)
set -eu
out="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/tls"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=36500
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" -subj "/CN=ssfteval test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca-key.pem" -out "$out/ca.pem" 2>/dev/null
server() { # DIR CN SUBJECT_ALT_NAMES
    mkdir -p "$1"
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$2" \
        -keyout "$1/server-key.pem" -out "$tmp/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$3" >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.pem" -CAkey "$tmp/ca-key.pem" \
        -CAserial "$tmp/ca.srl" -CAcreateserial -days "$days" -sha256 -extfile "$tmp/ext" -out "$1/server.pem" 2>/dev/null
}
server "$out" 127.0.0.1 "IP:127.0.0.1,DNS:localhost"
server "$out/other-name" ssfteval.invalid "DNS:ssfteval.invalid"
echo "wrote $out/{ca.pem,server.pem,server-key.pem,other-name/}"
