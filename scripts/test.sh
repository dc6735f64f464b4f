#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (CTest), including the tests against the
# reference implementations (node's gpt-3-encoder, PyTorch, numpy). CI runs exactly this.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/prepare_data.sh data
cmake -B build -S . -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
