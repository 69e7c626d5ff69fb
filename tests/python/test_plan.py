"""End-to-end: `strata plan`. Report snapshots (text, md, json) for fixed
inputs, the model description of a real GGUF file against `strata inspect`,
the HTML report screenshotted in headless Chromium, the beyond-one-box
sketch, and bad input. Set STRATA_UPDATE_SNAPSHOTS=1 to rewrite the
snapshots after an intended change (and review the diff)."""
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SRC = os.environ.get("STRATA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLAN = os.path.join(SRC, "tests", "fixtures", "plan")
HW = [os.path.join(PLAN, f) for f in ("epyc-1s-8ch-4090.yaml", "xeon-2s-cpu-only.yaml", "desktop-256g.yaml")]


def run(*args, check=True, cwd=None):
    p = subprocess.run([STRATA, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def compare_args(fmt):
    return ["plan", "--model", "deepseek-v3", "--quant", "Q4_K_M", "--compare", *HW, "--context", 16384,
            "--no-nvme", "--format", fmt]


@pytest.mark.parametrize("fmt,ext", [("text", "txt"), ("md", "md"), ("json", "json")])
def test_snapshot(fmt, ext):
    out = run(*compare_args(fmt)).stdout
    # Twice: the report is a pure function of its inputs.
    assert run(*compare_args(fmt)).stdout == out
    path = os.path.join(PLAN, f"deepseek-v3-q4_k_m-compare.{ext}")
    if os.environ.get("STRATA_UPDATE_SNAPSHOTS") == "1":
        with open(path, "w") as f:
            f.write(out)
    with open(path) as f:
        want = f.read()
    assert out == want, f"report differs from {path}; rerun with STRATA_UPDATE_SNAPSHOTS=1 if intended"


def test_json_report_content():
    j = json.loads(run(*compare_args("json")).stdout)
    m = j["model"]
    assert m["name"].startswith("DeepSeek-V3") and m["quant"] == "Q4_K_M" and m["attention"] == "MLA"
    assert abs(m["total_params"] / 1e9 - 671.0) < 671 * 0.005
    assert m["kv_bytes_per_token"] == 61 * 576 * 2
    names = [c["hardware"] for c in j["candidates"]]
    assert len(names) == 3 and names[-1].startswith("Ryzen 9 9950X")  # infeasible ranks last
    gpu_box = j["candidates"][0]
    assert gpu_box["feasible"]
    pl = gpu_box["placement"]
    # Everything every token reads is on the GPU, within its VRAM.
    assert pl["n_gpu_layers"] == 61 and pl["output_on_gpu"]
    vram = pl["gpu_weight_bytes"] + pl["gpu_kv_bytes"] + pl["gpu_expert_bytes"] + pl["gpu_scratch_bytes"]
    assert vram <= gpu_box["capacity"]["vram_total_bytes"]
    for used, cap in zip(gpu_box["node_used_bytes"], gpu_box["capacity"]["node_bytes"]):
        assert used <= cap
    d = gpu_box["decode_single"]["tok_s"]
    assert 0 < d["lo"] <= d["value"] <= d["hi"]
    # The -ot regex keeps exactly the CPU layers' experts on the CPU.
    ot = re.search(r'-ot "blk\\\.(\(.*\))\\\.ffn_\.\*_exps\\\.=CPU"', gpu_box["llama_cpp"])
    assert ot, gpu_box["llama_cpp"]
    rx = re.compile("^" + ot.group(1) + "$")
    cpu_layers = [L for L in range(61) if rx.match(str(L))]
    assert cpu_layers == [L for L in range(3, 61) if L not in pl["gpu_expert_layers"]]
    # Advice: changes evaluated and sorted best first.
    adv = gpu_box["advice"]
    assert any("second" in a["change"] for a in adv) and any("channels" in a["change"] for a in adv)
    tok = [a["tok_s"] for a in adv if a["feasible"]]
    assert tok == sorted(tok, reverse=True)
    bad = j["candidates"][-1]
    assert not bad["feasible"]
    assert re.search(r"needs \d+ GB DRAM, has \d+ GB usable .*(use \S+ \(\d+ GB\) or )?add \d+ GB", bad["shortfalls"][0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "tiny-deepseek2.gguf"
    run("mkmodel", "--preset", "tiny-deepseek2", "--type", "q8_0", "-q", "-o", path)
    return path


def test_model_file_agrees_with_inspect(tiny):
    j = json.loads(run("plan", "-m", tiny, "--hardware", HW[0], "--format", "json", "--no-advice").stdout)
    ins = json.loads(run("inspect", tiny, "--json").stdout)
    m = j["model"]
    text = json.dumps(ins)
    # inspect's figures: total tensor bytes and the active bytes one decode step reads.
    assert str(m["bytes"]) in text and str(m["active_bytes_per_token"]) in text
    assert m["arch"] == "deepseek2" and m["n_expert"] == 8 and m["n_expert_used"] == 2
    assert j["candidates"][0]["feasible"]


def test_html_screenshot(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium not installed")
    html = tmp_path / "report.html"
    run(*compare_args("html")[:-2], "--format", "html", "-o", html)
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 4 and "<script" not in page
    png = tmp_path / "out.png"
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
                        "--window-size=1280,2000", f"file://{html}"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HOME": str(tmp_path)})
    assert png.exists(), p.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (1280, 2000)
    # Not blank: decode the image and count distinct pixel values.
    raw = b""
    pos = 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            raw += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    pixels = zlib.decompress(raw)
    bpp = {2: 3, 6: 4}[data[25]]
    stride = 1 + w * bpp
    colours = set()
    for y in range(0, h, 7):
        row = pixels[y * stride + 1:(y + 1) * stride]
        for x in range(0, w * bpp, 13 * bpp):
            colours.add(row[x:x + 3])
    assert len(colours) > 8, f"screenshot looks blank ({len(colours)} colours)"


def test_beyond_one_box():
    p = run("plan", "--model", "deepseek-v3", "--quant", "Q4_K_M", "--hardware", HW[0], "--users", 200,
            "--tok-per-user", 20, "--context", 8192, "--no-advice")
    out = p.stdout
    assert "Beyond one box" in out and "no candidate reaches 200 users x 20.0 tok/s" in out
    assert "sglang.launch_server" in out and "--ep-size" in out and "vllm serve" in out
    n = int(re.search(r"plan (\d+) GPUs", out).group(1))
    assert n >= 16 and n % 8 == 0


@pytest.mark.parametrize("args,needle", [
    (["--model", "gpt-5", "--hardware", HW[0]], "--model: expected one of deepseek-v3"),
    (["--model", "deepseek-v3", "--quant", "Q3_X", "--hardware", HW[0]], "--quant: expected one of"),
    (["--model", "deepseek-v3"], "expected hardware: --this-machine, --hardware FILE"),
    (["--hardware", HW[0]], "expected a model: -m FILE or --model NAME"),
    (["-m", "/nonexistent.gguf", "--hardware", HW[0]], "/nonexistent.gguf"),
    (["--model", "deepseek-v3", "--hardware", os.path.join(SRC, "tests/fixtures/hardware/bad/unknown-field.yaml")],
     "memroy"),
    (["--model", "deepseek-v3", "--hardware", "/nonexistent.yaml"], "/nonexistent.yaml"),
    (["--model", "deepseek-v3", "--hardware", HW[0], "--validate"], "--validate: expected --this-machine"),
])
def test_bad_input(args, needle):
    p = run("plan", *args, check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strata: error: ") and needle in lines[0], p.stderr


def test_bad_gguf_names_the_file():
    bad = os.path.join(SRC, "tests", "fixtures", "malformed")
    f = sorted(os.listdir(bad))[0]
    p = run("plan", "-m", os.path.join(bad, f), "--hardware", HW[0], check=False)
    assert p.returncode != 0 and f in p.stderr and p.stderr.count("\n") == 1
