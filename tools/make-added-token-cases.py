#!/usr/bin/env python3
"""Writes tests/fixtures/added-token-cases.json: how the Hugging Face
`tokenizers` package (PyPI, the oracle) matches added tokens that set
lstrip, rstrip (with Unicode spaces too), single_word or normalized (matched
in the NFC text, as transformers' add_tokens() makes them), added tokens one
of which is a prefix of another (the longest wins), and how it decodes them,
a special token outside the byte alphabet included (DeepSeek-R1's).  No Qwen
tokenizer sets those flags or has such tokens, so the Qwen fixtures never
reach that code.

Each case adds its tokens to the engine fixture's tokenizer
(tests/fixtures/engine/gqa5-hd128/tokenizer.json, a byte-level BPE of 497
tokens) and gives the oracle's ids for its texts.

Usage: bench/.venv/bin/python tools/make-added-token-cases.py \
           > tests/fixtures/added-token-cases.json
"""
import json
import os
import sys

import tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "tests/fixtures/engine/gqa5-hd128/tokenizer.json"


def added(token_id, content, **flags):
    token = {"id": token_id, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": False}
    token.update(flags)
    return token


CASES = [
    ([added(500, "<m>", lstrip=True, rstrip=True)], ["a <m> b", "a<m>b", "a  <m>\n b", "<m>"]),
    ([added(500, "<m>", lstrip=True)], ["a <m> b", "a  <m>"]),
    ([added(500, "<m>", rstrip=True)], ["a <m> b", "<m>  b"]),
    ([added(500, "<s>", single_word=True)], ["x<s>", "x <s> y", "<s>y", "(<s>)", "<s>", "é<s>"]),
    ([added(500, "<x>"), added(501, "<x>y")], ["<x>y", "<x>z", "a<x>yy<x>"]),
    ([added(500, "<m>", normalized=True)], ["a<m>b", "<m>", "x <m>"]),
    ([added(500, "<\u00e9>", normalized=True)], ["a<e\u0301>b", "<\u00e9>"]),
    ([added(500, "<m>", rstrip=True)], ["<m>\u00a0b", "<m>\u0085b", "<m>\u3000b"]),
    ([added(500, "<m>", lstrip=True)], ["a\u00a0<m>", "a\u2003<m>"]),
    ([added(500, "<\uff5cend\u2581of\u2581sentence\uff5c>", special=True)],
     ["a<\uff5cend\u2581of\u2581sentence\uff5c>b"]),
]


def main():
    with open(os.path.join(HERE, "..", BASE), encoding="utf-8") as f:
        base = json.load(f)
    out = {"generator": "tools/make-added-token-cases.py",
           "oracle": "tokenizers " + tokenizers.__version__, "base": BASE, "cases": []}
    for tokens, texts in CASES:
        doc = dict(base, added_tokens=base["added_tokens"] + tokens)
        tok = tokenizers.Tokenizer.from_str(json.dumps(doc))
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            out["cases"].append({"added": tokens, "text": text, "ids": ids,
                                 "decoded": tok.decode(ids, skip_special_tokens=False)})
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
