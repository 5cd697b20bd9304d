"""Tiny real ONNX model folders made by the real tools, for runner's tests (`cargo xtask onnx-fixtures`).

For each architecture: a tiny random-weight Hugging Face model (seeded, 2 layers, hidden 64) with a byte-level
BPE tokenizer trained here, built by onnxruntime-genai's builder (fp32 and int4, CPU) and, for some, exported
by Optimum (fp32); genai itself then runs every builder folder and its greedy token ids and last-position
logits for fixed prompts go into `expected.json` beside the folder, so that runner's tests can hold runner to
genai without installing genai. Failures of a tool on an architecture are recorded in `manifest.json`, not
hidden.

Usage: onnx_fixtures.py WORK_DIR FIXTURES_DIR [ARCH ...]
       onnx_fixtures.py --default-model GGUF OUT_DIR   (the default model's GGUF, dequantized by transformers,
       built by the builder into OUT_DIR/genai-fp32 and OUT_DIR/genai-int4: reports/derivation.md's real weights)
Environment: OPTIMUM_PYTHONPATH, a `pip --target` folder with optimum-onnx and transformers < 4.58 (Optimum's
exporter refuses newer ones); without it no Optimum folders are made.
"""

import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SEED = 14
VOCAB = 320
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
UNK, BOS, EOS, PAD = 0, 1, 2, 3
# Weights drawn wider than transformers' 0.02 so that the tiny models' next-token distributions are peaked:
# near-ties would make greedy tokens depend on float summation order, and the tests compare greedy tokens.
INIT_STD = 0.25
PROMPT = "The quick brown fox jumps over the lazy dog. Question: why is the sky blue? Answer:"
GENERATED = 24
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "In July 1969 Apollo 11 landed on the Moon, and 12 times 12 is 144.",
    "Water boils at 100 degrees Celsius at sea level; it freezes at 0.",
    "def add(a, b):\n    return a + b\n",
    "Question: Why is the sky blue? Answer: sunlight scatters off the air, and blue light scatters most.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "A benchmark measures speed and quality: tokens per second, time to first token, accuracy.",
    "Héllo wörld, naïve café — unicode text, tabs\tand newlines\n.",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def train_tokenizer():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 8, trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    bos_token_id=BOS,
    eos_token_id=EOS,
    pad_token_id=PAD,
    initializer_range=INIT_STD,
    tie_word_embeddings=True,
)


def configs():
    """(arch, config class, model class, config kwargs, makes an Optimum export)."""
    c = transformers
    # Gemma at the real configs' initializer range: its embeddings are scaled by sqrt(hidden), and wider weights
    # make every step repeat the last token.
    gemma = dict(head_dim=16, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=16, initializer_range=0.02)
    return [
        ("llama", c.LlamaConfig, c.LlamaForCausalLM, {}, True),
        ("mistral", c.MistralConfig, c.MistralForCausalLM, dict(sliding_window=None), False),
        ("qwen2", c.Qwen2Config, c.Qwen2ForCausalLM, {}, True),
        ("qwen3", c.Qwen3Config, c.Qwen3ForCausalLM, dict(head_dim=16), True),
        # Phi-3 mini 4k: no long-context rope, which the builder picks when the two lengths are equal.
        (
            "phi3",
            c.Phi3Config,
            c.Phi3ForCausalLM,
            dict(tie_word_embeddings=False, original_max_position_embeddings=512),
            False,
        ),
        # Gemma2: every other layer local with the real 4096-token window, soft-capping as the real configs.
        (
            "gemma2",
            c.Gemma2Config,
            c.Gemma2ForCausalLM,
            dict(
                gemma,
                sliding_window=4096,
                max_position_embeddings=8192,
                attn_logit_softcapping=50.0,
                final_logit_softcapping=30.0,
            ),
            False,
        ),
        # Gemma3 (text): the real 512-token window on the local layer, a global layer beside it.
        (
            "gemma3",
            c.Gemma3TextConfig,
            c.Gemma3ForCausalLM,
            dict(
                gemma,
                sliding_window=512,
                max_position_embeddings=1024,
                layer_types=["sliding_attention", "full_attention"],
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1e6},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                },
            ),
            False,
        ),
        (
            "granite",
            c.GraniteConfig,
            c.GraniteForCausalLM,
            dict(embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.0625, logits_scaling=8.0),
            False,
        ),
        ("smollm3", c.SmolLM3Config, c.SmolLM3ForCausalLM, {}, False),
        ("olmo", c.OlmoConfig, c.OlmoForCausalLM, {}, False),
    ]


def make_hf(arch, config_cls, model_cls, extra, tokenizer, out):
    torch.manual_seed(SEED)
    config = config_cls(**{**COMMON, **extra})
    model = model_cls(config).eval()
    with torch.no_grad():
        # Norm weights drawn too, so a graph that drops or misplaces a norm's scale is caught.
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    flatten_rope(out)
    return model


def flatten_rope(out):
    """transformers 4.x (Optimum's side) reads a flat `rope_theta`; transformers 5 writes `rope_parameters`:
    the flat key is written beside it."""
    path = out / "config.json"
    cfg = json.loads(path.read_text())
    rope = cfg.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        cfg["rope_theta"] = rope["rope_theta"]
        path.write_text(json.dumps(cfg, indent=2) + "\n")


# The builder under transformers 5: Gemma3's rope settings come per layer type
# (`rope_parameters = {full_attention: {...}, sliding_attention: {...}}`), which genai 0.18's builder reads as
# flat `rope_parameters` and `rope_local_base_freq` (KeyError 'rope_type'). The loaded config is flattened.
BUILDER = """
import runpy, sys, transformers
load = transformers.AutoConfig.from_pretrained
def flattened(*args, **kwargs):
    config = load(*args, **kwargs)
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "full_attention" in rope:
        config.rope_local_base_freq = rope["sliding_attention"]["rope_theta"]
        config.rope_parameters = dict(rope["full_attention"])
    return config
transformers.AutoConfig.from_pretrained = flattened
sys.argv = ["builder"] + sys.argv[1:]
runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")
"""


def run(cmd, env=None, log=None):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{tail}")


def build_genai(hf_dir, out, precision, work):
    if out.exists():
        shutil.rmtree(out)
    cache = work / "builder-cache"
    cmd = [sys.executable, "-c", BUILDER, "-i", str(hf_dir), "-o", str(out)]
    cmd += ["-p", precision, "-e", "cpu", "-c", str(cache)]
    run(cmd, log=work / f"{out.name}.log")


def export_optimum(hf_dir, out, work):
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, PYTHONPATH=os.environ["OPTIMUM_PYTHONPATH"])
    code = "import sys; from optimum.commands.optimum_cli import main; sys.argv = sys.argv[:1] + sys.argv[2:]; main()"
    cmd = [sys.executable, "-c", code, "optimum-cli", "export", "onnx", "--model", str(hf_dir)]
    cmd += ["--task", "text-generation-with-past", "--no-post-process", str(out)]
    run(cmd, env=env, log=work / f"{out.name}.log")
    # Optimum saves the tokenizer through its own transformers (4.x), which cannot read the tokenizer_config
    # transformers 5 wrote, and goes on without one: the files are copied, as a user would.
    copied = []
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        if not (out / name).exists():
            shutil.copy(hf_dir / name, out / name)
            copied.append(name)
    return copied


def genai_greedy(folder, prompt_ids, generated, context):
    """genai's greedy continuation of `prompt_ids` (`generated` tokens at most, fewer at EOS) and its
    last-position logits after the prompt. max_length is the whole context: genai sizes its KV cache by it,
    and a windowed layer refuses a cache smaller than its window."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=context, batch_size=1)
    gen = og.Generator(model, params)
    gen.append_tokens(np.array([prompt_ids], dtype=np.int32))
    logits = np.asarray(gen.get_logits(), dtype=np.float32).reshape(-1)[-VOCAB:]
    final = logits
    for _ in range(generated):
        if gen.is_done():
            break
        final = np.asarray(gen.get_logits(), dtype=np.float32).reshape(-1)[-VOCAB:]
        gen.generate_next_token()
    tokens = [int(t) for t in gen.get_sequence(0)][len(prompt_ids) :]
    # `final` chose the last token: the logits after the prompt and every generated token but the last. genai
    # leaves a final EOS out of the sequence, so there `final` chose that EOS and follows every token.
    chosen = int(np.argmax(final))
    assert chosen == tokens[-1] or (chosen == EOS and len(tokens) < generated), (chosen, tokens[-1])
    return tokens, [round(float(v), 6) for v in logits], [round(float(v), 6) for v in final]


def cases(arch, tokenizer, context):
    """The prompts genai answers: a short text for every model, and for the windowed Gemmas a prompt longer
    than the local window (seeded ids: text would repeat), so that both the prefill's last logits and every
    generated step depend on the window being applied."""
    ids = [BOS] + tokenizer.encode(PROMPT, add_special_tokens=False)
    out = [{"name": "short", "prompt_ids": ids, "max_new_tokens": GENERATED}]
    window = {"gemma3": 512, "gemma2": 4096}.get(arch)
    if window is not None:
        rng = np.random.default_rng(SEED)
        long = [BOS] + [int(t) for t in rng.integers(len(SPECIALS), VOCAB, size=window + 100)]
        assert len(long) + 64 < context
        out.append({"name": "past_window", "prompt_ids": long, "max_new_tokens": 64})
    return out


def record_expected(folder, arch, tokenizer, context):
    results = []
    for case in cases(arch, tokenizer, context):
        tokens, logits, final = genai_greedy(folder, case["prompt_ids"], case["max_new_tokens"], context)
        results.append(dict(case, genai_tokens=tokens, genai_prompt_logits=logits, genai_final_logits=final))
    import onnxruntime_genai as og

    expected = {
        "made_by": f"onnxruntime-genai {og.__version__} greedy (do_sample false) on this folder, CPU",
        "eos_token_id": EOS,
        "cases": results,
    }
    (folder / "expected.json").write_text(json.dumps(expected) + "\n")


def prune(folder):
    """Drops what runner's tests do not read and the tools write for humans, keeping the folders small."""
    for name in ["special_tokens_map.json"]:
        (folder / name).unlink(missing_ok=True)


def default_model_builds(gguf, out):
    """The default model's weights built by genai: transformers dequantizes the GGUF to fp32 (as lm-eval
    loads it), the weights are saved as a Hugging Face folder, and the builder makes fp32 and int4 of it."""
    hf = out / "hf"
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"): its dequantized weights go into a
    # plain model of the same config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    for precision in ["fp32", "int4"]:
        build_genai(hf, out / f"genai-{precision}", precision, out)


def main():
    if sys.argv[1] == "--default-model":
        default_model_builds(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    work, fixtures = Path(sys.argv[1]), Path(sys.argv[2])
    only = set(sys.argv[3:])
    work.mkdir(parents=True, exist_ok=True)
    fixtures.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    manifest_path = fixtures / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and only else {}
    import onnxruntime_genai as og

    manifest["_tools"] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "onnxruntime_genai": og.__version__,
        "seed": SEED,
    }
    for arch, config_cls, model_cls, extra, with_optimum in configs():
        if only and arch not in only:
            continue
        entry = manifest[arch] = {}
        hf_dir = work / "hf" / arch
        try:
            make_hf(arch, config_cls, model_cls, extra, tokenizer, hf_dir)
        except Exception as e:  # noqa: BLE001 - recorded and reported
            entry["hf"] = f"failed: {e}"
            traceback.print_exc()
            continue
        context = json.loads((hf_dir / "config.json").read_text())["max_position_embeddings"]
        for precision in ["fp32", "int4"] + (["fp16"] if arch == "llama" else []):
            name = f"{arch}-genai-{precision}"
            out = fixtures / name
            try:
                build_genai(hf_dir, out, precision, work)
                prune(out)
                entry[name] = "ok"
            except Exception as e:  # noqa: BLE001
                entry[name] = f"failed: {str(e)[-600:]}"
                shutil.rmtree(out, ignore_errors=True)
            # int4 is held to its fp32 sibling, never to genai's text (int8 activations: kernels differ per CPU).
            # A folder the builder wrote but genai cannot run stays: runner's tests still load it.
            if entry[name] == "ok" and precision != "int4":
                try:
                    record_expected(out, arch, tokenizer, context)
                except Exception as e:  # noqa: BLE001
                    entry[name] = f"built; genai cannot run it: {str(e)[-400:]}"
            print(f"{name}: {entry[name][:300]}", flush=True)
        if with_optimum and os.environ.get("OPTIMUM_PYTHONPATH"):
            name = f"{arch}-optimum-fp32"
            out = fixtures / name
            try:
                copied = export_optimum(hf_dir, out, work)
                prune(out)
                entry[name] = "ok" + (f"; Optimum wrote no {', '.join(copied)}: copied from the model" if copied else "")
            except Exception as e:  # noqa: BLE001
                entry[name] = f"failed: {str(e)[-600:]}"
                shutil.rmtree(out, ignore_errors=True)
            print(f"{name}: {entry[name][:300]}", flush=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
