"""Tests for biobank.genomes.bcsq: choosing a variant row's gene and consequence."""

from __future__ import annotations

from biobank.genomes.bcsq import parse_bcsq


def test_parse_bcsq__picks_most_severe_entry_for_the_alt() -> None:
    value = (
        "synonymous|G1|T1|protein_coding|+|5L|5T>C,"
        "missense|G2|T2|protein_coding|+|7K>E|7A>G,"
        "@12345,*stop_gained|G3|T3|protein_coding|-|9Q>*|9C>A"
    )
    assert parse_bcsq(value, "A", n_alts=2) == (
        "G3",
        "stop_gained",
        "stop_gained|G3|T3|protein_coding|-|9Q>*|9C>A",
    )
    assert parse_bcsq(value, "G", n_alts=2)[:2] == ("G2", "missense")
    assert parse_bcsq(value, "T")[:2] == ("G3", "stop_gained")  # biallelic: every entry is its
    assert parse_bcsq(None, "T") == (None, None, None)
