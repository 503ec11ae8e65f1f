"""The OCR engines the benchmark compares, each behind the same small interface.

- ``FolioEngine``: ``target/release/folio parse FILES... -o OUT --format json --dpi 200``, one process per
  category; it reports the process wall clock and each page's engine ``timings.total``.
- ``RapidOcrEngine``: the Python ``rapidocr`` package in this process with the exact model files Folio
  uses (paths passed explicitly), created once and warmed up; per page, the time of the call only.
- ``TesseractEngine``: the ``tesseract`` CLI, one process per page, ``-l eng``, ``OMP_THREAD_LIMIT=1``;
  per page, the process wall clock (so it includes tesseract's start-up and model load).

Every engine gets the same page files: images as they are, PDF pages rendered once at 200 DPI with
PDFium (pypdfium2, the same PDFium build Folio uses). Folio gets the original files and rasterizes PDFs
itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata

from .groundtruth import Item
from .machine import ensure_debian_tool, run_text, runtime_dir

RENDER_DPI = 200


@dataclass(frozen=True)
class Page:
    """One page to read: its item, 1-based number and the image file the anchors read."""

    item: Item
    number: int
    image: str

    @property
    def key(self) -> str:
        return f"{self.item.name}#{self.number}"


@dataclass
class PageRun:
    """One engine's result for one page in one run."""

    text: str
    seconds: float | None  # per-page time as the engine's section of the report defines it
    error: str = ""
    stages: dict[str, float] = field(default_factory=dict)  # Folio's `timings`, seconds per stage


@dataclass
class CategoryRun:
    """One engine's results for the pages of one category in one run."""

    pages: dict[str, PageRun] = field(default_factory=dict)
    wall_seconds: float | None = None  # whole-process wall clock (Folio only)
    error: str = ""


def render_pdf_pages(item: Item, cache_dir: str) -> list[Page]:
    """Render every page of a PDF at 200 DPI to PNG once (kept in `cache_dir`)."""
    import pypdfium2 as pdfium  # the bench venv has it; imported lazily for the pure helpers' tests

    out_dir = os.path.join(cache_dir, item.category, item.stem)
    os.makedirs(out_dir, exist_ok=True)
    doc = pdfium.PdfDocument(item.path)
    try:
        pages = []
        for index in range(len(doc)):
            path = os.path.join(out_dir, f"{index + 1:05}.png")
            if not os.path.isfile(path):
                bitmap = doc[index].render(scale=RENDER_DPI / 72)
                image = bitmap.to_pil()
                tmp = f"{path}.part.png"
                image.save(tmp, dpi=(RENDER_DPI, RENDER_DPI))
                os.replace(tmp, path)
            pages.append(Page(item, index + 1, path))
        return pages
    finally:
        doc.close()


def pages_of(item: Item, cache_dir: str) -> list[Page]:
    if item.is_pdf:
        return render_pdf_pages(item, cache_dir)
    return [Page(item, 1, item.path)]


class RapidOcrEngine:
    name = "rapidocr"

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        models = os.path.join(runtime_dir(), "models")
        self.model_paths = {
            "Det.model_path": os.path.join(models, "PP-OCRv6_det_small.onnx"),
            "Rec.model_path": os.path.join(models, "PP-OCRv6_rec_small.onnx"),
            "Cls.model_path": os.path.join(models, "ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
        }
        missing = [p for p in self.model_paths.values() if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"missing models {missing}; run scripts/setup")
        self.ocr = RapidOCR(params={**self.model_paths, "Global.log_level": "warning"})
        self.warmed = False

    def version(self) -> str:
        return (f"rapidocr {metadata.version('rapidocr')}, onnxruntime {metadata.version('onnxruntime')}"
                f" (CPU, default threads), models: "
                + ", ".join(os.path.basename(p) for p in self.model_paths.values()))

    def read(self, image: str) -> PageRun:
        if not self.warmed:
            # The first call loads the classifier and recogniser sessions: keep that out of the timings.
            self.ocr(image)
            self.warmed = True
        start = time.perf_counter()
        out = self.ocr(image)
        seconds = time.perf_counter() - start
        return PageRun("\n".join(out.txts or ()), seconds)

    def run(self, pages: list[Page]) -> CategoryRun:
        result = CategoryRun()
        for page in pages:
            try:
                result.pages[page.key] = self.read(page.image)
            except Exception as err:  # noqa: BLE001 - an anchor failing on one page is reported, not fatal
                result.pages[page.key] = PageRun("", None, f"{type(err).__name__}: {err}")
        return result


class TesseractEngine:
    name = "tesseract"

    def __init__(self, install: bool) -> None:
        self.binary = (ensure_debian_tool("tesseract", "tesseract-ocr") if install
                       else shutil.which("tesseract"))
        if not self.binary:
            raise FileNotFoundError("tesseract is not installed (apt-get install tesseract-ocr)")
        self.env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def version(self) -> str:
        return f"{run_text([self.binary, '--version'])} (-l eng, OMP_THREAD_LIMIT=1, CLI per page)"

    def run(self, pages: list[Page]) -> CategoryRun:
        result = CategoryRun()
        for page in pages:
            cmd = [self.binary, page.image, "stdout", "-l", "eng"]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, env=self.env, check=False)
            seconds = time.perf_counter() - start
            text = done.stdout.decode("utf-8", errors="replace")
            error = "" if done.returncode == 0 else done.stderr.decode(errors="replace")[-300:]
            result.pages[page.key] = PageRun(text, seconds if not error else None, error)
        return result


def folio_page_text(page: dict) -> str:
    """The page's text: its blocks' `text` joined with newlines, in block order."""
    blocks = page.get("blocks") or []
    return "\n".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("text"))


class FolioEngine:
    name = "folio"

    def __init__(self, binary: str, out_root: str) -> None:
        self.binary = binary
        self.out_root = out_root

    def version(self) -> str:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(self.binary)))
        return f"{run_text([self.binary, '--version'])} (target/release/folio, built {built})"

    def command(self, files: list[str], out_dir: str) -> list[str]:
        return [self.binary, "parse", *files, "-o", out_dir, "--format", "json",
                "--dpi", str(RENDER_DPI)]

    def run(self, pages: list[Page], label: str) -> CategoryRun:
        """One `folio parse` process over every file of `pages` (one category)."""
        result = CategoryRun()
        files = list(dict.fromkeys(p.item.path for p in pages))
        out_dir = os.path.join(self.out_root, label)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        log_path = os.path.join(self.out_root, f"{label}.log")
        with open(log_path, "wb") as log:
            start = time.perf_counter()
            done = subprocess.run(self.command(files, out_dir), stdout=log, stderr=subprocess.STDOUT,
                                  check=False)
            result.wall_seconds = time.perf_counter() - start
        if done.returncode != 0:
            result.error = f"exit {done.returncode} (log: {log_path})"
        by_item: dict[str, dict[int, dict]] = {}
        for path in files:
            stem = os.path.splitext(os.path.basename(path))[0]
            doc_path = os.path.join(out_dir, stem, "document.json")
            try:
                with open(doc_path, encoding="utf-8") as f:
                    doc = json.load(f)
                by_item[path] = {int(p["page"]): p for p in doc.get("pages", [])}
            except (OSError, ValueError, KeyError, TypeError) as err:
                by_item[path] = {}
                result.error = result.error or f"{doc_path}: {err}"
        for page in pages:
            got = by_item.get(page.item.path, {}).get(page.number)
            if got is None:
                result.pages[page.key] = PageRun("", None, "no page in document.json")
                continue
            timings = got.get("timings") or {}
            stages = {k: float(v) / 1000 for k, v in timings.items() if isinstance(v, (int, float))}
            result.pages[page.key] = PageRun(folio_page_text(got), stages.get("total"), stages=stages)
        return result
