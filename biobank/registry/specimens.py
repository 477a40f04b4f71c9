"""Specimens: registration, lineage, storage positions, consumption, shipping, sequencing links.

A specimen has a label with a check character (:func:`biobank.core.ids.make_label`,
printable as a Code 128 barcode with :func:`label_barcode_svg`), a type from
:data:`biobank.registry.vocab.SPECIMEN_TYPES`, a collection time, an anatomical site
(required for tissue), a quantity and unit, a status and at most one storage
position (freezer / rack / box / position, one specimen per position). A
specimen made from another (aliquot or derivative: blood -> buffy coat -> DNA)
names it as parent; the aliquots of a parent measured in the same dimension
(volume or mass) cannot add up to more than the parent holds.

Rules checked before anything is written (:func:`check_specimens`, used by the
API and by the CSV import alike): unique labels and sequencing sample ids, a
known participant, collection not before birth nor in the future nor before
the parent's, a parent of the same participant, one specimen per position,
only available specimens in a position, sequencing links only for nucleic-acid
specimens.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import (
    ImportRejected,
    Problem,
    ValidationError,
)
from biobank.core.ids import center_key, validate_label
from biobank.registry import events
from biobank.registry.recontact import decrypt_identifiers
from biobank.registry.storage import (
    STORAGE_FIELDS,
    check_location,
    normalise_location,
    occupied_positions,
)
from biobank.registry.vocab import (
    NUCLEIC_ACID_TYPES,
    SPECIMEN_STATUSES,
    SPECIMEN_TYPES,
    STATUS_ALIASES,
    UNITS,
    normalise_unit,
)

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "SpecimenRecord",
    "add_specimen",
    "check_location",
    "check_specimens",
    "in_base",
    "parse_collected_at",
    "participant_birth_date",
    "validate_specimen_fields",
    "with_lines",
    "write_specimens",
]

logger = logging.getLogger(__name__)

#: Local time zone of collection times given with an offset.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SpecimenRecord:
    """A specimen as validated field by field (cross-record rules come later)."""

    label: str
    participant_id: str
    parent_label: str | None
    specimen_type: str
    collected_at: dt.datetime
    anatomical_site: str | None
    quantity: float
    unit: str
    status: str
    freezer: str | None
    rack: str | None
    box: str | None
    position: str | None
    sequencing_sample_id: str | None = None

    def row(self) -> dict[str, Any]:
        """Columns of table ``specimen`` set at creation (without timestamps)."""
        return {
            "label": self.label,
            "participant_id": self.participant_id,
            "parent_label": self.parent_label,
            "specimen_type": self.specimen_type,
            "collected_at": self.collected_at,
            "anatomical_site": self.anatomical_site,
            "quantity": self.quantity,
            "unit": self.unit,
            "consumed_quantity": 0.0,
            "status": self.status,
            "freezer": self.freezer,
            "rack": self.rack,
            "box": self.box,
            "position": self.position,
            "shipped_to": None,
        }

    @property
    def location(self) -> tuple[str, str, str, str] | None:
        """``(freezer, rack, box, position)`` or ``None`` if not stored."""
        if self.freezer is None:
            return None
        assert self.rack is not None
        assert self.box is not None
        assert self.position is not None
        return (self.freezer, self.rack, self.box, self.position)


def parse_collected_at(value: str, *, field: str = "collected_at") -> dt.datetime:
    """Parse an ISO date-time (``2024-03-15T08:30``, seconds optional, offset optional).

    A time with an offset is converted to Beijing time; the store keeps local times.

    Raises
    ------
    ValidationError
        If the value is not an ISO date-time.
    """
    text = (value or "").strip()
    try:
        if not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
            raise ValueError(text)
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            "not an ISO date-time YYYY-MM-DDTHH:MM[:SS] (e.g. 2024-03-15T08:30)",
            field=field,
            value=value,
        ) from exc
    if when.tzinfo is not None:
        when = when.astimezone(LOCAL_TZ).replace(tzinfo=None)
    return when


def _bad(problems: list[Problem], message: str, fld: str, value: object) -> None:
    problems.append(Problem(message, field=fld, value=None if value is None else str(value)))


def _attempt(
    problems: list[Problem], values: Mapping[str, str], fn: Callable[[], Any], fld: str
) -> Any:
    """Return ``fn()``, or note its problem (with the given value of ``fld``) and return None."""
    try:
        return fn()
    except ValidationError as exc:
        _bad(problems, exc.problem.message, fld, values.get(fld, ""))
        return None


def _check_labels(
    values: Mapping[str, str], problems: list[Problem]
) -> tuple[str | None, str | None]:
    """Return the checked label and parent label (``None`` when absent or bad)."""
    label = _attempt(problems, values, lambda: validate_label(values.get("label", "")), "label")
    parent = None
    if values.get("parent_label", ""):
        parent = _attempt(
            problems,
            values,
            lambda: validate_label(values["parent_label"], field="parent_label"),
            "parent_label",
        )
        if parent is not None and parent == label:
            _bad(problems, "a specimen cannot be its own parent", "parent_label", parent)
    return label, parent


def _check_quantity_text(values: Mapping[str, str], problems: list[Problem]) -> float | None:
    """Return the quantity if it is a positive finite number."""
    qtext = values.get("quantity", "").strip()
    try:
        quantity = float(qtext)
        if not (quantity > 0) or quantity == float("inf"):
            raise ValueError(qtext)
    except ValueError:
        _bad(problems, "quantity must be a positive number (e.g. 4 or 0.5)", "quantity", qtext)
        return None
    return quantity


def _check_status(values: Mapping[str, str], problems: list[Problem]) -> str:
    """Return the status (default ``available``, aliases resolved)."""
    status = (values.get("status", "") or "available").strip().lower()
    status = STATUS_ALIASES.get(status, status)
    if status not in SPECIMEN_STATUSES:
        _bad(problems, f"status is not one of: {', '.join(SPECIMEN_STATUSES)}", "status", status)
    return status


def _check_storage(
    values: Mapping[str, str], status: str, problems: list[Problem]
) -> dict[str, str]:
    """Return the storage position (well upper-cased); only an available specimen has one."""
    loc = {f: values.get(f, "").strip() for f in STORAGE_FIELDS}
    loc_problems = check_location(loc)
    problems.extend(loc_problems)
    if not loc_problems and all(loc.values()):
        loc = normalise_location(loc)
        if status in SPECIMEN_STATUSES and status != "available":
            _bad(
                problems,
                f"a {status} specimen occupies no storage position: leave freezer, rack, "
                "box and position empty",
                "freezer",
                loc["freezer"],
            )
    return loc


def _check_sample_id(values: Mapping[str, str], stype: str, problems: list[Problem]) -> str | None:
    """Return the sequencing sample id (only nucleic acids are sequenced)."""
    sample_id = values.get("sequencing_sample_id", "").strip() or None
    if sample_id is not None:
        if not SAMPLE_ID.match(sample_id):
            _bad(
                problems,
                "sequencing_sample_id is letters, digits, '_' and '-', starting with a letter "
                "or digit, at most 64 characters",
                "sequencing_sample_id",
                sample_id,
            )
        elif stype in SPECIMEN_TYPES and stype not in NUCLEIC_ACID_TYPES:
            _bad(
                problems,
                f"only {', '.join(sorted(NUCLEIC_ACID_TYPES))} specimens are sequenced; "
                f"link the DNA extracted from this {stype}",
                "sequencing_sample_id",
                sample_id,
            )
    return sample_id


def validate_specimen_fields(
    values: Mapping[str, str], participant_id: str | None
) -> tuple[SpecimenRecord | None, list[Problem]]:
    """Validate one specimen's fields (label, type, time format, site, quantity, status, storage).

    Parameters
    ----------
    values
        The CSV columns of ``specimens.csv`` (``national_id`` is not used here).
    participant_id
        The participant's pseudonym (``None`` if it could not be worked out).

    Returns
    -------
    tuple
        The record (``None`` if any problem) and every problem found.
    """
    problems: list[Problem] = []
    label, parent = _check_labels(values, problems)
    stype = values.get("specimen_type", "").strip().lower()
    if stype not in SPECIMEN_TYPES:
        _bad(
            problems,
            f"specimen_type is not one of: {', '.join(SPECIMEN_TYPES)}",
            "specimen_type",
            values.get("specimen_type", ""),
        )
    collected = _attempt(
        problems, values, lambda: parse_collected_at(values.get("collected_at", "")), "collected_at"
    )
    site = values.get("anatomical_site", "").strip() or None
    if stype in SPECIMEN_TYPES and SPECIMEN_TYPES[stype].tissue and site is None:
        _bad(
            problems,
            f"anatomical_site is required for {stype} (e.g. breast, liver, colon)",
            "anatomical_site",
            "",
        )
    quantity = _check_quantity_text(values, problems)
    unit = _attempt(problems, values, lambda: normalise_unit(values.get("unit", "")), "unit")
    status = _check_status(values, problems)
    loc = _check_storage(values, status, problems)
    sample_id = _check_sample_id(values, stype, problems)
    if problems or participant_id is None:
        return None, problems
    assert label is not None
    assert collected is not None
    assert quantity is not None
    stored = all(loc.values())
    return (
        SpecimenRecord(
            label=label,
            participant_id=participant_id,
            parent_label=parent,
            specimen_type=stype,
            collected_at=collected,
            anatomical_site=site,
            quantity=quantity,
            unit=unit,
            status=status,
            freezer=loc["freezer"] if stored else None,
            rack=loc["rack"] if stored else None,
            box=loc["box"] if stored else None,
            position=loc["position"] if stored else None,
            sequencing_sample_id=sample_id,
        ),
        [],
    )


def in_base(quantity: float, unit: str) -> tuple[str, float]:
    """Return ``(dimension, amount in the dimension's base unit)`` (mL, µg or count)."""
    u = UNITS[unit]
    return u.dimension, quantity * u.factor


def _stored_specimens(
    con: duckdb.DuckDBPyConnection, records: Sequence[tuple[int | None, SpecimenRecord]]
) -> dict[str, dict[str, Any]]:
    """The stored specimens with the labels or parent labels of ``records``."""
    labels = sorted(
        {r.label for _, r in records} | {r.parent_label for _, r in records if r.parent_label}
    )
    if not labels:
        return {}
    cur = con.execute("SELECT * FROM specimen WHERE label IN (SELECT unnest(?))", [labels])
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _aliquoted(
    con: duckdb.DuckDBPyConnection, parents: Iterable[str]
) -> dict[tuple[str, str], float]:
    """(parent label, dimension) -> what its stored aliquots took, in the base unit.

    Only for the given parent labels (the parents a batch refers to).
    """
    taken: dict[tuple[str, str], float] = {}
    wanted = sorted(set(parents))
    if not wanted:
        return taken
    for row in con.execute(
        "SELECT c.parent_label, c.quantity, c.unit FROM specimen c"
        " WHERE c.parent_label IN (SELECT unnest(?))",
        [wanted],
    ).fetchall():
        dim, amount = in_base(float(row[1]), str(row[2]))
        taken[(row[0], dim)] = taken.get((row[0], dim), 0.0) + amount
    return taken


@dataclass
class _BatchCheck:
    """The cross-record rules of :func:`check_specimens` for the records not yet stored."""

    new: dict[str, tuple[int | None, SpecimenRecord]]
    stored: Mapping[str, dict[str, Any]]
    stored_samples: Mapping[str, str]
    participants: set[str]
    birth_dates: Mapping[str, dt.date]
    now: dt.datetime
    occupied: dict[tuple[str, ...], str]
    children_base: dict[tuple[str, str], float]
    problems: list[Problem]
    seen_samples: dict[str, int | None] = field(default_factory=dict)

    def bad(self, line: int | None, message: str, fld: str, value: object) -> None:
        self.problems.append(Problem(message, line=line, field=fld, value=str(value)))

    def check(self, label: str, line: int | None, rec: SpecimenRecord) -> None:
        """Check one new record in turn (positions, samples and aliquots add up)."""
        if rec.participant_id not in self.participants:
            self.bad(
                line,
                f"participant {rec.participant_id} is not registered: import the participant "
                "first (or in the same import-all)",
                "national_id",
                rec.participant_id,
            )
        birth = self.birth_dates.get(rec.participant_id)
        when = rec.collected_at.isoformat()
        if birth is not None and rec.collected_at.date() < birth:
            self.bad(
                line,
                f"collected_at is before the participant's birth ({birth})",
                "collected_at",
                when,
            )
        if rec.collected_at > self.now:
            self.bad(line, "collected_at is in the future", "collected_at", when)
        if rec.location is not None:
            self.check_position(label, line, rec)
        if rec.sequencing_sample_id:
            self.check_sample(label, line, rec.sequencing_sample_id)
        if rec.parent_label:
            self.check_parent(line, rec)

    def check_position(self, label: str, line: int | None, rec: SpecimenRecord) -> None:
        assert rec.location is not None
        holder = self.occupied.get(rec.location)
        if holder is not None and holder != label:
            where = "/".join(rec.location)
            held_line = self.new[holder][0] if holder in self.new else None
            self.bad(
                line,
                f"position {where} is already taken by {holder}"
                + (f" (line {held_line})" if held_line else "")
                + ": one specimen per position",
                "position",
                rec.position,
            )
        else:
            self.occupied[rec.location] = label

    def check_sample(self, label: str, line: int | None, sid: str) -> None:
        if sid in self.stored_samples and self.stored_samples[sid] != label:
            self.bad(
                line,
                f"sequencing sample {sid} is already linked to {self.stored_samples[sid]}",
                "sequencing_sample_id",
                sid,
            )
        elif sid in self.seen_samples:
            self.bad(
                line,
                f"sequencing sample {sid} is also on line {self.seen_samples[sid]}",
                "sequencing_sample_id",
                sid,
            )
        self.seen_samples[sid] = line

    def check_parent(self, line: int | None, rec: SpecimenRecord) -> None:
        assert rec.parent_label is not None
        parent: dict[str, Any] | None
        if rec.parent_label in self.new:
            parent = {**self.new[rec.parent_label][1].row(), "consumed_quantity": 0.0}
        else:
            parent = self.stored.get(rec.parent_label)
        if parent is None:
            self.bad(
                line,
                f"parent specimen {rec.parent_label} is not registered: register the "
                "parent first or list it in the same file",
                "parent_label",
                rec.parent_label,
            )
            return
        if parent["participant_id"] != rec.participant_id:
            self.bad(
                line,
                f"parent {rec.parent_label} belongs to another participant",
                "parent_label",
                rec.parent_label,
            )
        if rec.collected_at < parent["collected_at"]:
            self.bad(
                line,
                f"collected_at is before the parent's ({parent['collected_at']})",
                "collected_at",
                rec.collected_at.isoformat(),
            )
        self.check_aliquot(line, rec, parent)

    def check_aliquot(
        self, line: int | None, rec: SpecimenRecord, parent: Mapping[str, Any]
    ) -> None:
        assert rec.parent_label is not None
        dim, amount = in_base(rec.quantity, rec.unit)
        pdim, pamount = in_base(float(parent["quantity"]), str(parent["unit"]))
        if dim != pdim:
            return
        _, pused = in_base(float(parent["consumed_quantity"]), str(parent["unit"]))
        taken = self.children_base.get((rec.parent_label, dim), 0.0)
        if taken + amount > pamount - pused + 1e-9:
            left = (pamount - pused - taken) / UNITS[str(parent["unit"])].factor
            self.bad(
                line,
                f"the aliquot ({rec.quantity:g} {rec.unit}) is larger than what is left "
                f"of parent {rec.parent_label} ({max(left, 0):g} {parent['unit']} of "
                f"{float(parent['quantity']):g})",
                "quantity",
                rec.quantity,
            )
        self.children_base[(rec.parent_label, dim)] = taken + amount


def check_specimens(
    con: duckdb.DuckDBPyConnection,
    records: Sequence[tuple[int | None, SpecimenRecord]],
    *,
    birth_dates: Mapping[str, dt.date],
    known_participants: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> tuple[list[SpecimenRecord], list[Problem]]:
    """Check new specimens against each other and the store; return what to create.

    A record identical to a stored specimen is skipped (re-import); a record with
    a stored label but other content is a conflict.

    Parameters
    ----------
    con
        The store connection.
    records
        ``(line, record)`` pairs (line ``None`` for API input).
    birth_dates
        Participant pseudonym -> birth date (for the collection-time check).
    known_participants
        Pseudonyms registered in the same import (not yet in the store).
    now
        Local time that counts as now.

    Returns
    -------
    tuple
        The records to create, parents before children, and every problem.
    """
    now = now or dt.datetime.now(LOCAL_TZ).replace(tzinfo=None)
    problems: list[Problem] = []
    batch: dict[str, tuple[int | None, SpecimenRecord]] = {}
    for line, rec in records:
        if rec.label in batch:
            problems.append(
                Problem(
                    f"label already used on line {batch[rec.label][0]}: labels are unique",
                    line=line,
                    field="label",
                    value=rec.label,
                )
            )
        else:
            batch[rec.label] = (line, rec)
    stored = _stored_specimens(con, records)
    stored_samples = {
        r[0]: r[1]
        for r in con.execute("SELECT sample_id, specimen_label FROM sequencing_sample").fetchall()
    }
    new: dict[str, tuple[int | None, SpecimenRecord]] = {}
    for label, (line, rec) in batch.items():
        if label not in stored:
            new[label] = (line, rec)
            continue
        diffs = _differences(stored[label], rec, stored_samples)
        if diffs:
            problems.append(
                Problem(
                    f"specimen {label} is already registered with different {', '.join(diffs)}: "
                    "use 'specimen move/consume/ship' to change a registered specimen",
                    line=line,
                    field="label",
                    value=label,
                )
            )
    existing_pids = {
        r[0]
        for r in con.execute(
            "SELECT participant_id FROM participant WHERE participant_id IN (SELECT unnest(?))",
            [sorted({r.participant_id for _, r in new.values()})],
        ).fetchall()
    }
    checker = _BatchCheck(
        new=new,
        stored=stored,
        stored_samples=stored_samples,
        participants=existing_pids | set(known_participants),
        birth_dates=birth_dates,
        now=now,
        occupied=occupied_positions(
            con, boxes={r.location[:3] for _, r in new.values() if r.location is not None}
        ),
        children_base=_aliquoted(con, (r.parent_label for _, r in new.values() if r.parent_label)),
        problems=problems,
    )
    for label, (line, rec) in new.items():
        checker.check(label, line, rec)
    ordered = _parents_first(new, stored, problems)
    return ordered, problems


def _parents_first(
    new: Mapping[str, tuple[int | None, SpecimenRecord]],
    stored: Mapping[str, Any],
    problems: list[Problem],
) -> list[SpecimenRecord]:
    """Order records so every parent comes before its children; report cycles."""
    out: list[SpecimenRecord] = []
    done: set[str] = set()
    for label in new:
        chain: list[str] = []
        cur: str | None = label
        while cur is not None and cur in new and cur not in done:
            if cur in chain:
                problems.append(
                    Problem(
                        f"parent_label forms a cycle: {' -> '.join([*chain, cur])}",
                        line=new[label][0],
                        field="parent_label",
                        value=label,
                    )
                )
                break
            chain.append(cur)
            cur = new[cur][1].parent_label
        else:
            for item in reversed(chain):
                if item not in done:
                    out.append(new[item][1])
                    done.add(item)
    return out


def _differences(
    stored: Mapping[str, Any], rec: SpecimenRecord, stored_samples: Mapping[str, str]
) -> list[str]:
    row = rec.row()
    diffs = [
        c
        for c in (
            "participant_id",
            "parent_label",
            "specimen_type",
            "collected_at",
            "anatomical_site",
            "quantity",
            "unit",
            "status",
            "freezer",
            "rack",
            "box",
            "position",
        )
        if stored[c] != row[c]
    ]
    linked = sorted(s for s, lab in stored_samples.items() if lab == rec.label)
    if rec.sequencing_sample_id and rec.sequencing_sample_id not in linked:
        diffs.append("sequencing_sample_id")
    return diffs


def write_specimens(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    records: Sequence[SpecimenRecord],
    *,
    reason: str,
) -> None:
    """Insert checked specimens (parents first) and their sequencing links, in bulk."""
    stamp = events.now()
    events.emit_many(
        con,
        principal,
        "specimen",
        "create",
        [{**r.row(), "created_at": stamp, "updated_at": stamp} for r in records],
        reason=reason,
    )
    events.emit_many(
        con,
        principal,
        "sequencing_sample",
        "create",
        [
            {
                "sample_id": r.sequencing_sample_id,
                "specimen_label": r.label,
                "participant_id": r.participant_id,
            }
            for r in records
            if r.sequencing_sample_id
        ],
        reason=reason,
    )


def participant_birth_date(
    store: Store, con: duckdb.DuckDBPyConnection, participant_id: str
) -> dt.date | None:
    """Return a participant's birth date from the encrypted re-contact record (or ``None``)."""
    row = con.execute(
        "SELECT token FROM recontact_identifier WHERE participant_id = ?", [participant_id]
    ).fetchone()
    if row is None:
        return None
    text = decrypt_identifiers(str(row[0]), center_key(store.path)).get("birth_date")
    return dt.date.fromisoformat(text) if text else None


def add_specimen(
    store: Store,
    principal: Principal,
    *,
    label: str,
    participant_id: str,
    specimen_type: str,
    collected_at: str | dt.datetime,
    quantity: float,
    unit: str,
    parent_label: str | None = None,
    anatomical_site: str | None = None,
    status: str = "available",
    freezer: str | None = None,
    rack: str | None = None,
    box: str | None = None,
    position: str | None = None,
    sequencing_sample_id: str | None = None,
    reason: str = "registered",
) -> SpecimenRecord:
    """Register one specimen; the same rules as a CSV row.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ImportRejected
        Listing every problem (bad field, unknown participant or parent, taken
        position, aliquot larger than its parent, duplicate label with other content).
    """
    require(principal, Permission.REGISTRY_WRITE)
    values = {
        "label": label,
        "parent_label": parent_label or "",
        "specimen_type": specimen_type,
        "collected_at": collected_at.isoformat()
        if isinstance(collected_at, dt.datetime)
        else collected_at,
        "anatomical_site": anatomical_site or "",
        "quantity": str(quantity),
        "unit": unit,
        "status": status,
        "freezer": freezer or "",
        "rack": rack or "",
        "box": box or "",
        "position": position or "",
        "sequencing_sample_id": sequencing_sample_id or "",
    }
    rec, problems = validate_specimen_fields(values, participant_id)
    if rec is None:
        raise ImportRejected(problems)
    with store.transaction() as con:
        birth = participant_birth_date(store, con, participant_id)
        todo, problems = check_specimens(
            con, [(None, rec)], birth_dates={participant_id: birth} if birth else {}
        )
        if problems:
            raise ImportRejected(problems)
        write_specimens(con, principal, todo, reason=reason)
        for item in todo:
            audit.record(
                con,
                principal,
                "specimen.create",
                item.label,
                {"participant_id": item.participant_id, "reason": reason},
            )
    return rec


def with_lines(problems: Iterable[Problem], *, file: str, line: int | None = None) -> list[Problem]:
    """Return ``problems`` with the file (and the line, where missing) filled in."""
    return [replace(p, file=file, line=p.line if p.line is not None else line) for p in problems]
