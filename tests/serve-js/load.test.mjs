// A bounded loopback load test: 64 clients × 4 requests each, streamed and plain, about a third of
// them hanging up at a random moment. The server must stay up, /health must answer throughout,
// every request that was not abandoned must complete, nothing may stay in the batch or the queue,
// and the resident memory must come back to its idle level (measured after a warm-up burst, so
// that allocator pools and thread stacks already exist).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { makeModel, startServer, metrics, waitFor } from "./lib.mjs";

const CLIENTS = 64, ROUNDS = 4;
let model, server;

before(async () => {
  model = makeModel();
  server = await startServer(model.model, ["--max-batch", "16"]);
});
after(async () => {
  if (server) assert.equal(await server.stop(), 0, "r1 serve exits cleanly (and, under ASan, without leaks)");
  model?.cleanup();
});

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m[1]);
}

// A small deterministic RNG (mulberry32) so that a failing run can be replayed.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// One request; resolves to "ok", "aborted" or "busy" (503). Every await races the client's own
// abort (undici may leave res.text() pending when the abort lands between the headers and the
// body) and a 60 s guard, so that a hung server request fails the test with its description.
async function one(rand, i) {
  const stream = rand() < 0.5;
  const abort = rand() < 0.35;
  const controller = new AbortController();
  const body = { messages: [{ role: "user", content: `the quick brown fox ${i}` }], max_tokens: 8 + Math.floor(rand() * 56),
                 temperature: 1, seed: i, stream };
  let guard;
  const stop = new Promise((_, reject) => {
    controller.signal.addEventListener("abort", () => reject(Object.assign(new Error("aborted"), { name: "AbortError" })));
    guard = setTimeout(() => reject(new Error(`request ${i} (stream ${stream}) got no complete answer in 60 s`)), 60000);
  });
  stop.catch(() => {});
  if (abort) setTimeout(() => controller.abort(), 1 + Math.floor(rand() * 40));
  try {
    const res = await Promise.race([fetch(server.url + "/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal: controller.signal,
    }), stop]);
    if (res.status === 503) { await Promise.race([res.text(), stop]); return "busy"; }
    assert.equal(res.status, 200);
    const text = await Promise.race([res.text(), stop]);
    if (stream) assert.ok(text.trimEnd().endsWith("data: [DONE]"), "stream ends with [DONE]");
    else assert.ok(JSON.parse(text).choices[0].finish_reason);
    return "ok";
  } catch (e) {
    if (e.name === "AbortError" || controller.signal.aborted) return "aborted";
    throw e;
  } finally {
    clearTimeout(guard);
  }
}

async function load(rounds, seed) {
  const counts = { ok: 0, aborted: 0, busy: 0 };
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const rand = rng(seed * 1000 + c);
    for (let r = 0; r < rounds; ++r) counts[await one(rand, c * 100 + r)]++;
  }));
  return counts;
}

test("64 clients with random disconnects", { timeout: 180000 }, async () => {
  const pid = server.child.pid;
  await load(1, 1);  // warm-up burst
  assert.ok(await waitFor(async () => (await metrics(server.url))["r1_batch_size"] === 0, { timeoutMs: 30000 }));
  const idle = rssKiB(pid);

  // /health every 100 ms while the load runs; each answer must come within 2 s.
  let healthChecks = 0, healthWorst = 0, running = true;
  const health = (async () => {
    while (running) {
      const t0 = Date.now();
      const res = await fetch(server.url + "/health", { signal: AbortSignal.timeout(2000) });
      assert.equal(res.status, 200);
      await res.text();
      healthWorst = Math.max(healthWorst, Date.now() - t0);
      ++healthChecks;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t0 = Date.now();
  const counts = await load(ROUNDS, 2);
  running = false;
  await health;
  const seconds = (Date.now() - t0) / 1000;
  console.log(`# ${JSON.stringify(counts)} in ${seconds.toFixed(1)} s; /health ${healthChecks} checks, worst ${healthWorst} ms`);
  assert.equal(counts.ok + counts.aborted + counts.busy, CLIENTS * ROUNDS);
  assert.ok(counts.aborted > 0 && counts.ok > CLIENTS, JSON.stringify(counts));
  assert.ok(healthChecks > 0);

  // Everything drains: no running sequence, no queued request, no KV positions held.
  assert.ok(await waitFor(async () => {
    const m = await metrics(server.url);
    return m["r1_batch_size"] === 0 && m["r1_queue_depth"] === 0 && m["r1_kv_cache_tokens"] === 0;
  }, { timeoutMs: 30000 }), "the engine drains");
  const m = await metrics(server.url);
  assert.equal(m["r1_requests_submitted_total"], m["r1_requests_finished_total"] + m["r1_requests_cancelled_total"]);
  assert.ok(m["r1_client_disconnects_total"] > 0);
  const settled = rssKiB(pid);
  console.log(`# RSS idle ${idle} KiB, after load ${settled} KiB`);
  // AddressSanitizer's quarantine keeps freed memory on purpose: the RSS check means nothing there.
  if (!process.env.ASAN_OPTIONS)
    assert.ok(settled <= idle * 1.1 + 16 * 1024, `RSS grew from ${idle} KiB to ${settled} KiB`);
  assert.equal(server.child.exitCode, null, "the server is still running");
});
