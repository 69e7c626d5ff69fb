"""strata reads files written by the gguf package (the format authors' own
writer) exactly: metadata of every value type, tensors of every type the
package can quantize, GGUF v3 and alignment, as the package's reader sees them."""
import json
import os
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
DUMP = str(Path(os.environ["STRATA_TEST_BIN_DIR"]).resolve() / "gguf_dump")

QUANTIZABLE = [
    gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16,
    gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q5_0,
    gguf.GGMLQuantizationType.Q5_1, gguf.GGMLQuantizationType.Q8_0,
]


def write_model(path, alignment=None):
    rng = np.random.default_rng(3)
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -5)
    w.add_uint16("test.u16", 65000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 1e-300)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "héllo ✓ \n \"quoted\"")
    w.add_array("test.strs", ["a", "", "ünïcode", "x" * 300])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.25])
    expected = {}
    for qt in QUANTIZABLE:
        data = rng.standard_normal((6, 256)).astype(np.float32)
        if qt == gguf.GGMLQuantizationType.F32:
            q = data
        elif qt == gguf.GGMLQuantizationType.F16:
            q = data.astype(np.float16)
        else:
            q = gguf.quants.quantize(data, qt)
        name = f"t.{qt.name.lower()}"
        w.add_tensor(name, q, raw_dtype=qt if qt not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else None)
        expected[name] = (qt, data.shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


@pytest.mark.parametrize("alignment", [None, 64])
def test_tensors_match_the_package(tmp_path, alignment):
    path = tmp_path / "m.gguf"
    write_model(path, alignment)
    reader = gguf.GGUFReader(str(path))
    for t in reader.tensors:
        theirs = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
        out = tmp_path / "out.f32"
        p = subprocess.run([DUMP, str(path), t.name, str(out)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        ours = np.fromfile(out, dtype=np.float32)
        assert ours.shape == theirs.shape, t.name
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), t.name


def test_metadata_matches_the_package(tmp_path):
    path = tmp_path / "m.gguf"
    write_model(path, 64)
    j = json.loads(subprocess.run([STRATA, "inspect", "--json", str(path)], capture_output=True, text=True,
                                  check=True).stdout)
    m = j["metadata"]
    assert j["alignment"] == 64 and m["general.alignment"] == 64
    assert m["test.u8"] == 200 and m["test.i8"] == -5 and m["test.u16"] == 65000 and m["test.i16"] == -30000
    assert m["test.u32"] == 4_000_000_000 and m["test.i32"] == -2_000_000_000
    assert np.float32(m["test.f32"]) == np.float32(0.1)
    assert m["test.u64"] == 2**63 + 5 and m["test.i64"] == -(2**62)
    assert m["test.f64"] == 1e-300 and m["test.bool"] is True
    assert m["test.str"] == "héllo ✓ \n \"quoted\""
    assert m["test.strs"] == ["a", "", "ünïcode", "x" * 300]
    assert m["test.ints"] == [1, -2, 3] and m["test.floats"] == [0.5, -1.25]
    names = [t["name"] for t in j["tensors"]]
    assert names == [f"t.{qt.name.lower()}" for qt in QUANTIZABLE]
    reader = gguf.GGUFReader(str(path))
    for t, mine in zip(reader.tensors, j["tensors"]):
        assert mine["type_id"] == int(t.tensor_type)
        assert mine["shape"] == [int(x) for x in t.shape]
        assert mine["bytes"] == int(t.n_bytes)
