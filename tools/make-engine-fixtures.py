#!/usr/bin/env python3
"""Writes tests/fixtures/engine/: tiny random Qwen2 checkpoints and the
outputs HF transformers computes for them, the development oracle of the
in-process inference engine (../shared/reference/inference-engine.md, 6).

For each variant (VARIANTS below) the script
  1. builds a Qwen2ForCausalLM from a config, then re-randomizes EVERY
     parameter from a fixed seed (HF's own init leaves biases at 0 and norm
     weights at 1, which would hide bugs there) and rounds every value to a
     bf16-representable float, so the same numbers can be stored as BF16 or
     F32 without changing the math;
  2. saves it with save_pretrained (safetensors; BF16 or F32; one file or
     shards with model.safetensors.index.json), then writes config.json in
     the published Qwen2.5 style (rope_theta, torch_dtype; "head_dim" only
     where it differs from hidden / heads; rope_theta 1e6 and rms_norm_eps
     1e-6 as Qwen2.5 has them, but for one variant with Llama's 1e4 and
     1e-5, so that an engine must read both), generation_config.json, and the
     tiny tokenizer (tokenizer.json, tokenizer_config.json with the Qwen2.5
     ChatML template);
  3. reloads the directory with from_pretrained (float32, eager attention)
     and checks that the reloaded parameters equal the in-memory ones, so the
     reference numbers come from the files as a C loader will see them;
  4. computes, in float32 on CPU, for two chat prompts: the logits of every
     position (for the first prompt also the residual stream after the
     embedding and after each layer and the final-norm output), and a
     24-token greedy continuation with
     generate(do_sample=False) plus the raw logits of every step; the greedy
     run is cross-checked against a cache-free re-forward of the whole
     sequence at every step.

The tokenizer is a byte-level BPE trained with the `tokenizers` package on the
MATH-500 problems and solutions from ../shared/data (read at run time, never
copied), with exactly Qwen2's normalizer, pre-tokenizer, post-processor and
decoder (taken from ../shared/tokenizers/qwen3/tokenizer.json and compared).

Everything is deterministic: re-running rewrites the same files (the seed
search in make_variant() is deterministic too).

Usage (from the repository root, after `python3 -m venv tools/.venv &&
tools/.venv/bin/pip install torch transformers tokenizers safetensors numpy`;
the layout of the outputs is described in tests/fixtures/engine/README.md):

    tools/.venv/bin/python tools/make-engine-fixtures.py [--shared ../shared]
        [--out tests/fixtures/engine]
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import tokenizers
import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, pre_tokenizers, trainers
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

BPE_SIZE = 497  # BPE ids 0..496: the 256 byte symbols plus 241 merges
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 497, 498, 499
N_TOKENS = BPE_SIZE + len(ADDED)  # 500 ids the tokenizer defines
VOCAB_SIZE = 512  # embedding / logit rows: rows 500..511 are padding
ENDOFTEXT, IM_START, IM_END = BPE_SIZE, BPE_SIZE + 1, BPE_SIZE + 2

QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# The Qwen2.5-Instruct chat template (Qwen/Qwen2.5-7B-Instruct
# tokenizer_config.json), verbatim: "\n" here are the two characters \ and n
# of the Jinja source.
QWEN25_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""


def train_tokenizer(shared):
    """Returns the tiny tokenizer as tokenizer.json text.

    Qwen's tokenizer.json is the template: its normalizer (NFC),
    pre-tokenizer (Split on the Qwen2 regex, Isolated; ByteLevel without
    prefix space or regex), post-processor and decoder (ByteLevel) and BPE
    options are kept; only the vocabulary, merges and added tokens change.
    """
    with open(os.path.join(shared, "tokenizers", "qwen3", "tokenizer.json"), encoding="utf-8") as f:
        qwen = json.load(f)
    base = dict(qwen)
    base["added_tokens"] = []
    base["model"] = dict(qwen["model"], vocab={}, merges=[])
    tok = Tokenizer.from_str(json.dumps(base))

    with open(os.path.join(shared, "data", "math500.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    corpus = [r["problem"] for r in rows] + [r["solution"] for r in rows]
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_SIZE,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 byte symbols
        special_tokens=[],
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    trained = json.loads(tok.to_str())

    out = dict(qwen)
    out["model"] = dict(qwen["model"], vocab=trained["model"]["vocab"], merges=trained["model"]["merges"])
    # Added tokens right after the BPE ids, flagged as Qwen flags them.
    out["added_tokens"] = [
        {"id": BPE_SIZE + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(ADDED)
    ]
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert out[key] == qwen[key], key
    vocab = out["model"]["vocab"]
    assert len(vocab) == BPE_SIZE and sorted(vocab.values()) == list(range(BPE_SIZE))
    assert all(ch in vocab for ch in pre_tokenizers.ByteLevel.alphabet())
    text = json.dumps(out, ensure_ascii=False, indent=2)
    check = Tokenizer.from_str(text)
    assert check.get_vocab_size(with_added_tokens=True) == N_TOKENS
    return text


def tokenizer_config():
    added = {
        str(BPE_SIZE + i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "special": True}
        for i, t in enumerate(ADDED)
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": QWEN25_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def generation_config():
    # Qwen2.5-Instruct's generation_config.json with the tiny ids.
    return {
        "bos_token_id": ENDOFTEXT,
        "pad_token_id": ENDOFTEXT,
        "do_sample": True,
        "eos_token_id": [IM_END, ENDOFTEXT],
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "transformers_version": transformers.__version__,
    }


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

# name, dims, storage.  head_dim is written to config.json only where it is
# not hidden / heads (transformers' Qwen2 reads config.head_dim when present).
# rope_theta and rms_norm_eps are Qwen2.5's unless a variant names its own.
ROPE_THETA, RMS_NORM_EPS = 1e6, 1e-6
VARIANTS = [
    dict(name="gqa5-hd128", hidden=128, layers=2, heads=5, kv_heads=1, head_dim=128,
         intermediate=192, tied=False, dtype="BF16", shard=None, seed=1000),
    dict(name="gqa8-hd64-tied-f32", hidden=64, layers=2, heads=8, kv_heads=1, head_dim=64,
         intermediate=128, tied=True, dtype="F32", shard=None, seed=2000),
    dict(name="mha-hd64-sharded", hidden=256, layers=2, heads=4, kv_heads=4, head_dim=64,
         intermediate=128, tied=False, dtype="BF16", shard="400KB", seed=3000),
    dict(name="gqa7-hd64-tied", hidden=64, layers=2, heads=7, kv_heads=1, head_dim=64,
         intermediate=128, tied=True, dtype="BF16", shard=None, seed=4000),
    dict(name="gqa4-hd64-theta1e4", hidden=64, layers=2, heads=4, kv_heads=1, head_dim=64,
         intermediate=128, tied=False, dtype="BF16", shard=None, seed=5000,
         rope_theta=1e4, rms_norm_eps=1e-5, embed_std=0.003),
]


def rope_theta(v):
    return v.get("rope_theta", ROPE_THETA)


def rms_norm_eps(v):
    return v.get("rms_norm_eps", RMS_NORM_EPS)

TORCH_DTYPE = {"BF16": torch.bfloat16, "F32": torch.float32}
TORCH_DTYPE_NAME = {"BF16": "bfloat16", "F32": "float32"}


def hf_config(v, vocab_size=VOCAB_SIZE, max_pos=4096):
    kw = dict(
        vocab_size=vocab_size, hidden_size=v["hidden"], intermediate_size=v["intermediate"],
        num_hidden_layers=v["layers"], num_attention_heads=v["heads"],
        num_key_value_heads=v["kv_heads"], hidden_act="silu", max_position_embeddings=max_pos,
        rms_norm_eps=rms_norm_eps(v), rope_theta=rope_theta(v), tie_word_embeddings=v["tied"],
        use_sliding_window=False, attention_dropout=0.0,
    )
    if v["head_dim"] != v["hidden"] // v["heads"]:
        kw["head_dim"] = v["head_dim"]
    return Qwen2Config(**kw)


def config_json(v, vocab_size=VOCAB_SIZE, max_pos=4096, bos=ENDOFTEXT, eos=IM_END):
    """config.json in the key set of the published Qwen2.5 configs."""
    c = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": v["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": v["intermediate"],
        "max_position_embeddings": max_pos,
        "max_window_layers": 28,
        "model_type": "qwen2",
        "num_attention_heads": v["heads"],
        "num_hidden_layers": v["layers"],
        "num_key_value_heads": v["kv_heads"],
        "rms_norm_eps": rms_norm_eps(v),
        "rope_scaling": None,
        "rope_theta": rope_theta(v),
        "sliding_window": max_pos,
        "tie_word_embeddings": v["tied"],
        "torch_dtype": TORCH_DTYPE_NAME[v["dtype"]],
        "transformers_version": transformers.__version__,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }
    if v["head_dim"] != v["hidden"] // v["heads"]:
        c["head_dim"] = v["head_dim"]
    return c


# Scales of the re-randomization.  The reference's N(0, 0.02) for every
# matrix gives logits with a standard deviation of about 0.1 at these widths
# (nearly uniform distributions whose argmax barely depends on the input).
# Fan-in scaled weights keep activations O(1), attention scores with a
# standard deviation of about 1 and logits with one of about 3.  Two choices
# keep greedy continuations from collapsing into one repeated token: the
# layers' output projections (o_proj, down_proj) get gain 3, so the layers,
# not the token's own embedding, dominate the residual stream (with tied
# embeddings the embedding otherwise votes for itself); and the v bias is
# small, since it passes through attention unchanged (softmax weights sum to
# 1) and adds the same vector at every position.
NORM_MEAN, NORM_STD = 1.0, 0.1   # input/post-attention/final RMSNorm weights
QK_BIAS_STD = 0.5                # q/k biases
V_BIAS_STD = 0.1                 # v bias
EMBED_STD = 1.0                  # embed_tokens when untied (a variant may set embed_std:
                                 # at 0.003 the first RMSNorm's eps is a third of the variance)
LOGIT_GAIN = 3.0                 # lm_head (or the tied embedding): GAIN / sqrt(hidden)
OUT_GAIN = 3.0                   # o_proj, down_proj: GAIN / sqrt(in_features)


def bf16_round_(t):
    t.copy_(t.to(torch.bfloat16).to(torch.float32))


@torch.no_grad()
def randomize_(model, seed, embed_std=EMBED_STD):
    """Draws every parameter again from a torch.Generator seeded with `seed`,
    in named_parameters() order, and rounds it to a bf16 value."""
    gen = torch.Generator().manual_seed(seed)
    hidden = model.config.hidden_size
    tied = model.config.tie_word_embeddings
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if name.endswith("norm.weight"):
            val = NORM_MEAN + NORM_STD * z
        elif name.endswith("v_proj.bias"):
            val = V_BIAS_STD * z
        elif name.endswith(".bias"):
            val = QK_BIAS_STD * z
        elif name == "model.embed_tokens.weight":
            val = z * (LOGIT_GAIN / hidden ** 0.5 if tied else embed_std)
        elif name == "lm_head.weight":
            val = z * (LOGIT_GAIN / hidden ** 0.5)
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            val = z * (OUT_GAIN / p.shape[1] ** 0.5)
        else:  # q/k/v, gate, up: Linear weights [out, in]
            val = z / p.shape[1] ** 0.5
        p.copy_(val)
        bf16_round_(p)
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def save_model(model, v, d, extra_files):
    """save_pretrained in the variant's dtype, then our own config files."""
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    kw = {"max_shard_size": v["shard"]} if v["shard"] else {}
    model.to(TORCH_DTYPE[v["dtype"]])
    model.save_pretrained(d, **kw)
    model.to(torch.float32)  # exact: every value is bf16-representable
    # save_pretrained's config.json uses transformers 5 keys (rope_parameters);
    # replace it, and its generation_config.json, by Qwen2.5-style files.
    for name, content in extra_files.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False) + "\n")


def stored_tensors(d):
    """name -> (dtype, shape, file) for every tensor stored in the directory."""
    out = {}
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".safetensors") or fn.startswith("expected"):
            continue
        with open(os.path.join(d, fn), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                out[name] = (info["dtype"], info["shape"], fn)
    return out


# --------------------------------------------------------------------------
# Reference outputs
# --------------------------------------------------------------------------

N_NEW = 24  # greedy tokens per prompt
MIN_MARGIN = 2e-3  # accepted smallest top-1 minus top-2 logit gap of a greedy step
MIN_DISTINCT = 8   # accepted fewest distinct tokens in a 24-token continuation


def prompt_texts():
    """Two chat prompts.  The first is the ChatML form of one user message
    (the `chatml` template); the second the same form followed by the SSFT
    tag suffix the harness appends (`<|im_start|><think1>\\n`)."""
    return [
        "<|im_start|>user\nFind $\\sqrt{144}$.<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nFind $2^{9}$ modulo $7$.<|im_end|>\n<|im_start|>assistant\n<|im_start|><think1>\n",
    ]


def masked_argmax(logits):
    """Greedy choice as the engine makes it: padded rows >= N_TOKENS masked."""
    return int(torch.argmax(logits[..., :N_TOKENS], dim=-1))


def top2_margin(logits):
    top = torch.topk(logits[:N_TOKENS], 2).values
    return float(top[0] - top[1])


@torch.no_grad()
def forward_record(model, ids):
    """Full forward of one sequence: logits [T, V], the residual stream after
    the embedding [T, H], after each decoder layer [L, T, H], and the output of
    the final RMSNorm [T, H] (what multiplies lm_head)."""
    rec = {}
    hooks = [model.model.embed_tokens.register_forward_hook(lambda m, i, o: rec.__setitem__("embed", o))]
    for li, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(
            lambda m, i, o, li=li: rec.__setitem__(f"layer{li}", o[0] if isinstance(o, tuple) else o)))
    hooks.append(model.model.norm.register_forward_hook(lambda m, i, o: rec.__setitem__("norm", o)))
    out = model(torch.tensor([ids]), use_cache=False)
    for h in hooks:
        h.remove()
    L = len(model.model.layers)
    return (out.logits[0].float().clone(), rec["embed"][0].clone(),
            torch.stack([rec[f"layer{i}"][0] for i in range(L)]).clone(), rec["norm"][0].clone())


@torch.no_grad()
def greedy(model, ids):
    """generate(do_sample=False) for N_NEW tokens, no stop on eos, padded rows
    suppressed; returns (new ids, raw logits of every step [N_NEW, V])."""
    gc = GenerationConfig(
        do_sample=False, max_new_tokens=N_NEW, min_new_tokens=N_NEW, eos_token_id=None,
        bos_token_id=None, pad_token_id=ENDOFTEXT, suppress_tokens=list(range(N_TOKENS, VOCAB_SIZE)),
        output_logits=True, return_dict_in_generate=True, use_cache=True,
    )
    model.generation_config = gc  # no eos from the checkpoint's generation_config
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         generation_config=gc)
    new = out.sequences[0, len(ids):].tolist()
    assert len(new) == N_NEW, len(new)
    logits = torch.stack([l[0].float() for l in out.logits])
    return new, logits


@torch.no_grad()
def check_greedy(model, ids, new, step_logits):
    """Cache-free cross-check: re-forward the whole sequence at each step;
    the argmax and the logits must agree with generate's."""
    worst = 0.0
    seq = list(ids)
    for j in range(N_NEW):
        logits = model(torch.tensor([seq]), use_cache=False).logits[0, -1].float()
        worst = max(worst, float((logits - step_logits[j]).abs().max()))
        assert masked_argmax(logits) == new[j], (j, masked_argmax(logits), new[j])
        seq.append(new[j])
    assert worst < 1e-4, worst
    return worst


def param_summary(model, v, d):
    st = stored_tensors(d)
    return {
        "hidden_size": v["hidden"], "num_hidden_layers": v["layers"],
        "num_attention_heads": v["heads"], "num_key_value_heads": v["kv_heads"],
        "gqa_ratio": v["heads"] // v["kv_heads"], "head_dim": v["head_dim"],
        "head_dim_in_config": v["head_dim"] != v["hidden"] // v["heads"],
        "intermediate_size": v["intermediate"], "vocab_size": VOCAB_SIZE, "tokenizer_ids": N_TOKENS,
        "tie_word_embeddings": v["tied"], "storage_dtype": v["dtype"],
        "safetensors_files": sorted({f for _, _, f in st.values()}),
        "stored_tensors": len(st),
        "lm_head_in_file": "lm_head.weight" in st,
        "num_parameters": model.num_parameters(),
        "stored_elements": int(sum(np.prod(s) for _, s, _ in st.values())),
        "rope_theta": rope_theta(v), "rms_norm_eps": rms_norm_eps(v),
    }


def make_variant(v, out_dir, tok_json, tok, versions):
    d = os.path.join(out_dir, v["name"])
    texts = prompt_texts()
    prompts = [tok.encode(t).ids for t in texts]
    for t, ids in zip(texts, prompts):
        assert tok.decode(ids, skip_special_tokens=False) == t

    # Deterministic seed search: take the first seed whose greedy runs have
    # no near-tie (so an fp32 engine's argmax is well defined) and vary.
    for seed in range(v["seed"], v["seed"] + 100):
        torch.manual_seed(seed)  # nothing should draw from it; belt and braces
        model = Qwen2ForCausalLM(hf_config(v)).float().eval()
        randomize_(model, seed, v.get("embed_std", EMBED_STD))
        runs = [greedy(model, ids) for ids in prompts]
        margins = [min(top2_margin(l[j]) for j in range(N_NEW)) for _, l in runs]
        distinct = [len(set(new)) for new, _ in runs]
        if min(margins) >= MIN_MARGIN and min(distinct) >= MIN_DISTINCT:
            break
        print(f"  {v['name']}: seed {seed} rejected (margin {min(margins):.2e}, distinct {distinct})")
    else:
        sys.exit(f"{v['name']}: no seed passed")
    ref_state = {k: t.clone() for k, t in model.state_dict().items()}

    files = {
        "config.json": config_json(v),
        "generation_config.json": generation_config(),
        "tokenizer.json": tok_json,
        "tokenizer_config.json": tokenizer_config(),
    }
    save_model(model, v, d, files)

    # The oracle runs on the model as loaded back from the directory.
    model = Qwen2ForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    assert cfg.rope_parameters["rope_theta"] == rope_theta(v)
    assert cfg.rms_norm_eps == rms_norm_eps(v)
    assert model.model.layers[0].self_attn.head_dim == v["head_dim"]
    assert cfg.tie_word_embeddings == v["tied"]
    for k, t in model.state_dict().items():
        assert torch.equal(t, ref_state[k]), k
    st = stored_tensors(d)
    assert ("lm_head.weight" in st) == (not v["tied"])
    assert all(dt == v["dtype"] for dt, _, _ in st.values())
    if v["shard"]:
        assert os.path.exists(os.path.join(d, "model.safetensors.index.json"))
        assert len({f for _, _, f in st.values()}) >= 3

    tensors = {}
    meta_prompts = []
    worst_prefill = 0.0
    for p, (text, ids) in enumerate(zip(texts, prompts)):
        logits, embed, layers, norm = forward_record(model, ids)
        new, step_logits = greedy(model, ids)
        worst = check_greedy(model, ids, new, step_logits)
        # Step 0 is the last prompt position of the full forward.
        worst_prefill = max(worst_prefill, float((step_logits[0] - logits[-1]).abs().max()))
        # The teacher-forced forward of prompt + continuation gives the same
        # logits at the step positions (prefill-then-decode == one forward).
        full = forward_record(model, ids + new)[0]
        tf = float((full[len(ids) - 1:len(ids) - 1 + N_NEW] - step_logits).abs().max())
        assert tf < 1e-4, tf
        pre = f"prompt{p}."
        tensors[pre + "ids"] = torch.tensor(ids, dtype=torch.float32)
        tensors[pre + "logits"] = logits
        if p == 0:  # per-layer records for the first prompt only (fixture size)
            tensors[pre + "embed"] = embed
            tensors[pre + "layers"] = layers
            tensors[pre + "final_norm"] = norm
        tensors[pre + "gen_ids"] = torch.tensor(new, dtype=torch.float32)
        tensors[pre + "gen_logits"] = step_logits
        meta_prompts.append({
            "text": text, "ids": ids, "length": len(ids),
            "gen_ids": new, "gen_text": tok.decode(new, skip_special_tokens=False),
            "gen_min_top2_margin": min(top2_margin(step_logits[j]) for j in range(N_NEW)),
            "gen_distinct_tokens": len(set(new)),
            "logits_std": float(logits[:, :N_TOKENS].std()),
            "max_abs_diff_generate_vs_uncached_forward": worst,
            "max_abs_diff_generate_vs_teacher_forced": tf,
        })
    for t in tensors.values():
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    save_file({k: t.contiguous() for k, t in tensors.items()}, os.path.join(d, "expected.safetensors"),
              metadata={"producer": "tools/make-engine-fixtures.py"})

    summary = param_summary(model, v, d)
    expected = {
        "variant": v["name"],
        "producer": "tools/make-engine-fixtures.py",
        "versions": versions,
        "seed": seed,
        "seed_rule": "torch.Generator().manual_seed(seed); torch.randn per parameter in "
                     "named_parameters() order; first seed from the variant's base with "
                     f"greedy top-2 margins >= {MIN_MARGIN} and >= {MIN_DISTINCT} distinct tokens",
        "init": {"norm_weights": f"N({NORM_MEAN}, {NORM_STD})",
                 "q_k_biases": f"N(0, {QK_BIAS_STD}^2)", "v_bias": f"N(0, {V_BIAS_STD}^2)",
                 "q_k_v_gate_up_weights": "N(0, 1/in_features)",
                 "o_down_weights": f"N(0, {OUT_GAIN}^2/in_features)",
                 "embed_tokens": f"N(0, {EMBED_STD}^2) untied; N(0, ({LOGIT_GAIN}/sqrt(hidden))^2) tied",
                 "lm_head": f"N(0, ({LOGIT_GAIN}/sqrt(hidden))^2)",
                 "rounding": "every value bf16-representable (round-to-nearest-even from the f32 draw)"},
        "config": summary,
        "computation": "transformers Qwen2ForCausalLM.from_pretrained(dir, dtype=float32, "
                       "attn_implementation='eager'), CPU, batch 1, positions from 0, no BOS",
        "greedy": {"new_tokens": N_NEW,
                   "rule": f"argmax over ids < {N_TOKENS} (rows {N_TOKENS}..{VOCAB_SIZE - 1} masked); "
                           "no stop on eos; generate(do_sample=False) with KV cache",
                   "step_logits": "raw (unmasked) logits that chose gen_ids[j]: position len(ids)-1+j "
                                  "of prompt+gen_ids[:j]; step 0 equals logits[-1]"},
        "max_abs_diff_step0_vs_prefill_last": worst_prefill,
        "prompts": meta_prompts,
        "special_ids": {"<|endoftext|>": ENDOFTEXT, "<|im_start|>": IM_START, "<|im_end|>": IM_END},
        "tensors": {k: {"dtype": "F32", "shape": list(t.shape)} for k, t in sorted(tensors.items())},
    }
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for fn in os.listdir(d):  # safetensors writes 0600; make every file 0644
        os.chmod(os.path.join(d, fn), 0o644)
    size = sum(os.path.getsize(os.path.join(d, fn)) for fn in os.listdir(d))
    return expected, size


# Tokenizer cases for the tiny vocabulary: text -> ids, from `tokenizers`.
TOKENIZER_CASES = [
    "Hello world",
    " Hello world",
    "<|im_start|>hello<|im_end|>",
    "<|im_start|><think1>\n",
    "\n\n",
    "0123456789",
    "Let $x^2 + 3x - 10 = 0$. Find $x$.",
    "  leading spaces and trailing   ",
    "line one\r\nline two\n\n\nthree",
    "don't I'LL we've",
    "caf\u00e9 \u03c0 \u221a2 \u2014 \U0001F600",
    "e\u0301",  # NFC composes to U+00E9
    "\\frac{1}{2}\\boxed{7}",
    "tabs\tand\u00a0nbsp",
    "<|endoftext|><|im_end|>",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=os.environ.get("SSFTEVAL_SHARED", os.path.join(REPO, "..", "shared")))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "engine"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "numpy": np.__version__}
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    tok_json = train_tokenizer(args.shared)
    tok = Tokenizer.from_str(tok_json)

    # The HF tokenizer class reads the same files and renders the template.
    hf_dir = os.path.join(args.out, ".tok-check")
    os.makedirs(hf_dir, exist_ok=True)
    with open(os.path.join(hf_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_json)
    with open(os.path.join(hf_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(), f)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    rendered = hf_tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                          add_generation_prompt=True)
    assert rendered == ("<|im_start|>system\n" + QWEN25_SYSTEM + "<|im_end|>\n<|im_start|>user\nHi"
                        "<|im_end|>\n<|im_start|>assistant\n"), rendered
    cases = []
    for text in TOKENIZER_CASES + prompt_texts() + [rendered]:
        ids = tok.encode(text).ids
        assert hf_tok.encode(text, add_special_tokens=False) == ids, text
        cases.append({"text": text, "ids": ids,
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    shutil.rmtree(hf_dir)
    with open(os.path.join(args.out, "tokenizer-cases.json"), "w", encoding="utf-8") as f:
        json.dump({"producer": "tools/make-engine-fixtures.py", "versions": versions,
                   "tokenizer": "tokenizer.json of every variant directory (identical copies)",
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"tokenizer: {N_TOKENS} ids ({BPE_SIZE} BPE), {time.time() - t0:.1f} s")

    for v in VARIANTS:
        t1 = time.time()
        exp, size = make_variant(v, args.out, tok_json, tok, versions)
        c = exp["config"]
        print(f"{v['name']}: params {c['num_parameters']}, {size} bytes, seed {exp['seed']}, "
              f"lengths {[p['length'] for p in exp['prompts']]}, "
              f"margins {[round(p['gen_min_top2_margin'], 4) for p in exp['prompts']]}, "
              f"{time.time() - t1:.1f} s")
    total = sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(args.out) for fn in fs)
    print(f"total {total} bytes under {args.out}, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
