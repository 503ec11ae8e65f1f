#!/usr/bin/env python3
"""Render synthetic handwritten prescriptions with their ground-truth record, deterministically.

Each page is an A5 sheet at 200 DPI: a printed letterhead (doctor, clinic, address, registration
number), printed labels (Name, Age, Date) filled in by hand, an Rx mark, 1 to 5 handwritten
medication lines in the notations people write (``Tab. Amoxicillin 500 mg 1-0-1 x 5 days``,
``Cap Omeprazole 20mg OD before food for 2 weeks``, ``Syp. Paracetamol 5 ml TDS x 3 days``), some
instructions on a line of their own, a signature scribble and a rubber stamp, then scan noise: uneven
paper, blur, a skew of up to 1.5 degrees, sensor noise, specks, JPEG compression.

Handwriting uses free fonts from Debian packages (all SIL Open Font License 1.1):
``fonts-humor-sans`` (Humor Sans), ``fonts-comic-neue`` (Comic Neue), ``fonts-breip`` (Breip); the
letterhead uses DejaVu (``fonts-dejavu-core``, free licence). Missing packages are installed with
apt-get unless ``--no-install`` is given.

Outputs in ``--out-dir`` (default ``bench-out/prescriptions``), for page N of ``--count``:
  rx-NNN.jpg      the page (greyscale JPEG, 200 DPI)
  rx-NNN.gt.json  the ground truth: the prescription record (``schemas/json/prescription.schema.json``)
  rx-NNN.gt.txt   the text drawn, one line per drawn line, in reading order

Medication names are a short list of common generic (INN) names written into this script; the
engine that reads the pages uses no drug-name lexicon. Everything random comes from ``--seed``: the
same seed and the same Pillow write the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DPI = 200
PAGE_W = round(148 / 25.4 * DPI)  # A5
PAGE_H = round(210 / 25.4 * DPI)
MARGIN = 80
INK = 30

# (file, Debian package) of every font the pages use.
PRINT_FONTS = {
    "regular": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core"),
    "bold": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "fonts-dejavu-core"),
    "serif": ("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf", "fonts-dejavu-core"),
}
HAND_FONTS = [
    ("/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf", "fonts-humor-sans"),
    ("/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf", "fonts-comic-neue"),
    ("/usr/share/fonts/truetype/breip/Breip.ttf", "fonts-breip"),
]

DRUGS = [
    # (name, strengths, forms): common generic names, strengths as sold.
    ("Amoxicillin", ["250 mg", "500 mg"], ["Cap", "Tab", "Syp"]),
    ("Paracetamol", ["500 mg", "650 mg", "120 mg"], ["Tab", "Syp"]),
    ("Ibuprofen", ["200 mg", "400 mg"], ["Tab"]),
    ("Omeprazole", ["20 mg", "40 mg"], ["Cap"]),
    ("Pantoprazole", ["40 mg"], ["Tab", "Inj"]),
    ("Metformin", ["500 mg", "850 mg"], ["Tab"]),
    ("Amlodipine", ["5 mg", "10 mg"], ["Tab"]),
    ("Atorvastatin", ["10 mg", "20 mg"], ["Tab"]),
    ("Azithromycin", ["250 mg", "500 mg"], ["Tab", "Syp"]),
    ("Cetirizine", ["10 mg", "5 ml"], ["Tab", "Syp"]),
    ("Ciprofloxacin", ["250 mg", "500 mg"], ["Tab"]),
    ("Doxycycline", ["100 mg"], ["Cap"]),
    ("Losartan", ["25 mg", "50 mg"], ["Tab"]),
    ("Montelukast", ["10 mg"], ["Tab"]),
    ("Ondansetron", ["4 mg", "8 mg"], ["Tab", "Inj"]),
    ("Prednisolone", ["5 mg", "10 mg"], ["Tab"]),
    ("Salbutamol", ["2 mg", "100 mcg"], ["Tab", "Syp"]),
    ("Diclofenac", ["50 mg", "75 mg"], ["Tab", "Inj"]),
    ("Ranitidine", ["150 mg"], ["Tab"]),
    ("Levothyroxine", ["50 mcg", "100 mcg"], ["Tab"]),
    ("Insulin Glargine", ["10 IU", "20 IU"], ["Inj"]),
    ("Vitamin D3", ["60000 IU"], ["Cap"]),
    ("Clopidogrel", ["75 mg"], ["Tab"]),
    ("Domperidone", ["10 mg", "5 ml"], ["Tab", "Syp"]),
    ("Cefixime", ["200 mg"], ["Tab"]),
    ("Folic Acid", ["5 mg"], ["Tab"]),
    ("Metronidazole", ["400 mg"], ["Tab"]),
    ("Lisinopril", ["5 mg", "10 mg"], ["Tab"]),
]
# How each form is written (the ground truth's `form` is the first name).
FORM_SPELLINGS = {
    "Tab": ("tablet", ["Tab.", "Tab", "T.", "Tab."]),
    "Cap": ("capsule", ["Cap.", "Cap", "Cap."]),
    "Syp": ("syrup", ["Syp.", "Syrup", "Syp"]),
    "Inj": ("injection", ["Inj.", "Inj"]),
}
FREQUENCIES = ["OD", "BD", "TDS", "QID", "HS", "SOS", "1-0-1", "1-1-1", "0-0-1", "1-0-0", "BD", "TDS"]
INSTRUCTIONS = ["after food", "before food", "at bedtime", "with water", "after meals",
                "empty stomach", None, None, None]
FIRST = ["Anita", "Rahul", "Maria", "John", "Fatima", "Chen", "Priya", "David", "Olga", "Samuel",
         "Leila", "Arjun", "Grace", "Tomas", "Aisha", "Peter"]
LAST = ["Sharma", "Okafor", "Garcia", "Smith", "Khan", "Wei", "Nair", "Brown", "Ivanova", "Mensah",
        "Haddad", "Patel", "Lindqvist", "Novak", "Rossi", "Mehta"]
DOCTORS = ["S. Menon", "R. K. Gupta", "Helen Carter", "A. Bose", "M. Ortiz", "K. Adeyemi"]
QUALIFICATIONS = ["MBBS, MD (Medicine)", "MBBS, DCH", "MD, General Practice", "MBBS, MS"]
CLINICS = ["City Care Clinic", "Green Valley Medical Centre", "Sunrise Family Practice",
           "Lakeside Health Clinic"]
STREETS = ["12 Station Road", "4 Church Lane", "221 Park Avenue", "9 Market Street"]
TOWNS = ["Pune 411001", "Leeds LS1 4AP", "Springfield 62704", "Nairobi 00100"]


@dataclass
class Med:
    name: str
    strength: str
    form: str
    frequency: str
    duration: str | None
    instructions: str | None
    written: str  # the medication line as drawn
    instructions_line: bool  # instructions drawn on a line of their own


@dataclass
class Sheet:
    image: Image.Image
    draw: ImageDraw.ImageDraw
    lines: list[str] = field(default_factory=list)


def ensure_fonts(install: bool) -> None:
    missing = sorted({pkg for path, pkg in [*PRINT_FONTS.values(), *HAND_FONTS]
                      if not os.path.isfile(path)})
    if not missing:
        return
    if not install or not shutil.which("apt-get"):
        sys.exit(f"make_prescriptions: fonts missing; install the Debian packages {' '.join(missing)}")
    print(f"make_prescriptions: apt-get install {' '.join(missing)}", file=sys.stderr)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False,
                          stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"make_prescriptions: apt-get install {' '.join(missing)} failed")


def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def make_med(rng: random.Random) -> Med:
    name, strengths, forms = rng.choice(DRUGS)
    form_key = rng.choice(forms)
    form, spellings = FORM_SPELLINGS[form_key]
    strength = rng.choice(strengths)
    if form_key == "Syp" and "mg" in strength and rng.random() < 0.5:
        strength = rng.choice(["5 ml", "10 ml"])
    frequency = rng.choice(FREQUENCIES)
    days = rng.choice([3, 5, 7, 10, 14, None, 5])
    weeks = rng.choice([1, 2, 4])
    duration, dur_written = None, ""
    style = rng.random()
    if days is not None and style < 0.55:
        duration, dur_written = f"{days} days", rng.choice([f"x {days} days", f"x {days} days",
                                                            f"for {days} days", f"x{days}d"])
    elif days is not None and style < 0.8:
        unit = "week" if weeks == 1 else "weeks"
        duration, dur_written = f"{weeks} {unit}", rng.choice([f"for {weeks} {unit}",
                                                               f"x {weeks} {unit}"])
    instructions = rng.choice(INSTRUCTIONS)
    strength_written = strength.replace(" ", "") if rng.random() < 0.4 else strength
    spelled = rng.choice(spellings)
    own_line = instructions is not None and rng.random() < 0.5
    parts = [spelled, name, strength_written, frequency]
    if dur_written:
        parts.append(dur_written)
    if instructions and not own_line:
        parts.insert(4 if rng.random() < 0.5 else len(parts), f"({instructions})"
                     if rng.random() < 0.3 else instructions)
    return Med(name, strength, form, frequency, duration, instructions, " ".join(parts), own_line)


def text(sheet: Sheet, xy: tuple[int, int], s: str, fnt: ImageFont.FreeTypeFont, fill: int = INK,
         record: bool = True) -> None:
    sheet.draw.text(xy, s, font=fnt, fill=fill)
    if record:
        sheet.lines.append(s)


def hand_line(sheet: Sheet, x: int, y: int, s: str, fnt: ImageFont.FreeTypeFont,
              rng: random.Random) -> None:
    """Handwriting: each word with its own small jitter, a slightly blue-black ink."""
    cursor = x
    for word in s.split(" "):
        dy = rng.randint(-3, 3)
        sheet.draw.text((cursor, y + dy), word, font=fnt, fill=rng.randint(15, 50))
        cursor += int(fnt.getlength(word + " ")) + rng.randint(-2, 6)
    sheet.lines.append(s)


def letterhead(sheet: Sheet, rng: random.Random, doctor: str) -> int:
    big = font(PRINT_FONTS["serif"][0], 46)
    small = font(PRINT_FONTS["regular"][0], 22)
    mid = font(PRINT_FONTS["bold"][0], 26)
    y = MARGIN - 20
    text(sheet, (MARGIN, y), f"Dr. {doctor}", big)
    y += 60
    text(sheet, (MARGIN, y), rng.choice(QUALIFICATIONS), small)
    y += 32
    text(sheet, (MARGIN, y), rng.choice(CLINICS), mid)
    y += 36
    text(sheet, (MARGIN, y), f"{rng.choice(STREETS)}, {rng.choice(TOWNS)}", small)
    y += 30
    text(sheet, (MARGIN, y), f"Reg. No. {rng.randint(10000, 99999)}   Ph: "
         f"{rng.randint(100, 999)} {rng.randint(1000000, 9999999)}", small)
    y += 40
    sheet.draw.line([(MARGIN, y), (PAGE_W - MARGIN, y)], fill=INK, width=3)
    return y + 30


def signature(sheet: Sheet, rng: random.Random, x: int, y: int) -> None:
    pts = []
    for i in range(40):
        t = i / 39
        pts.append((x + int(260 * t + 18 * math.sin(9 * t + rng.random())),
                    y + int(22 * math.sin(14 * t * (1 + rng.random() * 0.3)))))
    sheet.draw.line(pts, fill=INK, width=3, joint="curve")


def stamp(page: Image.Image, rng: random.Random, clinic: str, x: int, y: int) -> Image.Image:
    """A round rubber stamp in light ink, rotated, multiplied onto the page."""
    size = 230
    layer = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(layer)
    shade = rng.randint(120, 170)
    d.ellipse([4, 4, size - 4, size - 4], outline=shade, width=6)
    d.ellipse([26, 26, size - 26, size - 26], outline=shade, width=3)
    f = font(PRINT_FONTS["bold"][0], 20)
    words = clinic.upper().split()
    for i, w in enumerate(words[:3]):
        d.text((size // 2 - f.getlength(w) / 2, 70 + i * 30), w, font=f, fill=shade)
    layer = layer.rotate(rng.uniform(-25, 25), fillcolor=255)
    region = page.crop((x, y, x + size, y + size))
    merged = Image.fromarray(np.minimum(np.asarray(region), np.asarray(layer)))
    page.paste(merged, (x, y))
    return page


def scan(page: Image.Image, rng: random.Random, seed: int) -> Image.Image:
    nrng = np.random.default_rng(seed)
    angle = rng.uniform(-1.5, 1.5)
    page = page.rotate(angle, resample=Image.BICUBIC, fillcolor=255, expand=False)
    page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.0)))
    arr = np.asarray(page).astype(np.float32)
    h, w = arr.shape
    paper = 232 + 10 * np.outer(np.linspace(0, 1, h), np.ones(w)) * rng.uniform(-1, 1)
    arr = arr / 255.0 * paper
    arr += nrng.normal(0, 6, arr.shape)
    for _ in range(rng.randint(20, 60)):
        cy, cx = rng.randrange(h), rng.randrange(w)
        arr[cy:cy + rng.randint(1, 3), cx:cx + rng.randint(1, 3)] = rng.randint(40, 120)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def render(index: int, seed: int) -> tuple[Image.Image, dict, list[str]]:
    rng = random.Random(seed * 1000 + index)
    sheet_img = Image.new("L", (PAGE_W, PAGE_H), 255)
    sheet = Sheet(sheet_img, ImageDraw.Draw(sheet_img))
    doctor = rng.choice(DOCTORS)
    clinic = rng.choice(CLINICS)
    y = letterhead(sheet, rng, doctor)
    hand_path = HAND_FONTS[index % len(HAND_FONTS)][0]
    hand = font(hand_path, rng.randint(38, 44))
    label = font(PRINT_FONTS["regular"][0], 26)
    patient = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    age = f"{rng.randint(2, 85)}"
    age_written = rng.choice([f"{age} yrs", f"{age}", f"{age} Y", f"{age} years"])
    date = f"{rng.randint(1, 28):02}/{rng.randint(1, 12):02}/20{rng.randint(22, 26)}"
    # Name and date on one row, age below: printed labels, handwritten values.
    sheet.draw.text((MARGIN, y + 10), "Name:", font=label, fill=INK)
    hand_line(sheet, MARGIN + 95, y, patient, hand, rng)
    sheet.lines[-1] = f"Name: {patient}"
    date_x = PAGE_W - MARGIN - 300
    sheet.draw.text((date_x, y + 10), "Date:", font=label, fill=INK)
    hand_line(sheet, date_x + 80, y, date, hand, rng)
    sheet.lines[-1] = f"Date: {date}"
    y += 70
    sheet.draw.text((MARGIN, y + 10), "Age:", font=label, fill=INK)
    hand_line(sheet, MARGIN + 80, y, age_written, hand, rng)
    sheet.lines[-1] = f"Age: {age_written}"
    sex = rng.choice(["M", "F"])
    sheet.draw.text((MARGIN + 330, y + 10), "Sex:", font=label, fill=INK)
    hand_line(sheet, MARGIN + 400, y, sex, hand, rng)
    sheet.lines[-1] = f"Sex: {sex}"
    y += 90
    text(sheet, (MARGIN, y), "Rx", font(PRINT_FONTS["serif"][0], 64))
    y += 100
    meds = [make_med(rng) for _ in range(rng.randint(1, 5))]
    numbered = rng.random() < 0.5
    for n, med in enumerate(meds, start=1):
        line = f"{n}. {med.written}" if numbered else med.written
        x = MARGIN + 20 + rng.randint(0, 20)
        if hand.getlength(line) > PAGE_W - x - MARGIN + 40:
            hand_small = font(hand_path, max(28, int(hand.size * (PAGE_W - x - MARGIN) /
                                                      hand.getlength(line))))
        else:
            hand_small = hand
        hand_line(sheet, x, y, line, hand_small, rng)
        y += int(hand.size * 1.5) + rng.randint(0, 12)
        if med.instructions_line and med.instructions:
            hand_line(sheet, x + 60, y, f"({med.instructions})" if rng.random() < 0.5
                      else med.instructions, hand, rng)
            y += int(hand.size * 1.4)
        y += 14
    if rng.random() < 0.6:
        advice = rng.choice(["Review after 1 week", "Drink plenty of fluids", "Avoid cold drinks"])
        y += 20
        hand_line(sheet, MARGIN, y, f"Adv: {advice}", hand, rng)
    sig_y = PAGE_H - MARGIN - 160
    signature(sheet, rng, PAGE_W - MARGIN - 320, sig_y)
    text(sheet, (PAGE_W - MARGIN - 300, sig_y + 50), "Signature", label)
    page = stamp(sheet.image, rng, clinic, MARGIN + rng.randint(0, 60), PAGE_H - MARGIN - 260)
    page = scan(page, rng, seed * 1000 + index)
    truth = {
        "patient": patient,
        "age": age,
        "date": date,
        "prescriber": f"Dr. {doctor}",
        "medications": [
            {"name": m.name, "strength": m.strength, "form": m.form, "frequency": m.frequency,
             "duration": m.duration, "instructions": m.instructions}
            for m in meds
        ],
    }
    return page, truth, sheet.lines


def main() -> int:
    p = argparse.ArgumentParser(description="Render synthetic prescriptions with ground truth")
    p.add_argument("--count", type=int, default=20, help="pages to render (default 20)")
    p.add_argument("--seed", type=int, default=16, help="random seed (default 16)")
    p.add_argument("--first", type=int, default=1, help="number of the first page (default 1)")
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "..", "bench-out", "prescriptions"))
    p.add_argument("--no-install", action="store_true", help="do not apt-get install missing fonts")
    args = p.parse_args()
    if args.count < 1:
        p.error("--count must be at least 1")
    ensure_fonts(not args.no_install)
    os.makedirs(args.out_dir, exist_ok=True)
    for index in range(args.first, args.first + args.count):
        page, truth, lines = render(index, args.seed)
        stem = os.path.join(args.out_dir, f"rx-{index:03}")
        page.save(f"{stem}.jpg", quality=85, dpi=(DPI, DPI))
        with open(f"{stem}.gt.json", "w", encoding="utf-8") as f:
            json.dump(truth, f, indent=1)
            f.write("\n")
        with open(f"{stem}.gt.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    print(f"make_prescriptions: {args.count} page(s) in {os.path.normpath(args.out_dir)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
