// Reference encoder with the same interface as `r1 tokenize --jsonl FILE --no-special`:
//   node encode_jsonl.mjs TOKENIZER_DIR FILE.jsonl > ids.jsonl
// (one JSON string per input line, one JSON array of ids per output line). Used by the e2e test
// of trained tokenizers and by the encode benchmark (which reports MB/s on stderr).
import fs from "node:fs";
import { loadTokenizer } from "./ref.mjs";

const [dir, file] = process.argv.slice(2);
const tok = loadTokenizer(dir);
const lines = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
const t0 = process.hrtime.bigint();
const out = lines.map((s) => JSON.stringify(s.length ? tok.encode(s, { add_special_tokens: false }) : []));
const sec = Number(process.hrtime.bigint() - t0) / 1e9;
const bytes = lines.reduce((n, s) => n + Buffer.byteLength(s), 0);
process.stdout.write(out.join("\n") + "\n");
console.error(`js: encoded ${lines.length} lines, ${(bytes / 1e6).toFixed(2)} MB in ${sec.toFixed(3)} s: ${(bytes / 1e6 / sec).toFixed(2)} MB/s`);
