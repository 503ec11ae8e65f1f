#!/usr/bin/env bash
# scripts/gpu/session.sh — the whole GPU session's work in one device call (run from the repo root
# on the device machine, with `gpu-carry` carried): GPU parity, Folio's benchmark, transformers'
# benchmark with the same shapes, then the tables. Logs and JSON lines go to $OUT.
#
#   scripts/gpu/session.sh [STEP...]       steps: info parity bench hf report (default: all),
#                                          bench-events-off, ort-part, ort-install, vision
#
# The vision step needs ONNX Runtime GPU carried in parts first (scripts/gpu/pack-ort; one
# `ort-part` call per part with gpu-carry/ort/ holding it, back to back on a warm machine, then
# `ort-part ort-install vision` in the last) and gpu-carry/whl/ with transformers' wheel.
#
# Environment: LAYERS (26), KERNELS (grouped,fused), HF_IMPL ("eager sdpa"), BIN_DIR (where the
# unpacked binaries go; /tmp/folio-gpu), PY (python3), DRY=1 for a CPU dry run here (binaries
# from target/debug, --cpu --tiny, .venv-glm's python), EXTRA_BENCH (more gpu_bench args).
# Every step runs even when an earlier one fails; the exit status is the first failure's.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/target-cuda/session-out}"
mkdir -p "$OUT"
LAYERS="${LAYERS:-26}"
KERNELS="${KERNELS:-grouped,fused}"
HF_IMPL="${HF_IMPL:-eager sdpa}"
BIN_DIR="${BIN_DIR:-/tmp/folio-gpu}"
PY="${PY:-python3}"
EXTRA_BENCH="${EXTRA_BENCH:-}"
LOG="$OUT/session.log"
STATUS=0

if [[ "${DRY:-0}" == 1 ]]; then
  BIN_DIR="$ROOT/target/debug/examples"
  PY="$ROOT/.venv-glm/bin/python"
  CPU_ARGS=(--cpu)
  TINY_BENCH=(--tiny --batches 2,4 --batch-context 8 --steps 4 --warmup 1)
  TINY_HF=(--tiny --layers 3 --prefill 40 --batches 2,4 --batch-context 8 --steps 4 --warmup 1)
  PARITY_EXTRA=(--small)
  LAYERS=3
else
  CPU_ARGS=()
  TINY_BENCH=()
  TINY_HF=(--layers "$LAYERS")
  PARITY_EXTRA=()
  mkdir -p "$BIN_DIR"
  for xzf in gpu-carry/bin/*.xz; do
    [[ -f "$xzf" ]] || continue
    xz -dc "$xzf" >"$BIN_DIR/$(basename "$xzf" .xz)"
    chmod +x "$BIN_DIR/$(basename "$xzf" .xz)"
  done
fi

step() { # step NAME CMD... — runs, logs, keeps going
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "=== $name: $*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $(($(date +%s) - start)) s" | tee -a "$LOG"
  if [[ $rc != 0 && $STATUS == 0 ]]; then STATUS=$rc; fi
}

info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv 2>&1 || echo "no nvidia-smi"
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
  uname -r
}

ort_part() { # carry one part of the ONNX Runtime CUDA provider into /tmp/chunks
  mkdir -p /tmp/chunks
  cp -v gpu-carry/ort/* /tmp/chunks/
  ls -la /tmp/chunks
}

ort_install() { # join the carried parts, check them, unpack the Python package into /tmp/ortpy
  mkdir -p /tmp/ortpy
  (cd /tmp/chunks && cat cuda.xz.part-* >/tmp/ortpy/cuda.xz && cd /tmp/ortpy && sha256sum -c /tmp/chunks/SHA256SUMS) || return 1
  tar -C /tmp/ortpy -xJf /tmp/chunks/rest.tar.xz || return 1
  xz -dc /tmp/ortpy/cuda.xz >/tmp/ortpy/onnxruntime/capi/libonnxruntime_providers_cuda.so || return 1
  rm -f /tmp/ortpy/cuda.xz
  ls -la /tmp/ortpy/onnxruntime/capi | grep '\.so'
}

vision() { # ORT CUDA EP vs PyTorch for the vision tower (needs ort-install first, same machine)
  local nv
  nv=$(ls -d /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib 2>/dev/null | tr '\n' :)
  if ls gpu-carry/whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/tf gpu-carry/whl/*.whl || return 1
  fi
  env PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/tf:/tmp/ortpy${PYTHONPATH:+:$PYTHONPATH}" \
    LD_LIBRARY_PATH="$nv${LD_LIBRARY_PATH:-}" "$PY" scripts/gpu/vision_bench.py --out "$OUT/vision.jsonl" \
    --dir /tmp/folio-vision ${VISION_ARGS:-}
}

STEPS=("$@")
[[ ${#STEPS[@]} -eq 0 ]] && STEPS=(info parity bench hf report)
for s in "${STEPS[@]}"; do
  case "$s" in
    info) step info info ;;
    parity) step parity "$BIN_DIR/gpu_parity" "${CPU_ARGS[@]}" "${PARITY_EXTRA[@]}" --out "$OUT/parity.jsonl" ;;
    bench) step bench "$BIN_DIR/gpu_bench" "${CPU_ARGS[@]}" "${TINY_BENCH[@]}" --layers "$LAYERS" \
      --kernels "$KERNELS" --out "$OUT/bench.jsonl" $EXTRA_BENCH ;;
    bench-events-off) step bench-events-off "$BIN_DIR/gpu_bench" "${CPU_ARGS[@]}" "${TINY_BENCH[@]}" \
      --layers "$LAYERS" --kernels fused --events off --skip-ceilings --batches 8 --out "$OUT/bench-events-off.jsonl" ;;
    hf)
      impl_args=()
      for i in $HF_IMPL; do impl_args+=(--impl "$i"); done
      step hf env PYTHONUNBUFFERED=1 "$PY" scripts/gpu/hf_bench.py "${TINY_HF[@]}" "${impl_args[@]}" \
        --out "$OUT/bench.jsonl"
      ;;
    ort-part) step ort-part ort_part ;;
    ort-install) step ort-install ort_install ;;
    vision) step vision vision ;;
    report)
      "$PY" scripts/gpu/report.py "$OUT"/*.jsonl >"$OUT/tables.md" 2>>"$LOG"
      cat "$OUT/tables.md"
      ;;
    *) echo "unknown step $s" | tee -a "$LOG"; STATUS=2 ;;
  esac
done
exit "$STATUS"
