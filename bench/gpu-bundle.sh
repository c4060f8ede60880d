#!/usr/bin/env bash
# bench/gpu-bundle.sh - packs the ssfteval CLI, built here with CUDA, for
# bench/gpu-cli.sh on a GPU machine that lacks the Debian packages it links:
# the binary; the shared libraries it loads beyond glibc's (cuBLAS, which it
# loads on first use, the GPU machine has), each under its soname; Qwen2.5's tokenizer; and the
# task data of AIME 2024, AIME 2025 and MATH-500 (not GPQA's: its questions
# stay off machines whose output is logged).
#
#   bench/gpu-bundle.sh [OUT]   default build-gpu-bundle/bundle.tar.xz (git
#                               ignores it; a device run carries build-gpu-bundle)
#
# Environment: BUILD (a meson build with CUDA, default build-gpu-cli, set up
# here when missing), SHARED (default ../shared beside the project).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build-gpu-bundle/bundle.tar.xz}
BUILD=${BUILD:-$ROOT/build-gpu-cli}
SHARED=${SHARED:-$ROOT/../shared}

[ -f "$BUILD/build.ninja" ] ||
    meson setup "$BUILD" "$ROOT" --buildtype=release -Dwerror=true -Dcuda=enabled
ninja -C "$BUILD" cli/ssfteval
if ! ldd "$BUILD/cli/ssfteval" | grep -q libcudart; then
    echo "gpu-bundle: $BUILD/cli/ssfteval was built without CUDA; set up BUILD with -Dcuda=enabled" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,lib,tokenizer,data}
cp "$BUILD/cli/ssfteval" "$stage/bin/"
strip "$stage/bin/ssfteval"
ldd "$stage/bin/ssfteval" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' |
    while read -r name path; do
        case $name in
        libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
            libmvec.so.* | libcublas.so.* | libcublasLt.so.*) continue ;;
        esac
        cp -L "$path" "$stage/lib/$name"
    done
cp "$SHARED/tokenizers/qwen2.5/tokenizer.json" "$stage/tokenizer/"
cp "$SHARED"/data/{aime24,aime25,math500}.jsonl "$stage/data/"

mkdir -p "$(dirname "$OUT")"
tar -C "$stage" -cJf "$OUT" .
echo "gpu-bundle: $OUT, $(du -k "$OUT" | cut -f1) KiB: $(ls "$stage/lib" | wc -l) libraries," \
    "ssfteval $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
