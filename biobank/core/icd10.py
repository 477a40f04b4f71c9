"""ICD-10 diagnosis codes: validation, normal form and the code hierarchy.

Accepted forms (case-insensitive, surrounding white space ignored):

==========================  ==================================================
form                        examples
==========================  ==================================================
WHO category                ``E11``, ``I21``
WHO subcategory             ``E11.9``, ``C50.9``; undotted ``E119`` is read as ``E11.9``
clinical modifications      up to four characters after the dot, ``S72.001A``
国家临床版2.0 / 医保版2.0     six-character code ``E11.900``, ``C50.901``, ``I10.x00``
                            (``x`` stands for an absent subcategory digit) and
                            the additional extension ``x`` + 3 digits,
                            ``E11.900x001``, ``I10.x00x002``, ``K35.800x001``
dagger / asterisk marker    a trailing ``+``, ``†`` or ``*`` (``A17.0+``) is dropped
==========================  ==================================================

The Chinese national clinical edition 2.0 (国家临床版2.0, and the medical
insurance edition 医保版2.0 built on it) extends the WHO four-character code
``A00.0`` with two digits (``A00.000``; ``x`` fills a subcategory that WHO does
not subdivide, as in ``I10.x00``) and, for finer clinical terms, with ``x``
followed by a three-digit serial (``E11.900x001``). Codes are stored in the
**display form** (upper-case letters, the dot after the category, a lower-case
``x`` as the national editions print it) and matched in the **compact form**
(upper case, no dot): a pattern matches every code it is a prefix of, so
``E11`` matches ``E11.9``, ``E11.900`` and ``E11.900x001``, and ``E11.9`` does
not match ``E11.2``. A range ``I20-I25`` matches every code whose leading
characters fall between the two bounds (inclusive): ``I21.9`` and ``I25.100``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from biobank.core.errors import ValidationError

__all__ = [
    "CodePattern",
    "compact",
    "is_valid",
    "matches",
    "normalise",
    "parse_pattern",
]

_CODE = re.compile(
    r"^(?P<category>[A-Z][0-9]{2})"
    r"(?:\.?(?P<sub>[0-9X][0-9A-Z]{0,3}?)(?:X(?P<ext>[0-9]{3}))?)?$"
)
_MARKERS = "+*†"
_FORMS = (
    "a letter, two digits and an optional subdivision after a dot: E11, E11.9, "
    "S72.001A, or a national clinical edition 2.0 code such as E11.900, I10.x00, "
    "E11.900x001"
)


def normalise(code: str, *, field: str = "icd10") -> str:
    """Return the display form of an ICD-10 code, or raise.

    Parameters
    ----------
    code
        The code as written in the source.
    field
        Field name for the error.

    Raises
    ------
    ValidationError
        If ``code`` is not one of the accepted forms (see the module docstring).

    Examples
    --------
    >>> normalise("e119"), normalise("E11.900X001"), normalise("i10.X00")
    ('E11.9', 'E11.900x001', 'I10.x00')
    """
    text = (code or "").strip().upper().rstrip(_MARKERS).strip()
    match = _CODE.match(text)
    if match is None or (match["ext"] is not None and len(match["sub"] or "") != 3):
        raise ValidationError(f"not an ICD-10 code: {_FORMS}", field=field, value=code)
    category, sub, ext = match["category"], match["sub"], match["ext"]
    if sub is None:
        return category
    if "X" in sub[1:] and not re.fullmatch(r"X[0-9]{2}", sub):
        raise ValidationError(f"not an ICD-10 code: {_FORMS}", field=field, value=code)
    if sub.startswith("X") and len(sub) != 3:
        # 'x' placeholders only exist in the six-character national codes
        raise ValidationError(f"not an ICD-10 code: {_FORMS}", field=field, value=code)
    shown = "x" + sub[1:] if sub.startswith("X") else sub
    return f"{category}.{shown}" + (f"x{ext}" if ext else "")


def is_valid(code: str) -> bool:
    """Return whether ``code`` is an accepted ICD-10 code.

    Examples
    --------
    >>> is_valid("E11.900x001"), is_valid("E1"), is_valid("11.9")
    (True, False, False)
    """
    try:
        normalise(code)
    except ValidationError:
        return False
    return True


def compact(code: str) -> str:
    """Return the compact (matching) form: upper case without the dot.

    Examples
    --------
    >>> compact("I10.x00x002")
    'I10X00X002'
    """
    return normalise(code).replace(".", "").upper()


@dataclass(frozen=True)
class CodePattern:
    """A diagnosis pattern: one code (matching its descendants) or an inclusive range.

    Attributes
    ----------
    low
        Compact form of the code, or of the range's first bound.
    high
        Compact form of the range's last bound; ``None`` for a single code.
    text
        The pattern in display form (``E11``, ``I20-I25``).
    """

    low: str
    high: str | None
    text: str

    def matches(self, code: str) -> bool:
        """Return whether the (valid) ``code`` falls under this pattern."""
        c = compact(code)
        if self.high is None:
            return c.startswith(self.low)
        return c[: len(self.low)] >= self.low and c[: len(self.high)] <= self.high

    def sql(self, column: str) -> tuple[str, list[str]]:
        """Return a SQL condition on a column holding compact codes, and its parameters."""
        if self.high is None:
            return f"starts_with({column}, ?)", [self.low]
        return (
            f"(substr({column}, 1, {len(self.low)}) >= ? "
            f"AND substr({column}, 1, {len(self.high)}) <= ?)",
            [self.low, self.high],
        )


def parse_pattern(pattern: str, *, field: str = "codes") -> CodePattern:
    """Parse a diagnosis pattern: a code (``E11``, ``E11.9``) or a range (``I20-I25``).

    Raises
    ------
    ValidationError
        If a code is malformed or a range's first bound comes after its last.

    Examples
    --------
    >>> parse_pattern("I20-I25").matches("I21.900x001"), parse_pattern("E11").matches("E10.9")
    (True, False)
    """
    text = (pattern or "").strip()
    if "-" in text:
        lo_s, _, hi_s = text.partition("-")
        lo, hi = normalise(lo_s, field=field), normalise(hi_s, field=field)
        lo_c, hi_c = lo.replace(".", "").upper(), hi.replace(".", "").upper()
        if lo_c[: len(hi_c)] > hi_c:
            raise ValidationError(
                f"the range '{pattern}' is empty: write the lower code first (e.g. I20-I25)",
                field=field,
                value=pattern,
            )
        return CodePattern(lo_c, hi_c, f"{lo}-{hi}")
    code = normalise(text, field=field)
    return CodePattern(code.replace(".", "").upper(), None, code)


def matches(code: str, pattern: str) -> bool:
    """Return whether ``code`` falls under ``pattern`` (a code or a range).

    Examples
    --------
    >>> matches("E11.900x001", "E11"), matches("E11.2", "E11.9"), matches("I25.1", "I20-I25")
    (True, False, True)
    """
    return parse_pattern(pattern).matches(code)
