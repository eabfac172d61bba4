#!/usr/bin/env bash
# The main job: the whole R1 recipe in one command (r1 run with the built-in recipe,
# recipes/default.json) — tokenizer → pretrain → cold-start SFT → GRPO → rejection sampling →
# distillation → evaluation → runs/default/report.{md,html,json}. Re-running resumes after the
# last finished stage.
set -euo pipefail
cd "$(dirname "$0")/.."
build/release/r1 run --out runs/default "$@"
echo
echo "report: runs/default/report.md (and report.html, report.json)"
