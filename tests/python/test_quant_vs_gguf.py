# Cross-checks strata's reference (de)quantizers against the gguf package
# (gguf-py, written by the format's authors) through tests/tools/quant_tool.
"""strata vs gguf-py, bit for bit.

* every type both decode: random blocks dequantize to identical float32 bits;
* every type gguf-py can encode: identical bytes from the same float32 input;
* k-quants (gguf-py decodes but cannot encode them): gguf-py decoding
  strata's blocks gives exactly strata's own decoding;
* block geometry of every type id agrees (one documented exception, Q8_1).

Needs STRATA_TEST_BIN_DIR (ctest sets it) pointing at the directory holding
the quant_tool executable.
"""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

N_ELEMS = 256 * 32  # a multiple of every block size (1, 32, 64, 128, 256)


def _tool() -> Path:
    bin_dir = os.environ.get("STRATA_TEST_BIN_DIR")
    assert bin_dir, "set STRATA_TEST_BIN_DIR to the tests build directory (where quant_tool is)"
    path = Path(bin_dir) / "quant_tool"
    assert path.is_file(), f"expected the quant_tool executable at {path}; build target quant_tool"
    return path


def run_tool(*args, check=True):
    proc = subprocess.run([str(_tool()), *map(str, args)], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"quant_tool {' '.join(map(str, args))} failed: {proc.stderr}"
    return proc


def _table(cmd):
    rows = {}
    for line in run_tool(cmd).stdout.splitlines():
        type_id, name, *rest = line.split()
        rows[int(type_id)] = (name, *map(int, rest))
    return rows


@pytest.fixture(scope="module")
def caps():
    """type id -> (name, can_dequant, can_quant) as strata reports them."""
    return _table("caps")


def gguf_can(fn, qt: GGMLQuantizationType) -> bool:
    block, size = GGML_QUANT_SIZES[qt]
    try:
        if fn == "quantize":
            quants.quantize(np.zeros((1, 256), dtype=np.float32), qt)
        else:
            quants.dequantize(np.zeros((1, size), dtype=np.uint8), qt)
    except NotImplementedError:
        return False
    return True


GGUF_DEQUANT = [qt for qt in GGML_QUANT_SIZES if gguf_can("dequantize", qt)]
GGUF_QUANT = [qt for qt in GGML_QUANT_SIZES if gguf_can("quantize", qt)]
# gguf-py decodes the k-quants but cannot encode them; strata's encodings are
# checked by letting gguf-py decode them. (test_strata_covers_gguf fails if
# strata gains another encoder of this kind, so it gets added here.)
K_QUANTS = [GGMLQuantizationType[n] for n in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")]

# Byte offsets of the f16 scale fields inside each block (format facts: see
# runtime/base/quant_blocks.h). Random bytes there could decode to inf/NaN,
# which would make the comparison trivial, so they get finite values.
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q8_1": [0, 2],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ2_XXS": [0], "IQ2_XS": [0], "IQ2_S": [0], "IQ3_XXS": [0], "IQ3_S": [0], "IQ1_S": [0],
    "IQ4_NL": [0], "IQ4_XS": [0], "TQ1_0": [52], "TQ2_0": [64],
}


def random_halves(rng, n):
    """n finite f16 bit patterns, both signs, over 2^-10..2^4, some zeros and subnormals."""
    vals = rng.uniform(0.5, 1.0, n) * np.exp2(rng.integers(-10, 5, n)) * rng.choice([-1.0, 1.0], n)
    bits = vals.astype(np.float16).view(np.uint16)
    bits[rng.random(n) < 0.03] = 0
    sub = rng.random(n) < 0.03
    bits[sub] = rng.integers(1, 0x400, sub.sum()) | (rng.integers(0, 2, sub.sum()) << 15)
    return bits.astype(np.uint16)


def random_blocks(qt: GGMLQuantizationType, rng) -> np.ndarray:
    block, size = GGML_QUANT_SIZES[qt]
    n_blocks = N_ELEMS // block
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS.get(qt.name, []):
        raw[:, off:off + 2] = random_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if qt.name == "IQ1_M":
        # Its f16 scale is spread over the top nibbles of the four uint16
        # scale words (bytes 48..55): word k carries bits 4k..4k+3.
        words = raw[:, 48:56].copy().view(np.uint16)
        d = random_halves(rng, n_blocks)
        for k in range(4):
            words[:, k] = (words[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        raw[:, 48:56] = words.view(np.uint8)
    if qt.name == "MXFP4":
        raw[:, 0] = rng.integers(100, 150, n_blocks)  # E8M0 exponent near 2^0
    return raw


def assert_same_floats(ours: np.ndarray, theirs: np.ndarray, what: str):
    ours = ours.reshape(-1)
    theirs = theirs.astype(np.float32, copy=False).reshape(-1)
    assert ours.shape == theirs.shape, what
    nan_ours, nan_theirs = np.isnan(ours), np.isnan(theirs)
    assert np.array_equal(nan_ours, nan_theirs), f"{what}: NaN positions differ"
    ok = ~nan_ours
    same = ours.view(np.uint32)[ok] == theirs.view(np.uint32)[ok]
    if not same.all():
        i = np.flatnonzero(ok)[np.flatnonzero(~same)[0]]
        pytest.fail(f"{what}: {np.count_nonzero(~same)} values differ, first at {i}: "
                    f"strata {ours[i]!r} vs gguf {theirs[i]!r}")


def strata_dequant(name: str, raw: np.ndarray, tmp_path: Path) -> np.ndarray:
    src, dst = tmp_path / f"{name}.bin", tmp_path / f"{name}.f32"
    raw.tofile(src)
    run_tool("dequant", name, src, dst)
    return np.fromfile(dst, dtype=np.float32)


def strata_quant(name: str, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    src, dst = tmp_path / f"{name}.in.f32", tmp_path / f"{name}.q"
    x.astype(np.float32).tofile(src)
    run_tool("quant", name, src, dst)
    return np.fromfile(dst, dtype=np.uint8)


def make_input(rng) -> np.ndarray:
    """Rows of 256: Gaussian blocks at varied magnitudes, then edge rows."""
    rows = N_ELEMS // 256
    x = rng.standard_normal((rows, 256)).astype(np.float32)
    x *= np.exp2(rng.integers(-6, 6, (rows, 1))).astype(np.float32)
    x[0] = 0.0                                             # all zero: d = 0 paths
    x[1] = 0.37                                            # constant
    x[2] = np.where(np.arange(256) % 17 == 0, x[2], 0.0)   # sparse
    x[3] = np.abs(x[3]) + 3.0                              # all positive (min > 0)
    x[4] = -np.abs(x[4]) - 1.0                             # all negative
    x[5] = x[5] * 1e-6                                     # f16 subnormal range
    x[6] = (np.arange(256) % 9 - 4) * 0.25                 # exact grid values
    # Q8_0 with amax 127 has id = 1, so these land exactly on .5 ties.
    x[7] = np.tile(np.array([127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5], np.float32), 32)
    x[8] = rng.standard_normal(256).astype(np.float32) * 1e4  # scales near the f16 limit
    return x


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def test_block_geometry_matches_gguf():
    sizes = _table("sizes")
    assert set(sizes) == {int(qt) for qt in GGML_QUANT_SIZES}, "type ids known to strata vs gguf-py"
    for qt, (block, size) in GGML_QUANT_SIZES.items():
        name, ours_block, ours_size = sizes[int(qt)]
        assert name == qt.name.lower()
        if qt == GGMLQuantizationType.Q8_1:
            # gguf-py's constant (4 + 4 + 32 = 40) predates ggml storing Q8_1's
            # d and s as f16; ggml's block_q8_1 is 2 + 2 + 32 = 36 bytes, and
            # that is what files contain. Keep the known difference explicit.
            assert (block, size) == (32, 40)
            assert (ours_block, ours_size) == (32, 36)
            continue
        assert (ours_block, ours_size) == (block, size), qt.name


def test_strata_covers_gguf(caps):
    by_name = {name: (deq, q) for name, deq, q in caps.values()}
    for qt in GGUF_DEQUANT:
        assert by_name[qt.name.lower()][0] == 1, f"strata cannot dequantize {qt.name}"
    for qt in GGUF_QUANT:
        assert by_name[qt.name.lower()][1] == 1, f"strata cannot quantize {qt.name}"
    decode_only = {qt.name.lower() for qt in GGUF_DEQUANT if qt not in GGUF_QUANT}
    strata_encodes = {name for name, (_, q) in by_name.items() if q}
    assert decode_only & strata_encodes == {qt.name.lower() for qt in K_QUANTS}


@pytest.mark.parametrize("qt", GGUF_DEQUANT, ids=lambda qt: qt.name)
def test_dequantize_matches_gguf(qt, rng, tmp_path):
    raw = random_blocks(qt, rng)
    ours = strata_dequant(qt.name.lower(), raw, tmp_path)
    theirs = quants.dequantize(raw, qt)
    assert_same_floats(ours, theirs, f"dequantize {qt.name}")


@pytest.mark.parametrize("qt", GGUF_QUANT, ids=lambda qt: qt.name)
def test_quantize_matches_gguf(qt, rng, tmp_path):
    x = make_input(rng)
    ours = strata_quant(qt.name.lower(), x, tmp_path)
    theirs = np.asarray(quants.quantize(x, qt)).view(np.uint8).reshape(-1)
    assert ours.shape == theirs.shape, qt.name
    diff = np.flatnonzero(ours != theirs)
    block_bytes = GGML_QUANT_SIZES[qt][1]
    assert diff.size == 0, (f"{qt.name}: {diff.size} bytes differ, first at byte {diff[0]} "
                            f"(block {diff[0] // block_bytes})")


@pytest.mark.parametrize("qt", K_QUANTS, ids=lambda qt: qt.name)
def test_quantized_blocks_decode_identically_in_gguf(qt, rng, tmp_path):
    name = qt.name.lower()
    x = make_input(rng)
    q = strata_quant(name, x, tmp_path)
    ours = strata_dequant(name, q, tmp_path)
    theirs = quants.dequantize(q, qt)
    assert_same_floats(ours, theirs, f"gguf decoding strata's {qt.name}")
    # And the blocks are a real encoding of x: error well under the signal
    # on the Gaussian rows (rows 9+; the edge rows above are adversarial).
    xs, ys = x[9:].reshape(-1), ours.reshape(x.shape)[9:].reshape(-1)
    assert np.sqrt(np.mean((xs - ys) ** 2) / np.mean(xs ** 2)) < 0.35, qt.name


def test_tool_rejects_bad_rows(tmp_path):
    src = tmp_path / "bad.f32"
    np.zeros(100, np.float32).tofile(src)
    proc = run_tool("quant", "q4_k", src, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "multiple of 256" in proc.stderr
    proc = run_tool("quant", "iq2_xxs", tmp_path / "missing.f32", tmp_path / "out", check=False)
    assert proc.returncode == 1
    proc = run_tool("dequant", "no_such_type", src, tmp_path / "out", check=False)
    assert proc.returncode == 1 and "unknown type" in proc.stderr
