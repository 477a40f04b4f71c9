"""Tests for biobank.core.disclosure: the one owner of the small-count rule."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from biobank.core.disclosure import (
    SMALL_COUNT_THRESHOLD,
    is_small,
    suppress_rows,
    suppress_small_counts,
    suppressed_count,
)

PACKAGE = Path(__file__).resolve().parents[2] / "biobank"


@pytest.mark.parametrize(
    ("n", "small"), [(0, False), (1, True), (SMALL_COUNT_THRESHOLD - 1, True), (5, False)]
)
def test_is_small__edges(n: int, small: bool) -> None:
    assert is_small(n) is small
    assert suppressed_count(n) == (None if small else n)


def test_is_small__custom_threshold() -> None:
    assert is_small(9, 10)
    assert not is_small(10, 10)


def test_suppress_rows__nulls_counts_and_derived_and_flags() -> None:
    df = pl.DataFrame({"a": [0, 2, 7], "b": [9, 9, 1], "p": [0.5, 0.1, 0.01]})
    out = suppress_rows(df, ["a", "b"], ["p"], min_count=5, flag="s")
    assert out["s"].to_list() == [False, True, True]
    assert out["a"].to_list() == [0, None, None]
    assert out["b"].to_list() == [9, None, None]
    assert out["p"].to_list() == [0.5, None, None]


def test_suppress_rows__none_threshold_returns_the_frame_unchanged() -> None:
    df = pl.DataFrame({"a": [1, 2]})
    assert suppress_rows(df, ["a"], min_count=None).equals(df)


def test_suppress_small_counts__cell_by_cell() -> None:
    df = pl.DataFrame({"a": [3, 8], "b": [8, 3]})
    out = suppress_small_counts(df, ["a", "b"])
    assert out.rows() == [(None, 8), (8, None)]


def test_no_other_module_sets_a_small_count_threshold() -> None:
    """The threshold is a number in one place; others name the constant."""
    pattern = re.compile(r"(min_count[^=\n]*=\s*\d|COUNT_THRESHOLD\s*=\s*\d|MIN_COUNT\s*=\s*\d)")
    hits = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "disclosure.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.name}:{i}: {line.strip()}")
    assert hits == []
