"""Project extracts: the data an approved request may take away, in one DuckDB file.

:func:`build_extract` writes, for an approved, in-force request
(:mod:`biobank.research.access_requests`):

* ``<project>-issue<N>.duckdb``: one table per dataset of the approved fields
  (``clinical_person``, ``clinical_condition`` ... named as in the store),
  holding **only** the participants whose current consent permits the
  approved purpose (withdrawals honoured) and who match the approved cohort
  definition, and only the approved columns. The person key of every table is
  ``participant_id``, a **per-project pseudonym**: ``X<request>-`` and the
  first 12 base-32 characters of HMAC-SHA256(project key, store pseudonym),
  where the project key is HMAC-SHA256(center key, ``"biobank-extract:<request>"``).
  Two projects get unrelated pseudonyms for the same person; re-issues of one
  project keep theirs; the center (who holds the center key) maps back with
  :func:`map_back`. Genotype calls (``genotype_call``) are keyed by the same
  pseudonym instead of the store's sample key. Families get per-project
  pseudonyms the same way (:func:`project_family_pseudonyms`: ``XF<request>-``
  and HMAC of ``"family:<family id>"``): a ``family_member`` table carries them
  as ``family_id`` and its ``father_id``/``mother_id`` are the parents' project
  pseudonyms (``NULL`` for a parent outside the extract).
* ``<project>-issue<N>.withdrawals.csv``: the project pseudonyms that were in
  the previous issue and are not in this one, with the reason (consent
  withdrawn or no longer permitting the purpose; no longer in the cohort), so
  the project deletes their data (the way large biobanks notify approved
  researchers). :func:`withdrawal_list` gives the same list between issues.
* ``<project>-issue<N>.manifest.json``: the request and its approval, the
  fields and their classes, the row count of every table, the number of
  participants and of withdrawals, and the sha256 and size of both files.

The file is written next to its final name and renamed only when complete, so
a failed extract leaves nothing behind; the issue, its members (store
pseudonyms, for the next withdrawal list) and an ``access.extract`` audit
entry are recorded in one transaction after it.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.classification import check_requestable, column_class
from biobank.core.errors import AccessDenied, StoreError, ValidationError
from biobank.core.ids import center_key
from biobank.core.store import file_checksum
from biobank.research.access_requests import AccessRequest, check_hgr, check_in_force, get_request

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "EXTRACT_DATASETS",
    "ExtractResult",
    "build_extract",
    "download_extract",
    "list_extracts",
    "map_back",
    "project_family_pseudonyms",
    "project_pseudonyms",
    "request_participants",
    "withdrawal_list",
]

#: Store tables an extract can take fields from -> how a row finds its participant:
#: ``"person"`` (a ``participant_id`` column), ``"sample"`` (a ``sample_key``
#: column, via ``genotype_sample``) or ``"none"`` (not about a person).
EXTRACT_DATASETS: dict[str, str] = {
    "clinical_person": "person",
    "clinical_condition": "person",
    "clinical_measurement": "person",
    "clinical_observation_period": "person",
    "clinical_death": "person",
    "participant": "person",
    "participant_cohort": "person",
    "participant_phenotype": "person",
    "family_member": "person",
    "genotype_call_all": "sample",
    "variant": "none",
}
#: The table name a dataset gets in the extract.
_OUT_NAME = {"genotype_call_all": "genotype_call"}


@dataclass(frozen=True)
class ExtractResult:
    """What :func:`build_extract` wrote.

    Attributes
    ----------
    extract_id, issue
        The issue's id and its number for the request (1, 2, ...).
    path, manifest_path, withdrawals_path
        The DuckDB file, the manifest (JSON) and the withdrawal list (CSV).
    manifest
        The manifest's content.
    """

    extract_id: int
    issue: int
    path: Path
    manifest_path: Path
    withdrawals_path: Path
    manifest: dict[str, Any]


def _project_key(store: Store, request_id: int) -> bytes:
    return hmac.new(
        center_key(store.path), f"biobank-extract:{request_id}".encode(), hashlib.sha256
    ).digest()


def project_pseudonyms(store: Store, request_id: int, participant_ids: Sequence[str]) -> list[str]:
    """Return the per-project pseudonyms of store pseudonyms (same order).

    Raises
    ------
    ConfigError
        If the center key is not available.
    """
    key = _project_key(store, request_id)
    return [f"X{request_id}-" + _digest(key, pid) for pid in participant_ids]


def project_family_pseudonyms(
    store: Store, request_id: int, family_ids: Sequence[str]
) -> list[str]:
    """Return the per-project pseudonyms of family ids (same order): ``XF<request>-...``.

    Keyed like :func:`project_pseudonyms` (the project key) over ``"family:<id>"``,
    so a family pseudonym is never a participant's, and two projects cannot link
    their families.

    Raises
    ------
    ConfigError
        If the center key is not available.
    """
    key = _project_key(store, request_id)
    return [f"XF{request_id}-" + _digest(key, f"family:{fid}") for fid in family_ids]


def _digest(key: bytes, value: str) -> str:
    mac = hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii")[:12]


def _usable(store: Store, principal: Principal, request_id: int) -> AccessRequest:
    require(principal, Permission.ACCESS_EXTRACT)
    req = get_request(store.con, request_id)
    try:
        check_in_force(req, "only an approved request in force can be extracted")
        check_hgr(req)
        check_requestable(list(req.fields))
    except (AccessDenied, ValidationError) as exc:
        if isinstance(exc, AccessDenied):
            exc.mark_audited()  # the command line does not record it again
        audit.record_refusal(
            store.con,
            user=principal.user,
            role=principal.role.value,
            action="access.refused",
            target=f"access_request:{request_id}",
            detail={"attempted": "access.extract", "reason": str(exc)[:300]},
        )
        raise
    return req


def _fields_by_table(req: AccessRequest) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for field in req.fields:
        table, _, column = field.partition(".")
        if table not in EXTRACT_DATASETS:
            raise ValidationError(
                f"{field}: table {table} is not an extract dataset (one of"
                f" {', '.join(EXTRACT_DATASETS)})",
                field="fields",
                value=field,
            )
        out.setdefault(table, []).append(column)
    return out


def request_participants(store: Store, req: AccessRequest) -> list[str]:
    """Return the store pseudonyms a request covers, sorted.

    The participants whose current consent permits the request's purpose
    (withdrawals honoured) and who match its cohort definition, if any: the
    members of an extract, and of a family export
    (:mod:`biobank.research.family_exports`).
    """
    from biobank.clinical.cohorts import cohort_sql
    from biobank.registry.consent import permitted_participants_sql

    crit = req.criterion()
    if crit is None:
        sql = f"SELECT participant_id FROM ({permitted_participants_sql(req.purpose)})"
        params: list[Any] = []
    else:
        sql, params = cohort_sql(crit, purpose=req.purpose)
    rows = store.con.execute(f"SELECT DISTINCT participant_id FROM ({sql}) ORDER BY 1", params)
    return [str(r[0]) for r in rows.fetchall()]


def _table_sql(table: str, columns: list[str]) -> str:
    kind = EXTRACT_DATASETS[table]
    cols = ", ".join(f't."{c}"' for c in columns)
    if table == "family_member":
        return _family_sql(columns)
    if kind == "person":
        return (
            f"SELECT m.pseudonym AS participant_id, {cols} FROM {table} t"
            " JOIN _extract_map m ON m.participant_id = t.participant_id"
            " ORDER BY ALL"
        )
    if kind == "sample":
        extra = ", ".join(f't."{c}"' for c in columns if c != "variant_key")
        return (
            "SELECT m.pseudonym AS participant_id, t.variant_key"
            + (f", {extra}" if extra else "")
            + f" FROM {table} t JOIN genotype_sample s ON s.sample_key = t.sample_key"
            " JOIN _extract_map m ON m.participant_id = s.participant_id ORDER BY ALL"
        )
    return f"SELECT DISTINCT {cols} FROM {table} t ORDER BY ALL"


def _family_sql(columns: list[str]) -> str:
    """The ``family_member`` table of an extract: every id a project pseudonym."""
    cols = ["m.pseudonym AS participant_id"]
    cols += [
        "fm.pseudonym AS family_id" if c == "family_id" else f't."{c}"'
        for c in columns
        if c not in ("father_id", "mother_id")
    ]
    cols += ["fa.pseudonym AS father_id", "mo.pseudonym AS mother_id"]
    return (
        f"SELECT {', '.join(cols)} FROM family_member t"
        " JOIN _extract_map m ON m.participant_id = t.participant_id"
        " JOIN _extract_family_map fm ON fm.family_id = t.family_id"
        " LEFT JOIN _extract_map fa ON fa.participant_id = t.father_id"
        " LEFT JOIN _extract_map mo ON mo.participant_id = t.mother_id"
        " ORDER BY ALL"
    )


def _previous(store: Store, request_id: int) -> tuple[int | None, int, set[str]]:
    row = store.con.execute(
        "SELECT extract_id, issue FROM access_extract WHERE request_id = ?"
        " ORDER BY issue DESC LIMIT 1",
        [request_id],
    ).fetchone()
    if row is None:
        return None, 0, set()
    members = store.con.execute(
        "SELECT participant_id FROM access_extract_member WHERE extract_id = ?", [row[0]]
    ).fetchall()
    return int(row[0]), int(row[1]), {str(m[0]) for m in members}


def _withdrawn(
    store: Store, req: AccessRequest, previous: set[str], current: set[str]
) -> pl.DataFrame:
    from biobank.registry.consent import permitted_participants

    gone = sorted(previous - current)
    permitted = set(permitted_participants(store.con, req.purpose))
    reasons = [
        "no longer in the cohort definition"
        if pid in permitted
        else "consent withdrawn or no longer permits the purpose"
        for pid in gone
    ]
    return pl.DataFrame(
        {"participant_id": project_pseudonyms(store, req.request_id, gone), "reason": reasons},
        schema={"participant_id": pl.String, "reason": pl.String},
    ).sort("participant_id")


def withdrawal_list(store: Store, principal: Principal, request_id: int) -> pl.DataFrame:
    """Return who left since the last issue of ``request_id`` (project pseudonyms, audited).

    Raises
    ------
    AccessDenied
        If the principal may not issue extracts.
    NotFoundError
        If the request does not exist.
    """
    require(principal, Permission.ACCESS_EXTRACT)
    req = get_request(store.con, request_id)
    _, issue, previous = _previous(store, request_id)
    out = _withdrawn(
        store, req, previous, set(request_participants(store, req)) if previous else set()
    )
    with store.transaction() as con:
        audit.record(
            con,
            principal,
            "access.withdrawals",
            f"access_request:{request_id}",
            {"issue": issue, "rows": out.height},
        )
    return out


def _family_map(store: Store, request_id: int) -> pl.DataFrame:
    ids = [
        str(r[0])
        for r in store.con.execute(
            "SELECT DISTINCT family_id FROM family_member ORDER BY 1"
        ).fetchall()
    ]
    return pl.DataFrame(
        {"family_id": ids, "pseudonym": project_family_pseudonyms(store, request_id, ids)},
        schema={"family_id": pl.String, "pseudonym": pl.String},
    )


def _write(
    store: Store,
    target: Path,
    tables: dict[str, list[str]],
    mapping: pl.DataFrame,
    request_id: int,
) -> dict[str, int]:
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    cur = store.cursor()
    counts: dict[str, int] = {}
    try:
        cur.register("_extract_map", mapping)
        if "family_member" in tables:
            cur.register("_extract_family_map", _family_map(store, request_id))
        cur.execute("ATTACH '" + str(tmp).replace("'", "''") + "' AS extract_out")
        try:
            for table, columns in tables.items():
                name = _OUT_NAME.get(table, table)
                cur.execute(f"CREATE TABLE extract_out.{name} AS {_table_sql(table, columns)}")
                row = cur.execute(f"SELECT count(*) FROM extract_out.{name}").fetchone()
                counts[name] = int(row[0]) if row else 0
        finally:
            cur.execute("DETACH extract_out")
        os.replace(tmp, target)
    except duckdb.Error as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"could not write the extract {target}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cur.close()
    return counts


def _manifest(
    req: AccessRequest,
    *,
    issue: int,
    principal: Principal,
    counts: dict[str, int],
    n_participants: int,
    withdrawals: int,
    files: dict[str, Path],
) -> dict[str, Any]:
    return {
        "format": "biobank-extract/1",
        "project": req.project,
        "title": req.title,
        "request_id": req.request_id,
        "issue": issue,
        "previous_issue": issue - 1 if issue > 1 else None,
        "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "created_by": principal.user,
        "approval": {
            "applicant": req.applicant,
            "institution": req.institution,
            "country": req.country,
            "foreign_party": req.foreign_party,
            "purpose": req.purpose,
            "approved_by": req.decided_by,
            "approved_at": req.decided_at.isoformat(timespec="seconds") if req.decided_at else None,
            "reason": req.decision_reason,
            "expires_on": req.expires_on.isoformat() if req.expires_on else None,
            "hgr_approval": req.hgr_approval,
        },
        "cohort": json.loads(req.cohort) if req.cohort else None,
        "fields": [{"field": f, "class": column_class(*f.split(".", 1)).value} for f in req.fields],
        "pseudonyms": "participant_id is HMAC-SHA256 keyed per project (request); the center"
        " maps back, other projects cannot link",
        "participants": n_participants,
        "withdrawn_since_previous_issue": withdrawals,
        "tables": {name: {"rows": n} for name, n in counts.items()},
        "files": {
            label: {"name": p.name, "sha256": file_checksum(p), "bytes": p.stat().st_size}
            for label, p in files.items()
        },
    }


def build_extract(
    store: Store, principal: Principal, request_id: int, directory: str | Path
) -> ExtractResult:
    """Write the next issue of the extract of an approved request into ``directory``.

    Raises
    ------
    AccessDenied
        If the principal may not issue extracts, or the request is not approved
        and in force, or it involves a foreign party without the authority's
        approval number (refusals audited).
    ValidationError
        If a field is not extractable.
    StoreError
        If the file cannot be written (nothing is left behind or recorded).
    """
    req = _usable(store, principal, request_id)
    tables = _fields_by_table(req)
    members = request_participants(store, req)
    _, last_issue, previous = _previous(store, request_id)
    issue = last_issue + 1
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{req.project}-issue{issue}"
    target = out_dir / f"{stem}.duckdb"
    if target.exists():
        raise ValidationError(
            f"{target} exists: choose another directory", field="directory", value=str(out_dir)
        )
    mapping = pl.DataFrame(
        {"participant_id": members, "pseudonym": project_pseudonyms(store, request_id, members)},
        schema={"participant_id": pl.String, "pseudonym": pl.String},
    )
    counts = _write(store, target, tables, mapping, request_id)
    gone = _withdrawn(store, req, previous, set(members))
    wpath = out_dir / f"{stem}.withdrawals.csv"
    with open(wpath, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["participant_id", "reason"])
        writer.writerows(gone.iter_rows())
    manifest = _manifest(
        req,
        issue=issue,
        principal=principal,
        counts=counts,
        n_participants=len(members),
        withdrawals=gone.height,
        files={"extract": target, "withdrawals": wpath},
    )
    mpath = out_dir / f"{stem}.manifest.json"
    mpath.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO access_extract (request_id, issue, path, sha256, n_participants,"
            " n_withdrawn, manifest, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING extract_id",
            [
                request_id,
                issue,
                str(target),
                manifest["files"]["extract"]["sha256"],
                len(members),
                gone.height,
                json.dumps(manifest, ensure_ascii=False),
                principal.user,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            ],
        ).fetchone()
        assert row is not None
        extract_id = int(row[0])
        con.register("_extract_members", mapping.select("participant_id"))
        con.execute(
            "INSERT INTO access_extract_member SELECT ?, participant_id FROM _extract_members",
            [extract_id],
        )
        con.unregister("_extract_members")
        audit.record(
            con,
            principal,
            "access.extract",
            f"access_request:{request_id}",
            {
                "issue": issue,
                "participants": len(members),
                "withdrawn": gone.height,
                "sha256": manifest["files"]["extract"]["sha256"],
                "tables": counts,
            },
        )
    return ExtractResult(extract_id, issue, target, mpath, wpath, manifest)


def map_back(
    store: Store, principal: Principal, request_id: int, pseudonyms: Sequence[str]
) -> dict[str, str | None]:
    """Return store pseudonyms for project pseudonyms of ``request_id`` (center only, audited).

    A pseudonym of no participant of the store maps to ``None``.

    Raises
    ------
    AccessDenied
        If the principal may not issue extracts.
    """
    require(principal, Permission.ACCESS_EXTRACT)
    ids = [
        str(r[0]) for r in store.con.execute("SELECT participant_id FROM participant").fetchall()
    ]
    table = dict(zip(project_pseudonyms(store, request_id, ids), ids, strict=True))
    out = {p: table.get(p) for p in pseudonyms}
    with store.transaction() as con:
        audit.record(
            con,
            principal,
            "access.map_back",
            f"access_request:{request_id}",
            {"rows": len(out), "found": sum(v is not None for v in out.values())},
        )
    return out


def list_extracts(store: Store, principal: Principal) -> pl.DataFrame:
    """Return the issued extracts the principal may see (applicants: of their requests).

    Columns: ``extract_id, request_id, project, issue, n_participants,
    n_withdrawn, sha256, created_at``.
    """
    mine = not principal.can(Permission.ACCESS_EXTRACT)
    if mine:
        require(principal, Permission.ACCESS_REQUEST)
    return store.con.execute(
        "SELECT e.extract_id, e.request_id, r.project, e.issue, e.n_participants,"
        " e.n_withdrawn, e.sha256, e.created_at FROM access_extract e"
        " JOIN access_request r USING (request_id)"
        f" WHERE {'r.applicant = ?' if mine else '? IS NOT NULL'} ORDER BY e.extract_id",
        [principal.user],
    ).pl()


def download_extract(store: Store, principal: Principal, extract_id: int) -> Path:
    """Return the file of an extract for its applicant to download (audited ``access.download``).

    Raises
    ------
    NotFoundError
        If there is no such extract of the principal's requests.
    AccessDenied
        If the request is no longer in force, or lacks a required HGR approval.
    StoreError
        If the file is missing or its checksum differs from the one recorded.
    """
    from biobank.core.errors import NotFoundError

    require(principal, Permission.ACCESS_REQUEST)
    row = store.con.execute(
        "SELECT e.request_id, e.path, e.sha256 FROM access_extract e"
        " JOIN access_request r USING (request_id) WHERE e.extract_id = ? AND r.applicant = ?",
        [extract_id, principal.user],
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no extract {extract_id} of your requests")
    req = get_request(store.con, int(row[0]))
    check_in_force(req, "its extracts can no longer be downloaded")
    check_hgr(req)
    path = Path(str(row[1]))
    if not path.exists() or file_checksum(path) != row[2]:
        raise StoreError(
            f"extract {extract_id} at {path} is missing or changed since it was issued:"
            " ask the data access committee to re-issue it"
        )
    with store.transaction() as con:
        audit.record(
            con,
            principal,
            "access.download",
            f"access_extract:{extract_id}",
            {"request": req.request_id, "sha256": row[2]},
        )
    return path
