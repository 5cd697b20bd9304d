"""How close runner's import of a GGUF runs to llama.cpp on that same GGUF, per quantization type.

  python gguf_llamacpp_kl.py SOURCE.gguf OUT_DIR RUNNER_BIN [TYPE ...]

For each llama.cpp file type (Q4_K_M, Q5_K_M, ...; `source` is SOURCE itself): quantizes SOURCE with llama.cpp's
own quantizer (allow_requantize, as people requantize downloads), imports the file with `runner import`
(int4, accuracy level 4 unless RUNNER_ACCURACY_LEVEL says otherwise), then runs one chat text in both:
llama.cpp (llama-cpp-python, logits_all) and the imported model.onnx in ONNX Runtime's Python API. Prints one JSON
line per type: mean KL(llama.cpp || runner) over the positions and the share of positions whose argmax agrees.

Needs llama-cpp-python and onnxruntime==1.31.1 in the Python running it. With RUNNER_F64_REFERENCE=1 each line
also gives both tools' distance from a float64 forward pass of the file's own weights (gguf_reference.py; needs
the `gguf` package, e.g. llama.cpp's gguf-py on PYTHONPATH): the judge of which tool is far from the file.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

FTYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_M": 12, "Q4_K_M": 15,
          "Q5_K_M": 17, "Q6_K": 18}

CHAT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nExplain in two sentences why the sky is blue, and then say what colour sunsets are and "
        "why they look that way to people standing on the ground.<|im_end|>\n<|im_start|>assistant\nThe sky looks "
        "blue because air molecules scatter short blue wavelengths of sunlight much more strongly than red ones.")


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def ort_logits(model_dir, ids):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(Path(model_dir) / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            feeds[inp.name] = np.asarray([ids], dtype=np.int64)
        elif inp.name == "attention_mask":
            feeds[inp.name] = np.ones((1, len(ids)), dtype=np.int64)
        elif inp.name.startswith("past_key_values"):
            feeds[inp.name] = np.zeros((1, inp.shape[1], 0, inp.shape[3]), dtype=np.float32)
    return sess.run(["logits"], feeds)[0][0]


def compare(gguf, model_dir):
    import llama_cpp
    llm = llama_cpp.Llama(str(gguf), n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False)
    ids = llm.tokenize(CHAT.encode(), add_bos=False, special=True)
    llm.eval(ids)
    reference = np.asarray(llm.scores[: len(ids)])
    del llm
    ours = ort_logits(model_dir, ids)
    kl = mean_kl(reference, ours)
    result = {"positions": len(ids), "mean_kl": float(kl.mean()), "max_kl": float(kl.max()),
              "top1": float((reference.argmax(-1) == ours.argmax(-1)).mean())}
    if os.environ.get("RUNNER_F64_REFERENCE"):
        # Both tools against a float64 forward pass of the file's exact weights: which one is far from the file.
        from gguf_reference import reference_logits
        exact = reference_logits(str(gguf), list(ids))
        for tool, logits in (("llama_cpp", reference), ("runner", ours)):
            result[f"f64_kl_{tool}"] = float(mean_kl(exact, logits).mean())
            result[f"f64_top1_{tool}"] = float((exact.argmax(-1) == logits.argmax(-1)).mean())
    return result


def mean_kl(reference, ours):
    """KL(reference || ours) at each position."""
    p, q = log_softmax(reference), log_softmax(ours)
    return (np.exp(p) * (p - q)).sum(-1)


def main():
    import llama_cpp
    source, out, runner = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    level = os.environ.get("RUNNER_ACCURACY_LEVEL", "4")
    out.mkdir(parents=True, exist_ok=True)
    for ftype in sys.argv[4:] or ["source"] + list(FTYPES):
        gguf = source if ftype == "source" else out / f"{source.stem.split('.')[0]}.{ftype}.gguf"
        if not gguf.exists():
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype, params.nthread, params.allow_requantize = FTYPES[ftype], 2, True
            if llama_cpp.llama_model_quantize(str(source).encode(), str(gguf).encode(), params) != 0:
                print(json.dumps({"type": ftype, "error": "llama.cpp could not quantize"}), flush=True)
                continue
        model_dir = out / f"{ftype}-onnx-l{level}"
        done = subprocess.run([runner, "import", str(gguf), "--out", str(model_dir), "--force",
                               "--accuracy-level", level], capture_output=True, text=True)
        if done.returncode != 0:
            print(json.dumps({"type": ftype, "error": done.stderr.strip()[-400:]}), flush=True)
            continue
        weights = json.loads((model_dir / "runner.json").read_text())["weights"]
        kinds = sorted({form.split(":")[0] for form in weights.values()})
        print(json.dumps({"type": ftype, "gguf_mb": round(gguf.stat().st_size / 1e6, 1), "ggml_types": kinds,
                          "accuracy_level": int(level), **compare(gguf, model_dir)}), flush=True)


if __name__ == "__main__":
    main()
