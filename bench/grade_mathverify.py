#!/usr/bin/env python3
"""Grades a pairs file with Math-Verify on one core and prints one verdict
per line (true/false) to the file given, and the elapsed seconds on stdout.
Gold answers are wrapped in $...$ so that bare LaTeX is extracted."""
import json
import sys
import time

from math_verify import parse, verify


def main():
    pairs = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
    verdicts = []
    start = time.perf_counter()
    for p in pairs:
        try:
            gold = parse(f"${p['gold']}$")
            pred = parse(p["pred"])
            verdicts.append(bool(verify(gold, pred)))
        except Exception:  # Math-Verify's own failures count as False, as in its metric
            verdicts.append(False)
    elapsed = time.perf_counter() - start
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        for v in verdicts:
            f.write(("true" if v else "false") + "\n")
    print(f"{elapsed:.3f}")


if __name__ == "__main__":
    main()
