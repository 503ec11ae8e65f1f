#!/usr/bin/env python3
"""One page through rapidocr in a fresh process: ``rapidocr_page.py [--cls] IMAGE`` prints its text.

The OCR benchmark times this whole process (interpreter start, imports, model load, image decoding,
OCR) as rapidocr's "whole process per page" column, like ``tesseract IMAGE stdout`` and
``folio parse IMAGE``. The models are the runtime folder's (the ones Folio loads).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    args = sys.argv[1:]
    cls = "--cls" in args
    images = [a for a in args if a != "--cls"]
    if len(images) != 1:
        print("usage: rapidocr_page.py [--cls] IMAGE", file=sys.stderr)
        return 2
    from rapidocr import RapidOCR

    models = os.path.join(os.environ.get("FOLIO_RUNTIME_DIR") or os.path.expanduser("~/.cache/folio"),
                          "models")
    ocr = RapidOCR(params={
        "Det.model_path": os.path.join(models, "PP-OCRv6_det_small.onnx"),
        "Rec.model_path": os.path.join(models, "PP-OCRv6_rec_small.onnx"),
        "Cls.model_path": os.path.join(models, "ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
        "Global.use_cls": cls,
        "Global.log_level": "warning",
    })
    out = ocr(images[0])
    sys.stdout.write("\n".join(out.txts or ()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
