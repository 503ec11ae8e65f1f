"""The evaluation corpus: which items exist, what ground truth each has, and its reference text.

The corpus manifest (``MANIFEST.md``) lists every item under ``### `category/file` `` with a
``- **ground truth:**`` line naming its ground-truth files. The kind of ground truth decides how an item
is scored:

- ``text``: an exact transcription (``.gt.txt``; pages separated by form feeds), else text lines taken
  from line-level ALTO (``.gt.alto.xml``, or ``.pN.gt.alto.xml`` per page) -> CER and BoW WER;
- ``tests``: olmOCR-Bench unit tests (``.gt.jsonl``; not a transcription) -> tests passed;
- ``none``: nothing usable for OCR text (tables HTML, chart data) -> timing only.

Transcription conventions that are not page text are removed from references (documented in
BENCHMARKS.md): in the HTR-United tapuscorpus and Testaments de Poilus transcriptions ``~~~`` stands
for a word that was not transcribed (dropped), ``_`` marks an underlined word and ``^`` a superscript
(the marker is dropped, the text kept); in the UNLV-ISRI ground truth ``~`` marks a character the
keyers could not represent (dropped).
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .cer import normalize, substring_distance

ITEM_RE = re.compile(r"^### `([^`/]+)/([^`]+)`\s*$")
GT_LINE_RE = re.compile(r"^- \*\*ground truth:\*\*(.*)$")
BACKTICK_RE = re.compile(r"`([^`]+)`")


class CorpusError(Exception):
    """The corpus or its manifest is missing or malformed."""


@dataclass(frozen=True)
class OlmTest:
    """One olmOCR-Bench unit test (the types that only need the page text)."""

    id: str
    page: int
    type: str  # present | absent | order
    text: str = ""
    before: str = ""
    after: str = ""
    case_sensitive: bool = True


@dataclass
class Item:
    """One corpus file and its ground truth."""

    category: str
    path: str  # absolute
    gt_files: list[str]  # absolute paths named by the manifest
    kind: str = "none"  # text | tests | none
    pages_text: list[str] = field(default_factory=list)  # reference per page (kind == text)
    tests: list[OlmTest] = field(default_factory=list)  # kind == tests

    @property
    def stem(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def name(self) -> str:
        return f"{self.category}/{os.path.basename(self.path)}"

    @property
    def is_pdf(self) -> bool:
        return self.path.lower().endswith(".pdf")


def parse_manifest(corpus_dir: str) -> list[Item]:
    """Every item of the manifest, in manifest order, with its ground-truth files."""
    manifest = os.path.join(corpus_dir, "MANIFEST.md")
    try:
        with open(manifest, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise CorpusError(f"cannot read {manifest}: {err}") from err
    items: list[Item] = []
    current: Item | None = None
    for line in lines:
        m = ITEM_RE.match(line)
        if m:
            current = Item(m.group(1), os.path.join(corpus_dir, m.group(1), m.group(2)), [])
            items.append(current)
            continue
        g = GT_LINE_RE.match(line)
        if g and current is not None:
            # Names before the " — " description are the files.
            names = g.group(1).split(" — ", 1)[0]
            current.gt_files = [os.path.join(corpus_dir, n) for n in BACKTICK_RE.findall(names)]
    if not items:
        raise CorpusError(f"{manifest} lists no items")
    return items


def clean_reference(text: str, source_stem: str) -> str:
    """Drop the transcription markup of the item's source (see the module doc)."""
    if source_stem.startswith(("tapus_", "tdp_")):
        text = re.sub(r"(?<!\S)~~~(?!\S)", " ", text)
        text = re.sub(r"(?<!\S)[_^]", "", text)
        text = re.sub(r"\^", "", text)
    elif source_stem.startswith("unlv_"):
        text = text.replace("~", "")
    return text


def alto_lines(path: str) -> list[str]:
    """Text lines of an ALTO file: blocks in file order, lines top to bottom inside each block.

    A line's text is its ``String/@CONTENT`` values joined by single spaces.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise CorpusError(f"cannot read ALTO {path}: {err}") from err

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    out: list[str] = []
    for block in root.iter():
        if local(block.tag) != "TextBlock":
            continue
        lines: list[tuple[float, str]] = []
        for line in block.iter():
            if local(line.tag) != "TextLine":
                continue
            words = [s.get("CONTENT", "") for s in line.iter() if local(s.tag) == "String"]
            text = " ".join(w for w in words if w)
            if text:
                lines.append((float(line.get("VPOS", "0") or 0), text))
        lines.sort(key=lambda pair: pair[0])
        out.extend(text for _, text in lines)
    return out


def _load_tests(path: str) -> list[OlmTest]:
    tests: list[OlmTest] = []
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise CorpusError(f"cannot read tests {path}: {err}") from err
    for row in rows:
        kind = row.get("type")
        if kind not in ("present", "absent", "order"):
            continue  # table/baseline tests need structure, not text
        tests.append(OlmTest(
            id=str(row.get("id", "")), page=int(row.get("page", 1)), type=kind,
            text=str(row.get("text", "")), before=str(row.get("before", "")),
            after=str(row.get("after", "")), case_sensitive=bool(row.get("case_sensitive", True)),
        ))
    return tests


def load_ground_truth(item: Item) -> Item:
    """Fill `kind`, `pages_text` or `tests` of `item` from its ground-truth files."""
    txt = [p for p in item.gt_files if p.endswith(".gt.txt")]
    alto = sorted(p for p in item.gt_files if p.endswith(".gt.alto.xml"))
    jsonl = [p for p in item.gt_files if p.endswith(".gt.jsonl")]
    if txt:
        try:
            with open(txt[0], encoding="utf-8") as f:
                raw = f.read()
        except OSError as err:
            raise CorpusError(f"cannot read {txt[0]}: {err}") from err
        item.kind = "text"
        item.pages_text = [clean_reference(page, item.stem) for page in raw.split("\f")]
    elif alto:
        # One ALTO per page: `stem.gt.alto.xml` or `stem.pN.gt.alto.xml` (sorted by N).
        def page_no(p: str) -> int:
            m = re.search(r"\.p(\d+)\.gt\.alto\.xml$", p)
            return int(m.group(1)) if m else 1

        item.kind = "text"
        item.pages_text = [clean_reference("\n".join(alto_lines(p)), item.stem)
                           for p in sorted(alto, key=page_no)]
    elif jsonl:
        item.kind = "tests"
        item.tests = _load_tests(jsonl[0])
    else:
        item.kind = "none"
    return item


def load_items(corpus_dir: str, categories: list[str]) -> list[Item]:
    """Items of `categories` (in that order) with their ground truth loaded."""
    all_items = parse_manifest(corpus_dir)
    chosen = [load_ground_truth(i) for c in categories for i in all_items if i.category == c]
    missing = [i.path for i in chosen if not os.path.isfile(i.path)]
    if missing:
        raise CorpusError(f"manifest items missing on disk: {', '.join(missing)}")
    return chosen


# Share of a test string's length that may differ and still count as found (our rule, stricter on
# short strings than on long ones; olmOCR-Bench's own scorer uses its own fuzzy matching).
TEST_TOLERANCE = 0.10


def _find(needle: str, page: str, case_sensitive: bool) -> int | None:
    """End index of `needle` in `page` within the tolerance, or None (both normalised)."""
    needle, page = normalize(needle), normalize(page)
    if not case_sensitive:
        needle, page = needle.casefold(), page.casefold()
    distance, end = substring_distance(needle, page)
    return end if distance <= int(TEST_TOLERANCE * len(needle)) else None


def passes(test: OlmTest, page_text: str) -> bool:
    """Whether the page text passes one olmOCR-Bench text test (present / absent / order)."""
    if test.type == "present":
        return _find(test.text, page_text, test.case_sensitive) is not None
    if test.type == "absent":
        return _find(test.text, page_text, test.case_sensitive) is None
    before = _find(test.before, page_text, test.case_sensitive)
    after = _find(test.after, page_text, test.case_sensitive)
    return before is not None and after is not None and before < after
