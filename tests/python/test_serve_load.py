"""`strata serve` under load, over loopback: 32 concurrent streaming clients
(zero errors, every stream well-formed and ending in [DONE]), a client that
disconnects mid-stream (its slot and KV blocks free by /metrics within a
second), a full queue (429 with Retry-After while running streams go on), and
a soak of 1,000 sequential requests (RSS growth < 5 %, no leaked sequences)."""
import json
import os
import socket
import threading
import time

import pytest
import requests

from test_serve import STRATA, VOCAB, ServerProc, make_model, sse_events

pytestmark = [
    pytest.mark.skipif(not STRATA, reason="STRATA_BIN is not set"),
    pytest.mark.skipif(not VOCAB.exists(), reason=f"no {VOCAB}"),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("serve_load"))


@pytest.fixture(scope="module")
def server(model):
    s = ServerProc("-m", model, "--parallel", 4, "--queue", 64)
    yield s
    assert s.stop() == 0, s.stderr()


def chat_body(max_tokens, stream=True, **kw):
    return {"model": "tiny", "messages": [{"role": "user", "content": "Tell me about the sea."}],
            "max_tokens": max_tokens, "stream": stream, **kw}


def check_stream(events, max_tokens):
    """A well-formed chat stream: role first, one finish_reason, [DONE] last."""
    assert events and events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("error" not in c for c in chunks), chunks
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert chunks[-1]["choices"][0]["finish_reason"] == finishes[0]
    assert len({c["id"] for c in chunks}) == 1
    n_content = sum(1 for c in chunks if c["choices"][0]["delta"].get("content"))
    assert n_content <= max_tokens


def wait_idle(server, timeout):
    """Seconds until no sequence runs and no KV block is held."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = server.metrics()
        if m["strata_running_sequences"] == 0 and m["strata_kv_cache_blocks_used"] == 0 and m["strata_queue_length"] == 0:
            return time.time() - t0
        time.sleep(0.02)
    raise AssertionError(f"not idle after {timeout} s: {server.metrics()}")


def test_32_concurrent_streams(server):
    errors, done = [], []
    start = threading.Barrier(32)

    def client(i):
        try:
            start.wait()
            with requests.post(server.url + "/v1/chat/completions", json=chat_body(24, seed=i), stream=True,
                               timeout=60) as r:
                assert r.status_code == 200, r.text
                assert r.headers["Content-Type"].startswith("text/event-stream")
                check_stream(sse_events(r), 24)
            done.append(i)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert sorted(done) == list(range(32))
    assert time.time() - t0 < 90
    wait_idle(server, 5)
    m = server.metrics()
    assert m['strata_requests_total{route="/v1/chat/completions",status="200"}'] >= 32
    # Batching happened: fewer steps than tokens generated.
    assert m["strata_steps_total"] < m["strata_generated_tokens_total"]


def test_disconnect_frees_the_slot_within_a_second(server):
    body = json.dumps(chat_body(3000, temperature=0)).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 5:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    m = server.metrics()
    assert m["strata_running_sequences"] == 1 and m["strata_kv_cache_blocks_used"] > 0
    s.close()
    t0 = time.time()
    waited = wait_idle(server, 5)
    assert waited < 1.0, f"slot freed after {time.time() - t0:.2f} s"


def test_disconnect_of_a_whole_answer_frees_the_slot(server):
    """Not streamed: nothing is written until the end, yet a client that
    leaves stops its sequence (the server watches the connection)."""
    body = json.dumps(chat_body(3000, temperature=0, stream=False)).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    t0 = time.time()
    while server.metrics()["strata_running_sequences"] != 1:
        assert time.time() - t0 < 10, server.metrics()
        time.sleep(0.02)
    s.close()
    t0 = time.time()
    waited = wait_idle(server, 5)
    assert waited < 1.0, f"slot freed after {time.time() - t0:.2f} s"
    # The server goes on answering.
    r = requests.post(server.url + "/v1/chat/completions", json=chat_body(2, stream=False), timeout=30)
    assert r.status_code == 200


def test_queue_full_gets_429_while_streams_continue(model):
    s = ServerProc("-m", model, "--parallel", 1, "--queue", 1)
    try:
        streams = []
        first_chunks = []

        def run_stream(i):
            with requests.post(s.url + "/v1/chat/completions", json=chat_body(3000, temperature=0), stream=True,
                               timeout=60) as r:
                assert r.status_code == 200
                n = 0
                for line in r.iter_lines():
                    if line.startswith(b"data: "):
                        n += 1
                        first_chunks.append((i, time.time()))
                    if n >= 150:
                        return

        running = threading.Thread(target=run_stream, args=(0,))
        running.start()
        while not first_chunks:
            time.sleep(0.01)
        queued = threading.Thread(target=run_stream, args=(1,))
        queued.start()
        deadline = time.time() + 10
        while s.metrics()["strata_queue_length"] < 1:
            assert time.time() < deadline
            time.sleep(0.01)
        r = requests.post(s.url + "/v1/chat/completions", json=chat_body(5, stream=False), timeout=10)
        t_429 = time.time()
        assert r.status_code == 429, r.text
        assert r.headers.get("Retry-After") == "1"
        err = r.json()["error"]
        assert err["code"] == "queue_full" and "queue is full" in err["message"]
        # The running stream keeps flowing after the 429.
        deadline = time.time() + 10
        while not any(i == 0 and t > t_429 for i, t in first_chunks):
            assert time.time() < deadline
            time.sleep(0.01)
        running.join(60)
        queued.join(60)
        streams.append(0)
    finally:
        assert s.stop() == 0, s.stderr()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_soak_1000_sequential_requests(server):
    http = requests.Session()
    url = server.url + "/v1/chat/completions"
    ok = 0

    def one(i):
        # Mostly short legacy completions (cheap), every fourth a chat, every
        # fifth streamed: every path's allocations are exercised.
        if i % 4 == 0:
            target, body = url, {"model": "tiny", "messages": [{"role": "user", "content": f"Request {i}"}]}
        else:
            target, body = server.url + "/v1/completions", {"model": "tiny", "prompt": f"Request {i}"}
        body.update(max_tokens=1 + i % 2, stream=i % 5 == 0)
        r = http.post(target, json=body, timeout=30)
        assert r.status_code == 200, r.text
        if body["stream"]:
            assert r.text.rstrip().endswith("data: [DONE]")
        else:
            assert r.json()["usage"]["completion_tokens"] <= 2

    for i in range(60):  # warm-up: allocator pools, thread pool, KV blocks
        one(i)
    before = rss_kib(server.proc.pid)
    for i in range(1000):
        one(i)
        ok += 1
    after = rss_kib(server.proc.pid)
    assert ok == 1000
    assert after < before * 1.05, f"RSS {before} KiB -> {after} KiB"
    wait_idle(server, 2)
