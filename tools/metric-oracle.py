#!/usr/bin/env python3
"""metric-oracle.py - differential test of ssfteval's metrics against an
independent implementation of the reference definitions.

Each trial draws a random outcome table (questions x samples: right, an
equivalent right form, wrong answers from a small pool so that votes tie,
no answer, an empty completion, failed or missing samples), writes it as a
replay file for a synthetic math task, runs `ssfteval run` with a random set
of metrics under one of three contexts (no protocol; --protocol ssft;
--protocol ssft --compat ssft-lighteval), reads `report --format json` and
compares every value, standard error and question count with this oracle.
The bootstrap interval is checked for its properties only (it contains the
mean, lies within the values' range, is a point when all values agree).

Definitions (shared/reference/metrics-and-reporting.md §1-2, ssft-protocol.md
§3.4-3.6, §6.2, README "Running an evaluation"):
  pass@k   1 - C(n-c, k)/C(n, k) per question, exact in fractions
  avg@n    c/n
  cons@k   vote over k samples: largest class of equal answers, ties to the
           class seen first, "no answer" never wins; winner scored by its
           correctness; samples: tag 0 0..k-1, or with the protocol tag
           j%6+1 index j//6; compat: the reference's block order
  cons@6:native   S groups {(t, s) | t = 1..6}, mean of the S votes
  pass@1:tagK     the first S samples of tag K
  compat   votes on the extracted text (structural), nothing extracted and
           an empty completion are vote classes that can win; maj@k scored
           by text equality with the gold; grading: a decimal is not an
           integer gold
  SE       sample sd (N-1) / sqrt(N), none for N < 2; questions with a
           failed or missing sample the metric reads are left out

usage: metric-oracle.py SSFTEVAL [--trials N] [--seed S] [--jobs J] [--only SEED]
Dev only; exits 1 when a trial disagrees.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction

TAGS = 6


# ---- outcome tables ---------------------------------------------------------

# A sample: ("ans", text) with text a number as written, ("none",) no answer,
# ("empty",) an empty completion, ("fail",) finish_reason abort, ("missing",);
# on a letters task ("ans", letter, completion) and ("none", completion).
LETTER_FORMS = ["Answer: %s", "Reasoning. Answer: %s", " Answer: %s\n", "So %s is it. Answer: %s"]


def draw_letter_sample(rng, kind):
    if kind in ("right", "right2", "right3", "wrong"):
        letter = "A" if kind != "wrong" else rng.choice("BCD")
        form = rng.choice(LETTER_FORMS)
        return ("ans", letter, form % ((letter,) * form.count("%s")))
    if kind == "none":
        return ("none", rng.choice(["no idea.", " no idea.\n", "not sure"]))
    return (kind,)


def draw_sample(rng, gold, p_fail, letters=False):
    r = rng.random()
    if r < p_fail:
        return ("fail",) if rng.random() < 0.5 else ("missing",)
    kind = rng.choices(["right", "right2", "right3", "wrong", "none", "empty"],
                       weights=[4, 1, 1, 5, 2, 1])[0]
    if letters:
        return draw_letter_sample(rng, kind)
    if kind == "right3":  # equivalent, an integer as a fraction: right, but not the gold's text
        return ("ans", "\\frac{%d}{2}" % (2 * gold))
    if kind == "right":
        return ("ans", str(gold))
    if kind == "right2":
        return ("ans", "%d.0" % gold)
    if kind == "wrong":
        w = gold + rng.choice([1, 2, 3])
        return ("ans", str(w) if rng.random() < 0.85 else "%d.0" % w)
    return (kind,)


def sample_text(s):
    if len(s) == 3 or (s[0] == "none" and len(s) == 2):
        return s[-1]
    if s[0] == "ans":
        return "Reasoning. Therefore, the final answer is: $\\boxed{%s}$. I hope it is correct" % s[1]
    if s[0] == "empty":
        return ""
    return "I could not finish this one."


# ---- oracle -------------------------------------------------------------------

def value(text):
    if text.startswith("\\frac{"):
        num, den = text[6:-1].split("}{")
        return Fraction(int(num), int(den))
    return Fraction(text)


def usable(s):
    return s[0] not in ("fail", "missing")


def correct(s, gold, compat):
    if s[0] != "ans":
        return False
    if len(s) == 3:  # letters: the correct answer is A (order "fixed")
        return s[1] == "A"
    if compat:  # ssft-lighteval profile: a decimal never equals an integer gold
        return s[1] == str(gold) or s[1].startswith("\\frac")
    return value(s[1]) == gold


def vote_class(s, compat, native=False):
    """None: abstains (never wins)."""
    letters = len(s) == 3 or (s[0] == "none" and len(s) == 2)
    if letters:
        if compat:  # the whole completion; native strips it (strip_strings)
            t = sample_text(s)
            return ("raw", t.strip() if native else t)
        return ("letter", s[1]) if s[0] == "ans" else None
    if compat:
        if s[0] == "ans":
            return ("text", s[1])
        if s[0] == "empty":
            return ("empty",)  # "" (get_processed_pred): a class apart from []
        return ("list", )  # [] nothing extracted
    if s[0] == "ans":
        return ("value", value(s[1]))
    return None


def vote(samples, gold, compat, by_gold_text=False, native=False):
    counts, first = {}, {}
    for i, s in enumerate(samples):
        c = vote_class(s, compat, native)
        if c is None:
            continue
        counts[c] = counts.get(c, 0) + 1
        first.setdefault(c, i)
    if not counts:
        return Fraction(0)
    # max(answers, key=answers.count): the largest class, the earliest first
    win = min(counts, key=lambda c: (-counts[c], first[c]))
    w = samples[first[win]]
    if by_gold_text:
        return Fraction(int(w[0] == "ans" and w[1] == str(gold)))
    return Fraction(int(correct(w, gold, compat)))


def pass_at_k(n, c, k):
    if n - c < k:
        return Fraction(1)
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def block_order(k, groups):
    n_ref = max(TAGS * groups, k)
    q, r = divmod(n_ref, TAGS)
    order = []
    for t in range(1, TAGS + 1):
        order += [(t, i) for i in range(q + (t <= r))]
    return order[:k]


def positions(metric, ctx):
    """The (tag, index) list a metric reads, in vote order."""
    kind, k, n = metric["kind"], metric["k"], metric["n"]
    ssft = ctx["protocol"] == "ssft"
    S = ctx["groups"]
    if kind in ("pass", "avg"):
        return [(1 if ssft else 0, i) for i in range(n)]
    if kind == "tag":
        return [(metric["tag"], i) for i in range(S)]
    if kind == "native":
        return [(t, s) for s in range(S) for t in range(1, TAGS + 1)]
    if kind == "cons":
        if ssft and ctx["compat"]:
            return block_order(k, S)
        if ssft:
            return [(j % TAGS + 1, j // TAGS) for j in range(k)]
        return [(0, j) for j in range(k)]
    raise ValueError(kind)


def question_value(metric, ctx, table, gold):
    pos = positions(metric, ctx)
    ss = [table.get(p, ("missing",)) for p in pos]
    if not all(usable(s) for s in ss):
        return None
    compat = ctx["compat"]
    kind = metric["kind"]
    if kind == "pass":
        c = sum(correct(s, gold, compat) for s in ss)
        return pass_at_k(len(ss), c, metric["k"])
    if kind in ("avg", "tag"):
        return Fraction(sum(correct(s, gold, compat) for s in ss), len(ss))
    if kind == "native":
        S = ctx["groups"]
        return sum(vote(ss[TAGS * g:TAGS * g + TAGS], gold, compat, native=True)
                   for g in range(S)) / S
    if kind == "cons":
        return vote(ss, gold, compat, by_gold_text=compat and not ctx["letters"])
    raise ValueError(kind)


def aggregate(values):
    x = [v for v in values if v is not None]
    N = len(x)
    if N == 0:
        return {"value": None, "stderr": None, "n": 0, "excluded": len(values)}
    mean = sum(x) / N
    se = None
    if N >= 2:
        var = sum((v - mean) ** 2 for v in x) / (N - 1)
        se = math.sqrt(var / N)
    return {"value": mean, "stderr": se, "n": N, "excluded": len(values) - N,
            "min": min(x), "max": max(x)}


# ---- trials -------------------------------------------------------------------

LETTERS_TASK = {"name": "synth", "answer_type": "letters", "source": {"local": {"path": "synth.jsonl"}},
                "fields": {"question": "q", "correct": "c", "incorrect": ["w1", "w2", "w3"]},
                "choices": {"order": "fixed"},
                "prompt": "{{question}}\nA) {{A}}\nB) {{B}}\nC) {{C}}\nD) {{D}}", "metrics": ["pass@1"]}
TASK = {"name": "synth", "answer_type": "math", "source": {"local": {"path": "synth.jsonl"}},
        "fields": {"question": "q", "answer": "a"}, "prompt": "Q: {{question}}",
        "metrics": ["pass@1"], "groups": 2}


def draw_trial(seed):
    rng = random.Random(seed)
    mode = rng.choice(["none", "ssft", "compat"])
    ctx = {"protocol": "none" if mode == "none" else "ssft", "compat": mode == "compat",
           "groups": rng.randint(1, 11) if mode != "none" else 0, "letters": rng.random() < 0.3}
    if mode == "none" and rng.random() < 0.3:  # compat vote keys without the protocol
        ctx["compat"] = True
    Q = rng.choice([1, 1, 2, 3, 5, 8, 13])
    p_fail = rng.choice([0, 0, 0.005, 0.02, 0.1])
    metrics = []
    if mode == "none":
        n = rng.randint(1, 12)
        ks = sorted({1, rng.randint(1, n), rng.randint(1, n)})
        metrics += [{"name": "pass@%d" % k, "kind": "pass", "k": k} for k in ks]
        metrics.append({"name": "avg@%d" % n, "kind": "avg", "k": 1, "n": n})
        for k in sorted({rng.randint(1, n), rng.randint(1, n)}):
            metrics.append({"name": "%s@%d" % (rng.choice(["cons", "maj"]), k), "kind": "cons", "k": k})
        explicit = rng.random() < 0.5
        if not explicit:  # n = the most any metric draws
            n = max(m["k"] if m["kind"] != "avg" else n for m in metrics)
        for m in metrics:
            if m["kind"] == "pass":
                m["n"] = n
            elif m["kind"] == "cons":
                m["n"] = m["k"]
        ctx["samples"] = n if explicit else 0
    else:
        ks = sorted({1, rng.randint(1, 32), rng.choice([2, 4, 8, 16, 32])})
        metrics += [{"name": "pass@%d" % k, "kind": "pass", "k": k, "n": 32} for k in ks]
        N = rng.randint(1, 32)
        metrics.append({"name": "avg@%d" % N, "kind": "avg", "k": 1, "n": N})
        for k in sorted({32, rng.randint(1, 40)}):
            metrics.append({"name": "%s@%d" % (rng.choice(["cons", "maj"]), k), "kind": "cons", "k": k, "n": k})
        metrics.append({"name": "cons@6:native", "kind": "native", "k": 6, "n": 6})
        t = rng.randint(1, 6)
        metrics.append({"name": "pass@1:tag%d" % t, "kind": "tag", "k": 1, "n": 0, "tag": t})
    # the samples: a superset of what the metrics read
    docs = []
    for d in range(Q):
        gold = rng.randint(1, 50)
        table = {}
        if mode == "none":
            need = {0: max(len(positions(m, ctx)) for m in metrics)}
        else:
            need = {t: 0 for t in range(1, TAGS + 1)}
            for m in metrics:
                for (t, i) in positions(m, ctx):
                    need[t] = max(need[t], i + 1)
        for t, cnt in need.items():
            for i in range(cnt):
                table[(t, i)] = draw_sample(rng, gold, p_fail, ctx["letters"])
        docs.append((gold, table))
    return mode, ctx, metrics, docs


def run_trial(args):
    seed, ssfteval = args
    mode, ctx, metrics, docs = draw_trial(seed)
    with tempfile.TemporaryDirectory(prefix="oracle.") as wd:
        with open(os.path.join(wd, "synth.json"), "w") as f:
            json.dump(LETTERS_TASK if ctx["letters"] else TASK, f)
        with open(os.path.join(wd, "synth.jsonl"), "w") as f:
            for d, (gold, _) in enumerate(docs):
                row = {"q": "question %d" % d, "a": str(gold)}
                if ctx["letters"]:
                    row = {"q": "Pick %d." % d, "c": "right", "w1": "w1", "w2": "w2", "w3": "w3"}
                f.write(json.dumps(row) + "\n")
        with open(os.path.join(wd, "gen.jsonl"), "w") as f:
            for d, (_, table) in enumerate(docs):
                for (t, i), s in table.items():
                    if s[0] == "missing":
                        continue
                    f.write(json.dumps({"task": "synth", "doc": d, "tag": t, "sample": i,
                                        "text": sample_text(s),
                                        "finish_reason": "abort" if s[0] == "fail" else "stop"}) + "\n")
        db = os.path.join(wd, "r.sqlite")
        cmd = [ssfteval, "run", "synth", "--task-file", os.path.join(wd, "synth.json"),
               "--data-dir", wd, "--generations", os.path.join(wd, "gen.jsonl"),
               "--metric", ",".join(m["name"] for m in metrics), "--db", db, "--quiet"]
        if mode != "none":
            cmd += ["--protocol", "ssft", "--groups", str(ctx["groups"])]
        if ctx["compat"]:
            cmd += ["--compat", "ssft-lighteval"]
        if ctx.get("samples"):
            cmd += ["--samples", str(ctx["samples"])]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode not in (0, 1):
            return seed, mode, ["run exit %d: %s" % (p.returncode, p.stderr.strip())], len(metrics)
        p2 = subprocess.run([ssfteval, "report", "--format", "json", "--db", db],
                            capture_output=True, text=True)
        if p2.returncode != 0:
            return seed, mode, ["report exit %d: %s" % (p2.returncode, p2.stderr.strip())], len(metrics)
        got = json.loads(p2.stdout)["runs"][0]["metrics"]
        console = p.stdout
    problems = []
    for m in metrics:
        vals = [question_value(m, ctx, table, gold) for gold, table in docs]
        want = aggregate(vals)
        g = got.get(m["name"])
        if g is None:
            problems.append("%s: not reported" % m["name"])
            continue
        where = "%s (%s%s%s, S=%s, Q=%d)" % (m["name"], mode, "+compat" if ctx["compat"] and mode == "none" else "",
                                            ", letters" if ctx["letters"] else "", ctx["groups"], len(docs))
        if g["n_questions"] != want["n"]:
            problems.append("%s: n_questions %s, oracle %d" % (where, g["n_questions"], want["n"]))
        if want["value"] is None:
            if g["value"] is not None:
                problems.append("%s: value %r, oracle none" % (where, g["value"]))
            continue
        if g["value"] is None or abs(g["value"] - float(want["value"])) > 1e-12:
            problems.append("%s: value %r, oracle %r (%s)" % (where, g["value"], float(want["value"]),
                                                            want["value"]))
            continue
        if want["stderr"] is None:
            if g["stderr"] is not None:
                problems.append("%s: stderr %r with one question" % (where, g["stderr"]))
            line = [ln for ln in console.splitlines() if ln.split()[:2] == ["synth", m["name"]]]
            if line and " -" not in line[0]:
                problems.append("%s: console shows no '-' for the SE of one question: %s" % (where, line[0]))
        elif g["stderr"] is None or abs(g["stderr"] - want["stderr"]) > 1e-12 * max(1, want["stderr"]):
            problems.append("%s: stderr %r, oracle %r" % (where, g["stderr"], want["stderr"]))
        lo, hi = g["ci95"] if g.get("ci95") else (None, None)
        v = g["value"]
        if lo is None or hi is None:
            problems.append("%s: no interval" % where)
        elif not (float(want["min"]) - 1e-12 <= lo <= v + 1e-12 and v - 1e-12 <= hi <= float(want["max"]) + 1e-12):
            problems.append("%s: interval [%r, %r] vs mean %r range [%s, %s]" %
                            (where, lo, hi, v, want["min"], want["max"]))
        elif want["min"] == want["max"] and not (abs(lo - v) <= 1e-12 and abs(hi - v) <= 1e-12):
            problems.append("%s: interval [%r, %r] of equal values %r" % (where, lo, hi, v))
    return seed, mode, problems, len(metrics)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ssfteval")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--only", type=int, help="run the trial of this seed alone")
    a = ap.parse_args()
    seeds = [a.only] if a.only is not None else range(a.seed, a.seed + a.trials)
    bad = 0
    per_mode, compared = {}, 0
    with ProcessPoolExecutor(a.jobs) as ex:
        for seed, mode, problems, nm in ex.map(run_trial, [(s, a.ssfteval) for s in seeds]):
            per_mode[mode] = per_mode.get(mode, 0) + 1
            compared += nm
            if problems:
                bad += 1
                for p in problems:
                    print("seed %d: %s" % (seed, p))
    print("%d tables (%s), %d metric values compared, %d tables disagree" %
          (len(seeds), ", ".join("%s %d" % kv for kv in sorted(per_mode.items())), compared, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
