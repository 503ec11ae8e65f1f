#!/usr/bin/env bash
# GLM-4.5V decoder CPU benchmark: Folio (candle) vs transformers on this machine.
# Needs the reference venv (.venv-glm, see workers/glm45v/tests/fixtures/requirements.txt).
# Usage: scripts/bench_glm_cpu.sh [--threads N] [--repeats R] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-glm/bin/python ]; then
  python3 -m venv .venv-glm
  .venv-glm/bin/pip install -q -r workers/glm45v/tests/fixtures/requirements.txt
fi
threads=2
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = "--threads" ]; then j=$((i + 1)); threads="${!j}"; fi
done
cargo build --release -p folio-glm45v --example bench_cpu
export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
exec .venv-glm/bin/python scripts/bench_glm_cpu.py "$@"
