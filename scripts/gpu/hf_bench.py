"""transformers side of the GPU benchmark: GLM-4.5V's text decoder (and vision tower) with the real
shapes, the same layer count and random bf16 weights made on the GPU, timed the way
`gpu_bench` times Folio (medians after warm-up; one JSON line per number).

    python3 scripts/gpu/hf_bench.py --layers 26 --out hf.jsonl [--impl eager|sdpa] [--tiny]

Runs on the device machine's own Python (torch + transformers 5.x there). `--impl eager` is
transformers' eager attention and its eager per-expert loop; `sdpa` is its default pair
(SDPA attention, `grouped_mm` experts). Also measures the two ceilings (2 GiB device copy,
8192³ bf16 matmul) and the vision tower on a 1024×1024 page (1008×1008 after resize: 72×72 patches).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import torch


def log(out, rec: dict) -> None:
    out.write(json.dumps(rec) + "\n")
    out.flush()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def make_config(layers: int, tiny: bool, impl: str):
    from transformers import Glm4vMoeConfig

    text = dict(
        vocab_size=151552, hidden_size=4096, num_hidden_layers=layers, num_attention_heads=96,
        num_key_value_heads=8, head_dim=128, intermediate_size=10944, moe_intermediate_size=1408,
        n_routed_experts=128, num_experts_per_tok=8, n_shared_experts=1, first_k_dense_replace=1,
        norm_topk_prob=True, routed_scaling_factor=1.0, n_group=1, topk_group=1, attention_bias=True,
        rms_norm_eps=1e-5, max_position_embeddings=65536, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                         "mrope_section": [8, 12, 12]},
    )
    vision = dict(depth=24, hidden_size=1536, num_heads=12, out_hidden_size=4096, intermediate_size=10944,
                  patch_size=14, image_size=336, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                  rms_norm_eps=1e-5, attention_bias=False, hidden_act="silu")
    if tiny:
        text.update(vocab_size=512, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                    intermediate_size=96, moe_intermediate_size=32, n_routed_experts=16, num_experts_per_tok=4,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                     "mrope_section": [2, 3, 3]})
        vision.update(depth=2, hidden_size=64, num_heads=2, out_hidden_size=64, intermediate_size=96,
                      image_size=56)
    cfg = Glm4vMoeConfig(text_config=text, vision_config=vision, image_token_id=151363, video_token_id=151364,
                         image_start_token_id=151339, image_end_token_id=151340, video_start_token_id=151341,
                         video_end_token_id=151342)
    attn, experts = ("eager", "eager") if impl == "eager" else ("sdpa", "grouped_mm")
    for c in (cfg, cfg.text_config, cfg.vision_config):
        c._attn_implementation = attn
    cfg._experts_implementation = experts
    cfg.text_config._experts_implementation = experts
    return cfg


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int) -> None:
    """Same recipe as folio_glm45v::synthetic: N(0, 0.02²) weights, N(0, 0.01²) biases, norms = 1."""
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 1 and "norm" in name and name.endswith("weight"):
            p.fill_(1.0)
        elif name.endswith("bias") or "e_score_correction_bias" in name:
            p.normal_(0.0, 0.01)
        else:
            p.normal_(0.0, 0.02)
    for name, b in model.named_buffers():
        if "e_score_correction_bias" in name:
            b.normal_(0.0, 0.01)


def page_positions(total: int, device) -> torch.Tensor:
    """[3, 1, T] positions of `gpu_bench`'s page prompt: text, a side×side image grid, text."""
    side = int(math.isqrt(max(total - 4, 0)))
    rest = total - side * side
    pre, post = rest // 2, rest - rest // 2
    rows = [[], [], []]
    for p in range(pre):
        for r in rows:
            r.append(p)
    for y in range(side):
        for x in range(side):
            rows[0].append(pre)
            rows[1].append(pre + y)
            rows[2].append(pre + x)
    nxt = pre + side
    for p in range(post):
        for r in rows:
            r.append(nxt + p)
    return torch.tensor(rows, device=device).unsqueeze(1)


def ceilings(out, dev, tiny: bool) -> None:
    n = (1 << 20) if tiny else (1 << 30)
    src = torch.randn(n, device=dev, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    times = [timed(lambda: dst.copy_(src)) for _ in range(12)][2:]
    bw = 4.0 * n / statistics.median(times)
    m = 256 if tiny else 8192
    a = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
    b = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
    times = [timed(lambda: a @ b) for _ in range(12)][2:]
    fl = 2.0 * m ** 3 / statistics.median(times)
    print(f"torch ceilings: copy {bw / 1e9:.0f} GB/s, bf16 matmul {fl / 1e12:.0f} TFLOP/s", flush=True)
    log(out, {"bench": "ceilings", "engine": "torch", "copy_GBps": bw / 1e9, "matmul_TFLOPs": fl / 1e12})


class Decoder:
    """The text model + lm_head of the conditional-generation model, driven like gpu_bench."""

    def __init__(self, model):
        self.lm = model.model.language_model
        self.head = model.lm_head

    def step(self, embeds, positions, cache):
        out = self.lm(inputs_embeds=embeds, position_ids=positions, past_key_values=cache, use_cache=True)
        return self.head(out.last_hidden_state[:, -1:, :]).float()


def new_cache(cfg):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=cfg.text_config)
    except TypeError:
        return DynamicCache()


@torch.no_grad()
def bench_text(out, model, cfg, args, dev, tag: str) -> None:
    dec = Decoder(model)
    h = cfg.text_config.hidden_size
    gen = torch.Generator(device=dev).manual_seed(7)
    pos = page_positions(args.prefill, dev)
    t = pos.shape[-1]
    embeds = (0.02 * torch.randn(1, t, h, device=dev, generator=gen)).to(torch.bfloat16)
    # Prefill of the page prompt (first run is the warm-up).
    times = []
    for i in range(4):
        cache = new_cache(cfg)
        s = timed(lambda: dec.step(embeds, pos, cache))
        if i > 0:
            times.append(s)
    s = statistics.median(times)
    print(f"hf[{tag}] prefill {t}: {s * 1e3:.1f} ms = {t / s:.0f} tok/s", flush=True)
    log(out, {"bench": "prefill", "engine": "transformers", "impl": tag, "layers": args.layers,
              "tokens": t, "ms": s * 1e3, "tok_s": t / s, "runs": len(times)})
    # Decode at batch 1 after the prompt: embed the argmax token, one step, logits to host.
    cache = new_cache(cfg)
    logits = dec.step(embeds, pos, cache)
    delta = int(pos.max().item()) + 1 - t
    times = []
    token = int(logits.argmax().item())
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        e = dec.lm.embed_tokens(torch.tensor([[token]], device=dev))
        p = torch.full((3, 1, 1), cache.get_seq_length() + delta, device=dev, dtype=torch.long)
        logits = dec.step(e, p, cache)
        token = int(logits.argmax().item())
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    s = statistics.median(times)
    print(f"hf[{tag}] decode b=1: {s * 1e3:.2f} ms/step = {1 / s:.2f} tok/s "
          f"({min(times) * 1e3:.2f}-{max(times) * 1e3:.2f})", flush=True)
    log(out, {"bench": "decode_b1", "engine": "transformers", "impl": tag, "layers": args.layers,
              "context": t, "steps": len(times), "step_ms": s * 1e3, "tok_s": 1 / s,
              "step_ms_min": min(times) * 1e3, "step_ms_max": max(times) * 1e3})
    # Batched decode after a `batch_context`-token text prefill per sequence.
    for b in args.batches:
        ctx = args.batch_context
        cache = new_cache(cfg)
        e = (0.02 * torch.randn(b, ctx, h, device=dev, generator=gen)).to(torch.bfloat16)
        p = torch.arange(ctx, device=dev).view(1, 1, ctx).expand(3, b, ctx)
        logits = dec.step(e, p, cache)
        ids = logits[:, -1].argmax(-1)
        times = []
        for i in range(args.warmup + args.steps):
            start = time.perf_counter()
            e = dec.lm.embed_tokens(ids.view(b, 1))
            p = torch.full((3, b, 1), ctx + i, device=dev, dtype=torch.long)
            logits = dec.step(e, p, cache)
            ids = logits[:, -1].argmax(-1)
            ids.cpu()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        s = statistics.median(times)
        print(f"hf[{tag}] decode b={b}: {s * 1e3:.2f} ms/step = {b / s:.1f} tok/s", flush=True)
        log(out, {"bench": "decode_batched", "engine": "transformers", "impl": tag, "layers": args.layers,
                  "batch": b, "context": ctx, "step_ms": s * 1e3, "tok_s": b / s})


@torch.no_grad()
def bench_vision(out, model, args, dev, tag: str) -> None:
    vis = model.model.visual
    side = 8 if args.tiny else 72  # 1008×1008 pixels / 14
    n = side * side
    dim = 3 * 2 * 14 * 14
    gen = torch.Generator(device=dev).manual_seed(11)
    pixels = torch.randn(n, dim, device=dev, generator=gen).to(torch.bfloat16)
    grid = torch.tensor([[1, side, side]], device=dev)
    times = [timed(lambda: vis(pixels, grid_thw=grid)) for _ in range(6)][1:]
    s = statistics.median(times)
    print(f"hf[{tag}] vision tower {side * 14}x{side * 14}: {s * 1e3:.1f} ms", flush=True)
    log(out, {"bench": "vision", "engine": "torch", "impl": tag, "patches": n, "ms": s * 1e3,
              "runs": len(times)})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=26)
    ap.add_argument("--impl", action="append", choices=["eager", "sdpa"])
    ap.add_argument("--prefill", type=int, default=1300)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batches", default="8,32,64")
    ap.add_argument("--batch-context", type=int, default=128)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--skip-ceilings", action="store_true")
    ap.add_argument("--skip-vision", action="store_true")
    ap.add_argument("--out", default="/dev/stdout")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    impls = args.impl or ["eager"]
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import transformers
    from transformers import Glm4vMoeForConditionalGeneration

    with open(args.out, "a") as out:
        print(f"torch {torch.__version__}, transformers {transformers.__version__}, {dev}", flush=True)
        log(out, {"bench": "versions", "torch": torch.__version__, "transformers": transformers.__version__,
                  "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"})
        if not args.skip_ceilings:
            ceilings(out, dev, args.tiny)
        cfg = make_config(args.layers, args.tiny, impls[0])
        start = time.perf_counter()
        with torch.device(dev):
            model = Glm4vMoeForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
        model.eval()
        randomise(model, 42)
        sync()
        print(f"hf model: {args.layers} layers in {time.perf_counter() - start:.1f} s", flush=True)
        log(out, {"bench": "build", "engine": "transformers", "layers": args.layers,
                  "seconds": time.perf_counter() - start})
        for impl in impls:
            attn, experts = ("eager", "eager") if impl == "eager" else ("sdpa", "grouped_mm")
            model.set_attn_implementation(attn)
            for c in (cfg, cfg.text_config, model.config, model.config.text_config):
                c._experts_implementation = experts
            bench_text(out, model, model.config, args, dev, impl)
            if not args.skip_vision:
                bench_vision(out, model, args, dev, impl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
