#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: set up, then C++ (ctest) and Python (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
# Spinning OpenMP waits make parallel test processes starve each other on 2 cores.
export OMP_WAIT_POLICY=PASSIVE
scripts/setup.sh
echo "== C++ tests (ctest)"
(cd build && ctest --output-on-failure -j"${JOBS:-$(nproc)}")
echo "== Python tests (pytest)"
/usr/bin/python3 -m pytest -q tests/python
