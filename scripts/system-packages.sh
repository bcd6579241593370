#!/usr/bin/env bash
# Installs the Debian packages that the tests (and any target of the Makefile) need beyond Python, when
# they are missing. Quiet when everything is present; `apt-get update` runs only when something must be
# installed; without root it prints the exact command to run and exits non-zero, before any test starts.
set -euo pipefail

# One line per package: the Debian package, then the path or command whose presence shows it installed.
# Add a package here (for example `redis-server redis-server`, `postgresql pg_ctlcluster`,
# `cmake cmake`, `g++ g++`) and every caller installs it.
PACKAGES=(
  "chromium /usr/bin/chromium"  # the web UI tests drive the real page with Playwright and the system browser
  "cmake cmake"                 # the real-engine tests build llama.cpp's llama-server once per machine
  "g++ g++"                     # (bench/engine.py: CPU-only, cached outside the repository)
  "make make"
  "redis-server redis-server"   # the shared-state tests start a real Redis (state: {backend: redis})
  "postgresql pg_ctlcluster"    # the request-log tests start a real PostgreSQL (initdb into a temporary folder)
)

missing=()
for line in "${PACKAGES[@]}"; do
  read -r package probe <<<"$line"
  command -v "$probe" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them as root, then run this again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
for line in "${PACKAGES[@]}"; do
  read -r package probe <<<"$line"
  if ! command -v "$probe" >/dev/null 2>&1; then
    echo "$package is installed but $probe is still missing" >&2
    exit 1
  fi
done
