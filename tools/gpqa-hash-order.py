#!/usr/bin/env python3
"""Prints the gold letters of GPQA-Diamond under `--gpqa-order hash`, worked
out apart from tasks/docs.c, for tests/test_tasks.c to pin: their count per
letter and the SHA-256 of the 198 letters in file order (no question text).

The order: the key "ssfteval-choice-order-v1\\n" + Record ID is hashed with
SHA-256; its first 8 bytes, big-endian, drive a Fisher-Yates shuffle of the
four choices (correct first, then the three incorrect in column order), the
value taken modulo i + 1 and divided by it at each step i = 3, 2, 1.

Usage: python3 tools/gpqa-hash-order.py [SHARED_DIR]
"""
import csv
import hashlib
import io
import sys
import zipfile

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"


def gold_position(record_id, n=4):
    md = hashlib.sha256(("ssfteval-choice-order-v1\n" + record_id).encode()).digest()
    v = int.from_bytes(md[:8], "big")
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = v % (i + 1)
        v //= i + 1
        perm[i], perm[j] = perm[j], perm[i]
    return perm.index(0)


def main():
    with zipfile.ZipFile(SHARED + "/data/gpqa/dataset.zip") as z:
        text = z.read("dataset/gpqa_diamond.csv", pwd=b"deserted-untie-orchid").decode("utf-8")
    letters = "".join("ABCD"[gold_position(row["Record ID"])]
                      for row in csv.DictReader(io.StringIO(text)))
    print(len(letters), {k: letters.count(k) for k in "ABCD"})
    print(hashlib.sha256(letters.encode()).hexdigest())
    print(letters[:12])


if __name__ == "__main__":
    main()
