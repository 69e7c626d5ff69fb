# The real `strata inspect` on the GGUF fixtures: every malformed file fails
# with one line "strata: error: <file>: <field>: expected ..., got ..." and no
# crash, every valid one succeeds, and what strata reads from the valid ones
# (metadata, tensor table, split joins) agrees with the gguf package's reader.
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_gguf_fixtures as mk  # noqa: E402

FIXTURES = HERE.parent / "fixtures"
MALFORMED = FIXTURES / "malformed"
VALID = FIXTURES / "valid"
TIME_LIMIT_S = 5.0


def strata_bin() -> str:
    b = os.environ.get("STRATA_BIN")
    if not b or not os.path.exists(b):
        pytest.skip("STRATA_BIN is not set to the strata executable (ctest sets it)")
    return b


def inspect(path, *flags):
    t0 = time.monotonic()
    r = subprocess.run([strata_bin(), "inspect", str(path), *flags], capture_output=True, timeout=30)
    return r, time.monotonic() - t0


def manifest():
    rows = []
    for line in (MALFORMED / "manifest.tsv").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, parse_status, open_status, needles = line.split("\t")
        rows.append((name, open_status, needles.split(";")))
    return rows


MANIFEST = manifest()


def test_committed_fixtures_match_the_generator(tmp_path):
    """The .gguf files in tests/fixtures are exactly what make_gguf_fixtures.py writes (regenerate if not)."""
    written = mk.write_all(str(tmp_path))
    for rel in written:
        committed = FIXTURES / rel
        assert committed.exists(), f"{rel} missing: run tests/python/make_gguf_fixtures.py"
        assert committed.read_bytes() == (tmp_path / rel).read_bytes(), f"{rel} differs from the generator's output"
    committed_files = {str(p.relative_to(FIXTURES)) for d in (VALID, MALFORMED) for p in d.iterdir()}
    assert committed_files == set(written), "stale or unlisted files in tests/fixtures"
    for rel in written:
        assert (FIXTURES / rel).stat().st_size <= mk.MAX_FIXTURE_BYTES or rel.endswith(".tsv")


def test_manifest_is_complete():
    names = {row[0] for row in MANIFEST}
    on_disk = {p.name for p in MALFORMED.glob("*.gguf")}
    assert names == on_disk
    assert len(names) >= 40


@pytest.mark.parametrize("flags", [(), ("--json",)], ids=["text", "json"])
@pytest.mark.parametrize("name,status,needles", MANIFEST, ids=[row[0] for row in MANIFEST])
def test_malformed_fixture_is_one_line_error(name, status, needles, flags):
    path = MALFORMED / name
    r, elapsed = inspect(path, *flags)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}"
    assert r.returncode == 1
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.1f} s"
    assert r.stdout == b""
    err = r.stderr.decode("utf-8", errors="replace")
    assert err.endswith("\n") and err.count("\n") == 1, f"expected exactly one line, got {err!r}"
    line = err.rstrip("\n")
    assert line.startswith("strata: error: "), line
    assert name in line, line
    assert "expected" in line, line
    assert all(0x20 <= ord(c) < 0x7F for c in line if ord(c) < 0x80), f"control characters in {line!r}"
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"


@pytest.mark.parametrize("name", sorted(p.name for p in VALID.glob("*.gguf")))
def test_valid_fixture_inspects(name):
    r, elapsed = inspect(VALID / name)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stderr == b""
    assert elapsed < TIME_LIMIT_S
    assert b"gguf:" in r.stdout


# The two fixtures whose strings are UTF-8, compared field by field with gguf-py.
CROSS_CHECKED = ["all_types_v3.gguf", "aligned64_v2.gguf"]
# Keys where `strata inspect --json` is known to print the wrong value.
KNOWN_JSON_BUGS = set()


def flatten(v):
    if isinstance(v, list):
        out = []
        for x in v:
            out.extend(flatten(x) if isinstance(x, list) else [x])
        return out
    return v


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-6, abs=0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", CROSS_CHECKED)
def test_valid_fixture_agrees_with_gguf_py(name):
    gguf = pytest.importorskip("gguf")
    path = VALID / name
    r, _ = inspect(path, "--json")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    j = json.loads(r.stdout)
    ref = gguf.GGUFReader(str(path))

    assert j["version"] == ref.fields["GGUF.version"].contents()
    assert j["alignment"] == ref.alignment
    ref_meta = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert list(j["metadata"].keys()) == list(ref_meta.keys()), "same keys in file order"
    for key, field in ref_meta.items():
        if key in KNOWN_JSON_BUGS:
            continue
        want = field.contents()
        got = flatten(j["metadata"][key])  # gguf-py flattens nested arrays
        assert same(got, want), f"{key}: strata {got!r}, gguf-py {want!r}"

    assert len(j["tensors"]) == len(ref.tensors)
    for t, rt in zip(j["tensors"], ref.tensors):
        assert t["name"] == rt.name
        assert t["type_id"] == int(rt.tensor_type)
        assert t["shape"] == [int(d) for d in rt.shape]
        assert t["bytes"] == int(rt.n_bytes)
        assert t["offset"] + ref.data_offset == rt.data_offset
        assert t["part"] == 0


def test_inspect_json_u64_array_elements():
    r, _ = inspect(VALID / "all_types_v3.gguf", "--json")
    assert json.loads(r.stdout)["metadata"]["test.arr.u64"] == [2**64 - 1, 0]


def test_inspect_json_survives_non_utf8_strings():
    """GGUF strings are not validated as UTF-8 by any reader; the JSON output must replace bad bytes, not abort."""
    r, _ = inspect(VALID / "invalid_utf8_v3.gguf", "--json")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    j = json.loads(r.stdout.decode("utf-8"))
    assert j["metadata"]["test.tokens"][2] == "ok"
    assert len(j["tensors"]) == 1


# --- hostile sparse files ----------------------------------------------------------

def _limit_heap():
    import resource
    # Heap (brk and private anonymous mappings) only: mapping the 1 TiB file itself is fine.
    resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))


@pytest.mark.parametrize("name,head,size,needles", mk.sparse_cases(), ids=[c[0] for c in mk.sparse_cases()])
def test_sparse_file_is_refused_without_exhausting_memory(tmp_path, name, head, size, needles):
    path = tmp_path / name
    path.write_bytes(head)
    try:
        os.truncate(path, size)
    except OSError as e:
        pytest.skip(f"no sparse files in {tmp_path}: {e}")
    t0 = time.monotonic()
    r = subprocess.run([strata_bin(), "inspect", str(path)], capture_output=True, timeout=30, preexec_fn=_limit_heap)
    assert time.monotonic() - t0 < TIME_LIMIT_S
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("strata: error: ") and name in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


# --- split models through the CLI ----------------------------------------------

def write_split(dirpath: Path, prefix: str, n_parts: int, drop: int | None = None, bad_no: int | None = None):
    """A split model as llama.cpp's gguf-split writes it (split.no u16, split.count u16, split.tensors.count i32)."""
    tensors = [mk.Tensor(f"blk.{i}.ffn_up_exps.weight", [32, 2, 3], mk.GGML_Q8_0) for i in range(n_parts * 2)]
    paths = []
    for p in range(n_parts):
        kvs = []
        if p == 0:
            kvs += [mk.kv_str("general.architecture", "fixture"), mk.kv_str("general.name", "split")]
        no = bad_no if (bad_no is not None and p == 1) else p
        kvs += [mk.kv_scalar("split.no", mk.U16, no), mk.kv_scalar("split.count", mk.U16, n_parts),
                mk.kv_scalar("split.tensors.count", mk.I32, len(tensors))]
        path = dirpath / f"{prefix}-{p + 1:05d}-of-{n_parts:05d}.gguf"
        path.write_bytes(mk.Gguf(kvs=kvs, tensors=tensors[2 * p:2 * p + 2]).render())
        paths.append(path)
    if drop is not None:
        paths[drop].unlink()
    return paths, tensors


def test_split_model_joins_from_any_part(tmp_path):
    paths, tensors = write_split(tmp_path, "m", 3)
    for entry in paths:
        r, _ = inspect(entry, "--json")
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        j = json.loads(r.stdout)
        assert [p["path"] for p in j["parts"]] == [str(p) for p in paths]
        assert [t["name"] for t in j["tensors"]] == [t.name for t in tensors]
        assert [t["part"] for t in j["tensors"]] == [0, 0, 1, 1, 2, 2]
        assert j["metadata"]["general.name"] == "split"


def test_split_model_missing_part_names_it(tmp_path):
    paths, _ = write_split(tmp_path, "m", 3, drop=1)
    r, _ = inspect(paths[0])
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("strata: error: ")
    assert str(paths[1]) in err and "missing part 2 of 3" in err


def test_split_model_wrong_split_no(tmp_path):
    paths, _ = write_split(tmp_path, "m", 3, bad_no=2)
    r, _ = inspect(paths[2])
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and str(paths[1]) in err and "split.no" in err and "expected 1/3, got 2/3" in err
