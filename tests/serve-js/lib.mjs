// Shared helpers of the r1 serve end-to-end tests: a tiny model directory (trained tokenizer +
// random checkpoint whose vocabulary covers it), and an `r1 serve` child process on a random
// loopback port. Everything stays on 127.0.0.1; every wait is bounded.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const R1 = process.env.R1_BINARY || new URL("../../build/release/r1", import.meta.url).pathname;

// A model whose random weights still make the R1 chat template work: the trained tokenizer has
// the chat and <think> tokens; max_position_embeddings 4096 gives room for long generations.
export function makeModel() {
  const dir = mkdtempSync(join(tmpdir(), "r1-serve-js-"));
  let corpus = "";
  for (let i = 0; i < 200; ++i) corpus += `the quick brown fox jumps over the lazy dog ${i * 37}, then thinks and answers.\n`;
  writeFileSync(join(dir, "corpus.txt"), corpus);
  const run = (...args) => execFileSync(R1, args, { stdio: ["ignore", "ignore", "pipe"], timeout: 60000 });
  run("tokenizer", "train", "--corpus", join(dir, "corpus.txt"), "--vocab-size", "320", "--out", join(dir, "model"));
  run("new-model", "--preset", "tiny", "--out", join(dir, "base"));
  const cfg = JSON.parse(readFileSync(join(dir, "base", "config.json"), "utf8"));
  cfg.vocab_size = 320;
  cfg.max_position_embeddings = 4096;
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  run("new-model", "--config", join(dir, "config.json"), "--out", join(dir, "model"), "--seed", "5");
  return { dir, model: join(dir, "model"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// Starts `r1 serve MODEL --port 0 --json ...args`; resolves once it listens.
export function startServer(model, args = [], { timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(R1, ["serve", model, "--port", "0", "--json", "--threads", "1", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "", err = "";
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error("r1 serve did not start:\n" + err)); }, timeoutMs);
    child.stderr.on("data", (d) => { err += d; });
    child.stdout.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      const info = JSON.parse(out.slice(0, nl));
      resolve({
        child, port: info.port, url: `http://127.0.0.1:${info.port}`,
        stderr: () => err,
        stop: () => new Promise((res) => {
          if (child.exitCode !== null) return res(child.exitCode);
          const kill = setTimeout(() => child.kill("SIGKILL"), 10000);
          child.once("exit", (code) => { clearTimeout(kill); res(code); });
          child.kill("SIGTERM");
        }),
      });
    });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`r1 serve exited with ${code}:\n${err}`)); });
  });
}

// Prometheus text → { name{labels}: value }.
export async function metrics(url) {
  const text = await (await fetch(url + "/metrics", { signal: AbortSignal.timeout(10000) })).text();
  const m = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    m[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return m;
}

export async function waitFor(pred, { timeoutMs = 10000, stepMs = 50 } = {}) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}
