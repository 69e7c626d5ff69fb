"""An independent greedy decoder for llama-architecture GGUF models, in NumPy
over the weights as the gguf package dequantizes them (no strata code). It
produced the expected ids of test_default_model.py; run it by hand after a
change that could move them:

    python3 tests/python/smollm2_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf "504 3575 282 4649 314" 16

Plain llama only (no biases, no rope scaling); full recompute per token;
prints each id with the gap between the best two logits (a small gap is where
two correct implementations may legitimately part).
"""
import sys

import gguf
import numpy as np


def load(path):
    r = gguf.GGUFReader(path)
    meta = lambda k: r.fields[k].contents()
    hp = dict(n_layer=meta("llama.block_count"), n_embd=meta("llama.embedding_length"),
              n_head=meta("llama.attention.head_count"), n_head_kv=meta("llama.attention.head_count_kv"),
              eps=meta("llama.attention.layer_norm_rms_epsilon"), rope_base=meta("llama.rope.freq_base"))
    w = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows first
        w[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    return hp, w


def forward(hp, w, ids):
    """Logits after the last of `ids`."""
    n, e, nh, nkv = len(ids), hp["n_embd"], hp["n_head"], hp["n_head_kv"]
    d = e // nh
    rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + hp["eps"]) * g
    # GGUF llama q/k rows are permuted so that RoPE rotates adjacent pairs.
    ang = np.outer(np.arange(n), hp["rope_base"] ** (-np.arange(0, d, 2) / d))
    cos, sin = np.cos(ang)[:, None, :].astype(np.float32), np.sin(ang)[:, None, :].astype(np.float32)

    def rope(x):
        out = np.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
        out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return out

    mask = np.triu(np.full((n, n), -np.inf, np.float32), 1)
    x = w["token_embd.weight"][ids]
    for il in range(hp["n_layer"]):
        p = f"blk.{il}."
        h = rms(x, w[p + "attn_norm.weight"])
        q = rope((h @ w[p + "attn_q.weight"].T).reshape(n, nh, d))
        k = np.repeat(rope((h @ w[p + "attn_k.weight"].T).reshape(n, nkv, d)), nh // nkv, axis=1)
        v = np.repeat((h @ w[p + "attn_v.weight"].T).reshape(n, nkv, d), nh // nkv, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", s, v).reshape(n, e) @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
    out = w.get("output.weight", w["token_embd.weight"])  # tied embeddings when absent
    return rms(x[-1], w["output_norm.weight"]) @ out.T


def main():
    path, prompt, n_gen = sys.argv[1], [int(x) for x in sys.argv[2].split()], int(sys.argv[3])
    hp, w = load(path)
    ids, gen = list(prompt), []
    for _ in range(n_gen):
        logits = forward(hp, w, ids)
        best = int(np.argmax(logits))
        top2 = np.sort(logits)[-2:]
        print(best, f"gap {top2[1] - top2[0]:.3f}", flush=True)
        gen.append(best)
        ids.append(best)
    print(" ".join(map(str, gen)))


if __name__ == "__main__":
    main()
