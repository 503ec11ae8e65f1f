#!/usr/bin/env bash
# scripts/gpu/fp8.sh — the FP8 session on one H200 (issue 13): GPU parity of the FP8 kernels,
# the whole 46-layer model resident in FP8 (synthetic weights of the real shapes made on the
# GPU, per-expert layout) with its resident size, decode at several batch sizes and the
# 1,300-token prefill, then transformers' SDPA + grouped_mm prefill per layer in the same call.
#
#   scripts/gpu/fp8.sh [STEP...]        steps: info parity bench hf (default: all four)
#
# Expects the packed binaries in $BIN (default gpu-carry/fp8/bin/*.xz, from scripts/gpu/build
# --here copied there). Writes logs and JSON lines to $OUT (the device machine sets it).
# Environment: BATCHES (1,16,64,128,256), STEPS (10), T_PARITY (150), T_BENCH (330), T_HF (90).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/target-cuda/fp8-out}"
BIN="${BIN:-gpu-carry/fp8/bin}"
RUN=/tmp/folio-fp8
mkdir -p "$OUT" "$RUN"
BATCHES="${BATCHES:-16,64,128,256}"
STEPS="${STEPS:-10}"
STATUS=0
for xzf in "$BIN"/*.xz; do
  [[ -f "$xzf" ]] || continue
  xz -dc "$xzf" >"$RUN/$(basename "$xzf" .xz)" && chmod +x "$RUN/$(basename "$xzf" .xz)"
done
step() { # name timeout command...
  local name="$1" t="$2"; shift 2
  echo "== $name ($(date -u +%T), limit ${t}s)" | tee -a "$OUT/session.log"
  timeout "$t" "$@" 2>&1 | tee -a "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name rc=$rc" | tee -a "$OUT/session.log"
  [[ $rc -ne 0 && $STATUS -eq 0 ]] && STATUS=$rc
}
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(info parity bench hf)
for s in "${steps[@]}"; do
  case "$s" in
    info) step info 20 nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.sm,driver_version --format=csv ;;
    parity) step parity "${T_PARITY:-150}" "$RUN/gpu_parity" --only-fp8 --out "$OUT/parity.jsonl" ;;
    bench) step bench "${T_BENCH:-330}" "$RUN/gpu_bench" --weights fp8 --layers 46 --paths fused \
        --kernels auto --prefill-kernels auto --batch-kernels auto --batches "$BATCHES" \
        --steps "$STEPS" --warmup 3 --out "$OUT/bench.jsonl" ;;
    hf) for l in 2 6; do
          step "hf$l" "${T_HF:-90}" python3 scripts/gpu/hf_bench.py --layers "$l" --impl sdpa \
            --skip-vision --skip-ceilings --batches 64 --steps 5 --warmup 2 --out "$OUT/hf.jsonl"
        done ;;
    *) echo "unknown step $s" >&2; STATUS=2 ;;
  esac
done
exit "$STATUS"
