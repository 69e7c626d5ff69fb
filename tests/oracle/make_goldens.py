#!/usr/bin/env python3
"""Regenerates the oracle goldens in tests/oracle/goldens/: for every
architecture strata runs, a tiny random Hugging Face model (fixed seed, every
feature of the architecture switched on), converted with tools/convert_hf.py
to an F32 GGUF, and the logits `transformers` computes in float32 for a fixed
token sequence at every position. tests/python/test_oracle.py compares strata
against them without needing torch.

    python tests/oracle/make_goldens.py [--keep-hf DIR] [--only NAME ...]

Installs torch (CPU) and transformers with pip into the running interpreter
when they are missing. Each golden is checked for stability before it is
written: the float64 run of the same model must agree with the float32 one
(so no expert choice or argmax sits on a knife edge); a model that fails this
is drawn again from the next seed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOLDENS = HERE / "goldens"
CONVERTER = ROOT / "tools" / "convert_hf.py"

N_VOCAB = 320
TOKENS_SEED = 7
N_TOKENS = 16
MAX_GGUF_BYTES = 2 << 20
# float32 vs float64 transformers: far below the test's 1e-3 tolerance, and
# every position's best token ahead of the second by a clear margin.
STABLE_REL = 1e-4
MIN_TOP2_GAP = 1e-2
SEED_TRIES = 20


def ensure_packages() -> None:
    """torch and transformers (>= 5: configs with rope_parameters, DeepSeek-V3
    built in) and the rest, installed with pip into this interpreter if missing."""
    missing = []
    for module, package in [("torch", "torch"), ("transformers", "transformers>=5"), ("numpy", "numpy"),
                            ("gguf", "gguf"), ("tokenizers", "tokenizers")]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        print(f"make_goldens: installing {' '.join(missing)} with pip", flush=True)
        p = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *missing])
        if p.returncode != 0:
            raise SystemExit(f"make_goldens: pip could not install {' '.join(missing)} for {sys.executable}; "
                             "run this script with a virtual environment's python (python3 -m venv DIR)")
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        raise SystemExit(f"make_goldens: transformers {transformers.__version__} is too old, expected >= 5 "
                         f"({sys.executable} -m pip install -U 'transformers>=5')")


# Tiny configurations. Each turns on what distinguishes its architecture;
# sizes are small but unequal where a mix-up of two dimensions would go
# unnoticed (head_dim != hidden/heads, v_head_dim != qk_nope_head_dim, ...).
MODELS = {
    "deepseek-v3": dict(
        cls="DeepseekV3", seed=11,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
            num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=24,
            n_routed_experts=8, num_experts_per_tok=3, n_group=4, topk_group=2, n_shared_experts=1,
            routed_scaling_factor=2.5, norm_topk_prob=True, rms_norm_eps=1e-6, max_position_embeddings=256,
            rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                 original_max_position_embeddings=64, beta_fast=32.0, beta_slow=1.0,
                                 mscale=0.707, mscale_all_dim=0.707),
            tie_word_embeddings=False),
        # What DeepSeek's own config.json says and transformers' config class
        # does not keep: sigmoid scores with the bias-corrected group top-k.
        config_json=dict(scoring_func="sigmoid", topk_method="noaux_tc")),
    "deepseek-v2": dict(
        cls="DeepseekV2", seed=18,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
            num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=24,
            n_routed_experts=8, num_experts_per_tok=3, n_group=4, topk_group=2, n_shared_experts=2,
            topk_method="group_limited_greedy", routed_scaling_factor=1.5, norm_topk_prob=False,
            rms_norm_eps=1e-6, max_position_embeddings=2048,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0), tie_word_embeddings=False),
        config_json=dict(scoring_func="softmax")),
    "qwen3moe": dict(
        cls="Qwen3Moe", seed=12,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
            num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, rms_norm_eps=1e-6,
            max_position_embeddings=512, rope_parameters=dict(rope_type="default", rope_theta=1e6),
            tie_word_embeddings=False)),
    "qwen2moe": dict(
        cls="Qwen2Moe", seed=13,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
            shared_expert_intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, qkv_bias=True,
            rms_norm_eps=1e-6, max_position_embeddings=512,
            rope_parameters=dict(rope_type="default", rope_theta=1e6), tie_word_embeddings=False)),
    "mixtral": dict(
        cls="Mixtral", seed=14,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
            rms_norm_eps=1e-5, max_position_embeddings=512,
            rope_parameters=dict(rope_type="default", rope_theta=1e6), tie_word_embeddings=False)),
    "qwen2": dict(
        cls="Qwen2", seed=15,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=512,
            rope_parameters=dict(rope_type="default", rope_theta=1e6), tie_word_embeddings=True)),
    "qwen3": dict(
        cls="Qwen3", seed=16,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
            max_position_embeddings=512, rope_parameters=dict(rope_type="default", rope_theta=1e6),
            tie_word_embeddings=False)),
    "llama": dict(
        cls="Llama", seed=17,
        config=dict(
            vocab_size=N_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, max_position_embeddings=131072,
            rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                 high_freq_factor=4.0, original_max_position_embeddings=64),
            tie_word_embeddings=False),
        # A short original context, so that the scaled frequencies turn far
        # enough in 16 positions to matter; also at the top level, where
        # llama.cpp's converter looks for it.
        config_json=dict(original_max_position_embeddings=64)),
}
for _spec in MODELS.values():  # the tokenizer's <|endoftext|>; no BOS
    _spec["config"].update(bos_token_id=None, eos_token_id=0, pad_token_id=0)

# Qwen2's pre-tokenizer split, so the GGUF's tokenizer.ggml.pre "qwen2" is
# what the tokenizer really does.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOKENIZER_TEXTS = ["Hello world", "The quick brown fox jumps over the lazy dog.", "strata runs 123 experts!"]


def make_tokenizer(out_dir: Path) -> None:
    """A byte-level BPE of N_VOCAB tokens trained on a few sentences."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "The quick brown fox jumps over the lazy dog. " * 3,
        "Hello world, hello strata. Mixture of experts models route every token to a few experts.",
        "Attention, shared experts and the KV cache stay on the GPU; routed experts live in DRAM.",
        "One two three 123 456 7890, the end of the text.",
    ]
    trainer = trainers.BpeTrainer(vocab_size=N_VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    if tok.get_vocab_size() > N_VOCAB:
        raise SystemExit(f"make_goldens: tokenizer has {tok.get_vocab_size()} tokens, expected <= {N_VOCAB}")
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "bos_token": None, "add_bos_token": False, "add_eos_token": False}, indent=2))


def randomize(model, seed: int) -> None:
    """Every parameter and buffer drawn again, so that nothing is left at a
    value (ones, zeros) that would hide a wrong or missing tensor."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith(("norm.weight", "layernorm.weight")):
                p.copy_(1.0 + 0.25 * r)
            elif name.endswith(".bias"):
                p.copy_(0.2 * r)
            elif "embed_tokens" in name:
                p.copy_(r)
            elif name.endswith(("mlp.gate.weight", "block_sparse_moe.gate.weight")):
                p.copy_(3.0 * r / p.shape[-1] ** 0.5)  # decisive routing
            else:
                p.copy_(r / p.shape[-1] ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g, dtype=torch.float32))


def build_hf_model(spec: dict, seed: int, out_dir: Path) -> None:
    import torch
    import transformers

    config_cls = getattr(transformers, spec["cls"] + "Config")
    model_cls = getattr(transformers, spec["cls"] + "ForCausalLM")
    torch.manual_seed(seed)
    config = config_cls(**spec["config"])
    model = model_cls(config).to(torch.float32).eval()
    randomize(model, seed)
    model.save_pretrained(out_dir, safe_serialization=True)
    if spec.get("config_json"):
        path = out_dir / "config.json"
        cfg = json.loads(path.read_text())
        cfg.update(spec["config_json"])
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    make_tokenizer(out_dir)


def hf_logits(model_dir: Path, tokens: list[int]):
    """Logits at every position from the saved checkpoint, in float32 and float64."""
    import torch
    import transformers

    ids = torch.tensor([tokens], dtype=torch.long)
    # The plain implementations (the reference code one reads), which also run in float64.
    impl = {"attn_implementation": "eager", "experts_implementation": "eager"}
    out = {}
    for dtype in (torch.float32, torch.float64):
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, **impl).eval()
        with torch.no_grad():
            out[dtype] = model(ids).logits[0].to(torch.float64).numpy()
    return out[torch.float32].astype("float32"), out[torch.float64]


def stability_of(l32, l64) -> dict:
    import numpy as np

    rel = float(np.max(np.abs(l32 - l64)) / np.max(np.abs(l64)))
    top2 = np.sort(l64, axis=1)[:, -2:]
    gap = float(np.min(top2[:, 1] - top2[:, 0]))
    same_argmax = bool(np.all(np.argmax(l32, axis=1) == np.argmax(l64, axis=1)))
    return {"stable": rel <= STABLE_REL and gap >= MIN_TOP2_GAP and same_argmax,
            "f32_vs_f64_rel": rel, "min_top2_gap": gap}


def tokenizer_cases(model_dir: Path) -> list[dict]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TOKENIZER_TEXTS]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep-hf", type=Path, help="also keep the tiny HF checkpoints in this directory")
    ap.add_argument("--only", nargs="+", choices=list(MODELS), help="regenerate only these goldens")
    args = ap.parse_args()
    ensure_packages()
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(1)  # one reduction order from run to run
    GOLDENS.mkdir(parents=True, exist_ok=True)
    manifest_path = GOLDENS / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest["generator"] = {"transformers": transformers.__version__, "torch": torch.__version__}
    models = manifest.setdefault("models", {})
    tokens = [int(t) for t in np.random.default_rng(TOKENS_SEED).integers(0, N_VOCAB, N_TOKENS)]

    work = Path(tempfile.mkdtemp(prefix="strata-goldens-"))
    try:
        for name in args.only or list(MODELS):
            spec = MODELS[name]
            hf_dir = work / name
            # The first seed from the spec's on whose model no expert choice
            # or argmax is a near tie.
            for seed in range(spec["seed"], spec["seed"] + 100 * SEED_TRIES, 100):
                shutil.rmtree(hf_dir, ignore_errors=True)
                build_hf_model(spec, seed, hf_dir)
                l32, l64 = hf_logits(hf_dir, tokens)
                stability = stability_of(l32, l64)
                if stability["stable"]:
                    break
            else:
                raise SystemExit(f"make_goldens: {name}: no stable model in {SEED_TRIES} seeds: {stability}")
            gguf_path = GOLDENS / f"{name}.gguf"
            subprocess.run([sys.executable, str(CONVERTER), str(hf_dir), "-o", str(gguf_path), "--outtype", "f32",
                            "-q"], check=True)
            size = gguf_path.stat().st_size
            if size >= MAX_GGUF_BYTES:
                raise SystemExit(f"make_goldens: {gguf_path.name} is {size} bytes, expected < {MAX_GGUF_BYTES}")
            np.save(GOLDENS / f"{name}.logits.npy", l32)
            hf_cfg = json.loads((hf_dir / "config.json").read_text())
            models[name] = {
                "hf_architecture": hf_cfg["architectures"][0],
                "gguf": gguf_path.name,
                "logits": f"{name}.logits.npy",
                "tokens": tokens,
                "n_vocab": int(l32.shape[1]),
                "seed": seed,
                "tokenizer": tokenizer_cases(hf_dir),
                "f32_vs_f64_rel": stability["f32_vs_f64_rel"],
                "min_top2_gap": stability["min_top2_gap"],
            }
            print(f"{name:12s} {hf_cfg['architectures'][0]:24s} {size / 1024:7.1f} KiB  "
                  f"f32/f64 {stability['f32_vs_f64_rel']:.1e}  top-2 gap {stability['min_top2_gap']:.3f}")
            if args.keep_hf:
                shutil.copytree(hf_dir, args.keep_hf / name, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(manifest, indent=1)
    text = re.sub(r"\[[\d,\s]*\]", lambda m: "[" + ", ".join(m.group(0)[1:-1].split()).replace(",,", ",") + "]", text)
    manifest_path.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
