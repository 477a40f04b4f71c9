"""Reading registry CSV files: encoding detection, header checks, true line numbers.

Hospital exports arrive as UTF-8 (with or without a byte order mark) or as
GB18030 (the superset of GBK/GB2312 that Chinese Windows tools write). The
bytes are decoded strictly as UTF-8 and as GB18030; a file that is neither is
refused with the byte offset of the first bad byte, never decoded with
replacement characters. A decoding that succeeds but yields private-use or
unassigned characters is refused too: Big5 bytes (Taiwan and Hong Kong
systems) are mostly valid GB18030 but read as private-use characters, and would
otherwise be stored as mojibake in names and in the research-visible ``site``.
When both succeed (short GB18030 text can be valid
UTF-8: GB "英" reads as UTF-8 "Ӣ"), UTF-8 is kept unless its reading holds
characters a Chinese registry does not (Cyrillic, Greek, emoji ...) and the
GB18030 reading holds fewer. Rows are parsed by :mod:`csv` (so quoted fields may
contain commas and newlines) and each row keeps the line number on which it
starts in the file (the header is line 1).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from biobank.core.errors import ImportRejected, Problem, ValidationError

if TYPE_CHECKING:
    from _csv import Reader

__all__ = ["CsvFile", "CsvRow", "decode_bytes", "parse_csv", "read_csv"]

logger = logging.getLogger(__name__)

#: Encodings tried, in order (the BOM variant is chosen when the BOM is present).
ENCODINGS = ("utf-8", "gb18030")


@dataclass(frozen=True)
class CsvRow:
    """One data row: its first and last line in the file and its values by column."""

    line: int
    end_line: int
    values: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.values.get(column, "")


@dataclass(frozen=True)
class CsvFile:
    """A decoded, header-checked CSV file."""

    path: Path
    encoding: str
    columns: list[str]
    rows: list[CsvRow] = field(default_factory=list)
    checksum: str = ""


def decode_bytes(data: bytes, *, source: str | Path) -> tuple[str, str]:
    """Decode ``data`` as UTF-8 (with or without BOM) or GB18030; return ``(text, encoding)``.

    Parameters
    ----------
    data
        The file's bytes.
    source
        The file name, for the error.

    Raises
    ------
    ValidationError
        If the bytes are neither valid UTF-8 nor valid GB18030, naming the byte
        offset of the first bad byte; or if the file is UTF-16/32.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValidationError(
            "the file is UTF-16 (it starts with a UTF-16 byte order mark): save it as "
            "UTF-8 (CSV UTF-8 in Excel) or GB18030",
            file=source,
        )
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"the file starts with a UTF-8 byte order mark but byte offset "
                f"{exc.start + len(codecs.BOM_UTF8)} (0x{data[exc.start + 3]:02x}) is not "
                "valid UTF-8: the file mixes encodings; re-export it as UTF-8",
                file=source,
            ) from exc
    offsets: dict[str, int] = {}
    decoded: dict[str, str] = {}
    odd: dict[str, str] = {}
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            offsets[encoding] = exc.start
            continue
        bad = _first_unassigned(text)
        if bad is None:
            decoded[encoding] = text
        else:  # e.g. Big5 read as GB18030: valid bytes, private-use characters
            index, ch = bad
            offsets[encoding] = len(text[:index].encode(encoding))
            odd[encoding] = (
                f"U+{ord(ch):04X} ({unicodedata.category(ch)}, no character a person's name holds)"
            )
    if len(decoded) == 2:
        # Short GB18030 text can also be valid UTF-8 (GB "英" d3a2 reads as UTF-8 "Ӣ").
        # Keep UTF-8 unless its reading has characters a Chinese registry never holds
        # and the GB18030 reading has fewer.
        odd_utf8 = _implausible(decoded["utf-8"])
        if odd_utf8 and _implausible(decoded["gb18030"]) < odd_utf8:
            logger.warning(
                "%s is valid UTF-8 and valid GB18030; read as GB18030 (the UTF-8 reading "
                "has %d unlikely characters)",
                source,
                odd_utf8,
            )
            return decoded["gb18030"], "gb18030"
        return decoded["utf-8"], "utf-8"
    for encoding in ENCODINGS:
        if encoding in decoded:
            return decoded[encoding], encoding
    guess = _guess_encoding(data)
    hint = f" (it looks like {guess})" if guess else ""
    first = min(offsets.values())

    def why(encoding: str) -> str:
        if encoding in odd:
            return (
                f"decodes to the private-use or unassigned character {odd[encoding]}"
                f" at byte offset {offsets[encoding]}"
            )
        return f"bad byte at offset {offsets[encoding]}"

    raise ValidationError(
        f"the file is neither UTF-8 ({why('utf-8')}) nor GB18030 ({why('gb18030')}){hint}:"
        f" tried {', '.join(e.upper() for e in ENCODINGS)}; first bad byte 0x{data[first]:02x}"
        f" at offset {first}; re-export it as UTF-8 or GB18030"
        " (a Big5 file, from Taiwan or Hong Kong systems, must be converted first)",
        file=source,
    )


def _first_unassigned(text: str) -> tuple[int, str] | None:
    """Return the first private-use, surrogate or unassigned character and its index.

    Such characters come from a wrong decoding (Big5 bytes read as GB18030 give
    private-use characters), never from a name. CJK extension planes are
    allowed whatever this Python's Unicode tables say, for rare names.
    """
    for m in _BEYOND_BMP_BASICS.finditer(text):  # only these can be unassigned or private
        ch = m.group()
        if unicodedata.category(ch) in ("Co", "Cn", "Cs"):
            return m.start(), ch
    return None


#: Characters :func:`_first_unassigned` must look at (the others are assigned, not private).
_BEYOND_BMP_BASICS = re.compile("[^\\x00-\\u33ff\\U00020000-\\U000323af]")
#: The characters expected in a Chinese registry export.
_PLAUSIBLE = (
    "\\x00-\\x7e"  # ASCII
    "\\xa0-\\xff"  # Latin-1: accented Latin letters, °, µ, ·, ×
    "\\u03bc"  # Greek mu (µ written as μ)
    "\\u2000-\\u206f"  # general punctuation: – — ‘ ’ “ ” …
    "\\u3000-\\u303f"  # CJK symbols and punctuation: 、。《》
    "\\u3400-\\u4dbf"  # CJK ideographs extension A
    "\\u4e00-\\u9fff"  # CJK unified ideographs
    "\\uf900-\\ufaff"  # CJK compatibility ideographs
    "\\uff00-\\uffef"  # full-width forms: ，（）：
    "\\ufeff"  # byte order mark
    "\\U00020000-\\U0002fa1f"  # CJK extensions B-F (rare names)
)
_IMPLAUSIBLE = re.compile(f"[^{_PLAUSIBLE}]")


def _implausible(text: str) -> int:
    """Count characters unlikely in a Chinese registry file (Cyrillic, Greek, emoji ...)."""
    return sum(1 for _ in _IMPLAUSIBLE.finditer(text))


def _guess_encoding(data: bytes) -> str | None:
    """Return charset-normalizer's best guess for undecodable bytes (for the message only)."""
    import charset_normalizer

    best = charset_normalizer.from_bytes(data[: 1 << 20]).best()
    return str(best.encoding) if best is not None else None


def read_csv(
    path: str | Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> CsvFile:
    """Read a comma-separated file with a header row into :class:`CsvRow` objects.

    Values are stripped of surrounding white space; blank lines are skipped.

    Parameters
    ----------
    path
        The file.
    required
        Columns that must be in the header.
    optional
        Columns that may be in the header; any other column is an error.

    Returns
    -------
    CsvFile
        The rows with their line numbers, the encoding used and the SHA-256 of the bytes.

    Raises
    ------
    ValidationError
        If the file cannot be read or decoded, or is empty.
    ImportRejected
        If columns are missing, unknown or repeated, or rows have the wrong
        number of fields (every such problem is listed).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read the file: {exc.strerror}", file=path) from exc
    return parse_csv(data, path=path, required=required, optional=optional)


def parse_csv(
    data: bytes,
    *,
    path: str | Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> CsvFile:
    """Parse the bytes of a CSV file (an upload) as :func:`read_csv` parses a file.

    ``path`` names the file in problems and in the result; nothing is read from it.

    Raises
    ------
    ValidationError, ImportRejected
        As for :func:`read_csv`.
    """
    path = Path(path)
    text, encoding = decode_bytes(data, source=path)
    logger.debug("%s decoded as %s", path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValidationError(f"malformed CSV header: {exc}", file=path, line=1) from exc
    if header is None or not any(h.strip() for h in header):
        raise ValidationError(
            f"the file is empty: it needs a header row with the columns {', '.join(required)}",
            file=path,
            line=1,
        )
    columns = [h.strip() for h in header]
    problems = _header_problems(columns, required=required, optional=optional, path=path)
    if problems:
        raise ImportRejected(problems, file=path)
    rows = _read_rows(reader, columns, path=path)
    return CsvFile(
        path=path,
        encoding=encoding,
        columns=columns,
        rows=rows,
        checksum=hashlib.sha256(data).hexdigest(),
    )


def _header_problems(
    columns: list[str], *, required: Sequence[str], optional: Sequence[str], path: Path
) -> list[Problem]:
    """Problems of the header: a tab-separated file, missing, unknown or repeated columns."""
    problems: list[Problem] = []
    allowed = list(required) + [c for c in optional if c not in required]
    missing = [c for c in required if c not in columns]
    unknown = [c for c in columns if c not in allowed]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if len(columns) == 1 and "\t" in columns[0]:
        problems.append(
            Problem(
                "the header has tabs but no commas: the file is tab-separated; "
                "save it as comma-separated CSV",
                file=str(path),
                line=1,
            )
        )
        return problems
    if missing:
        problems.append(
            Problem(
                f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                f"(the header must have: {', '.join(required)})",
                file=str(path),
                line=1,
            )
        )
    if unknown:
        problems.append(
            Problem(
                f"unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                f"(allowed: {', '.join(allowed)}); check the spelling or remove them",
                file=str(path),
                line=1,
            )
        )
    if repeated:
        problems.append(
            Problem(
                f"repeated column{'s' if len(repeated) > 1 else ''}: {', '.join(repeated)}",
                file=str(path),
                line=1,
            )
        )
    return problems


def _read_rows(reader: Reader, columns: list[str], *, path: Path) -> list[CsvRow]:
    """Read the data rows after the header; raise :class:`ImportRejected` listing bad ones."""
    problems: list[Problem] = []
    rows: list[CsvRow] = []
    last_line = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(
                Problem(
                    f"malformed CSV: {exc} (an unclosed quote?)",
                    file=str(path),
                    line=last_line + 1,
                )
            )
            break
        start = last_line + 1
        last_line = reader.line_num
        if not any(v.strip() for v in record):
            continue
        if len(record) != len(columns):
            problems.append(
                Problem(
                    f"the row has {len(record)} fields but the header has {len(columns)}: "
                    "quote values that contain commas",
                    file=str(path),
                    line=start,
                )
            )
            continue
        rows.append(
            CsvRow(start, last_line, {c: v.strip() for c, v in zip(columns, record, strict=True)})
        )
    if problems:
        raise ImportRejected(problems, file=path)
    return rows
