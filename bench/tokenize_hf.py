#!/usr/bin/env python3
"""The `tokenizers` package's side of bench/tokenize: encodes MATH-500's
problems and solutions with Tokenizer.encode in a loop on one thread (no
encode_batch, RAYON_NUM_THREADS=1), REPEAT passes; the first pass starts
with the model's word cache empty.  Prints "FIRST_S BEST_S TOKENS TEXTS
BYTES LOAD_S" like tokenize_bench.

usage: tokenize_hf.py MATH500.jsonl TOKENIZER_JSON [REPEAT]
"""
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402  (after the thread settings)


def main():
    path, tok_path = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts += [row["problem"], row["solution"]]
    start = time.perf_counter()
    tok = tokenizers.Tokenizer.from_file(tok_path)
    load_s = time.perf_counter() - start
    encode = tok.encode
    first, best, tokens = 0.0, float("inf"), 0
    for r in range(max(repeat, 1)):
        start = time.perf_counter()
        tokens = 0
        for t in texts:
            tokens += len(encode(t, add_special_tokens=False).ids)
        s = time.perf_counter() - start
        first = s if r == 0 else first
        best = min(best, s)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"{first:.6f} {best:.6f} {tokens} {len(texts)} {nbytes} {load_s:.3f}")


if __name__ == "__main__":
    main()
