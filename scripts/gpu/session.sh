#!/usr/bin/env bash
# scripts/gpu/session.sh — a GPU session's work (run from the repo root on the device machine, with
# gpu-carry/bin carried): GPU parity, Folio's benchmark, pages per hour, transformers' benchmark
# with the same shapes, the vision tower on ORT's CUDA EP, then the tables. Logs and JSON lines go
# to $OUT. One device command may run at most 10 minutes, so the session is two calls (presets):
#
#   scripts/gpu/session.sh ort-part                   calls 1..3: one part of ONNX Runtime GPU each
#                                                     (carry gpu-carry/ort1, then ort2, then ort3)
#   scripts/gpu/session.sh first                      call 4 (carry gpu-carry/bin gpu-carry/ort4):
#                                                     ort-part ort-install info parity bench
#   scripts/gpu/session.sh second                     call 5 (carry gpu-carry/bin gpu-carry/page):
#                                                     vision-export pages hf vision report
#   scripts/gpu/session.sh [STEP...]                  any steps, in the order given
#
# Steps: info parity bench vision-export pages hf vision report ort-part ort-install
# bench-events-off glm-pages (issue 14: `glm_pages`, the worker loop with the full FP8 synthetic
# model, on gpu-carry/pages from scripts/gpu/make-pages; needs ort-install and vision-export first
# on the same machine; GLM_LAYERS (46), GLM_PAGES_ARGS, T_GLM_PAGES (420)). Every step runs under `timeout` (T_<STEP> seconds, defaults below) so one hang
# cannot eat the call, and every step runs even when an earlier one fails; the exit status is the
# first failure's. Calls 1..5 must be back to back on a warm machine (/tmp/chunks, /tmp/ortpy and
# /tmp/folio-vision live outside the repository and are lost when the machine goes back).
#
# $OUT is where everything is written (the device machine sets it: what is written there comes
# back); the JSON lines are also kept in /tmp/folio-session-keep so the second call's report
# covers the first call's parity and bench. Files: parity, bench, vision, pages, hf (.jsonl).
#
# Environment: LAYERS (26), KERNELS (grouped,fused), HF_IMPL ("eager sdpa"), BIN_DIR (where the
# unpacked binaries go; /tmp/folio-gpu), PY (python3), DRY=1 for a CPU dry run here (binaries
# from target/debug, --cpu --tiny, .venv-glm's python), EXTRA_BENCH (more gpu_bench args), EXTRA_HF
# (more hf_bench.py args), EXTRA_PARITY (more gpu_parity args, e.g. --small),
# OUT (target-cuda/session-out).
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
EXTRA_HF="${EXTRA_HF:-}"
EXTRA_PARITY="${EXTRA_PARITY:-}"
LOG="$OUT/session.log"
STATUS=0
# Seconds per step (the two presets fit in 600 s each with these).
T_INFO="${T_INFO:-30}"
T_PARITY="${T_PARITY:-200}"
T_BENCH="${T_BENCH:-290}"
T_VISION_EXPORT="${T_VISION_EXPORT:-170}"
T_PAGES="${T_PAGES:-170}"
T_HF="${T_HF:-150}"
T_VISION="${T_VISION:-45}"
T_GLM_PAGES="${T_GLM_PAGES:-420}"
GLM_LAYERS="${GLM_LAYERS:-46}"

if [[ "${DRY:-0}" == 1 ]]; then
  BIN_DIR="$ROOT/target/debug/examples"
  PY="$ROOT/.venv-glm/bin/python"
  [[ -x "$PY" ]] || PY=python3
  CPU_ARGS=(--cpu)
  TINY_BENCH=(--tiny --batches 2,4 --batch-context 8 --steps 4 --warmup 1)
  TINY_HF=(--tiny --layers 3 --prefill 40 --batches 2,4 --batch-context 8 --steps 4 --warmup 1)
  TINY_PAGES=(--tiny)
  TINY_VISION=(--tiny)
  PARITY_EXTRA=(--small)
  LAYERS=3
else
  CPU_ARGS=()
  TINY_BENCH=(--batch-kernels fused --prefill-kernels grouped,gathered)
  TINY_HF=(--layers "$LAYERS")
  TINY_PAGES=()
  TINY_VISION=()
  PARITY_EXTRA=()
fi

unpack() { # the carried binaries into $BIN_DIR (once per call)
  [[ "${DRY:-0}" == 1 ]] && return 0
  mkdir -p "$BIN_DIR"
  for xzf in gpu-carry/bin/*.xz; do
    [[ -f "$xzf" ]] || continue
    xz -dc "$xzf" >"$BIN_DIR/$(basename "$xzf" .xz)"
    chmod +x "$BIN_DIR/$(basename "$xzf" .xz)"
  done
}

step() { # step NAME SECONDS CMD... — runs under timeout, logs, keeps going (functions of this
  local name=$1 limit=$2 start rc          # script run as `$0 _fn NAME` so timeout can kill them)
  shift 2
  start=$(date +%s)
  echo "=== $name (≤ ${limit} s): $*" | tee -a "$LOG"
  if [[ $(type -t "$1") == function ]]; then set -- "$ROOT/scripts/gpu/session.sh" _fn "$@"; fi
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  [[ $rc == 124 || $rc == 137 ]] && echo "=== $name: TIMED OUT after $limit s" | tee -a "$LOG"
  echo "=== $name: rc=$rc in $(($(date +%s) - start)) s" | tee -a "$LOG"
  if [[ $rc != 0 && $STATUS == 0 ]]; then STATUS=$rc; fi
  keep
}

KEEP=/tmp/folio-session-keep
keep() { # the JSON lines so far, kept outside the repository for a later call's report
  mkdir -p "$KEEP"
  cp -f "$OUT"/*.jsonl "$KEEP"/ 2>/dev/null || true
}

info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv 2>&1 || echo "no nvidia-smi"
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
  uname -r
  nproc
}

ort_part() { # carry the parts of the ONNX Runtime CUDA provider (gpu-carry/ort*/) into /tmp/chunks
  mkdir -p /tmp/chunks
  local found=0
  for f in gpu-carry/ort*/*; do
    [[ -f "$f" ]] || continue
    cp -v "$f" /tmp/chunks/
    found=1
  done
  ls -la /tmp/chunks
  [[ $found == 1 ]] || { echo "no gpu-carry/ort*/ parts carried in this call"; return 1; }
}

ort_install() { # join the carried parts, check them, unpack the Python package into /tmp/ortpy
  if [[ -f /tmp/ortpy/onnxruntime/capi/libonnxruntime_providers_cuda.so ]]; then
    echo "already installed"; return 0
  fi
  mkdir -p /tmp/ortpy
  (cd /tmp/chunks && cat cuda.xz.part-* >/tmp/ortpy/cuda.xz && cd /tmp/ortpy && sha256sum -c /tmp/chunks/SHA256SUMS) || return 1
  tar -C /tmp/ortpy -xJf /tmp/chunks/rest.tar.xz || return 1
  xz -dc /tmp/ortpy/cuda.xz >/tmp/ortpy/onnxruntime/capi/libonnxruntime_providers_cuda.so || return 1
  rm -f /tmp/ortpy/cuda.xz
  ls -la /tmp/ortpy/onnxruntime/capi | grep '\.so'
}

nv_libs() { # cuDNN, cuBLAS, cuFFT, cuRAND of the PyTorch venv, for ORT's CUDA provider
  ls -d /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib 2>/dev/null | tr '\n' :
}

vision_py() { # vision_bench.py --part PART (needs ort-install first on the same machine)
  if ls gpu-carry/whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/tf gpu-carry/whl/*.whl || return 1
  fi
  env PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/tf:/tmp/ortpy${PYTHONPATH:+:$PYTHONPATH}" \
    LD_LIBRARY_PATH="$(nv_libs)${LD_LIBRARY_PATH:-}" "$PY" scripts/gpu/vision_bench.py --out "$OUT/vision.jsonl" \
    --dir /tmp/folio-vision --part "$1" "${TINY_VISION[@]}" ${VISION_ARGS:-}
}

pages() { # gpu_pages with Folio's vision tower on ORT's CUDA EP (the vision-export step's fp16 export)
  local image=gpu-carry/page/page.jpg
  [[ -f $image ]] || image=$(ls /work/shared/corpus/printed/*.jpg 2>/dev/null | head -1)
  env LD_LIBRARY_PATH="$(nv_libs)${LD_LIBRARY_PATH:-}" "$BIN_DIR/gpu_pages" "${CPU_ARGS[@]}" "${TINY_PAGES[@]}" \
    --layers "$LAYERS" --image "$image" --vision-onnx /tmp/folio-vision/vision.fp16.onnx \
    --ort-lib /tmp/ortpy/onnxruntime/capi/libonnxruntime.so.1.31.1 --out "$OUT/pages.jsonl"
}

glm_pages() { # issue 14: the worker loop (glm_pages) on the full-size FP8 synthetic model, GPU busy sampled
  local images=gpu-carry/pages
  [[ -d $images ]] || images=$(mktemp -d)
  [[ -n "$(ls "$images")" ]] || cp "$ROOT"/workers/ocr/tests/data/multicolumn/*.jpg "$images"/
  local vision=/tmp/folio-vision/vision.fp16.onnx ort=/tmp/ortpy/onnxruntime/capi/libonnxruntime.so.1.31.1
  if [[ "${DRY:-0}" == 1 ]]; then vision=""; ort="${FOLIO_RUNTIME_DIR:-$HOME/.cache/folio}/lib/libonnxruntime.so.1.31.1"; fi
  (while :; do
     echo "$(date +%s.%N) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits 2>/dev/null)"
     sleep 0.5
   done) >"$OUT/gpu_util.txt" &
  local smi=$! rc
  env LD_LIBRARY_PATH="$(nv_libs)${LD_LIBRARY_PATH:-}" "$BIN_DIR/glm_pages" "${CPU_ARGS[@]}" "${TINY_PAGES[@]}" \
    --layers "$GLM_LAYERS" --images "$images" ${vision:+--vision-onnx "$vision"} --ort-lib "$ort" \
    --out "$OUT/glm_pages.jsonl" ${GLM_PAGES_ARGS:-}
  rc=$?
  kill "$smi" 2>/dev/null
  # GPU busy %: mean utilization.gpu over the samples inside the run's window.
  "$PY" - "$OUT/glm_pages.jsonl" "$OUT/gpu_util.txt" <<'PYEOF' | tee -a "$OUT/glm_pages.jsonl"
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if '"glm_pages"' in l]
if runs:
    r = runs[-1]
    util = []
    for line in open(sys.argv[2]):
        parts = line.replace(",", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            t = float(parts[0])
            if r["run_start"] <= t <= r["run_end"]:
                util.append(int(parts[1]))
    print(json.dumps({"kind": "gpu_busy", "samples": len(util),
                      "gpu_busy_percent": sum(util) / len(util) if util else None}))
PYEOF
  return "$rc"
}

if [[ "${1:-}" == _fn ]]; then # internal: run one function of this script (see `step`)
  shift
  "$@"
  exit $?
fi

unpack
STEPS=("$@")
[[ ${#STEPS[@]} -eq 0 ]] && STEPS=(first)
EXPANDED=()
for s in "${STEPS[@]}"; do
  case "$s" in
    first) EXPANDED+=(ort-part ort-install info parity bench) ;;
    second) EXPANDED+=(vision-export pages hf vision report) ;;
    *) EXPANDED+=("$s") ;;
  esac
done
for s in "${EXPANDED[@]}"; do
  case "$s" in
    info) step info "$T_INFO" info ;;
    parity) step parity "$T_PARITY" "$BIN_DIR/gpu_parity" "${CPU_ARGS[@]}" "${PARITY_EXTRA[@]}" --out "$OUT/parity.jsonl" $EXTRA_PARITY ;;
    bench) step bench "$T_BENCH" "$BIN_DIR/gpu_bench" "${CPU_ARGS[@]}" "${TINY_BENCH[@]}" --layers "$LAYERS" \
      --kernels "$KERNELS" --out "$OUT/bench.jsonl" $EXTRA_BENCH ;;
    bench-events-off) step bench-events-off "$T_BENCH" "$BIN_DIR/gpu_bench" "${CPU_ARGS[@]}" "${TINY_BENCH[@]}" \
      --layers "$LAYERS" --kernels fused --events off --skip-ceilings --batches 8 --out "$OUT/bench-events-off.jsonl" ;;
    vision-export) step vision-export "$T_VISION_EXPORT" vision_py ort ;;
    pages) step pages "$T_PAGES" pages ;;
    hf)
      impl_args=()
      for i in $HF_IMPL; do impl_args+=(--impl "$i"); done
      step hf "$T_HF" env PYTHONUNBUFFERED=1 "$PY" scripts/gpu/hf_bench.py "${TINY_HF[@]}" "${impl_args[@]}" \
        --skip-vision --out "$OUT/hf.jsonl" $EXTRA_HF
      ;;
    vision) step vision "$T_VISION" vision_py torch ;;
    glm-pages) step glm-pages "$T_GLM_PAGES" glm_pages ;;
    ort-part) step ort-part 60 ort_part ;;
    ort-install) step ort-install 120 ort_install ;;
    report) # this call's lines and those kept from earlier calls on this machine (distinct files)
      keep
      "$PY" scripts/gpu/report.py "$KEEP"/*.jsonl >"$OUT/tables.md" 2>>"$LOG"
      cp -f "$KEEP"/*.jsonl "$OUT"/ 2>/dev/null || true
      cat "$OUT/tables.md"
      ;;
    *) echo "unknown step $s" | tee -a "$LOG"; STATUS=2 ;;
  esac
done
exit "$STATUS"
