#!/usr/bin/env python3
"""The transformers peer of bench/engine-cpu: prefill and batched greedy
decode throughput of a (small random) Qwen2 checkpoint on the CPU, fp32.

For each batch size B (default 1, 8, 32) the prompt is B rows of P random
token ids (default P 128; all rows the same length, no padding, fixed seed):

  prefill  one forward of the B x P prompt with a KV cache, logits of the
           last position only (what generate's first step computes);
           prefill_tok_s = B*P / prefill seconds
  decode   generate(do_sample=False, min_new_tokens = max_new_tokens = G)
           (default G 64; eos cannot end it early);
           decode_tok_s = B*G / (generate seconds - prefill seconds)

Each figure is the best of --repeats runs after one warm-up generate (the
best, not the mean: on a shared machine other work only ever slows a run
down; loadavg_1m says how busy the machine was).  One JSON line per batch
size goes to stdout:

  {"impl": "transformers", "batch": B, "prefill_tok_s": ..., "decode_tok_s": ...,
   "prompt_len": P, "new_tokens": G, "threads": N, "prefill_s": ..., "generate_s": ...,
   "dtype": "fp32", "attn": ..., "torch": ..., "transformers": ..., "params": ...,
   "loadavg_1m": ...}

Usage: tools/.venv/bin/python bench/engine_hf.py MODEL_DIR [--batch 1,8,32]
           [--prompt-len 128] [--new-tokens 64] [--threads 2] [--repeats 1]
           [--attn sdpa|eager]
Make a model with tools/make-bench-model.py; see bench/README-engine.md.
"""
import argparse
import json
import os
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                 attn_implementation=args.attn).eval()
    vocab = model.config.vocab_size
    print(f"loaded {args.model} in {time.perf_counter() - t0:.2f} s "
          f"({model.num_parameters()} parameters, {args.threads} threads)", file=sys.stderr)
    # No eos, no sampling: exactly G greedy tokens per row.
    gc = GenerationConfig(do_sample=False, max_new_tokens=args.new_tokens,
                          min_new_tokens=args.new_tokens, eos_token_id=None, bos_token_id=None,
                          pad_token_id=0, use_cache=True)
    model.generation_config = gc
    gen = torch.Generator().manual_seed(args.seed)

    def prompt(b):
        ids = torch.randint(0, vocab, (b, args.prompt_len), generator=gen)
        return ids, torch.ones_like(ids)

    # Warm-up: first-call allocations and kernel selection.
    ids, mask = prompt(1)
    model.generate(ids, attention_mask=mask, generation_config=gc.__class__(
        **{**gc.to_dict(), "max_new_tokens": 4, "min_new_tokens": 4}))

    for b in [int(x) for x in args.batch.split(",") if x]:
        ids, mask = prompt(b)
        best_pre = best_gen = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
            best_pre = min(best_pre, time.perf_counter() - t)
            t = time.perf_counter()
            out = model.generate(ids, attention_mask=mask, generation_config=gc)
            best_gen = min(best_gen, time.perf_counter() - t)
            assert out.shape == (b, args.prompt_len + args.new_tokens), out.shape
        decode_s = best_gen - best_pre
        print(json.dumps({
            "impl": "transformers", "batch": b,
            "prefill_tok_s": round(b * args.prompt_len / best_pre, 1),
            "decode_tok_s": round(b * args.new_tokens / decode_s, 1) if decode_s > 0 else None,
            "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "threads": args.threads,
            "prefill_s": round(best_pre, 4), "generate_s": round(best_gen, 4),
            "dtype": "fp32", "attn": args.attn, "torch": torch.__version__,
            "transformers": transformers.__version__, "params": model.num_parameters(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }), flush=True)


if __name__ == "__main__":
    main()
