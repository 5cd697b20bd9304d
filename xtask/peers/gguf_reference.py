"""A float64 forward pass of a llama-architecture GGUF, the judge between runner's import and llama.cpp.

  python gguf_reference.py MODEL.gguf IDS.json OUT.npy
  python gguf_reference.py fixtures FOLDER     (NAME.f64.logits beside each fixture of FOLDER/expected.json)

Dequantizes every tensor with the `gguf` package's own dequantizers (llama.cpp's gguf-py: the block formulas
llama.cpp itself uses, each weight exactly the value the file stores), then runs the model in float64: RMSNorm,
rotary embedding (on adjacent pairs for llama, whose Q and K rows llama.cpp's converter permutes; on halves for
the others), Llama 3's rope_freqs, grouped-query causal attention, SwiGLU, tied or separate output head; Qwen2's QKV biases, Qwen3's
per-head Q/K norms, Phi-3's fused QKV and gate/up. No activation is rounded, so whatever tool is closer to this
is closer to the file. Gemma's soft-caps, windows and norms, and Phi-3's LongRoPE, are not here. `gguf` must be importable (pip's
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


def frequencies(d, theta, factors):
    # Llama 3's rope_freqs.weight divides each frequency (llama.cpp's freq_factors).
    return theta ** (-np.arange(0, d, 2, dtype=np.float64) / d) / factors


def rotary(x, positions, theta, factors=1.0):
    # x: [heads, T, d]; llama.cpp's NORM mode rotates (x[2i], x[2i+1]) by positions * theta^(-2i/d).
    d = x.shape[-1]
    freqs = frequencies(d, theta, factors)
    angles = positions[:, None] * freqs[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def rotary_halves(x, positions, theta, factors=1.0):
    # llama.cpp's NEOX mode (Qwen, Phi-3: Q and K rows not permuted): rotates (x[i], x[i + d/2]).
    d = x.shape[-1]
    freqs = frequencies(d, theta, factors)
    angles = positions[:, None] * freqs[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    first, second = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([first * cos - second * sin, first * sin + second * cos], axis=-1)


# Architectures the reference runs, and how each differs from llama.
ARCHITECTURES = {"llama", "qwen2", "qwen3", "phi3"}


def reference_logits(path, ids):
    fields, w = load(path)
    arch = fields["general.architecture"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"{path}: architecture {arch}; the reference runs {sorted(ARCHITECTURES)}")
    key = lambda k, default=None: fields.get(f"{arch}.{k}", default)
    blocks, heads, kv_heads = key("block_count"), key("attention.head_count"), key("attention.head_count_kv")
    eps, theta = key("attention.layer_norm_rms_epsilon"), key("rope.freq_base", 10000.0)
    if "rope_factors_long.weight" in w or key("rope.scaling.type", "none") not in ("none",):
        raise ValueError(f"{path}: rope scaling beyond rope_freqs; the reference applies none")
    rope = rotary if arch == "llama" else rotary_halves
    factors = w.get("rope_freqs.weight", 1.0)
    x = w["token_embd.weight"][ids]
    T, hidden = x.shape
    hd = key("attention.key_length", hidden // heads)
    positions = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(blocks):
        p = f"blk.{i}."
        h = rms_norm(x, w[p + "attn_norm.weight"], eps)
        if p + "attn_qkv.weight" in w:
            q, k, v = np.split(h @ w[p + "attn_qkv.weight"].T, [heads * hd, (heads + kv_heads) * hd], axis=-1)
        else:
            q, k, v = (h @ w[p + f"attn_{n}.weight"].T for n in "qkv")
        q, k, v = (t + w.get(p + f"attn_{n}.bias", 0.0) for t, n in zip((q, k, v), "qkv"))
        q = q.reshape(T, heads, hd).transpose(1, 0, 2)
        k = k.reshape(T, kv_heads, hd).transpose(1, 0, 2)
        v = v.reshape(T, kv_heads, hd).transpose(1, 0, 2)
        if p + "attn_q_norm.weight" in w:
            q = rms_norm(q, w[p + "attn_q_norm.weight"], eps)
            k = rms_norm(k, w[p + "attn_k_norm.weight"], eps)
        q, k = rope(q, positions, theta, factors), rope(k, positions, theta, factors)
        group = heads // kv_heads
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attention = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + attention.transpose(1, 0, 2).reshape(T, heads * hd) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
        if p + "ffn_gate.weight" in w:
            gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        else:
            # Phi-3's fused gate and up: the gate's rows first.
            gate, up = np.split(h @ w[p + "ffn_up.weight"].T, 2, axis=-1)
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
    x = rms_norm(x, w["output_norm.weight"], eps)
    head = w.get("output.weight", w["token_embd.weight"])
    return x @ head.T


def fixtures(folder):
    """Writes NAME.f64.logits (float32, row after row) beside every fixture of expected.json the reference runs."""
    from pathlib import Path
    folder = Path(folder)
    expected = json.loads((folder / "expected.json").read_text())
    for cell in expected["cells"]:
        gguf = folder / cell["gguf"]
        try:
            logits = reference_logits(str(gguf), cell["tokens"])
        except ValueError as skipped:
            print(f"{gguf.name}: {skipped}", flush=True)
            continue
        out = gguf.with_suffix(".f64.logits")
        out.write_bytes(logits.astype("<f4").tobytes())
        print(f"{out.name}: {logits.shape[0]} positions", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    else:
        ids = json.loads(open(sys.argv[2]).read())
        np.save(sys.argv[3], reference_logits(sys.argv[1], ids))
