"""Requantize a llama GGUF the way llama.cpp's Q4_K_M / Q5_K_M recipes assign types, for measuring runner's
K-quant import without llama.cpp: Q4_K / Q5_K with Q6_K for attn_v and ffn_down in the layers llama.cpp gives
more bits; rows that are not whole 256-superblocks fall back to Q5_0 / Q5_1 / Q8_0 as llama.cpp does.

The K-quantizers here are plain min/max ones, not llama.cpp's search: the weights are valid blocks of each
type, and what the files measure is how faithfully and fast runner imports them, not how good the
quantization is. Needs the `gguf` and `numpy` packages.

    python k_quant_requantize.py MODEL.Q4_1.gguf MODEL.Q4_K_M.gguf q4km   # or q5km
    RUNNER_FIDELITY_GGUF=MODEL.Q4_K_M.gguf cargo test --release -p runner --lib gguf_from_the_environment
"""
import sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

def f16(x):
    return x.astype(np.float16)

def kq_affine(x, levels):
    """Q4_K / Q5_K: sub-blocks of 32, w = d*sc*q - dmin*m."""
    nb = x.shape[0]
    xs = x.reshape(nb, 8, 32)
    mn = np.minimum(xs.min(-1), 0.0)
    mx = xs.max(-1)
    scale = (mx - mn) / levels
    mins = -mn
    d = scale.max(-1, keepdims=True) / 63
    dmin = mins.max(-1, keepdims=True) / 63
    d16, dmin16 = f16(d), f16(dmin)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d16 > 0, np.rint(scale / d16.astype(np.float32)), 0).clip(0, 63).astype(np.uint8)
        m = np.where(dmin16 > 0, np.rint(mins / dmin16.astype(np.float32)), 0).clip(0, 63).astype(np.uint8)
        ds = d16.astype(np.float32) * sc
        dm = dmin16.astype(np.float32) * m
        q = np.where(ds[..., None] > 0, np.rint((xs + dm[..., None]) / ds[..., None]), 0).clip(0, levels).astype(np.uint8)
    s = np.zeros((nb, 12), np.uint8)
    s[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    s[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    s[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    low = q & 0xF
    qs = (low[:, 0::2, :] | (low[:, 1::2, :] << 4)).reshape(nb, 128)
    parts = [d16.view(np.uint8).reshape(nb, 2), dmin16.view(np.uint8).reshape(nb, 2), s]
    if levels == 31:
        qh = np.zeros((nb, 32), np.uint8)
        for j in range(8):
            qh |= ((q[:, j, :] >> 4) & 1) << j
        parts.append(qh)
    parts.append(qs)
    return np.concatenate(parts, axis=-1)

def q6_k(x):
    nb = x.shape[0]
    xs = x.reshape(nb, 16, 16)
    amax = np.abs(xs).max(-1)
    scale = amax / 31
    d = scale.max(-1, keepdims=True) / 127
    d16 = f16(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d16 > 0, np.rint(scale / d16.astype(np.float32)), 0).clip(-127, 127).astype(np.int8)
        eff = d16.astype(np.float32) * sc
        q = (np.where(eff[..., None] != 0, np.rint(xs / eff[..., None]), 0).clip(-32, 31) + 32).astype(np.uint8)
    q = q.reshape(nb, 2, 4, 32)  # half, quarter, l
    ql = np.zeros((nb, 2, 64), np.uint8)
    ql[:, :, 0:32] = (q[:, :, 0] & 0xF) | ((q[:, :, 2] & 0xF) << 4)
    ql[:, :, 32:64] = (q[:, :, 1] & 0xF) | ((q[:, :, 3] & 0xF) << 4)
    qh = np.zeros((nb, 2, 32), np.uint8)
    for p in range(4):
        qh |= (q[:, :, p] >> 4) << (2 * p)
    return np.concatenate([ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8), d16.view(np.uint8).reshape(nb, 2)], axis=-1)

def quant(values, ty):
    rows = values.reshape(-1, values.shape[-1])
    if ty in (T.Q4_K, T.Q5_K, T.Q6_K):
        blocks = rows.reshape(-1, 256)
        out = q6_k(blocks) if ty == T.Q6_K else kq_affine(blocks, 15 if ty == T.Q4_K else 31)
        out = out.reshape(rows.shape[0], -1)
    else:
        out = quantize(rows, ty)
    back = dequantize(out, ty).reshape(rows.shape)
    err = np.abs(back - rows).max() / (np.abs(rows).max() + 1e-12)
    return out, err

def recipe(name, width, n_layers, kind):
    more = lambda i: i < n_layers // 8 or i >= 7 * n_layers // 8 or (i - n_layers // 8) % 3 == 2
    if not name.startswith("blk.") or name.endswith("norm.weight"):
        return None
    i = int(name.split(".")[1])
    base = {"q4km": T.Q4_K, "q5km": T.Q5_K}[kind]
    fallback = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}
    ty = T.Q6_K if (("attn_v" in name or "ffn_down" in name) and more(i)) else base
    return ty if width % 256 == 0 else fallback[ty]

src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
reader = gguf.GGUFReader(src)
arch = reader.fields["general.architecture"].contents()
n_layers = reader.fields[f"{arch}.block_count"].contents()
writer = gguf.GGUFWriter(dst, arch)
for field in reader.fields.values():
    if field.name == "general.architecture" or field.name.startswith("GGUF."):
        continue
    vt = field.types[0]
    sub = field.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
    writer.add_key_value(field.name, field.contents(), vt, sub_type=sub)
counts = {}
worst = 0.0
for t in reader.tensors:
    ty = recipe(t.name, int(t.shape[0]), n_layers, kind)
    if ty is None:
        writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
        continue
    values = dequantize(t.data, t.tensor_type)
    data, err = quant(values, ty)
    worst = max(worst, err)
    writer.add_tensor(t.name, data, raw_dtype=ty)
    counts[ty.name] = counts.get(ty.name, 0) + 1
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print(dst, counts, "worst relative max error", worst)
