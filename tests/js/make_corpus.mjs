// Writes tests/tokenizer/data/corpus.jsonl (one JSON string per line) and corpus_bytes.txt (hex of
// raw byte strings, many not valid UTF-8). Deterministic: a fixed-seed PRNG mixes hand-written
// fragments of every kind the tokenizers must get right. Run: node make_corpus.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, "..", "tokenizer", "data");

let seed = 0x9e3779b9;
function rnd() {  // mulberry32
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

const english = [
  "Hello, world!", "The quick brown fox jumps over the lazy dog.",
  "It's a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
  "I'm sure we'll manage; they've done it before, and you'd agree it's fine.",
  "DON'T SHOUT! I'LL HEAR YOU. WE'RE RIGHT HERE.", "She said: \"Why not?\" — and left.",
  "Mr. Smith's car (a 1967 Mustang) cost $45,000.00 in 2019.", "e.g. i.e. etc. vs. a.m. p.m.",
  "What's the time? It's 10:45 p.m. on Tuesday.", "Reinforcement learning with verifiable rewards works.",
  "Let x = 3. Then x^2 + 2x + 1 = 16, so (x+1)^2 = 16.", "Please reason step by step, and put your final answer within \\boxed{}.",
  "GRPO normalizes advantages within each group of sampled outputs.", "well-known, state-of-the-art, up-to-date",
  "naïve café résumé coöperate façade Zürich São Paulo", "The year 1984 was 40 years ago; 2024 - 1984 = 40.",
  "a.b\n\nc", "  two  spaces\n\nx", "Tabs\tseparate\tcolumns\tlike\tthis", "trailing spaces   ", "   leading spaces",
  "Hi", "OK", "x", "", " ", "\n", "I", "A B C D E F G", "ALLCAPSWORDSWITHOUTSPACES", "camelCaseIdentifierName",
  "snake_case_identifier_name", "kebab-case-identifier-name", "email@example.com", "https://www.example.org/path?q=1&r=two#frag",
  "Questions?! Really?!... Yes!!!", "\"Quoted\" 'single' `backtick` «guillemets» „German“ ‘curly’ “double”",
  "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D", "rock'n'roll o'clock y'all ma'am",
];
const code = [
  "#include <stdio.h>\nint main(void) {\n    printf(\"hello\\n\");\n    return 0;\n}\n",
  "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
  "const add = (a, b) => a + b;\nconsole.log(add(2, 3)); // 5\n",
  "fn main() {\n\tlet v: Vec<i32> = (0..10).map(|x| x * x).collect();\n\tprintln!(\"{:?}\", v);\n}",
  "<div class=\"row\"><span id='x'>&amp; &lt;tag&gt;</span></div>",
  "{\"name\": \"r1\", \"version\": [1, 2, 3], \"ok\": true, \"none\": null}",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
  "for i in $(seq 1 10); do echo \"$i\"; done && exit 0 || true",
  "if (a != b && c <= d || !e) { x += 1; y -= 2; z *= 3; w /= 4; }",
  "    \n        \n\t\t\n", "x = [1,2,3]\r\ny = {'a':1}\r\n", "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n",
  "template <typename T>\nstd::vector<T> Sort(std::vector<T> v) { std::sort(v.begin(), v.end()); return v; }",
  "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$", "a[i++] = b[--j] << 2 >> 1 ^ 0xFF | ~mask & ~~x;",
  "assert(x == y);;;;;;", "::std::move(x)->y.z", "/* comment */ // another\n/** doc */",
];
const numbers = [];
for (let n = 1; n <= 40; ++n) numbers.push(Array.from({ length: n }, (_, i) => String((i * 7 + n) % 10)).join(""));
numbers.push("1,234,567", "1.234.567,89", "3.14159265358979", "-42", "+7", "1e10", "6.022e23", "2025-01-20",
  "12:34:56", "+1 (555) 123-4567", "0xDEADBEEF", "0b1010", "1st 2nd 3rd 4th", "١٢٣٤٥٦٧", "१२३४५", "１２３４５",
  "²³¹", "Ⅻ Ⅳ ⅷ", "½ ¾ ⅓", "100%", "$1,000,000", "€9.99", "¥1000", "10^6", "1/2/3/4", "v1.2.3-rc.4", "192.168.0.1",
  "123abc456def", "abc123", "007", "0000000000", "99 bottles", "3 × 4 = 12", "∑_{i=1}^{n} i = n(n+1)/2");
const cjk = [
  "你好，世界", "我们今天去公园散步吧。", "深度求索发布了新的推理模型。", "中华人民共和国成立于1949年10月1日。",
  "こんにちは、世界！", "今日はとても良い天気ですね。", "カタカナとひらがなと漢字が混ざった文章です。", "東京タワーは333メートルです。",
  "ｶﾀｶﾅ（半角）", "안녕하세요, 세계!", "대한민국의 수도는 서울입니다.", "한국어 텍스트와 English mixed 텍스트",
  "繁體中文測試：臺灣、香港。", "「引用」『二重』【括弧】", "〇一二三四五六七八九十百千万亿",
];
const scripts = [
  "مرحبا بالعالم", "اللغة العربية جميلة جداً.", "नमस्ते दुनिया", "हिन्दी में लिखा गया वाक्य।", "Привет, мир! Как дела?",
  "Γειά σου Κόσμε", "שלום עולם", "สวัสดีชาวโลก", "Xin chào thế giới, tiếng Việt có dấu.", "Ελληνικά: αβγδεζηθ",
  "Türkçe İstanbul ıi", "Ærøskøbing Åland", "ქართული ენა", "Հայերեն", "አማርኛ", "தமிழ் மொழி", "বাংলা ভাষা",
];
const emoji = [
  "😀😃😄😁", "👨‍👩‍👧‍👦 family", "👍🏽 👍🏿 👋🏻", "🇯🇵🇺🇸🇩🇪🇨🇳", "🏳️‍🌈 🏴‍☠️", "1️⃣2️⃣#️⃣", "❤️‍🔥 🧑‍💻 👩🏾‍🚀",
  "I ❤ NY", "☕️☕", "🤖: beep", "🐍 Python 🦀 Rust", "✅ done ❌ failed ⚠️ warn", "🎉🎉🎉🎉🎉🎉🎉🎉", "→ ← ↑ ↓ ⇒ ∀ ∃ ∈ ≤ ≥ ≠",
];
const combining = [
  "e\u0301 a\u0300 o\u0308 n\u0303", "Cafe\u0301", "\u1100\u1161\u11A8", "A\u030A\u0301", "q\u0307\u0323",
  "Z\u0351\u0352\u0353a\u0354\u0355l\u0356\u0357g\u0358o", "\u0915\u094D\u0937", "e\u0301\u0301\u0301", "\u212B \u2126 \u00C5",
  "ﬁ ﬂ ﬀ", "\u0041\u030A\u0328", "ḍ̇ ḍ̇", "\u00e9\u0301",
];
const spaces = [
  " ".repeat(2), " ".repeat(3), " ".repeat(17), " ".repeat(64), "\n".repeat(2), "\n".repeat(9), "\r\n\r\n", "\t\t\t",
  " \n \n ", "\u00a0\u00a0", "\u3000", "\u2028", "\u2029", "\u200b", "\u2009thin", "\v\f", " \t \n \r ", "\ufeffBOM",
  "x\u0085y",
];
const specials = [
  "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<think>", "</think>",
  "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>", "<|im_start|>", "<|im_end|>",
  "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<｜User", "<|im_sta", "<thin", "<｜▁pad▁｜>",
  "<｜place▁holder▁no▁7｜>", "<tool_call>", "<|reserved_special_token_5|>",
];
const longWords = [
  "a".repeat(300), "ab".repeat(250), "supercalifragilisticexpialidocious".repeat(8),
  "Pneumonoultramicroscopicsilicovolcanoconiosis", "x".repeat(1000), "九".repeat(200), "😀".repeat(60),
  "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCBkYXRhIGZvciB0ZXN0aW5n".repeat(3), "1".repeat(100),
  "-".repeat(80), "=".repeat(40), ".".repeat(30), "!?".repeat(20),
];
const pools = [english, code, numbers, cjk, scripts, emoji, combining, spaces, specials, longWords];
const seps = ["", " ", " ", " ", "\n", "\n\n", "\t", ", ", ". ", "  ", "\r\n", " - "];

const lines = [];
for (const pool of pools) for (const s of pool) lines.push(s);
// Every fragment once next to special tokens and whitespace, then random mixes.
for (const s of specials) lines.push(`Hi ${s} there`, `${s}${pick(english)}`, `${pick(cjk)}${s}\n`);
while (lines.length < 2400) {
  const parts = [];
  const n = int(1, 5);
  for (let k = 0; k < n; ++k) {
    let frag = pick(pick(pools));
    if (rnd() < 0.15) frag = frag.toUpperCase();
    if (rnd() < 0.1) frag = frag.slice(0, int(0, frag.length));
    parts.push(frag);
    if (k + 1 < n) parts.push(pick(seps));
  }
  lines.push(parts.join(""));
}
// Slicing by UTF-16 units can cut a surrogate pair: keep only well-formed strings.
const wellFormed = lines.filter((s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s));
fs.writeFileSync(path.join(out, "corpus.jsonl"), wellFormed.map((s) => JSON.stringify(s)).join("\n") + "\n");

// Raw byte strings: truncated/overlong/surrogate/stray-continuation sequences among text.
const bad = [
  [0x80], [0xff], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe4, 0xbd], [0xf0, 0x9f, 0x98], [0xc3], [0xfe, 0xfe, 0xff, 0xff], [0xc2, 0x41], [0xe2, 0x82, 0x41], [0x00], [0x7f, 0x1b],
];
const byteLines = [];
const enc = new TextEncoder();
for (let k = 0; k < 300; ++k) {
  const chunks = [];
  const n = int(1, 6);
  for (let j = 0; j < n; ++j) {
    if (rnd() < 0.5) chunks.push(...pick(bad));
    else chunks.push(...enc.encode(pick(pick([english, cjk, emoji, numbers, scripts])).slice(0, 40)));
  }
  byteLines.push(Buffer.from(chunks).toString("hex"));
}
fs.writeFileSync(path.join(out, "corpus_bytes.txt"), byteLines.join("\n") + "\n");
console.error(`corpus: ${wellFormed.length} strings, ${byteLines.length} byte strings`);
