#!/usr/bin/env python3
"""Render multi-column test pages with known text and known reading order.

Each page has a running header, a full-width title (sometimes a full-width lead paragraph), two or
three columns of left-aligned paragraphs with ragged right margins (some words hyphenated at the
line end), optionally a numbered list and a ruled table or a figure between paragraphs, and a page
number at the bottom. The clean rendering is then rotated by a small angle (skew) and saved as
greyscale with paper noise, or as 1-bit (thresholded, as a fax or a bilevel scanner makes it).

The text is generated from a fixed vocabulary with a seeded random generator, so the same Pillow
(``scripts/requirements-sample.txt``) writes the same pixels on every run. Fonts are Pillow's bundled
TrueType font (``ImageFont.load_default(size=...)``), no system fonts.

Outputs, per page ``<name>`` in ``--out-dir`` (default ``workers/ocr/tests/data/multicolumn``):
  <name>.jpg|png  the page image (greyscale pages as JPEG, 1-bit pages as PNG)
  <name>.gt.txt   the text in reading order: one line per drawn line, blocks separated by a blank
                  line, table cells separated by TAB (the corpus convention); the running header and
                  the page number are left out (they are not body text)
  <name>.gt.json  {"header", "footer", "blocks": [{"kind": title|text|list_item|table|figure,
                  "lines": [...]}], "columns", "skew_deg", "bilevel"}

    scripts/make_multicolumn.py                      # the committed test pages
    scripts/make_multicolumn.py --out-dir /tmp/mc --count 20 --seed 7   # more, for benchmarking
    scripts/make_multicolumn.py --out-dir /tmp/a4 --count 10 --dpi 200  # A4 pages at 200 DPI
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

DPI = 150
PAGE_W = round(8.27 * DPI)
PAGE_H = round(11.69 * DPI)
MARGIN = round(0.75 * DPI)


def set_dpi(dpi: int) -> None:
    """Render A4 pages at `dpi` (fonts, margins and gutters scale with it)."""
    global DPI, PAGE_W, PAGE_H, MARGIN
    DPI = dpi
    PAGE_W = round(8.27 * DPI)
    PAGE_H = round(11.69 * DPI)
    MARGIN = round(0.75 * DPI)
INK = 30
PAPER = 240

WORDS = (
    "the of and to in is was for on that with as by at from this which are be or an it have not "
    "had but were their has one all would there been they its more when who will no if out so "
    "said what up about into than them can only other new some could time these two may then do "
    "first any my now such like our over man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people how "
    "too little state good very make world still own see men work long get here between both life "
    "being under never day same another know while last might us great old year off come since "
    "against go came right used take three states himself few house use during without again place "
    "around however home small found thought went say part once general high upon school every "
    "does got united left number course war until always away something fact though water less "
    "public put think almost hand enough far took head yet government system better set told "
    "nothing night end why called didn find going look asked later knew point next program city "
    "business give group toward young days let room president side social given present several "
    "order national possible rather second face per among form important often things looked early "
    "white case john become large big need four within felt along children saw best church ever "
    "least power development light thing seemed family interest want members mind country area "
    "others done turned although open problem certain kind different thus began door help sense "
    "means whole matter perhaps itself york times law human line above name example action company "
    "hands local show whether five history gave today either act feet across taken past quite "
    "anything seen having death experience body word half really week field car words already "
    "information tell together college shall money period held keep sure probably free seems "
    "political real cannot behind miss question air office making brought whose special major "
    "heard problems federal became study ago moment available known result street economic boy "
    "position reason change south board individual job society areas west close turn love community "
    "true court force full seem am policy wife future age voice center woman control common "
    "necessary following front sometimes six girl clear further land run students provide feel "
    "party able mother music education university child effect level stood military town short "
    "morning total outside rate figure class art century washington north usually plan leave "
    "therapy evidence analysis patients treatment measurement instruments laboratory committee "
    "agriculture transportation correspondence manufacturing administration"
).split()


@dataclass
class Layout:
    name: str
    columns: int
    skew: float
    bilevel: bool
    lead: bool
    insert: str  # "", "table", "figure"
    listing: bool
    seed: int


@dataclass
class Page:
    image: Image.Image
    draw: ImageDraw.ImageDraw
    blocks: list[dict] = field(default_factory=list)


def font(size: int) -> ImageFont.FreeTypeFont:
    loaded = ImageFont.load_default(size=size)
    if not isinstance(loaded, ImageFont.FreeTypeFont):
        sys.exit("make_multicolumn: this Pillow has no FreeType support; install the pinned Pillow")
    return loaded


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
    words[0] = words[0].capitalize()
    if rng.random() < 0.3:
        words.insert(rng.randint(1, len(words) - 1), str(rng.randint(2, 1990)))
    return " ".join(words) + "."


def paragraph_text(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def wrap(text: str, fnt: ImageFont.FreeTypeFont, width: int, rng: random.Random) -> list[str]:
    """Greedy left-aligned wrapping; a long word that does not fit is sometimes hyphenated."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        trial = f"{cur} {word}" if cur else word
        if fnt.getlength(trial) <= width:
            cur = trial
            continue
        if len(word) >= 8 and rng.random() < 0.6:
            cut = len(word) // 2
            head = f"{cur} {word[:cut]}-" if cur else f"{word[:cut]}-"
            if fnt.getlength(head) <= width:
                lines.append(head)
                cur = word[cut:]
                continue
        lines.append(cur)
        cur = word
    if cur:
        lines.append(cur)
    return lines


def draw_lines(page: Page, lines: list[str], fnt: ImageFont.FreeTypeFont, x: int, y: int,
               pitch: int) -> int:
    for line in lines:
        page.draw.text((x, y), line, font=fnt, fill=INK)
        y += pitch
    return y


def ruled_table(page: Page, x: int, y: int, width: int, rng: random.Random,
                fnt: ImageFont.FreeTypeFont) -> tuple[int, list[str]]:
    cols = 3
    header = ["Item", "Count", "Rate"]
    rows = [[rng.choice(WORDS).capitalize(), str(rng.randint(3, 999)), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}"]
            for _ in range(rng.randint(3, 5))]
    row_h = round(fnt.size * 1.9)
    col_w = width // cols
    gt = []
    for r, row in enumerate([header] + rows):
        top = y + r * row_h
        for c, cell in enumerate(row):
            page.draw.text((x + c * col_w + 10, top + row_h // 4), cell, font=fnt, fill=INK)
        gt.append("\t".join(row))
    bottom = y + (len(rows) + 1) * row_h
    for r in range(len(rows) + 2):
        page.draw.line([(x, y + r * row_h), (x + col_w * cols, y + r * row_h)], fill=INK, width=2)
    for c in range(cols + 1):
        page.draw.line([(x + c * col_w, y), (x + c * col_w, bottom)], fill=INK, width=2)
    return bottom, gt


def figure(page: Page, x: int, y: int, width: int, rng: random.Random) -> int:
    h = round(width * 0.55)
    page.draw.rectangle([x, y, x + width, y + h], outline=INK, width=2)
    # A little bar chart without text.
    bars = 6
    for i in range(bars):
        bh = rng.randint(h // 6, h - 20)
        bx = x + 15 + i * (width - 30) // bars
        page.draw.rectangle([bx, y + h - 10 - bh, bx + (width - 30) // bars - 12, y + h - 10], fill=110)
    return y + h


def render(layout: Layout) -> tuple[Image.Image, dict]:
    rng = random.Random(layout.seed)
    img = Image.new("L", (PAGE_W, PAGE_H), 255)
    page = Page(img, ImageDraw.Draw(img))
    body = font(round(DPI * 10 / 72))  # 10 pt
    small = font(round(DPI * 8 / 72))
    title_f = font(round(DPI * 18 / 72))
    pitch = round(body.size * 1.35)
    width = PAGE_W - 2 * MARGIN
    gutter = round(0.3 * DPI)

    header = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} review, volume {rng.randint(2, 40)}"
    page.draw.text((MARGIN, MARGIN - round(0.35 * DPI)), header, font=small, fill=INK)
    folio = str(rng.randint(2, 300))
    page.draw.text((PAGE_W // 2 - 10, PAGE_H - MARGIN + round(0.2 * DPI)), folio, font=small, fill=INK)

    y = MARGIN + 10
    title = " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(3, 6)))
    page.draw.text((MARGIN, y), title, font=title_f, fill=INK)
    page.blocks.append({"kind": "title", "lines": [title]})
    y += round(title_f.size * 2.0)
    if layout.lead:
        lines = wrap(paragraph_text(rng, 3), body, width, rng)
        y = draw_lines(page, lines, body, MARGIN, y, pitch) + pitch
        page.blocks.append({"kind": "text", "lines": lines})

    col_w = (width - (layout.columns - 1) * gutter) // layout.columns
    top = y
    bottom = PAGE_H - MARGIN - pitch
    inserted = False
    listed = False
    for c in range(layout.columns):
        x = MARGIN + c * (col_w + gutter)
        y = top
        while True:
            if layout.insert and not inserted and c == 0 and y > top + 6 * pitch:
                if layout.insert == "table":
                    end, gt = ruled_table(page, x, y, col_w, rng, small)
                    page.blocks.append({"kind": "table", "lines": gt})
                else:
                    end = figure(page, x, y, col_w, rng)
                    page.blocks.append({"kind": "figure", "lines": []})
                y = end + pitch
                inserted = True
                continue
            if layout.listing and not listed and c == layout.columns - 1 and y > top + 8 * pitch:
                items = rng.randint(3, 4)
                if y + items * 2 * pitch > bottom:
                    break
                for n in range(1, items + 1):
                    text = f"{n}. " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + "."
                    lines = wrap(text, body, col_w - 30, rng)
                    page.draw.text((x, y), lines[0], font=body, fill=INK)
                    y = draw_lines(page, lines[1:], body, x + round(body.getlength(f"{n}. ")), y + pitch, pitch)
                    page.blocks.append({"kind": "list_item", "lines": lines})
                y += pitch
                listed = True
                continue
            lines = wrap(paragraph_text(rng, rng.randint(2, 4)), body, col_w, rng)
            room = (bottom - y) // pitch
            if room < 3:
                break
            lines = lines[:room]
            # A paragraph cut at the column end would continue in the next column; keep it whole.
            if lines and not lines[-1].endswith("."):
                lines[-1] = lines[-1].rstrip("-") + "."
            y = draw_lines(page, lines, body, x, y, pitch) + round(pitch * 0.6)
            page.blocks.append({"kind": "text", "lines": lines})
    gt = {
        "header": header,
        "footer": folio,
        "columns": layout.columns,
        "skew_deg": layout.skew,
        "bilevel": layout.bilevel,
        "blocks": page.blocks,
    }
    return scan(img, layout), gt


def scan(img: Image.Image, layout: Layout) -> Image.Image:
    rng = random.Random(layout.seed * 31 + 1)
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    img = img.rotate(layout.skew, resample=Image.Resampling.BICUBIC, fillcolor=255)
    if layout.bilevel:
        return img.point(lambda v: 255 if v > 150 else 0).convert("1")
    img = img.point(lambda v: round(INK + (PAPER - INK) * v / 255))
    noise = Image.frombytes("L", img.size, rng.randbytes(img.size[0] * img.size[1]))
    noise = noise.point(lambda v: v % 9)
    return ImageChops.add(img, noise, scale=1.0, offset=-4)


def gt_text(gt: dict) -> str:
    return "\n\n".join("\n".join(b["lines"]) for b in gt["blocks"] if b["lines"]) + "\n"


COMMITTED = [
    Layout("two_col_grey_skew1", 2, 1.0, False, False, "", True, 11),
    Layout("two_col_bilevel_skew-1.5", 2, -1.5, True, True, "table", False, 12),
    Layout("three_col_grey_skew0.5", 3, 0.5, False, False, "figure", False, 13),
    Layout("two_col_bilevel_skew1.5_lead", 2, 1.5, True, True, "figure", True, 14),
]


def generated(count: int, seed: int) -> list[Layout]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        cols = rng.choice([2, 2, 3])
        skew = round(rng.uniform(-1.5, 1.5), 2)
        bilevel = rng.random() < 0.5
        out.append(Layout(f"gen{seed}_{i:02d}_{cols}col", cols, skew, bilevel, rng.random() < 0.5,
                          rng.choice(["", "table", "figure"]), rng.random() < 0.5, seed * 1000 + i))
    return out


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default=os.path.join(root, "workers/ocr/tests/data/multicolumn"))
    p.add_argument("--count", type=int, default=0, help="random layouts instead of the committed four")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dpi", type=int, default=DPI, help="A4 at this resolution (default 150)")
    args = p.parse_args()
    set_dpi(args.dpi)
    os.makedirs(args.out_dir, exist_ok=True)
    layouts = generated(args.count, args.seed) if args.count else COMMITTED
    for layout in layouts:
        img, gt = render(layout)
        base = os.path.join(args.out_dir, layout.name)
        # Greyscale scans as JPEG (as scanners write them), 1-bit pages as PNG: both stay small.
        ext = ".png" if layout.bilevel else ".jpg"
        if layout.bilevel:
            img.save(base + ext, optimize=True)
        else:
            img.save(base + ext, quality=70)
        with open(base + ".gt.txt", "w", encoding="utf-8") as f:
            f.write(gt_text(gt))
        with open(base + ".gt.json", "w", encoding="utf-8") as f:
            json.dump(gt, f, indent=1)
            f.write("\n")
        print(f"make_multicolumn: {base}{ext} ({os.path.getsize(base + ext) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
