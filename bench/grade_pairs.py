#!/usr/bin/env python3
"""Writes the (gold, pred) pairs bench/grade times: MATH-500 (each solution
against its answer, the answer in other forms, a perturbed answer) and the
acceptance cases of ../shared/cases.  One JSON object per line on stdout."""
import json
import sys

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"


def perturb(gold):
    for i, c in enumerate(gold):
        if c.isdigit():
            return gold[:i] + ("1" if c == "9" else chr(ord(c) + 1)) + gold[i + 1:]
    return gold + "+1"


def main():
    out = sys.stdout
    with open(f"{SHARED}/data/math500.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    for r in rows:
        a = r["answer"]
        pairs = [(r["solution"], "solution"), (f"${a}$", "dollars"), (f"\\boxed{{{a}}}", "boxed"),
                 (f"Therefore, the final answer is: $\\boxed{{{a}}}$. I hope it is correct", "final"),
                 (f"\\boxed{{{perturb(a)}}}", "perturbed")]
        for pred, kind in pairs:
            out.write(json.dumps({"gold": a, "pred": pred, "kind": kind}) + "\n")
    with open(f"{SHARED}/cases/grader_cases_other.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["gold"] is not None:
                out.write(json.dumps({"gold": r["gold"], "pred": r["pred"], "kind": "case"}) + "\n")


if __name__ == "__main__":
    main()
