"""CPU benchmark of GLM-4.5V's image side: Folio vs transformers in one run, same inputs, same threads.

    .venv-glm/bin/python workers/glm45v/scripts/bench_vision.py [--threads 2] [--repeats 5]

(the venv from workers/glm45v/tests/fixtures/requirements.txt). It writes two page images into
bench-out/vision/ from a real corpus scan (printed/tapus_btv1b53097347b_8.jpg, 3307x4935): an A4 page at
300 dpi (2480x3508) and a 1024x1024 square (centre crop), both PNG so that both sides decode the same pixels.

* processor: median ms of one image → pixel_values with transformers' default budget
  (min 12,544 / max 11,760,000 pixels): Folio's `ImageProcessor::process` (decoded image in) against
  transformers' `Glm4vImageProcessorPil` (PIL image in, `return_tensors="np"`);
* vision tower, tiny fixture (2 blocks of 64): the 1024x1024 page's patches through Folio's exported
  ONNX graph in ONNX Runtime (CPU EP) against transformers' `Glm4vMoeVisionModel` (eager, fp32).
Medians after one warm-up. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "workers/glm45v/tests/fixtures/tiny"
OUT = ROOT / "bench-out/vision"
EXAMPLE = ROOT / "target/release/examples/bench_vision"
SOURCE = "printed/tapus_btv1b53097347b_8.jpg"


def corpus() -> Path:
    env = os.environ.get("FOLIO_CORPUS_DIR")
    return Path(env) if env else ROOT.parent / "shared/corpus"


def runtime_lib() -> Path:
    env = os.environ.get("FOLIO_RUNTIME_DIR")
    base = Path(env) if env else Path.home() / ".cache/folio"
    return base / "lib/libonnxruntime.so.1.31.1"


def make_pages() -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    pages = {"A4 300 dpi (2480x3508)": OUT / "page_2480x3508.png", "1024x1024": OUT / "page_1024.png"}
    if all(p.is_file() for p in pages.values()):
        return pages
    src = Image.open(corpus() / SOURCE).convert("RGB")
    src.resize((2480, 3508), Image.LANCZOS).save(pages["A4 300 dpi (2480x3508)"])
    w, h = src.size
    side = min(w, h)
    crop = src.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    crop.resize((1024, 1024), Image.LANCZOS).save(pages["1024x1024"])
    return pages


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pages = make_pages()
    tower_page = pages["1024x1024"]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "folio-glm45v", "--example", "bench_vision"],
                   cwd=ROOT, check=True)
    cmd = [str(EXAMPLE), "--onnx", str(TINY / "vision.onnx"), "--ort", str(runtime_lib()),
           "--config", str(TINY / "config.json"), "--threads", str(a.threads), "--repeats", str(a.repeats),
           "--tower-image", str(tower_page), *[str(p) for p in pages.values()]]
    folio = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    proc = Glm4vImageProcessorPil()
    rows = []
    for (name, path), frow in zip(pages.items(), folio["processor"]):
        img = Image.open(path)
        img.load()
        hf_ms = median_ms(lambda: proc(images=[img], return_tensors="np"), a.repeats)
        grid = proc(images=[img], return_tensors="np")["image_grid_thw"][0].tolist()
        assert grid == frow["grid"], (grid, frow["grid"])
        rows.append((f"processor, {name} → grid {grid[1]}x{grid[2]}", frow["ms"], hf_ms))

    spec = importlib.util.spec_from_file_location("export_vision_onnx", ROOT / "workers/glm45v/scripts/export_vision_onnx.py")
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    vision = exp.load_vision(TINY, torch.float32)
    out = proc(images=[Image.open(tower_page).convert("RGB")], return_tensors="pt")
    pv, grid = out["pixel_values"], out["image_grid_thw"]
    with torch.inference_mode():
        hf_tower = median_ms(lambda: vision(pv, grid_thw=grid), a.repeats)
    t = folio["tower"]
    rows.append((f"vision tower (tiny), 1024x1024: {t['patches']} patches → {t['tokens']} tokens", t["ms"], hf_tower))

    print(f"threads: {a.threads}, repeats: {a.repeats} (medians after a warm-up)\n")
    print("| step | Folio ms | transformers ms | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, f_ms, h_ms in rows:
        print(f"| {name} | {f_ms:.1f} | {h_ms:.1f} | {h_ms / f_ms:.1f}× |")


if __name__ == "__main__":
    main()
