#!/usr/bin/env python3
"""Differential test of `ssfteval grade` (default profile) against Math-Verify.

Development oracle only: Math-Verify (PyPI `math-verify==0.8.0`,
`latex2sympy2_extended==1.10.2`, as ../shared/reference/grading.md pins) is
never a dependency of ssfteval.

  tools/grade-diff.py gen SHARED > pairs.jsonl     golds of MATH-500 and AIME
      rewritten equivalently and as near misses, bare and inside completions
  tools/grade-diff.py mv pairs.jsonl > mv.jsonl     Math-Verify's verdicts
  ssfteval grade --jsonl pairs.jsonl > ours.jsonl
  tools/grade-diff.py diff pairs.jsonl mv.jsonl ours.jsonl
      prints the disagreements grouped by rewrite

Golds come from ../shared/data (MATH-500, AIME 2024/2025); the rows written
hold task data, so keep them out of the repository.  `mv` is slow (sympy):
split the pairs file and run one process per core.  Each disagreement still
needs a verdict by hand: Math-Verify's own bugs and the policy differences of
docs/GRADING.md are not ours to fix.
"""
import json
import random
import re
import sys
from fractions import Fraction

# ---- rewrites of a gold answer -------------------------------------------
# Each returns a rewritten string or None when it does not apply.  Names
# ending in "!" are meant as near misses (not equivalent).

INT = re.compile(r"^-?\d+$")
FRAC = re.compile(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")


def as_fraction(g):
    m = FRAC.match(g)
    if m:
        v = Fraction(int(m.group(2)), int(m.group(3)))
        return -v if m.group(1) else v
    if INT.match(g):
        return Fraction(int(g))
    try:
        if re.match(r"^-?\d*\.\d+$", g):
            return Fraction(g)
    except ValueError:
        pass
    return None


def thousands(n, sep):
    s = f"{abs(n):,}".replace(",", sep)
    return ("-" if n < 0 else "") + s


def decimal_str(v, places=None):
    """v's exact decimal when it terminates, else None (or rounded to places)."""
    if places is not None:
        return f"{float(v):.{places}f}"
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return None
    s = f"{float(v):.12f}".rstrip("0").rstrip(".")
    return s


def num_rewrites(g):
    v = as_fraction(g)
    if v is None:
        return {}
    out = {}
    if v.denominator == 1:
        n = int(v)
        out["int.0"] = f"{n}.0"
        out["int.00"] = f"{n}.00"
        if abs(n) >= 1000:
            out["int,sep"] = thousands(n, ",")
            out["int{,}sep"] = thousands(n, "{,}")
            out["int\\,sep"] = thousands(n, "\\,")
            out["int space sep"] = thousands(n, " ")
            out["int\\!sep"] = thousands(n, ",\\!")
            if n % 100 == 0:
                m = n
                e = 0
                while m % 10 == 0:
                    m //= 10
                    e += 1
                out["sci"] = f"{m} \\times 10^{{{e}}}"
                out["sci cdot"] = f"{m}\\cdot10^{e}" if e < 10 else None
        if 0 <= n < 100:
            out["aime pad"] = f"{n:03d}"
        if n < 0:
            out["unicode minus"] = "\u2212" + str(-n)
        out["deg"] = f"{n}^\\circ"
        out["deg{}"] = f"{n}^{{\\circ}}"
        out["text units"] = f"{n}\\text{{ cm}}"
        out["mbox units^2"] = f"{n} \\mbox{{ cm}}^2"
        out["word units"] = f"{n} \\text{{ meters}}"
        out["x="] = f"x = {n}"
        out["dollar"] = f"\\${n}"
        out["frac/1"] = f"\\frac{{{2 * n}}}{{2}}"
        out["left(right)"] = f"\\left({n}\\right)"
        out["text{}"] = f"\\text{{{n}}}"
        out["mathbf"] = f"\\mathbf{{{n}}}"
        out["+1!"] = str(n + 1)
        out["neg!"] = str(-n) if n else None
        out["*10!"] = str(n * 10) if n else None
        out["percent!"] = f"{n}\\%" if n else None
        out["int.1!"] = f"{n}.1"
    else:
        p, q = abs(v.numerator), v.denominator
        sign = "-" if v < 0 else ""
        out["dfrac"] = f"{sign}\\dfrac{{{p}}}{{{q}}}"
        out["tfrac"] = f"{sign}\\tfrac{{{p}}}{{{q}}}"
        out["slash"] = f"{sign}{p}/{q}"
        out["over"] = f"{sign}{{{p} \\over {q}}}"
        if p < 10 and q < 10:
            out["frac12"] = f"{sign}\\frac{p}{q}"
        out["scaled"] = f"{sign}\\frac{{{2 * p}}}{{{2 * q}}}"
        if sign:
            out["neg num"] = f"\\frac{{-{p}}}{{{q}}}"
            out["neg den"] = f"\\frac{{{p}}}{{-{q}}}"
        d = decimal_str(v)
        if d is not None:
            out["decimal"] = d
            out["percent"] = f"{v * 100}\\%" if (v * 100).denominator == 1 else None
        out["decimal6"] = decimal_str(v, 6)
        out["decimal8"] = decimal_str(v, 8)
        out["decimal3!"] = decimal_str(v, 3) if decimal_str(v) is None or len(decimal_str(v)) > 5 else None
        if p > q:
            w, r = divmod(p, q)
            out["mixed"] = f"{sign}{w}\\frac{{{r}}}{{{q}}}"
            out["mixed space"] = f"{sign}{w} \\frac{{{r}}}{{{q}}}"
        out["left(right)"] = f"\\left({sign}\\frac{{{p}}}{{{q}}}\\right)"
        out["inverse!"] = f"{sign}\\frac{{{q}}}{{{p}}}"
        out["num+1!"] = f"{sign}\\frac{{{p + 1}}}{{{q}}}"
        out["flipsign!"] = ("" if sign else "-") + f"\\frac{{{p}}}{{{q}}}"
    return {k: x for k, x in out.items() if x is not None}


def generic_rewrites(g):
    out = {}
    if "\\frac" in g:
        out["->dfrac"] = g.replace("\\frac", "\\dfrac")
        out["->tfrac"] = g.replace("\\frac", "\\tfrac")
    if "\\dfrac" in g:
        out["dfrac->frac"] = g.replace("\\dfrac", "\\frac")
    m = re.fullmatch(r"(\d+)\s*\\sqrt\{(\d+)\}", g)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        out["sqrt in"] = f"\\sqrt{{{a * a * b}}}"
        out["sqrt star"] = f"{a}*\\sqrt{{{b}}}"
        out["sqrt cdot rev"] = f"\\sqrt{{{b}}} \\cdot {a}"
        out["sqrt pow"] = f"{a}\\cdot {b}^{{1/2}}"
        out["sqrt!"] = f"{a}\\sqrt{{{b + 1}}}"
        if b < 10:
            out["sqrt nobrace"] = f"{a}\\sqrt{b}"
    m = re.fullmatch(r"\\sqrt\{(\d+)\}", g)
    if m:
        b = int(m.group(1))
        out["sqrt pow"] = f"{b}^{{1/2}}"
        out["sqrt pow frac"] = f"{b}^{{\\frac{{1}}{{2}}}}"
        if b < 10:
            out["sqrt nobrace"] = f"\\sqrt{b}"
        out["sqrt!"] = f"\\sqrt{{{b + 1}}}"
        out["sqrt decimal"] = f"{b ** 0.5:.6f}"
    if "\\pi" in g:
        out["pi spaced"] = g.replace("\\pi", " \\pi ")
        out["pi->3.14!"] = g.replace("\\pi", "3.14")
        m = re.fullmatch(r"\\frac\{(\d*)\\pi\}\{(\d+)\}", g)
        if m:
            a = m.group(1) or "1"
            out["pi out"] = f"\\frac{{{a}}}{{{m.group(2)}}}\\pi"
            out["pi slash"] = f"{m.group(1)}\\pi/{m.group(2)}"
            deg = Fraction(int(a) * 180, int(m.group(2)))
            if deg.denominator == 1:
                out["pi deg"] = f"{deg.numerator}^\\circ"
        m = re.fullmatch(r"(\d+)\s*\\pi", g)
        if m:
            out["pi rev"] = f"\\pi \\cdot {m.group(1)}"
            out["pi+1!"] = f"{int(m.group(1)) + 1}\\pi"
    if "(" in g and "\\left" not in g:
        out["left right"] = g.replace("(", "\\left(").replace(")", "\\right)")
        if "[" in g or "]" in g:
            out["left right"] = re.sub(r"([\[(])", r"\\left\1", re.sub(r"([\])])", r"\\right\1", g))
    if ", " in g:
        out["nospace"] = g.replace(", ", ",")
    elif "," in g:
        out["space"] = g.replace(",", ", ")
    if re.fullmatch(r"\(([^(),]+),([^(),]+)\)", g.replace(" ", "")):
        m = re.fullmatch(r"\(([^(),]+),([^(),]+)\)", g.replace(" ", ""))
        out["tuple swap!"] = f"({m.group(2)},{m.group(1)})"
    if re.fullmatch(r"\(([^(),]+),([^(),]+),([^(),]+)\)", g.replace(" ", "")):
        m = re.fullmatch(r"\(([^(),]+),([^(),]+),([^(),]+)\)", g.replace(" ", ""))
        out["tuple rot!"] = f"({m.group(2)},{m.group(3)},{m.group(1)})"
    parts = [x.strip() for x in g.split(",")]
    if len(parts) >= 2 and not re.search(r"[()\[\]{}]", g):
        out["list rev"] = ", ".join(reversed(parts))
        out["list set"] = "\\{" + ", ".join(reversed(parts)) + "\\}"
        out["list drop!"] = ", ".join(parts[1:])
        out["list and"] = " and ".join(reversed(parts))
    if re.fullmatch(r"[\[(].*[\])]", g) and "\\cup" not in g and g.count(",") == 1:
        flip = {"(": "[", "[": "("}
        out["interval open!"] = flip[g[0]] + g[1:]
    if "\\cup" in g:
        us = g.split("\\cup")
        out["union rev"] = " \\cup ".join(reversed([u.strip() for u in us]))
        out["union U"] = g.replace("\\cup", "U")
    if "\\infty" in g:
        out["infty inf"] = g.replace("\\infty", "\\inf")
        out["infty unicode"] = g.replace("\\infty", "\u221e")
    if "\\text{" in g:
        out["text strip"] = re.sub(r"\\text\{([^}]*)\}", r"\1", g)
        out["textbf"] = g.replace("\\text{", "\\textbf{")
        out["mathrm"] = g.replace("\\text{", "\\mathrm{")
        out["text lower"] = re.sub(r"\\text\{([^}]*)\}", lambda m: "\\text{" + m.group(1).lower() + "}", g)
    if "pmatrix" in g:
        out["bmatrix"] = g.replace("pmatrix", "bmatrix")
        out["array"] = g.replace("\\begin{pmatrix}", "\\left(\\begin{array}{c}").replace(
            "\\end{pmatrix}", "\\end{array}\\right)")
    if "-" in g and not g.startswith("-"):
        out["unicode minus"] = g.replace("-", "\u2212")
    for a, b in (("<", ">"), ("\\le ", "\\ge "), ("\\ge ", "\\le "), (">", "<")):
        m = re.fullmatch(r"([a-z])\s*" + re.escape(a.strip()) + r"\s*(.+)", g)
        if m:
            out["rel flip"] = f"{m.group(2)} {b.strip()} {m.group(1)}"
            out["rel wrong!"] = f"{m.group(1)} {b.strip()} {m.group(2)}"
    if re.search(r"[a-z]", re.sub(r"\\[a-zA-Z]+", "", g)) and "=" not in g and not g.startswith("\\text"):
        out["spaces"] = re.sub(r"([+\-])", r" \1 ", g)
    out["displaystyle"] = "\\displaystyle " + g
    out["x= generic"] = "x = " + g if "=" not in g and "\\text" not in g else None
    if "=" not in g:
        out["neg generic!"] = "-(" + g + ")" if not g.startswith("-") else g[1:]
    out["nested braces"] = "{" + g + "}"
    return {k: x for k, x in out.items() if x is not None}



def form_rewrites(g):
    """Answer spellings reasoning models produce, beyond the gold's own forms."""
    out = {}
    v = as_fraction(g.strip())
    if v is not None and v.denominator == 1:
        n = int(v)
        for k, f in {
            "u thin": "{n}\\,\\text{{cm}}", "u tilde": "{n}~\\text{{cm}}", "u mathrm": "{n} \\mathrm{{cm}}",
            "u nospace": "{n}\\text{{cm}}", "u ^2 braces": "{n} \\text{{ cm}}^{{2}}", "u in text": "\\text{{{n} cm}}",
            "u m/s": "{n} \\, \\mathrm{{m/s}}", "u dollars": "{n} \\text{{ dollars}}", "u \\$.00": "\\${n}.00",
            "u units": "{n}\\text{{ units}}", "u sq units": "{n} \\text{{ square units}}",
            "u degrees word": "{n} \\text{{ degrees}}", "deg unicode": "{n}\u00b0", "deg text": "{n}^{{\\circ}}\\text{{C}}",
            "u ways": "{n} \\text{{ ways}}", "u plain word": "{n} ways",
            "n=": "n = {n}", "n=nospace": "n={n}", "x=\\text": "x = {n} \\text{{ cm}}",
            "textbf": "\\textbf{{{n}}}", "mathbf": "\\mathbf{{{n}}}", "boldsymbol": "\\boldsymbol{{{n}}}",
            "approx": "{n} \\approx {n}.0", "eq chain": "{a} + {b} = {n}",
            "unicode minus": "\u2212{m}", "dots": "{n}.", "paren": "({n})",
        }.items():
            out["f " + k] = f.format(n=n, m=-n, a=n - 1, b=1)
        if abs(n) >= 1000:
            out["f ,sep"] = thousands(n, ",")
            out["f ,sep text"] = thousands(n, ",") + "\\text{ dollars}"
            out["f \\text sep"] = thousands(n, "\\text{,}")
        if n > 0 and n % 1000 == 0:
            out["f sci e"] = f"{n // 1000}e3"
            out["f sci \\times"] = f"{n / 1000:g} \\times 10^3"
            out["f sci \\cdot"] = f"{n / 1000:g} \\cdot 10^{{3}}"
        out["f wrong unit!"] = f"{n + 1}\\text{{ cm}}"
        out["f x= wrong!"] = f"x = {n + 1}"
        out["f deg wrong!"] = f"{n + 1}^\\circ"
    if v is not None and v.denominator != 1:
        p, q = abs(v.numerator), v.denominator
        sign = "-" if v < 0 else ""
        out["f frac text"] = f"{sign}\\frac{{{p}}}{{{q}}} \\text{{ cm}}"
        out["f frac x="] = f"x = {sign}\\frac{{{p}}}{{{q}}}"
        out["f percent"] = f"{float(v) * 100:g}\\%" if (v * 100).denominator == 1 else None
        out["f approx"] = f"{sign}\\frac{{{p}}}{{{q}}} \\approx {float(v):.4f}"
        out["f frac unicode minus"] = f"\u2212\\frac{{{p}}}{{{q}}}" if sign else None
        out["f sfrac"] = f"{sign}\\sfrac{{{p}}}{{{q}}}"
    if "\\pm" in g:
        m = re.fullmatch(r"\s*(-?\d+)\s*\\pm\s*(.+)", g)
        if m:
            a, b = m.group(1), m.group(2).strip()
            out["pm list"] = f"{a} + {b}, {a} - {b}"
            out["pm list and"] = f"{a} + {b} \\text{{ and }} {a} - {b}"
            out["pm set"] = f"\\{{{a} - {b}, {a} + {b}\\}}"
            out["pm frac"] = f"\\frac{{{2 * int(a)} \\pm 2{b}}}{{2}}" if b.startswith("\\sqrt") or b[0].isdigit() else None
            out["pm one!"] = f"{a} + {b}"
            out["pm mp"] = f"{a} \\mp {b}"
    return {k: x for k, x in out.items() if x is not None}


def rewrites(g):
    out = {"identity": g}
    out.update(generic_rewrites(g))
    out.update(num_rewrites(g.strip()))
    out.update(form_rewrites(g))
    return out


# ---- completions ------------------------------------------------------------

FILLER = [
    "Let me set up the problem. We have $x + y = 10$ and $xy = 21$, so $x$ and $y$ are roots of $t^2 - 10t + 21 = 0$.",
    "Checking small cases: for $n = 1$ we get $3$, for $n = 2$ we get $7$, and for $n=3$ we get $15$.",
    "Hmm, wait. Let me re-examine the step where I divided by $2$; the sum is $\\frac{7}{2} + 4 = \\frac{15}{2}$.",
    "So the area is $\\frac{1}{2}\\cdot 6 \\cdot 8 = 24$, but that is only part of the figure.",
    "Alternatively, using the formula $a_n = a_1 + (n-1)d$ with $d = 3$ gives 100 terms.",
]


def completions(ans, wrong, rnd):
    """(kind, text) completions whose final answer is ans."""
    reasoning = " ".join(rnd.sample(FILLER, 3))
    out = [
        ("bare$", f"${ans}$"),
        ("boxed", f"\\boxed{{{ans}}}"),
        ("long boxed", f"{reasoning}\n\nTherefore, the answer is $\\boxed{{{ans}}}$."),
        ("r1 final", f"{reasoning}\n\n**Final Answer**\n\\[\n\\boxed{{{ans}}}\n\\]"),
        ("final I hope", f"{reasoning}\n\nFinal Answer: The final answer is ${ans}$. I hope it is correct."),
        ("answer is $", f"{reasoning}\n\nThe answer is ${ans}$."),
        ("two boxes", f"{reasoning} At first I got $\\boxed{{{wrong}}}$, but that's wrong.\n\n"
                      f"{reasoning}\n\nSo the answer is $\\boxed{{{ans}}}$."),
        ("display boxed", f"{reasoning}\n\nThus\n$$\n\\boxed{{{ans}}}\n$$"),
        ("paren boxed", f"{reasoning}\n\nThe final answer is \\(\\boxed{{{ans}}}\\)."),
    ]
    out += [
        ("bold boxed", f"{reasoning}\n\n**Final Answer:** $\\boxed{{{ans}}}$"),
        ("boxed then text", f"{reasoning}\n\nSo the answer is $\\boxed{{{ans}}}$. Let me double check: yes, "
                            f"with $n = 2$ the sum is $7$."),
        ("think", f"<think>\n{reasoning} Maybe $\\boxed{{{wrong}}}$?\n</think>\n\nThe answer is $\\boxed{{{ans}}}$."),
        ("fbox", f"{reasoning}\n\nAnswer: $\\fbox{{{ans}}}$"),
        ("heading", f"{reasoning}\n\n### Final Answer\n\n$${ans}$$"),
    ]
    if re.fullmatch(r"-?[\d.,]+", ans):
        out.append(("final answer bold", f"{reasoning}\n\nFinal Answer: **{ans}**"))
        out.append(("answer is plain", f"{reasoning}\n\nThe answer is {ans}."))
        out.append(("answer bold", f"{reasoning}\n\nThe answer is **{ans}**."))
        out.append(("**final answer**:", f"{reasoning}\n\n**Final answer**: {ans}"))
        out.append(("answer: plain", f"{reasoning}\n\nAnswer: {ans}"))
    return out


def gen(shared):
    rnd = random.Random(20240601)
    golds = []
    for name in ("math500", "aime24", "aime25"):
        with open(f"{shared}/data/{name}.jsonl", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                golds.append((name, str(r["answer"])))
    seen = set()
    for src, g in golds:
        if g in seen:
            continue
        seen.add(g)
        rw = rewrites(g)
        for kind, ans in rw.items():
            row = {"gold": g, "pred": f"\\boxed{{{ans}}}", "kind": kind, "wrap": "boxed", "src": src}
            print(json.dumps(row, ensure_ascii=False))
        # a sample of rewrites inside whole completions
        keys = list(rw)
        for kind in rnd.sample(keys, min(3, len(keys))):
            wrong = rw.get("+1!") or rw.get("neg generic!") or "0"
            for wrap, text in completions(rw[kind], wrong, rnd):
                if wrap == "boxed":
                    continue
                row = {"gold": g, "pred": text, "kind": kind, "wrap": wrap, "src": src}
                print(json.dumps(row, ensure_ascii=False))


# ---- Math-Verify ------------------------------------------------------------

def mv_one(line):
    from math_verify import parse, verify
    p = json.loads(line)
    try:
        gold = parse(f"${p['gold']}$")
        pred = parse(p["pred"])
        v = bool(verify(gold, pred))
        return json.dumps({"mv": v, "mv_gold": [str(x) for x in gold], "mv_pred": [str(x) for x in pred]})
    except BaseException as e:  # noqa: BLE001 - the oracle's own failures are verdicts too
        return json.dumps({"mv": False, "mv_error": repr(e)})


def mv(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    for line in lines:
        print(mv_one(line), flush=True)


def diff(pairs, mvs, ours):
    P = [json.loads(x) for x in open(pairs, encoding="utf-8")]
    M = [json.loads(x) for x in open(mvs, encoding="utf-8")]
    O = [json.loads(x) for x in open(ours, encoding="utf-8")]
    assert len(P) == len(M) == len(O)
    agree = 0
    for p, m, o in zip(P, M, O):
        if m["mv"] == o["verdict"]:
            agree += 1
            continue
        print(json.dumps({"kind": p["kind"], "wrap": p["wrap"], "gold": p["gold"],
                          "pred": p["pred"][-160:], "mv": m["mv"], "ours": o["verdict"],
                          "mv_pred": m.get("mv_pred"), "mv_gold": m.get("mv_gold"),
                          "our_pred": o.get("pred_extracted"), "our_gold": o.get("gold_extracted"),
                          "reason": o.get("reason")}, ensure_ascii=False))
    print(f"# {len(P)} pairs, {agree} agree ({100.0 * agree / len(P):.2f}%)", file=sys.stderr)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd == "mv":
        mv(sys.argv[2])
    elif cmd == "diff":
        diff(sys.argv[2], sys.argv[3], sys.argv[4])
