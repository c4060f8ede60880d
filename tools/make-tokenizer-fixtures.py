#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer-cases.json: reference token ids for
ssfteval's tokenizer tests.

The oracle is the Hugging Face `tokenizers` package (PyPI), loading
../shared/tokenizers/qwen2.5/tokenizer.json and qwen3/tokenizer.json.

Nothing from ../shared is copied into the repository: a string taken from
../shared/data is stored as a reference (file, line, field, part) with the
SHA-256 of its text, and its ids as a count plus the SHA-256 of the ids
written as comma-joined decimals.  Rendered prompts are stored as (task, doc,
tag, template) with the prompt's digest (checked against
tests/fixtures/prompts.json), so GPQA text never enters the repository.
Only the hand-written edge cases carry their text and full ids.

For every string the oracle's decode(encode(x)) must equal NFC(x) (checked
here); the fixture records decode digests only where that would not hold.

Usage: bench/.venv/bin/python tools/make-tokenizer-fixtures.py [SHARED_DIR] \
           > tests/fixtures/tokenizer-cases.json
"""
import hashlib
import importlib.util
import json
import os
import random
import sys
import unicodedata

import tokenizers

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("qwen2.5", "qwen3")


def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def ids_digest(ids):
    return {"n": len(ids), "sha256": sha(",".join(map(str, ids)))}


def prompt_module():
    spec = importlib.util.spec_from_file_location("mpf", os.path.join(HERE, "make-prompt-fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.SHARED = SHARED
    return mod


def data_strings():
    """(reference, text) for MATH-500 and AIME rows: whole fields, and the
    paragraphs and lines of multi-paragraph solutions."""
    out = []
    for name, fields in (("math500.jsonl", ("problem", "solution", "answer")),
                         ("aime24.jsonl", ("problem", "solution", "answer")),
                         ("aime25.jsonl", ("problem", "answer"))):
        with open(f"{SHARED}/data/{name}", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                row = json.loads(line)
                for field in fields:
                    text = str(row[field])
                    ref = {"src": f"data/{name}", "line": line_no, "field": field}
                    out.append((ref, text))
                    if field != "solution":
                        continue
                    for sep, kind in (("\n\n", "paragraph"), ("\n", "line")):
                        parts = text.split(sep)
                        if len(parts) > 1:
                            for k, p in enumerate(parts):
                                out.append((dict(ref, split=kind, part=k), p))
    return out


def prompt_strings(mod):
    """(reference, text) for every task: the sampled docs of prompts.json
    under every template and tag, rendered by make-prompt-fixtures.py."""
    with open(os.path.join(HERE, "..", "tests", "fixtures", "prompts.json"), encoding="utf-8") as f:
        ref_prompts = json.load(f)["tasks"]
    chatml = mod.chatml_renderer()
    contents = {}
    for task, name in (("aime24", "aime24.jsonl"), ("aime25", "aime25.jsonl"),
                       ("math_500", "math500.jsonl")):
        contents[task] = [mod.MATH_TEMPLATE.format(Question=r["problem"]) for r in mod.jsonl(name)]
    contents["gpqa_diamond"] = [d[0] for d in mod.gpqa_docs(mod.gpqa_rows())]
    out = []
    for task, entry in ref_prompts.items():
        for doc in entry["docs"]:
            rendered = mod.render_all(contents[task][doc["doc"]], chatml)
            for key, text in rendered.items():
                assert sha(text) == doc["sha256"][key], (task, doc["doc"], key)
                template, tag = key.split("/")
                out.append(({"task": task, "doc": doc["doc"], "tag": int(tag),
                             "template": template}, text))
    return out


def edge_strings(added):
    s = [
        "", " ", "  ", "   ", "\t", "\t\t", " \t ", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n",
        "a\r\nb", "a\rb", " \n", "\n ", "  \n  ", "a  b", "a   b", "a    ", "    a",
        "x\t\ty", "x \t y", "line1\nline2\n", "trailing   ", "\u00a0", "a\u00a0b",
        "a\u0085b", "a \u0085b", "\u0085", "x\u2028y", "x\u2029y", "\u3000\u3000x",
        "a\u180eb", "a\ufeffb", "a\u200bb", "a\u200cb", "\u000b\u000c", "\x00", "a\x00b",
        "\x7f", "don't", "I'm", "we're", "you've", "she'll", "he'd", "it's", "DON'T",
        "HE'S", "THEY'LL", "I'M", "WE'RE", "YOU'VE", "HE'D", "'s", "'S", "'ll", "'LL",
        "'re", "''s", "it’s", "rock 'n' roll", "O'Neil", "x's y'S",
        "0", "1", "42", "123", "2024", "1234567890", "3.14159", "1,000,000",
        "99999999999999999999999", "-17", "1e10", "0x1F", "12:30", "٣٤٥", "一二三", "²³",
        "Ⅻ", "½", "①②", "中文", "你好，世界！", "日本語のテキスト", "한국어", "漢字かなカナ",
        "Привет мир", "Ελληνικά", "עברית", "العربية", "हिन्दी", "ไทย",
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "a😀b", " 😀 ", "😀😀😀",
        "e\u0301", "cafe\u0301", "A\u030a", "\u1100\u1161\u11a8", "\u1100\u1161",
        "\u0041\u0308\u0301", "\u212b", "\u2126", "\ufb01", "\u00c5", "Å", "ﬁ", "\u0344",
        "o\u0308\u0304", "\u0915\u093c", "\u05d0\u05b7",
        "$\\frac{1}{2}$", "\\boxed{42}", "$x^2 + y^2 = z^2$", "\\begin{align*}\na &= b\\\\\n\\end{align*}",
        "\\left( 3, \\frac{\\pi}{2} \\right)", "$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$",
        "[asy]\ndraw((0,0)--(1,1));\n[/asy]", "{{ANSWER}}", "$$", "\\\\", "----", "====",
        "...", "!!!", "?!", "a.b.c", "foo_bar", "foo-bar", "http://example.com/a?b=c",
        "user@example.com", "<html><body>x</body></html>", "```python\nprint(1)\n```",
        "Hello world", " Hello world", "hello", "HELLO", "Hello, World!", "The quick brown fox.",
        "<think>", "</think>", "<think>\nreasoning\n</think>\n\nanswer",
        "<|im_start", "im_start|>", "<|im_start|", "<|im_end", "<|endoftext", "<|", "|>",
        "<||>", "<|unknown|>", "<|im_start|><|im_end|>", "<|im_start|>user\nhi<|im_end|>\n",
        "a<|im_end|>b", " <|im_end|> ", "x<|endoftext|>", "<|endoftext|>y", "<|im_start|>\n",
        "<<|im_start|>>", "<|im_start|>|>", "<<|im_end|>", "<|im_start|><|im_start|>",
        "<tool_call>x</tool_call>", "<tool_response>x</tool_response>", "<think></think>",
        "text</think>more", "  <think>  ", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
        "<|im_start|>assistant\n<think>\n\n</think>\n\n",
    ]
    for i in range(0, 8):
        s += [f"<think{i}>", f"<|im_start|><think{i}>\n", f"x<think{i}>y"]
    s += ["<think10>", "<think1><think2>"]
    for a in added:
        s += [a, "x" + a, a + "x", " " + a + " ", "\n" + a + "\n", a + a, a[:-1], a[1:]]
    s += [" " * n for n in (5, 17, 64, 200)] + ["\n" * n for n in (4, 9)] + ["\t" * 7]
    s += [" " * 5000 + "x", "\n" * 3000, "\t \n" * 1000, "x" + "\r\n" * 500 + " y"]
    s += ["a" * 100, "ab" * 50, "1" * 50, "=" * 80, " " * 40 + "x", "x" + " " * 40 + "y"]
    s += ["\u00e9" * 30, "日本" * 25, "😀" * 20]
    # PCRE2's \s has U+180E, Oniguruma's not; Unicode 15-16 letters and
    # numbers, which PCRE2 10.42 does not know (tokenizer.c, ONIG_*).
    s += ["\u180e's", "  \u180e", "\t\t\u180e", "\u180e$x", "1\U0001d2c0\U0001d2c1 \U0001d2c2",
          "\U00031350's", "\ua7cb's", "\U00013460's"]
    # NFC as `tokenizers` does it (Unicode 9.0 tables) and not utf8proc:
    # newer combining marks, a Unicode 13 composition, U+11A7 after LV.
    s += ["\u1cd1\u1df8", "\u08cc\u20d3", "\U00011935\U00011930", "\ub15c\u11a7"]
    rng = random.Random(7)
    alphabet = "ab xyz\n\t'0123.,$\\{}<|>_" + "éü中😀\u0301"
    for _ in range(120):
        s.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    return s


def check_roundtrip(tok, text, ids, where):
    dec = tok.decode(ids, skip_special_tokens=False)
    nfc = unicodedata.normalize("NFC", text)
    if dec != nfc:
        sys.stderr.write(f"note: decode != NFC for {where}\n")
    return dec


def entry_for(toks, ref, text, full):
    e = dict(ref or {})
    if full:
        e["text"] = text
    else:
        e["sha256"] = sha(text)
    for name, tok in toks.items():
        ids = tok.encode(text, add_special_tokens=False).ids
        e[name] = ids if full else ids_digest(ids)
        dec = check_roundtrip(tok, text, ids, ref or repr(text))
        if dec != text:
            # decode(encode(x)) is NFC(x), not x: record what decoding gives.
            e[name + "_decoded"] = dec if full else sha(dec)
    return e


def decode_cases(toks, n_ids):
    """Id sequences through the oracle's decode: single bytes that are
    partial UTF-8, and random sequences (special tokens included)."""
    rng = random.Random(11)
    seqs = [[i] for i in range(0, 256)]
    seqs += [[151644, 14990, 151645], [126, 227], [227, 126], [160], [2073, 2073]]
    for _ in range(150):
        seqs.append([rng.randrange(n_ids) for _ in range(rng.randint(1, 12))])
    for _ in range(50):
        seqs.append([rng.randrange(256) for _ in range(rng.randint(1, 8))])
    out = []
    tok = toks["qwen2.5"]
    for ids in seqs:
        out.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                    "text_skip_special": tok.decode(ids, skip_special_tokens=True)})
    return out


def main():
    toks = {name: tokenizers.Tokenizer.from_file(f"{SHARED}/tokenizers/{name}/tokenizer.json")
            for name in NAMES}
    added = [t.content for t in toks["qwen3"].get_added_tokens_decoder().values()]
    cases = []
    for ref, text in data_strings() + prompt_strings(prompt_module()):
        cases.append(entry_for(toks, ref, text, full=False))
    edges = [entry_for(toks, None, text, full=True) for text in edge_strings(sorted(added))]
    out = {
        "generator": "tools/make-tokenizer-fixtures.py",
        "oracle": f"tokenizers {tokenizers.__version__}",
        "tokenizers": {name: f"tokenizers/{name}/tokenizer.json" for name in NAMES},
        "shared": cases,
        "edge": edges,
        "decode": decode_cases(toks, toks["qwen2.5"].get_vocab_size(with_added_tokens=True)),
    }
    json.dump(out, sys.stdout, indent=None, ensure_ascii=False, separators=(",", ":"))
    sys.stdout.write("\n")
    sys.stderr.write(f"{len(cases)} shared-data cases, {len(edges)} edge cases\n")


if __name__ == "__main__":
    main()
