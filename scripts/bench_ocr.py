#!/usr/bin/env python3
"""OCR accuracy and speed: Folio against rapidocr (same PP-OCRv6 models) and tesseract, in one run.

Run it through the dispatcher: ``scripts/bench ocr [--runs 3] [--categories printed,handwritten]``.

For every page of the chosen corpus categories (plus Folio's own ``examples/sample-scan.pdf`` as the
``sample`` category) each engine reads the page ``--runs`` times. Accuracy comes from the first run
(CER and BoW WER, see ``benchlib/cer.py``; olmOCR-Bench text tests for items that only have those);
timings are medians over the runs. The report goes to stdout and ``bench-out/ocr.md``; raw numbers and
texts to ``bench-out/ocr.json`` and ``bench-out/ocr/texts/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.cer import ZERO, TextScore, score  # noqa: E402
from benchlib.groundtruth import CorpusError, Item, load_ground_truth, load_items, passes  # noqa: E402
from benchlib.machine import (  # noqa: E402
    ToolError,
    corpus_dir,
    fmt,
    folio_binary,
    git_commit,
    load_average,
    machine_lines,
    md_table,
    median,
    pct,
    repo_root,
)
from benchlib.ocr_engines import CategoryRun, FolioEngine, Page, RapidOcrEngine, TesseractEngine, pages_of  # noqa: E402

ENGINES = ("folio", "rapidocr", "tesseract")
# Targets from the project brief.
CER_MARGIN = 0.005  # Folio's printed CER may exceed rapidocr's by at most 0.5 points
TIME_RATIO = 0.5  # Folio's time per page at most half of rapidocr's


def sample_item() -> Item:
    examples = os.path.join(repo_root(), "examples")
    item = Item("sample", os.path.join(examples, "sample-scan.pdf"),
                [os.path.join(examples, "sample-scan.gt.txt")])
    return load_ground_truth(item)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="OCR accuracy and speed benchmark")
    p.add_argument("--runs", type=int, default=3, help="timed runs per engine (>= 1; default 3)")
    p.add_argument("--categories", default="sample,printed,handwritten",
                   help="comma list: sample (examples/sample-scan.pdf) and corpus categories")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help="comma list; folio is skipped when target/release/folio does not exist")
    p.add_argument("--limit", type=int, default=0, help="first N items per category (0 = all)")
    p.add_argument("--out", default=os.path.join(repo_root(), "bench-out"))
    p.add_argument("--no-install", action="store_true", help="do not apt-get install tesseract")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def collect_items(categories: list[str], limit: int) -> list[Item]:
    corpus = [c for c in categories if c != "sample"]
    items = load_items(corpus_dir(), corpus) if corpus else []
    chosen: list[Item] = []
    for cat in categories:
        group = [sample_item()] if cat == "sample" else [i for i in items if i.category == cat]
        if not group:
            raise CorpusError(f"no items in category `{cat}`")
        chosen += group[:limit] if limit else group
    return chosen


def make_engines(names: list[str], out: str, install: bool) -> tuple[dict, list[str]]:
    engines: dict = {}
    notes: list[str] = []
    for name in names:
        if name == "folio":
            binary = folio_binary()
            if os.path.isfile(binary) and os.access(binary, os.X_OK):
                engines[name] = FolioEngine(binary, os.path.join(out, "ocr", "folio"))
            else:
                notes.append("folio: target/release/folio does not exist yet (cargo build --release); "
                             "column left out")
        elif name == "rapidocr":
            engines[name] = RapidOcrEngine()
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
                if name == "folio":
                    got: CategoryRun = engines[name].run(pages, f"run{r + 1}-{cat}")
                else:
                    got = engines[name].run(pages)
                print(f"bench ocr: run {r + 1}/{runs} {name:9} {cat:11} {len(pages):3} pages "
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


def per_page_medians(runs: list[CategoryRun], pages: list[Page]) -> dict[str, float]:
    out = {}
    for p in pages:
        vals = [r.pages[p.key].seconds for r in runs if p.key in r.pages]
        m = median(v for v in vals if v is not None)
        if m is not None:
            out[p.key] = m
    return out


def summarize(engines: dict, results: dict, items: list[Item], pages_by_cat: dict) -> dict:
    """Numbers for the report: per engine and category, and per engine and item."""
    summary: dict = {}
    for name in engines:
        for cat, pages in pages_by_cat.items():
            runs = results[name][cat]
            first = runs[0]
            page_med = per_page_medians(runs, pages)
            cat_score, tests_ok, tests_n, per_item = ZERO, 0, 0, {}
            for item in (i for i in items if i.category == cat):
                ipages = [p for p in pages if p.item is item]
                s, (ok, n) = item_accuracy(item, ipages, first)
                cat_score = cat_score + s if s else cat_score
                tests_ok, tests_n = tests_ok + ok, tests_n + n
                per_item[item.name] = {
                    "pages": len(ipages), "score": s, "tests": (ok, n),
                    "s_page": median(page_med[p.key] for p in ipages if p.key in page_med),
                    "errors": sorted({first.pages[p.key].error for p in ipages
                                      if p.key in first.pages and first.pages[p.key].error}),
                }
            summary_totals = [category_total(name, r, pages) for r in runs]
            totals = [t / len(pages) for t in summary_totals if t is not None]
            unstable = sum(1 for p in pages if len({r.pages[p.key].text for r in runs
                                                    if p.key in r.pages}) > 1)
            summary[(name, cat)] = {
                "stages": stage_medians(runs, pages),
                "score": cat_score, "tests": (tests_ok, tests_n), "per_item": per_item,
                "s_page": median(page_med.values()), "mean_s_page": median(totals),
                "pages": len(pages), "unstable": unstable,
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


def category_total(name: str, run: CategoryRun, pages: list[Page]) -> float | None:
    """Seconds one run spent on the category: Folio's process wall clock, else the pages' sum."""
    if name == "folio":
        return run.wall_seconds
    times = [run.pages[p.key].seconds for p in pages if p.key in run.pages]
    if not times or any(t is None for t in times):
        return None
    return sum(t for t in times if t is not None)


def targets(summary: dict, engines: dict) -> list[str]:
    if "folio" not in engines or "rapidocr" not in engines or ("folio", "printed") not in summary:
        return ["- Targets (Folio vs rapidocr on printed) not evaluated: Folio or rapidocr or the "
                "printed category was not part of this run."]
    f, r = summary[("folio", "printed")], summary[("rapidocr", "printed")]
    lines = []
    fc, rc = f["score"].cer, r["score"].cer
    if fc is not None and rc is not None:
        gap = 100 * (fc - rc - CER_MARGIN)
        verdict = "met" if fc <= rc + CER_MARGIN else f"NOT met (over by {gap:.2f} points)"
        lines.append(f"- CER on printed ≤ rapidocr + 0.5 points: Folio {pct(fc)} vs rapidocr "
                     f"{pct(rc)} (limit {pct(rc + CER_MARGIN)}): **{verdict}**")
    for label, ft, rt in (
            ("median s/page (Folio `timings.total` vs rapidocr's call)", f["s_page"], r["s_page"]),
            ("total s / pages (Folio's whole process vs the sum of rapidocr's calls)",
             f["mean_s_page"], r["mean_s_page"])):
        if ft is None or rt is None:
            lines.append(f"- Time ≤ 0.5× rapidocr by {label}: not measured")
            continue
        verdict = "met" if ft <= TIME_RATIO * rt else "NOT met"
        lines.append(f"- Time ≤ 0.5× rapidocr, by {label}: Folio {ft:.2f} s vs "
                     f"rapidocr {rt:.2f} s (ratio {ft / rt:.2f}): **{verdict}**")
    return lines


def report(args, engines, notes, items, pages_by_cat, summary, started: str,
           load: str) -> list[str]:
    cmd = os.environ.get("BENCH_COMMAND") or " ".join(["scripts/bench_ocr.py", *sys.argv[1:]])
    out = [f"### OCR run of {started}", "", f"- command: `{cmd}` (repo commit {git_commit()})"]
    out += machine_lines(load)
    out += [f"- {name}: {e.version()}" for name, e in engines.items()]
    out += [f"- note: {n}" for n in notes]
    out += [f"- runs: {args.runs}; accuracy from run 1. **median s/page**: each page's median over "
            "the runs, then the median over the category's pages (Folio: its engine's `timings.total`; "
            "rapidocr: the call; tesseract: the process). **total s / pages**: the time a run spent "
            "on the category divided by its pages, median over runs (Folio: the whole `folio parse` "
            "process, model loading and rasterization included; the others: the sum of their "
            "per-page times)", ""]
    cats = list(pages_by_cat)
    for cat in cats:
        n_items = sum(1 for i in items if i.category == cat)
        out += [f"**{cat}** ({n_items} files, {len(pages_by_cat[cat])} pages)", ""]
        rows = []
        for name in engines:
            s = summary[(name, cat)]
            ok, n = s["tests"]
            remarks = []
            if s["unstable"]:
                remarks.append(f"text differed between runs on {s['unstable']} pages")
            if s["errors"]:
                remarks.append("errors: " + "; ".join(sorted(set(s["errors"]))))
            rows.append([name, pct(s["score"].cer), pct(s["score"].bow_wer),
                         f"{ok}/{n}" if n else "—", fmt(s["s_page"]), fmt(s["mean_s_page"]),
                         ", ".join(remarks)])
        out += md_table(["engine", "CER", "BoW WER", "olmOCR tests", "median s/page",
                         "total s / pages", "notes"], rows, "lrrrrrl")
        out.append("")
        if "folio" in engines and summary[("folio", cat)]["stages"]:
            stages = summary[("folio", cat)]["stages"]
            out += ["Folio stages, median s/page: " + ", ".join(
                f"{k} {v:.2f}" for k, v in stages.items()), ""]
    out += ["Targets:", "", *targets(summary, engines), ""]
    out += ["Per file (CER, or olmOCR text tests passed; s/page = median; Folio's is its engine "
            "`timings.total`):", ""]
    header = ["file", "pages", "ref chars"] + [f"{n} CER" for n in engines] + [f"{n} s/page" for n in engines]
    rows = []
    for item in items:
        cells = [item.name, str(len([p for p in pages_by_cat[item.category] if p.item is item]))]
        first = summary[(next(iter(engines)), item.category)]["per_item"][item.name]
        cells.append(str(first["score"].ref_chars) if first["score"] else "—")
        for name in engines:
            it = summary[(name, item.category)]["per_item"][item.name]
            ok, n = it["tests"]
            cell = pct(it["score"].cer) if it["score"] else (f"{ok}/{n} tests" if n else "—")
            cells.append(cell + (" (error)" if it["errors"] else ""))
        cells += [fmt(summary[(name, item.category)]["per_item"][item.name]["s_page"]) for name in engines]
        rows.append(cells)
    out += md_table(header, rows, "lrr" + "r" * 2 * len(engines))
    return out


def dump_raw(path: str, results: dict, summary: dict, pages_by_cat: dict, text_dir: str) -> None:
    raw: dict = {"results": {}, "summary": {}}
    for name, cats in results.items():
        for cat, runs in cats.items():
            raw["results"][f"{name}/{cat}"] = [
                {"wall_seconds": r.wall_seconds, "error": r.error,
                 "pages": {k: {"seconds": v.seconds, "error": v.error} for k, v in r.pages.items()}}
                for r in runs]
            for p in pages_by_cat[cat]:
                if p.key in runs[0].pages:
                    dest = os.path.join(text_dir, name, cat, f"{p.item.stem}.p{p.number}.txt")
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with open(dest, "w", encoding="utf-8") as f:
                        f.write(runs[0].pages[p.key].text)
    for (name, cat), s in summary.items():
        raw["summary"][f"{name}/{cat}"] = {
            "cer": s["score"].cer, "bow_wer": s["score"].bow_wer, "tests": s["tests"],
            "s_page": s["s_page"], "mean_s_page": s["mean_s_page"], "pages": s["pages"]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=1)


def main() -> int:
    args = parse_args()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load_average()
    os.makedirs(args.out, exist_ok=True)
    try:
        items = collect_items([c.strip() for c in args.categories.split(",") if c.strip()], args.limit)
        engines, notes = make_engines([e.strip() for e in args.engines.split(",") if e.strip()],
                                      args.out, not args.no_install)
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
