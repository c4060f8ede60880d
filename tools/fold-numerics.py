#!/usr/bin/env python3
"""What folding the RMSNorms into the GEMMs (the CUDA device option
fold_norms) does to a model's logits, before a GPU has run it: the engine's
BF16 forward emulated in numpy, rounding where the CUDA device rounds,
unfolded (the default) and folded, each held to the fixture's fp32 logits
by gpu_check's measure (per row, the largest difference over the largest
reference logit; the tolerance is 0.04).

Unfolded, as the device's kernels: RMSNorm in transformers' order, bf16(
bf16(x / rms) * gain), the residual add bf16(x + bf16(y)); folded, as
forward_layer_folded: the gains in the weights, bf16(w * gain), q|k|v and
gate|up scaled by the row's 1 / rms and rounded before the bias, RoPE and
SiLU, o and down added into the residual stream rounded once.  GEMMs sum in
fp32 and round once, as cuBLAS does with an fp32 compute type.  The
attention is done in float64 and rounded to BF16, which both paths share.

Only numpy is needed (pip install numpy); the safetensors files are read
directly.  A development oracle: nothing of the product runs it.

Usage: python3 tools/fold-numerics.py [FIXTURE_DIR ...]
       (default: every model under tests/fixtures/engine)
"""
import glob
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 0.04


def bf(x):
    """x rounded to the nearest BF16, ties to even, as float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "BF16":
            v = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F16":
            v = np.frombuffer(raw, np.float16).astype(np.float32)
        elif t["dtype"] == "F32":
            v = np.frombuffer(raw, np.float32)
        else:
            sys.exit("%s: %s is %s" % (path, name, t["dtype"]))
        out[name] = v.reshape(t["shape"]).astype(np.float32)
    return out


def load_model(d):
    w = {}
    for p in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        if os.path.basename(p) != "expected.safetensors":
            w.update(read_safetensors(p))
    # the device stores every weight as BF16 (F32 checkpoints converted)
    return json.load(open(os.path.join(d, "config.json"))), {k: bf(v) for k, v in w.items()}


def rstd(x, eps):
    return (1.0 / np.sqrt(np.mean(x.astype(np.float32) ** 2, axis=-1, keepdims=True) + eps)).astype(
        np.float32)


def gemm(x, w):
    return bf(x.astype(np.float32) @ w.T.astype(np.float32))


def rope(x, pos, theta, hd):
    """x [T][heads][hd] rotate-half, angles in fp32 as ssfk_inv_freq and
    transformers compute them, each result rounded."""
    half = hd // 2
    inv = np.array([1.0 / np.float32(theta) ** np.float32(2 * i / hd) for i in range(half)],
                   np.float32)
    ang = (pos[:, None].astype(np.float32) * inv[None, :]).astype(np.float64)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., :half].astype(np.float64), x[..., half:].astype(np.float64)
    return bf(np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1).astype(np.float32))


def attention(q, k, v, nh, nkv):
    """causal GQA attention in float64, the output rounded to BF16"""
    T, hd = q.shape[0], q.shape[2]
    out = np.zeros_like(q, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for h in range(nh):
        kh = h // (nh // nkv)
        sc = q[:, h, :].astype(np.float64) @ k[:, kh, :].T.astype(np.float64) / math.sqrt(hd)
        sc = sc + mask
        p = np.exp(sc - sc.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out[:, h, :] = p @ v[:, kh, :].astype(np.float64)
    return bf(out.astype(np.float32))


def silu_times(g, u):
    return bf(bf(g / (1.0 + np.exp(-g.astype(np.float64))).astype(np.float32)) * u)


def forward(cfg, w, ids, folded):
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    T, pos = len(ids), np.arange(len(ids))
    x = w["model.embed_tokens.weight"][ids]
    tmp = None
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        a = p + "self_attn."
        wqkv = np.concatenate([w[a + "q_proj.weight"], w[a + "k_proj.weight"],
                               w[a + "v_proj.weight"]])
        bias = np.concatenate([w[a + n + "_proj.bias"] for n in "qkv"]) \
            if a + "q_proj.bias" in w else np.zeros(wqkv.shape[0], np.float32)
        g1, g2 = w[p + "input_layernorm.weight"], w[p + "post_attention_layernorm.weight"]
        wgu = np.concatenate([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]])
        inter = wgu.shape[0] // 2
        if folded:
            r = rstd(x, eps)
            qkv = bf(gemm(x, bf(wqkv * g1[None, :])) * r + bias[None, :])
        else:
            if tmp is not None:
                x = bf(x + tmp)
            xn = bf(bf(x * rstd(x, eps)) * g1)
            qkv = bf(gemm(xn, wqkv) + bias[None, :])
        q = qkv[:, :nh * hd].reshape(T, nh, hd)
        k = qkv[:, nh * hd:(nh + nkv) * hd].reshape(T, nkv, hd)
        v = qkv[:, (nh + nkv) * hd:].reshape(T, nkv, hd)
        att = attention(rope(q, pos, theta, hd), rope(k, pos, theta, hd), v, nh, nkv)
        att = att.reshape(T, nh * hd)
        wo, wd = w[a + "o_proj.weight"], w[p + "mlp.down_proj.weight"]
        if folded:
            x = bf(x + att @ wo.T)
            r = rstd(x, eps)
            gu = gemm(x, bf(wgu * g2[None, :]))
            h = silu_times(bf(gu[:, :inter] * r), bf(gu[:, inter:] * r))
            x = bf(x + h @ wd.T)
        else:
            x = bf(x + gemm(att, wo))
            xn = bf(bf(x * rstd(x, eps)) * g2)
            gu = gemm(xn, wgu)
            h = silu_times(gu[:, :inter], gu[:, inter:])
            tmp = gemm(h, wd)
    if not folded:
        x = bf(x + tmp)
    xn = bf(bf(x * rstd(x, eps)) * w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return xn.astype(np.float32) @ head.T.astype(np.float32)


def worst_rel(got, ref):
    return max(np.max(np.abs(g - e)) / max(np.max(np.abs(e)), 1e-30) for g, e in zip(got, ref))


def main():
    dirs = sys.argv[1:] or sorted(
        d for d in glob.glob(os.path.join(HERE, "../tests/fixtures/engine/*"))
        if os.path.isfile(os.path.join(d, "expected.safetensors")))
    worst = 0.0
    for d in dirs:
        cfg, w = load_model(d)
        exp = read_safetensors(os.path.join(d, "expected.safetensors"))
        for p in range(8):
            if "prompt%d.ids" % p not in exp:
                break
            ids = exp["prompt%d.ids" % p].astype(np.int64)
            ref = exp["prompt%d.logits" % p]
            e = [worst_rel(forward(cfg, w, ids, f), ref) for f in (False, True)]
            worst = max(worst, e[1])
            print("%-22s prompt %d (%2d tokens): unfolded %.4f, folded %.4f%s" % (
                os.path.basename(os.path.normpath(d)), p, len(ids), e[0], e[1],
                "" if e[1] <= TOL else "  OVER %.2f" % TOL))
    print("worst folded %.4f against the tolerance %.2f" % (worst, TOL))
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
