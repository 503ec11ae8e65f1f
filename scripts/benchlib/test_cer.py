"""Tests of benchlib.cer: the bit-parallel distances against a plain dynamic-programming table.

Run: .venv-bench/bin/python -m unittest discover -s scripts/benchlib -t scripts
"""

from __future__ import annotations

import random
import unittest

from benchlib.cer import (
    ZERO,
    bag_of_words,
    cer,
    levenshtein,
    normalize,
    score,
    substring_distance,
)


def dp_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def dp_substring(pattern: str, text: str) -> int:
    """Pattern against any substring of text: row 0 is all zeros, answer is the last row's minimum."""
    prev = list(range(len(pattern) + 1))  # column j=0 (empty text prefix)
    best = prev[-1]
    for ct in text:
        cur = [0]
        for i, cp in enumerate(pattern, start=1):
            cur.append(min(prev[i] + 1, cur[i - 1] + 1, prev[i - 1] + (cp != ct)))
        prev = cur
        best = min(best, prev[-1])
    return best


class DistanceTest(unittest.TestCase):
    def test_known_values(self) -> None:
        self.assertEqual(levenshtein("kitten", "sitting"), 3)
        self.assertEqual(levenshtein("", "abc"), 3)
        self.assertEqual(levenshtein("abc", ""), 3)
        self.assertEqual(levenshtein("", ""), 0)
        self.assertEqual(levenshtein("flaw", "lawn"), 2)
        self.assertEqual(levenshtein("é", "e\u0301"), 2)  # raw code points; normalize() fixes this

    def test_random_strings_match_the_table(self) -> None:
        rng = random.Random(7)
        alphabet = "abcdé ,.\u00e0\u4e2d"
        for _ in range(400):
            a = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90)))
            b = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90)))
            self.assertEqual(levenshtein(a, b), dp_distance(a, b), (a, b))

    def test_long_strings_cross_word_boundaries(self) -> None:
        # Patterns longer than a machine word exercise the big-integer carries.
        rng = random.Random(11)
        a = "".join(rng.choice("ab ") for _ in range(300))
        b = "".join(rng.choice("ab ") for _ in range(280))
        self.assertEqual(levenshtein(a, b), dp_distance(a, b))

    def test_substring_distance_matches_the_table(self) -> None:
        rng = random.Random(3)
        for _ in range(300):
            p = "".join(rng.choice("abcd") for _ in range(rng.randrange(1, 40)))
            t = "".join(rng.choice("abcd") for _ in range(rng.randrange(0, 120)))
            self.assertEqual(substring_distance(p, t)[0], dp_substring(p, t), (p, t))

    def test_substring_end_index(self) -> None:
        self.assertEqual(substring_distance("world", "hello world!"), (0, 11))
        self.assertEqual(substring_distance("wrld", "hello world")[0], 1)
        self.assertEqual(substring_distance("abc", ""), (3, 0))


class MetricTest(unittest.TestCase):
    def test_normalize(self) -> None:
        self.assertEqual(normalize("  a\tb\n\nc\fd  "), "a b c d")
        self.assertEqual(normalize("e\u0301"), "\u00e9")

    def test_cer(self) -> None:
        self.assertEqual(cer("hello world", "hello world"), 0.0)
        self.assertAlmostEqual(cer("hello wor1d", "hello  world\n") or 0.0, 1 / 11)
        self.assertIsNone(cer("anything", "   "))
        self.assertEqual(cer("", "abcd"), 1.0)
        self.assertEqual(cer("abcdefgh", "ab"), 3.0)

    def test_bag_of_words_ignores_order(self) -> None:
        self.assertEqual(bag_of_words("b a c", "a b c"), (0, 0, 3))
        self.assertEqual(bag_of_words("a x c", "a b c"), (1, 1, 3))
        self.assertEqual(bag_of_words("a b c d", "a b c"), (0, 1, 3))
        s = score("column two column one", "column one column two")
        self.assertEqual(s.bow_wer, 0.0)
        self.assertGreater(s.cer or 0.0, 0.0)

    def test_scores_add_as_counts(self) -> None:
        total = ZERO + score("abc", "abd") + score("x y", "x y z w")
        self.assertEqual(total.edits, 1 + 4)
        self.assertEqual(total.ref_chars, 3 + 7)
        self.assertEqual(total.bow_errors, 1 + 2)
        self.assertEqual(total.ref_words, 1 + 4)


if __name__ == "__main__":
    unittest.main()
