"""CPU benchmark of the GLM-4.5V text decoder: Folio (candle) vs transformers, same machine, same
checkpoints, same threads. Run through scripts/bench_glm_cpu.sh (it builds the Rust side first).

Models: the committed tiny fixture and a mid-size random config (hidden 1024, 8 layers, 32 experts,
top-4, head_dim 128 with 8 q / 2 kv heads) written once into bench-out/glm-mid (git-ignored).
Prefill = one forward over the prompt; decode = greedy steps with the KV cache (tokens/s of the
steps after the first). Prints a Markdown table; --out FILE also writes it there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "workers/glm45v/tests/fixtures/tiny"
MID = ROOT / "bench-out/glm-mid"
BIN = ROOT / "target/release/examples/bench_cpu"
sys.path.insert(0, str(ROOT / "workers/glm45v/tests/fixtures"))


def build_mid() -> None:
    if (MID / "config.json").is_file():
        return
    from make_tiny import build_model  # same construction as the fixtures, bigger sizes

    over = dict(vocab_size=16384, hidden_size=1024, num_hidden_layers=8, num_attention_heads=8,
                num_key_value_heads=2, head_dim=128, intermediate_size=2816, moe_intermediate_size=512,
                n_routed_experts=32, num_experts_per_tok=4, n_group=1, topk_group=1,
                routed_scaling_factor=1.0, max_position_embeddings=8192,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                 "mrope_section": [8, 12, 12]})
    model = build_model(seed=1, vision_over={"out_hidden_size": 1024}, **over)
    MID.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(MID), max_shard_size="500MB")


def hf_bench(path: Path, prompt: int, new: int, dtype: torch.dtype, repeats: int) -> dict:
    from transformers import Glm4vMoeForConditionalGeneration

    t0 = time.perf_counter()
    model = Glm4vMoeForConditionalGeneration.from_pretrained(str(path), dtype=dtype).eval()
    load_s = time.perf_counter() - t0
    vocab = model.config.text_config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(prompt)]])
    prefill, steps = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
            if i > 0:
                prefill.append(time.perf_counter() - start)
        for _ in range(repeats):
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            cache, tok = out.cache, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(new - 1):
                out = model(input_ids=tok, cache=cache, use_cache=True)
                cache, tok = out.cache, out.logits[:, -1:].argmax(-1)
            steps.append((time.perf_counter() - start) / max(new - 1, 1))
    p, s = statistics.median(prefill), statistics.median(steps)
    return {"engine": "transformers", "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
            "prompt": prompt, "new": new, "load_s": load_s, "prefill_s": p, "prefill_tok_s": prompt / p,
            "decode_step_s": s, "decode_tok_s": 1 / s}


def folio_bench(path: Path, prompt: int, new: int, dtype: str, repeats: int) -> dict:
    cmd = [str(BIN), str(path), "--prompt", str(prompt), "--new", str(new), "--dtype", dtype,
           "--repeats", str(repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    build_mid()
    cases = [("tiny (fixture)", TINY, 64, 32), ("mid (1024h, 8L, 32E)", MID, 128, 32)]
    rows = []
    for name, path, prompt, new in cases:
        for dt_name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            for r in (folio_bench(path, prompt, new, dt_name, args.repeats),
                      hf_bench(path, prompt, new, dt, args.repeats)):
                r["model"] = name
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
    lines = ["| model | dtype | engine | prompt | prefill tok/s | decode tok/s | load s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        dtype = "bf16" if r["dtype"].lower() in ("bf16", "bfloat16") else "f32"
        lines.append(f"| {r['model']} | {dtype} | {r['engine']} | {r['prompt']} | {r['prefill_tok_s']:.0f} "
                     f"| {r['decode_tok_s']:.1f} | {r['load_s']:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
