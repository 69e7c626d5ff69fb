"""End-to-end: `strata chat` on a tiny random model, driven through a pipe
(several turns, the KV cache kept between them, slash commands, /save and
/load, bad input, a full context) and through a pseudo-terminal (the line
editor, Ctrl-C stopping an answer without losing the conversation, Ctrl-D
leaving, reasoning text dimmed)."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

STRATA = os.environ.get("STRATA_BIN")
SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab" / "ggml-vocab-gpt-2.gguf"

pytestmark = [
    pytest.mark.skipif(not STRATA, reason="STRATA_BIN is not set"),
    pytest.mark.skipif(not VOCAB.exists(), reason=f"no {VOCAB}"),
]

STATS = re.compile(r"\[prompt (\d+) tok \((\d+) cached\), [\d.]+ tok/s \| answer (\d+) tok, [\d.]+ tok/s \| context (\d+)/(\d+)\]")

# A template whose markup holds gpt-2's one control token and which opens a
# reasoning block in the generation prompt, as Qwen3's and DeepSeek-R1's do.
THINK_TEMPLATE = (
    "{% for m in messages %}{{ m.role }}: {{ m.content }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: <think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("chat") / "tiny-qwen3.gguf"
    subprocess.run([STRATA, "mkmodel", "--preset", "tiny-qwen3", "--vocab-from", str(VOCAB), "-q", "-o", str(path)],
                   check=True, capture_output=True, timeout=120)
    return path


def chat(model, stdin, *args):
    p = subprocess.run([STRATA, "chat", "-m", str(model), "--seed", "3", *map(str, args)], input=stdin,
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def test_turns_commands_save_load(model, tmp_path):
    conv = tmp_path / "conv.json"
    script = "\n".join([
        "Hello there",
        "/set max 6",
        "/set temp 0",
        "/set top_k x",
        "What is two plus two?",
        "/frobnicate",
        f"/save {conv}",
        "/clear",
        "/show",
        f"/load {conv}",
        "/show",
        "/system Be brief.",
        "/regen",
        '"""',
        "line one",
        'line two"""',
        "/stats",
        "/help",
        "/bye",
        "never read",
    ]) + "\n"
    rc, out, err = chat(model, script.encode(), "-n", 8)
    assert rc == 0, err
    assert "no chat template" in err and "ChatML" in err
    assert "max = 6" in out and "temp = 0" in out
    assert "/set top_k: expected a number, got 'x'" in out
    assert "unknown command '/frobnicate'" in out
    assert "conversation cleared" in out and "context: 0/4096 tokens, 0 messages" in out
    assert "loaded 4 messages" in out and "4 messages" in out
    assert "/regen" in out  # the help text
    stats = [tuple(map(int, m.groups())) for m in STATS.finditer(err)]
    # Four answers (two turns, /regen, the multi-line message) and /stats.
    assert len(stats) == 5, err
    assert stats[0][1] == 0 and stats[0][2] == 8  # first turn: nothing cached, -n 8
    assert stats[1][1] > 0 and stats[1][2] == 6   # second turn reuses the cache; /set max 6
    assert stats[3][1] > 0 and stats[4] == stats[3]
    saved = json.loads(conv.read_text())["messages"]
    assert [m["role"] for m in saved] == ["user", "assistant", "user", "assistant"]
    assert saved[2]["content"] == "What is two plus two?"
    assert "never read" not in out


def test_same_seed_same_answers(model):
    script = b"Tell me a story\nAnd another\n"
    a = chat(model, script, "-n", 10, "--temp", 1.2, "--top-k", 0)
    b = chat(model, script, "-n", 10, "--temp", 1.2, "--top-k", 0)
    assert a[0] == 0 and a[1] == b[1]


def test_bad_input_and_full_context(model, tmp_path):
    long = " ".join(["word"] * 200)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"role": "wizard", "content": "x"}]')
    script = b"\xff\xfe oops\n" + long.encode() + b"\n/load " + str(bad).encode() + b"\n/load /nonexistent.json\nhi\n"
    rc, out, err = chat(model, script, "--ctx", 64, "-n", 4)
    assert rc == 0, err
    assert "not valid UTF-8" in out
    assert "context full" in out and "/clear" in out
    assert "expected role system, user or assistant, got 'wizard'" in out
    assert "cannot open '/nonexistent.json'" in out
    assert len(STATS.findall(err)) == 1  # "hi" still gets an answer


def test_template_file_and_stop_string(model, tmp_path):
    tmpl = tmp_path / "t.jinja"
    tmpl.write_text(THINK_TEMPLATE)
    rc, out, err = chat(model, b"Hi\n", "--template", tmpl, "-n", 5, "--temp", 0)
    assert rc == 0 and "no chat template" not in err
    # Not a terminal: no escape codes, reasoning text printed plainly.
    assert "\x1b[" not in out
    first = out.split("\n")[0]
    assert first
    # A stop string taken from the answer itself cuts it before the string.
    word = first[:3]
    rc, out2, err2 = chat(model, b"Hi\n", "--template", tmpl, "-n", 5, "--temp", 0, "--stop", word)
    assert rc == 0 and word not in out2.split("\n")[0]
    stats = STATS.search(err2)
    assert stats and int(stats.group(3)) < 5


class Pty:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.buf = b""

    def expect(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while True:
            if re.search(pattern, self.buf):
                m = re.search(pattern, self.buf)
                seen, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return seen
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {self.buf[-2000:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"EOF waiting for {pattern!r}; got {self.buf[-2000:]!r}")
                self.buf += data

    def send(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:  # keep draining so the child never blocks on output
                if select.select([self.fd], [], [], 0.05)[0]:
                    os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("strata chat did not exit")


def test_terminal_ctrl_c_and_ctrl_d(model, tmp_path):
    tmpl = tmp_path / "t.jinja"
    tmpl.write_text(THINK_TEMPLATE)
    p = Pty([STRATA, "chat", "-m", str(model), "--template", str(tmpl), "--seed", "1", "-n", "0", "--ctx", "4096"])
    p.expect(rb">>> ")
    p.send(b"/set max 3\r")
    p.expect(rb"max = 3")
    p.expect(rb">>> ")
    p.send(b"first\r")
    p.expect(rb"answer 3 tok")
    p.expect(rb">>> ")
    # History: Up recalls "first"; edit it to "first!" before sending.
    p.send(b"/set max 0\r")
    p.expect(rb"max = 0")
    p.expect(rb">>> ")
    p.send(b"\x1b[A\x1b[A!\r")
    p.expect(rb">>> first!")
    # The template opened <think>: the answer starts dimmed.
    p.expect(rb"\x1b\[2m")
    time.sleep(0.3)
    p.send(b"\x03")
    p.expect(rb"\[interrupted\]")
    p.expect(rb">>> ")
    p.send(b"/show\r")
    seen = p.expect(rb"system: ")
    assert b"4 messages" in seen  # the interrupted answer is kept
    p.expect(rb">>> ")
    p.send(b"\x03")  # Ctrl-C at the prompt only hints
    p.expect(rb"Ctrl-D or /bye")
    p.expect(rb">>> ")
    p.send(b"\x04")
    assert p.wait() == 0


def test_logit_bias_forces_and_bans(model):
    # gpt-2 id 40 is "I": a large bias makes every token "I"; banning it
    # under greedy decoding changes the answer.
    rc, out, err = chat(model, b"Hi\n", "-n", 4, "--temp", 0, "--logit-bias", "40=100")
    assert rc == 0 and out.startswith("IIII"), out
    rc, out, err = chat(model, b"Hi\n", "-n", 4, "--temp", 0, "--logit-bias", "40=100", "--logit-bias", "40=-inf")
    assert rc == 0 and not out.startswith("I"), out
    rc, out, err = chat(model, b"Hi\n", "--logit-bias", "x=1")
    assert rc != 0 and "expected ID=BIAS" in err


def test_loaded_control_text_is_plain_text(model, tmp_path):
    # A conversation whose texts hold the vocabulary's control token: it is
    # tokenized as text, so the prompt is longer than with the real token.
    conv = tmp_path / "c.json"
    evil = "<|endoftext|>" * 20
    conv.write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                             {"role": "assistant", "content": evil}]}))
    rc, out, err = chat(model, f"/load {conv}\n{evil}\n".encode(), "-n", 1, "--temp", 0)
    assert rc == 0, err
    n_prompt = int(STATS.search(err).group(1))
    assert n_prompt > 2 * 20 * 3, err  # each copy is several text tokens, not one control token


def test_context_fills_during_answer(model):
    # -n 0: answer until the context is full; the next message does not fit,
    # /clear makes room again.
    rc, out, err = chat(model, b"hi\nmore\n/clear\nagain\n", "--ctx", 48, "-n", 0, "--temp", 0)
    assert rc == 0, err
    assert "[context full: 48 tokens; /clear to start over]" in out
    assert "error: context full" in out and "/clear starts over" in out
    stats = [tuple(map(int, m.groups())) for m in STATS.finditer(err)]
    assert len(stats) == 2 and stats[0][3] == 48 and stats[1][1] == 0


def test_terminal_shows_staged_loading(model):
    """On a terminal, loading shows numbered stages (index, tensors,
    tokenizer, weights) before the prompt; piped runs stay quiet."""
    p = Pty([STRATA, "chat", "-m", str(model), "--seed", "1"])
    seen = p.expect(rb">>> ")
    for stage in [rb"\[1/4\] reading the GGUF index: ", rb"\[2/4\] checking \d+ tensors: ",
                  rb"\[3/4\] loading the tokenizer: ", rb"\[4/4\] reading .* of weights"]:
        assert re.search(stage, seen), (stage, seen)
    p.send(b"/bye\r")
    assert p.wait() == 0
    piped = subprocess.run([STRATA, "chat", "-m", str(model)], input="/bye\n", capture_output=True, text=True,
                           timeout=60)
    assert piped.returncode == 0 and "[1/4]" not in piped.stderr
