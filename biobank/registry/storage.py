"""Storage positions: freezer, rack, box and position, in one normal form.

A specimen in storage has all four parts or none. Positions are compared and
stored in the form :func:`normalise_location` gives (upper case; a well's number
without leading zeros), so that two spellings of one place cannot both be taken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import duckdb

from biobank.core.errors import Problem

__all__ = [
    "LOCATION_SQL",
    "STORAGE_FIELDS",
    "check_location",
    "normalise_location",
    "occupied_positions",
]

_POSITION = re.compile(r"^([A-Z]{1,2}[0-9]{1,3}|[0-9]{1,4})$")
_LOCATION_PART = re.compile(r"^[\w.-]{1,32}$")
STORAGE_FIELDS = ("freezer", "rack", "box", "position")


def normalise_location(loc: Mapping[str, str]) -> dict[str, str]:
    """Return a storage position in the one form it is stored and compared in.

    Freezer, rack and box are upper-cased; a well loses leading zeros in its
    number (``a01`` -> ``A1``) and a numbered position too (``007`` -> ``7``),
    so that ``f01,r01,b01,a1`` and ``F01,R01,B01,A01`` name the same place.

    >>> normalise_location({"freezer": "f01", "rack": "r01", "box": "b01", "position": "a01"})
    {'freezer': 'F01', 'rack': 'R01', 'box': 'B01', 'position': 'A1'}
    """
    out = {f: str(loc.get(f, "") or "").strip().upper() for f in STORAGE_FIELDS}
    well = re.fullmatch(r"([A-Z]{1,2})0*([0-9]{1,3})", out["position"])
    if well:
        out["position"] = f"{well.group(1)}{int(well.group(2))}"
    elif out["position"].isdigit():
        out["position"] = str(int(out["position"]))
    return out


#: SQL for the normalised form of a stored position's columns (see :func:`normalise_location`)
LOCATION_SQL = (
    "upper(freezer)",
    "upper(rack)",
    "upper(box)",
    "CASE WHEN regexp_matches(upper(position), '^[0-9]+$')"
    " THEN CAST(CAST(position AS BIGINT) AS VARCHAR)"
    " ELSE regexp_replace(upper(position), '^([A-Z]{1,2})0*([0-9])', '\\1\\2') END",
)


def check_location(loc: Mapping[str, str]) -> list[Problem]:
    """Check a storage position: all of freezer, rack, box, position or none, well-formed.

    Returns
    -------
    list of Problem
        Empty when the position is fine (or absent).
    """
    problems: list[Problem] = []
    if any(loc.values()) and not all(loc.values()):
        missing = [f for f in STORAGE_FIELDS if not loc.get(f)]
        problems.append(
            Problem(
                "a storage position needs freezer, rack, box and position; "
                f"missing {', '.join(missing)}",
                field=missing[0],
                value="",
            )
        )
    elif all(loc.values()):
        if not _POSITION.match(loc["position"].upper()):
            problems.append(
                Problem(
                    "position is a well like A1 or H12, or a number 1-9999",
                    field="position",
                    value=loc["position"],
                )
            )
        for f in ("freezer", "rack", "box"):
            if not _LOCATION_PART.match(loc[f]):
                problems.append(
                    Problem(
                        f"{f} is letters, digits, '_', '.' or '-' (at most 32)",
                        field=f,
                        value=loc[f],
                    )
                )
    return problems


def occupied_positions(
    con: duckdb.DuckDBPyConnection, *, boxes: Iterable[tuple[str, str, str]] | None = None
) -> dict[tuple[str, ...], str]:
    """(freezer, rack, box, position) -> label of every stored specimen in storage.

    Parameters
    ----------
    boxes
        Only these (normalised) freezer/rack/box triples; all when ``None``
        (an import of 10,000 rows need not read 500,000 stored places).
    """
    sql = f"SELECT {', '.join(LOCATION_SQL)}, label FROM specimen WHERE freezer IS NOT NULL"
    params: list[object] = []
    if boxes is not None:
        wanted = sorted({"/".join(b) for b in boxes})
        if not wanted:
            return {}
        sql += f" AND concat_ws('/', {', '.join(LOCATION_SQL[:3])}) IN (SELECT unnest(?))"
        params.append(wanted)
    return {(r[0], r[1], r[2], r[3]): r[4] for r in con.execute(sql, params).fetchall()}
