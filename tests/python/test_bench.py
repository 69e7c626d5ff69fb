"""End-to-end: `strata bench` on a tiny model: the llama-bench-style table,
the JSON record, the bandwidth probe beside the figures, and bad input. Only
structure is checked, never speed."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab"


def run(*args, check=True):
    p = subprocess.run([STRATA, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny-qwen3moe.gguf"
    run("mkmodel", "--preset", "tiny-qwen3moe", "--type", "q8_0", "-q", "-o", path)
    return path


def test_table(model):
    p = run("bench", "-m", model, "-p", 32, "-n", 8, "-r", 3, "--probe-mib", 64, "--probe-runs", 3)
    lines = p.stdout.splitlines()
    assert lines[0] == "| model | size | params | backend | test | t/s | active/tok | GB/s | % of probe |"
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:4]]
    assert [r[4] for r in rows] == ["pp32", "tg8"]
    for r in rows:
        assert r[0].startswith("qwen3moe ") and r[0].endswith(" q8_0")
        assert re.fullmatch(r"[\d.]+ MiB", r[1]) and r[3] == "CPU"
        assert re.fullmatch(r"[\d.]+ ± [\d.]+", r[5]) and float(r[5].split()[0]) > 0
    pp, tg = rows
    assert pp[6:] == ["-", "-", "-"]
    assert re.fullmatch(r"[\d.]+ (KiB|MiB)", tg[6]) and float(tg[7]) > 0 and re.fullmatch(r"[\d.]+%", tg[8])
    m = re.search(r"DRAM read probe: ([\d.]+) GB/s \(the higher of ([\d.]+) before the tests and ([\d.]+) after; "
                  r"median of 3 passes over 64.00 MiB, (\d+) threads, ((?:avx512|avx2|sse2)(?:\+prefetch)?) loads, "
                  r"the fastest read loop\)", p.stdout)
    assert m and float(m.group(1)) > 0, p.stdout
    assert float(m.group(1)) == max(float(m.group(2)), float(m.group(3)))
    # The percentage is the tg GB/s over the probe's median.
    assert float(tg[8].rstrip("%")) == pytest.approx(100 * float(tg[7]) / float(m.group(1)), abs=0.1)


def test_json(model):
    p = run("bench", "-m", model, "-p", 16, "-n", 4, "-r", 2, "--json", "--probe-mib", 32, "--probe-runs", 2)
    j = json.loads(p.stdout)
    assert j["backend"] == "CPU"
    m = j["model"]
    assert m["architecture"] == "qwen3moe" and m["type"] == "q8_0"
    assert 0 < m["active_bytes_per_token"] < m["size_bytes"] and m["n_params"] > 0
    pr = j["probe"]
    assert pr["buffer_bytes"] == 32 << 20 and len(pr["samples_gbps"]) == 2 and pr["median_gbps"] > 0
    assert pr["median_gbps"] == max(pr["before_median_gbps"], pr["after_median_gbps"])
    assert re.fullmatch(r"(avx512|avx2|sse2)(\+prefetch)?", pr["kernel"]) and pr["threads"] >= 1
    pp, tg = j["tests"]
    assert (pp["test"], pp["n_prompt"], pp["n_gen"]) == ("pp16", 16, 0)
    assert (tg["test"], tg["n_prompt"], tg["n_gen"]) == ("tg4", 0, 4)
    for t in (pp, tg):
        assert t["repetitions"] == 2 and len(t["samples_s"]) == 2 and len(t["samples_ts"]) == 2
        assert t["avg_ts"] == pytest.approx(sum(t["samples_ts"]) / 2)
        assert t["stddev_ts"] >= 0
    assert pp["gbps"] is None and pp["pct_of_probe"] is None
    assert pp["n_depth"] == 0 and tg["n_depth"] == 0 and pp["kv_bytes_per_token"] is None
    # A token reads the active weights and the keys and values of its history.
    assert 0 < tg["kv_bytes_per_token"] < m["active_bytes_per_token"]
    assert tg["gbps"] == pytest.approx(tg["avg_ts"] * (m["active_bytes_per_token"] + tg["kv_bytes_per_token"]) / 1e9)
    assert tg["pct_of_probe"] == pytest.approx(100 * tg["gbps"] / pr["median_gbps"])


def test_one_test_only(model):
    p = run("bench", "-m", model, "-p", 0, "-n", 4, "-r", 1, "--json", "--probe-mib", 16, "--probe-runs", 1)
    assert [t["test"] for t in json.loads(p.stdout)["tests"]] == ["tg4"]


def test_parallel_sequences(model):
    # -P 1,3: tg4 alone, then 3 sequences decoded together; the latter has no
    # per-token byte figure (sequences share experts) but a speedup over one.
    p = run("bench", "-m", model, "-p", 0, "-n", 4, "-r", 2, "-P", "1,3", "--probe-mib", 16, "--probe-runs", 1)
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in p.stdout.splitlines()[2:4]]
    assert [r[4] for r in rows] == ["tg4", "tg4x3"], p.stdout
    assert rows[1][6:] == ["-", "-", "-"] and float(rows[0][7]) > 0
    m = re.search(r"tg4x3: 3 sequences together make ([\d.]+)x the tokens/s of one", p.stdout)
    ts = [float(r[5].split()[0]) for r in rows]
    assert m and float(m.group(1)) == pytest.approx(ts[1] / ts[0], rel=0.01, abs=0.01), p.stdout
    j = json.loads(run("bench", "-m", model, "-p", 0, "-n", 2, "-r", 1, "-P", "2,1", "--json", "--profile",
                       "--probe-mib", 16, "--probe-runs", 1).stdout)
    two, one = j["tests"]
    assert (two["test"], two["n_parallel"], one["test"], one["n_parallel"]) == ("tg2x2", 2, "tg2", 1)
    assert two["gbps"] is None and one["gbps"] > 0 and "speedup_over_one_sequence" not in one
    assert two["speedup_over_one_sequence"] == pytest.approx(two["avg_ts"] / one["avg_ts"])
    assert two["profile"]["tokens"] == 4 and two["profile"]["forward_calls"] == 2
    p = run("bench", "-m", model, "-P", "1,0", check=False)
    assert p.returncode != 0 and "--parallel: Value 0 not in range 1 to 4096" in p.stderr, p.stderr


def test_depth(model):
    # -d 20: every test starts with 20 positions cached; decode steps read them.
    p = run("bench", "-m", model, "-p", 8, "-n", 4, "-d", 20, "-r", 2, "-P", "1,2", "--probe-mib", 16,
            "--probe-runs", 1)
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in p.stdout.splitlines()[2:5]]
    assert [r[4] for r in rows] == ["pp8 @ d20", "tg4 @ d20", "tg4x2 @ d20"], p.stdout
    assert "tg4 with 1 sequence at depth 20, 2 repetitions" in p.stderr, p.stderr
    j0, j20 = (json.loads(run("bench", "-m", model, "-p", 0, "-n", 4, "-d", d, "-r", 1, "--json", "--probe-mib", 16,
                              "--probe-runs", 1).stdout) for d in (0, 20))
    t0, t20 = j0["tests"][0], j20["tests"][0]
    assert (t0["test"], t20["test"], t20["n_depth"]) == ("tg4", "tg4 @ d20", 20)
    # Steps attend over 1..4 positions on average 2.5; at depth 20, 22.5.
    assert t20["kv_bytes_per_token"] == pytest.approx(t0["kv_bytes_per_token"] * 22.5 / 2.5)
    p = run("bench", "-m", model, "-d", -1, check=False)
    assert p.returncode != 0 and "--n-depth: Value -1 not in range 0 to 1048576" in p.stderr, p.stderr


def test_errors_are_one_line(model, tmp_path):
    for args, want in [(["-m", tmp_path / "missing.gguf"], "missing.gguf"),
                       (["-m", model, "-p", 0, "-n", 0], "expected -p or -n above 0")]:
        p = run("bench", *args, "--probe-mib", 16, "--probe-runs", 1, check=False)
        assert p.returncode == 1, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("strata: error:") and want in lines[0], p.stderr


PROFILE_COLUMNS = ["routed experts", "attention", "dense & shared FFN", "output head", "other", "total"]


def test_profile_table(model):
    p = run("bench", "-m", model, "-p", 16, "-n", 4, "-r", 2, "--profile", "--threads", 1,
            "--probe-mib", 16, "--probe-runs", 1)
    lines = p.stdout.splitlines()
    assert "compute: 1 thread" in p.stdout
    head = lines.index("| test | " + " | ".join(PROFILE_COLUMNS) + " |")
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in lines[head + 2:head + 4]]
    assert [r[0] for r in rows] == ["pp16", "tg4"]
    for r in rows:
        parts = [re.fullmatch(r"([\d.]+) \((\d+)%\)", c) for c in r[1:6]]
        assert all(parts), r
        ms = [float(m.group(1)) for m in parts]
        total = float(r[6])
        assert total > 0 and ms[0] > 0 and ms[1] > 0  # a MoE model spends time in experts and attention
        # The categories partition the forward time (printed to 3 decimals).
        assert sum(ms) == pytest.approx(total, abs=0.01)
    for name in ("pp16", "tg4"):
        assert re.search(name + r": [\d.]+ pool fork/joins per forward pass \([\d.]+ per layer\), "
                         r"join wait [\d.]+ us per layer", p.stdout), p.stdout


def test_profile_json(model):
    p = run("bench", "-m", model, "-p", 8, "-n", 2, "-r", 1, "--profile", "--json", "--probe-mib", 16,
            "--probe-runs", 1)
    j = json.loads(p.stdout)
    assert j["compute"]["threads"] >= 1 and j["compute"]["summary"]
    for t in j["tests"]:
        prof = t["profile"]
        ms = prof["ms_per_token"]
        assert set(ms) == set(PROFILE_COLUMNS)
        assert sum(v for k, v in ms.items() if k != "total") == pytest.approx(ms["total"], rel=1e-6)
        assert prof["tokens"] == (8 if t["test"] == "pp8" else 2)
        assert prof["pool_ops_per_forward"] >= 0 and prof["join_wait_us_per_layer"] >= 0


def test_kernel_paths(model):
    # oneDNN (prompt batches) is held to the same instructions as the chosen path.
    for isa, want in [("ref", "matmul_ref (reference)"), ("scalar", "qgemm scalar (scalar), prompt batches auto "
                                                                    "(onednn sse41)")]:
        p = run("bench", "-m", model, "-p", 0, "-n", 2, "-r", 1, "--cpu-isa", isa, "--probe-mib", 16,
                "--probe-runs", 1)
        assert re.search(r"compute: \d+ threads? .*" + re.escape(want), p.stdout), p.stdout
    # The environment variable picks the path when --cpu-isa is not given.
    env = dict(os.environ, STRATA_CPU_ISA="ref")
    p = subprocess.run([STRATA, "bench", "-m", str(model), "-p", "0", "-n", "2", "-r", "1", "--probe-mib", "16",
                        "--probe-runs", "1"], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0 and "matmul_ref (reference)" in p.stdout, p.stderr
    # Extensions can be taken away to run what a CPU without them would.
    if cpu_has_avx2():
        env = dict(os.environ, STRATA_CPU_ISA="avx2", STRATA_CPU_DISABLE="avx_vnni")
        p = subprocess.run([STRATA, "bench", "-m", str(model), "-p", "0", "-n", "2", "-r", "1", "--probe-mib", "16",
                            "--probe-runs", "1"], capture_output=True, text=True, timeout=300, env=env)
        assert p.returncode == 0 and "qgemm avx2 (avx2), prompt batches auto (onednn avx2)" in p.stdout, \
            p.stdout + p.stderr


def test_compute_option_errors(model):
    cases = [(["--cpu-isa", "sse9"], "--cpu-isa: "), (["--threads", 4096], "threads (one per physical core), got 4096"),
             (["--prefill-gemm", "mkl"], "--prefill-gemm: unknown prefill GEMM policy 'mkl' (expected auto, native or onednn)"),
             (["--repack", "maybe"], "--repack: unknown value 'maybe' (expected auto, on or off)"),
             (["--cache-type", "q8_0"], "--cache-type: KV cache type: expected f16 or f32, got 'q8_0'")]
    for args, want in cases:
        p = run("bench", "-m", model, "-p", 0, "-n", 1, "-r", 1, *args, "--probe-mib", 16, "--probe-runs", 1,
                check=False)
        assert p.returncode == 1, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("strata: error:") and want in lines[0], p.stderr
    env = dict(os.environ, STRATA_CPU_ISA="sse9")
    p = subprocess.run([STRATA, "run", "-m", str(model), "--tokens", "1 2", "-n", "1"], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 1 and "STRATA_CPU_ISA: " in p.stderr and "expected auto, scalar" in p.stderr, p.stderr
    env = dict(os.environ, STRATA_CPU_DISABLE="avx_vnni,sse9")
    p = subprocess.run([STRATA, "run", "-m", str(model), "--tokens", "1 2", "-n", "1"], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 1 and "STRATA_CPU_DISABLE: unknown extension(s) sse9 (expected" in p.stderr, p.stderr
    env = dict(os.environ, STRATA_PREFILL_GEMM="blas")
    p = subprocess.run([STRATA, "run", "-m", str(model), "--tokens", "1 2", "-n", "1"], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 1 and "STRATA_PREFILL_GEMM: unknown prefill GEMM policy 'blas'" in p.stderr, p.stderr
    env = dict(os.environ, STRATA_CACHE_TYPE="bf16")
    p = subprocess.run([STRATA, "run", "-m", str(model), "--tokens", "1 2", "-n", "1"], capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 1 and "STRATA_CACHE_TYPE: KV cache type: expected f16 or f32, got 'bf16'" in p.stderr, \
        p.stderr


def test_cache_type(model):
    # The KV cache holds f16 entries unless asked otherwise (f32 under the
    # reference kernels); the summary says which, and a decode step at depth
    # counts the cache bytes it reads at the entry size.
    common = ["-p", 0, "-n", 2, "-d", 64, "-r", 1, "--probe-mib", 16, "--probe-runs", 1, "--json"]
    kv = {}
    for args, kind in [([], "f16"), (["--cache-type", "f32"], "f32"), (["--cpu-isa", "ref"], "f32")]:
        j = json.loads(run("bench", "-m", model, *common, *args).stdout)
        assert re.search(r"^\d+ threads? [^,]*, KV cache " + kind + ",", j["compute"]["summary"]), j["compute"]
        kv.setdefault(kind, j["tests"][0]["kv_bytes_per_token"])
    assert kv["f16"] > 0 and kv["f16"] * 2 == kv["f32"], kv
    env = dict(os.environ, STRATA_CACHE_TYPE="f32")
    p = subprocess.run([STRATA, "bench", "-m", str(model), *map(str, common)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0 and "KV cache f32" in p.stdout, p.stdout + p.stderr


def cpu_has_avx2():
    with open("/proc/cpuinfo") as f:
        flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    return {"avx2", "fma", "f16c"} <= set(flags)


def test_repack(tmp_path):
    # Q4_K experts and matrices are repacked where the CPU path has a packed
    # kernel (AVX2 and up), never on the scalar path or with --repack off;
    # the summary says what was done and the placement reports its bytes.
    path = tmp_path / "tiny-qwen3moe-q4k.gguf"
    run("mkmodel", "--preset", "tiny-qwen3moe", "--type", "q4_k", "-q", "-o", path)
    common = ["-p", 16, "-n", 2, "-r", 1, "--probe-mib", 16, "--probe-runs", 1]
    off = run("bench", "-m", path, *common, "--repack", "off")
    assert "repacked" not in off.stdout and "placed" not in off.stderr, off.stdout + off.stderr
    scalar = run("bench", "-m", path, *common, "--repack", "on", "--cpu-isa", "scalar")
    assert "repacked" not in scalar.stdout, scalar.stdout
    if not cpu_has_avx2():
        pytest.skip("no AVX2: no packed kernel on this CPU")
    on = run("bench", "-m", path, *common, "--repack", "on")
    assert re.search(r"experts repacked \(\d+ tensors, 16-row groups\), \d+ matrices repacked", on.stdout), on.stdout
    assert len(re.findall(r"strata: placed [\d.]+ \w+ of weights", on.stderr)) == 2, on.stderr  # experts, matrices
    # auto repacks too (a tiny model fits in memory); the environment sets it.
    env = dict(os.environ, STRATA_REPACK="off")
    p = subprocess.run([STRATA, "bench", "-m", str(path), *map(str, common)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0 and "repacked" not in p.stdout, p.stdout + p.stderr
    auto = run("bench", "-m", path, *common)
    assert "experts repacked" in auto.stdout, auto.stdout
    # The output head of a 50257-token vocabulary is repacked too, all but
    # its last row (3141 groups of 16): 4 attention matrices per layer, 1 head.
    odd = tmp_path / "tiny-qwen3moe-gpt2.gguf"
    run("mkmodel", "--preset", "tiny-qwen3moe", "--type", "q4_k", "-q", "-o", odd, "--vocab-from",
        VOCAB / "ggml-vocab-gpt-2.gguf")
    on = run("bench", "-m", odd, *common, "--repack", "on")
    assert re.search(r", 9 matrices repacked", on.stdout), on.stdout


def test_prefill_gemm_choices(model):
    # A 64-token prompt batch: under auto every product of 32+ rows is timed
    # on both kernels once, and --profile lists what was picked.
    p = run("bench", "-m", model, "-p", 64, "-n", 0, "-r", 1, "--profile", "--probe-mib", 16, "--probe-runs", 1)
    assert "prompt batches auto" in p.stdout, p.stdout
    lines = p.stdout.splitlines()
    head = lines.index("prompt-batch products (policy auto, one thread's estimate per product):")
    choices = [l.strip() for l in lines[head + 1:] if l.startswith("  ")]
    assert choices, p.stdout
    for c in choices:
        m = re.fullmatch(r"(\w+) (\d+)x(\d+), (\d+)(?:-\d+|\+) rows: (qgemm|onednn-f32|onednn-bf16) \((.*)\)", c)
        assert m, c
        times = dict(t.rsplit(" ", 2)[0:2] for t in m.group(6).split(", "))
        assert float(times[m.group(5)]) == min(float(v) for v in times.values()), c
    # --json records the same; the native policy measures nothing.
    p = run("bench", "-m", model, "-p", 64, "-n", 0, "-r", 1, "--profile", "--json", "--prefill-gemm", "native",
            "--probe-mib", 16, "--probe-runs", 1)
    prof = json.loads(p.stdout)["tests"][0]["profile"]
    assert prof["prefill_gemm_policy"] == "native" and prof["prefill_gemm_choices"] == []


def test_prefill_gemm_choice_file(model, tmp_path):
    # auto's choices are kept in a file; a damaged file is named in a warning,
    # the run goes on, and the file is rewritten with this run's choices,
    # which the next run reads back instead of timing again.
    path = tmp_path / "choices.json"
    path.write_text("{")
    env = dict(os.environ, STRATA_GEMM_CHOICES=str(path))
    args = [STRATA, "bench", "-m", str(model), "-p", "64", "-n", "0", "-r", "1", "--profile", "--json",
            "--probe-mib", "16", "--probe-runs", "1"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert f"strata: warning: {path}: expected a strata gemm choice file" in p.stderr, p.stderr
    first = json.loads(p.stdout)["tests"][0]["profile"]["prefill_gemm_choices"]
    recorded = json.loads(path.read_text())
    (machine, choices), = recorded["machines"].items()
    assert len(choices) == len(first) > 0
    # Mark every record with a timing no probe would give: the next run must
    # report it (nothing timed again), and no warning.
    for c in choices:
        c["qgemm_ms"] = 99999.0
    path.write_text(json.dumps(recorded))
    p = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    again = json.loads(p.stdout)["tests"][0]["profile"]["prefill_gemm_choices"]
    assert [c["path"] for c in again] == [c["path"] for c in first]
    assert all(c["qgemm_ms"] == 99999.0 for c in again)
