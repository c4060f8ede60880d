#!/usr/bin/env python3
"""Writes tests/fixtures/prompts.json: reference prompts for ssfteval's tests.

The oracle is independent of the C code: the prompt templates are the
LightEval 0.10 literals (Python str.format with {{ANSWER}} escaping), GPQA
answer placement uses CPython's own `random` (seed 1234, randint(0, 3) per
row), the qwen2.5 chat form is the rendered text given in
../shared/reference/ssft-protocol.md section 4.3, and the chatml form is
rendered by Jinja2 from the real Qwen3 chat template in
../shared/tokenizers/qwen3/tokenizer_config.json (which inserts no system
prompt).

GPQA questions must stay out of the repository, so GPQA entries hold only
SHA-256 digests; math entries hold digests plus the full text of a few docs.

Usage: python3 tools/make-prompt-fixtures.py [SHARED_DIR] > tests/fixtures/prompts.json
"""
import csv
import hashlib
import io
import json
import random
import sys
import zipfile

import jinja2

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"

MATH_TEMPLATE = """
Solve the following math problem efficiently and clearly.  The last line of your response should be of the following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' (without quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step before answering.

{Question}
""".strip()

GPQA_TEMPLATE = "Answer the following multiple choice question. The last line of your response should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.\n\n{Question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"

QWEN25_PREFIX = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
QWEN25_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def jsonl(name):
    with open(f"{SHARED}/data/{name}", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gpqa_rows():
    with zipfile.ZipFile(f"{SHARED}/data/gpqa/dataset.zip") as z:
        data = z.read("dataset/gpqa_diamond.csv", pwd=b"deserted-untie-orchid")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def gpqa_docs(rows):
    random.seed(1234)  # Pipeline._init_random_seeds
    docs = []
    for row in rows:
        gold_index = random.randint(0, 3)
        choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
        choices.insert(gold_index, row["Correct Answer"])
        query = GPQA_TEMPLATE.format(A=choices[0], B=choices[1], C=choices[2], D=choices[3],
                                     Question=row["Question"])
        docs.append((query, "ABCD"[gold_index]))
    return docs


def chatml_renderer():
    with open(f"{SHARED}/tokenizers/qwen3/tokenizer_config.json", encoding="utf-8") as f:
        template = json.load(f)["chat_template"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(template)
    return lambda content: tmpl.render(messages=[{"role": "user", "content": content}],
                                       add_generation_prompt=True)


def render_all(content, chatml):
    forms = {"qwen2.5": QWEN25_PREFIX + content + QWEN25_SUFFIX,
             "chatml": chatml(content), "none": content}
    out = {}
    for name, text in forms.items():
        for tag in (0, 1, 6):
            suffix = f"<|im_start|><think{tag}>\n" if tag else ""
            out[f"{name}/{tag}"] = text + suffix
    return out


def sampled(n):
    rng = random.Random(2025)
    return sorted({0, 1, n - 1} | set(rng.sample(range(n), 8)))


def task_entry(contents, golds, chatml, keep_text):
    docs = []
    for i in sampled(len(contents)):
        rendered = render_all(contents[i], chatml)
        entry = {"doc": i, "gold": golds[i], "sha256": {k: sha(v) for k, v in rendered.items()}}
        if keep_text and i in (0, len(contents) - 1):
            entry["text"] = {"qwen2.5/1": rendered["qwen2.5/1"], "chatml/0": rendered["chatml/0"]}
        docs.append(entry)
    return {"documents": len(contents), "all_golds_sha256": sha("\n".join(golds)), "docs": docs}


def main():
    chatml = chatml_renderer()
    out = {"generator": "tools/make-prompt-fixtures.py", "tasks": {}}
    for task, name in (("aime24", "aime24.jsonl"), ("aime25", "aime25.jsonl"),
                       ("math_500", "math500.jsonl")):
        rows = jsonl(name)
        contents = [MATH_TEMPLATE.format(Question=r["problem"]) for r in rows]
        golds = [str(r["answer"]) for r in rows]
        out["tasks"][task] = task_entry(contents, golds, chatml, keep_text=True)
    docs = gpqa_docs(gpqa_rows())
    out["tasks"]["gpqa_diamond"] = task_entry([d[0] for d in docs], [d[1] for d in docs], chatml,
                                              keep_text=False)
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
