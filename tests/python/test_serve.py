"""End-to-end: `strata serve` on a tiny random model with a real vocabulary,
driven by the official `openai` Python client (chat non-stream and stream,
include_usage, legacy completions, models, seeds, log-probabilities, stop
strings, JSON output that validates with `jsonschema`) and by raw HTTP for
what a client library hides: every documented 4xx with its error object on
bad input (the server keeps serving), API keys and the audit log, CORS."""
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

STRATA = os.environ.get("STRATA_BIN")
SHARED = Path(os.environ.get("STRATA_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
VOCAB = SHARED / "data" / "vocab" / "ggml-vocab-gpt-2.gguf"

pytestmark = [
    pytest.mark.skipif(not STRATA, reason="STRATA_BIN is not set"),
    pytest.mark.skipif(not VOCAB.exists(), reason=f"no {VOCAB}"),
]


def make_model(directory, name="tiny", preset="tiny-qwen3", seed=4):
    path = Path(directory) / f"{name}.gguf"
    subprocess.run([STRATA, "mkmodel", "--preset", preset, "--vocab-from", str(VOCAB), "--seed", str(seed), "-q",
                    "-o", str(path)], check=True, capture_output=True, timeout=120)
    return path


class ServerProc:
    """A `strata serve` process on a free port; stderr is collected."""

    def __init__(self, *args, wait_ready=True):
        self.proc = subprocess.Popen([STRATA, "serve", "--port", "0", "--threads", "1", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        got_port = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"listening on http://[^:]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    got_port.set()
            got_port.set()

        threading.Thread(target=pump, daemon=True).start()
        assert got_port.wait(60), self.stderr()
        assert self.port, self.stderr()
        self.url = f"http://127.0.0.1:{self.port}"
        if wait_ready:
            self.wait_healthy()

    def stderr(self):
        return "".join(self.lines)

    def wait_healthy(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            assert self.proc.poll() is None, self.stderr()
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError("server not healthy: " + self.stderr())

    def metrics(self, headers=None):
        text = requests.get(self.url + "/metrics", headers=headers, timeout=5).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def sse_events(resp):
    """The data payloads of an SSE response, in order (comments skipped)."""
    out = []
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            out.append(line[6:])
        else:
            assert line == "" or line.startswith(":"), line
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(model):
    s = ServerProc("-m", model, "--parallel", 4, "--max-body", 65536)
    yield s
    assert s.stop() == 0, s.stderr()


@pytest.fixture(scope="module")
def client(server):
    import openai
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


MSG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about the sea."}]


def test_start_up_and_models(server, client):
    assert "placement" in server.stderr() and "KV cache:" in server.stderr()
    assert requests.get(server.url + "/health").json() == {"status": "ok"}
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny"]
    m = client.models.retrieve("tiny")
    assert m.id == "tiny" and m.object == "model" and m.owned_by == "strata"
    r = requests.get(server.url + "/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_chat_non_stream_and_stream_agree(client):
    a = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=12, temperature=0)
    assert a.object == "chat.completion" and a.id.startswith("chatcmpl-")
    ch = a.choices[0]
    assert ch.message.role == "assistant" and isinstance(ch.message.content, str)
    assert ch.finish_reason in ("stop", "length")
    assert a.usage.prompt_tokens > 5 and 1 <= a.usage.completion_tokens <= 12
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="tiny", messages=MSG, max_tokens=12, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [ch.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == a.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ch.message.content  # greedy: streamed and whole answers are the same text
    assert len({c.id for c in chunks}) == 1


def test_content_parts_and_roles(client):
    msgs = [{"role": "developer", "content": [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "user", "content": "Thanks"}]
    a = client.chat.completions.create(model="tiny", messages=msgs, max_completion_tokens=3)
    assert a.usage.completion_tokens <= 3


def test_legacy_completions(client):
    a = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=6, temperature=0, logprobs=2)
    assert a.object == "text_completion" and a.id.startswith("cmpl-")
    c = a.choices[0]
    assert c.finish_reason in ("stop", "length") and a.usage.completion_tokens <= 6
    assert len(c.logprobs.tokens) == a.usage.completion_tokens == len(c.logprobs.token_logprobs)
    assert "".join(c.logprobs.tokens) == c.text
    assert all(len(t) == 2 for t in c.logprobs.top_logprobs)
    # The default max_tokens of the legacy endpoint is OpenAI's 16.
    b = client.completions.create(model="tiny", prompt="Once upon a time", temperature=0)
    assert b.usage.completion_tokens <= 16
    s = list(client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=6, temperature=0,
                                       stream=True))
    assert "".join(x.choices[0].text for x in s) == c.text
    assert s[-1].choices[0].finish_reason == c.finish_reason


def test_seed_determinism(client):
    def ask(seed):
        r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=8, temperature=1.0, seed=seed)
        return r.choices[0].message.content
    assert ask(1234) == ask(1234)
    # Different seeds draw different answers (the tiny model's first token
    # has several likely choices).
    assert len({ask(seed) for seed in range(10)}) >= 2


def test_logprobs_are_the_models_distribution(client):
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=5, temperature=0, logprobs=True,
                                       top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert len(t.top_logprobs) == 3
        lps = [x.logprob for x in t.top_logprobs]
        assert lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
        # Greedy picks the most likely token.
        assert t.token == t.top_logprobs[0].token and abs(t.logprob - lps[0]) < 1e-6
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token or t.bytes


def test_stop_string_and_max_tokens(client):
    full = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=10, temperature=0)
    text = full.choices[0].message.content
    assert full.choices[0].finish_reason == "length"
    cut = text[len(text) // 2:len(text) // 2 + 3]
    assert cut
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=10, temperature=0, stop=[cut, "zzzz"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == text[:text.index(cut)]


def test_json_schema_output_validates(client):
    import jsonschema
    schema = {"type": "object",
              "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "green", "blue"]},
                             "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}},
              "required": ["ok", "color", "tags"], "additionalProperties": False}
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=400, temperature=1.0, seed=5,
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "answer", "schema": schema}})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)
    # json_object bounds nothing, and this random model loves long keys: a
    # bias on '}' (gpt-2 token 92) lets it close the object soon.
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=400, seed=6, logit_bias={"92": 20},
                                       response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def post(server, path, body, headers=None, raw=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else json.dumps(body)
    return requests.post(server.url + path, data=data, headers=h, timeout=30)


GOOD = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

BAD = [
    # (description, path, body or raw bytes, status, code or None, words in the message)
    ("malformed JSON", "/v1/chat/completions", b'{"model": "tiny", "messages": [', 400, "invalid_json", "invalid JSON"),
    ("body not an object", "/v1/chat/completions", b"[1, 2]", 400, None, "JSON object"),
    ("messages wrong type", "/v1/chat/completions", {"model": "tiny", "messages": "hi"}, 400, None, "messages: expected"),
    ("no model", "/v1/chat/completions", {"messages": GOOD["messages"]}, 400, None, "model: required"),
    ("model wrong type", "/v1/chat/completions", {**GOOD, "model": 7}, 400, None, "model: expected a string"),
    ("unknown field", "/v1/chat/completions", {**GOOD, "frobnicate": 1}, 400, "unknown_parameter", "frobnicate"),
    ("empty messages", "/v1/chat/completions", {**GOOD, "messages": []}, 400, None, "at least one message"),
    ("bad role", "/v1/chat/completions", {**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, 400, None, "wizard"),
    ("null user content", "/v1/chat/completions", {**GOOD, "messages": [{"role": "user", "content": None}]}, 400, None,
     "null is only allowed"),
    ("image part", "/v1/chat/completions",
     {**GOOD, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400,
     "unsupported_content", "only text parts"),
    ("negative temperature", "/v1/chat/completions", {**GOOD, "temperature": -1}, 400, None, "temperature"),
    ("absurd temperature", "/v1/chat/completions", {**GOOD, "temperature": 1e30}, 400, None, "temperature"),
    ("top_p above 1", "/v1/chat/completions", {**GOOD, "top_p": 1.5}, 400, None, "top_p"),
    ("negative top_k", "/v1/chat/completions", {**GOOD, "top_k": -3}, 400, None, "top_k"),
    ("temperature as string", "/v1/chat/completions", {**GOOD, "temperature": "hot"}, 400, None, "expected a number"),
    ("negative max_tokens", "/v1/chat/completions", {**GOOD, "max_tokens": -5}, 400, None, "max_tokens"),
    ("fractional max_tokens", "/v1/chat/completions", {**GOOD, "max_tokens": 2.5}, 400, None, "an integer"),
    ("n = 2", "/v1/chat/completions", {**GOOD, "n": 2}, 400, None, "only 1 choice"),
    ("top_logprobs 21", "/v1/chat/completions", {**GOOD, "logprobs": True, "top_logprobs": 21}, 400, None,
     "top_logprobs"),
    ("top_logprobs without logprobs", "/v1/chat/completions", {**GOOD, "top_logprobs": 2}, 400, None,
     "requires logprobs"),
    ("too many stops", "/v1/chat/completions", {**GOOD, "stop": [str(i) for i in range(40)]}, 400, None, "stop"),
    ("long stop", "/v1/chat/completions", {**GOOD, "stop": "x" * 5000}, 400, None, "stop"),
    ("bad logit_bias", "/v1/chat/completions", {**GOOD, "logit_bias": {"abc": 1}}, 400, None, "logit_bias"),
    ("unsupported schema", "/v1/chat/completions",
     {**GOOD, "response_format": {"type": "json_schema",
                                  "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}}},
     400, "unsupported_schema", "pattern"),
    ("tools", "/v1/chat/completions",
     {**GOOD, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, 400, None, "tools"),
    ("functions (deprecated)", "/v1/chat/completions", {**GOOD, "functions": [{"name": "f"}]}, 400,
     "unsupported_parameter", "not supported"),
    ("invalid UTF-8", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "invalid_json", "UTF-8"),
    ("unknown model", "/v1/chat/completions", {**GOOD, "model": "gpt-4o"}, 404, "model_not_found", "gpt-4o"),
    ("huge body", "/v1/chat/completions",
     {**GOOD, "messages": [{"role": "user", "content": "x" * 100000}]}, 413, "request_too_large", "too large"),
    ("prompt longer than the context", "/v1/completions", {"model": "tiny", "prompt": list(range(1, 5000))}, 400,
     "context_length_exceeded", "maximum context length"),
    ("max_tokens beyond the context", "/v1/chat/completions", {**GOOD, "max_tokens": 10 ** 6}, 400,
     "context_length_exceeded", "maximum context length"),
    ("max_completion_tokens beyond the context", "/v1/chat/completions",
     {**GOOD, "max_tokens": None, "max_completion_tokens": 10 ** 6}, 400, "context_length_exceeded",
     "max_completion_tokens asks for"),
    ("token id out of vocabulary", "/v1/completions", {"model": "tiny", "prompt": [1, 999999]}, 400, None,
     "outside the vocabulary"),
    ("legacy without prompt", "/v1/completions", {"model": "tiny"}, 400, None, "prompt: required"),
    ("legacy echo", "/v1/completions", {"model": "tiny", "prompt": "x", "echo": True}, 400, "unsupported_parameter",
     "echo"),
    ("legacy several prompts", "/v1/completions", {"model": "tiny", "prompt": ["a", "b"]}, 400, None, "one prompt"),
    ("unknown route", "/v1/embeddings", {"model": "tiny", "input": "x"}, 404, "unknown_route", "unknown route"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_gets_a_4xx_error_object(server, case):
    _, path, body, status, code, words = case
    r = post(server, path, None, raw=body) if isinstance(body, bytes) else post(server, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    if code:
        assert err["code"] == code
    assert words in err["message"], err["message"]
    # ... and the server keeps serving.
    ok = post(server, "/v1/chat/completions", GOOD)
    assert ok.status_code == 200, ok.text


def test_user_text_cannot_inject_control_tokens(server):
    # gpt-2's one control token is <|endoftext|>: typed by a user it is plain
    # text (several tokens), never the control token.
    body = {"model": "tiny", "prompt": "a <|endoftext|> b", "max_tokens": 1}
    plain = {"model": "tiny", "prompt": "a  b", "max_tokens": 1}
    r, p = post(server, "/v1/completions", body).json(), post(server, "/v1/completions", plain).json()
    assert r["usage"]["prompt_tokens"] > p["usage"]["prompt_tokens"] + 1
    bad = {**GOOD, "messages": [{"role": "user", "content": "x", "name": "<|endoftext|>"}]}
    r = post(server, "/v1/chat/completions", bad)
    assert r.status_code == 400 and "control token" in r.json()["error"]["message"]


def test_stream_error_after_headers_is_an_event(server):
    # A stream whose deadline passes while queued behind nothing still ends
    # cleanly; here an impossible request is refused before the 200 instead.
    r = requests.post(server.url + "/v1/chat/completions", json={**GOOD, "stream": True, "model": "nope"}, stream=True)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


@pytest.fixture(scope="module")
def keyed(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    keys = d / "keys.txt"
    keys.write_text("# team keys\nalice: sk-alice-123\nbob:sk-bob-456\n")
    audit = d / "audit.jsonl"
    s = ServerProc("-m", model, "--api-key-file", keys, "--audit-log", audit, "--cors-origin", "http://app.example")
    yield s, audit
    assert s.stop() == 0, s.stderr()


def test_api_keys_and_audit_log(keyed):
    s, audit = keyed
    assert requests.get(s.url + "/health").status_code == 200  # public
    for headers in ({}, {"Authorization": "Bearer sk-alice-12"}, {"Authorization": "Bearer sk-alice-1234"},
                    {"Authorization": "sk-alice-123"}):
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/metrics")):
            r = requests.request(method, s.url + path, json=GOOD, headers=headers)
            assert r.status_code == 401, (headers, path)
            assert r.json()["error"]["type"] == "authentication_error"
    r = post(s, "/v1/chat/completions", GOOD, headers={"Authorization": "Bearer sk-bob-456"})
    assert r.status_code == 200
    import openai
    c = openai.OpenAI(base_url=s.url + "/v1", api_key="sk-alice-123", max_retries=0)
    c.chat.completions.create(model="tiny", messages=MSG, max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).models.list()
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    chats = [x for x in lines if x["route"] == "/v1/chat/completions" and x["status"] == 200]
    assert [x["key"] for x in chats] == ["bob", "alice"]
    for x in chats:
        assert x["model"] == "tiny" and x["prompt_tokens"] > 0 and 1 <= x["completion_tokens"] <= 2
        assert x["latency_ms"] >= 0 and re.match(r"\d{4}-\d\d-\d\dT", x["time"])
        assert "request_content" not in x and "Be brief" not in json.dumps(x)  # content only with --audit-content
    assert any(x["status"] == 401 and x["key"] is None for x in lines)


def test_web_page_needs_the_key_too(keyed):
    """Only /health is public: a browser is asked for the key (HTTP Basic,
    the key as password) and sends it with the page's API requests."""
    s, _ = keyed
    r = requests.get(s.url + "/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert r.json()["error"]["type"] == "authentication_error"
    assert requests.get(s.url + "/app.js").status_code == 401
    assert requests.get(s.url + "/", auth=("me", "sk-alice-12")).status_code == 401
    page = requests.get(s.url + "/", auth=("me", "sk-alice-123"))
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert requests.get(s.url + "/app.js", auth=("", "sk-bob-456")).status_code == 200
    assert requests.post(s.url + "/v1/chat/completions", json=GOOD, auth=("browser", "sk-bob-456")).status_code == 200
    for bad in ("Basic !!!!", "Basic c2stYm9iLTQ1Ng==", "Basic Om5vcGU="):  # not base64; no colon; wrong key
        assert requests.get(s.url + "/v1/models", headers={"Authorization": bad}).status_code == 401, bad


def test_cors_only_for_the_allowed_origin(keyed):
    s, _ = keyed
    pre = requests.options(s.url + "/v1/chat/completions",
                           headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    other = requests.options(s.url + "/v1/chat/completions", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_no_cors_by_default(server):
    r = requests.get(server.url + "/v1/models", headers={"Origin": "http://app.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_bad_flags_fail_with_one_line(model, tmp_path):
    keys = tmp_path / "k.txt"
    keys.write_text("no colon here\n")
    for args, words in ((["-m", model, "--api-key-file", keys], "expected 'name:key'"),
                        (["-m", tmp_path / "missing.gguf"], "missing.gguf"),
                        (["--models-dir", tmp_path / "nowhere"], "not a directory"),
                        (["-m", model, "--audit-log", tmp_path / "no" / "dir.jsonl"], "--audit-log")):
        p = subprocess.run([STRATA, "serve", "--port", "0", *map(str, args)], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert words in p.stderr and "strata: error:" in p.stderr, p.stderr


def test_warning_when_exposed_without_key(model):
    s = ServerProc("-m", model, "--host", "0.0.0.0", wait_ready=False)
    try:
        deadline = time.time() + 30
        while "warning: listening on 0.0.0.0 without an API key" not in s.stderr() and time.time() < deadline:
            time.sleep(0.05)
        assert "without an API key" in s.stderr()
    finally:
        s.stop()


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}]


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """A tiny model carrying Qwen3's real chat template (tools, <think>)."""
    gguf = pytest.importorskip("gguf")
    d = tmp_path_factory.mktemp("qwen3")
    template = (SHARED / "data" / "templates" / "Qwen-Qwen3-0.6B.jinja").read_text()
    vocab = d / "vocab.gguf"
    r = gguf.GGUFReader(str(VOCAB))
    w = gguf.GGUFWriter(str(vocab), "gpt2")
    for name, f in r.fields.items():
        if not name.startswith("tokenizer."):
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            w.add_array(name, f.contents())
        elif t == gguf.GGUFValueType.STRING:
            w.add_string(name, f.contents())
        elif t == gguf.GGUFValueType.UINT32:
            w.add_uint32(name, f.contents())
        elif t == gguf.GGUFValueType.BOOL:
            w.add_bool(name, f.contents())
    w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    path = d / "tiny-qwen3-tools.gguf"
    subprocess.run([STRATA, "mkmodel", "--preset", "tiny-qwen3", "--vocab-from", str(vocab), "--seed", "4", "-q", "-o",
                    str(path)], check=True, capture_output=True, timeout=120)
    s = ServerProc("-m", path)
    yield s
    assert s.stop() == 0, s.stderr()


def test_tools_render_through_the_models_template(qwen3):
    import openai
    assert "tool calls: hermes" in qwen3.stderr().lower() and "reasoning: <think>" in qwen3.stderr()
    # Placed by the planner on this machine's profile.
    assert "plan (strata plan's solver on this machine's profile)" in qwen3.stderr()
    assert "KV cache in DRAM" in qwen3.stderr()
    c = openai.OpenAI(base_url=qwen3.url + "/v1", api_key="x", max_retries=0)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    plain = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2)
    with_tools = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2, tools=TOOLS)
    # The template writes the tool definitions into the prompt.
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 20
    assert with_tools.choices[0].finish_reason in ("stop", "length", "tool_calls")
    none = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2, tools=TOOLS,
                                     tool_choice="none")
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens
    # The round trip: the assistant's call and the tool's result go back in.
    follow = ask + [{"role": "assistant", "content": None,
                     "tool_calls": [{"id": "call_1", "type": "function",
                                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"}]
    r = c.chat.completions.create(model="tiny-qwen3-tools", messages=follow, max_tokens=2, tools=TOOLS)
    assert r.usage.prompt_tokens > with_tools.usage.prompt_tokens
    chunks = list(c.chat.completions.create(model="tiny-qwen3-tools", messages=follow, max_tokens=3, tools=TOOLS,
                                            stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason
    # Template variables reach the template: Qwen3 without thinking gets an empty think block.
    off = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2,
                                    extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert off.usage.prompt_tokens > plain.usage.prompt_tokens
    c.close()


# Bounded arguments, so a random model under the constraint always finishes.
FORCED_TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                       "properties": {"city": {"type": "string", "maxLength": 12},
                                      "unit": {"enum": ["celsius", "fahrenheit"]}}}}},
    {"type": "function", "function": {
        "name": "get_time",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["zone"],
                       "properties": {"zone": {"enum": ["UTC", "CET"]}}}}},
]


def test_forced_tool_call_round_trip(qwen3):
    """tool_choice naming a function (or "required") constrains the answer to
    a call: parsed back with an id, arguments valid against the tool's
    schema, streamed with id and name only in the first delta, and sent back
    with the tool's result for the next turn."""
    import jsonschema
    import openai
    c = openai.OpenAI(base_url=qwen3.url + "/v1", api_key="x", max_retries=0)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    named = {"type": "function", "function": {"name": "get_weather"}}
    r = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=200, tools=FORCED_TOOLS,
                                  tool_choice=named, seed=3)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    assert ch.message.content is None and len(ch.message.tool_calls) == 1
    call = ch.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_") and len(call.id) == 29
    jsonschema.validate(json.loads(call.function.arguments), FORCED_TOOLS[0]["function"]["parameters"])

    chunks = list(c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=200,
                                            tools=FORCED_TOOLS, tool_choice=named, seed=3, stream=True))
    deltas = [tc for k in chunks if k.choices for tc in (k.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == call.id and deltas[0].function.name == "get_weather" and deltas[0].index == 0
    assert all(d.id is None and d.function.name is None and d.index == 0 for d in deltas[1:])
    assert "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
    assert [k.choices[0].finish_reason for k in chunks if k.choices][-1] == "tool_calls"

    any_tool = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=200,
                                         tools=FORCED_TOOLS, tool_choice="required", seed=5)
    assert any_tool.choices[0].finish_reason == "tool_calls"
    got = any_tool.choices[0].message.tool_calls[0]
    schema = {t["function"]["name"]: t["function"]["parameters"] for t in FORCED_TOOLS}[got.function.name]
    jsonschema.validate(json.loads(got.function.arguments), schema)

    # The round trip: the call and the tool's result go back in, the model answers.
    follow = ask + [{"role": "assistant", "content": None,
                     "tool_calls": [{"id": call.id, "type": "function",
                                     "function": {"name": call.function.name,
                                                  "arguments": call.function.arguments}}]},
                    {"role": "tool", "tool_call_id": call.id, "content": "{\"temp_c\": 21}"}]
    answer = c.chat.completions.create(model="tiny-qwen3-tools", messages=follow, max_tokens=4,
                                       tools=FORCED_TOOLS)
    assert answer.usage.prompt_tokens > r.usage.prompt_tokens + 10
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")

    # A cut call is not a call: finish_reason says length.
    cut = c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2, tools=FORCED_TOOLS,
                                    tool_choice=named, seed=3)
    assert cut.choices[0].finish_reason == "length"
    for bad, word in (({"type": "function", "function": {"name": "nope"}}, "not among the tools"),):
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2, tools=FORCED_TOOLS,
                                      tool_choice=bad)
        assert word in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny-qwen3-tools", messages=ask, max_tokens=2, tool_choice="required")
    assert "needs tools" in str(e.value)
    c.close()


def test_models_dir_lists_all_and_switches_on_request(tmp_path):
    make_model(tmp_path, name="alpha", seed=4)
    make_model(tmp_path, name="beta", preset="tiny-llama", seed=5)
    (tmp_path / "notes.txt").write_text("not a model")
    s = ServerProc("--models-dir", tmp_path)
    try:
        ids = [m["id"] for m in requests.get(s.url + "/v1/models").json()["data"]]
        assert ids == ["alpha", "beta"]
        metrics = requests.get(s.url + "/metrics").text
        assert 'strata_model_info{model="alpha"} 1' in metrics
        for name in ("beta", "alpha", "beta"):
            r = post(s, "/v1/chat/completions", {**GOOD, "model": name})
            assert r.status_code == 200, r.text
            assert r.json()["model"] == name
            assert f'strata_model_info{{model="{name}"}} 1' in requests.get(s.url + "/metrics").text
        assert requests.get(s.url + "/health").status_code == 200
        r = post(s, "/v1/chat/completions", {**GOOD, "model": "gamma"})
        assert r.status_code == 404 and "alpha, beta" in r.json()["error"]["message"]
    finally:
        assert s.stop() == 0, s.stderr()
