"""Translations of the library's messages: one table of patterns for every page.

The library writes its messages in English, each saying what is wrong and how to
fix it. :func:`library_message` translates the ones staff meet (identity
numbers, passwords, specimen actions, an import's error report, a refused move)
by pattern, values from the named groups; a message no pattern knows is shown
in English. ``tests/service/test_pages.py`` checks that the patterns match the
library's own messages; ``tests/service/test_import_pages.py`` uploads files
with the common mistakes and checks their translated report.
"""

from __future__ import annotations

import re

from biobank.service.i18n import N_, Gettext

__all__ = ["library_message"]

_CHECK_CHARACTER = N_(
    "the check character is '%(got)s' but the first 17 digits give '%(expected)s': the number was probably mistyped, check it against the identity card"  # noqa: E501
)


#: English library messages -> msgid of their translation, values from the named groups.
#: The first pattern that matches wins: the specific ones (a position taken on a
#: line of the file) come before the general ones.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # import rows, files and storage moves
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
    # specimen actions
    (
        re.compile(r"the number of aliquots must be a whole number from 1 to (?P<n>\d+)"),
        N_("the number of aliquots must be a whole number from 1 to %(n)s"),
    ),
    (
        re.compile(r"quantity must be a positive number.*|quantity must be positive"),
        N_("quantity must be a positive number (e.g. 4 or 0.5)"),
    ),
    (
        re.compile(
            r"(?P<n>\d+) x (?P<q>\S+) (?P<u>\S+) = (?P<need>\S+) (?P<pu>\S+) is more than the "
            r"(?P<left>\S+) \S+ left of (?P<label>\w+): make fewer or smaller aliquots"
        ),
        N_(
            "%(n)s x %(q)s %(u)s = %(need)s %(pu)s is more than the %(left)s %(pu)s left of "
            "%(label)s: make fewer or smaller aliquots"
        ),
    ),
    (
        re.compile(r"give the reason for the change \(kept with the event\)"),
        N_("give the reason (it is kept with the event)"),
    ),
    (
        re.compile(r"give the destination of the shipment"),
        N_("give the destination of the shipment"),
    ),
    (
        re.compile(r"a (?P<child>\w+) specimen cannot be derived from (?P<parent>\w+) .*"),
        N_("a %(child)s specimen cannot be derived from %(parent)s"),
    ),
    (
        re.compile(r"give one position per aliquot: (?P<p>\d+) positions for (?P<n>\d+) aliquots"),
        N_("give one position per aliquot: %(p)s positions for %(n)s aliquots"),
    ),
    (
        re.compile(r"position (?P<where>\S+) is already taken by (?P<holder>\w+).*"),
        N_("position %(where)s is already taken by %(holder)s: one specimen per position"),
    ),
    (
        re.compile(r"a storage position needs freezer, rack, box and position; missing (?P<m>.*)"),
        N_("a storage position needs freezer, rack, box and position; missing %(m)s"),
    ),
    (
        re.compile(r"specimen (?P<label>\w+) is (?P<status>\w+), not available"),
        N_("specimen %(label)s is %(status)s, not available"),
    ),
    (
        re.compile(r"specimen (?P<label>\w+) has (?P<left>\S+ \S+) left, cannot consume (?P<q>.*)"),
        N_("specimen %(label)s has %(left)s left, cannot consume %(q)s"),
    ),
    (
        re.compile(r"unit '(?P<u>[^']*)' is not one of: .*"),
        N_("unit '%(u)s' is not a known unit"),
    ),
    (
        re.compile(r"choose the type of the derivative"),
        N_("choose the type of the derivative"),
    ),
    # identity numbers, passwords, reasons
    (
        re.compile(r"a resident identity number has 17 digits and a check character \(0-9 or X\)"),
        N_("a resident identity number has 17 digits and a check character (0-9 or X)"),
    ),
    (
        re.compile(r"characters 7-14 must be a real birth date \(YYYYMMDD\), not (?P<got>\S*)"),
        N_("characters 7-14 must be a real birth date (YYYYMMDD), not %(got)s"),
    ),
    (
        re.compile(
            r"check character is '(?P<got>.)' but the first 17 digits give '(?P<expected>.)'.*"
        ),
        _CHECK_CHARACTER,
    ),
    (
        re.compile(r"a password has at least (?P<n>\d+) characters"),
        N_("a password has at least %(n)s characters"),
    ),
    (
        re.compile(r"the new password must differ from the current one"),
        N_("the new password must differ from the current one"),
    ),
    (
        re.compile(r"give the reason for the change"),
        N_("give the reason for the change"),
    ),
    (
        re.compile(r"give the reason for re-contact \(it is audited\)"),
        N_("give the reason for re-contact (it is audited)"),
    ),
    # family members' affected status per phenotype (biobank.registry.affected)
    (
        re.compile(
            r"(?P<value>.+) is neither an HPO term \(HP:0001250\) nor an ICD-10 code \(E11\.9\)"
        ),
        N_("%(value)s is neither an HPO term (HP:0001250) nor an ICD-10 code (E11.9)"),
    ),
    (
        re.compile(r"the affected status is one of affected, unaffected, unknown"),
        N_("the affected status is one of affected, unaffected, unknown"),
    ),
    (
        re.compile(
            r"this person is not a member of family (?P<family>\S+): register them in the "
            r"pedigree first"
        ),
        N_("this person is not a member of family %(family)s: register them in the pedigree first"),
    ),
]


def library_message(message: str, _: Gettext) -> str:
    """Translate a known library message with ``_``; return others unchanged."""
    for pattern, msgid in _PATTERNS:
        m = pattern.fullmatch(message)
        if m:
            return _(msgid, **m.groupdict())
    return message
