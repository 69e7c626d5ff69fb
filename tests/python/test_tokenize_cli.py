"""End-to-end: the real `strata tokenize` on the vocabulary files in
../shared/data/vocab gives the ids of the reference vectors (the models' own
tokenizers), prints `id -> 'piece'` lines, `[ids]` and `['pieces']`, parses
control tokens only with --parse-special, and fails with one line and a
non-zero exit on bad input."""
import functools
import os
import re
import subprocess
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab"
VOCABS = ["gpt-2", "llama-spm", "deepseek-coder", "deepseek-llm", "phi-3", "starcoder"]
SEP = "\n__ggml_vocab_test__\n"


def strata_bin() -> str:
    b = os.environ.get("STRATA_BIN")
    if not b or not os.path.exists(b):
        pytest.skip("STRATA_BIN is not set to the strata executable (ctest sets it)")
    return b


def tokenize(*args, check=True):
    r = subprocess.run([strata_bin(), "tokenize", *map(str, args)], capture_output=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"strata tokenize {args} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r


def vocab_file(name):
    p = VOCAB / f"ggml-vocab-{name}.gguf"
    if not p.exists():
        pytest.skip(f"{p} is not present")
    return p


def vectors(name):
    """(text, ids) pairs of the vector files: inputs separated by SEP (the
    newline before the marker belongs to the separator), one line of ids each."""
    raw = (VOCAB / f"ggml-vocab-{name}.gguf.inp").read_bytes().decode("utf-8")
    inputs = raw.split(SEP)
    if inputs and inputs[-1] == "":
        inputs.pop()
    lines = (VOCAB / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
    outputs = [[int(t) for t in line.split()] for line in lines[: len(inputs)]]
    assert len(inputs) == len(outputs)
    return list(zip(inputs, outputs))


def parse_ids(stdout: bytes):
    s = stdout.decode().strip()
    assert s.startswith("[") and s.endswith("]"), s
    return [int(x) for x in s[1:-1].split(",") if x.strip()]


@pytest.mark.parametrize("name", VOCABS)
def test_ids_match_vectors(tmp_path, name):
    path = vocab_file(name)
    for i, (text, ids) in enumerate(vectors(name)):
        # Through a file, so every byte (leading dashes, newlines) arrives as is.
        f = tmp_path / f"case{i}.txt"
        f.write_bytes(text.encode("utf-8"))
        got = parse_ids(tokenize("-m", path, "-f", f, "--ids", "--no-bos").stdout)
        assert got == ids, f"{name} case {i} {text!r}"


def test_default_output_lines():
    path = vocab_file("llama-spm")
    r = tokenize("-m", path, "-p", "Hello world\nok")
    lines = r.stdout.decode("utf-8").splitlines()
    assert lines[0] == "     1 -> '<s>'"
    assert re.fullmatch(r" *\d+ -> ' Hello'", lines[1]), lines
    pieces = [re.fullmatch(r" *(\d+) -> '(.*)'", line).group(2) for line in lines]
    # Newlines are escaped, so one token is one line.
    assert "\\n" in "".join(pieces) or "\\x0a" in "".join(pieces)
    assert "".join(pieces[1:]).replace("\\n", "\n") == " Hello world\nok"
    assert r.stderr == b""


def test_pieces_and_escapes():
    path = vocab_file("gpt-2")
    r = tokenize("-m", path, "-p", "it's\t\U0001F999", "--pieces")
    out = r.stdout.decode("utf-8").strip()
    # The quote is escaped, the tab written \t, and bytes of a split
    # character as \xNN.
    assert out.startswith("['it', '\\'s', '\\t")
    assert "\\xf0" in out


def test_parse_special_only_on_request():
    path = vocab_file("gpt-2")
    plain = parse_ids(tokenize("-m", path, "-p", "a<|endoftext|>b", "--ids").stdout)
    parsed = parse_ids(tokenize("-m", path, "-p", "a<|endoftext|>b", "--ids", "--parse-special").stdout)
    assert 50256 not in plain
    assert parsed.count(50256) == 1 and len(parsed) == 3


def test_bos_added_unless_no_bos():
    path = vocab_file("deepseek-llm")
    with_bos = parse_ids(tokenize("-m", path, "-p", "Hello", "--ids").stdout)
    without = parse_ids(tokenize("-m", path, "-p", "Hello", "--ids", "--no-bos").stdout)
    assert with_bos == [100000] + without


def one_line_error(r):
    assert r.returncode != 0
    assert r.stdout == b""
    err = r.stderr.decode("utf-8", errors="replace")
    assert err.count("\n") == 1 and err.startswith("strata: error: "), err
    return err


def test_missing_file_is_one_line_error(tmp_path):
    err = one_line_error(tokenize("-m", tmp_path / "missing.gguf", "-p", "x", check=False))
    assert "missing.gguf" in err


def test_file_without_tokenizer_is_one_line_error(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "no_tokenizer.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    err = one_line_error(tokenize("-m", path, "-p", "x", check=False))
    assert "tokenizer.ggml.model" in err


def test_bad_merges_is_one_line_error(tmp_path):
    """A vocabulary whose merges name a token that does not exist."""
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "bad_merges.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(["a", "b", "ab"])
    w.add_token_merges(["a b", "a zz"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    err = one_line_error(tokenize("-m", path, "-p", "x", check=False))
    assert "tokenizer.ggml.merges[1]" in err and "'zz'" in err


def test_no_text_is_an_error():
    path = vocab_file("gpt-2")
    err = one_line_error(tokenize("-m", path, check=False))
    assert "-p" in err


# --- Against Hugging Face `tokenizers` (the library the models ship their
# tokenizer.json for): every pre-tokenizer strata knows, on random mixed text,
# must give the same ids. Pre-tokenizers without a vocabulary file here
# (qwen2, llama3, deepseek-v3, ...) are run on GPT-2's vocabulary: the ids
# then mean nothing, but the splitting and merging are what is compared.
# Skipped when the `tokenizers` package is not installed.

# Split patterns as the models' tokenizer.json files have them (Oniguruma
# syntax); the GPT-2 and digit pre-tokenizers are the library's own.
_CJK = r"[一-龥ࠀ-一가-퟿]+"
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_GPT4O = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
          r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_DSV3 = [r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+",
         r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
         r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]
_DS_LETTERS = ("A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝ"
               "\u1f5f-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌ\u1fd0-\u1fd3\u1fd6-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄ"
               "Ⰰ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃")
_DSLLM = ["[\r\n]", r"\s?[" + _DS_LETTERS + r"]+", r"\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+$", _CJK, r"\p{N}+"]
_DSCODER = ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK, r"\p{N}"]


def _hf_pre(name):
    from tokenizers import Regex, pre_tokenizers as pt

    def seq(patterns):
        splits = [pt.Split(Regex(p), behavior="isolated", invert=False) for p in patterns]
        return pt.Sequence(splits + [pt.ByteLevel(add_prefix_space=False, use_regex=False)])

    if name == "gpt-2":
        return pt.ByteLevel(add_prefix_space=False, use_regex=True)
    if name in ("starcoder", "smollm"):
        return pt.Sequence([pt.Digits(individual_digits=True), pt.ByteLevel(add_prefix_space=False, use_regex=True)])
    return seq({"llama3": [_LLAMA3], "qwen2": [_QWEN2], "deepseek-r1-qwen": [_QWEN2], "gpt-4o": [_GPT4O],
                "deepseek-v3": _DSV3, "deepseek-llm": _DSLLM, "deepseek-coder": _DSCODER}[name])


def _random_text(seed, n_chunks=3000):
    import random
    rng = random.Random(seed)
    chunks = [
        "the", "The", "THE", "of", "memory", "Hello", "world", "naïve", "cafe\u0301", "e\u0300\u0316", "Führer",
        "'s", "'S", "'ll", "'LL", "'re", "'Ve", "'d", "'m", "'t", "don't", "I'M", "y'all", "'", "''", "'x",
        "0", "7", "42", "1234567", "3.14", "1,000", "٣٤٥", "３４", "²", "Ⅻ", "½",
        " ", "  ", "    ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2028", "\u2003", "\u200b",
        ".", ",", "!?", "...", "(", ")", "[", "]", "{", "}", "<", ">", "=", "==", "->", "+", "-", "_", "/", "\\",
        "\"", "`", "~", "^", "|", "$", "€", "©", "™", "@", "#", "%", "&", "*", ":", ";", "“", "”", "—", "…", "‘",
        "/\n", "!\n", "。", "，", "、", "！", "？", "「", "」", "（", "）", "：", "～",
        "我想在", "apple", "工作", "天", "日本語", "ひらがな", "カタカナ", "ｶﾀｶﾅ", "한국어", "ㄱ",
        "Привет", "мир", "Γειά", "σου", "مرحبا", "עברית", "हिन्दी", "ไทย", "ក្រុង", "ℌ", "ﬁ", "Ǆ", "ǅ",
        "🦙", "🚀", "😶\u200d🌫\ufe0f", "✅", "👍🏽", "🇺🇸", "❤\ufe0f", "\ufffd",
        "for (int i = 0; i < n; ++i) {", "def f(x):", "    return x", "#include <cstdio>", "x+=1;", "a_b",
        "http://example.com/a?b=c", "user@mail.org", "CamelCaseWord", "snake_case_word", "ALLCAPS", "iPhone",
    ]
    out = []
    for _ in range(n_chunks):
        out.append(rng.choice(chunks))
        r = rng.random()
        if r < 0.45:
            out.append(" ")
        elif r < 0.5:
            out.append(rng.choice(["\n", "  ", "\t", ""]))
    return "".join(out)


@functools.lru_cache(maxsize=None)
def _read_vocab(name):
    import gguf
    r = gguf.GGUFReader(str(vocab_file(name)))

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    return strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")


def _write_vocab(path, tokens, merges, pre):
    """A vocabulary GGUF with only normal tokens (no added tokens to match)."""
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


HF_CASES = [  # (vocabulary file, pre-tokenizer)
    ("gpt-2", "gpt-2"), ("gpt-2", "starcoder"), ("gpt-2", "smollm"), ("gpt-2", "llama3"), ("gpt-2", "qwen2"),
    ("gpt-2", "deepseek-r1-qwen"), ("gpt-2", "gpt-4o"), ("gpt-2", "deepseek-v3"), ("gpt-2", "deepseek-coder"),
    ("deepseek-llm", "deepseek-llm"), ("deepseek-coder", "deepseek-coder"), ("starcoder", "starcoder"),
]


@pytest.mark.parametrize("vocab,pre", HF_CASES, ids=[f"{v}:{p}" for v, p in HF_CASES])
def test_same_ids_as_hf_tokenizers(tmp_path, vocab, pre):
    hf = pytest.importorskip("tokenizers")
    tokens, merges = _read_vocab(vocab)
    path = tmp_path / f"{vocab}-{pre}.gguf"
    _write_vocab(path, tokens, merges, pre)

    # "LEFT RIGHT", split at the first space after the first character.
    pairs = [(m[: m.index(" ", 1)], m[m.index(" ", 1) + 1:]) for m in merges]
    # llama3 vocabularies match whole pieces before merging (ignore_merges).
    model = hf.models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=pairs, ignore_merges=pre == "llama3")
    ref = hf.Tokenizer(model)
    ref.pre_tokenizer = _hf_pre(pre)

    for seed in range(3):
        text = _random_text(seed * 7919 + len(pre))
        f = tmp_path / f"text{seed}.txt"
        f.write_bytes(text.encode("utf-8"))
        ours = parse_ids(tokenize("-m", path, "-f", f, "--ids", "--no-bos").stdout)
        theirs = ref.encode(text, add_special_tokens=False).ids
        if ours != theirs:
            i = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            context = lambda ids: "".join(tokens[t] for t in ids[max(0, i - 5): i + 5])  # noqa: E731
            pytest.fail(f"{vocab}:{pre} seed {seed}: first difference at token {i}: "
                        f"strata {ours[max(0, i - 5): i + 5]} {context(ours)!r} vs "
                        f"tokenizers {theirs[max(0, i - 5): i + 5]} {context(theirs)!r}")
