"""Aliquots and derivatives of a specimen, made in one action, and its lineage tree.

:func:`aliquot_specimen` splits a parent into N children in one transaction:
labels are allocated from the parent's prefix (:func:`next_labels`, each with
its MOD 37-36 check character), every child is checked by the same rules as a
registered specimen (:func:`~biobank.registry.specimens.check_specimens`: the
children together cannot hold more than is left of the parent, one specimen
per position ...), and either all N are stored or none. A child of another type
is a derivative (blood -> buffy coat -> DNA); only the types of
:data:`~biobank.registry.vocab.DERIVATIONS` may be derived. A parent all of
whose quantity went into children becomes ``consumed`` and leaves its position.

:func:`specimen_lineage` returns the ancestors and descendants of a specimen as
a tree (:class:`LineageNode`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import (
    ConflictError,
    ImportRejected,
    Problem,
    ValidationError,
)
from biobank.core.ids import make_label
from biobank.registry.inventory import (
    _load,
    consume_specimen,
    load_visible,
    remaining_quantity,
)
from biobank.registry.specimens import (
    LOCAL_TZ,
    SpecimenRecord,
    check_specimens,
    in_base,
    participant_birth_date,
    validate_specimen_fields,
    write_specimens,
)
from biobank.registry.storage import STORAGE_FIELDS
from biobank.registry.vocab import DERIVATIONS, SPECIMEN_TYPES, UNITS, normalise_unit

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_ALIQUOTS",
    "LineageNode",
    "aliquot_specimen",
    "label_prefix",
    "next_labels",
    "specimen_lineage",
]

#: The most children one action makes (a 96-well plate).
MAX_ALIQUOTS = 96
#: Prefix of new labels when the parent's label has no ``<letters><7 digits><check>`` shape.
DEFAULT_PREFIX = "BB"
_WIDTH = 7
_SHAPE = re.compile(rf"^([A-Z]+)\d{{{_WIDTH}}}[0-9A-Z]$")


def label_prefix(label: str) -> str:
    """Return the letters that start a ``make_label`` label (``BB0000001N`` -> ``BB``).

    Examples
    --------
    >>> label_prefix("BB0000001N"), label_prefix("X12")
    ('BB', 'BB')
    """
    m = _SHAPE.match(label)
    return m.group(1) if m else DEFAULT_PREFIX


def next_labels(con: duckdb.DuckDBPyConnection, prefix: str, count: int) -> list[str]:
    """Return ``count`` unused labels ``<prefix><serial><check>`` after the highest serial.

    Raises
    ------
    ConflictError
        If the prefix's serials are used up.
    """
    prefix = prefix.upper()
    shape = re.compile(rf"{re.escape(prefix)}(\d{{{_WIDTH}}})[0-9A-Z]")
    # the greatest label of the shape's length after the prefix and a digit is (nearly
    # always) the highest serial; only when it is of another shape scan with the pattern
    row = con.execute(
        "SELECT max(label) FROM specimen WHERE label >= ? AND label < ? AND length(label) = ?",
        [prefix + "0", prefix + ":", len(prefix) + _WIDTH + 1],
    ).fetchone()
    top = row[0] if row else None
    m = shape.fullmatch(top) if top else None
    if top is not None and m is None:
        row = con.execute(
            "SELECT max(label) FROM specimen WHERE regexp_full_match(label, ?)", [shape.pattern]
        ).fetchone()
        m = shape.fullmatch(row[0]) if row and row[0] else None
    start = int(m.group(1)) + 1 if m else 1
    if start + count - 1 >= 10**_WIDTH:
        raise ConflictError(f"labels with prefix {prefix} are used up (serial {start - 1})")
    return [make_label(prefix, serial, width=_WIDTH) for serial in range(start, start + count)]


def _check_request(count: int, quantity: float, reason: str) -> None:
    if not isinstance(count, int) or not 1 <= count <= MAX_ALIQUOTS:
        raise ValidationError(
            f"the number of aliquots must be a whole number from 1 to {MAX_ALIQUOTS}",
            field="count",
            value=str(count),
        )
    if not (quantity > 0) or not math.isfinite(quantity):
        raise ValidationError(
            "quantity must be a positive number (e.g. 0.5)", field="quantity", value=str(quantity)
        )
    if not reason.strip():
        raise ValidationError(
            "give the reason for the change (kept with the event)", field="reason"
        )


def _child_type(parent: Mapping[str, Any], specimen_type: str | None) -> str:
    """The children's type: the parent's (an aliquot) or a permitted derivative."""
    ptype = str(parent["specimen_type"])
    ctype = (specimen_type or ptype).strip().lower()
    if ctype == ptype:
        return ctype
    if ctype not in SPECIMEN_TYPES:
        raise ValidationError(
            f"specimen_type is not one of: {', '.join(SPECIMEN_TYPES)}",
            field="specimen_type",
            value=ctype,
        )
    allowed = DERIVATIONS.get(ptype, frozenset())
    if ctype not in allowed:
        can = ", ".join(sorted(allowed)) or "none"
        raise ValidationError(
            f"a {ctype} specimen cannot be derived from {ptype} (derivatives of {ptype}: {can})",
            field="specimen_type",
            value=ctype,
        )
    return ctype


def _check_fits(
    con: duckdb.DuckDBPyConnection, parent: Mapping[str, Any], count: int, qty: float, unit: str
) -> None:
    """N children measured like the parent cannot together hold more than is left of it."""
    dim, each = in_base(qty, unit)
    punit = str(parent["unit"])
    if dim != UNITS[punit].dimension:
        return
    left = remaining_quantity(con, parent)
    need = count * each / UNITS[punit].factor
    if need > left + 1e-9:
        raise ValidationError(
            f"{count} x {qty:g} {unit} = {need:g} {punit} is more than the {left:g} {punit} "
            f"left of {parent['label']}: make fewer or smaller aliquots",
            field="quantity",
            value=f"{qty:g}",
        )


def _child_values(
    label: str,
    parent: Mapping[str, Any],
    ctype: str,
    when: str,
    qty: float,
    unit: str,
    position: Mapping[str, str] | None,
) -> dict[str, str]:
    site = parent["anatomical_site"] if SPECIMEN_TYPES[ctype].tissue else None
    return {
        "label": label,
        "parent_label": str(parent["label"]),
        "specimen_type": ctype,
        "collected_at": when,
        "anatomical_site": site or "",
        "quantity": repr(float(qty)),
        "unit": unit,
        "status": "available",
        **{f: str((position or {}).get(f, "") or "") for f in STORAGE_FIELDS},
    }


def aliquot_specimen(
    store: Store,
    principal: Principal,
    parent_label: str,
    *,
    count: int,
    quantity: float,
    unit: str | None = None,
    specimen_type: str | None = None,
    collected_at: str | dt.datetime | None = None,
    positions: Sequence[Mapping[str, str] | None] | None = None,
    parent_used: float | None = None,
    reason: str = "aliquoted",
) -> list[SpecimenRecord]:
    """Make ``count`` children of ``quantity`` each from an available parent, all or none.

    Parameters
    ----------
    store, principal
        The store and who acts (``registry_write``).
    parent_label
        The parent's label (its check character is verified).
    count
        How many children (1 to :data:`MAX_ALIQUOTS`).
    quantity, unit
        The quantity of each child; the unit defaults to the parent's.
    specimen_type
        The children's type: the parent's (an aliquot, the default) or a
        derivative permitted by :data:`~biobank.registry.vocab.DERIVATIONS`.
    collected_at
        When the children were made (default now, Beijing time); not before the parent.
    positions
        One storage position (``freezer``, ``rack``, ``box``, ``position``) or
        ``None`` per child, or ``None`` for children not yet stored.
    parent_used
        For a derivative measured otherwise than the parent (DNA in µg from a
        buffy coat in mL): how much of the parent, in its unit, the extraction used.
    reason
        Kept with every event.

    Returns
    -------
    list of SpecimenRecord
        The children, in label order.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the parent is unknown.
    ConflictError
        If the parent is not available, or holds less than ``parent_used``.
    ValidationError
        For a bad count, quantity, unit or type, or children that together hold
        more than is left of the parent.
    ImportRejected
        Listing every problem of the children (taken positions, collection time ...).
    """
    require(principal, Permission.REGISTRY_WRITE)
    _check_request(count, quantity, reason)
    if positions is not None and len(positions) != count:
        raise ValidationError(
            f"give one position per aliquot: {len(positions)} positions for {count} aliquots",
            field="position",
        )
    with store.transaction() as con:
        parent = _load(con, parent_label)
        if parent["status"] != "available":
            raise ConflictError(f"specimen {parent['label']} is {parent['status']}, not available")
        ctype = _child_type(parent, specimen_type)
        cunit = normalise_unit(unit or str(parent["unit"]))
        _check_fits(con, parent, count, quantity, cunit)
        if collected_at is None:
            collected_at = dt.datetime.now(LOCAL_TZ).replace(tzinfo=None, second=0, microsecond=0)
        when = collected_at.isoformat() if isinstance(collected_at, dt.datetime) else collected_at
        labels = next_labels(con, label_prefix(str(parent["label"])), count)
        records: list[tuple[int | None, SpecimenRecord]] = []
        problems: list[Problem] = []
        for i, label in enumerate(labels):
            pos = positions[i] if positions is not None else None
            values = _child_values(label, parent, ctype, when, quantity, cunit, pos)
            rec, found = validate_specimen_fields(values, str(parent["participant_id"]))
            problems.extend(found)
            if rec is not None:
                records.append((None, rec))
        if problems:
            raise ImportRejected(problems)
        birth = participant_birth_date(store, con, str(parent["participant_id"]))
        todo, problems = check_specimens(
            con, records, birth_dates={str(parent["participant_id"]): birth} if birth else {}
        )
        if problems:
            raise ImportRejected(problems)
        write_specimens(con, principal, todo, reason=reason)
        for rec in todo:
            audit.record(
                con,
                principal,
                "specimen.create",
                rec.label,
                {
                    "participant_id": rec.participant_id,
                    "parent": rec.parent_label,
                    "reason": reason,
                },
            )
        audit.record(
            con,
            principal,
            "specimen.aliquot",
            str(parent["label"]),
            {"children": labels, "type": ctype, "quantity": quantity, "unit": cunit},
        )
        if parent_used is not None:
            consume_specimen(store, principal, parent["label"], reason=reason, quantity=parent_used)
        elif remaining_quantity(con, parent) <= 1e-9:
            consume_specimen(store, principal, parent["label"], reason=f"{reason}: nothing left")
    return [rec for _line, rec in records]


@dataclass
class LineageNode:
    """One specimen of a lineage tree and the children shown under it."""

    label: str
    specimen_type: str
    status: str
    quantity: float
    unit: str
    remaining: float
    current: bool = False
    children: list[LineageNode] = field(default_factory=list)


def _remaining(row: Mapping[str, Any], children: Sequence[Mapping[str, Any]]) -> float:
    """What is left of ``row`` (as :func:`~biobank.registry.inventory.remaining_quantity`)."""
    dim, total = in_base(float(row["quantity"]), str(row["unit"]))
    _, used = in_base(float(row["consumed_quantity"]), str(row["unit"]))
    taken = 0.0
    for c in children:
        cdim, amount = in_base(float(c["quantity"]), str(c["unit"]))
        if cdim == dim:
            taken += amount
    return max(total - used - taken, 0.0) / UNITS[str(row["unit"])].factor


_LINEAGE_COLUMNS = "label, parent_label, specimen_type, status, quantity, unit, consumed_quantity"


def _family(con: duckdb.DuckDBPyConnection, participant_id: str) -> dict[str, dict[str, Any]]:
    """Every specimen of a participant (a lineage never leaves its participant), by label."""
    cur = con.execute(
        f"SELECT {_LINEAGE_COLUMNS} FROM specimen WHERE participant_id = ?", [participant_id]
    )
    names = [d[0] for d in cur.description]
    return {str(r[0]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def specimen_lineage(store: Store, principal: Principal, label: str) -> LineageNode:
    """Return the tree from the specimen's first ancestor down to it, then all it gave.

    Siblings of the specimen and of its ancestors are left out: the tree shows
    where it came from and what was made of it.

    Raises
    ------
    AccessDenied
        For a role that reads neither the registry nor research data.
    NotFoundError
        If the label is unknown.
    ConsentError
        For a researcher whose purpose the participant's consent does not permit.
    """
    with store.transaction() as con:
        spec = load_visible(con, principal, label)
        family = _family(con, str(spec["participant_id"]))
        kids: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(family.values(), key=lambda r: str(r["label"])):
            if row["parent_label"]:
                kids.setdefault(str(row["parent_label"]), []).append(row)

        def node(row: Mapping[str, Any]) -> LineageNode:
            return LineageNode(
                label=str(row["label"]),
                specimen_type=str(row["specimen_type"]),
                status=str(row["status"]),
                quantity=float(row["quantity"]),
                unit=str(row["unit"]),
                remaining=_remaining(row, kids.get(str(row["label"]), [])),
                current=row["label"] == spec["label"],
            )

        me = node(family[spec["label"]])
        todo, count, seen = [me], 1, {me.label}
        while todo:  # descendants (seen: a cycle edited into the table cannot loop)
            cur = todo.pop()
            for row in kids.get(cur.label, []):
                if row["label"] in seen:
                    continue
                seen.add(str(row["label"]))
                child = node(row)
                cur.children.append(child)
                todo.append(child)
                count += 1
        top, parent = me, spec["parent_label"]
        while parent and parent not in seen:
            seen.add(parent)
            up = family.get(parent)
            above = node(up if up is not None else _load(con, parent))
            if up is None:  # a parent of another participant, from before the rule
                up = _load(con, parent)
                above.remaining = remaining_quantity(con, up)
            above.children.append(top)
            top, parent = above, up["parent_label"]
            count += 1
        audit.record(con, principal, "specimen.lineage", me.label, {"nodes": count})
    return top
