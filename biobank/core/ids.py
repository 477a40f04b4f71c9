"""Identifiers: resident identity numbers, pseudonyms, specimen labels, the center key.

* The 18-character PRC resident identity number (居民身份证号码) is validated
  with :mod:`stdnum.cn.ric` (ISO 7064 MOD 11-2 check character, birth date,
  region) *before* it is hashed, so that a typo never creates a second person.
* A participant's pseudonym is ``P-`` plus 12 base32 characters of
  HMAC-SHA256(center key, normalised identity number). The center key lives
  outside the database (:func:`center_key`), so the store alone cannot be
  reversed by hashing every possible number.
* Specimen labels are ``<PREFIX><serial><check>`` with an ISO 7064 MOD 37-36
  check character, so a mistyped or misread label is rejected, not confused
  with another specimen.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import ric
from stdnum.iso7064 import mod_11_2, mod_37_36

from biobank.core.errors import ConfigError, ValidationError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "center_key",
    "is_valid_label",
    "make_label",
    "national_id_birth_date",
    "national_id_sex",
    "pseudonym",
    "validate_label",
    "validate_national_id",
]

KEY_ENV = "BIOBANK_CENTER_KEY"
KEY_FILE_ENV = "BIOBANK_KEY_FILE"


def validate_national_id(value: str, *, field: str = "national_id") -> str:
    """Return a normalised 18-character resident identity number, or raise.

    Parameters
    ----------
    value
        The number as typed (spaces are removed, a trailing ``x`` is upper-cased).
    field
        Field name for the error.

    Raises
    ------
    ValidationError
        Naming what is wrong: length, characters, birth date or check character.

    Examples
    --------
    >>> validate_national_id("11010519491231002x")
    '11010519491231002X'
    """
    number = ric.compact(value or "")
    if (
        len(number) != 18
        or not number[:17].isdigit()
        or not (number[17].isdigit() or number[17] == "X")
    ):
        raise ValidationError(
            "a resident identity number has 17 digits and a check character (0-9 or X)",
            field=field,
            value=value,
        )
    try:
        ric.get_birth_date(number)
    except stdnum_exceptions.ValidationError as exc:
        raise ValidationError(
            f"characters 7-14 must be a real birth date (YYYYMMDD), not {number[6:14]}",
            field=field,
            value=value,
        ) from exc
    expected = mod_11_2.calc_check_digit(number[:17])
    if expected != number[17]:
        raise ValidationError(
            f"check character is '{number[17]}' but the first 17 digits give '{expected}': "
            "the number was probably mistyped, check it against the identity card",
            field=field,
            value=value,
        )
    return number


def national_id_sex(number: str) -> str:
    """Return ``"male"`` or ``"female"`` from the order code (odd: male)."""
    return "male" if int(number[16]) % 2 == 1 else "female"


def national_id_birth_date(number: str) -> dt.date:
    """Return the birth date encoded in a (validated) identity number."""
    return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def pseudonym(national_id: str, key: bytes) -> str:
    """Return the participant pseudonym for a validated identity number.

    The same number and key always give the same pseudonym; without the key the
    pseudonym reveals nothing about the number.

    Examples
    --------
    >>> p = pseudonym("11010519491231002X", b"k" * 32)
    >>> p.startswith("P-"), len(p)
    (True, 14)
    """
    digest = hmac.new(key, national_id.encode("ascii"), hashlib.sha256).digest()
    return "P-" + base64.b32encode(digest).decode("ascii")[:12]


def make_label(prefix: str, serial: int, *, width: int = 7) -> str:
    """Return a specimen label ``<prefix><serial><check>``.

    Examples
    --------
    >>> label = make_label("BB", 123)
    >>> label[:9], is_valid_label(label)
    ('BB0000123', True)
    """
    body = f"{prefix.upper()}{serial:0{width}d}"
    return body + mod_37_36.calc_check_digit(body)


def is_valid_label(label: str) -> bool:
    """Return whether a label's check character is right."""
    try:
        return bool(label) and bool(mod_37_36.is_valid(label.upper()))
    except stdnum_exceptions.ValidationError:
        return False


def validate_label(label: str, *, field: str = "label") -> str:
    """Return an upper-cased label, or raise if its check character is wrong.

    Raises
    ------
    ValidationError
        If the label is malformed or mistyped.
    """
    value = (label or "").strip().upper()
    if not value.isalnum() or len(value) < 3 or not is_valid_label(value):
        raise ValidationError(
            "not a valid specimen label (letters and digits ending in an ISO 7064 "
            "MOD 37-36 check character): re-scan or re-type the barcode",
            field=field,
            value=label,
        )
    return value


def center_key(store_path: str | Path | None = None, *, create: bool = False) -> bytes:
    """Return the center's secret pseudonymisation key.

    Looked up in order: env ``BIOBANK_CENTER_KEY`` (hex), the file named by env
    ``BIOBANK_KEY_FILE``, then ``<store>.key`` next to the store file.

    Parameters
    ----------
    store_path
        The store, for the default key file location.
    create
        Create the default key file (mode 0600) if no key is found.

    Raises
    ------
    ConfigError
        If no key is found (and ``create`` is false) or the key is malformed.
    """
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError as exc:
            raise ConfigError(f"{KEY_ENV} must be hex (64 hex digits)") from exc
        if len(key) < 16:
            raise ConfigError(f"{KEY_ENV} must hold at least 16 bytes (32 hex digits)")
        return key
    path_s = os.environ.get(KEY_FILE_ENV)
    if path_s:
        path = Path(path_s)
    elif store_path is not None:
        path = Path(str(store_path) + ".key")
    else:
        raise ConfigError(f"no center key: set {KEY_ENV} or {KEY_FILE_ENV}")
    if not path.exists():
        if not create:
            raise ConfigError(
                f"no center key at {path}: run 'biobank init' to create one, or set "
                f"{KEY_ENV} / {KEY_FILE_ENV}; keep the key outside the database and back it up"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise ConfigError(f"center key file {path} must hold hex digits") from exc
    if len(key) < 16:
        raise ConfigError(f"center key in {path} is too short (at least 32 hex digits)")
    return key
