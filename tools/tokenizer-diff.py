#!/usr/bin/env python3
"""Differential test of `ssfteval tokenize` against the Hugging Face
`tokenizers` package (PyPI, the oracle) on the Qwen2.5 and Qwen3
tokenizer.json files in ../shared/tokenizers.

Generates strings in categories (random Unicode from every plane, combining
marks in any order, NFD/NFKD forms, ZWJ emoji, RTL, CJK and Hangul jamo,
whitespace runs, digits, contractions, LaTeX, code, words over 1000
characters, added tokens touching text or cut short, SSFT tags, and the text
of ../shared/data and ../shared/cases), encodes each with both, decodes the
oracle's ids with both, and decodes random id sequences (skip_special on and
off).  Every mismatch is shrunk (characters deleted while it persists) and
printed with both sides.  Nothing is written into the repository.

Usage: bench/.venv/bin/python tools/tokenizer-diff.py [--shared DIR]
           [--ssfteval BUILD/cli/ssfteval] [--n N] [--seed S] [--only CATEGORY]
Exit status 1 when there is a mismatch.  --nfc-table prints the table of
code points tokenizer-bpe.c keeps out of utf8proc's NFC (needs unicodedata2).
"""
import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import unicodedata
import zipfile

import tokenizers

NAMES = ("qwen2.5", "qwen3")
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
         "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
         "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
         "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
         "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
         "</tool_response>", "<think>", "</think>"]
SPACES = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u180e", "\u2000",
          "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
          "\ufeff", "\r\n"]
MARKS = [chr(c) for c in list(range(0x300, 0x370)) + list(range(0x483, 0x48a)) +
         list(range(0x591, 0x5c8)) + list(range(0x610, 0x61b)) + list(range(0x64b, 0x660)) +
         [0x93c, 0x94d, 0x9bc, 0x9cd, 0xe31, 0xe34, 0xe48, 0x1ab0, 0x1dc0, 0x20d0, 0x20e3,
          0x302a, 0x3099, 0x309a, 0xfe20, 0x1d165, 0x1d16d, 0x1e944]]
CONTRACTIONS = ["s", "t", "re", "ve", "m", "ll", "d"]


def cp_random(rng):
    """A code point from anywhere (no surrogates): mostly the BMP's
    scripts, sometimes the supplementary planes, private use or
    noncharacters."""
    r = rng.random()
    if r < 0.35:
        c = rng.randrange(0x20, 0x3000)
    elif r < 0.55:
        c = rng.randrange(0x3000, 0xD800)
    elif r < 0.65:
        c = rng.randrange(0xE000, 0x10000)
    elif r < 0.85:
        c = rng.randrange(0x10000, 0x40000)
    elif r < 0.9:
        c = rng.randrange(0x40000, 0x110000)
    elif r < 0.95:
        c = rng.choice([0xD7FF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF, 0x10FFFF, 0xF0000, 0x1FFFE,
                        0x7F, 0x80, 0x9F, 0xAD, 0x34F, 0x61C, 0x200E, 0x200F, 0x202A, 0x202E,
                        0x2066, 0x2069, 0xFE0F, 0xE0001, 0xE007F])
    else:
        c = rng.randrange(0, 0x20)
    return chr(c)


def gen_unicode(rng):
    return "".join(cp_random(rng) for _ in range(rng.randint(1, 30)))


def gen_plane(rng):
    plane = rng.randrange(17)
    base = plane << 16
    return "".join(chr(base + rng.randrange(0x10000 if plane else 0xD800))
                   for _ in range(rng.randint(1, 12)))


def gen_combining(rng):
    bases = "aeiouAEIOUnNcCsSzZyY" + "αωΑΩиИ" + "\u05d0\u0627\u0915\u0e01\u1100\uac00" + " 1'."
    out = []
    for _ in range(rng.randint(1, 6)):
        out.append(rng.choice(bases))
        out += [rng.choice(MARKS) for _ in range(rng.randint(0, 5))]
    s = "".join(out)
    return rng.choice([s, unicodedata.normalize("NFD", s), unicodedata.normalize("NFC", s)])


def gen_emoji(rng):
    people = ["\U0001F468", "\U0001F469", "\U0001F467", "\U0001F466", "\U0001F9D1"]
    tones = ["", "\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
    parts = []
    for _ in range(rng.randint(1, 5)):
        k = rng.randrange(6)
        if k == 0:
            parts.append("\u200d".join(rng.choice(people) + rng.choice(tones)
                                       for _ in range(rng.randint(1, 4))))
        elif k == 1:
            parts.append(chr(0x1F1E6 + rng.randrange(26)) + chr(0x1F1E6 + rng.randrange(26)))
        elif k == 2:
            parts.append(rng.choice("❤☺✌☝⚽") + rng.choice(["", "\ufe0f", "\ufe0e"]))
        elif k == 3:
            parts.append("\U0001F3F4" + "".join(chr(0xE0000 + ord(c)) for c in "gbeng") +
                         "\U000E007F")
        elif k == 4:
            parts.append(rng.choice("0123456789#*") + "\ufe0f\u20e3")
        else:
            parts.append(chr(rng.randrange(0x1F300, 0x1FAFF)))
        parts.append(rng.choice(["", " ", "a", "1", "\n", ".", "\u200d"]))
    return "".join(parts)


def gen_rtl(rng):
    words = ["مرحبا", "بالعالم", "كتاب", "שלום", "עולם", "ספר", "سلام", "دنیا", "ܫܠܡܐ",
             "ދިވެހި", "ߒߞߏ", "٣٤٥", "۱۲۳"]
    marks = ["", "\u200e", "\u200f", "\u202b", "\u202c", "\u061c", "\u0651", "\u064e",
             "\u05b7", "\u05bc"]
    return "".join(rng.choice(words) + rng.choice(marks) + rng.choice([" ", "", "،", ".", "\n"])
                   for _ in range(rng.randint(1, 6)))


def gen_cjk(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        k = rng.randrange(9)
        if k == 0:
            out.append(chr(rng.randrange(0x4E00, 0xA000)))
        elif k == 1:
            out.append(chr(rng.randrange(0xAC00, 0xD7A4)))
        elif k == 2:
            out.append(chr(0x1100 + rng.randrange(19)) + chr(0x1161 + rng.randrange(21)) +
                       (chr(0x11A8 + rng.randrange(27)) if rng.random() < 0.5 else ""))
        elif k == 3:
            out.append(chr(rng.randrange(0x1100, 0x1200)))
        elif k == 4:
            out.append(chr(rng.randrange(0x3040, 0x3100)))
        elif k == 5:
            out.append(chr(rng.randrange(0x20000, 0x32400)))
        elif k == 6:
            out.append(chr(rng.randrange(0xFF00, 0xFFF0)))
        elif k == 7:
            out.append(rng.choice("，。！？、；：「」『』（）【】…—　"))
        else:
            out.append(chr(rng.randrange(0x3130, 0x3190)))
    return "".join(out)


def gen_spaces(rng):
    out = []
    for _ in range(rng.randint(1, 12)):
        if rng.random() < 0.6:
            out.append(rng.choice(SPACES) * rng.choice([1, 1, 2, 3, 5, 17]))
        else:
            out.append(rng.choice(["a", "x", "1", "42", ".", "!", "é", "中", "'s", "-", "$",
                                   "\\", "word", "😀"]))
    return "".join(out)


def gen_digits(rng):
    digit_sets = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９",
                  "²³¹⁰⁴⁵", "₀₁₂₃", "½⅓¼⅕", "ⅠⅡⅢⅣⅫ", "①②③⑳", "〇一二", "𝟎𝟏𝟐𝟗", "𐒠𐒡"]
    out = []
    for _ in range(rng.randint(1, 8)):
        ds = rng.choice(digit_sets)
        out.append("".join(rng.choice(ds) for _ in range(rng.randint(1, 12))))
        out.append(rng.choice(["", " ", ".", ",", "e", "x", "-", "/", ":", "a", "\n", "%"]))
    return "".join(out)


def gen_contraction(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        c = rng.choice(CONTRACTIONS)
        c = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in c)
        if rng.random() < 0.1:
            c = c.replace("s", "ſ").replace("S", "ſ")
        if rng.random() < 0.1:
            c = c.replace("k", "\u212a")
        ap = rng.choice(["'", "'", "'", "’", "`", "''"])
        word = rng.choice(["", "it", "I", "we", "DON", "they", "x", " ", "1", "é", "中", "\n"])
        tail = rng.choice(["", "", "s", "x", " ", "'", "1", "\n", "é", "ll", "t"])
        out.append(word + ap + c + tail)
    return "".join(out)


LATEX = [r"\frac{", r"\sqrt{", r"\sum_{i=1}^{n}", r"\int_0^\infty", r"\left(", r"\right)",
         r"\boxed{", "}", "{", "^2", "_{k}", r"\cdot", r"\times", r"\alpha", r"\beta", r"\pi",
         "$", "$$", r"\[", r"\]", r"\begin{align*}", r"\end{align*}", r"\\", "&=", " = ", "+",
         "-", r"\le", r"\ge", r"\neq", r"\text{ cm}", r"\dfrac", r"\mathbb{R}", "(", ")", "[",
         "]", r"\{", r"\}", "|", r"\,", r"\!", "~", "\n", "\n\n", " ", "x", "y", "12", "3.5",
         "^{\\circ}", r"\overline{AB}", r"\triangle", r"\angle", "'", "''", r"\%", "\\\\\n"]
CODE = ["def ", "f(x):", "\n    ", "\n\t", "return ", "x", " + ", "1", "if ", "else:", "for i in ",
        "range(10)", "{", "}", "();", "int main(void)", "/* c */", "// c", "#include <stdio.h>",
        "\n", "  ", "    ", "\"s\"", "'c'", "x->y", "a[i]", "!=", "==", "&&", "||", "<<", ">>=",
        "0x1F", "1e-9", "...", "::", "=>", "@decorator", "`", "```", "\r\n", "  \n", "\\n"]


def gen_latex(rng):
    return "".join(rng.choice(LATEX) for _ in range(rng.randint(1, 40)))


def gen_code(rng):
    return "".join(rng.choice(CODE) for _ in range(rng.randint(1, 40)))


def gen_long(rng):
    n = rng.randint(1001, 5000)
    k = rng.randrange(8)
    if k == 0:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))
    if k == 1:
        return rng.choice("aeṡx") * n
    if k == 2:
        return "".join(rng.choice("0123456789") for _ in range(n))
    if k == 3:
        return "".join(rng.choice("!@#$%^&*()_+-=[]{};:,./<>?~") for _ in range(n))
    if k == 4:
        return rng.choice(["ab", "the", "ing", "中文", "é", "😀", "\u0301a"]) * (n // 2)
    if k == 5:
        return "".join(rng.choice(" \t\n\r") for _ in range(n)) + rng.choice(["", "x", "."])
    if k == 6:
        return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(n))
    return "".join(cp_random(rng) for _ in range(n))


def gen_added(rng):
    pieces = ADDED + ["<think%d>" % i for i in range(1, 7)] + ["</think%d>" % i for i in range(1, 7)]
    out = []
    for _ in range(rng.randint(1, 8)):
        k = rng.randrange(5)
        a = rng.choice(pieces)
        if k == 0:
            out.append(a)
        elif k == 1:
            cut = rng.randrange(1, len(a))
            out.append(a[:cut] if rng.random() < 0.5 else a[cut:])
        elif k == 2:
            out.append(a.upper() if rng.random() < 0.5 else a.replace("|", "｜"))
        elif k == 3:
            out.append(rng.choice(["<", ">", "|", "<|", "|>", "<<", ">>", "</", "/"]))
        else:
            out.append(rng.choice(["a", " ", "\n", "x ", " y", "1", "é", "中", "\u0301", "user",
                                   "assistant\n", "'s", "  ", "\n\n"]))
    return "".join(out)


class Data:
    def __init__(self, shared):
        self.texts = []
        for name in ("math500.jsonl", "aime24.jsonl", "aime25.jsonl"):
            with open(os.path.join(shared, "data", name), encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    self.texts += [str(v) for v in row.values() if isinstance(v, (str, int))]
        cases = os.path.join(shared, "cases")
        for name in sorted(os.listdir(cases)):
            if name.endswith(".jsonl"):
                with open(os.path.join(cases, name), encoding="utf-8") as f:
                    for line in f:
                        row = json.loads(line)
                        self.texts += [v for v in row.values() if isinstance(v, str)]
        try:
            with zipfile.ZipFile(os.path.join(shared, "data", "gpqa", "dataset.zip")) as z:
                raw = z.read("dataset/gpqa_diamond.csv", pwd=b"deserted-untie-orchid")
            for row in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
                self.texts += [v for v in row.values() if v and len(v) < 20000]
        except (OSError, KeyError, RuntimeError) as e:
            sys.stderr.write(f"note: GPQA not read ({e})\n")
        self.texts = [t for t in self.texts if t]

    def whole(self, rng):
        return rng.choice(self.texts)

    def slice(self, rng):
        t = rng.choice(self.texts)
        i = rng.randrange(len(t))
        return t[i:i + rng.randint(1, 200)]

    def mutated(self, rng):
        t = list(self.slice(rng))
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(t) + 1)
            t.insert(i, rng.choice([cp_random(rng), rng.choice(SPACES), rng.choice(ADDED),
                                    rng.choice(MARKS), "'s", "<think1>", "\n\n"]))
        s = "".join(t)
        return unicodedata.normalize(rng.choice(["NFC", "NFD", "NFKC", "NFKD"]), s) \
            if rng.random() < 0.3 else s


def gen_mixed(rng, gens):
    return "".join(rng.choice(gens)(rng) for _ in range(rng.randint(2, 5)))


def gen_nf(rng, gens):
    s = rng.choice(gens)(rng)
    return unicodedata.normalize(rng.choice(["NFD", "NFKD", "NFKC"]), s)


def categories(data):
    base = {"unicode": gen_unicode, "plane": gen_plane, "combining": gen_combining,
            "emoji": gen_emoji, "rtl": gen_rtl, "cjk": gen_cjk, "spaces": gen_spaces,
            "digits": gen_digits, "contraction": gen_contraction, "latex": gen_latex,
            "code": gen_code, "added": gen_added}
    short = list(base.values())
    cats = dict(base)
    cats["long"] = gen_long
    cats["data"] = data.whole
    cats["data_slice"] = data.slice
    cats["data_mutated"] = data.mutated
    cats["nf"] = lambda rng: gen_nf(rng, short + [data.slice])
    cats["mixed"] = lambda rng: gen_mixed(rng, short + [data.slice])
    return cats


def run_ssfteval(binary, tok_path, lines, decode=False, skip=False):
    """Feeds JSONL lines to `ssfteval tokenize --jsonl -`; returns the parsed
    output lines (None for lines after a failure, with the error)."""
    cmd = [binary, "tokenize", "--tokenizer", tok_path, "--jsonl", "-"]
    if decode:
        cmd.append("--decode")
    if skip:
        cmd.append("--skip-special")
    inp = "".join(json.dumps(x, ensure_ascii=True) + "\n" for x in lines).encode()
    p = subprocess.run(cmd, input=inp, capture_output=True, check=False)
    out = [json.loads(line) for line in p.stdout.decode("utf-8").split("\n") if line]
    if p.returncode:
        sys.stderr.write(f"ssfteval failed after {len(out)} lines: {p.stderr.decode()[:300]}\n")
    return out + [None] * (len(lines) - len(out))


def ours_encode(binary, tok_path, texts):
    return [o["ids"] if o else None for o in run_ssfteval(binary, tok_path,
                                                          [{"text": t} for t in texts])]


def hf_encode(tok, texts):
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def shrink(binary, tok_path, tok, text):
    """Deletes characters (halves, then quarters, ... then one at a time)
    while ours and HF still differ."""
    def differs(cands):
        hf = hf_encode(tok, cands)
        ours = ours_encode(binary, tok_path, cands)
        return [c for c, h, o in zip(cands, hf, ours) if h != o]
    cur = text
    chunk = max(len(cur) // 2, 1)
    while True:
        cands = [cur[:i] + cur[i + chunk:] for i in range(0, len(cur), chunk)]
        cands = [c for c in cands if c]
        bad = differs(cands) if cands else []
        if bad:
            cur = min(bad, key=len)
            chunk = max(min(chunk, len(cur) // 2), 1)
        elif chunk > 1:
            chunk //= 2
        else:
            return cur


def nfc_table(tok):
    """Ranges of code points that the oracle's NFC passes through while the
    newest Unicode data (PyPI unicodedata2) gives them a combining class, a
    decomposition, or (first of the pair) a composition: tokenizer-bpe.c's
    nfc_kept, but for U+11A7 (a utf8proc bug, not a table)."""
    import unicodedata2 as ud  # noqa: PLC0415 (only for this mode)
    norm = tok.normalizer.normalize_str
    kept = set()
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        if ud.combining(c) and any(norm(s) != ud.normalize("NFC", s) for s in
                                   ("a\u0345" + c, "a" + c, c + "\u0301", "a" + c + "\u0316",
                                    "e\u0301" + c)):
            kept.add(cp)
        d = ud.decomposition(c)
        if d and not d.startswith("<"):
            parts = "".join(chr(int(x, 16)) for x in d.split())
            if norm(c) != ud.normalize("NFC", c):
                kept.add(cp)
            if norm(parts) != ud.normalize("NFC", parts):
                kept.update((cp, ord(parts[0])))
    ranges = []
    for cp in sorted(kept):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    print(f"/* Unicode {ud.unidata_version}, {len(kept)} code points */")
    print(", ".join(f"{{0x{a:X}, 0x{b:X}}}" for a, b in ranges))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared"))
    ap.add_argument("--ssfteval", default=os.path.join(here, "..", "build", "cli", "ssfteval"))
    ap.add_argument("--n", type=int, default=20000, help="strings per category")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default=None)
    ap.add_argument("--show", type=int, default=5, help="mismatches shrunk per category")
    ap.add_argument("--nfc-table", action="store_true",
                    help="print the code points whose NFC the oracle leaves alone")
    args = ap.parse_args()
    if args.nfc_table:
        nfc_table(tokenizers.Tokenizer.from_file(
            os.path.join(args.shared, "tokenizers", "qwen3", "tokenizer.json")))
        return 0
    rng = random.Random(args.seed)
    cats = categories(Data(args.shared))
    if args.only:
        cats = {k: v for k, v in cats.items() if k in args.only.split(",")}
    texts, cat_of = [], []
    for name, gen in cats.items():
        n = args.n if name != "long" else max(args.n // 20, 1)
        for _ in range(n):
            texts.append(gen(rng))
            cat_of.append(name)
    failures = 0
    for name in NAMES:
        tok_path = os.path.join(args.shared, "tokenizers", name, "tokenizer.json")
        tok = tokenizers.Tokenizer.from_file(tok_path)
        hf = hf_encode(tok, texts)
        ours = ours_encode(args.ssfteval, tok_path, texts)
        bad = {}
        for t, c, h, o in zip(texts, cat_of, hf, ours):
            if h != o:
                bad.setdefault(c, []).append(t)
        n_bad = sum(len(v) for v in bad.values())
        print(f"{name}: encode: {len(texts)} strings, {n_bad} mismatches")
        for c, ts in sorted(bad.items()):
            print(f"  {c}: {len(ts)}")
            for t in sorted(ts, key=len)[:args.show]:
                m = shrink(args.ssfteval, tok_path, tok, t)
                o = ours_encode(args.ssfteval, tok_path, [m])[0]
                print(f"    {m!r} ({[hex(ord(ch)) for ch in m][:12]}): "
                      f"ours {o} hf {hf_encode(tok, [m])[0]}")
        failures += n_bad
        # Decoding: the oracle's ids (round trip), then random ids.
        seqs = [h for h in hf if h is not None]
        n_ids = tok.get_vocab_size(with_added_tokens=True)
        for _ in range(len(texts) // 4):
            k = rng.randrange(3)
            if k == 0:
                seqs.append([rng.randrange(n_ids) for _ in range(rng.randint(1, 12))])
            elif k == 1:
                seqs.append([rng.randrange(256) for _ in range(rng.randint(1, 12))])
            else:
                seqs.append([rng.choice([rng.randrange(256), rng.randrange(n_ids),
                                         rng.randrange(151643, n_ids)])
                             for _ in range(rng.randint(1, 12))])
        for skip in (False, True):
            hf_dec = tok.decode_batch(seqs, skip_special_tokens=skip)
            ours_dec = [o["text"] if o else None
                        for o in run_ssfteval(args.ssfteval, tok_path, [{"ids": s} for s in seqs],
                                              decode=True, skip=skip)]
            bad_dec = [(s, h, o) for s, h, o in zip(seqs, hf_dec, ours_dec) if h != o]
            print(f"{name}: decode (skip_special={skip}): {len(seqs)} sequences, "
                  f"{len(bad_dec)} mismatches")
            for s, h, o in bad_dec[:args.show]:
                print(f"    {s}: ours {o!r} hf {h!r}")
            failures += len(bad_dec)
        rt = sum(1 for t, h in zip(texts, hf) if tok.decode(h) == t)
        print(f"{name}: HF decode(encode(x)) == x for {rt} of {len(texts)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
