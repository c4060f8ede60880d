#!/usr/bin/env python3
"""Writes a small random Qwen2 checkpoint for the engine benchmarks
(bench/engine-cpu and its transformers peer, bench/engine_hf.py) into a
directory of your choice; nothing of it is committed.

Default shape: hidden 512, 8 layers, 8 q-heads / 2 KV heads (head_dim 64,
GQA 4), intermediate 1408, vocab 8192, untied, BF16 storage, about 31 M
parameters (62 MB).  The weights are drawn with the same re-randomization as
the test fixtures (tools/make-engine-fixtures.py: every parameter, fixed
seed, bf16-representable values).  There is no tokenizer: benchmarks feed
token ids.  config.json names eos id VOCAB-1 and generation_config.json the
same; benchmarks generate a fixed number of tokens regardless.

Usage: tools/.venv/bin/python tools/make-bench-model.py OUT_DIR
           [--hidden 512 --layers 8 --heads 8 --kv-heads 2 --intermediate 1408
            --vocab 8192 --dtype BF16|F32 --seed 7]
"""
import argparse
import importlib.util
import json
import os
import time

import torch
import transformers
from transformers import Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))


def fixtures_module():
    """tools/make-engine-fixtures.py, for its config writer and randomizer."""
    spec = importlib.util.spec_from_file_location("make_engine_fixtures",
                                                  os.path.join(HERE, "make-engine-fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=None, help="default hidden / heads")
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--max-pos", type=int, default=4096)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--dtype", choices=["BF16", "F32"], default="BF16")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    t0 = time.time()
    fx = fixtures_module()
    v = dict(name="bench", hidden=args.hidden, layers=args.layers, heads=args.heads,
             kv_heads=args.kv_heads, head_dim=args.head_dim or args.hidden // args.heads,
             intermediate=args.intermediate, tied=args.tied, dtype=args.dtype, shard=None)
    eos = args.vocab - 1
    model = Qwen2ForCausalLM(fx.hf_config(v, vocab_size=args.vocab, max_pos=args.max_pos)).float().eval()
    fx.randomize_(model, args.seed)
    gen = {"bos_token_id": eos, "eos_token_id": [eos], "pad_token_id": eos, "do_sample": False,
           "transformers_version": transformers.__version__}
    files = {"config.json": fx.config_json(v, vocab_size=args.vocab, max_pos=args.max_pos, bos=eos, eos=eos),
             "generation_config.json": gen}
    fx.save_model(model, v, args.out, files)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(json.dumps({"dir": args.out, "num_parameters": model.num_parameters(), "bytes": size,
                      "dtype": args.dtype, "seed": args.seed, "seconds": round(time.time() - t0, 2)}))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
