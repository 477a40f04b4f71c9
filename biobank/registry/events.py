"""The registry's event log: every change is an event, and the tables follow from it.

Each write of the registry (create, update, move, consume, ship, destroy,
consent, withdrawal, sequencing link) appends one row to ``registry_event``
with who, when, why and the columns it sets, and then applies exactly those
columns to the registry table (:func:`emit`). :func:`replay` rebuilds the
current state from the events alone, independently of the tables, so
:func:`current_state` and :func:`replay` can be compared to prove the tables
hold nothing the events do not explain.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import duckdb

from biobank.core.access import Principal
from biobank.core.errors import StoreError

__all__ = ["ENTITIES", "State", "current_state", "emit", "emit_many", "now", "replay"]

logger = logging.getLogger(__name__)

#: entity -> (table, key columns, all columns)
ENTITIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "participant": (
        "participant",
        ("participant_id",),
        (
            "participant_id",
            "sex",
            "birth_year",
            "enrolment_date",
            "site",
            "created_at",
            "updated_at",
        ),
    ),
    "participant_cohort": (
        "participant_cohort",
        ("participant_id", "cohort"),
        ("participant_id", "cohort"),
    ),
    "recontact_identifier": (
        "recontact_identifier",
        ("participant_id",),
        ("participant_id", "token", "updated_at"),
    ),
    "consent": (
        "consent",
        ("participant_id", "consent_version"),
        (
            "participant_id",
            "consent_version",
            "consent_seq",
            "signed_date",
            "primary_code",
            "disease",
            "modifiers",
            "withdrawn_date",
        ),
    ),
    "specimen": (
        "specimen",
        ("label",),
        (
            "label",
            "participant_id",
            "parent_label",
            "specimen_type",
            "collected_at",
            "anatomical_site",
            "quantity",
            "unit",
            "consumed_quantity",
            "status",
            "freezer",
            "rack",
            "box",
            "position",
            "shipped_to",
            "created_at",
            "updated_at",
        ),
    ),
    "sequencing_sample": (
        "sequencing_sample",
        ("sample_id",),
        ("sample_id", "specimen_label", "participant_id"),
    ),
    "family_member": (
        "family_member",
        ("family_id", "participant_id"),
        (
            "family_id",
            "participant_id",
            "father_id",
            "mother_id",
            "affected",
            "twin_group",
            "created_at",
            "updated_at",
        ),
    ),
    "family_member_affected": (
        "family_member_affected",
        ("family_id", "participant_id", "phenotype"),
        (
            "family_id",
            "participant_id",
            "phenotype",
            "phenotype_label",
            "affected",
            "source",
            "created_at",
            "updated_at",
        ),
    ),
    "participant_phenotype": (
        "participant_phenotype",
        ("participant_id", "hpo_id"),
        ("participant_id", "hpo_id", "hpo_name", "observed", "source", "created_at"),
    ),
}

#: A snapshot: entity -> key tuple -> column -> normalised value.
State = dict[str, dict[tuple[str, ...], dict[str, Any]]]


def now() -> dt.datetime:
    """Return the current UTC time without time zone (how the store keeps times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _norm(value: Any) -> Any:
    """Normalise a value so table reads and JSON events compare equal."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def emit(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    entity: str,
    action: str,
    data: dict[str, Any],
    *,
    reason: str,
) -> int:
    """Append an event and apply it to its table, inside the caller's transaction.

    Parameters
    ----------
    con
        Connection of the enclosing :meth:`~biobank.core.store.Store.transaction`.
    principal
        Who made the change.
    entity
        One of :data:`ENTITIES`.
    action
        ``create`` inserts a row with ``data``; ``delete`` removes the row keyed
        by ``data``; any other action (``update``, ``move``, ``consume`` ...)
        sets the non-key columns of ``data`` on the keyed row.
    data
        Key columns plus the columns set.
    reason
        Why (free text, kept with the event).

    Returns
    -------
    int
        The event id.
    """
    return emit_many(con, principal, entity, action, [data], reason=reason)[0]


def emit_many(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    entity: str,
    action: str,
    rows: list[dict[str, Any]],
    *,
    reason: str,
) -> list[int]:
    """Append one event per row and apply them (bulk inserts for ``create``); see :func:`emit`.

    Returns
    -------
    list of int
        The event ids, in row order.
    """
    if not rows:
        return []
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    table, keys, columns = ENTITIES[entity]
    for data in rows:
        unknown = set(data) - set(columns)
        if unknown:
            raise StoreError(f"event for {entity} sets unknown columns {sorted(unknown)}")
    ids = [
        int(r[0])
        for r in con.execute(
            "SELECT nextval('registry_event_seq') FROM range(?)", [len(rows)]
        ).fetchall()
    ]
    stamp = now()
    log = pa.table(
        {
            "event_id": pa.array(ids, pa.int64()),
            "occurred_at": pa.array([stamp] * len(rows), pa.timestamp("us")),
            "user_name": [principal.user] * len(rows),
            "entity": [entity] * len(rows),
            "entity_key": ["/".join(str(d[k]) for k in keys) for d in rows],
            "action": [action] * len(rows),
            "reason": [reason] * len(rows),
            "data": [
                json.dumps({k: _norm(v) for k, v in d.items()}, ensure_ascii=False) for d in rows
            ],
        }
    )
    con.register("_registry_events", log)
    try:
        con.execute(
            "INSERT INTO registry_event SELECT event_id, occurred_at, user_name, entity,"
            " entity_key, action, reason, CAST(data AS JSON) FROM _registry_events"
        )
    finally:
        con.unregister("_registry_events")
    where = " AND ".join(f"{k} = ?" for k in keys)
    if action == "create":
        cols = [c for c in columns if any(c in d for d in rows)]
        new = pa.Table.from_pylist([{c: d.get(c) for c in cols} for d in rows])
        con.register("_registry_rows", new)
        try:
            con.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)}"
                " FROM _registry_rows"
            )
        finally:
            con.unregister("_registry_rows")
        return ids
    for data in rows:
        key_values = [data[k] for k in keys]
        if action == "delete":
            con.execute(f"DELETE FROM {table} WHERE {where}", key_values)
            continue
        sets = [c for c in data if c not in keys]
        if sets:
            con.execute(
                f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in sets)} WHERE {where}",
                [data[c] for c in sets] + key_values,
            )
    return ids


def current_state(con: duckdb.DuckDBPyConnection) -> State:
    """Return the registry tables as a :data:`State` snapshot."""
    state: State = {}
    for entity, (table, keys, columns) in ENTITIES.items():
        rows = con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        snap: dict[tuple[str, ...], dict[str, Any]] = {}
        for row in rows:
            record = {c: _norm(v) for c, v in zip(columns, row, strict=True)}
            snap[tuple(str(record[k]) for k in keys)] = record
        state[entity] = snap
    return state


def replay(con: duckdb.DuckDBPyConnection) -> State:
    """Rebuild the registry state from ``registry_event`` alone, in event order.

    Returns
    -------
    State
        What the tables must hold if every change went through :func:`emit`.
    """
    state: State = {entity: {} for entity in ENTITIES}
    rows = con.execute(
        "SELECT entity, action, CAST(data AS VARCHAR) FROM registry_event ORDER BY event_id"
    ).fetchall()
    for entity, action, data_json in rows:
        _, keys, columns = ENTITIES[entity]
        data = json.loads(data_json)
        key = tuple(str(data[k]) for k in keys)
        if action == "create":
            state[entity][key] = {c: data.get(c) for c in columns}
        elif action == "delete":
            state[entity].pop(key, None)
        else:
            state[entity][key].update(data)
    return state
