#!/usr/bin/env bash
# Installs the Debian 12 packages r1 builds and tests with, skipping those already present.
# Run as root (or with sudo available). Node packages for the test tooling are installed under
# tests/js/ and tests/serve-js/ when those folders have a package.json; Debian's chromium is added
# for the browser test of `r1 serve` (R1_WITH_BROWSER=0 skips it).
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libcpp-httplib-dev
  libgtest-dev python3
)
if [[ "${R1_WITH_NODE:-1}" == 1 ]]; then
  command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
  command -v npm >/dev/null 2>&1 || PKGS+=(npm)
  if [[ "${R1_WITH_BROWSER:-1}" == 1 ]]; then
    command -v chromium >/dev/null 2>&1 || PKGS+=(chromium)
  fi
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

if ((${#missing[@]})); then
  echo "r1: installing Debian packages: ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
for js in tests/js tests/serve-js; do
  if [[ "${R1_WITH_NODE:-1}" == 1 && -f "$root/$js/package.json" ]]; then
    if [[ ! -d "$root/$js/node_modules" || "$root/$js/package.json" -nt "$root/$js/node_modules" ]]; then
      echo "r1: installing test tooling from npm ($js)" >&2
      (cd "$root/$js" && npm install --no-audit --no-fund --loglevel=error && touch node_modules)
    fi
  fi
done
