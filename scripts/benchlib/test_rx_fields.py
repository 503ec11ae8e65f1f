"""Tests of the prescription field F1 (run: .venv-bench/bin/python -m pytest scripts/benchlib)."""

from __future__ import annotations

from .rx_fields import FieldCounts, normalize, pair, record_of_page, score_record

TRUTH = {
    "patient": "Rahul Haddad",
    "medications": [
        {"name": "Metformin", "strength": "850 mg", "frequency": "OD", "duration": "5 days"},
        {"name": "Ibuprofen", "strength": "400 mg", "frequency": "0-0-1", "duration": None},
    ],
}


def test_normalisation_accepts_notation_variants_only():
    assert normalize("strength", "5OOmg") == normalize("strength", "500 mg")
    assert normalize("duration", "x5d") == normalize("duration", "5 days")
    assert normalize("duration", "for 2 weeks") == normalize("duration", "2 weeks")
    assert normalize("frequency", "b.i.d.") == normalize("frequency", "BD")
    assert normalize("frequency", "l-O-l") == normalize("frequency", "1-0-1")
    assert normalize("strength", "50 mg") != normalize("strength", "500 mg")
    assert normalize("duration", "5 weeks") != normalize("duration", "5 days")
    assert normalize("name", None) == ""


def test_a_perfect_record_scores_one():
    counts = score_record(TRUTH, TRUTH)
    assert counts.f1() == 1.0
    assert counts.tp["name"] == 2 and counts.fn["duration"] == 0


def test_errors_count_as_false_positives_and_negatives():
    predicted = {"medications": [
        {"name": "Metforrnin", "strength": "850mg", "frequency": "BD", "duration": "x 5 days"},
        {"name": "Paracetamol", "strength": "500 mg"},
    ]}
    c = score_record(predicted, TRUTH)
    # Metforrnin pairs with Metformin (name wrong, strength and duration right, frequency wrong);
    # Paracetamol pairs with nothing; Ibuprofen is missed.
    assert (c.tp["name"], c.fp["name"], c.fn["name"]) == (0, 2, 2)
    assert (c.tp["strength"], c.fp["strength"], c.fn["strength"]) == (1, 1, 1)
    assert (c.tp["frequency"], c.fp["frequency"], c.fn["frequency"]) == (0, 1, 2)
    assert (c.tp["duration"], c.fp["duration"], c.fn["duration"]) == (1, 0, 0)
    assert 0 < c.f1() < 0.5


def test_no_record_is_all_false_negatives():
    c = score_record(None, TRUTH)
    assert c.f1() == 0.0 and c.pages_with_record == 0
    total = c.add(score_record(TRUTH, TRUTH))
    assert total.pages == 2 and 0.4 < total.f1() < 0.7
    assert FieldCounts().f1() is None


def test_pairs_by_name_and_record_lookup():
    assert pair([{"name": "Ibuprofen"}, {"name": "Metformin"}], TRUTH["medications"]) == [(0, 1), (1, 0)]
    page = {"blocks": [{"text": "x"}, {"fields": TRUTH}]}
    assert record_of_page(page) is TRUTH
    assert record_of_page({"blocks": [{"fields": {"chart": 1}}]}) is None
