#!/usr/bin/env python3
"""Rasterization speed: ``folio render FILE --dpi 200 -o DIR`` against ``pdftoppm -r 200 -png``.

Run it through the dispatcher: ``scripts/bench raster [--runs 3]``.

The input is a 20-page PDF assembled under ``bench-out/raster/`` with pypdf from real documents: Folio's
``examples/sample-scan.pdf`` and the corpus PDFs (scanned pages wrapped as JPEG images, born-digital
pages with vector text and figures), taken in a fixed order and cycled up to 20 pages. Pages larger
than A3 are left out (one poster-sized scan would dominate the time).

Each tool renders the whole file to PNG files in a fresh folder, ``--runs`` times (the input is read
once beforehand so that it sits in the page cache), alternating which tool goes first. Reported:
pages/s from the wall clock (median over runs), CPU seconds per page (user + system of the process and
its children), output size, and a check that both tools produced 20 pages of the same pixel sizes
(within 1 px). For context, ``pdftoppm`` writing PPM (no PNG encoding) is measured too: on scanned
pages PNG compression costs far more than rendering.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.machine import ToolError, corpus_dir, ensure_debian_tool, fmt, folio_binary, git_commit, load_average, machine_lines, md_table, median, repo_root, run_text  # noqa: E402,E501

PAGES = 20
DPI = 200
A3_AREA_PT2 = 842 * 1191
TARGET_SPEEDUP = 2.0
# Resampling differences between PDFium and Splash stay within a few grey levels on average; a blank or
# wrong page is far above this.
MAX_PIXEL_DIFF = 8.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PDF rasterization benchmark")
    p.add_argument("--runs", type=int, default=3, help="timed runs per tool (>= 1; default 3)")
    p.add_argument("--out", default=os.path.join(repo_root(), "bench-out"))
    p.add_argument("--rebuild", action="store_true", help="assemble the 20-page PDF again")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install poppler-utils")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def source_pdfs() -> list[str]:
    sample = os.path.join(repo_root(), "examples", "sample-scan.pdf")
    corpus = sorted(glob.glob(os.path.join(corpus_dir(), "*", "*.pdf")))
    return [p for p in [sample, *corpus] if os.path.isfile(p)]


def label(path: str) -> str:
    """`examples/…` for files of the repository, `corpus/…` for corpus files."""
    corpus = os.path.realpath(corpus_dir())
    real = os.path.realpath(path)
    if real.startswith(corpus + os.sep):
        return "corpus/" + os.path.relpath(real, corpus)
    return os.path.relpath(real, repo_root())


def build_pdf(path: str) -> list[str]:
    """Assemble the 20-page PDF at `path`; returns one line per page saying where it came from."""
    from pypdf import PdfReader, PdfWriter

    candidates = []
    for src in source_pdfs():
        reader = PdfReader(src)
        for index, page in enumerate(reader.pages):
            box = page.mediabox
            if float(box.width) * float(box.height) <= A3_AREA_PT2:
                candidates.append((src, index, page))
    if not candidates:
        raise ToolError("no source PDF pages found (examples/sample-scan.pdf, corpus PDFs)")
    writer = PdfWriter()
    origin = []
    for n in range(PAGES):
        src, index, page = candidates[n % len(candidates)]
        writer.add_page(page)
        origin.append(f"{label(src)} p{index + 1}")
    tmp = f"{path}.part"
    with open(tmp, "wb") as f:
        writer.write(f)
    os.replace(tmp, path)
    with open(f"{path}.pages.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(origin) + "\n")
    return origin


def png_sizes(folder: str) -> list[tuple[int, int]]:
    """(width, height) of every PNG in `folder`, in name order, read from the IHDR chunk."""
    sizes = []
    for path in sorted(glob.glob(os.path.join(folder, "*.png"))):
        with open(path, "rb") as f:
            head = f.read(24)
        if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n":
            sizes.append(struct.unpack(">II", head[16:24]))
    return sizes


def timed(cmd: list[str], log_path: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the process and its children, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, code


def commands(pdf: str, folder: str, pdftoppm: str) -> dict[str, list[str]]:
    return {
        "folio": [folio_binary(), "render", pdf, "--dpi", str(DPI), "-o", folder],
        "pdftoppm": [pdftoppm, "-r", str(DPI), "-png", pdf, os.path.join(folder, "p")],
        "pdftoppm-ppm": [pdftoppm, "-r", str(DPI), pdf, os.path.join(folder, "p")],
    }


def output_files(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.png")) + glob.glob(os.path.join(folder, "*.ppm")))


def pixel_differences(folder_a: str, folder_b: str) -> list[float]:
    """Mean absolute grey-level difference (0-255) per page between two folders of PNG pages.

    Pages whose sizes differ by a pixel are compared on their common area.
    """
    from PIL import Image, ImageChops, ImageStat

    out = []
    pages_a = sorted(glob.glob(os.path.join(folder_a, "*.png")))
    pages_b = sorted(glob.glob(os.path.join(folder_b, "*.png")))
    for a, b in zip(pages_a, pages_b, strict=False):
        with Image.open(a) as ia, Image.open(b) as ib:
            w, h = min(ia.width, ib.width), min(ia.height, ib.height)
            ga = ia.convert("L").crop((0, 0, w, h))
            gb = ib.convert("L").crop((0, 0, w, h))
            out.append(ImageStat.Stat(ImageChops.difference(ga, gb)).mean[0])
    return out


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(p) for p in output_files(folder))


def main() -> int:
    args = parse_args()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load_average()
    work = os.path.join(args.out, "raster")
    os.makedirs(work, exist_ok=True)
    try:
        pdftoppm = (ensure_debian_tool("pdftoppm", "poppler-utils") if not args.no_install
                    else shutil.which("pdftoppm"))
        if not pdftoppm:
            raise ToolError("pdftoppm is not installed (apt-get install poppler-utils)")
        pdf = os.path.join(work, f"raster-{PAGES}p.pdf")
        if args.rebuild or not os.path.isfile(pdf):
            build_pdf(pdf)
    except ToolError as err:
        print(f"bench raster: {err}", file=sys.stderr)
        return 2
    tools = ["pdftoppm", "pdftoppm-ppm"]
    notes = []
    if os.access(folio_binary(), os.X_OK):
        tools.insert(0, "folio")
    else:
        notes.append("folio: target/release/folio does not exist yet (cargo build --release); "
                     "only the pdftoppm anchor was measured")
    cmds = commands(pdf, "{out}", pdftoppm)
    stats: dict[str, dict[str, list]] = {t: {"wall": [], "cpu": [], "bytes": [], "errors": []}
                                         for t in tools}
    sizes: dict[str, list[tuple[int, int]]] = {}
    with open(pdf, "rb") as f:  # into the page cache before the first timed run
        while f.read(1 << 20):
            pass
    for r in range(1, args.runs + 1):
        order = tools if r % 2 == 1 else tools[::-1]
        for tool in order:
            folder = os.path.join(work, f"{tool}-out")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            cmd = [c.replace("{out}", folder) for c in cmds[tool]]
            wall, cpu, code = timed(cmd, os.path.join(work, f"{tool}.log"))
            got = png_sizes(folder)
            n_files = len(output_files(folder))
            print(f"bench raster: run {r}/{args.runs} {tool:12} {wall:6.2f} s wall, {cpu:6.2f} s CPU,"
                  f" {n_files} pages, exit {code}", file=sys.stderr)
            sizes[tool] = got
            if code != 0 or n_files != PAGES:
                stats[tool]["errors"].append(f"run {r}: exit {code}, {n_files} files")
                continue
            stats[tool]["wall"].append(wall)
            stats[tool]["cpu"].append(cpu)
            stats[tool]["bytes"].append(folder_bytes(folder))
            if tool == "pdftoppm-ppm":
                shutil.rmtree(folder, ignore_errors=True)  # 20 uncompressed pages: ~230 MB

    cmd_text = os.environ.get("BENCH_COMMAND") or " ".join(["scripts/bench_raster.py", *sys.argv[1:]])
    with open(f"{pdf}.pages.txt", encoding="utf-8") as f:
        origin = f.read().split("\n")
    sources = sorted({line.rsplit(" p", 1)[0] for line in origin if line})
    out = [f"### Rasterization run of {started}", "",
           f"- command: `{cmd_text}` (repo commit {git_commit()})", *machine_lines(load),
           f"- input: `bench-out/raster/raster-{PAGES}p.pdf`, {PAGES} pages assembled from "
           + ", ".join(f"`{s}`" for s in sources) + f" (page list in `raster-{PAGES}p.pdf.pages.txt`)",
           f"- pdftoppm: {run_text([pdftoppm, '-v'])}; command `pdftoppm -r {DPI} -png FILE DIR/p`"
           f" (pdftoppm-ppm: the same without `-png`, for context only)"]
    if "folio" in tools:
        out.append(f"- folio: {run_text([folio_binary(), '--version'])}; command "
                   f"`target/release/folio render FILE --dpi {DPI} -o DIR`")
    out += [f"- note: {n}" for n in notes]
    out += [f"- {args.runs} timed runs, alternating order; medians", ""]
    rows = []
    for tool in tools:
        s = stats[tool]
        wall = median(s["wall"])
        cpu = median(s["cpu"])
        rows.append([tool, fmt(PAGES / wall if wall else None), fmt(wall),
                     fmt(cpu / PAGES if cpu is not None else None, 3),
                     fmt(median(s["bytes"]) / 2**20 if s["bytes"] else None, 1),
                     "; ".join(s["errors"]) or ""])
    out += md_table(["tool", "pages/s (wall)", "wall s (20 pages)", "CPU s/page", "output MiB", "errors"],
                    rows, "lrrrrl")
    out.append("")
    if "folio" in tools and sizes.get("folio") and sizes.get("pdftoppm"):
        diff = sum(1 for a, b in zip(sizes["folio"], sizes["pdftoppm"], strict=False)
                   if abs(a[0] - b[0]) > 1 or abs(a[1] - b[1]) > 1)
        diff += abs(len(sizes["folio"]) - len(sizes["pdftoppm"]))
        out.append(f"- page sizes: {'all equal within 1 px' if diff == 0 else f'{diff} pages differ'}"
                   f" (folio {len(sizes['folio'])} pages, pdftoppm {len(sizes['pdftoppm'])})")
        diffs = pixel_differences(os.path.join(work, "folio-out"), os.path.join(work, "pdftoppm-out"))
        if diffs:
            same = max(diffs) <= MAX_PIXEL_DIFF
            out.append(f"- pixels: mean absolute grey-level difference between the two tools' pages "
                       f"(0-255): median {median(diffs):.2f}, worst page {max(diffs):.2f} "
                       f"({'the same pages, up to resampling' if same else 'CHECK: pages differ'})")
        fw, pw = median(stats["folio"]["wall"]), median(stats["pdftoppm"]["wall"])
        if fw and pw:
            ratio = pw / fw
            verdict = "met" if ratio >= TARGET_SPEEDUP else "NOT met"
            out.append(f"- target Folio ≥ {TARGET_SPEEDUP:.0f}× pdftoppm pages/s: {ratio:.2f}× "
                       f"**{verdict}**")
    else:
        out.append("- target Folio ≥ 2× pdftoppm pages/s: not evaluated (no Folio binary or no pages)")
    text = "\n".join(out) + "\n"
    with open(os.path.join(args.out, "raster.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
