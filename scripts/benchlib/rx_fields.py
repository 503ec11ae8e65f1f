"""Prescription field F1: how well an engine's prescription record matches the ground truth.

The record is the ``fields`` of a block (``schemas/json/prescription.schema.json``). Scored fields are
the medications' ``name``, ``strength``, ``frequency`` and ``duration``. Values are compared after
normalisation: case folded, spaces, dots and brackets dropped, ``x``/``for`` before a duration dropped,
durations as number + unit (``x5d`` = ``5 days``), and letters read for digits inside numbers
(``5OOmg`` = ``500mg``). Predicted medications are paired with ground-truth ones greedily by name
similarity (a pair needs a normalised-name similarity of at least 0.5, so a misread name can still
be paired and its other fields scored; the name itself only counts when equal).

Per field: a true positive is a paired medication whose predicted value equals the truth; every other
predicted value (wrong, or on an unpaired medication) is a false positive; every true value not
matched is a false negative. F1 = 2 TP / (2 TP + FP + FN), summed over pages and fields (micro).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

FIELDS = ("name", "strength", "frequency", "duration")
PAIR_MIN_SIMILARITY = 0.5

_DURATION = re.compile(r"^(?:x|for)?(\d+)(d|days?|w|wks?|weeks?|m|mths?|months?)$")
_DIGITISH = re.compile(r"^[0-9oil|]*[0-9][0-9oil|]*")


def normalize(key: str, value: object) -> str:
    """The comparable form of one field value ('' for null or blank)."""
    if value is None:
        return ""
    s = str(value).lower()
    s = re.sub(r"[\s.()\[\],:;]", "", s).replace("×", "x").replace("–", "-")
    if key in ("strength", "frequency", "duration"):
        m = _DIGITISH.match(s)
        if m:
            s = m.group(0).translate(str.maketrans("oil|", "0111")) + s[m.end():]
    if key == "strength":
        s = s.replace("mcg", "µg").replace("ug", "µg").replace("µg", "mcg")
    if key == "frequency":
        s = {"bid": "bd", "tid": "tds", "qds": "qid", "0d": "od"}.get(s, s)
        s = s.translate(str.maketrans("oil|", "0111")) if re.fullmatch(r"[0-9oil|-]+", s) else s
    if key == "duration":
        m = _DURATION.match(s)
        if m:
            unit = {"d": "day", "w": "week", "m": "month"}[m.group(2)[0]]
            s = f"{int(m.group(1))}{unit}"
    return s


def medications(record: dict | None) -> list[dict]:
    if not isinstance(record, dict):
        return []
    meds = record.get("medications")
    return [m for m in meds if isinstance(m, dict)] if isinstance(meds, list) else []


def pair(predicted: list[dict], truth: list[dict]) -> list[tuple[int, int]]:
    """Greedy pairs (predicted index, truth index) by normalised-name similarity."""
    scored = []
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            a, b = normalize("name", p.get("name")), normalize("name", t.get("name"))
            sim = difflib.SequenceMatcher(None, a, b).ratio() if a and b else 0.0
            if sim >= PAIR_MIN_SIMILARITY:
                scored.append((sim, -i, -j, i, j))
    scored.sort(reverse=True)
    used_p, used_t, pairs = set(), set(), []
    for _, _, _, i, j in scored:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((i, j))
    return pairs


@dataclass
class FieldCounts:
    tp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    fp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    fn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    pages: int = 0
    pages_with_record: int = 0

    def add(self, other: "FieldCounts") -> "FieldCounts":
        out = FieldCounts(pages=self.pages + other.pages,
                          pages_with_record=self.pages_with_record + other.pages_with_record)
        for k in FIELDS:
            out.tp[k] = self.tp[k] + other.tp[k]
            out.fp[k] = self.fp[k] + other.fp[k]
            out.fn[k] = self.fn[k] + other.fn[k]
        return out

    def f1(self, key: str | None = None) -> float | None:
        keys = FIELDS if key is None else (key,)
        tp = sum(self.tp[k] for k in keys)
        fp = sum(self.fp[k] for k in keys)
        fn = sum(self.fn[k] for k in keys)
        return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def score_record(predicted: dict | None, truth: dict) -> FieldCounts:
    """Counts for one page: `predicted` is the engine's record (None when it gave none)."""
    pm, tm = medications(predicted), medications(truth)
    counts = FieldCounts(pages=1, pages_with_record=int(isinstance(predicted, dict)))
    paired = dict(pair(pm, tm))
    matched_truth: set[tuple[int, str]] = set()
    for i, p in enumerate(pm):
        j = paired.get(i)
        for k in FIELDS:
            pv = normalize(k, p.get(k))
            if not pv:
                continue
            if j is not None and pv == normalize(k, tm[j].get(k)):
                counts.tp[k] += 1
                matched_truth.add((j, k))
            else:
                counts.fp[k] += 1
    for j, t in enumerate(tm):
        for k in FIELDS:
            if normalize(k, t.get(k)) and (j, k) not in matched_truth:
                counts.fn[k] += 1
    return counts


def record_of_page(page: dict) -> dict | None:
    """The prescription record of a Folio page result: the first block whose `fields` has medications."""
    for block in page.get("blocks") or []:
        fields = block.get("fields") if isinstance(block, dict) else None
        if isinstance(fields, dict) and "medications" in fields:
            return fields
    return None
