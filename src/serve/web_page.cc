#include "serve/web_page.h"

namespace r1::serve {

std::string_view WebPage() {
  static constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>r1 chat</title>
<style>
  :root { --fg: #1d1d1f; --muted: #6e6e73; --bg: #fafafa; --card: #fff; --accent: #3b5bdb; --line: #e3e3e8; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
         display: grid; grid-template-columns: 1fr 260px; height: 100vh; }
  main { display: flex; flex-direction: column; min-width: 0; }
  header { padding: 10px 16px; border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: baseline; }
  header h1 { font-size: 17px; margin: 0; }
  header span { color: var(--muted); font-size: 13px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 12px; }
  .msg { max-width: 820px; padding: 10px 14px; border-radius: 10px; background: var(--card); border: 1px solid var(--line);
         white-space: pre-wrap; word-wrap: break-word; }
  .user { align-self: flex-end; background: #eef2ff; border-color: #d0d8ff; }
  .assistant { align-self: flex-start; }
  details.reasoning { color: var(--muted); font-size: 13.5px; margin-bottom: 6px; border-left: 3px solid var(--line); padding-left: 8px; }
  details.reasoning summary { cursor: pointer; user-select: none; }
  .error { color: #c92a2a; }
  .stats { color: var(--muted); font-size: 12px; margin-top: 4px; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid var(--line); background: var(--card); }
  textarea { flex: 1; resize: none; height: 60px; font: inherit; padding: 8px; border: 1px solid var(--line); border-radius: 8px; }
  button { font: inherit; padding: 0 16px; border: 0; border-radius: 8px; background: var(--accent); color: #fff; cursor: pointer; }
  button.secondary { background: #868e96; }
  aside { border-left: 1px solid var(--line); padding: 12px 14px; background: var(--card); overflow-y: auto; }
  aside h2 { font-size: 14px; margin: 4px 0 10px; }
  aside label { display: block; font-size: 13px; color: var(--muted); margin-top: 10px; }
  aside input, aside textarea { width: 100%; font: inherit; font-size: 13px; padding: 4px 6px; border: 1px solid var(--line); border-radius: 6px; }
  aside textarea { height: 70px; }
</style>
</head>
<body>
<main>
  <header><h1>r1 chat</h1><span id="model">…</span></header>
  <div id="log"></div>
  <form id="form">
    <textarea id="input" placeholder="Message (Enter to send, Shift+Enter for a new line)"></textarea>
    <button id="send" type="submit">Send</button>
    <button id="stop" type="button" class="secondary" disabled>Stop</button>
    <button id="clear" type="button" class="secondary">Clear</button>
  </form>
</main>
<aside>
  <h2>Sampling</h2>
  <label>temperature <input id="temperature" type="number" step="0.05" min="0" max="2" value="0.6"></label>
  <label>top_p <input id="top_p" type="number" step="0.01" min="0.01" max="1" value="0.95"></label>
  <label>top_k (0 = off) <input id="top_k" type="number" step="1" min="0" value="0"></label>
  <label>max_tokens (empty = to the end of the context) <input id="max_tokens" type="number" step="1" min="1" value="256"></label>
  <label>seed (empty = random) <input id="seed" type="number" step="1"></label>
  <label>system prompt <textarea id="system" placeholder="(none — R1 prefers instructions in the user turn)"></textarea></label>
  <label>API key <input id="key" type="password" placeholder="when the server has --api-key"></label>
</aside>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const history = [];  // {role, content}; assistant content is the answer only (reasoning is not re-fed)
let controller = null;

fetch("/v1/models", { headers: headers() }).then(r => r.json()).then(j => {
  if (j.data && j.data[0]) $("model").textContent = j.data[0].id + " · context " + j.data[0].max_model_len;
}).catch(() => {});

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}

function bubble(role) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  $("log").appendChild(div);
  return div;
}

function numberOrNull(id, parse) {
  const v = $(id).value.trim();
  return v === "" ? null : parse(v);
}

async function send(text) {
  history.push({ role: "user", content: text });
  bubble("user").textContent = text;
  const div = bubble("assistant");
  const details = document.createElement("details");
  details.className = "reasoning";
  details.open = true;
  const summary = document.createElement("summary");
  summary.textContent = "Thinking…";
  const thought = document.createElement("div");
  details.append(summary, thought);
  const answer = document.createElement("div");
  answer.className = "answer";
  const stats = document.createElement("div");
  stats.className = "stats";
  div.append(details, answer, stats);

  const messages = [];
  if ($("system").value.trim()) messages.push({ role: "system", content: $("system").value });
  messages.push(...history);
  const body = {
    model: "r1", messages, stream: true, stream_options: { include_usage: true },
    temperature: numberOrNull("temperature", parseFloat), top_p: numberOrNull("top_p", parseFloat),
    top_k: numberOrNull("top_k", (v) => parseInt(v, 10)), max_tokens: numberOrNull("max_tokens", (v) => parseInt(v, 10)),
    seed: numberOrNull("seed", (v) => parseInt(v, 10)),
  };
  controller = new AbortController();
  $("send").disabled = true; $("stop").disabled = false;
  const t0 = performance.now();
  let reasoning = "", content = "", finish = null, usage = null;
  try {
    const res = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!res.ok) {
      const j = await res.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || ("HTTP " + res.status));
    }
    const reader = res.body.getReader();
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
          if (!line.startsWith("data: ")) continue;  // ": keep-alive" comments
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          for (const c of j.choices || []) {
            if (c.delta && c.delta.reasoning_content) { reasoning += c.delta.reasoning_content; thought.textContent = reasoning; }
            if (c.delta && c.delta.content) {
              if (!content) { details.open = false; summary.textContent = "Reasoning"; }
              content += c.delta.content; answer.textContent = content;
            }
            if (c.finish_reason) finish = c.finish_reason;
          }
          $("log").scrollTop = $("log").scrollHeight;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") {
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = "Error: " + e.message;
      div.appendChild(err);
    } else {
      finish = "stopped";
    }
  } finally {
    controller = null;
    $("send").disabled = false; $("stop").disabled = true;
  }
  if (!reasoning) details.remove(); else if (!content) summary.textContent = "Reasoning (no answer yet)";
  const sec = (performance.now() - t0) / 1000;
  stats.textContent = [finish && ("finish: " + finish),
                       usage && (usage.completion_tokens + " tokens (" + usage.completion_tokens_details.reasoning_tokens + " reasoning)"),
                       usage && ((usage.completion_tokens / sec).toFixed(1) + " tok/s")].filter(Boolean).join(" · ");
  history.push({ role: "assistant", content });
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value;
  if (!text.trim() || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("clear").addEventListener("click", () => { history.length = 0; $("log").innerHTML = ""; });
</script>
</body>
</html>
)HTML";
  return kPage;
}

}  // namespace r1::serve
