#!/usr/bin/env bash
# Build llama-cpp-python (with its OpenAI-compatible server) from source once, cache the wheel,
# and install it into the project venv.
#
# Why from source with GGML_NATIVE=OFF: the default build compiles with -march=native on the
# build machine and the prebuilt/native binaries die with "Illegal instruction" on some of our
# machines; a portable build (runtime CPU-feature dispatch) works everywhere.
# Measured cost: 17.5 min (1051 s) on 2 busy cores at nice 10, so the wheel is cached in
# $LLAMA_CPP_WHEEL_DIR and reused.
#
# Usage: scripts/build_llama_cpp.sh [--build-only]
#   --build-only   build/cache the wheel but do not install it (CI starts this in the background
#                  while the main suite runs, then installs after).
# Env: PYTHON (default .venv/bin/python), LLAMA_CPP_WHEEL_DIR (default ${ICM_RM_HOME:-~/.cache/icm_rm}/wheels),
#      LLAMA_CPP_JOBS (default 2), LLAMA_CPP_NICE (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.3.36
PYTHON=${PYTHON:-.venv/bin/python}
WHEEL_DIR=${LLAMA_CPP_WHEEL_DIR:-${ICM_RM_HOME:-$HOME/.cache/icm_rm}/wheels}
JOBS=${LLAMA_CPP_JOBS:-2}
NICE=${LLAMA_CPP_NICE:-10}
BUILD_ONLY=0
[[ "${1:-}" == "--build-only" ]] && BUILD_ONLY=1

mkdir -p "$WHEEL_DIR"
find_wheel() { ls "$WHEEL_DIR"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1; }

WHEEL=$(find_wheel || true)
if [[ -z "$WHEEL" ]]; then
  echo "build_llama_cpp: building llama-cpp-python==$VERSION (GGML_NATIVE=OFF, -j$JOBS); takes ~15-20 min on 2 cores" >&2
  start=$(date +%s)
  tmp=$(mktemp -d "$WHEEL_DIR/.build.XXXXXX")
  # Build into a temp dir and move the finished wheel in, so an interrupted build never leaves a
  # half-written wheel that a later run would "reuse".
  CMAKE_ARGS="-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}" \
  CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    nice -n "$NICE" "$PYTHON" -m pip wheel --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$VERSION" -w "$tmp"
  mv "$tmp"/llama_cpp_python-"$VERSION"-*.whl "$WHEEL_DIR"/
  rm -rf "$tmp"
  WHEEL=$(find_wheel)
  echo "build_llama_cpp: built $WHEEL in $(( $(date +%s) - start ))s" >&2
else
  echo "build_llama_cpp: reusing cached $WHEEL" >&2
fi

if [[ $BUILD_ONLY == 1 ]]; then
  exit 0
fi
# Install the cached wheel plus the [server] extras (fastapi, uvicorn, ...). pip's default
# only-if-needed strategy leaves already-installed project dependencies alone.
"$PYTHON" -m pip install -q --find-links "$WHEEL_DIR" "$WHEEL[server]"
"$PYTHON" -c "import llama_cpp, llama_cpp.server; print('build_llama_cpp: llama_cpp', llama_cpp.__version__, 'installed')"
