// Writes the expected ids and decodes of the reference tokenizers for the committed corpus into
// tests/tokenizer/data/ (see the README there). Run after `npm install`: node make_fixtures.mjs
import fs from "node:fs";
import path from "node:path";
import { dataDir, families, loadTokenizer, readCorpus, readByteCorpus, encode } from "./ref.mjs";

const corpus = readCorpus();
const byteCorpus = readByteCorpus();
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

let seed = 12345;
function rnd() {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 4294967296;
}

for (const [name, dir] of Object.entries(families)) {
  const t0 = Date.now();
  const tok = loadTokenizer(dir);
  const ids = corpus.map((s) => encode(tok, s));
  fs.writeFileSync(path.join(dataDir, `ids_${name}.txt`), ids.map((x) => x.join(" ")).join("\n") + "\n");
  const byteIds = byteCorpus.map((b) => encode(tok, utf8.decode(b)));
  fs.writeFileSync(path.join(dataDir, `ids_bytes_${name}.txt`), byteIds.map((x) => x.join(" ")).join("\n") + "\n");
  // Decodes: the corpus lines whose decode is not the input (clean-up rules), then random id
  // sequences that cut characters apart and mix in special tokens.
  const dec = [];
  ids.forEach((x, i) => {
    const d = x.length ? tok.decode(x) : "";
    if (d !== corpus[i]) dec.push({ line: i, text: d });
  });
  const vocab = tok.model.vocab.length;
  const added = tok.added_tokens.map((t) => t.id);
  for (let k = 0; k < 300; ++k) {
    const n = 1 + Math.floor(rnd() * 12);
    const seq = [];
    for (let j = 0; j < n; ++j) {
      const r = rnd();
      if (r < 0.1) seq.push(added[Math.floor(rnd() * added.length)]);
      else if (r < 0.5) seq.push(Math.floor(rnd() * 400));  // single bytes and short pieces
      else seq.push(Math.floor(rnd() * vocab));
    }
    const ok = seq.filter((id) => tok.model.vocab[id] !== undefined);
    if (ok.length === 0) continue;
    dec.push({ ids: ok, text: tok.decode(ok), skip: tok.decode(ok, { skip_special_tokens: true }) });
  }
  fs.writeFileSync(path.join(dataDir, `decode_${name}.jsonl`), dec.map((x) => JSON.stringify(x)).join("\n") + "\n");
  console.error(`${name}: ${corpus.length} + ${byteCorpus.length} lines, ${dec.length} decodes, ${Date.now() - t0} ms`);
}
