"""How fast ONNX Runtime's CPU kernels multiply by the default model's weights, per weight format, one thread.

Why: a log-likelihood run spends most of its time in the projections of each layer (MatMulNBits is 81 % of an
int4 MMLU 0-shot profile), so the rate a kernel reaches on this CPU bounds the wall time of the whole test.
This times each projection of SmolLM2-135M (hidden 576, intermediate 1536, 9 query and 3 key/value heads of
64) as a one-node graph on random weights, M activation rows at a time, in each format runner builds:

- q4b32: MatMulNBits, 4-bit blocks of 32 with uint8 zero points, accuracy level 4 (runner's exact int4 import
  of the Q4_1 GGUF; its offset correction is a separate, smaller MatMul and is not counted here);
- q8b32: MatMulNBits, the same blocks widened to 8 bits (what exact 4-bit levels would cost as 8-bit);
- fp32: MatMul (runner's fp32 import);
- w8a8: DynamicQuantizeMatMul, int8 weights, activations quantized per tensor (runner's w8a8).

It prints each format's rate in GMAC/s and the projections' time per token, that is the most tokens a second
one core can prefill through the 30 layers' projections alone. Run it with the ONNX Runtime runner uses:
    python3 -m venv /tmp/kernels && /tmp/kernels/bin/pip install onnxruntime==1.31.1 onnx numpy
    /tmp/kernels/bin/python xtask/peers/matmul_kernels.py [--rows 128] [--threads 1]
"""

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HIDDEN, INTERMEDIATE, HEAD_DIM, HEADS, KV_HEADS, LAYERS = 576, 1536, 64, 9, 3, 30
# (name, K, N) of each projection: packed QKV, output, fused gate/up, down.
PROJECTIONS = [
    ("qkv", HIDDEN, (HEADS + 2 * KV_HEADS) * HEAD_DIM),
    ("o", HEADS * HEAD_DIM, HIDDEN),
    ("gate_up", HIDDEN, 2 * INTERMEDIATE),
    ("down", INTERMEDIATE, HIDDEN),
]
FORMATS = ["q4b32", "q8b32", "fp32", "w8a8"]


def weights(fmt, k, n, rng):
    """The node and initializers computing Y = A @ W for W of shape (k, n) in `fmt`."""
    if fmt in ("q4b32", "q8b32"):
        bits, block = (4, 32) if fmt == "q4b32" else (8, 32)
        blocks = k // block
        packed = rng.integers(0, 256, size=(n, blocks, block * bits // 8), dtype=np.uint8)
        scales = rng.random(n * blocks, dtype=np.float32) * 0.01 + 0.001
        zp_len = n * ((blocks + 1) // 2) if bits == 4 else n * blocks
        zero_points = rng.integers(0, 256, size=zp_len, dtype=np.uint8)
        inits = [numpy_helper.from_array(a, name) for a, name in ((packed, "B"), (scales, "S"), (zero_points, "Z"))]
        node = helper.make_node(
            "MatMulNBits", ["A", "B", "S", "Z"], ["Y"], domain="com.microsoft",
            K=k, N=n, bits=bits, block_size=block, accuracy_level=4,
        )
        return node, inits
    if fmt == "fp32":
        w = rng.standard_normal((k, n), dtype=np.float32)
        return helper.make_node("MatMul", ["A", "W"], ["Y"]), [numpy_helper.from_array(w, "W")]
    w = rng.integers(-63, 64, size=(k, n), dtype=np.int8)
    scale = np.full(n, 0.01, dtype=np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(scale, "WS")]
    return helper.make_node("DynamicQuantizeMatMul", ["A", "W", "WS"], ["Y"], domain="com.microsoft"), inits


def seconds_per_call(fmt, k, n, rows, threads, rng):
    node, inits = weights(fmt, k, n, rng)
    graph = helper.make_graph(
        [node], "projection",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, None, n])],
        inits,
    )
    model = helper.make_model(
        graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.standard_normal((1, rows, k), dtype=np.float32)
    for _ in range(5):
        session.run(None, {"A": a})
    best = float("inf")
    for _ in range(7):  # the best of several passes: what the core can do, not what a busy spell left
        start = time.perf_counter()
        for _ in range(10):
            session.run(None, {"A": a})
        best = min(best, (time.perf_counter() - start) / 10)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128, help="activation rows per call (tokens of a prompt)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"onnxruntime {ort.__version__}, {args.rows} rows, {args.threads} thread(s)")
    print(f"{'format':8s} " + " ".join(f"{name:>9s}" for name, _, _ in PROJECTIONS) + "  all, GMAC/s  ms/token  tokens/s")
    for fmt in FORMATS:
        rates, per_token = [], 0.0
        for name, k, n in PROJECTIONS:
            s = seconds_per_call(fmt, k, n, args.rows, args.threads, rng)
            rates.append(args.rows * k * n / s / 1e9)
            per_token += s / args.rows * LAYERS
        macs = sum(k * n for _, k, n in PROJECTIONS) * LAYERS
        print(
            f"{fmt:8s} " + " ".join(f"{r:9.1f}" for r in rates)
            + f"  {macs / per_token / 1e9:11.1f}  {per_token * 1e3:8.3f}  {1 / per_token:8.0f}"
        )


if __name__ == "__main__":
    main()
