"""The web chat page of `strata serve` in headless Chromium: the page lists
the model, a scripted question (#ask=...) streams an answer into the DOM until the
stream ends, and a screenshot of the page is not blank (decoded here and its pixels counted)."""
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib

import numpy as np
from pathlib import Path
import pytest
import requests

from test_serve import STRATA, VOCAB, ServerProc, make_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(not STRATA, reason="STRATA_BIN is not set"),
    pytest.mark.skipif(not VOCAB.exists(), reason=f"no {VOCAB}"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = make_model(tmp_path_factory.mktemp("serve_web"))
    s = ServerProc("-m", model)
    yield s
    assert s.stop() == 0, s.stderr()


def read_png(path):
    """RGB(A) pixels of an 8-bit PNG as a numpy array (no image library needed)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), dtype=np.int32)
    bpp = channels
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(width * channels, dtype=np.int32)
        if f == 0:
            out[y] = line
        elif f == 2:
            out[y] = (line + prev) & 255
        else:
            row = np.zeros_like(line)
            for x in range(len(line)):
                a = row[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                if f == 1:
                    p = a
                elif f == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[x] = (line[x] + p) & 255
            out[y] = row
    return out.reshape(height, width, channels)


def test_page_and_script_are_served(server):
    r = requests.get(server.url + "/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "<title>strata chat</title>" in r.text and 'src="/app.js"' in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    js = requests.get(server.url + "/app.js")
    assert js.status_code == 200 and "text/javascript" in js.headers["Content-Type"]
    assert "/v1/chat/completions" in js.text and "reasoning_content" in js.text and "abort()" in js.text


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands on fd 3, replies on fd 4, each a JSON
    text ended by a NUL byte)."""

    def __init__(self):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def fds():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                      "--remote-debugging-pipe", "about:blank"], preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.buf, self.next_id, self.session = b"", 0, None

    def call(self, method, timeout=30, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        end = time.time() + timeout
        while time.time() < end:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    assert "error" not in reply, reply
                    return reply["result"]
            chunk = os.read(self.from_r, 1 << 20)
            assert chunk, "chromium closed the pipe"
            self.buf += chunk
        raise AssertionError(f"no reply to {method}")

    def open(self, url, width, height):
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)

    def eval(self, js):
        return self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value")

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)


@pytest.mark.skipif(not CHROMIUM, reason="no chromium")
def test_chromium_streams_an_answer_and_renders(server, tmp_path):
    b = Chromium()
    try:
        b.open(server.url + "/#ask=Hello%20there&max=8", 900, 600)
        end, status = time.time() + 60, None
        while time.time() < end:
            status = b.eval("document.getElementById('status') && document.getElementById('status').textContent")
            if status in ("ready", "error"):
                break
            time.sleep(0.1)
        dom = b.eval("document.documentElement.outerHTML")
        assert status == "ready", dom[-2000:]  # the stream ended with [DONE]
        assert '<option value="tiny">tiny</option>' in dom
        assert '<div class="msg user">Hello there</div>' in dom
        answer = b.eval("document.querySelector('.msg.assistant').textContent")
        assert answer.strip(), dom[-2000:]
        shot = Path(os.environ.get("STRATA_SERVE_SCREENSHOT", tmp_path / "page.png"))
        shot.write_bytes(base64.b64decode(b.call("Page.captureScreenshot", format="png")["data"]))
    finally:
        b.close()
    px = read_png(shot)
    assert px.shape[:2] == (600, 900)
    rgb = px[:, :, :3].reshape(-1, 3)
    colors, counts = np.unique(rgb, axis=0, return_counts=True)
    # Not blank: many colors (text is anti-aliased), no single color covers
    # nearly everything, the dark header band on top, the light page below.
    assert len(colors) > 20 and counts.max() < 0.95 * len(rgb)
    assert px[10, 450, :3].mean() < 80 and px[300, 450, :3].mean() > 200
