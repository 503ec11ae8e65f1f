"""Vision tower on the GPU: Folio's ONNX export on ONNX Runtime's CUDA execution provider against
PyTorch on the same GPU — parity and milliseconds for one 1024×1024 page (72×72 patches).

    python3 scripts/gpu/vision_bench.py --out vision.jsonl [--tiny] [--dtypes fp32,fp16] [--part ort|torch|all]

Builds GLM-4.5V's vision tower with the real shapes (24 blocks × 1536, 12 heads, merger to 4096)
and random weights (same recipe as hf_bench), writes it as a checkpoint directory (`model.visual.*`),
exports it with the project's `workers/glm45v/scripts/export_vision_onnx.py` (fp32 and fp16), then
for each export: ORT CUDA EP output vs transformers fp32 on the GPU (relative L2 and max error), and
the median time of `session.run` from host arrays (what Folio's ort call does) after warm-up, beside
transformers' eager and SDPA tower in fp32 / fp16 / bf16. The fp32 export runs twice on the CUDA EP:
with `use_tf32=0` (the exact-fp32 parity check, limit 1e-4) and with ORT's default TF32 (timed,
error informative). `--part ort` stops before the transformers timings and leaves the exports in
`--dir` for `gpu_pages`. Needs the onnxruntime-gpu build on
PYTHONPATH (session.sh's `ort-install`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "workers/glm45v/scripts"))


def log(out, rec: dict) -> None:
    print(json.dumps(rec), flush=True)
    out.write(json.dumps(rec) + "\n")
    out.flush()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn, warmup: int = 2, reps: int = 10) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_checkpoint(directory: Path, tiny: bool) -> None:
    from safetensors.torch import save_file
    from transformers import Glm4vMoeConfig
    from transformers.models.glm4v_moe.modeling_glm4v_moe import Glm4vMoeVisionModel

    vision = dict(depth=24, hidden_size=1536, num_heads=12, out_hidden_size=4096, intermediate_size=10944,
                  patch_size=14, image_size=336, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                  rms_norm_eps=1e-5, attention_bias=False, hidden_act="silu")
    if tiny:
        vision.update(depth=2, hidden_size=64, num_heads=2, out_hidden_size=64, intermediate_size=96, image_size=56)
    text = dict(vocab_size=512, hidden_size=vision["out_hidden_size"], num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, intermediate_size=96, moe_intermediate_size=32,
                n_routed_experts=4, num_experts_per_tok=2,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                 "mrope_section": [2, 3, 3]})
    cfg = Glm4vMoeConfig(text_config=text, vision_config=vision, image_token_id=500, video_token_id=501,
                         image_start_token_id=502, image_end_token_id=503, video_start_token_id=504,
                         video_end_token_id=505)
    directory.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(str(directory))
    torch.manual_seed(42)
    model = Glm4vMoeVisionModel(cfg.vision_config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.01)
            else:
                p.normal_(0.0, 0.02)
    state = {f"model.visual.{k}": v.contiguous() for k, v in model.state_dict().items() if "inv_freq" not in k}
    save_file(state, str(directory / "model.safetensors"))


def ort_session(ort, path: Path, tf32: bool | None):
    """A CUDA EP session (`use_tf32` set when `tf32` is not None), CPU fallback listed."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cuda = "CUDAExecutionProvider" if tf32 is None else ("CUDAExecutionProvider", {"use_tf32": "1" if tf32 else "0"})
    return ort.InferenceSession(str(path), opts, providers=[cuda, "CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/dev/stdout")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/folio-vision"))
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--part", choices=["ort", "torch", "all"], default="all",
                    help="ort: export + ORT CUDA EP parity/timing (leaves the exports for gpu_pages); "
                         "torch: transformers' tower timings")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()

    import export_vision_onnx as ev

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    side = 8 if args.tiny else 72
    with open(args.out, "a") as out:
        if not (args.dir / "model.safetensors").is_file():
            start = time.perf_counter()
            make_checkpoint(args.dir, args.tiny)
            log(out, {"bench": "vision_setup", "seconds": time.perf_counter() - start})
        ref_model = ev.load_vision(args.dir, torch.float32)
        patches, inputs, grid = ev.reference_inputs(ref_model, [[1, side, side]], seed=3)
        if args.part in ("ort", "all"):
            import onnxruntime as ort

            log(out, {"bench": "vision_env", "onnxruntime": ort.__version__,
                      "providers": ort.get_available_providers()})
            with torch.no_grad():
                ref = ref_model.to(dev)(patches.to(dev), grid_thw=grid.to(dev)).pooler_output.float().cpu()
            feeds = {name: a.numpy() for name, a in zip(ev.INPUTS, inputs)}
            for dtype_name in [d for d in args.dtypes.split(",") if d]:
                path = args.dir / ("vision.onnx" if dtype_name == "fp32" else "vision.fp16.onnx")
                start = time.perf_counter()
                ev.export(args.dir, path, dtype_name, "auto")
                log(out, {"bench": "vision_export", "dtype": dtype_name, "seconds": time.perf_counter() - start})
                # fp32: TF32 off is the exact-fp32 parity case (1e-4); ORT's default (TF32 on) is timed beside it.
                variants = [(False, "TF32 off"), (None, "TF32 on (default)")] if dtype_name == "fp32" else [(None, "")]
                for tf32, label in variants:
                    sess = ort_session(ort, path, tf32)
                    provider = sess.get_providers()[0]
                    got = torch.from_numpy(sess.run(ev.OUTPUTS, feeds)[0])
                    rel_l2 = float((got - ref).norm() / ref.norm())
                    rel_max = float((got - ref).abs().max() / max(1.0, float(ref.abs().max())))
                    s = median_time(lambda: sess.run(ev.OUTPUTS, feeds))
                    impl = f"{provider} {dtype_name}" + (f" {label}" if label else "")
                    log(out, {"bench": "vision", "engine": "onnxruntime", "impl": impl,
                              "provider": provider, "patches": int(patches.shape[0]), "ms": s * 1e3})
                    if dtype_name == "fp32" and tf32 is None:
                        log(out, {"check": f"vision tower ORT {impl} vs transformers fp32",
                                  "note": f"rel L2 {rel_l2:.3e}, rel max {rel_max:.3e} (TF32 rounding; informative)"})
                    else:
                        limit = 1e-4 if dtype_name == "fp32" else 1e-2
                        log(out, {"check": f"vision tower ORT {impl} vs transformers fp32 (rel L2)",
                                  "value": rel_l2, "limit": limit,
                                  "ok": rel_l2 <= limit and provider.startswith("CUDA"),
                                  "detail": f"rel max {rel_max:.3e}, {patches.shape[0]} patches"})
                    del sess
        if args.part in ("torch", "all"):
            with torch.no_grad():
                for dtype_name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
                    for impl in ("sdpa", "eager"):
                        m = ev.load_vision(args.dir, dtype).to(dev)
                        m.config._attn_implementation = impl
                        p = patches.to(dev, dtype)
                        g = grid.to(dev)
                        s = median_time(lambda: m(p, grid_thw=g))
                        log(out, {"bench": "vision", "engine": "torch", "impl": f"{impl} {dtype_name}",
                                  "patches": int(patches.shape[0]), "ms": s * 1e3})
                        del m
                        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
