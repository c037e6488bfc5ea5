#!/usr/bin/env bash
# One-shot setup for a fresh Debian 12 machine: install every build/test dependency from
# Debian's packages, then configure and build EZTinker in ./build.
#   scripts/setup.sh                 install + build
#   scripts/setup.sh --no-build      install only
#   scripts/setup.sh --with-reference  also install python3-torch (PyTorch eager reference bench)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
reference=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --with-reference) reference=1 ;;
    *) echo "usage: scripts/setup.sh [--no-build] [--with-reference]" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config git ca-certificates
  libtorch-dev libopenblas0-openmp        # libtorch + a fast system BLAS (reference BLAS is ~40x slower)
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libsentencepiece-dev libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev
)
if [ "$reference" = 1 ]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$build" = 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j "$(nproc)"
fi
