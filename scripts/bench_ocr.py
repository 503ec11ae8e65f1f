#!/usr/bin/env python3
"""OCR accuracy and speed: Folio, rapidocr (same PP-OCRv6 models; with and without its angle
classifier) and tesseract, in one run, every engine timed the same two ways.

Run it through the dispatcher: ``scripts/bench ocr [--runs 3] [--categories printed,prescriptions]``.

Categories: the corpus's (``printed``, ``handwritten``, ``tables``, ``multipage_pdf``, ``charts``, from
``$FOLIO_CORPUS_DIR``), Folio's ``sample`` (``examples/sample-scan.pdf``) and two generated ones read
from folders of images with ``.gt.txt`` references beside them: ``prescriptions``
(``--prescriptions-dir``, made by ``scripts/make_prescriptions.py`` when the folder does not exist;
its ``.gt.json`` records give the prescription field F1) and ``multicolumn`` (``--multicolumn-dir``,
made by the multi-column page generator; the bench stops with a message when the folder is absent).

Per page and engine (``benchlib/ocr_engines.py``): **process** = a fresh process per page (start, model
load, decoding, OCR), **engine** = the OCR of a decoded image with models loaded and warm. Accuracy
(CER and BoW WER, ``benchlib/cer.py``; olmOCR-Bench text tests for items that only have those) comes
from the first run's process pass; times are medians (per page over the runs, then over the pages).
The report goes to stdout and ``bench-out/ocr.md``; raw numbers and texts to ``bench-out/ocr.json``
and ``bench-out/ocr/texts/``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.cer import ZERO, TextScore, score  # noqa: E402
from benchlib.groundtruth import CorpusError, Item, load_ground_truth, load_items, passes  # noqa: E402
from benchlib.machine import ToolError, corpus_dir, fmt, folio_binary, git_commit, load_average, machine_lines, md_table, median, pct, repo_root  # noqa: E402,E501
from benchlib.ocr_engines import (  # noqa: E402
    CategoryRun,
    FolioEngine,
    Page,
    RapidOcrEngine,
    TesseractEngine,
    pages_of,
)
from benchlib.rx_fields import FieldCounts, score_record  # noqa: E402

ENGINES = ("folio", "rapidocr", "rapidocr+cls", "tesseract")
GENERATED = ("prescriptions", "multicolumn")
DEFAULT_CATEGORIES = "printed,multicolumn,prescriptions,handwritten,tables"
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
RX_F1_TARGET = 0.8


def sample_item() -> Item:
    examples = os.path.join(repo_root(), "examples")
    item = Item("sample", os.path.join(examples, "sample-scan.pdf"),
                [os.path.join(examples, "sample-scan.gt.txt")])
    return load_ground_truth(item)


def parse_args() -> argparse.Namespace:
    out = os.path.join(repo_root(), "bench-out")
    p = argparse.ArgumentParser(description="OCR accuracy and speed benchmark")
    p.add_argument("--runs", type=int, default=3, help="timed runs per engine (>= 1; default 3)")
    p.add_argument("--categories", default=DEFAULT_CATEGORIES,
                   help=f"comma list (default {DEFAULT_CATEGORIES}); also sample, multipage_pdf, charts")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help="comma list; folio is skipped when target/release/folio does not exist")
    p.add_argument("--limit", type=int, default=0, help="first N items per category (0 = all)")
    p.add_argument("--prescriptions-dir", default=os.path.join(out, "prescriptions"),
                   help="generated prescriptions (rx-*.jpg + .gt.txt + .gt.json); made when absent")
    p.add_argument("--prescriptions", type=int, default=20,
                   help="pages to generate when --prescriptions-dir does not exist (default 20)")
    p.add_argument("--multicolumn-dir", default=os.path.join(out, "multicolumn"),
                   help="generated multi-column pages (images + .gt.txt)")
    p.add_argument("--profile", default="auto", help="Folio's ocr profile (default auto)")
    p.add_argument("--folio", default=folio_binary(),
                   help="the folio binary (default target/release/folio)")
    p.add_argument("--out", default=out)
    p.add_argument("--no-install", action="store_true", help="do not apt-get install tesseract/fonts")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def generated_items(category: str, folder: str) -> list[Item]:
    """Every image of `folder` with a `.gt.txt` beside it, as text-scored items of `category`."""
    items = []
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        stem, ext = os.path.splitext(path)
        if ext.lower() in IMAGE_EXT and os.path.isfile(f"{stem}.gt.txt"):
            items.append(load_ground_truth(Item(category, os.path.abspath(path), [f"{stem}.gt.txt"])))
    if not items:
        raise CorpusError(f"no images with .gt.txt references in {folder} (category `{category}`)")
    return items


def ensure_prescriptions(folder: str, count: int, install: bool) -> None:
    if os.path.isdir(folder):
        return
    cmd = [sys.executable, os.path.join(repo_root(), "scripts", "make_prescriptions.py"),
           "--count", str(count), "--out-dir", folder, *([] if install else ["--no-install"])]
    print(f"bench ocr: generating {count} prescriptions into {folder}", file=sys.stderr)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise CorpusError("scripts/make_prescriptions.py failed")


def collect_items(args: argparse.Namespace, categories: list[str]) -> list[Item]:
    corpus = [c for c in categories if c not in ("sample", *GENERATED)]
    items = load_items(corpus_dir(), corpus) if corpus else []
    chosen: list[Item] = []
    for cat in categories:
        if cat == "sample":
            group = [sample_item()]
        elif cat == "prescriptions":
            ensure_prescriptions(args.prescriptions_dir, args.prescriptions, not args.no_install)
            group = generated_items(cat, args.prescriptions_dir)
        elif cat == "multicolumn":
            if not os.path.isdir(args.multicolumn_dir):
                raise CorpusError(f"{args.multicolumn_dir} does not exist: generate the multi-column "
                                  "pages there first (scripts/make_multicolumn.py), or pass "
                                  "--multicolumn-dir, or leave `multicolumn` out of --categories")
            group = generated_items(cat, args.multicolumn_dir)
        else:
            group = [i for i in items if i.category == cat]
        if not group:
            raise CorpusError(f"no items in category `{cat}`")
        chosen += group[:args.limit] if args.limit else group
    return chosen


def make_engines(names: list[str], out: str, install: bool, profile: str,
                 binary: str) -> tuple[dict, list[str]]:
    engines: dict = {}
    notes: list[str] = []
    for name in names:
        if name == "folio":
            if os.path.isfile(binary) and os.access(binary, os.X_OK):
                engines[name] = FolioEngine(binary, os.path.join(out, "ocr", "folio"), profile)
                if os.sep + "debug" + os.sep in binary:
                    notes.append(f"folio: {binary} is a DEBUG build: its times are not comparable")
            else:
                notes.append(f"folio: {binary} does not exist (cargo build --release); column left out")
        elif name in ("rapidocr", "rapidocr+cls"):
            engines[name] = RapidOcrEngine(cls=name.endswith("+cls"))
        elif name == "tesseract":
            engines[name] = TesseractEngine(install)
        else:
            raise SystemExit(f"bench ocr: unknown engine `{name}` (expected {', '.join(ENGINES)})")
    return engines, notes


def run_all(engines: dict, pages_by_cat: dict[str, list[Page]], runs: int) -> dict:
    """results[engine][category] = [CategoryRun per run]; engine order rotates between runs."""
    results: dict = {name: {cat: [] for cat in pages_by_cat} for name in engines}
    names = list(engines)
    for r in range(runs):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            for cat, pages in pages_by_cat.items():
                start = time.perf_counter()
                got: CategoryRun = engines[name].run(pages, f"run{r + 1}-{cat}")
                print(f"bench ocr: run {r + 1}/{runs} {name:12} {cat:13} {len(pages):3} pages "
                      f"{time.perf_counter() - start:7.1f} s{'  ' + got.error if got.error else ''}",
                      file=sys.stderr)
                results[name][cat].append(got)
    return results


def item_accuracy(item: Item, pages: list[Page],
                  run: CategoryRun) -> tuple[TextScore | None, tuple[int, int]]:
    """(summed text score or None, (tests passed, tests run)) of one item from one run."""
    texts = {p.number: run.pages[p.key].text for p in pages if p.key in run.pages}
    if item.kind == "text":
        total = ZERO
        for number, ref in enumerate(item.pages_text, start=1):
            total = total + score(texts.get(number, ""), ref)
        return total, (0, 0)
    if item.kind == "tests":
        ok = sum(passes(t, texts.get(t.page, "")) for t in item.tests)
        return None, (ok, len(item.tests))
    return None, (0, 0)


def page_medians(runs: list[CategoryRun], pages: list[Page], attr: str) -> dict[str, float]:
    """Each page's median of `attr` (process_s / engine_s) over the runs."""
    out = {}
    for p in pages:
        m = median(v for v in (getattr(r.pages[p.key], attr) for r in runs if p.key in r.pages)
                   if v is not None)
        if m is not None:
            out[p.key] = m
    return out


def rx_counts(item: Item, page: Page, run: CategoryRun) -> FieldCounts | None:
    """Field counts of a generated prescription (None when the item has no `.gt.json`)."""
    gt = os.path.splitext(item.path)[0] + ".gt.json"
    if not os.path.isfile(gt):
        return None
    with open(gt, encoding="utf-8") as f:
        truth = json.load(f)
    pr = run.pages.get(page.key)
    return score_record(pr.record if pr else None, truth)


def summarize(engines: dict, results: dict, items: list[Item], pages_by_cat: dict) -> dict:
    """Numbers for the report: per engine and category, and per engine and item."""
    summary: dict = {}
    for name in engines:
        for cat, pages in pages_by_cat.items():
            runs = results[name][cat]
            first = runs[0]
            proc, eng = page_medians(runs, pages, "process_s"), page_medians(runs, pages, "engine_s")
            cat_score, tests_ok, tests_n, per_item = ZERO, 0, 0, {}
            rx: FieldCounts | None = None
            for item in (i for i in items if i.category == cat):
                ipages = [p for p in pages if p.item is item]
                s, (ok, n) = item_accuracy(item, ipages, first)
                cat_score = cat_score + s if s else cat_score
                tests_ok, tests_n = tests_ok + ok, tests_n + n
                item_rx = None
                if name == "folio" and cat == "prescriptions":
                    item_rx = rx_counts(item, ipages[0], first)
                    rx = item_rx if rx is None else (rx.add(item_rx) if item_rx else rx)
                per_item[item.name] = {
                    "pages": len(ipages), "score": s, "tests": (ok, n), "rx": item_rx,
                    "process": median(proc[p.key] for p in ipages if p.key in proc),
                    "engine": median(eng[p.key] for p in ipages if p.key in eng),
                    "errors": sorted({first.pages[p.key].error for p in ipages
                                      if p.key in first.pages and first.pages[p.key].error}),
                }
            unstable = sum(1 for p in pages if len({r.pages[p.key].text for r in runs
                                                    if p.key in r.pages}) > 1)
            summary[(name, cat)] = {
                "stages": stage_medians(runs, pages),
                "score": cat_score, "tests": (tests_ok, tests_n), "per_item": per_item,
                "process": median(proc.values()), "engine": median(eng.values()),
                "rx": rx, "pages": len(pages), "unstable": unstable,
                "errors": [r.error for r in runs if r.error],
            }
    return summary


def stage_medians(runs: list[CategoryRun], pages: list[Page]) -> dict[str, float]:
    """Per stage (Folio's `timings` keys): per-page median over runs, then median over pages."""
    keys = sorted({k for r in runs for pr in r.pages.values() for k in pr.stages})
    out = {}
    for key in keys:
        per_page = [median(r.pages[p.key].stages[key] for r in runs
                           if p.key in r.pages and key in r.pages[p.key].stages) for p in pages]
        m = median(v for v in per_page if v is not None)
        if m is not None:
            out[key] = m
    return out


def targets(summary: dict, engines: dict, cats: list[str]) -> list[str]:
    """Issue 16's targets that this run measures."""
    lines = []
    if "folio" not in engines:
        return ["- not evaluated: Folio was not part of this run"]
    if "tesseract" in engines:
        for cat in cats:
            f, t = summary[("folio", cat)], summary[("tesseract", cat)]
            if f["process"] is not None and t["process"] is not None:
                verdict = "met" if f["process"] <= t["process"] else "NOT met"
                lines.append(f"- {cat}: whole process per page ≤ tesseract's: Folio "
                             f"{f['process']:.2f} s vs {t['process']:.2f} s: **{verdict}**")
        if "multicolumn" in cats:
            fc = summary[("folio", "multicolumn")]["score"].cer
            tc = summary[("tesseract", "multicolumn")]["score"].cer
            if fc is not None and tc is not None:
                verdict = "met" if fc <= tc else "NOT met"
                lines.append(f"- multicolumn: CER ≤ tesseract's: Folio {pct(fc)} vs {pct(tc)}: "
                             f"**{verdict}**")
    rx = summary.get(("folio", "prescriptions"), {}).get("rx")
    if rx is not None and rx.f1() is not None:
        verdict = "met" if rx.f1() >= RX_F1_TARGET else "NOT met"
        lines.append(f"- prescriptions: field F1 (name, strength, frequency, duration) ≥ "
                     f"{RX_F1_TARGET}: {rx.f1():.3f}: **{verdict}**")
    return lines or ["- none measured by this selection"]


def report(args, engines, notes, items, pages_by_cat, summary, started: str,
           load: str) -> list[str]:
    cmd = os.environ.get("BENCH_COMMAND") or " ".join(["scripts/bench_ocr.py", *sys.argv[1:]])
    out = [f"### OCR run of {started}", "", f"- command: `{cmd}` (repo commit {git_commit()})"]
    out += machine_lines(load)
    out += [f"- {name}: {e.version()}" for name, e in engines.items()]
    out += [f"- note: {n}" for n in notes]
    out += [f"- runs: {args.runs}; accuracy from run 1's process pass. **process s/page**: a fresh "
            "process per page (start, model load, decoding, OCR); **engine s/page**: OCR of a decoded "
            "image, models loaded and warm. Both: each page's median over the runs, then the median "
            "over the category's pages. **Rx F1**: prescription fields (name, strength, frequency, "
            "duration) against the generated ground truth; only Folio emits a record", ""]
    cats = list(pages_by_cat)
    rows = []
    for cat in cats:
        n_items = sum(1 for i in items if i.category == cat)
        for k, name in enumerate(engines):
            s = summary[(name, cat)]
            ok, n = s["tests"]
            remarks = []
            if s["unstable"]:
                remarks.append(f"text differed between runs on {s['unstable']} pages")
            if s["errors"]:
                remarks.append("errors: " + "; ".join(sorted(set(s["errors"]))))
            rx = s["rx"].f1() if s["rx"] is not None else None
            label = f"{cat} ({n_items} files, {len(pages_by_cat[cat])} pages)" if k == 0 else ""
            rows.append([label, name, pct(s["score"].cer), pct(s["score"].bow_wer),
                         f"{ok}/{n}" if n else "—", fmt(s["process"]), fmt(s["engine"]),
                         f"{rx:.3f}" if rx is not None else "—", ", ".join(remarks)])
    out += md_table(["category", "engine", "CER", "BoW WER", "olmOCR tests", "process s/page",
                     "engine s/page", "Rx F1", "notes"], rows, "llrrrrrrl")
    out.append("")
    if "folio" in engines:
        for cat in cats:
            stages = summary[("folio", cat)]["stages"]
            if stages:
                out.append(f"- Folio stages on {cat}, median s/page (warm): " + ", ".join(
                    f"{k} {v:.2f}" for k, v in stages.items()))
        rx = summary.get(("folio", "prescriptions"), {}).get("rx")
        if rx is not None:
            out.append("- Folio prescription F1 by field: " + ", ".join(
                f"{k} {rx.f1(k):.3f}" for k in rx.tp if rx.f1(k) is not None)
                + f"; pages with a record: {rx.pages_with_record}/{rx.pages}")
        out.append("")
    out += ["Targets (issue 16):", "", *targets(summary, engines, cats), ""]
    out += ["Per file (CER, olmOCR text tests passed, or Rx F1; s/page = process / engine medians):", ""]
    header = ["file", "pages"] + [f"{n}" for n in engines]
    rows = []
    for item in items:
        cells = [item.name, str(len([p for p in pages_by_cat[item.category] if p.item is item]))]
        for name in engines:
            it = summary[(name, item.category)]["per_item"][item.name]
            ok, n = it["tests"]
            acc = pct(it["score"].cer) if it["score"] else (f"{ok}/{n} tests" if n else "—")
            if it["rx"] is not None and it["rx"].f1() is not None:
                acc += f", F1 {it['rx'].f1():.2f}"
            cells.append(f"{acc}; {fmt(it['process'])} / {fmt(it['engine'])}"
                         + (" (error)" if it["errors"] else ""))
        rows.append(cells)
    out += md_table(header, rows, "lr" + "r" * len(engines))
    return out


def dump_raw(path: str, results: dict, summary: dict, pages_by_cat: dict, text_dir: str) -> None:
    raw: dict = {"results": {}, "summary": {}}
    for name, cats in results.items():
        for cat, runs in cats.items():
            raw["results"][f"{name}/{cat}"] = [
                {"error": r.error,
                 "pages": {k: {"process_s": v.process_s, "engine_s": v.engine_s, "error": v.error,
                               "record": v.record}
                           for k, v in r.pages.items()}}
                for r in runs]
            for p in pages_by_cat[cat]:
                if p.key in runs[0].pages:
                    dest = os.path.join(text_dir, name, cat, f"{p.item.stem}.p{p.number}.txt")
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with open(dest, "w", encoding="utf-8") as f:
                        f.write(runs[0].pages[p.key].text)
    for (name, cat), s in summary.items():
        rx = s["rx"]
        raw["summary"][f"{name}/{cat}"] = {
            "cer": s["score"].cer, "bow_wer": s["score"].bow_wer, "tests": s["tests"],
            "process_s": s["process"], "engine_s": s["engine"], "pages": s["pages"],
            "rx_f1": rx.f1() if rx else None, "stages": s["stages"]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=1)


def main() -> int:
    args = parse_args()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load_average()
    os.makedirs(args.out, exist_ok=True)
    try:
        cats = [c.strip() for c in args.categories.split(",") if c.strip()]
        items = collect_items(args, cats)
        engines, notes = make_engines([e.strip() for e in args.engines.split(",") if e.strip()],
                                      args.out, not args.no_install, args.profile, args.folio)
    except (CorpusError, ToolError, FileNotFoundError) as err:
        print(f"bench ocr: {err}", file=sys.stderr)
        return 2
    if not engines:
        print("bench ocr: no engine to run", file=sys.stderr)
        return 2
    cache = os.path.join(args.out, "ocr", "pages")
    pages_by_cat: dict[str, list[Page]] = {}
    for item in items:
        pages_by_cat.setdefault(item.category, []).extend(pages_of(item, cache))
    results = run_all(engines, pages_by_cat, args.runs)
    summary = summarize(engines, results, items, pages_by_cat)
    lines = report(args, engines, notes, items, pages_by_cat, summary, started, load)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "ocr.md"), "w", encoding="utf-8") as f:
        f.write(text)
    dump_raw(os.path.join(args.out, "ocr.json"), results, summary, pages_by_cat,
             os.path.join(args.out, "ocr", "texts"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
