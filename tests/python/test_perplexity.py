"""End-to-end: `strata perplexity` on tiny models with real vocabularies.

The base log-probability file is read here by an independent reader written
from the layout of llama.cpp's `--kl-divergence-base` files:
  "_logits_", int32 n_ctx, int32 n_vocab, int32 n_chunk,
  int32 tokens[n_chunk * n_ctx],
  per window, for positions n_ctx/2 .. n_ctx-2: float32 scale, float32 min,
  uint16 q[n_vocab] padded to an even count; log p = min + scale * q.
"""
import math
import os
import random
import re
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest

STRATA = os.path.abspath(os.environ["STRATA_BIN"])
SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab"
SPM = VOCAB / "ggml-vocab-llama-spm.gguf"  # adds BOS, 32000 tokens
GPT2 = VOCAB / "ggml-vocab-gpt-2.gguf"     # no BOS, 50257 tokens (odd: rows are padded)

WORDS = ("the quick brown fox jumps over a lazy dog and then runs into the forest where many tall trees "
         "grow while small birds sing their songs of morning light, rivers flow; people walk home.").split()


def run(*args, check=True):
    p = subprocess.run([STRATA, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def write_text(path, n_words, seed=1):
    rng = random.Random(seed)
    path.write_text(" ".join(rng.choice(WORDS) for _ in range(n_words)) + "\n")
    return path


def mkmodel(path, vocab, dtype="f32", seed=7):
    run("mkmodel", "--preset", "tiny-llama", "--vocab-from", vocab, "--type", dtype, "--seed", seed, "-q", "-o", path)
    return path


def read_base(path):
    """The independent reader of the llama.cpp layout."""
    b = Path(path).read_bytes()
    assert b[:8] == b"_logits_"
    n_ctx, n_vocab, n_chunk = np.frombuffer(b, "<i4", 3, 8)
    off = 20
    tokens = np.frombuffer(b, "<i4", n_chunk * n_ctx, off).reshape(n_chunk, n_ctx)
    off += 4 * n_chunk * n_ctx
    nv = 2 * ((n_vocab + 1) // 2) + 4
    n_scored = n_ctx - 1 - n_ctx // 2
    rows = np.frombuffer(b, "<u2", n_chunk * n_scored * nv, off).reshape(n_chunk, n_scored, nv)
    assert off + rows.nbytes == len(b), "trailing or missing bytes"
    head = rows[:, :, :4].copy().view("<f4")  # [..., 0] scale, [..., 1] min log-prob
    return dict(n_ctx=int(n_ctx), n_vocab=int(n_vocab), n_chunk=int(n_chunk), tokens=tokens,
                scale=head[:, :, 0], min_lp=head[:, :, 1], q=rows[:, :, 4:4 + n_vocab], pad=rows[:, :, 4 + n_vocab:])


def write_base(path, d):
    """Writes a base file back in the same layout (to make modified copies)."""
    n_vocab = d["n_vocab"]
    nv = 2 * ((n_vocab + 1) // 2) + 4
    rows = np.zeros(d["q"].shape[:2] + (nv,), "<u2")
    head = np.stack([d["scale"], d["min_lp"]], axis=-1).astype("<f4")
    rows[:, :, :4] = head.view("<u2")
    rows[:, :, 4:4 + n_vocab] = d["q"]
    Path(path).write_bytes(b"_logits_" + np.array([d["n_ctx"], n_vocab, d["n_chunk"]], "<i4").tobytes() +
                           d["tokens"].astype("<i4").tobytes() + rows.tobytes())


def parse_ppl(out):
    chunks = [float(x) for x in re.findall(r"\[\d+\]([\d.]+),", out)]
    m = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", out)
    assert m, out
    return chunks, float(m.group(1)), float(m.group(2))


def parse_kld(out):
    num = r"(-?[\d.]+(?:e[-+]?\d+)?)"
    get = lambda label: float(re.search(re.escape(label) + r"\s*:\s*" + num, out).group(1))
    same = re.search(r"Same top token\s*:\s*" + num + r" \+/- " + num + r" % \((\d+) of (\d+)\)", out)
    return dict(kld=get("Mean KLD"), kld_max=get("Maximum KLD"), kld_median=get("Median  KLD"),
                ppl_q=get("Mean PPL(Q)"), ppl_base=get("Mean PPL(base)"),
                same_top=float(same.group(1)), n_same=int(same.group(3)), count=int(same.group(4)))


def requantize(src, dst, qtype=gguf.GGMLQuantizationType.Q8_0):
    """A copy of an f32 model with every matrix quantized by the gguf package."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, f.contents(), f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(name, f.contents(), f.types[0])
    for t in r.tensors:
        data = np.array(t.data)
        if data.ndim >= 2 and t.tensor_type == gguf.GGMLQuantizationType.F32:
            w.add_tensor(t.name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.fixture(scope="module")
def spm(tmp_path_factory):
    d = tmp_path_factory.mktemp("spm")
    model = mkmodel(d / "f32.gguf", SPM)
    text = write_text(d / "text.txt", 600)
    base = d / "base.kld"
    p = run("perplexity", "-m", model, "-f", text, "-c", 64, "--chunks", 4, "--kl-divergence-base", base)
    return dict(dir=d, model=model, text=text, base=base, out=p.stdout, err=p.stderr)


def test_running_values_and_final_estimate(spm):
    chunks, ppl, err = parse_ppl(spm["out"])
    assert len(chunks) == 4
    assert ppl == pytest.approx(chunks[-1], abs=1e-4)
    assert ppl > 1 and 0 < err < ppl
    assert "BOS first" in spm["err"] and "4 windows of 64, 31 scored per window" in spm["err"]
    # The same run without writing a base file gives the same figures.
    again = run("perplexity", "-m", spm["model"], "-f", spm["text"], "-c", 64, "--chunks", 4)
    assert parse_ppl(again.stdout) == (chunks, ppl, err)


def test_base_file_layout(spm):
    d = read_base(spm["base"])
    assert (d["n_ctx"], d["n_vocab"], d["n_chunk"]) == (64, 32000, 4)
    # Tokens are the text's tokenization (BOS at the very start, as the
    # vocabulary adds it), window after window, without BOS substitution.
    ids = eval(run("tokenize", "-m", spm["model"], "-f", spm["text"], "--ids").stdout)
    assert d["tokens"].reshape(-1).tolist() == ids[:4 * 64]
    assert ids[0] == 1 and d["tokens"][1, 0] != 1
    # Each row: the best token at the top level, a range of at most 16 nats,
    # and probabilities that sum to 1 over the resolved tokens.
    assert np.all(d["scale"] > 0) and np.all(d["scale"] * 65535 <= 16.0001)
    assert np.all(d["q"].max(axis=-1) == 65535)
    lp = d["min_lp"][..., None] + d["scale"][..., None] * d["q"]
    top = lp.max(axis=-1)
    assert np.allclose(np.log(np.where(lp > -16, np.exp(lp), 0).sum(axis=-1)), 0, atol=2e-3)
    assert np.all(top <= 1e-4)
    assert d["pad"].size == 0  # even vocabulary: no padding
    # The PPL printed is the one the stored rows give (to 16-bit rounding).
    nll = [-lp[c, j, d["tokens"][c, 32 + j + 1]] for c in range(4) for j in range(31)]
    assert math.exp(np.mean(nll)) == pytest.approx(parse_ppl(spm["out"])[1], rel=1e-3)


def test_model_against_itself(spm):
    p = run("perplexity", "-m", spm["model"], "--kl-divergence-base", spm["base"], "--kl-divergence")
    k = parse_kld(p.stdout)
    assert abs(k["kld"]) < 1e-5 and k["kld_max"] < 1e-4
    assert k["same_top"] == 100.0 and k["n_same"] == k["count"] == 4 * 31
    assert k["ppl_q"] == pytest.approx(parse_ppl(spm["out"])[1], rel=1e-6)
    # --chunks limits the windows compared.
    p2 = run("perplexity", "-m", spm["model"], "--kl-divergence-base", spm["base"], "--kl-divergence", "--chunks", 2)
    assert parse_kld(p2.stdout)["count"] == 2 * 31


def test_each_window_starts_with_bos(spm, tmp_path):
    """Changing the stored first token of a window changes nothing when the
    vocabulary adds BOS (it is replaced), but changes the scores when not."""
    d = read_base(spm["base"])
    d["tokens"] = d["tokens"].copy()
    d["tokens"][2, 0] = 1000
    write_base(tmp_path / "edited.kld", d)
    k = parse_kld(run("perplexity", "-m", spm["model"], "--kl-divergence-base", tmp_path / "edited.kld",
                      "--kl-divergence").stdout)
    assert abs(k["kld"]) < 1e-5 and k["same_top"] == 100.0

    model = mkmodel(tmp_path / "gpt2.gguf", GPT2)
    text = write_text(tmp_path / "text.txt", 400, seed=2)
    base = tmp_path / "gpt2.kld"
    p = run("perplexity", "-m", model, "-f", text, "-c", 64, "--chunks", 3, "--kl-divergence-base", base)
    assert "BOS first" not in p.stderr
    g = read_base(base)
    assert g["n_vocab"] == 50257 and g["pad"].shape[-1] == 1 and not g["pad"].any()
    g["tokens"] = g["tokens"].copy()
    g["tokens"][1, 0] = (int(g["tokens"][1, 0]) + 1) % 50257
    write_base(tmp_path / "gpt2-edited.kld", g)
    k = parse_kld(run("perplexity", "-m", model, "--kl-divergence-base", tmp_path / "gpt2-edited.kld",
                      "--kl-divergence").stdout)
    assert k["kld"] > 1e-6


def test_lower_precision_copies_have_small_kld(spm, tmp_path):
    """An f16 copy (mkmodel, same seed: the same weights rounded) and a q8_0
    copy (quantized by the gguf package) of the f32 base model."""
    f16 = mkmodel(tmp_path / "f16.gguf", SPM, "f16")
    q8 = requantize(spm["model"], tmp_path / "q8_0.gguf")
    k16, k8 = (parse_kld(run("perplexity", "-m", m, "--kl-divergence-base", spm["base"], "--kl-divergence").stdout)
               for m in (f16, q8))
    assert 0 < k16["kld"] < k8["kld"] < 1e-3, (k16, k8)
    # The tiny random model's distributions are nearly flat (PPL near the
    # vocabulary size), so q8_0 rounding flips some close top tokens.
    assert k16["same_top"] >= 95.0 and k8["same_top"] >= 80.0, (k16, k8)
    assert k16["ppl_q"] == pytest.approx(k16["ppl_base"], rel=0.01)
    assert k8["ppl_q"] == pytest.approx(k8["ppl_base"], rel=0.01)


def one_error_line(p, want):
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strata: error:") and want in lines[0], p.stderr


def test_bad_inputs(spm, tmp_path):
    short = write_text(tmp_path / "short.txt", 20)
    one_error_line(run("perplexity", "-m", spm["model"], "-f", short, "-c", 64, check=False), "expected at least 128 tokens")
    one_error_line(run("perplexity", "-m", spm["model"], "-f", tmp_path / "missing.txt", check=False), "cannot open")
    one_error_line(run("perplexity", "-m", spm["model"], check=False), "expected -f TEXT")
    one_error_line(run("perplexity", "-m", spm["model"], "--kl-divergence", check=False), "--kl-divergence-base")
    one_error_line(run("perplexity", "-m", spm["model"], "--kl-divergence-base", tmp_path / "none.kld",
                       "--kl-divergence", check=False), "cannot open")
    # A base file of another vocabulary.
    other = mkmodel(tmp_path / "gpt2.gguf", GPT2)
    one_error_line(run("perplexity", "-m", other, "--kl-divergence-base", spm["base"], "--kl-divergence", check=False),
                   "expected log-probabilities over this model's 50257 tokens, got 32000")
    # Not a base file, and a truncated one.
    one_error_line(run("perplexity", "-m", spm["model"], "--kl-divergence-base", spm["model"], "--kl-divergence",
                       check=False), "_logits_")
    cut = tmp_path / "cut.kld"
    cut.write_bytes(spm["base"].read_bytes()[:-10])
    one_error_line(run("perplexity", "-m", spm["model"], "--kl-divergence-base", cut, "--kl-divergence", check=False),
                   "expected")
    one_error_line(run("perplexity", "-m", spm["model"], "--kl-divergence-base", spm["base"], "--kl-divergence",
                       "-c", 32, check=False), "-c: expected 64")
    # A model without a tokenizer cannot score text.
    bare = tmp_path / "bare.gguf"
    run("mkmodel", "--preset", "tiny-llama", "--type", "f32", "-q", "-o", bare)
    one_error_line(run("perplexity", "-m", bare, "-f", spm["text"], check=False), "needs the model's tokenizer")
