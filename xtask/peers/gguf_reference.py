"""A float64 forward pass of a llama-architecture GGUF, the judge between runner's import and llama.cpp.

  python gguf_reference.py MODEL.gguf IDS.json OUT.npy

Dequantizes every tensor with the `gguf` package's own dequantizers (llama.cpp's gguf-py: the block formulas
llama.cpp itself uses, each weight exactly the value the file stores), then runs the model in float64: RMSNorm,
rotary embedding on adjacent pairs (llama.cpp's converter permutes Q and K rows for it), grouped-query causal
attention, SwiGLU, tied or separate output head. No activation is rounded, so whatever tool is closer to this
is closer to the file. Only the llama architecture (the default model's); `gguf` must be importable (pip's
`gguf`, or llama.cpp's gguf-py folder on PYTHONPATH).
"""
import json
import sys

import numpy as np


def load(path):
    import gguf
    reader = gguf.GGUFReader(path)
    fields = {}
    for name, field in reader.fields.items():
        if field.types and field.types[0] == gguf.GGUFValueType.STRING:
            fields[name] = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
        elif field.types and field.types[0] != gguf.GGUFValueType.ARRAY:
            fields[name] = field.parts[field.data[0]][0].item()
    tensors = {}
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        tensors[tensor.name] = np.asarray(values, dtype=np.float64)
    return fields, tensors


def rms_norm(x, weight, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def rotary(x, positions, theta):
    # x: [heads, T, d]; llama.cpp's NORM mode rotates (x[2i], x[2i+1]) by positions * theta^(-2i/d).
    d = x.shape[-1]
    freqs = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angles = positions[:, None] * freqs[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def reference_logits(path, ids):
    fields, w = load(path)
    arch = fields["general.architecture"]
    if arch != "llama":
        raise SystemExit(f"{path}: architecture {arch}; the reference runs llama only")
    key = lambda k: fields[f"llama.{k}"]
    blocks, heads, kv_heads = key("block_count"), key("attention.head_count"), key("attention.head_count_kv")
    eps, theta = key("attention.layer_norm_rms_epsilon"), fields.get("llama.rope.freq_base", 10000.0)
    x = w["token_embd.weight"][ids]
    T, hidden = x.shape
    hd = hidden // heads
    positions = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(blocks):
        p = f"blk.{i}."
        h = rms_norm(x, w[p + "attn_norm.weight"], eps)
        q = (h @ w[p + "attn_q.weight"].T).reshape(T, heads, hd).transpose(1, 0, 2)
        k = (h @ w[p + "attn_k.weight"].T).reshape(T, kv_heads, hd).transpose(1, 0, 2)
        v = (h @ w[p + "attn_v.weight"].T).reshape(T, kv_heads, hd).transpose(1, 0, 2)
        q, k = rotary(q, positions, theta), rotary(k, positions, theta)
        group = heads // kv_heads
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attention = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + attention.transpose(1, 0, 2).reshape(T, hidden) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
        gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
    x = rms_norm(x, w["output_norm.weight"], eps)
    head = w.get("output.weight", w["token_embd.weight"])
    return x @ head.T


if __name__ == "__main__":
    ids = json.loads(open(sys.argv[2]).read())
    np.save(sys.argv[3], reference_logits(sys.argv[1], ids))
