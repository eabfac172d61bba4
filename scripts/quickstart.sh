#!/usr/bin/env bash
# The README's two commands:
#   bash scripts/quickstart.sh run    install what is missing, build (release), run the main job
#   bash scripts/quickstart.sh test   install what is missing, build (release), run every test
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
what="${1:-run}"

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release

case "$what" in
  run)
    bash scripts/main-job.sh
    ;;
  test)
    ctest --preset release -j "$(nproc)"
    ;;
  *)
    echo "usage: bash scripts/quickstart.sh run|test" >&2
    exit 2
    ;;
esac
