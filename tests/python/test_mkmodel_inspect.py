"""End-to-end: `strata mkmodel` writes files that the gguf package (written by
the format's authors) reads with identical metadata and tensors, and
`strata inspect` reports them exactly as that independent reader sees them."""
import hashlib
import json
import os
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab"

TINY = ["tiny-deepseek2", "tiny-deepseek2-lite", "tiny-qwen3moe", "tiny-qwen2moe",
        "tiny-mixtral", "tiny-llama", "tiny-qwen2", "tiny-qwen3"]


def run(*args, check=True, timeout=600):
    p = subprocess.run([STRATA, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def inspect_json(path):
    return json.loads(run("inspect", "--json", path).stdout)


def reader_value(field):
    """A metadata field as plain Python, the way the gguf package decodes it."""
    t = field.types[0]
    if t == gguf.GGUFValueType.ARRAY:
        et = field.types[-1]
        if et == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if t == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", errors="surrogateescape")
    v = field.parts[field.data[0]].tolist()[0]
    return bool(v) if t == gguf.GGUFValueType.BOOL else v


def same_number(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return np.float32(a) == np.float32(b)
    return a == b


@pytest.mark.parametrize("preset", TINY)
def test_gguf_package_reads_what_mkmodel_writes(tmp_path, preset):
    out = tmp_path / f"{preset}.gguf"
    run("mkmodel", "--preset", preset, "--vocab-from", VOCAB / "ggml-vocab-gpt-2.gguf",
        "--routing-skew", "1", "-q", "-o", out)
    ours = inspect_json(out)
    reader = gguf.GGUFReader(str(out))

    # Metadata: every key, same order, same values.
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    assert keys == list(ours["metadata"].keys())
    for k in keys:
        theirs = reader_value(reader.fields[k])
        mine = ours["metadata"][k]
        if isinstance(theirs, list):
            assert len(theirs) == len(mine), k
            assert all(same_number(a, b) if not isinstance(a, str) else a == b for a, b in zip(theirs, mine)), k
        elif isinstance(theirs, str):
            assert theirs == mine, k
        else:
            assert same_number(theirs, mine), k

    # Tensors: names, types, shapes, offsets and the bytes themselves.
    assert len(reader.tensors) == len(ours["tensors"])
    data_start = reader.data_offset
    raw = out.read_bytes()
    for t, m in zip(reader.tensors, ours["tensors"]):
        assert t.name == m["name"]
        assert int(t.tensor_type) == m["type_id"]
        assert [int(x) for x in t.shape] == m["shape"]
        assert int(t.n_bytes) == m["bytes"]
        assert int(t.data_offset) == data_start + m["offset"]
        assert hashlib.sha256(t.data.tobytes()).digest() == \
            hashlib.sha256(raw[data_start + m["offset"]: data_start + m["offset"] + m["bytes"]]).digest()

    # Roles add up to the whole model.
    assert sum(r["bytes"] for r in ours["bytes_by_role"].values()) == ours["total_tensor_bytes"]
    assert ours["total_tensor_bytes"] == sum(int(t.n_bytes) for t in reader.tensors)


def test_dequantized_weights_are_finite_and_scaled(tmp_path):
    """Weights decoded by the gguf package: finite, zero-mean-ish, ~1/sqrt(fan_in)."""
    out = tmp_path / "w.gguf"
    run("mkmodel", "--preset", "tiny-qwen3moe", "--type", "q4_k", "--attn-type", "q8_0",
        "--expert-type", "q6_k", "-q", "-o", out, "--vocab-from", VOCAB / "ggml-vocab-gpt-2.gguf")
    reader = gguf.GGUFReader(str(out))
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        assert np.isfinite(w).all(), t.name
        if len(t.shape) >= 2 and "norm" not in t.name and "token_embd" not in t.name:
            fan_in = int(t.shape[0])
            sd = float(np.std(w))
            assert 0.05 / np.sqrt(fan_in) < sd < 2.0 / np.sqrt(fan_in), (t.name, sd)


def test_deepseek_v3_four_layers_role_summary(tmp_path):
    """The acceptance case: 4 layers of DeepSeek-V3 in q4_k (~7.7 GiB, written
    as random blocks), and routed-expert bytes equal the preset's arithmetic."""
    out = tmp_path / "dsv3.gguf"
    run("mkmodel", "--preset", "deepseek-v3", "--layers", "4", "--type", "q4_k", "-q", "-o", out,
        "--vocab-from", VOCAB / "ggml-vocab-deepseek-llm.gguf", timeout=900)
    try:
        text = run("inspect", "--no-tensors", out).stdout
        for role in ["embeddings", "output_head", "attention", "norms", "dense_ffn",
                     "shared_experts", "router", "routed_experts", "active bytes per token"]:
            assert role in text
        j = inspect_json(out)
        # first_k_dense_replace = 3: layers 0-2 dense, layer 3 MoE with 256 experts
        # of gate/up [7168 -> 2048] and down [2048 -> 7168], q4_k = 144 bytes per 256 weights.
        routed = 1 * 256 * 3 * 7168 * 2048 * 144 // 256
        assert j["bytes_by_role"]["routed_experts"]["bytes"] == routed
        assert j["routed_bytes_per_layer"] == [0, 0, 0, routed]
        # One shared expert of width 2048 in the MoE layer.
        assert j["bytes_by_role"]["shared_experts"]["bytes"] == 3 * 7168 * 2048 * 144 // 256
        # Active bytes: everything but the routed experts and all but one embedding
        # row, plus 8/256 of the routed experts.
        embd = j["bytes_by_role"]["embeddings"]["bytes"]
        expected_active = (j["total_tensor_bytes"] - routed - embd + embd // j["hparams"]["n_vocab"]
                           + routed * 8 // 256)
        assert j["active_bytes_per_token"] == expected_active
    finally:
        out.unlink(missing_ok=True)


def test_split_of_roles_for_dense_model(tmp_path):
    out = tmp_path / "llama.gguf"
    run("mkmodel", "--preset", "tiny-llama", "-q", "-o", out)
    j = inspect_json(out)
    assert j["bytes_by_role"]["routed_experts"]["bytes"] == 0
    assert j["bytes_by_role"]["dense_ffn"]["tensors"] == 2 * 3
    assert j["tokenizer"]["n_tokens"] == 0  # no --vocab-from: no tokenizer


@pytest.mark.parametrize("args,needle", [
    (["mkmodel", "--preset", "no-such-model", "-o", "x.gguf"], "--preset: expected one of"),
    (["mkmodel", "--preset", "tiny-llama", "--type", "q9_k", "-o", "x.gguf"], "--type: expected one of"),
    (["mkmodel", "--preset", "tiny-llama", "--experts", "8", "-o", "x.gguf"], "--experts: preset has no experts"),
    (["mkmodel", "--preset", "tiny-qwen3moe", "--experts-used", "99", "-o", "x.gguf"], "expert_used_count"),
    (["mkmodel", "--preset", "tiny-llama", "--hidden", "250", "-o", "x.gguf"], "--hidden 250"),
    (["mkmodel", "--preset", "tiny-llama", "--vocab-from", "/nonexistent.gguf", "-o", "x.gguf"], "/nonexistent.gguf"),
    (["inspect", "/nonexistent/model.gguf"], "/nonexistent/model.gguf"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, needle):
    p = subprocess.run([STRATA, *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("strata: error:")
    assert needle in lines[0]
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.tmp").exists()


def test_inspect_unknown_architecture_still_describes_the_file(tmp_path):
    path = tmp_path / "other.gguf"
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_block_count(1)
    w.add_tensor("blk.0.ssm_in.weight", np.zeros((8, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    p = run("inspect", path)
    assert "mamba" in p.stdout and "not supported for running" in p.stdout
    assert "blk.0.ssm_in.weight" in p.stdout


def test_inspect_json_survives_invalid_utf8(tmp_path):
    """Metadata strings are bytes from an untrusted file: JSON output replaces
    invalid UTF-8 instead of failing."""
    import struct
    path = tmp_path / "bad_utf8.gguf"
    key, val = b"general.name", b"\xff\xfe bad"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                     + struct.pack("<IQ", 8, len(val)) + val)
    j = inspect_json(path)
    assert j["metadata"]["general.name"].endswith(" bad")
    assert "\ufffd" in j["metadata"]["general.name"]
    assert run("inspect", path).returncode == 0
