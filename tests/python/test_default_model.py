"""Golden test on the default real model, SmolLM2-135M-Instruct Q4_1 (llama
architecture), fetched by scripts/fetch-default-model.sh when it is missing
(a failed fetch fails the test; it never skips).

The expected greedy continuation was checked token for token against an
independent NumPy forward pass (tests/python/smollm2_reference.py) over the
weights as the gguf package dequantizes them.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SOURCE = Path(os.environ.get("STRATA_SOURCE_DIR", Path(__file__).resolve().parents[2]))

PROMPT = "The capital of France is"
PROMPT_IDS = [504, 3575, 282, 4649, 314]
GREEDY_IDS = [7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34, 32, 33, 40, 29, 32, 33]
GREEDY_TEXT = "The capital of France is Paris.\n\nThe answer is: 2018-01\n"

# A plain English passage (written for this test) for a short perplexity run.
PASSAGE = """The river starts high in the mountains, where snow melts in the spring and
runs down through narrow valleys. Farmers along its banks have used the water
for hundreds of years to grow wheat, barley and vegetables. In the summer the
river is slow and warm, and children swim in it after school. In the autumn the
rains come back and the water rises again. The old stone bridge in the middle of
the town has survived many floods. People say that it was built by the same
family that built the church, and that the stones came from a quarry on the
other side of the hill. Today a new road crosses the river a little further
north, but most people still prefer to walk over the old bridge on their way to
the market, where they buy bread, cheese, fruit and fish every Saturday morning.
"""


def run(*args, check=True, timeout=300):
    p = subprocess.run([STRATA, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


@pytest.fixture(scope="module")
def model():
    p = subprocess.run([str(SOURCE / "scripts" / "fetch-default-model.sh")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, f"fetch-default-model.sh failed: {p.stderr}"
    path = SOURCE / p.stdout.strip().splitlines()[-1]
    assert path.is_file(), path
    return path


def test_fetch_is_idempotent(model):
    before = model.stat().st_mtime_ns
    p = subprocess.run([str(SOURCE / "scripts" / "fetch-default-model.sh")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "fetching" not in p.stderr, p.stderr
    assert model.stat().st_mtime_ns == before


def test_architecture_and_tokenizer(model):
    p = run("inspect", "--no-tensors", model)
    assert re.search(r"architecture:\s+llama", p.stdout)
    assert "layers 30, embedding 576" in p.stdout
    assert re.search(r"tokenizer:\s+gpt2 \(pre smollm\), 49152 tokens", p.stdout)
    ids = run("tokenize", "-m", model, "-p", PROMPT, "--ids").stdout
    assert eval(ids) == PROMPT_IDS


def test_greedy_continuation(model):
    p = run("run", "-m", model, "-p", PROMPT, "-n", len(GREEDY_IDS), "--temp", 0)
    assert p.stdout == GREEDY_TEXT
    ids = run("run", "-m", model, "--tokens", " ".join(map(str, PROMPT_IDS)), "-n", len(GREEDY_IDS), "--temp", 0)
    assert [int(x) for x in ids.stdout.split()] == GREEDY_IDS


def test_perplexity_of_english_text(model, tmp_path):
    text = tmp_path / "passage.txt"
    text.write_text(PASSAGE)
    p = run("perplexity", "-m", model, "-f", text, "-c", 64, "--chunks", 2)
    m = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", p.stdout)
    assert m, p.stdout
    # A trained model on plain English: far below the 49152 of a uniform guess.
    assert 2 < float(m.group(1)) < 60, p.stdout
