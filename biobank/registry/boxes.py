"""Freezers, racks and boxes: what each holds, the box as a grid, and moving many at once.

A box exists while a specimen is stored in it (there is no table of boxes). Its
grid is drawn from :func:`box_layout`: wells ``A1``..``I9`` (a 9 x 9 cryobox)
unless a stored well lies further out, which widens the grid to hold it; a box
holding only numbered positions is drawn nine to a row (``1``..``81``, more
rows when needed). Positions are compared in the normal form of
:func:`biobank.registry.storage.normalise_location`.

:func:`move_specimens` moves several specimens in one transaction, all or
nothing, each move through :func:`biobank.registry.inventory.move_specimen` (so
one event and one ``specimen.move`` audit entry per specimen); it checks the
whole batch first and names every collision.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConflictError, NotFoundError, ValidationError
from biobank.core.ids import validate_label
from biobank.registry.inventory import move_specimen
from biobank.registry.storage import (
    LOCATION_SQL,
    STORAGE_FIELDS,
    check_location,
    normalise_location,
)

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "BoxLayout",
    "box_contents",
    "box_layout",
    "move_specimens",
    "plan_moves",
    "storage_units",
]

#: Rows and columns of a box with no specimen outside them (a 9 x 9 cryobox).
DEFAULT_ROWS = 9
DEFAULT_COLUMNS = 9
_WELL = re.compile(r"([A-Z]{1,2})([0-9]{1,3})")
_ROW_NAMES = list(string.ascii_uppercase) + [a + b for a in "AB" for b in string.ascii_uppercase]


@dataclass(frozen=True)
class BoxLayout:
    """The grid of a box: row names (``A``, ``B`` ... or ``""`` for numbered boxes), columns."""

    rows: tuple[str, ...]
    columns: int
    numbered: bool

    def position(self, row: int, column: int) -> str:
        """The normalised position of the 0-based (row, column) cell."""
        if self.numbered:
            return str(row * self.columns + column + 1)
        return f"{self.rows[row]}{column + 1}"

    def positions(self) -> list[str]:
        """Every position of the grid, row by row."""
        return [self.position(r, c) for r in range(len(self.rows)) for c in range(self.columns)]


def box_layout(positions: Iterable[str]) -> BoxLayout:
    """Return the grid that holds every (normalised) position of a box.

    >>> box_layout(["A1", "C12"]).columns, len(box_layout(["A1", "C12"]).rows)
    (12, 9)
    >>> box_layout(["5", "90"]).numbered, len(box_layout(["5", "90"]).rows)
    (True, 10)
    """
    rows, columns, numbered_max, wells = DEFAULT_ROWS, DEFAULT_COLUMNS, 0, False
    for pos in positions:
        m = _WELL.fullmatch(pos)
        if m:
            wells = True
            name = m.group(1)
            index = _ROW_NAMES.index(name) if name in _ROW_NAMES else len(_ROW_NAMES) - 1
            rows = max(rows, index + 1)
            columns = max(columns, int(m.group(2)))
        elif pos.isdigit():
            numbered_max = max(numbered_max, int(pos))
    if numbered_max and not wells:
        n_rows = max(DEFAULT_ROWS, -(-numbered_max // DEFAULT_COLUMNS))
        return BoxLayout(tuple("" for _ in range(n_rows)), DEFAULT_COLUMNS, True)
    return BoxLayout(tuple(_ROW_NAMES[:rows]), columns, False)


def storage_units(
    store: Store, principal: Principal, *, freezer: str | None = None, rack: str | None = None
) -> list[dict[str, Any]]:
    """List the freezers, the racks of ``freezer``, or the boxes of ``freezer``/``rack``.

    Returns
    -------
    list of dict
        ``name`` (the unit, normalised), ``racks`` and ``boxes`` (how many below it,
        where that applies) and ``occupied`` (stored specimens), sorted by name.

    Raises
    ------
    AccessDenied
        Without ``registry_read``.
    """
    require(principal, Permission.REGISTRY_READ)
    fz, rk, bx, _pos = LOCATION_SQL
    where, params = ["freezer IS NOT NULL"], []
    if freezer is not None:
        where.append(f"{fz} = ?")
        params.append(freezer.strip().upper())
    if rack is not None:
        where.append(f"{rk} = ?")
        params.append(rack.strip().upper())
    level = fz if freezer is None else rk if rack is None else bx
    sql = (
        f"SELECT {level} AS name, count(DISTINCT {rk}) AS racks,"
        f" count(DISTINCT ({rk}, {bx})) AS boxes, count(*) AS occupied"
        f" FROM specimen WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1"
    )
    cur = store.con.cursor()
    cur.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def box_contents(
    store: Store, principal: Principal, freezer: str, rack: str, box: str
) -> dict[str, Any]:
    """Return a box drawn as a grid: every cell with its position and specimen (or none).

    The read is audited (``storage.box.read``, the box as target).

    Returns
    -------
    dict
        ``freezer``, ``rack``, ``box`` (normalised), ``layout`` (:class:`BoxLayout`),
        ``grid`` (rows of cells: ``position`` and ``specimen``, a dict of ``label``,
        ``specimen_type``, ``participant_id``, ``collected_at``, or ``None``),
        ``others`` (specimens at positions outside the grid's kind), ``occupied``
        and ``free`` (counts of the grid's cells).

    Raises
    ------
    AccessDenied
        Without ``registry_read``.
    """
    require(principal, Permission.REGISTRY_READ)
    where = {"freezer": freezer, "rack": rack, "box": box, "position": "A1"}
    loc = normalise_location(where)
    fz, rk, bx, pos = LOCATION_SQL
    with store.transaction() as con:
        rows = con.execute(
            f"SELECT {pos} AS position, label, specimen_type, participant_id, collected_at"
            f" FROM specimen WHERE freezer IS NOT NULL AND {fz} = ? AND {rk} = ? AND {bx} = ?",
            [loc["freezer"], loc["rack"], loc["box"]],
        ).fetchall()
        audit.record(
            con,
            principal,
            "storage.box.read",
            f"{loc['freezer']}/{loc['rack']}/{loc['box']}",
            {"specimens": len(rows)},
        )
    held = {
        r[0]: {
            "label": r[1],
            "specimen_type": r[2],
            "participant_id": r[3],
            "collected_at": r[4],
        }
        for r in rows
    }
    layout = box_layout(held)
    grid = [
        [
            {"position": layout.position(r, c), "specimen": held.get(layout.position(r, c))}
            for c in range(layout.columns)
        ]
        for r in range(len(layout.rows))
    ]
    in_grid = set(layout.positions())
    others = [{"position": p, **s} for p, s in sorted(held.items()) if p not in in_grid]
    occupied = len(held) - len(others)
    return {
        "freezer": loc["freezer"],
        "rack": loc["rack"],
        "box": loc["box"],
        "layout": layout,
        "grid": grid,
        "others": others,
        "occupied": occupied,
        "free": len(in_grid) - occupied,
    }


def _held(store: Store, freezer: str, rack: str, box: str) -> dict[str, str]:
    """Normalised position -> label of the specimens stored in one (normalised) box."""
    fz, rk, bx, pos = LOCATION_SQL
    return dict(
        store.con.execute(
            f"SELECT {pos}, label FROM specimen WHERE freezer IS NOT NULL"
            f" AND {fz} = ? AND {rk} = ? AND {bx} = ?",
            [freezer, rack, box],
        ).fetchall()
    )


def plan_moves(
    store: Store,
    principal: Principal,
    labels: Sequence[str],
    *,
    freezer: str,
    rack: str,
    box: str,
    positions: Sequence[str] = (),
) -> list[dict[str, str]]:
    """Pair specimens with positions of a target box: the given ones, else the first free ones.

    Parameters
    ----------
    labels
        The specimens to move, in order.
    positions
        One position per label, in the same order; empty to take the first free
        positions of the box's grid (:func:`box_layout`) row by row.

    Returns
    -------
    list of dict
        One move per label (``label``, ``freezer``, ``rack``, ``box``, ``position``),
        ready for :func:`move_specimens`.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError
        If no specimen is given, the number of positions differs from the number
        of specimens, or the box is malformed.
    ConflictError
        If the box has fewer free positions than specimens.
    """
    require(principal, Permission.REGISTRY_WRITE)
    if not labels:
        raise ValidationError("select at least one specimen to move", field="label")
    target = {"freezer": freezer, "rack": rack, "box": box, "position": "A1"}
    problems = check_location(target)
    if problems:
        p = problems[0]
        raise ValidationError(p.message, field=p.field, value=p.value)
    loc = normalise_location(target)
    chosen = [p.strip() for p in positions if p.strip()]
    if chosen and len(chosen) != len(labels):
        raise ValidationError(
            f"{len(labels)} specimens selected but {len(chosen)} positions given: give one "
            "position per specimen, in order, or none to fill the first free positions",
            field="positions",
            value=", ".join(chosen),
        )
    if not chosen:
        held = _held(store, loc["freezer"], loc["rack"], loc["box"])
        free = [p for p in box_layout(held).positions() if p not in held]
        if len(free) < len(labels):
            raise ConflictError(
                f"box {loc['freezer']}/{loc['rack']}/{loc['box']} has {len(free)} free "
                f"positions, fewer than the {len(labels)} specimens selected: choose another box"
            )
        chosen = free[: len(labels)]
    return [
        {"label": label, **{f: loc[f] for f in STORAGE_FIELDS[:3]}, "position": pos}
        for label, pos in zip(labels, chosen, strict=True)
    ]


def _check_batch(store: Store, moves: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Validate and normalise a batch of moves; raise naming every problem found."""
    seen: dict[str, int] = {}
    targets: dict[tuple[str, ...], str] = {}
    clashes: list[str] = []
    out: list[dict[str, str]] = []
    for i, move in enumerate(moves, start=1):
        label = validate_label(str(move.get("label", "")))
        if label in seen:
            raise ValidationError(
                f"specimen {label} is selected twice (moves {seen[label]} and {i})",
                field="label",
                value=label,
            )
        seen[label] = i
        loc = {f: str(move.get(f, "") or "") for f in STORAGE_FIELDS}
        problems = check_location(loc)
        if problems or not all(loc.values()):
            message = problems[0].message if problems else "give freezer, rack, box and position"
            raise ValidationError(
                f"move of {label}: {message}",
                field=problems[0].field if problems else "position",
                value=problems[0].value if problems else "",
            )
        loc = normalise_location(loc)
        key = tuple(loc[f] for f in STORAGE_FIELDS)
        if key in targets:
            clashes.append(f"{'/'.join(key)} is the target of both {targets[key]} and {label}")
        targets[key] = label
        out.append({"label": label, **loc})
    found = dict(
        store.con.execute(
            "SELECT label, status FROM specimen WHERE label IN (SELECT unnest(?))", [list(seen)]
        ).fetchall()
    )
    missing = [label for label in seen if label not in found]
    if missing:
        raise NotFoundError(f"no specimen with label {', '.join(missing)}")
    for box in sorted({key[:3] for key in targets}):
        held = _held(store, *box)
        for position, holder in sorted(held.items()):
            key = (*box, position)
            mover = targets.get(key)
            if mover is None:
                continue
            if holder == mover:
                clashes.append(f"{mover} is already at {'/'.join(key)}")
            else:
                clashes.append(
                    f"{'/'.join(key)} is already taken by {holder} (wanted for {mover})"
                    + (": move it out first, in another step" if holder in seen else "")
                )
    for label, status in found.items():
        if status != "available":
            clashes.append(f"specimen {label} is {status}: only available specimens are stored")
    if clashes:
        shown = "; ".join(clashes[:20]) + (
            f" ... ({len(clashes)} in all)" if len(clashes) > 20 else ""
        )
        raise ConflictError(f"nothing was moved: {shown}; one specimen per position")
    return out


def move_specimens(
    store: Store,
    principal: Principal,
    moves: Sequence[Mapping[str, str]],
    *,
    reason: str,
) -> list[dict[str, Any]]:
    """Move several specimens in one transaction: all of them or none.

    Parameters
    ----------
    moves
        Each with ``label``, ``freezer``, ``rack``, ``box`` and ``position``
        (:func:`plan_moves` builds them).
    reason
        Why (kept with every move's event and audit entry).

    Returns
    -------
    list of dict
        The moved specimens, in the order of ``moves``.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError
        For no moves, a specimen given twice, a malformed position or no reason.
    NotFoundError
        Naming every unknown label.
    ConflictError
        Naming every collision: two specimens for one position, a position
        already taken (also by a specimen of the batch), a specimen already
        there or not available. Nothing is moved.
    """
    require(principal, Permission.REGISTRY_WRITE)
    if not reason.strip():
        raise ValidationError(
            "give the reason for the change (kept with the event)", field="reason"
        )
    if not moves:
        raise ValidationError("select at least one specimen to move", field="label")
    with store.transaction():
        checked = _check_batch(store, moves)
        return [
            move_specimen(
                store,
                principal,
                m["label"],
                freezer=m["freezer"],
                rack=m["rack"],
                box=m["box"],
                position=m["position"],
                reason=reason,
            )
            for m in checked
        ]
