"""Translations of the library's messages about import rows, storage moves and files.

The library writes its messages in English, each saying what is wrong and how to
fix it. :func:`import_message` translates the ones staff meet in an import's
error report or a refused move (by pattern, values from the named groups), then
falls back to :func:`biobank.service.i18n.library_message`; a message no pattern
knows is shown in English. ``tests/service/test_import_pages.py`` uploads files
with the common mistakes and checks their translated report.
"""

from __future__ import annotations

import re

from biobank.service.i18n import N_, Gettext, library_message

__all__ = ["import_message"]

#: English library messages -> msgid of their translation, values from the named groups.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"the file is neither UTF-8 \((?P<utf8>.+)\) nor GB18030 \((?P<gb>.+?)\)"
            r"(?: \(it looks like (?P<guess>[^)]*)\))?: tried .*"
        ),
        N_(
            "the file is neither UTF-8 (%(utf8)s) nor GB18030 (%(gb)s): tried UTF-8 and GB18030; save it as UTF-8 or GB18030 (a Big5 file, from Taiwan or Hong Kong systems, must be converted first)"  # noqa: E501
        ),
    ),
    (
        re.compile(r"the file is UTF-16 .*"),
        N_("the file is UTF-16: save it as UTF-8 (CSV UTF-8 in Excel) or GB18030"),
    ),
    (
        re.compile(r"missing columns?: (?P<cols>.+) \(the header must have: (?P<need>.+)\)"),
        N_("missing column(s): %(cols)s (the header must have: %(need)s)"),
    ),
    (
        re.compile(r"unknown columns?: (?P<cols>.+) \(allowed: (?P<allowed>.+)\); .*"),
        N_("unknown column(s): %(cols)s (allowed: %(allowed)s); check the spelling or remove them"),
    ),
    (
        re.compile(r"the row has (?P<n>\d+) fields but the header has (?P<m>\d+): .*"),
        N_("the row has %(n)s fields but the header has %(m)s: quote values that contain commas"),
    ),
    (
        re.compile(r"malformed CSV: .*"),
        N_("malformed CSV (an unclosed quote?): check the quotes on this line"),
    ),
    (
        re.compile(r"the uploaded file is empty: .*|the file is empty: .*"),
        N_("the file is empty: it needs a header row and data rows"),
    ),
    (
        re.compile(r"name is required .*"),
        N_("name is required (kept encrypted for re-contact only)"),
    ),
    (
        re.compile(r"name holds a line break or control character .*"),
        N_(
            "name holds a line break or control character (a quoted newline in the CSV?): write the name on one line"  # noqa: E501
        ),
    ),
    (
        re.compile(r"sex must be one of: (?P<values>.+)"),
        N_("sex must be one of: %(values)s"),
    ),
    (
        re.compile(r"sex is '(?P<sex>\w+)' but the identity number encodes (?P<coded>\w+) .*"),
        N_(
            "sex is '%(sex)s' but the identity number encodes %(coded)s (17th digit: odd = male, even = female): check both against the identity card"  # noqa: E501
        ),
    ),
    (
        re.compile(r"birth_date differs from the birth date in the identity number .*"),
        N_(
            "birth_date differs from the birth date in the identity number (characters 7-14): check both against the identity card"  # noqa: E501
        ),
    ),
    (
        re.compile(r"not a real date in the form YYYY-MM-DD .*"),
        N_("not a real date in the form YYYY-MM-DD (e.g. 2024-03-15)"),
    ),
    (
        re.compile(r"not an ISO date-time .*"),
        N_("not a date and time in the form YYYY-MM-DDTHH:MM (e.g. 2024-03-15T08:30)"),
    ),
    (
        re.compile(r"site \(the enrolling hospital or centre\) is required"),
        N_("site (the enrolling hospital or centre) is required"),
    ),
    (
        re.compile(r"quantity must be a positive number .*"),
        N_("quantity must be a positive number (e.g. 4 or 0.5)"),
    ),
    (
        re.compile(r"specimen_type is not one of: (?P<values>.+)"),
        N_("specimen_type is not one of: %(values)s"),
    ),
    (
        re.compile(r"not a valid specimen label .*"),
        N_(
            "not a valid specimen label (letters and digits ending in a MOD 37-36 check character): re-scan or re-type the barcode"  # noqa: E501
        ),
    ),
    (
        re.compile(
            r"position (?P<where>\S+) is already taken by (?P<holder>\S+) \(line (?P<line>\d+)\):"
            r" one specimen per position"
        ),
        N_(
            "position %(where)s is already taken by %(holder)s (line %(line)s): one specimen per position"  # noqa: E501
        ),
    ),
    (
        re.compile(
            r"position (?P<where>\S+) is already taken by (?P<holder>\S+): one specimen per position"  # noqa: E501
        ),
        N_("position %(where)s is already taken by %(holder)s: one specimen per position"),
    ),
    (
        re.compile(r"label already used on line (?P<line>\d+): labels are unique"),
        N_("label already used on line %(line)s: labels are unique"),
    ),
    (
        re.compile(r"position is a well like A1 or H12, or a number 1-9999"),
        N_("position is a well like A1 or H12, or a number 1-9999"),
    ),
    (
        re.compile(r"no participant with this identity number is registered: .*"),
        N_(
            "no participant with this identity number is registered: import the participants file first"  # noqa: E501
        ),
    ),
    (
        re.compile(r"participant (?P<pid>\S+) is not registered: .*"),
        N_("participant %(pid)s is not registered: import the participants file first"),
    ),
    (
        re.compile(r"the same person \(identity number\) is already on line (?P<line>\d+): .*"),
        N_(
            "the same person (identity number) is already on line %(line)s: register each person once"  # noqa: E501
        ),
    ),
    (
        re.compile(r"'(?P<token>[^']*)' is not a DUO code: .*"),
        N_(
            "'%(token)s' is not a DUO code: use one primary code (NRES, GRU, HMB, DS, POA) plus modifiers"  # noqa: E501
        ),
    ),
    (
        re.compile(r"nothing was moved: (?P<detail>.+); one specimen per position"),
        N_("nothing was moved: %(detail)s; one specimen per position"),
    ),
    (
        re.compile(r"select at least one specimen to move"),
        N_("select at least one specimen to move"),
    ),
    (
        re.compile(r"give the reason for the change \(kept with the event\)"),
        N_("give the reason for the change (kept with the event)"),
    ),
    (
        re.compile(
            r"box (?P<box>\S+) has (?P<free>\d+) free positions, fewer than the (?P<n>\d+) .*"
        ),
        N_(
            "box %(box)s has %(free)s free positions, fewer than the %(n)s specimens selected: choose another box"  # noqa: E501
        ),
    ),
    (
        re.compile(r"(?P<n>\d+) specimens selected but (?P<m>\d+) positions given: .*"),
        N_(
            "%(n)s specimens selected but %(m)s positions given: give one position per specimen, in order, or none to fill the first free positions"  # noqa: E501
        ),
    ),
]


def import_message(message: str, _: Gettext) -> str:
    """Translate a known library message about an import or a move with ``_``."""
    for pattern, msgid in _PATTERNS:
        m = pattern.fullmatch(message)
        if m:
            return _(msgid, **m.groupdict())
    return library_message(message, _)
