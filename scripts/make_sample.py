#!/usr/bin/env python3
"""Render Folio's own sample "scanned" document: an image-only A4 PDF at 200 DPI plus its text.

Page 1 is a letter with a letterhead, a title, two paragraphs and a small ruled table; page 2 has a
heading, an introduction and a numbered list. Each page is drawn with Pillow's bundled TrueType font
(``ImageFont.load_default(size=...)``, no system fonts), then made to look scanned: uneven grey paper,
slight blur, a small rotation (at most 0.7 degrees), sensor noise and a few specks. Everything random
comes from fixed seeds, and the PDF carries fixed metadata, so the same Pillow version writes the same
bytes on every run.

Outputs (``--out-dir``, default ``examples/``):
  sample-scan.pdf     the image-only PDF (pages are JPEG-compressed greyscale images)
  sample-scan.gt.txt  the text drawn, one line per drawn line, blocks separated by a blank line, table
                      cells separated by TAB, pages separated by a form feed (the corpus convention)

``--pages N`` repeats the two page designs with different seeds to make an N-page document (used by the
rasterization benchmark); the default is the committed 2-page sample.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

DPI = 200
# A4 is 210 x 297 mm.
PAGE_W = round(210 / 25.4 * DPI)
PAGE_H = round(297 / 25.4 * DPI)
MARGIN_X = 190
MARGIN_TOP = 170
INK = 38
PAPER = 236
# Fixed so that the PDF bytes never depend on the clock.
PDF_DATE = time.strptime("2024-03-12 09:30:00", "%Y-%m-%d %H:%M:%S")


@dataclass
class Page:
    """One page being drawn, and the ground-truth blocks in reading order."""

    image: Image.Image
    draw: ImageDraw.ImageDraw
    y: int = MARGIN_TOP
    blocks: list[list[str]] = field(default_factory=list)


def font(size: int) -> ImageFont.FreeTypeFont:
    loaded = ImageFont.load_default(size=size)
    if not isinstance(loaded, ImageFont.FreeTypeFont):
        sys.exit("make_sample: this Pillow has no FreeType support; install the pinned Pillow wheel")
    return loaded


def new_page() -> Page:
    image = Image.new("L", (PAGE_W, PAGE_H), 255)
    return Page(image=image, draw=ImageDraw.Draw(image))


def wrap(text: str, fnt: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and fnt.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def text_block(page: Page, lines: list[str], fnt: ImageFont.FreeTypeFont, *, x: int = MARGIN_X,
               leading: float = 1.45, bold: bool = False, gap_after: int = 0) -> None:
    """Draw lines top to bottom at `x` and record them as one ground-truth block."""
    size = int(fnt.size)
    for line in lines:
        page.draw.text((x, page.y), line, font=fnt, fill=INK, stroke_width=1 if bold else 0,
                       stroke_fill=INK)
        page.y += int(size * leading)
    page.blocks.append(list(lines))
    page.y += gap_after


def paragraph(page: Page, text: str, fnt: ImageFont.FreeTypeFont, width: int, gap_after: int) -> None:
    text_block(page, wrap(text, fnt, width), fnt, gap_after=gap_after)


def ruled_table(page: Page, header: list[str], rows: list[list[str]], col_widths: list[int],
                fnt: ImageFont.FreeTypeFont) -> None:
    """A table with a ruled grid; numeric columns (all but the first two) are right-aligned."""
    pad = 16
    row_h = int(fnt.size * 2.0)
    x0 = MARGIN_X
    total_w = sum(col_widths)
    top = page.y
    all_rows = [header, *rows]
    for r, cells in enumerate(all_rows):
        y = top + r * row_h
        x = x0
        for c, (cell, w) in enumerate(zip(cells, col_widths, strict=True)):
            tx = x + w - pad - int(fnt.getlength(cell)) if c >= 2 else x + pad
            page.draw.text((tx, y + (row_h - fnt.size) // 2 - 2), cell, font=fnt, fill=INK,
                           stroke_width=1 if r == 0 else 0, stroke_fill=INK)
            x += w
    bottom = top + len(all_rows) * row_h
    for r in range(len(all_rows) + 1):
        y = top + r * row_h
        page.draw.line([(x0, y), (x0 + total_w, y)], fill=INK, width=3 if r in (0, 1) else 2)
    x = x0
    for w in [0, *col_widths]:
        x += w
        page.draw.line([(x, top), (x, bottom)], fill=INK, width=2)
    page.blocks.append(["\t".join(cells) for cells in all_rows])
    page.y = bottom + 50


def draw_letter(page: Page, variant: int) -> None:
    """Page design 1: a letter with a ruled table."""
    small, body, title = font(30), font(37), font(58)
    width = PAGE_W - 2 * MARGIN_X
    text_block(page, ["HARBOUR LANE SURVEYS"], font(46), bold=True, leading=1.3)
    text_block(page, ["14 Harbour Lane, Porthaven PH3 7QX - Tel. 01632 960418"], small,
               gap_after=12)
    page.draw.line([(MARGIN_X, page.y), (PAGE_W - MARGIN_X, page.y)], fill=INK, width=3)
    page.y += 50
    text_block(page, [f"Ref. HLS/{2024 + variant // 2}/{117 + variant}", "12 March 2024"], body,
               gap_after=40)
    text_block(page, ["Annual Inspection Report", "Riverside Depot, Units 3 to 6"], title,
               bold=True, leading=1.25, gap_after=45)
    text_block(page, ["Dear Ms Okafor,"], body, gap_after=20)
    paragraph(page, (
        "Following our visit on 4 March, we have completed the annual inspection of the four units "
        "at Riverside Depot. The roofs, gutters and loading doors were examined from the ground and "
        "from a mobile platform, and moisture readings were taken at twelve points along the north "
        "wall, where damp was reported last winter."), body, width, gap_after=30)
    paragraph(page, (
        "Overall the buildings are in fair condition. Unit 5 needs the most attention: two roof "
        "sheets are cracked and the gutter outlet is blocked, which explains the damp patch inside. "
        "The table below lists our findings and the estimated cost of repairs, excluding VAT."),
        body, width, gap_after=45)
    text_block(page, ["Table 1. Findings by unit"], body, bold=True, gap_after=12)
    ruled_table(page, ["Unit", "Main finding", "Area m2", "Cost EUR"], [
        ["3", "Gutter joints leaking", "42", "1,150"],
        ["4", "No defects found", "0", "0"],
        ["5", "Cracked roof sheets", "118", "6,480"],
        ["6", "Loading door worn", "16", "2,300"],
    ], [170, 620, 240, 244], body)
    paragraph(page, (
        "We recommend that the work on Unit 5 is done before the autumn rains. A detailed schedule "
        "of works is attached on the next page."), body, width, gap_after=40)
    text_block(page, ["Yours sincerely,", "", "Daniel Reyes", "Senior Surveyor"], body)
    # The empty line is layout, not text.
    page.blocks[-1] = [line for line in page.blocks[-1] if line]
    footer(page, f"Page {2 * variant + 1}")


def draw_list(page: Page, variant: int) -> None:
    """Page design 2: a heading, an introduction and a numbered list."""
    body, heading = font(37), font(52)
    width = PAGE_W - 2 * MARGIN_X
    text_block(page, ["Schedule of Works 2024-2025"], heading, bold=True, gap_after=40)
    paragraph(page, (
        "The works below are listed in order of priority. Items 1 to 3 should be completed within "
        "three months; the remaining items can be planned with the normal maintenance budget."),
        body, width, gap_after=40)
    items = [
        "Replace the two cracked roof sheets on Unit 5 and reseal the ridge.",
        "Clear the gutter outlet on Unit 5 and fit a leaf guard.",
        "Reseal the gutter joints on Unit 3 along the north wall.",
        "Service the loading door of Unit 6 and replace the worn rollers.",
        "Repaint the steel columns at the entrance of Unit 4.",
        "Repeat the moisture readings on the north wall after the first heavy rain.",
        "Book the next annual inspection for March 2025.",
    ]
    indent = 70
    for number, item in enumerate(items, start=1):
        label = f"{number}."
        lines = wrap(item, body, width - indent)
        page.draw.text((MARGIN_X, page.y), label, font=body, fill=INK)
        text_block(page, lines, body, x=MARGIN_X + indent, gap_after=22)
        # The number belongs to the item's first line in the transcription.
        page.blocks[-1][0] = f"{label} {page.blocks[-1][0]}"
    page.y += 30
    paragraph(page, (
        "Please contact our office if you would like to discuss the schedule or arrange access "
        "for the contractors."), body, width, gap_after=70)
    text_block(page, ["Site contacts"], font(44), bold=True, gap_after=25)
    text_block(page, [
        "Site manager: Amira Haddad, 07700 900123",
        "Facilities office: Jon Lindqvist, 07700 900457",
        "Out of hours: Porthaven Security, 01632 960999",
    ], body, leading=1.6)
    footer(page, f"Page {2 * variant + 2}")


def footer(page: Page, label: str) -> None:
    fnt = font(30)
    page.y = PAGE_H - 150
    x = (PAGE_W - int(fnt.getlength(label))) // 2
    text_block(page, [label], fnt, x=x)


def scan(page: Page, seed: int, angle: float) -> Image.Image:
    """Make a clean rendering look scanned: shaded grey paper, blur, rotation, noise, specks."""
    rng = random.Random(seed)
    # Ink on paper: map white to the paper tone, keep ink dark.
    img = page.image.point(lambda v: INK + (PAPER - INK) * v // 255)
    # Uneven illumination: a coarse random grid, smoothly upscaled, darkens the paper by 0..12 levels.
    shade = Image.frombytes("L", (6, 8), bytes(rng.randrange(0, 13) for _ in range(48)))
    shade = shade.resize(img.size, Image.Resampling.BICUBIC)
    img = ImageChops.subtract(img, shade)
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=PAPER - 6)
    # Sensor noise: uniform in [-5, 5].
    noise = Image.frombytes("L", img.size, rng.randbytes(img.size[0] * img.size[1]))
    noise = noise.point(lambda v: v % 11)
    img = ImageChops.add(img, noise, scale=1.0, offset=-5)
    draw = ImageDraw.Draw(img)
    for _ in range(80):
        x, y = rng.randrange(img.size[0]), rng.randrange(img.size[1])
        r = rng.choice((1, 1, 2))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rng.randrange(60, 140))
    return img


def render(pages: int) -> tuple[list[Image.Image], str]:
    images: list[Image.Image] = []
    gt_pages: list[str] = []
    for index in range(pages):
        variant = index // 2
        page = new_page()
        if index % 2 == 0:
            draw_letter(page, variant)
        else:
            draw_list(page, variant)
        # Alternate the skew direction; magnitudes stay within 0.7 degrees.
        angle = (0.45, -0.6, 0.3, -0.25, 0.65, -0.4)[index % 6]
        images.append(scan(page, seed=20240312 + index, angle=angle))
        gt_pages.append("\n\n".join("\n".join(block) for block in page.blocks))
    return images, "\f".join(gt_pages) + "\n"


def write_atomic(path: str, data: bytes) -> None:
    """Write through a temporary file; leave an identical file untouched (keeps its mtime)."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    tmp = f"{path}.part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="examples")
    parser.add_argument("--name", default="sample-scan")
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--quality", type=int, default=60, help="JPEG quality inside the PDF")
    args = parser.parse_args()
    if args.pages < 1:
        parser.error("--pages must be at least 1")
    images, gt = render(args.pages)
    buf = io.BytesIO()
    images[0].save(
        buf, "PDF", save_all=True, append_images=images[1:], resolution=float(DPI),
        quality=args.quality, title="Folio sample scan", author="Folio", creator="scripts/make-sample",
        producer="Pillow", creationDate=PDF_DATE, modDate=PDF_DATE,
    )
    os.makedirs(args.out_dir, exist_ok=True)
    pdf_path = os.path.join(args.out_dir, f"{args.name}.pdf")
    gt_path = os.path.join(args.out_dir, f"{args.name}.gt.txt")
    write_atomic(pdf_path, buf.getvalue())
    write_atomic(gt_path, gt.encode("utf-8"))
    print(f"make-sample: wrote {pdf_path} ({len(buf.getvalue()) // 1024} KiB, {args.pages} pages, "
          f"{PAGE_W}x{PAGE_H} px at {DPI} DPI) and {gt_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
