"""End-to-end: `strata run` on tiny models of every architecture: greedy runs
repeat exactly, a seed reproduces a sampled run, text prompts go through the
model's tokenizer, the stats line is printed, and bad input is one error line."""
import os
import re
import subprocess
from pathlib import Path

import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab"

TINY = ["tiny-deepseek2", "tiny-deepseek2-lite", "tiny-qwen3moe", "tiny-qwen2moe",
        "tiny-mixtral", "tiny-llama", "tiny-qwen2", "tiny-qwen3"]

STATS = re.compile(r"prompt (\d+) tok in [\d.]+ ms \([\d.]+ tok/s\) \| generation (\d+) tok.*\(([\d.]+) tok/s.*"
                   r"time to first token [\d.]+ ms")


def run(*args, check=True):
    p = subprocess.run([STRATA, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


@pytest.mark.parametrize("preset", TINY)
def test_token_ids_greedy_and_seeded(tmp_path, preset):
    model = tmp_path / f"{preset}.gguf"
    run("mkmodel", "--preset", preset, "--type", "q8_0", "-q", "-o", model)
    greedy = [run("run", "-m", model, "--tokens", "1 2 3 4", "-n", 12, "--temp", 0) for _ in range(2)]
    ids = greedy[0].stdout.split()
    assert len(ids) == 12 and all(0 <= int(i) < 512 for i in ids)
    assert greedy[1].stdout == greedy[0].stdout
    m = STATS.search(greedy[0].stderr)
    assert m, greedy[0].stderr
    assert (m.group(1), m.group(2)) == ("4", "12") and float(m.group(3)) > 0
    sampled = [run("run", "-m", model, "--tokens", "1 2 3 4", "-n", 12, "--seed", 5, "--temp", 1.5).stdout
               for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_text_prompt_through_the_tokenizer(tmp_path):
    model = tmp_path / "qwen3moe-gpt2.gguf"
    run("mkmodel", "--preset", "tiny-qwen3moe", "--vocab-from", VOCAB / "ggml-vocab-gpt-2.gguf", "-q", "-o", model)
    p = run("run", "-m", model, "-p", "Hello world", "-n", 8, "--seed", 1, "--ignore-eos")
    assert p.stdout.startswith("Hello world")
    assert len(p.stdout) > len("Hello world\n")
    assert re.search(r"prompt 2 tok", p.stderr), p.stderr


def test_errors_are_one_line(tmp_path):
    model = tmp_path / "llama.gguf"
    run("mkmodel", "--preset", "tiny-llama", "--type", "f32", "-q", "-o", model)
    for args, want in [(["-p", "hi"], "needs a tokenizer"),
                       (["--tokens", "1 x"], "--tokens: expected token ids"),
                       (["--tokens", "1 99999"], "token: expected 0..511, got 99999"),
                       ([], "expected exactly one of -p TEXT or --tokens")]:
        p = run("run", "-m", model, *args, check=False)
        assert p.returncode == 1, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("strata: error:") and want in lines[0], (args, p.stderr)
