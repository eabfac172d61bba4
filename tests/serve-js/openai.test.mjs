// r1 serve with the official `openai` npm client: plain and streamed chat completions, the
// reasoning/content split, usage, stop sequences, n, completions, ≥16 concurrent requests equal to
// sequential runs, a disconnect freeing its slot, and the status of every kind of bad request.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { makeModel, startServer, metrics, waitFor } from "./lib.mjs";

const KEY = "test-key";
let model, server, client;

before(async () => {
  model = makeModel();
  server = await startServer(model.model, ["--api-key", KEY]);  // 16 slots
  client = new OpenAI({ apiKey: KEY, baseURL: server.url + "/v1", maxRetries: 0, timeout: 60000 });
});
after(async () => {
  if (server) assert.equal(await server.stop(), 0, "r1 serve exits cleanly on SIGTERM");
  model?.cleanup();
});

const ask = (content, extra = {}) => ({ model: "tiny", messages: [{ role: "user", content }], max_tokens: 24, ...extra });

// Streams a request with the client; returns what a non-streamed answer carries.
async function streamed(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  const out = { reasoning: "", content: "", finish: null, usage: null, chunks: 0, order: [] };
  for await (const chunk of stream) {
    ++out.chunks;
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      const d = c.delta;
      if (d.reasoning_content) { out.reasoning += d.reasoning_content; out.order.push("r"); }
      if (d.content) { out.content += d.content; out.order.push("c"); }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

async function plain(params) {
  const r = await client.chat.completions.create(params);
  const m = r.choices[0].message;
  return { reasoning: m.reasoning_content, content: m.content, finish: r.choices[0].finish_reason, usage: r.usage, raw: r };
}

// A seed whose sampled answer leaves the reasoning ("</think>") and then says something: the
// random model emits </think> with probability ~1/320 per token at a high temperature.
let splitSeed = null;
async function findSplitSeed() {
  if (splitSeed !== null) return splitSeed;
  for (let seed = 0; seed < 200; ++seed) {
    const r = await plain(ask("the quick brown fox", { seed, temperature: 2, max_tokens: 64 }));
    if (r.reasoning.length > 0 && r.content.length > 0) return (splitSeed = seed);
  }
  throw new Error("no seed in 0..199 produced </think>");
}

test("models, health and the page", async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].object, "model");
  assert.deepEqual(await (await fetch(server.url + "/health")).json(), { status: "ok" });
  const page = await fetch(server.url + "/");
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>r1 chat<\/title>/);
});

test("plain chat completion: fields, reasoning split and usage", async () => {
  const seed = await findSplitSeed();
  const r = await plain(ask("the quick brown fox", { seed, temperature: 2, max_tokens: 64 }));
  assert.equal(r.raw.object, "chat.completion");
  assert.match(r.raw.id, /^chatcmpl-/);
  assert.equal(r.raw.choices[0].message.role, "assistant");
  assert.ok(r.reasoning.length > 0 && r.content.length > 0);
  assert.ok(!r.reasoning.includes("</think>") && !r.content.includes("</think>"));
  assert.ok(["stop", "length"].includes(r.finish));
  const u = r.usage;
  assert.ok(u.prompt_tokens > 0);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  const rt = u.completion_tokens_details.reasoning_tokens;
  assert.ok(rt > 0 && rt < u.completion_tokens, `reasoning_tokens ${rt} of ${u.completion_tokens}`);
  if (r.finish === "length") assert.equal(u.completion_tokens, 64);
});

test("streamed chat equals the plain answer: reasoning deltas first, then content", async () => {
  const seed = await findSplitSeed();
  const params = ask("the quick brown fox", { seed, temperature: 2, max_tokens: 64 });
  const p = await plain(params);
  const s = await streamed(params);
  assert.equal(s.reasoning, p.reasoning);
  assert.equal(s.content, p.content);
  assert.equal(s.finish, p.finish);
  assert.deepEqual(s.usage, p.usage);
  const firstContent = s.order.indexOf("c");
  assert.ok(firstContent > 0 && !s.order.slice(firstContent).includes("r"), "no reasoning after content");
});

test("same seed, same answer; greedy is deterministic", async () => {
  const a = await plain(ask("over the lazy dog", { seed: 11, temperature: 0.9 }));
  const b = await plain(ask("over the lazy dog", { seed: 11, temperature: 0.9 }));
  assert.deepEqual([a.reasoning, a.content], [b.reasoning, b.content]);
  const g1 = await plain(ask("over the lazy dog", { temperature: 0 }));
  const g2 = await plain(ask("over the lazy dog", { temperature: 0, seed: 99 }));
  assert.deepEqual([g1.reasoning, g1.content], [g2.reasoning, g2.content]);
});

test("stop sequences cut the answer before the stop string", async () => {
  const full = await plain(ask("jumps over", { seed: 5, temperature: 1, max_tokens: 48 }));
  const text = full.reasoning;
  // A printable 2-character piece from the middle; the answer must end right before its first use.
  let stop = null;
  for (let i = 8; i + 2 <= text.length && !stop; ++i) {
    const s = text.slice(i, i + 2);
    if (/^[\x21-\x7e]{2}$/.test(s)) stop = s;
  }
  assert.ok(stop, "no printable piece in " + JSON.stringify(text));
  const cut = await plain(ask("jumps over", { seed: 5, temperature: 1, max_tokens: 48, stop: [stop, "\u0000never"] }));
  assert.equal(cut.reasoning, text.slice(0, text.indexOf(stop)));
  assert.equal(cut.content, "");
  assert.equal(cut.finish, "stop");
  const cs = await streamed(ask("jumps over", { seed: 5, temperature: 1, max_tokens: 48, stop }));
  assert.equal(cs.reasoning, cut.reasoning);
  assert.equal(cs.finish, "stop");
});

test("n choices use seeds seed, seed+1, …", async () => {
  const r = await client.chat.completions.create(ask("the lazy dog", { n: 3, seed: 40, temperature: 1 }));
  assert.equal(r.choices.length, 3);
  for (let i = 0; i < 3; ++i) {
    const one = await plain(ask("the lazy dog", { seed: 40 + i, temperature: 1 }));
    assert.equal(r.choices[i].index, i);
    assert.equal(r.choices[i].message.reasoning_content, one.reasoning);
    assert.equal(r.choices[i].message.content, one.content);
  }
});

test("completions endpoint", async () => {
  const r = await client.completions.create({ model: "tiny", prompt: "the quick brown", max_tokens: 8, seed: 1, temperature: 0, ignore_eos: true });
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  assert.equal(r.usage.completion_tokens, 8);
  const s = await client.completions.create({ model: "tiny", prompt: "the quick brown", max_tokens: 8, seed: 1, temperature: 0, ignore_eos: true, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.text ?? "";
  assert.equal(text, r.choices[0].text);
});

test("20 concurrent requests (16 slots, 4 queued) equal the same requests run one by one", async () => {
  const reqs = [];
  for (let i = 0; i < 20; ++i)
    reqs.push({ stream: i % 2 === 0, params: ask(["the quick", "brown fox", "lazy dog", "jumps"][i % 4] + " " + i,
      { seed: 100 + i, temperature: i % 3 === 0 ? 0 : 1.2, max_tokens: 16 + (i % 5) * 8 }) });
  const run = (r) => (r.stream ? streamed(r.params) : plain(r.params)).then((o) => [o.reasoning, o.content, o.finish, o.usage.completion_tokens]);
  const sequential = [];
  for (const r of reqs) sequential.push(await run(r));
  const before = await metrics(server.url);
  const concurrent = await Promise.all(reqs.map(run));
  const after = await metrics(server.url);
  assert.deepEqual(concurrent, sequential);
  // The concurrent run really shared decode steps.
  const steps = after["r1_decode_steps_total"] - before["r1_decode_steps_total"];
  const tokens = after["r1_generated_tokens_total"] - before["r1_generated_tokens_total"];
  assert.ok(tokens > 2 * steps, `tokens ${tokens} over ${steps} steps`);
});

test("a client that disconnects mid-stream frees its slot", async () => {
  const one = await startServer(model.model, ["--max-batch", "1"]);
  try {
    const c = new OpenAI({ apiKey: "x", baseURL: one.url + "/v1", maxRetries: 0, timeout: 60000 });
    const stream = await c.chat.completions.create({ ...ask("the quick brown fox"), max_tokens: 4000, ignore_eos: true, stream: true });
    let n = 0;
    for await (const chunk of stream) { if (++n === 3) break; }  // leaving the loop aborts the request
    assert.ok(await waitFor(async () => (await metrics(one.url))["r1_requests_cancelled_total"] === 1),
              "the server noticed the disconnect");
    assert.ok(await waitFor(async () => (await metrics(one.url))["r1_batch_size"] === 0), "the slot is free");
    // The only slot serves the next request at once.
    const t0 = Date.now();
    const r = await c.chat.completions.create(ask("the lazy dog", { max_tokens: 8, ignore_eos: true }));
    assert.equal(r.usage.completion_tokens, 8);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await one.stop();
  }
});

test("bad requests get their status in the OpenAI error format", async () => {
  const post = (body, headers = {}) => fetch(server.url + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + KEY, ...headers }, body });
  const expectError = async (res, status) => {
    assert.equal(res.status, status);
    const j = await res.json();
    assert.equal(typeof j.error.message, "string");
    assert.equal(typeof j.error.type, "string");
    return j.error;
  };
  await expectError(await post("{not json"), 400);
  await expectError(await post(JSON.stringify({ messages: "hi" })), 400);
  await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: "5" })), 400);
  await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: "x" }], temperature: "hot" })), 400);
  await expectError(await post(JSON.stringify({ messages: [] })), 400);
  await expectError(await post(JSON.stringify({ messages: [{ role: "wizard", content: "x" }] })), 400);
  await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: 7 }] })), 400);
  const long = "the quick brown fox ".repeat(2000);  // > 4096 tokens
  const e = await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: long }] })), 400);
  assert.equal(e.code, "context_length_exceeded");
  await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 5000 })), 400);
  await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: "x" }] }), { Authorization: "Bearer wrong" }), 401);
  await expectError(await post(JSON.stringify({ messages: [{ role: "user", content: "x" }] }), { Authorization: "" }), 401);
  await expectError(await post("x".repeat(2 << 20)), 413);
  // The client raises APIError with the status too.
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [] }), (err) => err.status === 400);
  await assert.rejects(new OpenAI({ apiKey: "nope", baseURL: server.url + "/v1", maxRetries: 0 }).models.list(),
                       (err) => err.status === 401);
  // The server is still fine.
  assert.equal((await fetch(server.url + "/health")).status, 200);
});

test("a full server answers 503", async () => {
  // One slot and no waiting room: while a request runs, the next one is refused.
  const small = await startServer(model.model, ["--max-batch", "1", "--max-queue", "0"]);
  try {
    const c = new OpenAI({ apiKey: "x", baseURL: small.url + "/v1", maxRetries: 0, timeout: 60000 });
    const a = await c.chat.completions.create({ ...ask("the quick"), max_tokens: 4000, ignore_eos: true, stream: true });
    const it = a[Symbol.asyncIterator]();
    await it.next();  // the first chunk: it holds the slot
    await assert.rejects(c.chat.completions.create(ask("the lazy dog")), (err) => err.status === 503 && err.code === "overloaded");
    a.controller.abort();
    // Once the slot is free again, requests are served.
    assert.ok(await waitFor(async () => (await metrics(small.url))["r1_batch_size"] === 0));
    const r = await c.chat.completions.create(ask("the lazy dog", { max_tokens: 4, ignore_eos: true }));
    assert.equal(r.usage.completion_tokens, 4);
  } finally {
    await small.stop();
  }
});
