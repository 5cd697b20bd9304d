"""Tiny GGUF fixtures for runner's importer tests, made by the tools people's GGUFs come from.

Two stages, each run with the Python that has its packages (`cargo xtask gguf-fixtures` drives them):

  hf OUT CONVERTER   (torch + transformers + tokenizers + sentencepiece): trains a small byte-level BPE and a
                     small SentencePiece tokenizer on the text below, builds random-weight Hugging Face models
                     (2 layers, 256 wide so K-quant rows are whole super-blocks) and converts each with
                     llama.cpp's own convert_hf_to_gguf.py to F32 GGUF files in OUT/f32.
  llama OUT          (llama-cpp-python): quantizes each F32 file with llama.cpp's quantizer to the types in
                     TYPES, runs every quantized file in llama.cpp and records its token ids for TOKENIZER_TEXT
                     and its logits (all positions, float16) for LOGITS_TEXT in OUT/expected.json and OUT/*.logits.

The converter recognises BPE pre-tokenizers by hashing a known tokenizer's output, which a locally trained
tokenizer never matches: the hf stage names the pre-tokenizer each fixture declares (tokenizer.ggml.pre)
itself, through the converter's `get_vocab_base_pre`; everything else is the converter's own code.
"""

import json
import os
import sys
from pathlib import Path

CORPUS = """The quick brown fox jumps over the lazy dog. It's 2026 and we're testing 12345 tokens!
Rust's ownership model makes memory safety explicit: fn main() { println!("hello, world"); }
Qu'est-ce que c'est ? Ça va très bien, merci. Straße, naïve café, résumé.
Numbers like 3.14159, 42, 1000000 and 2^10 = 1024 appear in code and prose alike.
<|im_start|>user
What is the capital of France?<|im_end|>
<|im_start|>assistant
The capital of France is Paris. It has been the capital for centuries.<|im_end|>
    indented code block
\tdef f(x):\n\t\treturn x * 2
I've been told he'll come, they'd said; you're sure? We'VE seen it ALL.
Emoji and symbols: ✅ 🚀 → ≤ ≥ ±; CJK: 我想在苹果工作; Cyrillic: нещо на български.
"""

TOKENIZER_TEXT = (
    "Hello world! It's 2026: 12345 tokens, 3.14 and 1000000.\n\n  indented\tand tabs\n"
    "I've been told he'll come; WE'RE sure. naïve café ✅ 🚀 我想 нещо <|im_start|>user\nhi<|im_end|>"
)

LOGITS_TEXT = (
    "<|im_start|>user\nWhat is the capital of France? Answer in one sentence.<|im_end|>\n"
    "<|im_start|>assistant\nThe capital of France is Paris, which has been the capital for centuries."
)
LOGITS_POSITIONS = 48

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# name: (HF class, config overrides, tokenizer kind, pre-tokenizer the GGUF declares)
FIXTURES = {
    "llama": ("LlamaForCausalLM", {}, "bpe", "llama-bpe"),
    # Llama 3.1's rope: converted to one divisor per frequency (rope_freqs.weight). An original context of 64
    # puts the 32 frequencies of a 64-wide head on all three sides of the smoothing band (4 at 1, 5 between,
    # 23 at 8); the same weights as "llama" otherwise.
    "llama3-rope": ("LlamaForCausalLM", {"rope_parameters": {
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}, "bpe", "llama-bpe"),
    "mistral": ("MistralForCausalLM", {"sliding_window": None}, "bpe", "llama-bpe"),
    "qwen2": ("Qwen2ForCausalLM", {"use_sliding_window": False}, "bpe", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", {"num_attention_heads": 8, "head_dim": 64}, "bpe", "qwen2"),
    "llama-spm": ("LlamaForCausalLM", {}, "spm", None),
    # A window shorter than the logits text, so llama.cpp's sliding-window mask shows in the logits.
    "phi3": ("Phi3ForCausalLM", {"sliding_window": 16, "original_max_position_embeddings": 256,
                                 "pad_token_id": 0}, "spm", None),
    # Phi-3 128k's LongRoPE: a context of 1024 over an original 256, per-frequency short and long divisors and the
    # attention factor sqrt(1 + ln 4 / ln 256) the converter derives. llama.cpp picks the long factors at an n_ctx
    # past 256 (its n_ctx is padded to 256): logits at n_ctx 1024 (long) and 256 (short).
    "phi3-longrope": ("Phi3ForCausalLM", {"sliding_window": None, "max_position_embeddings": 1024,
                                          "original_max_position_embeddings": 256, "pad_token_id": 0,
                                          "rope_parameters": {
                                              "rope_type": "longrope", "rope_theta": 10000.0,
                                              "original_max_position_embeddings": 256,
                                              "short_factor": [1.0 + 0.25 * i / 31 for i in range(32)],
                                              "long_factor": [1.0 + 7.0 * i / 31 for i in range(32)]}},
                      "spm", None),
    # Windows of 16 tokens in a 48-token text; Gemma 3 with an untied head (the converter always ties Gemma 2's).
    "gemma2": ("Gemma2ForCausalLM", {"head_dim": 64, "query_pre_attn_scalar": 64, "sliding_window": 16,
                                     "pad_token_id": 0}, "spm", None),
    "gemma3": ("Gemma3ForCausalLM", {"tie_word_embeddings": False, "head_dim": 64, "query_pre_attn_scalar": 64, "sliding_window": 16,
                                     "layer_types": ["sliding_attention", "full_attention"],
                                     "rope_parameters": {
                                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                         "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
                                     "pad_token_id": 0}, "spm", None),
    # Gemma 3 4B and larger: linear rope scaling (factor 8) on the global layers only; the same weights as "gemma3".
    # The converter writes no window pattern and llama.cpp's Gemma 3 default is five local layers, then one global:
    # both layers of "gemma3" and "gemma3-linear" are local (unscaled, base 10000) for llama.cpp whatever
    # layer_types says. "gemma3-linear-global" has no window (sliding_window_pattern 1), so every layer is global.
    "gemma3-linear": ("Gemma3ForCausalLM", {"tie_word_embeddings": False, "head_dim": 64, "query_pre_attn_scalar": 64,
                                            "sliding_window": 16,
                                            "layer_types": ["sliding_attention", "full_attention"],
                                            "rope_parameters": {
                                                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                                   "rope_theta": 1000000.0}},
                                            "pad_token_id": 0}, "spm", None),
    "gemma3-linear-global": ("Gemma3ForCausalLM", {"tie_word_embeddings": False, "head_dim": 64,
                                                   "query_pre_attn_scalar": 64, "sliding_window_pattern": 1,
                                                   "layer_types": ["full_attention", "full_attention"],
                                                   "rope_parameters": {
                                                       "sliding_attention": {"rope_type": "default",
                                                                             "rope_theta": 10000.0},
                                                       "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                                          "rope_theta": 1000000.0}},
                                                   "pad_token_id": 0}, "spm", None),
}

# llama.cpp's quantizer file types (llama_ftype) each fixture gets; the llama fixture gets every quantized one.
FTYPES = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_M": 12,
          "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}
# (F16 is left out: 1.8 MB, and the synthetic tests cover float weights.)
TYPES = {"llama": [t for t in FTYPES if t != "F16"], "llama3-rope": ["Q4_K_M"], "mistral": ["Q4_K_M"], "qwen2": ["Q4_K_M", "Q4_0"],
         "qwen3": ["Q4_K_M", "Q4_0"], "llama-spm": ["Q4_K_M"], "phi3": ["Q4_K_M"], "phi3-longrope": ["Q4_K_M"],
         "gemma2": ["Q4_K_M"], "gemma3": ["Q4_K_M"], "gemma3-linear": ["Q4_K_M"],
         "gemma3-linear-global": ["Q4_K_M"]}

# Vocabulary-only fixtures (`convert_hf_to_gguf.py --vocab-only`; llama.cpp tokenizes them with vocab_only=True).
# phi3.vocab.gguf: a SentencePiece vocabulary with Phi-3's special tokens in a model named phi3, which llama.cpp
# gives Phi-3's special-token rules (RSTRIP on special tokens but <unk>, <s>, <|endoftext|>).
PHI3_TOKENS = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]
PHI3_TEXT = ("<|system|>\n  You are terse.<|end|>\n<|user|>\nWhat is 2+2?  <|end|>\n \n<|assistant|>\n\t It is 4.<|end|>"
             "<|endoftext|>  after\n</s>  x<s> y <|user|>z<|end|>   ")
# pre-tokenizers.vocab.gguf: a byte-level BPE vocabulary whose merges cross the regexes' splits, converted once per llama.cpp pre-tokenizer name in
# PRE_TOKENIZERS; the files differ in tokenizer.ggml.pre only, so one is kept (named "gpt-2") and the test gives
# it each name. The text exercises what the regexes split differently.
PRE_TOKENIZERS = ["a.x-4.0", "bailingmoe", "bailingmoe2", "bloom", "codeshell", "command-r", "dbrx", "deepseek-coder",
                  "deepseek-llm", "deepseek-r1-qwen", "deepseek-v3", "default", "exaone", "exaone-moe", "exaone4",
                  "f2llmv2", "falcon", "falcon-h1", "falcon3", "gigachat", "gpt-2", "gpt-4o", "gpt3-finnish",
                  "granite-docling", "granite-embed-multi-97m", "grok-2", "hunyuan", "hunyuan-dense", "hy_v4", "jais",
                  "jais-2", "jina-v5-nano", "joyai-llm", "kanana2", "kormo", "laguna", "lfm2", "llada-moe",
                  "llama-bpe", "llama-v3", "llama3", "llama4", "megrez", "mellum", "mellum2", "midm-2.0",
                  "minerva-7b", "minicpm5", "minimax-m2", "mpt", "olmo", "phi-2", "pixtral", "poro-chat", "qwen2",
                  "qwen35", "refact", "seed-coder", "smaug-bpe", "smollm", "solar-open", "spark2_5", "stablelm2",
                  "starcoder", "talkie", "tekken", "trillion", "ufakzeka", "viking", "youtu"]
PRE_TOKENIZER_TEXT = (
    "Hello world! It's 2026: 1 12 123 1234 12345 3.14159 1,000,000 and x2 v1.0.3 abc123def.\n\n\n"
    "I've, I'M, we'Re, they'd've; don't WON'T y'all 'tis\r\n  indented\tand\t\ttabs   \n    four\n \n"
    "HelloWorld HTTPServer iPhone McDonald's ÉCOLE naïve café résumé Ångström Straße\n"
    "Emoji ✅🚀👍🏽❤️ → ≤ ± ©; !!! ??? ... --- ((x)) {a:b} <tag/> #$%^&* `code` a+b=c |pipe| ~tilde\n"
    "CJK 我想在苹果工作。日本語のテキスト、カタカナ 한국어 텍스트；Cyrillic: нещо на български, Привет!\n"
    "Arabic مرحبا ١٢٣ and Hindi नमस्ते। fn main() {\n    println!(\"hi\");\n}\n"
    "<|im_start|>user\nhi<|im_end|>  trailing   "
)

# llama.cpp's context per fixture (default 256), then the other contexts whose logits are recorded too.
N_CTX = {"phi3-longrope": [1024, 256]}

VOCAB_SIZE = 384
SEED = 15


def train_bpe(out: Path, across_splits=False):
    """A byte-level BPE; `across_splits`: trained without a pre-tokenizer on the corpus and the pre-tokenizer text,
    1024 entries, so its merges cross where the pre-tokenizers split and every difference in splitting shows."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(([] if across_splits else [
        pre_tokenizers.Split(Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"), "isolated"),
    ]) + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024 if across_splits else VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS] * 4 + ([PRE_TOKENIZER_TEXT] * 4 if across_splits else []), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token=None, pad_token="<|endoftext|>")
    fast.save_pretrained(out)
    return len(tok.get_vocab())


def train_spm(out: Path, symbols=("<|im_start|>", "<|im_end|>")):
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    text = out / "corpus.txt"
    text.write_text(CORPUS * 4)
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(out / "tokenizer"), vocab_size=VOCAB_SIZE,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   user_defined_symbols=list(symbols), split_digits=True,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
    text.unlink()
    (out / "tokenizer.vocab").unlink()
    LlamaTokenizer(vocab_file=str(out / "tokenizer.model"), legacy=False).save_pretrained(out)
    if list(symbols) == PHI3_TOKENS:
        # As Phi-3's tokenizer_config.json declares its added tokens: the converter types them from it (special:
        # control; <|system|> left non-special here, so a user-defined token takes part too).
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
        config = json.loads((out / "tokenizer_config.json").read_text())
        for token in symbols:
            config.setdefault("added_tokens_decoder", {})[str(sp.PieceToId(token))] = {
                "content": token, "lstrip": False, "normalized": False, "rstrip": True, "single_word": False,
                "special": token != "<|system|>"}
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return VOCAB_SIZE


def make_model(name: str, out: Path, spec=None):
    import torch
    import transformers

    hf_class, overrides, tokenizer_kind, _ = spec or FIXTURES[name]
    if tokenizer_kind in ("bpe", "bpe-across-splits"):
        vocab = train_bpe(out, tokenizer_kind == "bpe-across-splits")
    elif tokenizer_kind == "spm-phi3":
        vocab = train_spm(out, PHI3_TOKENS)
    else:
        vocab = train_spm(out)
    config_name = {"Gemma3ForCausalLM": "Gemma3TextConfig"}.get(hf_class, hf_class.replace("ForCausalLM", "Config"))
    config_class = getattr(transformers, config_name)
    config = config_class(**{
        "vocab_size": vocab, "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32", **overrides,
    })
    torch.manual_seed(SEED)
    model = getattr(transformers, hf_class)(config)
    # Random weights wider than HF's 0.02 init, so the logits have a shape worth comparing (near-uniform
    # logits would agree whatever the engines did); norms and biases off their trivial values for the same reason.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                # Gemma's norms multiply by 1 + weight, the others by weight.
                p.copy_(float("Gemma" not in hf_class) + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.3 * torch.randn_like(p))
            elif pname.endswith("embed_tokens.weight") and "Gemma" in hf_class:
                # Gemma scales the embedding by sqrt(width) = 16: a smaller table keeps the token's own embedding
                # from dominating the residual stream (and, through a tied head, every prediction).
                p.copy_((0.03 if model.config.tie_word_embeddings else 0.12 / 16) * torch.randn_like(p))
            else:
                p.copy_(0.12 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)


def stage_hf(out: Path, converter: Path, only=None):
    import tempfile

    sys.path.insert(0, str(converter.parent))
    sys.path.insert(1, str(converter.parent / "gguf-py"))
    import convert_hf_to_gguf as convert
    from conversion import base

    (out / "f32").mkdir(parents=True, exist_ok=True)
    stage_hf_vocab(out, convert, base, only)
    for name, (_, _, _, pre) in FIXTURES.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            make_model(name, Path(tmp))
            base.TextModel.get_vocab_base_pre = lambda self, tokenizer, pre=pre: pre
            # A fixed model name (the converter would name the model after the temporary folder). Not "phi3":
            # llama.cpp gives models so named Phi-3's special-token strip rules, which need Phi-3's own tokens.
            model_name = f"runner-fixture-{name}".replace("phi3", "phi")
            sys.argv = ["convert_hf_to_gguf.py", tmp, "--outtype", "f32", "--model-name", model_name,
                        "--outfile", str(out / "f32" / f"{name}.gguf")]
            convert.main()


def stage_hf_vocab(out: Path, convert, base, only=None):
    """The vocabulary-only fixtures: phi3.vocab.gguf, and the BPE vocabulary once per pre-tokenizer name in
    OUT/vocab-pre (the llama stage tokenizes each, then keeps the gpt-2 one as pre-tokenizers.vocab.gguf)."""
    import tempfile

    def vocab_only(model_dir, model_name, outfile, pre):
        base.TextModel.get_vocab_base_pre = lambda self, tokenizer, pre=pre: pre
        sys.argv = ["convert_hf_to_gguf.py", model_dir, "--vocab-only", "--model-name", model_name,
                    "--outfile", str(outfile)]
        convert.main()

    if not only or "phi3-vocab" in only:
        with tempfile.TemporaryDirectory() as tmp:
            make_model("phi3-vocab", Path(tmp), ("Phi3ForCausalLM", {"pad_token_id": 0}, "spm-phi3", None))
            vocab_only(tmp, "runner-fixture-phi3-vocab", out / "phi3.vocab.gguf", None)
    if not only or "pre-tokenizers" in only:
        (out / "vocab-pre").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            make_model("pre-tokenizers", Path(tmp), ("LlamaForCausalLM", {}, "bpe-across-splits", None))
            for pre in PRE_TOKENIZERS:
                vocab_only(tmp, "runner-fixture-pre-tokenizers", out / "vocab-pre" / f"{pre}.gguf", pre)


def stage_llama_vocab(out: Path, expected: dict, only=None):
    """llama.cpp's ids for the vocabulary-only fixtures, special tokens parsed and not."""
    import llama_cpp

    kept = [c for c in expected.get("vocab_cells", []) if only and c["fixture"] not in only]
    cells = []

    def tokenize(path, fixture, name):
        llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        text = expected["vocab_texts"][fixture]
        cells.append({"fixture": fixture, "name": name,
                      "tokenized": llm.tokenize(text.encode(), add_bos=False, special=True)})
        del llm

    expected["vocab_texts"] = {"phi3-vocab": PHI3_TEXT, "pre-tokenizers": PRE_TOKENIZER_TEXT}
    if not only or "phi3-vocab" in only:
        tokenize(out / "phi3.vocab.gguf", "phi3-vocab", "phi3")
    if not only or "pre-tokenizers" in only:
        for pre in PRE_TOKENIZERS:
            tokenize(out / "vocab-pre" / f"{pre}.gguf", "pre-tokenizers", pre)
        (out / "vocab-pre" / "gpt-2.gguf").replace(out / "pre-tokenizers.vocab.gguf")
        import shutil
        shutil.rmtree(out / "vocab-pre")
    order = ["phi3-vocab", "pre-tokenizers"]
    expected["vocab_cells"] = sorted(kept + cells, key=lambda c: (order.index(c["fixture"]), c["name"]))


def stage_llama(out: Path, only=None):
    import llama_cpp
    import numpy as np

    expected = {"llama_cpp_python": llama_cpp.__version__, "tokenizer_text": TOKENIZER_TEXT,
                "logits_text": LOGITS_TEXT, "cells": []}
    if only and (out / "expected.json").exists():
        previous = json.loads((out / "expected.json").read_text())
        expected["cells"] = [c for c in previous["cells"] if c["architecture"] not in only]
        expected["vocab_cells"] = previous.get("vocab_cells", [])
    stage_llama_vocab(out, expected, only)
    for name in FIXTURES:
        if only and name not in only:
            continue
        source = out / "f32" / f"{name}.gguf"
        for ftype in TYPES[name]:
            gguf = out / f"{name}.{ftype}.gguf"
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = FTYPES[ftype]
            params.nthread = 2
            if llama_cpp.llama_model_quantize(str(source).encode(), str(gguf).encode(), params) != 0:
                raise SystemExit(f"llama.cpp could not quantize {source} to {ftype}")
            n_ctx, *other_n_ctx = N_CTX.get(name, [256])
            llm = llama_cpp.Llama(str(gguf), n_ctx=n_ctx, n_batch=256, n_threads=2, logits_all=True, verbose=False)
            ids = llm.tokenize(LOGITS_TEXT.encode(), add_bos=False, special=True)[:LOGITS_POSITIONS]
            llm.eval(ids)
            logits = np.asarray(llm.scores[: len(ids)], dtype=np.float16)
            logits_file = f"{name}.{ftype}.logits"
            (out / logits_file).write_bytes(logits.tobytes())
            cell = {
                "gguf": gguf.name, "architecture": name, "type": ftype, "tokens": ids,
                "logits": logits_file, "vocab": int(llm.n_vocab()),
                "tokenized": llm.tokenize(TOKENIZER_TEXT.encode(), add_bos=False, special=True),
                "tokenized_plain": llm.tokenize(TOKENIZER_TEXT.encode(), add_bos=False, special=False),
            }
            del llm
            if name in N_CTX:
                cell["n_ctx"] = n_ctx
                cell["logits_at_n_ctx"] = {}
            for other in other_n_ctx:
                llm = llama_cpp.Llama(str(gguf), n_ctx=other, n_batch=256, n_threads=2, logits_all=True,
                                      verbose=False)
                llm.eval(ids)
                other_file = f"{name}.{ftype}.n_ctx{other}.logits"
                (out / other_file).write_bytes(np.asarray(llm.scores[: len(ids)], dtype=np.float16).tobytes())
                cell["logits_at_n_ctx"][str(other)] = other_file
                del llm
            expected["cells"].append(cell)
            print(f"{gguf.name}: {gguf.stat().st_size} bytes, {len(ids)} positions", flush=True)
    # In FIXTURES and TYPES order whichever fixtures this run remade.
    order = [(name, ftype) for name in FIXTURES for ftype in TYPES[name]]
    expected["cells"].sort(key=lambda c: order.index((c["architecture"], c["type"])))
    # The vocabulary cells one a line (their id lists would take 20,000 lines at one id a line).
    vocab_cells = expected.pop("vocab_cells")
    text = json.dumps(expected, indent=1)[:-2] + ',\n "vocab_cells": [\n'
    text += ",\n".join("  " + json.dumps(c) for c in vocab_cells) + "\n ]\n}"
    (out / "expected.json").write_text(text + "\n")


if __name__ == "__main__":
    stage, out = sys.argv[1], Path(sys.argv[2])
    if stage == "hf":
        stage_hf(out, Path(sys.argv[3]), sys.argv[4:])
    elif stage == "llama":
        stage_llama(out, sys.argv[3:])
    else:
        raise SystemExit(f"unknown stage {stage}")
