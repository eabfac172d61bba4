#!/usr/bin/env bash
# The main job.
#
# The full R1 recipe (`r1 run`: tokenizer → pretrain → cold-start SFT → GRPO → rejection
# sampling → distillation → report) is not built yet. Until it is, this demonstrates the
# inference engine end to end: it writes a small random DeepSeek-V3-architecture checkpoint
# (MLA + MoE, bf16), describes it, checks it against the PyTorch reference fixture, generates
# from it with the latent KV cache, and benchmarks prefill and decode.
set -euo pipefail
cd "$(dirname "$0")/.."
R1=build/release/r1
out=runs/demo
mkdir -p "$out"

echo "== r1 new-model --preset moe-small (random weights; the trained recipe comes later)"
[[ -f $out/moe-small/model.safetensors ]] || $R1 new-model --preset moe-small --dtype bf16 --out $out/moe-small --seed 1
$R1 info $out/moe-small

echo
echo "== r1 perplexity on the PyTorch reference fixture (expected nll: $(grep -o '"nll": [0-9.]*' tests/fixtures/tiny-fp8/expected.json))"
$R1 perplexity tests/fixtures/tiny-fp8 --ids tests/fixtures/tiny-fp8/ids.txt

echo
echo "== r1 generate (random weights, so the ids are noise; sampled at T=0.7)"
echo "1 42 7 1999 31" > $out/prompt.ids
$R1 generate $out/moe-small --ids $out/prompt.ids --max-new-tokens 24 --temperature 0.7 --top-p 0.95 --seed 1 --ignore-eos

echo
echo "== r1 bench (memory-resident weights)"
$R1 bench $out/moe-small --no-mmap --reps 3
