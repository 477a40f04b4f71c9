"""Tests for biobank.core.icd10: code forms (WHO, national clinical edition 2.0), hierarchy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biobank.core import icd10
from biobank.core.errors import ValidationError


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("E11", "E11"),
        ("e11.9", "E11.9"),
        ("E119", "E11.9"),
        (" C50.9 ", "C50.9"),
        ("S72.001A", "S72.001A"),
        ("E11.900", "E11.900"),
        ("C50.901", "C50.901"),
        ("I10.x00", "I10.x00"),
        ("I10.X00X002", "I10.x00x002"),
        ("E11.900x001", "E11.900x001"),
        ("K35.800x001", "K35.800x001"),
        ("A17.0+", "A17.0"),
        ("G01*", "G01"),
    ],
)
def test_normalise__accepts_who_and_national_forms(code: str, expected: str) -> None:
    assert icd10.normalise(code) == expected


@pytest.mark.parametrize(
    "code",
    ["", "E1", "11.9", "E11.", "EE1.9", "E11.9x001", "I10.x0", "E11.X", "E11.90000", "E11-9"],
)
def test_normalise__rejects_malformed_code(code: str) -> None:
    with pytest.raises(ValidationError, match="not an ICD-10 code"):
        icd10.normalise(code)


@pytest.mark.parametrize(
    ("code", "pattern", "expected"),
    [
        ("E11.9", "E11", True),
        ("E11.900", "E11", True),
        ("E11.900x001", "E11", True),
        ("E11.900x001", "E11.9", True),
        ("E11.900x001", "E11.900", True),
        ("E11.2", "E11.9", False),
        ("E10.9", "E11", False),
        ("E110", "E11.0", True),
        ("I21.9", "I20-I25", True),
        ("I25.100", "I20-I25", True),
        ("I20", "I20-I25", True),
        ("I26.0", "I20-I25", False),
        ("I19", "I20-I25", False),
        ("I10.x00x002", "I10", True),
        ("E11.5", "E11.2-E11.6", True),
        ("E11.7", "E11.2-E11.6", False),
    ],
)
def test_matches__follows_the_hierarchy(code: str, pattern: str, expected: bool) -> None:
    assert icd10.matches(code, pattern) is expected


def test_parse_pattern__rejects_reversed_range() -> None:
    with pytest.raises(ValidationError, match="range 'I25-I20' is empty"):
        icd10.parse_pattern("I25-I20")


def test_pattern_sql__agrees_with_python_matching() -> None:
    import duckdb

    codes = ["E11", "E11.9", "E11.900x001", "E10.9", "I20.0", "I25.100", "I26.0", "I10.x00x002"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (code VARCHAR, c VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [[c, icd10.compact(c)] for c in codes])
    for pattern in ["E11", "E11.9", "I20-I25", "I10", "E10-E11.9"]:
        sql, params = icd10.parse_pattern(pattern).sql("c")
        got = {r[0] for r in con.execute(f"SELECT code FROM t WHERE {sql}", params).fetchall()}
        assert got == {c for c in codes if icd10.matches(c, pattern)}, pattern


@given(
    category=st.from_regex(r"[A-Z][0-9]{2}", fullmatch=True),
    sub=st.from_regex(r"[0-9][0-9]{2}", fullmatch=True),
    ext=st.from_regex(r"[0-9]{3}", fullmatch=True),
)
def test_normalise__national_codes_round_trip_and_match_their_category(
    category: str, sub: str, ext: str
) -> None:
    code = f"{category}.{sub}x{ext}"
    assert icd10.normalise(code.upper()) == code
    assert icd10.matches(code, category)
    assert icd10.matches(code, f"{category}.{sub[0]}")
