"""Markdown tables of one GPU session from the JSON lines of gpu_bench, hf_bench and gpu_parity.

    python3 scripts/gpu/report.py FILE.jsonl... > tables.md   (bench lines and parity checks, any order)

Every figure is a median after warm-up as measured; ratios and the 46-layer extrapolation are
computed here (head + (step − head) · 46 / layers, with the head time gpu_bench measured).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

REAL_LAYERS = 46


def load(path: str) -> list[dict]:
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    except FileNotFoundError:
        pass
    return rows


def fmt(v, nd=2):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return f"{v:,.{nd}f}"


def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def main() -> int:
    rows_all = [r for path in sys.argv[1:] for r in load(path)]
    bench = [r for r in rows_all if "bench" in r]
    parity = [r for r in rows_all if "check" in r]
    by = defaultdict(list)
    for r in bench:
        by[r.get("bench")].append(r)
    out = []
    versions = by.get("versions", [{}])[-1] if by.get("versions") else {}
    if versions:
        out.append(f"Device: {versions.get('device')}; torch {versions.get('torch')}, "
                   f"transformers {versions.get('transformers')}.\n")

    ceil_rows = []
    copy_bw = None
    for r in by.get("ceilings", []):
        eng = r.get("engine", "folio (candle)")
        ceil_rows.append([eng, r.get("copy_GBps"), r.get("candle_copy_GBps"), r.get("matmul_TFLOPs"),
                          r.get("small_op_us")])
        if eng == "folio (candle)":
            copy_bw = r.get("copy_GBps")
    if ceil_rows:
        out.append("### Ceilings\n")
        out.append(table(["engine", "copy GB/s (read+write)", "candle copy() incl. alloc", "bf16 matmul TFLOP/s",
                          "small candle op µs"], ceil_rows))

    dec = by.get("decode_b1", [])
    folio = [r for r in dec if r.get("engine") == "folio"]
    hf = [r for r in dec if r.get("engine") == "transformers"]
    head = folio[0]["head_ms"] if folio else None
    floor46 = folio[0]["floor46_ms"] if folio else None
    if dec:
        rows = []
        for r in folio + hf:
            layers = r["layers"]
            step = r["step_ms"]
            per_layer = r.get("per_layer_ms")
            if per_layer is None and head is not None:
                per_layer = max(step - head, 0.0) / layers
            step46 = r.get("step46_ms")
            if step46 is None and head is not None and per_layer is not None:
                step46 = head + per_layer * REAL_LAYERS
            roof = 100.0 * floor46 / step46 if floor46 and step46 else None
            name = f"{r['engine']} {r.get('kernel') or r.get('impl')}"
            if r.get("path"):
                name += f" ({r['path']} attention/norms)"
            rows.append([name, layers, r.get("context"), step, 1000.0 / step, per_layer, step46,
                         1000.0 / step46 if step46 else None, roof])
        out.append("### Decode, batch 1, bf16\n")
        out.append(table(["engine", "layers", "context", "ms/step", "tok/s", "ms/layer", "46-layer ms (est.)",
                          "46-layer tok/s", "% of roofline"], rows))
        if floor46:
            out.append(f"Roofline (46 layers): {folio[0]['bytes_per_token_46'] / 1e9:.2f} GB read per token at "
                       f"{copy_bw or 0:,.0f} GB/s = {floor46:.2f} ms/token.\n")
        eager = [r for r in hf if r.get("impl") == "eager"]
        if folio and eager:
            best = min(folio, key=lambda r: r["step_ms"])
            out.append(f"Folio ({best['kernel']}) ÷ transformers eager: "
                       f"{eager[0]['step_ms'] / best['step_ms']:.2f}× tokens/s.\n")

    pre = by.get("prefill", [])
    if pre:
        rows = [[f"{r['engine']} {r.get('kernel') or r.get('impl')}" + (f" ({r['path']})" if r.get("path") else ""),
                 r["layers"], r["tokens"], r["ms"], r["tok_s"],
                 r.get("TFLOPs"), r.get("matmul_pct")] for r in pre]
        out.append("### Prefill of the 1,300-token page prompt, bf16\n")
        out.append(table(["engine", "layers", "tokens", "ms", "tok/s", "TFLOP/s", "% of matmul ceiling"], rows))
        f = [r for r in pre if r["engine"] == "folio"]
        e = [r for r in pre if r.get("impl") == "eager"]
        if f and e:
            out.append(f"Folio ÷ transformers eager: {f[0]['tok_s'] / e[0]['tok_s']:.2f}× tokens/s.\n")

    bat = by.get("decode_batched", [])
    if bat:
        rows = []
        for r in sorted(bat, key=lambda r: (r["batch"], r["engine"], str(r.get("kernel") or r.get("impl")))):
            name = f"{r['engine']} {r.get('kernel') or r.get('impl')}" + (f" ({r['path']})" if r.get("path") else "")
            rows.append([r["batch"], name, r["step_ms"], r["tok_s"],
                         r.get("bound_ms"), r.get("bound", "—"), r.get("bound_pct")])
        out.append("### Batched decode, bf16 (context 128 + steps)\n")
        out.append(table(["batch", "engine", "ms/step", "tok/s", "bound ms", "bound by", "% of bound"], rows))

    for r in by.get("fused_selfcheck", []):
        out.append(f"Fused decode kernels self-check ({r.get('by', 'gpu_bench')}): "
                   f"{'ok' if r.get('ok') else 'FAILED — candle path measured instead'} ({r.get('detail')}).\n")
    paired = {}
    for r in folio:
        paired.setdefault(r.get("kernel"), {})[r.get("path")] = r
    for kernel, paths in paired.items():
        if "candle" in paths and "fused" in paths:
            a, b = paths["candle"], paths["fused"]
            out.append(f"Fused attention + norms, {kernel} MoE: {a['step_ms']:.2f} → {b['step_ms']:.2f} ms/step "
                       f"({a['step_ms'] / b['step_ms']:.2f}×); per layer {a.get('per_layer_ms', 0):.3f} → "
                       f"{b.get('per_layer_ms', 0):.3f} ms.\n")

    stages = by.get("pages_stage", [])
    pages = by.get("pages", [])
    if stages or pages:
        out.append("### Pages per hour (synthetic real-shape weights, fixed output length)\n")
        rows = []
        for r in stages:
            if r.get("measured"):
                extra = {k: r[k] for k in ("provider", "dtype", "patches", "tokens", "image_tokens", "chars", "blocks") if k in r}
                rows.append([r["stage"], r["ms"], ", ".join(f"{k} {v}" for k, v in extra.items())])
            else:
                rows.append([r["stage"], "not measured", r.get("why", "")])
        out.append(table(["stage (one page)", "ms", "detail"], rows))
        rows = [[r["batch"], r["layers"], r["prompt_tokens"], r["out_tokens"], r["decode_step_ms"],
                 r["decode_ms_per_page"], r["pages_per_hour_serial"], r["pages_per_hour_overlapped"],
                 r["pages_per_hour_serial_46"], r["pages_per_hour_overlapped_46"],
                 "yes" if r.get("vision_measured") else "NO (excluded)"] for r in pages]
        if rows:
            out.append(table(["batch", "layers", "prompt", "out tokens", "decode ms/step", "decode ms/page",
                              "pages/h serial", "pages/h overlapped", "46L serial", "46L overlapped",
                              "vision in total"], rows))

    vis = by.get("vision", [])
    if vis:
        rows = [[f"{r['engine']} {r.get('impl') or r.get('provider')}", r.get("patches"), r["ms"]] for r in vis]
        out.append("### Vision tower, one 1024×1024 page (72×72 patches)\n")
        out.append(table(["engine", "patches", "ms"], rows))

    if parity:
        checks = [p for p in parity if "ok" in p]
        bad = [p for p in checks if not p["ok"]]
        out.append(f"### Parity on the GPU: {len(checks) - len(bad)}/{len(checks)} checks passed\n")
        rows = [[p["check"], "—" if p.get("value") is None else f"{p['value']:.3e}",
                 f"{p.get('limit', p.get('min'))}", "ok" if p["ok"] else f"FAIL {p.get('detail', '')}".strip()]
                for p in checks]
        out.append(table(["check", "value", "limit / min", ""], rows))
        notes = [p for p in parity if "note" in p]
        for n in notes:
            out.append(f"- {n['check']}: {n['note']}\n")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
