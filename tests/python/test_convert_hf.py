"""tools/convert_hf.py on small checkpoints written here with numpy (no torch):
the layouts it must produce, stated from their definitions (the llama RoPE
row permutation, expert stacking, the deepseek2 kv_b split), the tensor types
of each --outtype, bf16 and fp8 block-scaled sources, transformers' fused
expert tensors, metadata, and clear errors. Every converted file must load
and run in strata. The logits themselves are checked in test_oracle.py."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SOURCE = Path(os.environ.get("STRATA_SOURCE_DIR", Path(__file__).resolve().parents[2]))
CONVERTER = SOURCE / "tools" / "convert_hf.py"
T = gguf.GGMLQuantizationType


def write_safetensors(path, tensors):
    """tensors: name -> (safetensors dtype, numpy array holding that dtype's bytes)."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def f32(a):
    return ("F32", np.asarray(a, dtype=np.float32))


def bf16(a):
    """bf16 by truncation; returns (entry, the float32 values it holds)."""
    bits = (np.asarray(a, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return ("BF16", bits), (bits.astype(np.uint32) << 16).view(np.float32)


def convert(model_dir, out, *extra, check=True):
    p = subprocess.run([sys.executable, str(CONVERTER), str(model_dir), "-o", str(out), "-q", *extra],
                       capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"convert_hf failed ({p.returncode}): {p.stderr}")
    return p


def strata_runs(model):
    p = subprocess.run([STRATA, "run", "-m", str(model), "--tokens", "1 2 3 4", "-n", "3", "--temp", "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.split()) == 3


def read(path):
    r = gguf.GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    return r, tensors


def kv(reader, key):
    return reader.fields[key].contents()


def as_np(t):
    """Tensor data in numpy order (GGUF ne reversed), as float32."""
    shape = tuple(int(n) for n in reversed(t.shape))
    return gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)


def rng_arrays(seed):
    g = np.random.default_rng(seed)
    return lambda *shape: g.standard_normal(shape).astype(np.float32) * 0.3


# A Mixtral-shaped llama: GQA (4 heads, 2 kv heads, head 8), 4 experts.
E, H, HKV, D, FF, V, NX = 32, 4, 2, 8, 64, 64, 4


@pytest.fixture
def mixtral_dir(tmp_path):
    r = rng_arrays(1)
    d = tmp_path / "mixtral"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": V, "hidden_size": E,
        "intermediate_size": FF, "num_hidden_layers": 1, "num_attention_heads": H, "num_key_value_heads": HKV,
        "num_local_experts": NX, "num_experts_per_tok": 2, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
        "max_position_embeddings": 256, "tie_word_embeddings": False}))
    w = {"model.embed_tokens.weight": f32(r(V, E)), "lm_head.weight": f32(r(V, E)),
         "model.norm.weight": f32(1 + r(E)),
         "model.layers.0.input_layernorm.weight": f32(1 + r(E)),
         "model.layers.0.post_attention_layernorm.weight": f32(1 + r(E)),
         "model.layers.0.self_attn.q_proj.weight": f32(r(H * D, E)),
         "model.layers.0.self_attn.k_proj.weight": f32(r(HKV * D, E)),
         "model.layers.0.self_attn.v_proj.weight": f32(r(HKV * D, E)),
         "model.layers.0.self_attn.o_proj.weight": f32(r(E, H * D)),
         "model.layers.0.block_sparse_moe.gate.weight": f32(r(NX, E))}
    for x in range(NX):
        p = f"model.layers.0.block_sparse_moe.experts.{x}."
        w[p + "w1.weight"], w[p + "w3.weight"], w[p + "w2.weight"] = f32(r(FF, E)), f32(r(FF, E)), f32(r(E, FF))
    write_safetensors(d / "model.safetensors", w)
    return d, {k: v[1] for k, v in w.items()}


def test_llama_rope_permutation_and_expert_stacking(tmp_path, mixtral_dir):
    d, w = mixtral_dir
    out = tmp_path / "m.gguf"
    convert(d, out, "--outtype", "f32")
    r, t = read(out)
    assert kv(r, "general.architecture") == "llama"
    assert kv(r, "llama.expert_count") == NX and kv(r, "llama.expert_used_count") == 2
    assert kv(r, "llama.rope.dimension_count") == D
    # GGUF `llama` rotates adjacent pairs (2i, 2i+1); HF rotates (i, i + D/2).
    for name, hf, heads in [("attn_q", "q_proj", H), ("attn_k", "k_proj", HKV)]:
        got, src = as_np(t[f"blk.0.{name}.weight"]), w[f"model.layers.0.self_attn.{hf}.weight"]
        for h in range(heads):
            for i in range(D // 2):
                np.testing.assert_array_equal(got[h * D + 2 * i], src[h * D + i])
                np.testing.assert_array_equal(got[h * D + 2 * i + 1], src[h * D + D // 2 + i])
    np.testing.assert_array_equal(as_np(t["blk.0.attn_v.weight"]), w["model.layers.0.self_attn.v_proj.weight"])
    for gname, hf in [("ffn_gate_exps", "w1"), ("ffn_up_exps", "w3"), ("ffn_down_exps", "w2")]:
        got = as_np(t[f"blk.0.{gname}.weight"])
        for x in range(NX):
            np.testing.assert_array_equal(got[x], w[f"model.layers.0.block_sparse_moe.experts.{x}.{hf}.weight"])
    assert list(t["blk.0.ffn_down_exps.weight"].shape) == [FF, E, NX]
    strata_runs(out)


@pytest.mark.parametrize("outtype,matrix", [("f16", T.F16), ("bf16", T.BF16), ("q8_0", T.Q8_0)])
def test_outtype_keeps_vectors_norms_and_routers_f32(tmp_path, mixtral_dir, outtype, matrix):
    d, _ = mixtral_dir
    out = tmp_path / f"m-{outtype}.gguf"
    convert(d, out, "--outtype", outtype)
    r, t = read(out)
    for name in ["blk.0.attn_norm.weight", "output_norm.weight", "blk.0.ffn_gate_inp.weight"]:
        assert t[name].tensor_type == T.F32, name
    for name in ["token_embd.weight", "output.weight", "blk.0.attn_q.weight", "blk.0.attn_output.weight",
                 "blk.0.ffn_up_exps.weight", "blk.0.ffn_down_exps.weight"]:
        assert t[name].tensor_type == matrix, name
    assert kv(r, "general.file_type") == {"f16": 1, "bf16": 32, "q8_0": 7}[outtype]
    strata_runs(out)


def test_q8_0_rows_not_a_multiple_of_32_fall_back_to_f16(tmp_path):
    r = rng_arrays(2)
    d = tmp_path / "qwen2"
    d.mkdir()
    e, h, ff = 48, 4, 72  # head 12; rows of 48 are not a multiple of 32
    (d / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 64, "hidden_size": e,
        "intermediate_size": ff, "num_hidden_layers": 1, "num_attention_heads": h, "num_key_value_heads": h,
        "tie_word_embeddings": True}))
    w = {"model.embed_tokens.weight": f32(r(64, e)), "model.norm.weight": f32(1 + r(e)),
         "model.layers.0.input_layernorm.weight": f32(1 + r(e)),
         "model.layers.0.post_attention_layernorm.weight": f32(1 + r(e)),
         "model.layers.0.mlp.gate_proj.weight": f32(r(ff, e)), "model.layers.0.mlp.up_proj.weight": f32(r(ff, e)),
         "model.layers.0.mlp.down_proj.weight": f32(r(e, ff)),
         "model.layers.0.self_attn.o_proj.weight": f32(r(e, e))}
    for p in "qkv":
        w[f"model.layers.0.self_attn.{p}_proj.weight"] = f32(r(e, e))
        w[f"model.layers.0.self_attn.{p}_proj.bias"] = f32(r(e))
    write_safetensors(d / "model.safetensors", w)
    out = tmp_path / "q.gguf"
    convert(d, out, "--outtype", "q8_0")
    r_, t = read(out)
    assert "output.weight" not in t  # tied: the head reuses token_embd
    assert t["blk.0.attn_q.weight"].tensor_type == T.F16  # rows of 48
    assert t["blk.0.ffn_down.weight"].tensor_type == T.F16  # rows of 72
    assert t["blk.0.attn_q.bias"].tensor_type == T.F32
    assert kv(r_, "qwen2.rope.freq_base") == pytest.approx(10000.0)  # Qwen2Config's default
    np.testing.assert_array_equal(as_np(t["blk.0.attn_q.bias"]), w["model.layers.0.self_attn.q_proj.bias"][1])
    strata_runs(out)


# DeepSeek-V3 shapes: q-LoRA, one dense lead layer, 8 experts in 4 groups.
DS = dict(E=32, H=2, QL=16, KVL=16, NOPE=8, ROPE=8, VH=12, FF=48, FFX=16, NX=8)


def deepseek_dir(tmp_path, *, fp8_block=None, mtp=True):
    c = DS
    r = rng_arrays(3)
    d = tmp_path / "dsv3"
    d.mkdir()
    cfg = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "vocab_size": 64,
           "hidden_size": c["E"], "intermediate_size": c["FF"], "moe_intermediate_size": c["FFX"],
           "num_hidden_layers": 2, "first_k_dense_replace": 1, "num_attention_heads": c["H"],
           "num_key_value_heads": c["H"], "q_lora_rank": c["QL"], "kv_lora_rank": c["KVL"],
           "qk_nope_head_dim": c["NOPE"], "qk_rope_head_dim": c["ROPE"], "v_head_dim": c["VH"],
           "n_routed_experts": c["NX"], "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2,
           "n_shared_experts": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": True,
           "max_position_embeddings": 512, "rope_theta": 10000,
           "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 128,
                            "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}}
    if fp8_block:
        cfg["quantization_config"] = {"quant_method": "fp8", "weight_block_size": list(fp8_block)}
    (d / "config.json").write_text(json.dumps(cfg))
    w, vals = {}, {}

    def put(name, a):
        w[name], vals[name] = bf16(a)

    put("model.embed_tokens.weight", r(64, c["E"]))
    put("lm_head.weight", r(64, c["E"]))
    put("model.norm.weight", 1 + r(c["E"]))
    for il in range(3 if mtp else 2):  # layer 2 is a multi-token-prediction layer
        p = f"model.layers.{il}."
        put(p + "input_layernorm.weight", 1 + r(c["E"]))
        put(p + "post_attention_layernorm.weight", 1 + r(c["E"]))
        put(p + "self_attn.q_a_proj.weight", r(c["QL"], c["E"]))
        put(p + "self_attn.q_a_layernorm.weight", 1 + r(c["QL"]))
        put(p + "self_attn.q_b_proj.weight", r(c["H"] * (c["NOPE"] + c["ROPE"]), c["QL"]))
        put(p + "self_attn.kv_a_proj_with_mqa.weight", r(c["KVL"] + c["ROPE"], c["E"]))
        put(p + "self_attn.kv_a_layernorm.weight", 1 + r(c["KVL"]))
        put(p + "self_attn.kv_b_proj.weight", r(c["H"] * (c["NOPE"] + c["VH"]), c["KVL"]))
        put(p + "self_attn.o_proj.weight", r(c["E"], c["H"] * c["VH"]))
        if il == 0:
            for n, shape in [("gate_proj", (c["FF"], c["E"])), ("up_proj", (c["FF"], c["E"])),
                             ("down_proj", (c["E"], c["FF"]))]:
                put(p + f"mlp.{n}.weight", r(*shape))
            continue
        put(p + "mlp.gate.weight", r(c["NX"], c["E"]))
        w[p + "mlp.gate.e_score_correction_bias"] = f32(r(c["NX"]))
        vals[p + "mlp.gate.e_score_correction_bias"] = w[p + "mlp.gate.e_score_correction_bias"][1]
        for x in range(c["NX"]):
            for n, shape in [("gate_proj", (c["FFX"], c["E"])), ("up_proj", (c["FFX"], c["E"])),
                             ("down_proj", (c["E"], c["FFX"]))]:
                put(p + f"mlp.experts.{x}.{n}.weight", r(*shape))
        for n, shape in [("gate_proj", (c["FFX"], c["E"])), ("up_proj", (c["FFX"], c["E"])),
                         ("down_proj", (c["E"], c["FFX"]))]:
            put(p + f"mlp.shared_experts.{n}.weight", r(*shape))
    if fp8_block:
        # fp8 e4m3 bytes with known values; scales per block.
        byte_value = {0x38: 1.0, 0x40: 2.0, 0x3C: 1.5, 0xB8: -1.0, 0x01: 2.0 ** -9, 0x00: 0.0, 0x7E: 448.0}
        codes = np.array(list(byte_value), dtype=np.uint8)
        name = "model.layers.1.self_attn.q_a_proj.weight"
        q = codes[np.arange(c["QL"] * c["E"]) % len(codes)].reshape(c["QL"], c["E"])
        br, bc = fp8_block
        scale = (np.arange(-(-c["QL"] // br) * -(-c["E"] // bc), dtype=np.float32) + 1).reshape(
            -(-c["QL"] // br), -(-c["E"] // bc)) / 4
        w[name] = ("F8_E4M3", q)
        w[name + "_scale_inv"] = f32(scale)
        per = np.vectorize(byte_value.get)(q).astype(np.float32)
        vals[name] = per * np.repeat(np.repeat(scale, br, 0), bc, 1)[: c["QL"], : c["E"]]
    write_safetensors(d / "model.safetensors", w)
    return d, vals


def test_deepseek_v3_layout_and_metadata(tmp_path):
    c = DS
    d, w = deepseek_dir(tmp_path)
    out = tmp_path / "ds.gguf"
    convert(d, out, "--outtype", "f32")
    r, t = read(out)
    assert kv(r, "general.architecture") == "deepseek2"
    expect = {"block_count": 2, "attention.head_count_kv": 1, "attention.key_length": c["KVL"] + c["ROPE"],
              "attention.value_length": c["KVL"], "attention.key_length_mla": c["NOPE"] + c["ROPE"],
              "attention.value_length_mla": c["VH"], "attention.q_lora_rank": c["QL"],
              "attention.kv_lora_rank": c["KVL"], "rope.dimension_count": c["ROPE"],
              "leading_dense_block_count": 1, "expert_count": c["NX"], "expert_used_count": 2,
              "expert_shared_count": 1, "expert_feed_forward_length": c["FFX"], "expert_group_count": 4,
              "expert_group_used_count": 2, "expert_weights_norm": True,
              "expert_gating_func": 2,  # sigmoid: transformers' DeepSeek-V3 has no other
              "rope.scaling.type": "yarn", "rope.scaling.original_context_length": 128}
    for k, v in expect.items():
        assert kv(r, f"deepseek2.{k}") == v, k
    assert kv(r, "deepseek2.expert_weights_scale") == pytest.approx(2.5)
    assert kv(r, "deepseek2.rope.scaling.factor") == pytest.approx(4.0)
    assert kv(r, "deepseek2.rope.scaling.yarn_log_multiplier") == pytest.approx(0.1)
    assert not any(n.startswith("blk.2.") for n in t), "the multi-token-prediction layer must be dropped"
    # kv_b_proj rows per head: [nope rows | v rows]; attn_k_b holds the nope
    # part transposed ([kv_lora, nope] per head), attn_v_b the v part as is.
    kv_b = w["model.layers.1.self_attn.kv_b_proj.weight"].reshape(c["H"], c["NOPE"] + c["VH"], c["KVL"])
    k_b, v_b = as_np(t["blk.1.attn_k_b.weight"]), as_np(t["blk.1.attn_v_b.weight"])
    assert list(t["blk.1.attn_k_b.weight"].shape) == [c["NOPE"], c["KVL"], c["H"]]
    assert list(t["blk.1.attn_v_b.weight"].shape) == [c["KVL"], c["VH"], c["H"]]
    for h in range(c["H"]):
        np.testing.assert_array_equal(k_b[h], kv_b[h, : c["NOPE"]].T)
        np.testing.assert_array_equal(v_b[h], kv_b[h, c["NOPE"]:])
    np.testing.assert_array_equal(as_np(t["blk.1.exp_probs_b.bias"]),
                                  w["model.layers.1.mlp.gate.e_score_correction_bias"])
    np.testing.assert_array_equal(as_np(t["blk.1.attn_q_a.weight"]), w["model.layers.1.self_attn.q_a_proj.weight"])
    np.testing.assert_array_equal(as_np(t["blk.1.ffn_down_exps.weight"])[5],
                                  w["model.layers.1.mlp.experts.5.down_proj.weight"])
    np.testing.assert_array_equal(as_np(t["blk.1.ffn_gate_shexp.weight"]),
                                  w["model.layers.1.mlp.shared_experts.gate_proj.weight"])
    strata_runs(out)


def test_deepseek_v3_fp8_block_scaled_weights_are_dequantized(tmp_path):
    d, w = deepseek_dir(tmp_path, fp8_block=(8, 8), mtp=False)
    out = tmp_path / "ds8.gguf"
    convert(d, out, "--outtype", "f32")
    _, t = read(out)
    assert "blk.1.attn_q_a.weight_scale_inv" not in t
    np.testing.assert_array_equal(as_np(t["blk.1.attn_q_a.weight"]), w["model.layers.1.self_attn.q_a_proj.weight"])
    strata_runs(out)


def test_fused_expert_tensors_are_split_gate_first(tmp_path):
    r = rng_arrays(4)
    d = tmp_path / "q3moe"
    d.mkdir()
    e, h, hd, nx, ffx = 32, 4, 16, 4, 16
    (d / "config.json").write_text(json.dumps({
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 64, "hidden_size": e,
        "intermediate_size": 64, "moe_intermediate_size": ffx, "num_hidden_layers": 1, "num_attention_heads": h,
        "num_key_value_heads": 2, "head_dim": hd, "num_experts": nx, "num_experts_per_tok": 2,
        "norm_topk_prob": True, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}))
    gate_up, down = r(nx, 2 * ffx, e), r(nx, e, ffx)
    w = {"model.embed_tokens.weight": f32(r(64, e)), "lm_head.weight": f32(r(64, e)),
         "model.norm.weight": f32(1 + r(e)),
         "model.layers.0.input_layernorm.weight": f32(1 + r(e)),
         "model.layers.0.post_attention_layernorm.weight": f32(1 + r(e)),
         "model.layers.0.self_attn.q_proj.weight": f32(r(h * hd, e)),
         "model.layers.0.self_attn.k_proj.weight": f32(r(2 * hd, e)),
         "model.layers.0.self_attn.v_proj.weight": f32(r(2 * hd, e)),
         "model.layers.0.self_attn.o_proj.weight": f32(r(e, h * hd)),
         "model.layers.0.self_attn.q_norm.weight": f32(1 + r(hd)),
         "model.layers.0.self_attn.k_norm.weight": f32(1 + r(hd)),
         "model.layers.0.mlp.gate.weight": f32(r(nx, e)),
         "model.layers.0.mlp.experts.gate_up_proj": f32(gate_up),
         "model.layers.0.mlp.experts.down_proj": f32(down)}
    write_safetensors(d / "model.safetensors", w)
    out = tmp_path / "q3.gguf"
    convert(d, out, "--outtype", "f32")
    r_, t = read(out)
    assert kv(r_, "qwen3moe.attention.key_length") == hd
    assert kv(r_, "qwen3moe.expert_feed_forward_length") == ffx
    np.testing.assert_array_equal(as_np(t["blk.0.ffn_gate_exps.weight"]), gate_up[:, :ffx])
    np.testing.assert_array_equal(as_np(t["blk.0.ffn_up_exps.weight"]), gate_up[:, ffx:])
    np.testing.assert_array_equal(as_np(t["blk.0.ffn_down_exps.weight"]), down)
    # qwen rotates halves (NeoX): q/k rows are not permuted.
    np.testing.assert_array_equal(as_np(t["blk.0.attn_q.weight"]), w["model.layers.0.self_attn.q_proj.weight"][1])
    strata_runs(out)


def test_unsupported_architecture_is_one_clear_error(tmp_path):
    d = tmp_path / "gpt2"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    p = convert(d, tmp_path / "x.gguf", check=False)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr
    assert "'GPT2LMHeadModel' is not supported" in p.stderr and "DeepseekV3ForCausalLM" in p.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_not_a_model_directory_is_one_clear_error(tmp_path):
    p = convert(tmp_path, tmp_path / "x.gguf", check=False)
    assert p.returncode == 1 and "config.json" in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_incomplete_experts_are_an_error(tmp_path, mixtral_dir):
    d, _ = mixtral_dir
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_local_experts"] = NX + 1
    (d / "config.json").write_text(json.dumps(cfg))
    p = convert(d, tmp_path / "x.gguf", check=False)
    assert p.returncode == 1 and "expected experts 0..4" in p.stderr, p.stderr
