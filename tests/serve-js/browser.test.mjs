// The chat page at `/` in a real browser: Debian's chromium driven by playwright-core loads it,
// sends a message, sees the streamed answer and the reasoning block. A screenshot is kept as a test
// artifact ($R1_ARTIFACT_DIR, default build/release/artifacts/serve-browser.png). Exits 77 (ctest:
// skipped) when no chromium is installed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { makeModel, startServer } from "./lib.mjs";

const CHROMIUM = process.env.R1_CHROMIUM || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);
if (!CHROMIUM) {
  console.log("# skipped: no chromium (scripts/install-deps.sh installs Debian's)");
  process.exit(77);
}
const ARTIFACTS = process.env.R1_ARTIFACT_DIR || new URL("../../build/release/artifacts", import.meta.url).pathname;

let model, server, browser;
before(async () => {
  model = makeModel();
  server = await startServer(model.model);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in a container has no user namespaces for the sandbox; nothing but loopback is visited.
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--no-first-run", "--proxy-server=direct://", "--proxy-bypass-list=*"],
    timeout: 60000,
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
  model?.cleanup();
});

// A seed whose answer has both reasoning and content (see openai.test.mjs).
async function splitSeed() {
  for (let seed = 0; seed < 200; ++seed) {
    const r = await fetch(server.url + "/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "the quick brown fox" }], seed, temperature: 2, max_tokens: 64 }),
    }).then((x) => x.json());
    const m = r.choices[0].message;
    if (m.reasoning_content && m.content) return seed;
  }
  throw new Error("no seed produced </think>");
}

test("chat page streams an answer with a reasoning block", { timeout: 120000 }, async () => {
  const seed = await splitSeed();
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(server.url + "/", { waitUntil: "load" });
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("context"));
  await page.fill("#temperature", "2");
  await page.fill("#max_tokens", "64");
  await page.fill("#seed", String(seed));
  await page.fill("#input", "the quick brown fox");
  await page.press("#input", "Enter");
  // Done when the stats line under the answer shows the finish reason.
  await page.waitForFunction(() => /finish: /.test(document.querySelector(".assistant .stats")?.textContent || ""),
                             null, { timeout: 60000 });
  const answer = await page.textContent(".assistant .answer");
  const reasoning = await page.textContent(".assistant details.reasoning > div");
  assert.ok(answer.length > 0, "the answer is shown");
  assert.ok(reasoning.length > 0, "the reasoning block is shown");
  assert.equal(await page.locator(".user").textContent(), "the quick brown fox");
  // The page got the same text the API gives.
  const api = await fetch(server.url + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "the quick brown fox" }], seed, temperature: 2,
                           top_p: 0.95, top_k: 0, max_tokens: 64 }),
  }).then((x) => x.json());
  assert.equal(answer, api.choices[0].message.content);
  assert.equal(reasoning, api.choices[0].message.reasoning_content);
  // The reasoning block collapses once the answer starts; it opens on a click.
  assert.equal(await page.$eval(".assistant details.reasoning", (d) => d.open), false);
  await page.click(".assistant details.reasoning summary");
  assert.equal(await page.$eval(".assistant details.reasoning", (d) => d.open), true);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "serve-browser.png"), fullPage: true });
  assert.deepEqual(errors, []);
});
