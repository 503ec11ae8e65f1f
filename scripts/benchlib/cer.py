"""Text accuracy metrics for the benchmarks: normalisation, edit distance, CER, bag-of-words error.

Normalisation (applied to both the reference and the OCR output before any metric):
  1. Unicode NFC;
  2. every run of whitespace (spaces, tabs, newlines, form feeds) becomes one space;
  3. leading and trailing whitespace is removed.
Case and punctuation are kept: a wrong case or a missing comma is an error.

CER = Levenshtein distance (insertions, deletions, substitutions, each cost 1, on Unicode code points)
between normalised output and normalised reference, divided by the length of the normalised reference.
It can exceed 1 when the output is much longer than the reference.

The edit distance uses Myers' bit-parallel algorithm (Myers 1999, in Hyyrö's 2003 formulation for
edit distance) with Python integers as bit vectors: one pass over the text with a few big-integer
operations per character, so a 5,000-character page takes milliseconds instead of the seconds a
quadratic table would take in Python. ``substring_distance`` is the same recurrence in search mode
(the pattern may start anywhere in the text).

BoW WER (order-independent): the reference and the output are split into words on whitespace and
compared as multisets. missed = reference words not matched in the output, extra = output words not
matched in the reference; BoW WER = max(missed, extra) / reference words. A substituted word counts
once, as in WER, but reading-order differences between engines cost nothing.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass


def normalize(text: str) -> str:
    """NFC, then whitespace runs collapsed to single spaces, then trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _peq(pattern: str) -> dict[str, int]:
    """Bit mask of the positions of each character in `pattern` (bit i = pattern[i])."""
    masks: dict[str, int] = {}
    for i, ch in enumerate(pattern):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    return masks


def _myers(pattern: str, text: str, search: bool) -> tuple[int, int]:
    """Run Myers' recurrence of `pattern` against `text`.

    Global mode (search=False): returns (edit distance, len(text)).
    Search mode (search=True): returns (smallest distance of `pattern` to any substring of `text`,
    end index in `text` of the first substring reaching it).
    """
    m = len(pattern)
    if m == 0:
        return 0, 0
    peq = _peq(pattern)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    best, best_end = m, 0
    for j, ch in enumerate(text):
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        # Row 0 of the table is 0,1,2,... in global mode (a +1 enters at the top) and all zeros in
        # search mode (a match may start anywhere).
        ph = ((ph << 1) | (0 if search else 1)) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
        if search and score < best:
            best, best_end = score, j + 1
    if search:
        return best, best_end
    return score, len(text)


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance between `a` and `b` (code points)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    # The shorter string is the bit-vector pattern: fewer bits per operation.
    return _myers(b, a, search=False)[0]


def substring_distance(pattern: str, text: str) -> tuple[int, int]:
    """(Smallest edit distance between `pattern` and any substring of `text`, end index of it)."""
    if not pattern:
        return 0, 0
    if not text:
        return len(pattern), 0
    return _myers(pattern, text, search=True)


@dataclass(frozen=True)
class TextScore:
    """Accuracy counts of one page; adding scores sums the counts (micro-average over pages)."""

    edits: int
    ref_chars: int
    bow_errors: int
    ref_words: int

    @property
    def cer(self) -> float | None:
        return self.edits / self.ref_chars if self.ref_chars else None

    @property
    def bow_wer(self) -> float | None:
        return self.bow_errors / self.ref_words if self.ref_words else None

    def __add__(self, other: TextScore) -> TextScore:
        return TextScore(
            self.edits + other.edits,
            self.ref_chars + other.ref_chars,
            self.bow_errors + other.bow_errors,
            self.ref_words + other.ref_words,
        )


ZERO = TextScore(0, 0, 0, 0)


def bag_of_words(hypothesis: str, reference: str) -> tuple[int, int, int]:
    """(missed, extra, reference word count) of the normalised texts as word multisets."""
    ref = Counter(normalize(reference).split())
    hyp = Counter(normalize(hypothesis).split())
    return sum((ref - hyp).values()), sum((hyp - ref).values()), sum(ref.values())


def score(hypothesis: str, reference: str) -> TextScore:
    """Normalise both texts and count character edits and bag-of-words differences."""
    hyp, ref = normalize(hypothesis), normalize(reference)
    missed, extra, ref_words = bag_of_words(hyp, ref)
    return TextScore(levenshtein(hyp, ref), len(ref), max(missed, extra), ref_words)


def cer(hypothesis: str, reference: str) -> float | None:
    """Character error rate after normalisation; None when the reference is empty."""
    return score(hypothesis, reference).cer
