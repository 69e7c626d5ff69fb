// strata chat page: lists the server's models, sends the conversation to
// /v1/chat/completions with stream: true and renders the SSE deltas as they
// arrive (reasoning in a collapsed block), Stop aborts the request.
"use strict";
const $ = (id) => document.getElementById(id);
const history = [];
let controller = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function setStatus(text) { $("status").textContent = text; }

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text || "";
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

async function loadModels() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    const sel = $("model");
    sel.innerHTML = "";
    for (const m of j.data) {
      const o = document.createElement("option");
      o.value = o.textContent = m.id;
      sel.appendChild(o);
    }
    setStatus("ready");
  } catch (e) {
    setStatus("models: " + e.message);
  }
}

function busy(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
}

async function send(text, maxTokens) {
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const box = addMessage("assistant", "");
  let reasoningBox = null, answer = "", reasoning = "";
  const answerNode = document.createElement("span");
  box.appendChild(answerNode);
  controller = new AbortController();
  busy(true);
  setStatus("generating…");
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({ model: $("model").value, messages: history, stream: true,
                             ...(maxTokens ? { max_tokens: maxTokens } : {}) }),
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error ? j.error.message : r.status + " " + r.statusText);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          const d = j.choices && j.choices[0] && j.choices[0].delta;
          if (!d) continue;
          if (d.reasoning_content) {
            if (!reasoningBox) {
              reasoningBox = document.createElement("details");
              reasoningBox.className = "reasoning";
              reasoningBox.innerHTML = "<summary>reasoning</summary>";
              reasoningBox.appendChild(document.createElement("div"));
              box.insertBefore(reasoningBox, answerNode);
            }
            reasoning += d.reasoning_content;
            reasoningBox.lastChild.textContent = reasoning;
          }
          if (d.content) {
            answer += d.content;
            answerNode.textContent = answer;
          }
          $("log").scrollTop = $("log").scrollHeight;
        }
      }
    }
    setStatus("ready");
  } catch (e) {
    if (e.name === "AbortError") {
      setStatus("stopped");
    } else {
      addMessage("error", e.message);
      setStatus("error");
    }
  } finally {
    history.push({ role: "assistant", content: answer });
    controller = null;
    busy(false);
  }
}

$("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("form").requestSubmit();
  }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("key").value = localStorage.getItem("strata-key") || "";
$("key").addEventListener("change", () => { localStorage.setItem("strata-key", $("key").value); loadModels(); });
// "#ask=TEXT" (optionally "&max=N" tokens) in the address sends TEXT once the
// models are listed: links and scripted checks.
loadModels().then(() => {
  const m = location.hash.match(/^#ask=([^&]*)(?:&max=(\d+))?$/);
  if (m && $("model").value) send(decodeURIComponent(m[1]), m[2] ? parseInt(m[2], 10) : 0);
});
