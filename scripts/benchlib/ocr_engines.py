"""The OCR engines the benchmark compares, each timed the same two ways.

Every engine gets the same page image files (images as they are; PDF pages rendered once at 200 DPI with
PDFium through pypdfium2, the same PDFium build Folio uses) and is timed twice per page:

- **process**: a fresh process per page, wall clock from start to exit: interpreter/binary start,
  model load, image decoding and OCR. ``folio parse IMAGE``, ``rapidocr_page.py [--cls] IMAGE``,
  ``tesseract IMAGE stdout -l eng``. Accuracy comes from this pass.
- **engine**: the OCR of an image already decoded, models loaded and warmed up on one page first.
  Folio: its page results' ``timings.total`` from one ``folio parse`` over the category's pages (the
  first page once more in front, as the warm-up, not counted); rapidocr: the call on a decoded
  array in this process; tesseract: ``SetImage`` + ``GetUTF8Text`` through its C API
  (``tess_capi.py``), on the same ``libtesseract`` the CLI uses.

rapidocr runs twice: without its angle classifier (``rapidocr``, like Folio's default) and with it
(``rapidocr+cls``). Tesseract runs with ``OMP_THREAD_LIMIT=1`` in both passes.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata

from .groundtruth import Item
from .machine import ensure_debian_tool, run_text, runtime_dir
from .rx_fields import record_of_page

RENDER_DPI = 200
HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Page:
    """One page to read: its item, 1-based number and the image file every engine reads."""

    item: Item
    number: int
    image: str

    @property
    def key(self) -> str:
        return f"{self.item.name}#{self.number}"


@dataclass
class PageRun:
    """One engine's result for one page in one run."""

    text: str = ""
    process_s: float | None = None  # fresh process per page, wall clock
    engine_s: float | None = None  # OCR of the decoded image, warm
    error: str = ""
    stages: dict[str, float] = field(default_factory=dict)  # Folio's `timings` (warm), seconds
    record: dict | None = None  # Folio's prescription record, when the page has one


@dataclass
class CategoryRun:
    """One engine's results for the pages of one category in one run."""

    pages: dict[str, PageRun] = field(default_factory=dict)
    error: str = ""

    def page(self, key: str) -> PageRun:
        return self.pages.setdefault(key, PageRun())


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


def timed_process(cmd: list[str], env: dict | None = None) -> tuple[str, float, str]:
    """(stdout, wall seconds, error or '') of one process."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env, check=False)
    seconds = time.perf_counter() - start
    out = done.stdout.decode("utf-8", errors="replace")
    error = "" if done.returncode == 0 else (
        f"exit {done.returncode}: " + done.stderr.decode(errors="replace")[-300:])
    return out, seconds, error


class RapidOcrEngine:
    """rapidocr with Folio's model files; `cls` turns its angle classifier on."""

    def __init__(self, cls: bool) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.load_image import LoadImage

        self.cls = cls
        self.name = "rapidocr+cls" if cls else "rapidocr"
        models = os.path.join(runtime_dir(), "models")
        self.model_paths = {
            "Det.model_path": os.path.join(models, "PP-OCRv6_det_small.onnx"),
            "Rec.model_path": os.path.join(models, "PP-OCRv6_rec_small.onnx"),
            "Cls.model_path": os.path.join(models, "ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
        }
        missing = [p for p in self.model_paths.values() if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"missing models {missing}; run scripts/setup")
        self.ocr = RapidOCR(params={**self.model_paths, "Global.use_cls": cls,
                                    "Global.log_level": "warning"})
        self.load = LoadImage()
        self.warmed = False

    def version(self) -> str:
        return (f"rapidocr {metadata.version('rapidocr')}, onnxruntime {metadata.version('onnxruntime')}"
                f" (CPU, default threads), angle classifier {'on' if self.cls else 'off'}, models: "
                + ", ".join(os.path.basename(p) for p in self.model_paths.values()))

    def run(self, pages: list[Page], label: str) -> CategoryRun:
        del label
        result = CategoryRun()
        script = os.path.join(HERE, "rapidocr_page.py")
        for page in pages:
            cmd = [sys.executable, script, *(["--cls"] if self.cls else []), page.image]
            text, seconds, error = timed_process(cmd)
            pr = result.page(page.key)
            pr.text, pr.process_s, pr.error = text, (None if error else seconds), error
        for page in pages:
            try:
                image = self.load(page.image)
                if not self.warmed:
                    self.ocr(image)  # sessions start on the first call: keep that out
                    self.warmed = True
                start = time.perf_counter()
                self.ocr(image)
                result.page(page.key).engine_s = time.perf_counter() - start
            except Exception as err:  # noqa: BLE001 - one page failing is reported, not fatal
                result.page(page.key).error = f"{type(err).__name__}: {err}"
        return result


class TesseractEngine:
    name = "tesseract"

    def __init__(self, install: bool) -> None:
        from .tess_capi import TessApi, limit_threads

        self.binary = (ensure_debian_tool("tesseract", "tesseract-ocr") if install
                       else shutil.which("tesseract"))
        if not self.binary:
            raise FileNotFoundError("tesseract is not installed (apt-get install tesseract-ocr)")
        self.env = dict(os.environ, OMP_THREAD_LIMIT="1")
        limit_threads()
        self.api = TessApi()
        atexit.register(self.api.close)
        self.warmed = False

    def version(self) -> str:
        return (f"{run_text([self.binary, '--version'])} (-l eng, OMP_THREAD_LIMIT=1; process: the CLI "
                f"per page; engine: libtesseract {self.api.version()} C API)")

    def run(self, pages: list[Page], label: str) -> CategoryRun:
        del label
        from PIL import Image

        result = CategoryRun()
        for page in pages:
            text, seconds, error = timed_process(
                [self.binary, page.image, "stdout", "-l", "eng"], self.env)
            pr = result.page(page.key)
            pr.text, pr.process_s, pr.error = text, (None if error else seconds), error
        for page in pages:
            with Image.open(page.image) as im:
                dpi = int(round((im.info.get("dpi") or (RENDER_DPI,))[0])) or RENDER_DPI
                grey = im.convert("L")
            pixels = grey.tobytes()
            if not self.warmed:
                self.api.read(pixels, grey.width, grey.height, dpi)
                self.warmed = True
            _, seconds = self.api.read(pixels, grey.width, grey.height, dpi)
            result.page(page.key).engine_s = seconds
        return result


def folio_page_text(page: dict) -> str:
    """The page's text: its blocks' `text` joined with newlines, in block order."""
    blocks = page.get("blocks") or []
    return "\n".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("text"))


class FolioEngine:
    name = "folio"

    def __init__(self, binary: str, out_root: str, profile: str = "auto") -> None:
        self.binary = binary
        self.out_root = out_root
        self.profile = profile

    def version(self) -> str:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(self.binary)))
        return (f"{run_text([self.binary, '--version'])} ({os.path.relpath(self.binary)}, built "
                f"{built}; profile {self.profile})")

    def command(self, files: list[str], out_dir: str) -> list[str]:
        return [self.binary, "parse", *files, "-o", out_dir, "--format", "json", "-q",
                "--profile", self.profile]

    def run(self, pages: list[Page], label: str) -> CategoryRun:
        result = CategoryRun()
        root = os.path.join(self.out_root, label)
        shutil.rmtree(root, ignore_errors=True)
        # Process pass: one `folio parse` per page.
        for n, page in enumerate(pages):
            out_dir = os.path.join(root, "process", f"{n:04}")
            _, seconds, error = timed_process(self.command([page.image], out_dir))
            pr = result.page(page.key)
            got = self._pages(out_dir, [page.image])
            first = got[0] if got else None
            if error or first is None:
                pr.error = error or "no page result"
                continue
            pr.process_s = seconds
            pr.text = folio_page_text(first)
            pr.record = record_of_page(first)
        # Engine pass: one process over the pages, the first page once more in front as warm-up.
        images = [p.image for p in pages]
        out_dir = os.path.join(root, "engine")
        _, _, error = timed_process(self.command(images[:1] + images, out_dir))
        if error:
            result.error = f"engine pass: {error}"
        for page, got in zip(pages, self._pages(out_dir, images[:1] + images)[1:]):
            if got is None:
                continue
            timings = got.get("timings") or {}
            stages = {k: float(v) / 1000 for k, v in timings.items() if isinstance(v, (int, float))}
            pr = result.page(page.key)
            pr.engine_s, pr.stages = stages.get("total"), stages
        return result

    @staticmethod
    def _pages(out_dir: str, images: list[str]) -> list[dict | None]:
        """The page result of each input, in order (`folio parse` names repeated stems `stem-2`)."""
        seen: dict[str, int] = {}
        out: list[dict | None] = []
        for image in images:
            stem = os.path.splitext(os.path.basename(image))[0]
            seen[stem] = seen.get(stem, 0) + 1
            name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
            try:
                with open(os.path.join(out_dir, name, "pages", "00001.json"), encoding="utf-8") as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                out.append(None)
        return out
