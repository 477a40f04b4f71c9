"""Tests for biobank.core.ids: identity numbers, pseudonyms, labels and the center key."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biobank.core.errors import ConfigError, ValidationError
from biobank.core.ids import (
    center_key,
    is_valid_label,
    make_label,
    national_id_birth_date,
    national_id_sex,
    pseudonym,
    validate_label,
    validate_national_id,
)

# The example number of GB 11643-1999 (check character X) and the fixture's numbers.
EXAMPLE = "11010519491231002X"


def test_validate_national_id__normalises_and_decodes() -> None:
    assert validate_national_id(" 11010519491231002x ") == EXAMPLE
    assert national_id_birth_date(EXAMPLE) == dt.date(1949, 12, 31)
    assert national_id_sex(EXAMPLE) == "female"  # order code 002: even
    assert national_id_sex("310104197805210255") == "male"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("11010519491231002", "17 digits and a check character"),
        ("1101051949123100AX", "17 digits and a check character"),
        ("110105194902300021", "real birth date"),
        ("110105194912310021", "check character is '1' but the first 17 digits give 'X'"),
    ],
)
def test_validate_national_id__rejects(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_national_id(value)


@given(position=st.integers(0, 16), delta=st.integers(1, 9))
def test_validate_national_id__every_single_digit_typo_caught(position: int, delta: int) -> None:
    digits = list(EXAMPLE)
    digits[position] = str((int(digits[position]) + delta) % 10)
    typo = "".join(digits)
    with pytest.raises(ValidationError):
        validate_national_id(typo)


def test_pseudonym__keyed_and_stable() -> None:
    a = pseudonym(EXAMPLE, b"k" * 32)
    assert a == pseudonym(EXAMPLE, b"k" * 32)
    assert a != pseudonym(EXAMPLE, b"j" * 32)
    assert a != pseudonym("310104197805210255", b"k" * 32)
    assert a.startswith("P-")
    assert len(a) == 14
    assert EXAMPLE not in a


@given(
    serial=st.integers(0, 9_999_999),
    position=st.integers(0, 9),
    char=st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
)
def test_labels__single_character_errors_detected(serial: int, position: int, char: str) -> None:
    label = make_label("BB", serial)
    assert validate_label(label.lower()) == label
    changed = label[:position] + char + label[position + 1 :]
    if changed != label:
        assert not is_valid_label(changed)


def test_validate_label__message() -> None:
    with pytest.raises(ValidationError, match="re-scan or re-type the barcode"):
        validate_label("BB0000001M")


def test_center_key__precedence_and_file_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    store = tmp_path / "s.duckdb"
    with pytest.raises(ConfigError, match="no center key"):
        center_key(store)
    key = center_key(store, create=True)
    assert len(key) == 32
    assert os.stat(str(store) + ".key").st_mode & 0o077 == 0
    assert center_key(store) == key
    other = tmp_path / "other.key"
    other.write_text("cd" * 32)
    monkeypatch.setenv("BIOBANK_KEY_FILE", str(other))
    assert center_key(store) == bytes.fromhex("cd" * 32)
    monkeypatch.setenv("BIOBANK_CENTER_KEY", "ef" * 32)
    assert center_key(store) == bytes.fromhex("ef" * 32)
    monkeypatch.setenv("BIOBANK_CENTER_KEY", "xyz")
    with pytest.raises(ConfigError, match="must be hex"):
        center_key(store)
