#!/usr/bin/env python3
"""Character error rate of one text against a reference, as the OCR benchmark computes it.

    scripts/cer.py OUTPUT.txt REFERENCE.txt      # e.g. REFERENCE = examples/sample-scan.gt.txt

Both texts are normalised (Unicode NFC, whitespace runs collapsed to one space); prints the edit
distance, the reference length, the CER and the order-independent bag-of-words error (BoW WER). The
definitions are in scripts/benchlib/cer.py. Needs only the Python standard library.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.cer import score  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    texts = []
    for path in argv[1:]:
        try:
            with open(path, encoding="utf-8") as f:
                texts.append(f.read())
        except (OSError, UnicodeDecodeError) as err:
            print(f"cer: {path}: {err}", file=sys.stderr)
            return 2
    s = score(texts[0], texts[1])
    cer = "n/a (empty reference)" if s.cer is None else f"{100 * s.cer:.2f} %"
    bow = "n/a" if s.bow_wer is None else f"{100 * s.bow_wer:.2f} %"
    print(f"edits {s.edits}  reference chars {s.ref_chars}  CER {cer}  BoW WER {bow}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
