#!/usr/bin/env python3
"""Hugging Face checkpoint -> GGUF, for the architectures strata runs.

    python tools/convert_hf.py HF_DIR -o out.gguf [--outtype f32|f16|bf16|q8_0]

The file it writes is meant to be the file the community converter
(llama.cpp's convert_hf_to_gguf.py) writes for the same checkpoint: the same
architecture string, metadata keys, tensor names, shapes and layouts. Facts
that matter and are easy to get wrong:

- llama (and Mixtral, converted to arch `llama` with ffn_*_exps): the rows of
  q_proj/k_proj are permuted per head from HF's half-split RoPE layout to the
  adjacent-pair layout that `llama` RoPE rotates. qwen2/qwen3/qwen2moe/qwen3moe
  use NeoX RoPE and are written unpermuted.
- Experts are stacked into one 3-D tensor per projection and layer:
  ffn_{gate,up}_exps [n_expert, n_ff, n_embd], ffn_down_exps [n_expert,
  n_embd, n_ff] (numpy order; GGUF lists the dimensions reversed).
- deepseek2: kv_b_proj is split per head into attn_k_b (the nope part,
  transposed to [n_head, kv_lora, nope]) and attn_v_b [n_head, v_head,
  kv_lora]; head_count_kv is 1, key_length = kv_lora + rope, value_length =
  kv_lora, the real head sizes go to key_length_mla/value_length_mla, and
  rope.scaling.yarn_log_multiplier is 0.1 * mscale_all_dim.
- Tensor types for --outtype f16/bf16/q8_0: vectors, norms, biases and the
  routers (ffn_gate_inp, ffn_gate_inp_shexp) stay F32; q8_0 falls back to F16
  for rows that are not a multiple of 32.

Dependencies: numpy and gguf; safetensors files are read directly (bf16 and
the fp8 block-scaled DeepSeek-V3 weights included). pytorch_model.bin
checkpoints need torch.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - exercised by users without the package
    sys.exit("convert_hf.py needs the gguf package: pip install gguf numpy")


class ConvertError(Exception):
    """A checkpoint this converter cannot turn into a correct GGUF file."""


HF_ARCHS = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "MixtralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen2MoeForCausalLM": "qwen2moe",
    "Qwen3MoeForCausalLM": "qwen3moe",
    "DeepseekV2ForCausalLM": "deepseek2",
    "DeepseekV3ForCausalLM": "deepseek2",
}

GGUF_ARCH = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
    "qwen3": gguf.MODEL_ARCH.QWEN3,
    "qwen2moe": gguf.MODEL_ARCH.QWEN2MOE,
    "qwen3moe": gguf.MODEL_ARCH.QWEN3MOE,
    "deepseek2": gguf.MODEL_ARCH.DEEPSEEK2,
}

# Defaults of the transformers config classes for keys that configs written
# with `use_diff` may leave out.
CONFIG_DEFAULTS = {
    "llama": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 2048},
    "mistral": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 32768},
    "mixtral": {"rms_norm_eps": 1e-5, "rope_theta": 1e6, "max_position_embeddings": 32768},
    "qwen2": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 32768},
    "qwen3": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 32768},
    "qwen2_moe": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 32768},
    "qwen3_moe": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 32768},
    "deepseek_v2": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 2048},
    "deepseek_v3": {"rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 4096},
}

OUTTYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, gguf.GGMLQuantizationType.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
}


def _fp8_e4m3_table() -> np.ndarray:
    """float32 value of every float8_e4m3fn byte (no infinities; 0x7f/0xff are NaN)."""
    v = np.arange(256, dtype=np.uint32)
    sign = np.where(v & 0x80, -1.0, 1.0)
    exp = (v >> 3) & 0xF
    man = (v & 0x7).astype(np.float64)
    normal = (1.0 + man / 8.0) * np.exp2(exp.astype(np.float64) - 7.0)
    subnormal = (man / 8.0) * 2.0 ** -6
    out = sign * np.where(exp == 0, subnormal, normal)
    out[(v & 0x7F) == 0x7F] = np.nan
    return out.astype(np.float32)


@dataclass
class _StEntry:
    path: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class Checkpoint:
    """Tensors of an HF checkpoint by name, loaded one at a time as float32."""

    _ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F8_E4M3": np.uint8,
                  "F64": np.float64, "I64": np.int64, "I32": np.int32}

    def __init__(self, model_dir: Path, block_size: tuple[int, int] | None):
        self._st: dict[str, _StEntry] = {}
        self._bin: dict[str, object] = {}
        self._fp8_block = block_size
        files = sorted(model_dir.glob("*.safetensors"))
        if files:
            for f in files:
                self._index_safetensors(f)
        else:
            bins = sorted(model_dir.glob("pytorch_model*.bin"))
            if not bins:
                raise ConvertError(f"{model_dir}: expected model*.safetensors or pytorch_model*.bin files, got none")
            try:
                import torch
            except ImportError as e:
                raise ConvertError(f"{model_dir}: .bin checkpoints need torch (pip install torch), "
                                   "or save the model as safetensors") from e
            for f in bins:
                self._bin.update(torch.load(str(f), map_location="cpu", weights_only=True))

    def _index_safetensors(self, path: Path) -> None:
        with open(path, "rb") as fp:
            (n,) = struct.unpack("<Q", fp.read(8))
            header = json.loads(fp.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] not in self._ST_DTYPES:
                raise ConvertError(f"{path.name}: {name}: unsupported safetensors dtype {info['dtype']}")
            b, e = info["data_offsets"]
            if name in self._st:
                raise ConvertError(f"{path.name}: tensor {name} appears in two files")
            self._st[name] = _StEntry(path, info["dtype"], tuple(info["shape"]), base + b, base + e)

    def names(self) -> list[str]:
        return list(self._st) if self._st else list(self._bin)

    def __contains__(self, name: str) -> bool:
        return name in self._st or name in self._bin

    def shape(self, name: str) -> tuple[int, ...]:
        if self._st:
            return self._st[name].shape
        return tuple(self._bin[name].shape)

    def load(self, name: str) -> np.ndarray:
        """The tensor as float32; fp8 weights are dequantized with their weight_scale_inv."""
        if not self._st:
            return self._bin[name].float().numpy()
        e = self._st[name]
        count = int(np.prod(e.shape)) if e.shape else 1
        raw = np.memmap(e.path, dtype=self._ST_DTYPES[e.dtype], mode="r", offset=e.begin, shape=(count,))
        if e.dtype == "BF16":
            out = (raw.astype(np.uint32) << 16).view(np.float32)
        elif e.dtype == "F8_E4M3":
            out = _fp8_e4m3_table()[raw]
        else:
            out = np.asarray(raw, dtype=np.float32)
        out = out.reshape(e.shape)
        scale_name = name.removesuffix(".weight") + ".weight_scale_inv"
        if e.dtype == "F8_E4M3" and scale_name in self:
            out = self._apply_block_scale(name, out, self.load(scale_name))
        return out

    def _apply_block_scale(self, name: str, w: np.ndarray, scale: np.ndarray) -> np.ndarray:
        if self._fp8_block is None:
            raise ConvertError(f"{name}: fp8 weight with weight_scale_inv, but config.json has no "
                               "quantization_config.weight_block_size")
        br, bc = self._fp8_block
        s = np.repeat(np.repeat(scale, br, axis=0), bc, axis=1)[: w.shape[0], : w.shape[1]]
        return (w * s).astype(np.float32)


def load_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ConvertError(f"{model_dir}: expected a Hugging Face model directory with config.json, got none")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if "text_config" in cfg:
        cfg = {**cfg, **cfg["text_config"]}
    for k, v in CONFIG_DEFAULTS.get(cfg.get("model_type", ""), {}).items():
        cfg.setdefault(k, v)
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = cfg.get("num_attention_heads")
    return cfg


def rope_params(cfg: dict) -> dict:
    """RoPE settings from either layout: rope_theta + rope_scaling (older
    configs) or rope_parameters (newer transformers), with rope_type set."""
    p = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    if "rope_type" not in p and "type" in p:
        p["rope_type"] = p["type"]
    if p.get("rope_theta") is None and cfg.get("rope_theta") is not None:
        p["rope_theta"] = cfg["rope_theta"]
    return p


def need(cfg: dict, key: str):
    if cfg.get(key) is None:
        raise ConvertError(f"config.json: expected '{key}', got none")
    return cfg[key]


# The tensor plan: every output tensor with its final shape and type, produced
# one at a time when written, so memory stays at about one tensor.


@dataclass
class PlannedTensor:
    name: str
    shape: tuple[int, ...]  # numpy order (GGUF lists it reversed)
    qtype: gguf.GGMLQuantizationType
    produce: Callable[[], np.ndarray]  # float32 data of `shape`


@dataclass
class Plan:
    tensors: list[PlannedTensor] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def add(self, t: PlannedTensor) -> None:
        if t.name in self.names:
            raise ConvertError(f"two checkpoint tensors map to {t.name}")
        self.names.add(t.name)
        self.tensors.append(t)


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Per head, rows [x0..x_{d/2-1}, y0..y_{d/2-1}] -> [x0, y0, x1, y1, ...]:
    HF llama rotates dims i and i + d/2 together, GGUF `llama` rotates 2i and 2i+1."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def output_qtype(name: str, shape: tuple[int, ...], want: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    f32 = gguf.GGMLQuantizationType.F32
    if want == f32 or len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return f32
    if re.match(r"blk\.\d+\.ffn_gate_inp(_shexp)?\.weight$", name):
        return f32
    block, _ = gguf.GGML_QUANT_SIZES[want]
    if shape[-1] % block != 0:
        return gguf.GGMLQuantizationType.F16
    return want


def encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def nbytes_of(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // block) * size


class Converter:
    EXPERT = re.compile(r"^model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts\.(\d+)\."
                        r"(gate_proj|up_proj|down_proj|w1|w2|w3)\.weight$")
    FUSED_EXPERT = re.compile(r"^model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts\."
                              r"(gate_up_proj|down_proj)(?:\.weight)?$")
    EXPERT_GGUF = {"gate_proj": "ffn_gate_exps", "w1": "ffn_gate_exps", "up_proj": "ffn_up_exps",
                   "w3": "ffn_up_exps", "down_proj": "ffn_down_exps", "w2": "ffn_down_exps"}

    def __init__(self, model_dir: Path, outtype: str, tokenizer_pre: str | None = None):
        self.dir = model_dir
        self.cfg = load_config(model_dir)
        archs = self.cfg.get("architectures") or []
        hf_arch = archs[0] if archs else None
        if hf_arch not in HF_ARCHS:
            raise ConvertError(f"{model_dir}/config.json: architecture {hf_arch!r} is not supported; "
                               f"expected one of {', '.join(HF_ARCHS)}")
        self.hf_arch = hf_arch
        self.arch = HF_ARCHS[hf_arch]
        self.ftype, self.want = OUTTYPES[outtype]
        self.tokenizer_pre = tokenizer_pre
        self.n_layer = int(need(self.cfg, "num_hidden_layers"))
        self.rope = rope_params(self.cfg)
        qc = self.cfg.get("quantization_config") or {}
        block = qc.get("weight_block_size")
        self.ckpt = Checkpoint(model_dir, tuple(block) if block else None)
        self.name_map = gguf.get_tensor_name_map(GGUF_ARCH[self.arch], self.n_layer)
        self._check_supported()

    def _check_supported(self) -> None:
        c = self.cfg
        if self.arch == "qwen2moe":
            if c.get("mlp_only_layers") or c.get("decoder_sparse_step", 1) != 1:
                raise ConvertError("Qwen2MoE with dense layers (mlp_only_layers / decoder_sparse_step != 1) "
                                   "has no GGUF layout; expected every layer to be MoE")
        if self.arch == "qwen3moe" and (c.get("mlp_only_layers") or c.get("decoder_sparse_step", 1) != 1):
            raise ConvertError("Qwen3MoE with dense layers (mlp_only_layers / decoder_sparse_step != 1) "
                               "has no GGUF layout; expected every layer to be MoE")
        rt = self.rope.get("rope_type", "default")
        if rt not in ("default", "linear", "yarn", "llama3"):
            raise ConvertError(f"config.json: RoPE type {rt!r} is not supported (expected default, linear, "
                               "yarn or llama3)")
        if rt == "llama3" and self.arch != "llama":
            raise ConvertError(f"config.json: llama3 RoPE scaling on {self.hf_arch} is not supported")
        if self.arch == "deepseek2" and self.hf_arch == "DeepseekV3ForCausalLM":
            gating = c.get("scoring_func", "sigmoid")
            if gating != "sigmoid":
                raise ConvertError(f"DeepSeek-V3 with scoring_func {gating!r}: expected sigmoid")

    def gguf_name(self, hf_name: str) -> str:
        name = hf_name
        if name.endswith(".e_score_correction_bias"):
            name = name.removesuffix("_bias") + ".bias"
        mapped = self.name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ConvertError(f"cannot map checkpoint tensor {hf_name!r} to a GGUF name")
        return mapped

    def _skip(self, name: str) -> bool:
        if name.endswith((".rotary_emb.inv_freq", ".weight_scale_inv", ".attention.masked_bias")):
            return True
        m = re.match(r"^model\.layers\.(\d+)\.", name)
        if self.arch == "deepseek2" and m and int(m.group(1)) >= self.n_layer:
            return True  # multi-token-prediction layers, not part of the main model
        if self.arch == "deepseek2" and name == "lm_head.weight" and self.cfg.get("tie_word_embeddings"):
            return True
        return False

    def _add(self, plan: Plan, name: str, shape: tuple[int, ...], produce: Callable[[], np.ndarray]) -> None:
        plan.add(PlannedTensor(name, shape, output_qtype(name, shape, self.want), produce))

    def plan(self) -> Plan:
        plan = Plan()
        ck = self.ckpt
        experts: dict[tuple[int, str], dict[int, str]] = {}
        order: list[tuple[str, object]] = []  # ("tensor", name) or ("experts", key) in checkpoint order
        for name in ck.names():
            if self._skip(name):
                continue
            m = self.EXPERT.match(name)
            if m:
                key = (int(m.group(1)), self.EXPERT_GGUF[m.group(3)])
                if key not in experts:
                    order.append(("experts", key))
                experts.setdefault(key, {})[int(m.group(2))] = name
                continue
            order.append(("tensor", name))

        n_exp = self._n_expert()
        for kind, item in order:
            if kind == "experts":
                bid, gname = item
                got = experts[item]
                if sorted(got) != list(range(n_exp)):
                    raise ConvertError(f"layer {bid}: {gname}: expected experts 0..{n_exp - 1}, "
                                       f"got {sorted(got)}")
                names = [got[i] for i in range(n_exp)]
                shape = (n_exp, *ck.shape(names[0]))
                self._add(plan, f"blk.{bid}.{gname}.weight", shape,
                          lambda names=names: np.stack([ck.load(n) for n in names]))
            else:
                self._plan_tensor(plan, item)
        for t in self._extra_tensors():
            plan.add(t)
        return plan

    def _n_expert(self) -> int:
        c = self.cfg
        for k in ("num_local_experts", "num_experts", "n_routed_experts"):
            if c.get(k):
                return int(c[k])
        return 0

    def _plan_tensor(self, plan: Plan, name: str) -> None:
        ck, c = self.ckpt, self.cfg
        shape = ck.shape(name)
        load = lambda: ck.load(name)  # noqa: E731

        fused = self.FUSED_EXPERT.match(name)
        if fused:
            bid, what = int(fused.group(1)), fused.group(2)
            if what == "down_proj":  # [n_expert, n_embd, n_ff]
                self._add(plan, f"blk.{bid}.ffn_down_exps.weight", shape, load)
                return
            n_ff = shape[1] // 2  # gate_up_proj: [n_expert, 2 n_ff, n_embd], gate first
            half = (shape[0], n_ff, shape[2])
            self._add(plan, f"blk.{bid}.ffn_gate_exps.weight", half, lambda: load()[:, :n_ff, :])
            self._add(plan, f"blk.{bid}.ffn_up_exps.weight", half, lambda: load()[:, n_ff:, :])
            return

        if self.arch == "deepseek2" and name.endswith(".self_attn.kv_b_proj.weight"):
            bid = int(name.split(".")[2])
            n_head = int(need(c, "num_attention_heads"))
            nope, v = int(need(c, "qk_nope_head_dim")), int(need(c, "v_head_dim"))
            kv_lora = shape[1]
            if shape[0] != n_head * (nope + v):
                raise ConvertError(f"{name}: expected {n_head * (nope + v)} rows (heads x (nope + v)), "
                                   f"got {shape[0]}")

            def split(part: str) -> np.ndarray:
                kv_b = load().reshape(n_head, nope + v, kv_lora)
                if part == "k":
                    return np.ascontiguousarray(kv_b[:, :nope, :].transpose(0, 2, 1))
                return np.ascontiguousarray(kv_b[:, nope:, :])

            self._add(plan, f"blk.{bid}.attn_k_b.weight", (n_head, kv_lora, nope), lambda: split("k"))
            self._add(plan, f"blk.{bid}.attn_v_b.weight", (n_head, v, kv_lora), lambda: split("v"))
            return

        if self.arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")):
            n_head = int(need(c, "num_attention_heads"))
            heads = n_head if ".q_proj." in name else int(c["num_key_value_heads"])
            self._add(plan, self.gguf_name(name), shape, lambda: permute_rope_rows(load(), heads))
            return

        self._add(plan, self.gguf_name(name), shape, load)

    def _extra_tensors(self) -> list[PlannedTensor]:
        """llama3 RoPE: per-pair frequency divisors as rope_freqs.weight."""
        if self.rope.get("rope_type") != "llama3":
            return []
        c, p = self.cfg, self.rope
        dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        base = p.get("rope_theta", 10000.0)
        factor = p.get("factor", 8.0)
        low, high = p.get("low_freq_factor", 1.0), p.get("high_freq_factor", 4.0)
        # The original context is read from the RoPE settings (as transformers
        # does); Llama 3.x configs put it there, 8192.
        old_ctx = p.get("original_max_position_embeddings") or c.get("original_max_position_embeddings", 8192)
        freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
        out = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < old_ctx / high:
                out.append(1.0)
            elif wavelen > old_ctx / low:
                out.append(factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                out.append(1.0 / ((1 - smooth) / factor + smooth))
        data = np.array(out, dtype=np.float32)
        return [PlannedTensor("rope_freqs.weight", data.shape, gguf.GGMLQuantizationType.F32, lambda: data)]

    def write_metadata(self, w: gguf.GGUFWriter) -> None:
        c, p = self.cfg, self.rope
        w.add_type(gguf.GGUFType.MODEL)
        w.add_name(self.dir.resolve().name)
        if self.arch == "deepseek2":
            c = {**c, "num_key_value_heads": 1}  # MLA is written as one shared latent kv head
        w.add_block_count(self.n_layer)
        w.add_context_length(int(need(c, "max_position_embeddings")))
        w.add_embedding_length(int(need(c, "hidden_size")))
        if c.get("intermediate_size") is not None:
            w.add_feed_forward_length(int(c["intermediate_size"]))
        w.add_head_count(int(need(c, "num_attention_heads")))
        w.add_head_count_kv(int(c["num_key_value_heads"]))
        self._write_rope_scaling(w)
        if p.get("rope_theta") is not None:
            w.add_rope_freq_base(float(p["rope_theta"]))
        w.add_layer_norm_rms_eps(float(need(c, "rms_norm_eps")))
        if n_exp := self._n_expert():
            w.add_expert_count(n_exp)
        if c.get("num_experts_per_tok") is not None:
            w.add_expert_used_count(int(c["num_experts_per_tok"]))
        if c.get("n_group") is not None:
            w.add_expert_group_count(int(c["n_group"]))
        if c.get("topk_group") is not None:
            w.add_expert_group_used_count(int(c["topk_group"]))
        gating = c.get("scoring_func")
        if gating is None and self.hf_arch == "DeepseekV3ForCausalLM":
            # transformers' DeepSeek-V3 always gates with a sigmoid and its
            # configs may omit the key; without it a reader falls back to V2's softmax.
            gating = "sigmoid"
        if gating is not None:
            kinds = {"sigmoid": gguf.ExpertGatingFuncType.SIGMOID, "softmax": gguf.ExpertGatingFuncType.SOFTMAX}
            if gating not in kinds:
                raise ConvertError(f"config.json: scoring_func {gating!r}: expected sigmoid or softmax")
            w.add_expert_gating_func(kinds[gating])
        if c.get("head_dim") is not None and self.arch != "deepseek2":
            w.add_key_length(int(c["head_dim"]))
            w.add_value_length(int(c["head_dim"]))
        w.add_file_type(self.ftype)

        if self.arch == "llama":
            w.add_vocab_size(int(need(c, "vocab_size")))
            w.add_rope_dimension_count(int(c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]))
        elif self.arch in ("qwen2moe", "qwen3moe"):
            if c.get("moe_intermediate_size") is not None:
                w.add_expert_feed_forward_length(int(c["moe_intermediate_size"]))
            if c.get("shared_expert_intermediate_size") is not None:
                w.add_expert_shared_feed_forward_length(int(c["shared_expert_intermediate_size"]))
        elif self.arch == "deepseek2":
            self._write_deepseek2(w, c)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    def _write_rope_scaling(self, w: gguf.GGUFWriter) -> None:
        p = self.rope
        rt, factor = p.get("rope_type"), p.get("factor")
        if rt == "linear" and factor is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(factor))
        elif rt == "yarn" and factor is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(float(factor))
            w.add_rope_scaling_orig_ctx_len(int(p["original_max_position_embeddings"]))
            if p.get("extrapolation_factor") is not None:
                w.add_rope_scaling_yarn_ext_factor(float(p["extrapolation_factor"]))
            attn = p.get("attention_factor", p.get("attn_factor"))
            if attn is not None:
                w.add_rope_scaling_yarn_attn_factor(float(attn))
            if p.get("beta_fast") is not None:
                w.add_rope_scaling_yarn_beta_fast(float(p["beta_fast"]))
            if p.get("beta_slow") is not None:
                w.add_rope_scaling_yarn_beta_slow(float(p["beta_slow"]))

    def _write_deepseek2(self, w: gguf.GGUFWriter, c: dict) -> None:
        has_moe = c.get("n_routed_experts") is not None
        lead = c.get("first_k_dense_replace")
        if lead is None:
            lead = 0 if has_moe else self.n_layer
        w.add_leading_dense_block_count(int(lead))
        w.add_vocab_size(int(need(c, "vocab_size")))
        if c.get("q_lora_rank") is not None:
            w.add_q_lora_rank(int(c["q_lora_rank"]))
        kv_lora = int(c.get("kv_lora_rank", 512))
        rope, nope = int(need(c, "qk_rope_head_dim")), int(need(c, "qk_nope_head_dim"))
        w.add_kv_lora_rank(kv_lora)
        w.add_key_length(kv_lora + rope)
        w.add_value_length(kv_lora)
        w.add_key_length_mla(nope + rope)
        w.add_value_length_mla(int(need(c, "v_head_dim")))
        ff_exp = c.get("moe_intermediate_size", c.get("intermediate_size"))
        w.add_expert_feed_forward_length(int(ff_exp))
        w.add_expert_shared_count(int(c.get("n_shared_experts") or 0))
        if c.get("routed_scaling_factor") is not None:
            w.add_expert_weights_scale(float(c["routed_scaling_factor"]))
        if c.get("norm_topk_prob"):
            w.add_expert_weights_norm(True)
        w.add_rope_dimension_count(rope)
        if self.rope.get("mscale_all_dim") is not None:
            w.add_rope_scaling_yarn_log_mul(0.1 * float(self.rope["mscale_all_dim"]))

    def write_tokenizer(self, w: gguf.GGUFWriter) -> str | None:
        """Writes a byte-level BPE tokenizer from tokenizer.json; returns why
        none was written, or None."""
        path = self.dir / "tokenizer.json"
        if not path.is_file():
            if (self.dir / "tokenizer.model").is_file():
                return "tokenizer.model (SentencePiece) is not converted; the file has no tokenizer"
            return "no tokenizer.json; the file has no tokenizer"
        tj = json.loads(path.read_text(encoding="utf-8"))
        model = tj.get("model") or {}
        if model.get("type") != "BPE" or model.get("byte_fallback", False):
            return "tokenizer.json is not a byte-level BPE tokenizer; the file has no tokenizer"
        n_vocab = int(need(self.cfg, "vocab_size"))
        by_id: dict[int, tuple[str, int]] = {}
        for tok, i in model["vocab"].items():
            by_id[int(i)] = (tok, int(gguf.TokenType.NORMAL))
        for t in tj.get("added_tokens", []):
            special = t.get("special", False) or looks_special(t["content"])
            by_id[int(t["id"])] = (t["content"],
                                  int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        if by_id and max(by_id) >= n_vocab:
            raise ConvertError(f"tokenizer.json: token id {max(by_id)} is outside the model's vocab_size {n_vocab}")
        tokens, types = [], []
        for i in range(n_vocab):
            tok, typ = by_id.get(i, (f"[PAD{i}]", int(gguf.TokenType.UNUSED)))
            tokens.append(tok)
            types.append(typ)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(self.tokenizer_pre or self._guess_pre(tj))
        w.add_token_list(tokens)
        w.add_token_types(types)
        gguf.SpecialVocab(self.dir, load_merges=True, n_vocab=n_vocab).add_to_gguf(w, quiet=True)
        return None

    def _guess_pre(self, tj: dict) -> str:
        """The pre-tokenizer name from the split regex when it is one we know,
        else the architecture's usual one (override with --tokenizer-pre)."""
        text = json.dumps(tj.get("pre_tokenizer"))
        if r"\\p{N}{1,3}" in text and r"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" in text:
            return "llama-bpe"
        if r"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" in text:
            return "qwen2"
        if self.arch == "deepseek2":
            return "deepseek-v3" if self.hf_arch == "DeepseekV3ForCausalLM" else "deepseek-llm"
        return {"llama": "llama-bpe"}.get(self.arch, "qwen2")

    def write(self, out: Path, log: Callable[[str], None] = print) -> None:
        plan = self.plan()
        w = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[GGUF_ARCH[self.arch]])
        self.write_metadata(w)
        why = self.write_tokenizer(w)
        if why:
            log(f"convert_hf: {why}")
        for t in plan.tensors:
            w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), nbytes_of(t.shape, t.qtype), raw_dtype=t.qtype)
        tmp = out.with_name(out.name + ".tmp")
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for t in plan.tensors:
            data = t.produce()
            if tuple(data.shape) != t.shape:
                raise ConvertError(f"{t.name}: expected shape {t.shape}, produced {tuple(data.shape)}")
            enc = encode(data, t.qtype)
            w.write_tensor_data(enc)
            log(f"{t.name:40s} {t.qtype.name:5s} {list(reversed(t.shape))}")
        w.close()
        tmp.replace(out)


def looks_special(text: str) -> bool:
    return (text.startswith("<|") and text.endswith("|>")) or (text.startswith("<\uff5c") and text.endswith("\uff5c>"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert a Hugging Face checkpoint to GGUF "
                                 f"({', '.join(HF_ARCHS)}).")
    ap.add_argument("model_dir", type=Path, help="directory with config.json and *.safetensors")
    ap.add_argument("-o", "--outfile", type=Path, required=True, help="GGUF file to write")
    ap.add_argument("--outtype", choices=list(OUTTYPES), default="f16",
                    help="type of the weight matrices (default f16; vectors, norms and routers stay f32)")
    ap.add_argument("--tokenizer-pre", help="tokenizer.ggml.pre to write (default: guessed from tokenizer.json)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    args = ap.parse_args(argv)
    try:
        conv = Converter(args.model_dir, args.outtype, args.tokenizer_pre)
        conv.write(args.outfile, log=(lambda s: None) if args.quiet else print)
    except ConvertError as e:
        print(f"convert_hf: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
