"""Specimen inventory: look-ups, storage moves, consumption, shipping, sequencing links.

Every change is a registry event (:mod:`biobank.registry.events`) and an audit entry;
every read of a specimen is audited. Registration and the rules that protect it
(unique labels, one specimen per position, aliquots not larger than their
parent ...) are in :mod:`biobank.registry.specimens`. :func:`resolve_samples` is how the
VCF loader maps sequencing sample ids to participant pseudonyms.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConflictError, ConsentError, NotFoundError, Problem, ValidationError
from biobank.core.ids import validate_label
from biobank.registry import events
from biobank.registry.specimens import (
    LOCAL_TZ,
    SAMPLE_ID,
    in_base,
    parse_collected_at,
    participant_birth_date,
)
from biobank.registry.storage import (
    LOCATION_SQL,
    STORAGE_FIELDS,
    check_location,
    normalise_location,
)
from biobank.registry.visibility import audited_rows, participant_visibility_sql
from biobank.registry.vocab import (
    NUCLEIC_ACID_TYPES,
    SPECIMEN_STATUSES,
    SPECIMEN_TYPES,
    UNITS,
    check_term,
    normalise_unit,
)

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "consume_specimen",
    "destroy_specimen",
    "get_specimen",
    "label_barcode_svg",
    "link_sequencing_sample",
    "list_specimens",
    "move_specimen",
    "remaining_quantity",
    "resolve_samples",
    "ship_specimen",
    "update_specimen",
]

logger = logging.getLogger(__name__)


def _load(con: duckdb.DuckDBPyConnection, label: str) -> dict[str, Any]:
    value = validate_label(label)
    cur = con.execute("SELECT * FROM specimen WHERE label = ?", [value])
    row = cur.fetchone()
    if row is None:
        raise NotFoundError(f"no specimen with label {value}")
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def load_visible(
    con: duckdb.DuckDBPyConnection, principal: Principal, label: str
) -> dict[str, Any]:
    """Load a specimen whose participant ``principal`` may see (consent for its purpose).

    Raises
    ------
    NotFoundError
        If the label is unknown.
    ConsentError
        If the participant's consent does not permit the principal's purpose.
    """
    spec = _load(con, label)
    visible = participant_visibility_sql(principal)
    if not con.execute(
        f"SELECT 1 FROM ({visible}) WHERE participant_id = ?", [spec["participant_id"]]
    ).fetchone():
        raise ConsentError(
            f"specimen {spec['label']} belongs to a participant who has not "
            f"consented to purpose '{principal.purpose}' (or withdrew)"
        )
    return spec


def _reason(reason: str) -> str:
    if not reason.strip():
        raise ValidationError(
            "give the reason for the change (kept with the event)", field="reason"
        )
    return reason


def move_specimen(
    store: Store,
    principal: Principal,
    label: str,
    *,
    freezer: str,
    rack: str,
    box: str,
    position: str,
    reason: str,
) -> dict[str, Any]:
    """Move an available specimen to an empty position; the move is an event.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the label is unknown.
    ConflictError
        If the position is taken or the specimen is not available.
    ValidationError
        For a malformed position.
    """
    require(principal, Permission.REGISTRY_WRITE)
    _reason(reason)
    loc = {"freezer": freezer, "rack": rack, "box": box, "position": position}
    problems = check_location(loc)
    if problems or not all(loc.values()):
        p = problems[0] if problems else Problem("give freezer, rack, box and position")
        raise ValidationError(p.message, field=p.field, value=p.value)
    loc = normalise_location(loc)
    freezer, rack, box, position = (loc[f] for f in STORAGE_FIELDS)
    with store.transaction() as con:
        spec = _load(con, label)
        if spec["status"] != "available":
            raise ConflictError(
                f"specimen {spec['label']} is {spec['status']}: only available specimens are stored"
            )
        holder = con.execute(
            "SELECT label FROM specimen WHERE freezer IS NOT NULL AND "
            + " AND ".join(f"{expr} = ?" for expr in LOCATION_SQL),
            [freezer, rack, box, position],
        ).fetchone()
        if holder is not None:
            raise ConflictError(
                f"position {freezer}/{rack}/{box}/{position} is already taken by "
                f"{holder[0]}: one specimen per position"
            )
        data = {
            "label": spec["label"],
            "freezer": freezer,
            "rack": rack,
            "box": box,
            "position": position,
            "updated_at": events.now(),
        }
        events.emit(con, principal, "specimen", "move", data, reason=reason)
        old = "/".join(str(spec[f]) for f in STORAGE_FIELDS) if spec["freezer"] else None
        audit.record(
            con,
            principal,
            "specimen.move",
            spec["label"],
            {
                "from": old,
                "to": f"{freezer}/{rack}/{box}/{position}",
                "reason": reason,
            },
        )
    return {**spec, **data}


def _checked_collected_at(
    store: Store, con: duckdb.DuckDBPyConnection, spec: Mapping[str, Any], collected_at: str
) -> dt.datetime:
    """Parse a new collection time: after birth and the parent's, before now and any aliquot's."""
    when = parse_collected_at(collected_at)
    birth = participant_birth_date(store, con, spec["participant_id"])
    if birth is not None and when.date() < birth:
        raise ValidationError(
            f"collected_at is before the participant's birth ({birth})",
            field="collected_at",
            value=collected_at,
        )
    if when > dt.datetime.now(LOCAL_TZ).replace(tzinfo=None):
        raise ValidationError(
            "collected_at is in the future", field="collected_at", value=collected_at
        )
    if spec["parent_label"]:
        parent = _load(con, spec["parent_label"])
        if when < parent["collected_at"]:
            raise ValidationError(
                f"collected_at is before the parent's ({parent['collected_at']})",
                field="collected_at",
                value=collected_at,
            )
    first_child = con.execute(
        "SELECT min(collected_at) FROM specimen WHERE parent_label = ?", [spec["label"]]
    ).fetchone()
    if first_child and first_child[0] is not None and when > first_child[0]:
        raise ValidationError(
            f"collected_at is after an aliquot was made from it ({first_child[0]})",
            field="collected_at",
            value=collected_at,
        )
    return when


def _checked_site(spec: Mapping[str, Any], anatomical_site: str) -> str | None:
    """Return the new anatomical site (``None`` for blank; a tissue must keep one)."""
    site = anatomical_site.strip() or None
    if site is None and SPECIMEN_TYPES[spec["specimen_type"]].tissue:
        raise ValidationError(
            f"anatomical_site is required for {spec['specimen_type']}",
            field="anatomical_site",
            value=anatomical_site,
        )
    return site


def _check_quantity(
    con: duckdb.DuckDBPyConnection, spec: Mapping[str, Any], quantity: float
) -> None:
    """A new quantity covers what was used and still fits in the parent."""
    if not quantity > 0:
        raise ValidationError("quantity must be positive", field="quantity", value=quantity)
    in_use = float(spec["quantity"]) - remaining_quantity(con, spec)
    if quantity < in_use - 1e-9:
        raise ValidationError(
            f"{spec['label']} already gave {in_use:g} {spec['unit']} to consumption and "
            f"aliquots: the quantity cannot be less",
            field="quantity",
            value=quantity,
        )
    if spec["parent_label"]:
        parent = _load(con, spec["parent_label"])
        dim, _ = in_base(quantity, str(spec["unit"]))
        if dim == UNITS[str(parent["unit"])].dimension:
            _, old = in_base(float(spec["quantity"]), str(spec["unit"]))
            _, new = in_base(quantity, str(spec["unit"]))
            _, left = in_base(remaining_quantity(con, parent), str(parent["unit"]))
            if new - old > left + 1e-9:
                raise ValidationError(
                    f"the aliquot would be larger than what is left of parent {parent['label']}",
                    field="quantity",
                    value=quantity,
                )


def update_specimen(
    store: Store,
    principal: Principal,
    label: str,
    *,
    reason: str,
    collected_at: str | None = None,
    anatomical_site: str | None = None,
    quantity: float | None = None,
) -> dict[str, Any]:
    """Correct a registered specimen's collection time, anatomical site or quantity.

    The same rules as at registration are checked again: collection not before
    birth, not in the future, not before the parent's nor after a child's; a
    tissue keeps an anatomical site; the quantity (in the specimen's unit) still
    covers what was consumed and what went into aliquots, and an aliquot still
    fits in its parent.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the label is unknown.
    ValidationError
        If a new value breaks a rule, or nothing is to change.
    """
    require(principal, Permission.REGISTRY_WRITE)
    _reason(reason)
    if collected_at is None and anatomical_site is None and quantity is None:
        raise ValidationError("give at least one of collected_at, anatomical_site, quantity")
    with store.transaction() as con:
        spec = _load(con, label)
        data: dict[str, Any] = {"label": spec["label"]}
        if collected_at is not None:
            data["collected_at"] = _checked_collected_at(store, con, spec, collected_at)
        if anatomical_site is not None:
            data["anatomical_site"] = _checked_site(spec, anatomical_site)
        if quantity is not None:
            _check_quantity(con, spec, quantity)
            data["quantity"] = float(quantity)
        data["updated_at"] = events.now()
        events.emit(con, principal, "specimen", "update", data, reason=reason)
        audit.record(
            con,
            principal,
            "specimen.update",
            spec["label"],
            {"fields": sorted(set(data) - {"label", "updated_at"}), "reason": reason},
        )
    return {**spec, **data}


def remaining_quantity(con: duckdb.DuckDBPyConnection, spec: Mapping[str, Any]) -> float:
    """Return what is left of a specimen in its own unit.

    That is its quantity minus what was consumed and what went into aliquots
    measured in the same dimension.
    """
    dim, total = in_base(float(spec["quantity"]), str(spec["unit"]))
    _, used = in_base(float(spec["consumed_quantity"]), str(spec["unit"]))
    taken = 0.0
    for q, u in con.execute(
        "SELECT quantity, unit FROM specimen WHERE parent_label = ?", [spec["label"]]
    ).fetchall():
        cdim, amount = in_base(float(q), str(u))
        if cdim == dim:
            taken += amount
    return max(total - used - taken, 0.0) / UNITS[str(spec["unit"])].factor


def consume_specimen(
    store: Store,
    principal: Principal,
    label: str,
    *,
    reason: str,
    quantity: float | None = None,
    unit: str | None = None,
) -> dict[str, Any]:
    """Use up some (``quantity``) or all of a specimen; when nothing is left it is ``consumed``.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the label is unknown.
    ConflictError
        If the specimen is not available or holds less than ``quantity``.
    ValidationError
        For a bad quantity or a unit of another dimension.
    """
    require(principal, Permission.REGISTRY_WRITE)
    _reason(reason)
    with store.transaction() as con:
        spec = _load(con, label)
        if spec["status"] != "available":
            raise ConflictError(f"specimen {spec['label']} is {spec['status']}, not available")
        left = remaining_quantity(con, spec)
        if quantity is None:
            amount = left
        else:
            if not quantity > 0:
                raise ValidationError("quantity must be positive", field="quantity", value=quantity)
            u = normalise_unit(unit or str(spec["unit"]))
            dim, base = in_base(quantity, u)
            if dim != UNITS[str(spec["unit"])].dimension:
                raise ValidationError(
                    f"unit {u} does not measure the same thing as {spec['unit']}",
                    field="unit",
                    value=u,
                )
            amount = base / UNITS[str(spec["unit"])].factor
            if amount > left + 1e-9:
                raise ConflictError(
                    f"specimen {spec['label']} has {left:g} {spec['unit']} left, "
                    f"cannot consume {quantity:g} {u}"
                )
        used = float(spec["consumed_quantity"]) + amount
        data: dict[str, Any] = {
            "label": spec["label"],
            "consumed_quantity": used,
            "updated_at": events.now(),
        }
        if left - amount <= 1e-9:
            data.update(status="consumed", freezer=None, rack=None, box=None, position=None)
        events.emit(con, principal, "specimen", "consume", data, reason=reason)
        audit.record(
            con,
            principal,
            "specimen.consume",
            spec["label"],
            {"amount": amount, "unit": spec["unit"], "reason": reason},
        )
    return {**spec, **data}


def _retire(
    store: Store,
    principal: Principal,
    label: str,
    *,
    status: str,
    action: str,
    reason: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    require(principal, Permission.REGISTRY_WRITE)
    _reason(reason)
    with store.transaction() as con:
        spec = _load(con, label)
        if spec["status"] != "available":
            raise ConflictError(f"specimen {spec['label']} is {spec['status']}, not available")
        data = {
            "label": spec["label"],
            "status": status,
            "freezer": None,
            "rack": None,
            "box": None,
            "position": None,
            **(extra or {}),
            "updated_at": events.now(),
        }
        events.emit(con, principal, "specimen", action, data, reason=reason)
        audit.record(
            con, principal, f"specimen.{action}", spec["label"], {**(extra or {}), "reason": reason}
        )
    return {**spec, **data}


def ship_specimen(
    store: Store, principal: Principal, label: str, *, destination: str, reason: str
) -> dict[str, Any]:
    """Record that an available specimen left the biobank (status ``shipped``, position freed).

    Raises
    ------
    AccessDenied, NotFoundError, ConflictError, ValidationError
        As for :func:`consume_specimen`; also without a destination.
    """
    if not destination.strip():
        raise ValidationError("give the destination of the shipment", field="destination")
    return _retire(
        store,
        principal,
        label,
        status="shipped",
        action="ship",
        reason=reason,
        extra={"shipped_to": destination},
    )


def destroy_specimen(
    store: Store, principal: Principal, label: str, *, reason: str
) -> dict[str, Any]:
    """Record that an available specimen was destroyed (status ``destroyed``, position freed)."""
    return _retire(store, principal, label, status="destroyed", action="destroy", reason=reason)


def link_sequencing_sample(
    store: Store, principal: Principal, label: str, sample_id: str, *, reason: str = "sequenced"
) -> None:
    """Link a nucleic-acid specimen to a sequencing sample id (the VCF / FASTQ sample name).

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the label is unknown.
    ConflictError
        If the sample id is linked to another specimen.
    ValidationError
        If the sample id is malformed or the specimen is not DNA/RNA.
    """
    require(principal, Permission.REGISTRY_WRITE)
    if not SAMPLE_ID.match(sample_id or ""):
        raise ValidationError(
            "sequencing sample id is letters, digits, '_' and '-' (max 64)",
            field="sequencing_sample_id",
            value=sample_id,
        )
    with store.transaction() as con:
        spec = _load(con, label)
        if spec["specimen_type"] not in NUCLEIC_ACID_TYPES:
            raise ValidationError(
                f"specimen {spec['label']} is {spec['specimen_type']}: only "
                f"{', '.join(sorted(NUCLEIC_ACID_TYPES))} specimens are sequenced",
                field="label",
                value=spec["label"],
            )
        row = con.execute(
            "SELECT specimen_label FROM sequencing_sample WHERE sample_id = ?", [sample_id]
        ).fetchone()
        if row is not None:
            if row[0] == spec["label"]:
                return
            raise ConflictError(f"sequencing sample {sample_id} is already linked to {row[0]}")
        events.emit(
            con,
            principal,
            "sequencing_sample",
            "create",
            {
                "sample_id": sample_id,
                "specimen_label": spec["label"],
                "participant_id": spec["participant_id"],
            },
            reason=reason,
        )
        audit.record(
            con,
            principal,
            "sequencing_sample.link",
            sample_id,
            {"label": spec["label"], "reason": reason},
        )


def resolve_samples(con: duckdb.DuckDBPyConnection, sample_ids: Iterable[str]) -> dict[str, str]:
    """Map sequencing sample ids to participant pseudonyms.

    Raises
    ------
    NotFoundError
        Listing every sample id that is not linked to a registered specimen.

    Examples
    --------
    Used by the VCF loader on the VCF's sample names: ``resolve_samples(con, vcf.samples)``.
    """
    wanted = list(dict.fromkeys(sample_ids))
    found = dict(
        con.execute(
            "SELECT sample_id, participant_id FROM sequencing_sample"
            " WHERE sample_id IN (SELECT unnest(?))",
            [wanted],
        ).fetchall()
    )
    unknown = [s for s in wanted if s not in found]
    if unknown:
        shown = ", ".join(unknown[:20]) + (
            f" ... ({len(unknown)} in all)" if len(unknown) > 20 else ""
        )
        raise NotFoundError(
            f"{len(unknown)} sample id{'s are' if len(unknown) > 1 else ' is'} not linked to any "
            f"specimen in the registry: {shown}; register the DNA specimens with "
            "sequencing_sample_id (biobank registry import specimens) first"
        )
    return {s: str(found[s]) for s in wanted}


def get_specimen(store: Store, principal: Principal, label: str) -> dict[str, Any]:
    """Return a specimen with its storage, remaining quantity, lineage and sequencing ids.

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
        spec["remaining"] = remaining_quantity(con, spec)
        lineage = [spec["label"]]
        parent = spec["parent_label"]
        while parent:
            lineage.insert(0, parent)
            row = con.execute(
                "SELECT parent_label FROM specimen WHERE label = ?", [parent]
            ).fetchone()
            parent = row[0] if row else None
        spec["lineage"] = " > ".join(lineage)
        spec["children"] = ";".join(
            r[0]
            for r in con.execute(
                "SELECT label FROM specimen WHERE parent_label = ? ORDER BY label", [spec["label"]]
            ).fetchall()
        )
        spec["sequencing_samples"] = ";".join(
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM sequencing_sample WHERE specimen_label = ? ORDER BY 1",
                [spec["label"]],
            ).fetchall()
        )
        audit.record(con, principal, "specimen.read", spec["label"], {})
    return spec


def list_specimens(
    store: Store,
    principal: Principal,
    *,
    participant_id: str | None = None,
    specimen_type: str | None = None,
    status: str | None = None,
    freezer: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """List specimens with filters (researchers: consented participants only).

    Raises
    ------
    AccessDenied
        For a role that reads neither the registry nor research data.
    ValidationError
        For an unknown type or status filter.
    """
    visible = participant_visibility_sql(principal)
    where = [f"s.participant_id IN ({visible})"]
    params: list[Any] = []
    if participant_id:
        where.append("s.participant_id = ?")
        params.append(participant_id)
    if specimen_type:
        check_term(SPECIMEN_TYPES, specimen_type, field="specimen_type", name="specimen type")
        where.append("s.specimen_type = ?")
        params.append(specimen_type)
    if status:
        check_term(SPECIMEN_STATUSES, status, field="status", name="status")
        where.append("s.status = ?")
        params.append(status)
    if freezer:
        where.append("s.freezer = ?")
        params.append(freezer)
    sql = (
        "SELECT s.label, s.participant_id, s.parent_label, s.specimen_type, s.collected_at,"
        " s.anatomical_site, s.quantity, s.unit, s.consumed_quantity, s.status, s.freezer,"
        " s.rack, s.box, s.position,"
        " (SELECT string_agg(sample_id, ';' ORDER BY sample_id) FROM sequencing_sample q"
        "  WHERE q.specimen_label = s.label) AS sequencing_samples"
        f" FROM specimen s WHERE {' AND '.join(where)} ORDER BY s.label"
    )
    return audited_rows(
        store,
        principal,
        sql,
        params,
        limit=limit,
        action="specimen.list",
        target="specimen",
        filters={
            "participant_id": participant_id,
            "specimen_type": specimen_type,
            "status": status,
            "freezer": freezer,
        },
    )


def label_barcode_svg(label: str, *, text: bool = True) -> str:
    """Return a Code 128 barcode of a specimen label as SVG text (python-barcode).

    Raises
    ------
    ValidationError
        If the label's check character is wrong (a bad label is never printed).
    """
    import io

    from barcode import Code128  # type: ignore[import-untyped]
    from barcode.writer import SVGWriter  # type: ignore[import-untyped]

    value = validate_label(label)
    buf = io.BytesIO()
    Code128(value, writer=SVGWriter()).write(
        buf, options={"write_text": text, "module_height": 8.0, "quiet_zone": 2.0}
    )
    return buf.getvalue().decode("utf-8")
