"""End-to-end: `strata bench` on a tiny model: the llama-bench-style table,
the JSON record, the bandwidth probe beside the figures, and bad input. Only
structure is checked, never speed."""
import json
import os
import re
import subprocess

import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])


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
    m = re.search(r"DRAM read probe: ([\d.]+) GB/s \(median of 3 passes over 64.00 MiB, (\d+) threads, (avx2|sse2) loads\)",
                  p.stdout)
    assert m and float(m.group(1)) > 0, p.stdout
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
    assert pr["kernel"] in ("avx2", "sse2") and pr["threads"] >= 1
    pp, tg = j["tests"]
    assert (pp["test"], pp["n_prompt"], pp["n_gen"]) == ("pp16", 16, 0)
    assert (tg["test"], tg["n_prompt"], tg["n_gen"]) == ("tg4", 0, 4)
    for t in (pp, tg):
        assert t["repetitions"] == 2 and len(t["samples_s"]) == 2 and len(t["samples_ts"]) == 2
        assert t["avg_ts"] == pytest.approx(sum(t["samples_ts"]) / 2)
        assert t["stddev_ts"] >= 0
    assert pp["gbps"] is None and pp["pct_of_probe"] is None
    assert tg["gbps"] == pytest.approx(tg["avg_ts"] * m["active_bytes_per_token"] / 1e9)
    assert tg["pct_of_probe"] == pytest.approx(100 * tg["gbps"] / pr["median_gbps"])


def test_one_test_only(model):
    p = run("bench", "-m", model, "-p", 0, "-n", 4, "-r", 1, "--json", "--probe-mib", 16, "--probe-runs", 1)
    assert [t["test"] for t in json.loads(p.stdout)["tests"]] == ["tg4"]


def test_errors_are_one_line(model, tmp_path):
    for args, want in [(["-m", tmp_path / "missing.gguf"], "missing.gguf"),
                       (["-m", model, "-p", 0, "-n", 0], "expected -p or -n above 0")]:
        p = run("bench", *args, "--probe-mib", 16, "--probe-runs", 1, check=False)
        assert p.returncode == 1, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("strata: error:") and want in lines[0], p.stderr
