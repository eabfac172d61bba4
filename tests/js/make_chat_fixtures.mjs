// Writes tests/tokenizer/data/chat_r1.jsonl: conversations rendered by a real Jinja engine (the
// @huggingface/jinja copy inside @lenml/tokenizers) with the DeepSeek-R1 chat template, and their
// ids under the DeepSeek-V3 tokenizer. The R1 template is the V3 template shipped in the npm
// package with R1's two changes (spec §8.2): earlier assistant turns keep only the text after
// their last "</think>", and the generation prompt is "<｜Assistant｜><think>\n". This Jinja
// version lacks str.split, so `split_last(s, sep)` (= s.split(sep)[-1]) is passed in as a function.
// Run: node make_chat_fixtures.mjs
import fs from "node:fs";
import path from "node:path";
import { dataDir, families, loadTokenizer } from "./ref.mjs";

export function r1Template(v3) {
  const assistantOld = "{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}";
  const assistantNew =
    "{% set content = message['content'] %}{% if '</think>' in content %}" +
    "{% set content = split_last(content, '</think>') %}{% endif %}" +
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}";
  const genOld = "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}";
  const genNew = "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";
  if (!v3.includes(assistantOld) || !v3.includes(genOld)) throw new Error("unexpected V3 template");
  return v3.replace(assistantOld, assistantNew).replace(genOld, genNew);
}

const call = (name, args) => ({ type: "function", function: { name, arguments: args } });
const conversations = [
  [{ role: "user", content: "What is 1+1?" }],
  [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "Hi" }],
  [{ role: "system", content: "Rule one." }, { role: "system", content: "Rule two." }, { role: "user", content: "Go" }],
  [
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "<think>\n2+2 is 4.\n</think>\n\nThe answer is 4." },
    { role: "user", content: "And 3+3?" },
  ],
  [
    { role: "user", content: "Think twice." },
    { role: "assistant", content: "first</think>middle</think>\n\nfinal answer" },
    { role: "user", content: "Again" },
    { role: "assistant", content: "No reasoning here." },
  ],
  [
    { role: "user", content: "你好，请用中文回答。" },
    { role: "assistant", content: "好的。</think>\n\n你好！" },
    { role: "user", content: "1234567 × 89 = ?" },
  ],
  [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [call("get_weather", "{\"city\": \"Paris\"}")] },
    { role: "tool", content: "{\"temp\": 21}" },
    { role: "assistant", content: "It is 21 °C in Paris." },
    { role: "user", content: "Thanks" },
  ],
  [
    { role: "user", content: "Two cities" },
    { role: "assistant", content: null, tool_calls: [call("w", "{\"c\":\"A\"}"), call("w", "{\"c\":\"B\"}")] },
    { role: "tool", content: "A: 1" },
    { role: "tool", content: "B: 2" },
  ],
  [{ role: "user", content: "Spaces  and\ttabs\n\nand <think> inside" }, { role: "assistant", content: "ok" }],
  [{ role: "user", content: "" }],
];

const v3Dir = families.deepseek_v3;
const v3cfg = JSON.parse(fs.readFileSync(path.join(v3Dir, "tokenizer_config.json"), "utf8"));
const template = r1Template(v3cfg.chat_template);
const tok = loadTokenizer(v3Dir);
// R1's vocabulary: placeholders 798/799 of V3 become <think> / </think>.
const r1 = loadTokenizer(v3Dir, (tj) => {
  for (const t of tj.added_tokens) {
    if (t.id === 128798) Object.assign(t, { content: "<think>", special: false, normalized: true });
    if (t.id === 128799) Object.assign(t, { content: "</think>", special: false, normalized: true });
  }
});
const lines = [];
for (const messages of conversations) {
  for (const add_generation_prompt of [false, true]) {
    const text = tok.apply_chat_template(messages, {
      chat_template: template, add_generation_prompt, tokenize: false,
      split_last: (s, sep) => (s.value ?? s).split(sep.value ?? sep).at(-1),
    });
    const ids = text.length ? tok.encode(text, { add_special_tokens: false }) : [];
    const ids_r1 = text.length ? r1.encode(text, { add_special_tokens: false }) : [];
    lines.push(JSON.stringify({ messages, add_generation_prompt, text, ids_deepseek_v3: ids, ids_r1 }));
  }
}
fs.writeFileSync(path.join(dataDir, "chat_r1.jsonl"), lines.join("\n") + "\n");
console.error(`chat: ${lines.length} renderings`);
