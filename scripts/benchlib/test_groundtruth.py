"""Tests of benchlib.groundtruth: manifest parsing, ALTO text, reference cleaning, olmOCR text tests.

The corpus tests need the evaluation corpus ($FOLIO_CORPUS_DIR or <repo>/../shared/corpus) and are
skipped without it. Run: .venv-bench/bin/python -m unittest discover -s scripts/benchlib -t scripts
"""

from __future__ import annotations

import os
import tempfile
import unittest

from benchlib.cer import normalize, score
from benchlib.groundtruth import (
    Item,
    OlmTest,
    alto_lines,
    clean_reference,
    load_ground_truth,
    load_items,
    parse_manifest,
    passes,
)
from benchlib.machine import corpus_dir

ALTO = """<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Layout><Page><PrintSpace>
  <TextBlock ID="b1">
    <TextLine VPOS="200"><String CONTENT="second"/><SP/><String CONTENT="line"/></TextLine>
    <TextLine VPOS="100"><String CONTENT="first line"/></TextLine>
  </TextBlock>
  <TextBlock ID="b2"><TextLine VPOS="50"><String CONTENT="next block"/></TextLine></TextBlock>
</PrintSpace></Page></Layout></alto>
"""


class UnitTest(unittest.TestCase):
    def test_alto_lines_sorted_within_blocks(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write(ALTO)
        try:
            self.assertEqual(alto_lines(f.name), ["first line", "second line", "next block"])
        finally:
            os.unlink(f.name)

    def test_clean_reference_by_source(self) -> None:
        self.assertEqual(normalize(clean_reference("~~~ qu'il _Chez 1^er", "tapus_x")), "qu'il Chez 1er")
        self.assertEqual(clean_reference("Caf~~ theme-~", "unlv_8087"), "Caf theme-")
        self.assertEqual(clean_reference("a_b ~~~", "tess_x"), "a_b ~~~")

    def test_olmocr_text_tests(self) -> None:
        page = "Exercises\n150. Use the graph of the position function.\n157. Next one"
        present = OlmTest("p", 1, "present", text="Use the graph of the positon function.")
        self.assertTrue(passes(present, page))  # one edit in 38 characters is within 10 %
        self.assertFalse(passes(OlmTest("p", 1, "present", text="Laundry room"), page))
        self.assertTrue(passes(OlmTest("a", 1, "absent", text="Laundry room"), page))
        self.assertTrue(passes(OlmTest("o", 1, "order", before="150.", after="157."), page))
        self.assertFalse(passes(OlmTest("o", 1, "order", before="157.", after="150."), page))
        self.assertTrue(passes(OlmTest("c", 1, "present", text="EXERCISES", case_sensitive=False), page))
        self.assertFalse(passes(OlmTest("c", 1, "present", text="EXERCISES"), page))


@unittest.skipUnless(os.path.isfile(os.path.join(corpus_dir(), "MANIFEST.md")), "corpus not found")
class CorpusTest(unittest.TestCase):
    def test_manifest_names_ground_truth_for_every_item(self) -> None:
        items = parse_manifest(corpus_dir())
        self.assertGreater(len(items), 20)
        for item in items:
            self.assertTrue(item.gt_files, item.name)
            for path in item.gt_files:
                self.assertTrue(os.path.isfile(path), path)

    def test_alto_agrees_with_the_transcription(self) -> None:
        # .gt.txt was made from the ALTO; outside the row-major catalogue pages they must agree.
        checked = 0
        for item in load_items(corpus_dir(), ["printed", "handwritten", "multipage_pdf"]):
            alto = [p for p in item.gt_files if p.endswith(".gt.alto.xml")]
            if item.kind != "text" or not alto or "catalogue" in item.stem or "FRAN_0011" in item.stem:
                continue
            from_alto = load_ground_truth(Item(item.category, item.path, alto))
            self.assertEqual(len(from_alto.pages_text), len(item.pages_text), item.name)
            for a, t in zip(from_alto.pages_text, item.pages_text, strict=True):
                self.assertEqual(score(a, t).edits, 0, item.name)
            checked += 1
        self.assertGreater(checked, 5)

    def test_kinds(self) -> None:
        kinds = {i.name: i.kind for i in load_items(corpus_dir(), ["printed", "handwritten"])}
        self.assertEqual(kinds["printed/tess_phototest.tif"], "text")
        self.assertEqual(kinds["printed/olmocr_openstax_calculus_p273.pdf"], "tests")
        self.assertEqual(kinds["handwritten/tdp_AN_0213-0.jpg"], "text")


if __name__ == "__main__":
    unittest.main()
