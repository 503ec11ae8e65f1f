#!/usr/bin/env python3
"""Prescription field F1 of Folio's `ocr` engine on generated prescriptions.

  scripts/make_prescriptions.py --count 20 --out-dir bench-out/prescriptions
  scripts/rx_f1.py --pages bench-out/prescriptions [--profile auto] [--folio target/release/folio]
  scripts/rx_f1.py --pages bench-out/prescriptions --results DIR   # score an earlier `folio parse -o DIR`

Runs ``folio parse`` once over every ``rx-*.jpg`` of ``--pages`` (unless ``--results`` names the output
of an earlier run), then compares each page's prescription record with ``rx-*.gt.json``: F1 of the
medications' name, strength, frequency and duration (``benchlib/rx_fields.py`` says how). Prints one
line per page and the totals; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.machine import folio_binary  # noqa: E402
from benchlib.rx_fields import FIELDS, FieldCounts, record_of_page, score_record  # noqa: E402


def run_folio(binary: str, images: list[str], out_dir: str, profile: str) -> None:
    cmd = [binary, "parse", *images, "-o", out_dir, "--format", "json", "-q", "--profile", profile]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"rx_f1: {' '.join(cmd[:2])} failed (exit {done.returncode}):\n"
                         f"{done.stderr[-2000:]}")


def page_record(results: str, stem: str) -> dict | None:
    path = os.path.join(results, stem, "pages", "00001.json")
    try:
        with open(path, encoding="utf-8") as f:
            return record_of_page(json.load(f))
    except (OSError, ValueError):
        return None


def score_dir(pages: str, results: str) -> tuple[FieldCounts, list[tuple[str, FieldCounts]]]:
    total, per_page = FieldCounts(), []
    for gt_path in sorted(glob.glob(os.path.join(pages, "rx-*.gt.json"))):
        stem = os.path.basename(gt_path)[: -len(".gt.json")]
        with open(gt_path, encoding="utf-8") as f:
            truth = json.load(f)
        counts = score_record(page_record(results, stem), truth)
        per_page.append((stem, counts))
        total = total.add(counts)
    return total, per_page


def main() -> int:
    p = argparse.ArgumentParser(description="Prescription field F1 on generated prescriptions")
    p.add_argument("--pages", required=True, help="folder of rx-NNN.jpg + rx-NNN.gt.json")
    p.add_argument("--results", help="output folder of an earlier `folio parse` (skips running it)")
    p.add_argument("--profile", default="auto", help="ocr profile to run with (default auto)")
    p.add_argument("--folio", default=folio_binary(), help="the folio binary")
    p.add_argument("--json", help="write the numbers to this file")
    args = p.parse_args()
    images = sorted(glob.glob(os.path.join(args.pages, "rx-*.jpg")))
    if not images:
        print(f"rx_f1: no rx-*.jpg in {args.pages} (scripts/make_prescriptions.py makes them)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results
        if results is None:
            results = tmp
            run_folio(args.folio, images, results, args.profile)
        total, per_page = score_dir(args.pages, results)
    for stem, c in per_page:
        f1 = c.f1()
        print(f"{stem}: F1 {'—' if f1 is None else f'{f1:.3f}'}"
              f"{'' if c.pages_with_record else ' (no record)'}")
    by_field = {k: total.f1(k) for k in FIELDS}
    print(f"pages {total.pages}, with a record {total.pages_with_record}; F1 "
          + ", ".join(f"{k} {v:.3f}" for k, v in by_field.items() if v is not None)
          + f"; all four {total.f1():.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"pages": total.pages, "with_record": total.pages_with_record,
                       "f1": total.f1(), "by_field": by_field,
                       "tp": total.tp, "fp": total.fp, "fn": total.fn}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
