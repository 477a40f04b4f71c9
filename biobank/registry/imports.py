"""All-or-nothing CSV import of participants, consents and specimens.

The three files (formats in ``config/README.md`` and ``docs/ARCHITECTURE.md``)
are read with :func:`biobank.core.csvio.read_csv` (UTF-8 or GB18030, true line
numbers), every row is validated field by field and then against the other rows
and the store, and only when *no* row has a problem is anything written, in one
transaction with its provenance and an audit entry. Otherwise
:class:`~biobank.core.errors.ImportRejected` lists every problem with its file, line,
field, value and fix, and the store is unchanged.

Importing the same file again is a no-op (its SHA-256 is in ``provenance``);
a file repeating registered records with the same content skips them; the same
record with different content is a conflict, except a consent's withdrawal
date appearing, which records the withdrawal.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.csvio import CsvFile, parse_csv, read_csv
from biobank.core.errors import ImportRejected, Problem, ValidationError
from biobank.core.ids import center_key, national_id_birth_date, pseudonym, validate_national_id
from biobank.registry import events
from biobank.registry.consent import ConsentCodes, consent_row, parse_duo_codes
from biobank.registry.participants import (
    ParticipantRecord,
    mask_national_id,
    parse_date,
    participant_differences,
    stored_participant,
    validate_participant,
    write_participants,
)
from biobank.registry.specimens import (
    SpecimenRecord,
    check_specimens,
    validate_specimen_fields,
    with_lines,
    write_specimens,
)

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "CONSENT_COLUMNS",
    "FAULT_ENV",
    "PARTICIPANT_COLUMNS",
    "SPECIMEN_COLUMNS",
    "ImportPreview",
    "ImportResult",
    "import_all",
    "import_consents",
    "import_participants",
    "import_specimens",
    "import_upload",
    "preview_import",
    "read_upload",
]

logger = logging.getLogger(__name__)

#: (required, optional) columns of each file.
PARTICIPANT_COLUMNS = (
    ("national_id", "name", "sex", "birth_date", "enrolment_date", "site"),
    ("phone", "cohorts"),
)
CONSENT_COLUMNS = (
    ("national_id", "consent_version", "signed_date", "duo_codes"),
    ("disease", "withdrawn_date"),
)
SPECIMEN_COLUMNS = (
    ("label", "national_id", "specimen_type", "collected_at", "quantity", "unit"),
    (
        "parent_label",
        "anatomical_site",
        "status",
        "freezer",
        "rack",
        "box",
        "position",
        "sequencing_sample_id",
    ),
)

#: Test hook: when set to ``import`` the import pauses (writing the path in
#: ``BIOBANK_FAULT_MARKER``) half way through its transaction, so a test can kill it.
FAULT_ENV = "BIOBANK_FAULT_INJECT"

KINDS = {
    "participants": "registry-participants",
    "consents": "registry-consents",
    "specimens": "registry-specimens",
}


@dataclass
class ImportResult:
    """What an import did (or would have done: nothing is written on error)."""

    kind: str
    source: str
    rows: int
    created: int = 0
    unchanged: int = 0
    updated: int = 0
    already_loaded: bool = False
    load_id: int | None = None
    encoding: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the result as a plain dict (for printing)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class _Plan:
    """The writes an import will make once every row passed."""

    participants: list[ParticipantRecord] = field(default_factory=list)
    consents: list[tuple[str, str, dt.date, ConsentCodes, dt.date | None]] = field(
        default_factory=list
    )
    withdrawals: list[tuple[str, str, dt.date]] = field(default_factory=list)
    specimens: list[SpecimenRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    results: list[ImportResult] = field(default_factory=list)
    files: list[tuple[str, CsvFile]] = field(default_factory=list)
    #: participants registered by this import: pseudonym -> birth date
    pending: dict[str, dt.date] = field(default_factory=dict)


def _id_and_pid(raw: str, key: bytes, problems: list[Problem]) -> tuple[str | None, str | None]:
    try:
        number = validate_national_id(raw)
    except ValidationError as exc:
        problems.append(
            Problem(exc.problem.message, field="national_id", value=mask_national_id(raw))
        )
        return None, None
    return number, pseudonym(number, key)


def _registered(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Return the pseudonyms of every registered participant."""
    return {r[0] for r in con.execute("SELECT participant_id FROM participant").fetchall()}


def _row_problem(csv: CsvFile, line: int, message: str, *, field: str, value: str) -> Problem:
    """A problem of one row of ``csv``."""
    return Problem(message, file=str(csv.path), line=line, field=field, value=value)


def _parsed_date(value: str, fld: str, problems: list[Problem]) -> dt.date | None:
    """Parse a date; a bad one is noted in ``problems`` and gives ``None``."""
    try:
        return parse_date(value, field=fld)
    except ValidationError as exc:
        problems.append(exc.problem)
        return None


def _consent_date_problems(
    signed: dt.date | None, withdrawn: dt.date | None, birth: dt.date | None, today: dt.date
) -> list[Problem]:
    """Check the order of birth, signature, withdrawal and today."""
    found: list[tuple[str, str, dt.date]] = []
    if signed is not None:
        if signed > today:
            found.append(("signed_date is in the future", "signed_date", signed))
        if birth is not None and signed < birth:
            found.append(("signed_date is before the participant's birth", "signed_date", signed))
    if withdrawn is not None:
        if withdrawn > today:
            found.append(("withdrawn_date is in the future", "withdrawn_date", withdrawn))
        if signed is not None and withdrawn < signed:
            found.append(("withdrawn_date is before signed_date", "withdrawn_date", withdrawn))
    return [Problem(message, field=fld, value=str(value)) for message, fld, value in found]


def _plan_participants(
    con: duckdb.DuckDBPyConnection, csv: CsvFile, key: bytes, plan: _Plan
) -> None:
    result = ImportResult("participants", str(csv.path), len(csv.rows), encoding=csv.encoding)
    seen: dict[str, int] = {}
    registered = _registered(con)
    for row in csv.rows:
        record, problems = validate_participant(row.values, key)
        plan.problems.extend(with_lines(problems, file=str(csv.path), line=row.line))
        if record is None:
            continue
        pid = record.participant_id
        if pid in seen:
            plan.problems.append(
                _row_problem(
                    csv,
                    row.line,
                    f"the same person (identity number) is already on line {seen[pid]}: "
                    "register each person once",
                    field="national_id",
                    value=mask_national_id(record.national_id),
                )
            )
            continue
        seen[pid] = row.line
        stored = stored_participant(con, pid) if pid in registered else None
        if stored is not None:
            diffs = participant_differences(stored, record, key)
            if diffs:
                plan.problems.append(
                    _row_problem(
                        csv,
                        row.line,
                        f"this person is already registered as {pid} with different "
                        f"{'; '.join(diffs)}: change a registered participant with "
                        "'biobank participant update'",
                        field="national_id",
                        value=mask_national_id(record.national_id),
                    )
                )
            else:
                result.unchanged += 1
            continue
        plan.participants.append(record)
        plan.pending[pid] = dt.date.fromisoformat(record.identifiers["birth_date"])
        result.created += 1
    plan.results.append(result)
    plan.files.append(("participants", csv))


@dataclass(frozen=True)
class _ConsentRow:
    """A consent row whose fields all passed."""

    pid: str
    version: str
    signed: dt.date
    codes: ConsentCodes
    withdrawn: dt.date | None


def _check_consent_row(
    values: Mapping[str, str], key: bytes, known: Container[str], today: dt.date
) -> tuple[_ConsentRow | None, list[Problem]]:
    """Check one consent row's fields (``known``: pseudonyms registered or being registered)."""
    problems: list[Problem] = []
    number, pid = _id_and_pid(values.get("national_id", ""), key, problems)
    version = values.get("consent_version", "")
    if not version:
        problems.append(
            Problem("consent_version is required (e.g. v1)", field="consent_version", value="")
        )
    codes: ConsentCodes | None = None
    try:
        codes = parse_duo_codes(values.get("duo_codes", ""), values.get("disease", "") or None)
    except ValidationError as exc:
        problems.append(exc.problem)
    signed = _parsed_date(values.get("signed_date", ""), "signed_date", problems)
    withdrawn = None
    if values.get("withdrawn_date", ""):
        withdrawn = _parsed_date(values.get("withdrawn_date", ""), "withdrawn_date", problems)
    birth = national_id_birth_date(number) if number is not None else None
    problems += _consent_date_problems(signed, withdrawn, birth, today)
    if pid is not None and pid not in known:
        problems.append(
            Problem(
                "no participant with this identity number is registered: import "
                "participants.csv first (or use 'registry import-all')",
                field="national_id",
                value=mask_national_id(values.get("national_id", "")),
            )
        )
    if problems:
        return None, problems
    assert pid is not None
    assert codes is not None
    assert signed is not None
    return _ConsentRow(pid, version, signed, codes, withdrawn), []


def _stored_consents(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(pseudonym, version) -> signed date, primary code, disease, modifiers, withdrawn date."""
    return {
        (r[0], r[1]): tuple(r[2:])
        for r in con.execute(
            "SELECT participant_id, consent_version, signed_date, primary_code, disease,"
            " modifiers, withdrawn_date FROM consent"
        ).fetchall()
    }


def _plan_consent(
    csv: CsvFile,
    line: int,
    c: _ConsentRow,
    stored: tuple[Any, ...] | None,
    plan: _Plan,
    result: ImportResult,
) -> None:
    """Plan one checked consent against the stored version (if any)."""
    if stored is None:
        plan.consents.append((c.pid, c.version, c.signed, c.codes, c.withdrawn))
        result.created += 1
        return
    given = (c.signed, c.codes.primary_code, c.codes.disease, ";".join(c.codes.modifiers))
    if tuple(stored[:4]) != given:
        names = ["signed_date", "duo_codes", "disease", "duo_codes"]
        diffs = sorted({names[i] for i in range(4) if stored[i] != given[i]})
        plan.problems.append(
            _row_problem(
                csv,
                line,
                f"consent version '{c.version}' of {c.pid} is registered with different "
                f"{', '.join(diffs)}: register a new consent version instead",
                field="consent_version",
                value=c.version,
            )
        )
    elif stored[4] == c.withdrawn:
        result.unchanged += 1
    elif stored[4] is None and c.withdrawn is not None:
        plan.withdrawals.append((c.pid, c.version, c.withdrawn))
        result.updated += 1
    else:
        plan.problems.append(
            _row_problem(
                csv,
                line,
                f"consent version '{c.version}' of {c.pid} was withdrawn on {stored[4]}; a "
                "withdrawal is not undone or re-dated: register a new consent version",
                field="withdrawn_date",
                value=str(c.withdrawn or ""),
            )
        )


def _plan_consents(con: duckdb.DuckDBPyConnection, csv: CsvFile, key: bytes, plan: _Plan) -> None:
    result = ImportResult("consents", str(csv.path), len(csv.rows), encoding=csv.encoding)
    today = dt.date.today()
    seen: dict[tuple[str, str], int] = {}
    registered = _registered(con)
    known = registered | set(plan.pending)
    stored_consents = _stored_consents(con)
    for row in csv.rows:
        checked, problems = _check_consent_row(row.values, key, known, today)
        plan.problems.extend(with_lines(problems, file=str(csv.path), line=row.line))
        if checked is None:
            continue
        pid, version = checked.pid, checked.version
        if (pid, version) in seen:
            plan.problems.append(
                _row_problem(
                    csv,
                    row.line,
                    f"consent version '{version}' of this person is already on line "
                    f"{seen[(pid, version)]}",
                    field="consent_version",
                    value=version,
                )
            )
            continue
        seen[(pid, version)] = row.line
        _plan_consent(csv, row.line, checked, stored_consents.get((pid, version)), plan, result)
    plan.results.append(result)
    plan.files.append(("consents", csv))


def _plan_specimens(con: duckdb.DuckDBPyConnection, csv: CsvFile, key: bytes, plan: _Plan) -> None:
    result = ImportResult("specimens", str(csv.path), len(csv.rows), encoding=csv.encoding)
    records: list[tuple[int | None, SpecimenRecord]] = []
    births: dict[str, dt.date] = {}
    for row in csv.rows:
        problems: list[Problem] = []
        number, pid = _id_and_pid(row["national_id"], key, problems)
        rec, more = validate_specimen_fields(row.values, pid)
        problems.extend(more)
        plan.problems.extend(with_lines(problems, file=str(csv.path), line=row.line))
        if rec is not None and number is not None and pid is not None:
            records.append((row.line, rec))
            births[pid] = national_id_birth_date(number)
    todo, problems = check_specimens(
        con, records, birth_dates=births, known_participants=plan.pending
    )
    plan.problems.extend(with_lines(problems, file=str(csv.path)))
    plan.specimens.extend(todo)
    result.created = len(todo)
    result.unchanged = len(records) - len(todo)  # identical to stored specimens
    plan.results.append(result)
    plan.files.append(("specimens", csv))


def _fault_point() -> None:
    """Pause inside the import transaction when the test hook asks for it."""
    if os.environ.get(FAULT_ENV) == "import":
        marker = os.environ.get("BIOBANK_FAULT_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        logger.warning("%s=import: pausing inside the import transaction", FAULT_ENV)
        time.sleep(120)


def _execute(store: Store, principal: Principal, plan: _Plan) -> list[ImportResult]:
    if plan.problems:
        first_file = plan.files[0][1].path if len(plan.files) == 1 else None
        raise ImportRejected(plan.problems, file=first_file)
    reason = "CSV import"
    with store.transaction() as con:
        write_participants(con, principal, plan.participants, center_key(store.path), reason=reason)
        consents = [
            consent_row(
                con, pid, version=version, signed_date=signed, codes=codes, withdrawn_date=withdrawn
            )
            for pid, version, signed, codes, withdrawn in plan.consents
        ]
        events.emit_many(con, principal, "consent", "create", consents, reason=reason)
        events.emit_many(
            con,
            principal,
            "consent",
            "withdraw",
            [
                {"participant_id": pid, "consent_version": version, "withdrawn_date": withdrawn}
                for pid, version, withdrawn in plan.withdrawals
            ],
            reason=reason,
        )
        _fault_point()
        write_specimens(con, principal, plan.specimens, reason=reason)
        for (kind, csv), result in zip(plan.files, plan.results, strict=True):
            result.load_id = store.record_provenance(
                con,
                kind=KINDS[kind],
                source=str(csv.path),
                checksum=csv.checksum,
                parameters={"encoding": csv.encoding, "rows": len(csv.rows)},
                user=principal.user,
            )
            audit.record(
                con,
                principal,
                "registry.import",
                str(csv.path),
                {
                    "kind": kind,
                    "checksum": csv.checksum,
                    "created": result.created,
                    "unchanged": result.unchanged,
                    "updated": result.updated,
                },
            )
    return plan.results


_COLUMNS = {
    "participants": PARTICIPANT_COLUMNS,
    "consents": CONSENT_COLUMNS,
    "specimens": SPECIMEN_COLUMNS,
}
_PLANNERS = {
    "participants": _plan_participants,
    "consents": _plan_consents,
    "specimens": _plan_specimens,
}


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValidationError(
            f"unknown kind of import '{kind}': one of {', '.join(KINDS)}", field="kind", value=kind
        )
    return kind


def _read(kind: str, path: str | Path) -> CsvFile:
    required, optional = _COLUMNS[_kind(kind)]
    return read_csv(path, required=required, optional=optional)


def read_upload(kind: str, data: bytes, *, source: str) -> CsvFile:
    """Decode and parse the bytes of an uploaded ``kind`` file (as :func:`read_csv` would).

    Raises
    ------
    ValidationError
        For an unknown kind, or bytes neither UTF-8 nor GB18030 (naming the
        encodings tried), or an empty file.
    ImportRejected
        For a bad header or malformed rows.
    """
    required, optional = _COLUMNS[_kind(kind)]
    return parse_csv(data, path=source, required=required, optional=optional)


def _already(store: Store, kind: str, csv: CsvFile) -> ImportResult | None:
    load = store.find_load(kind=KINDS[kind], checksum=csv.checksum)
    if load is None:
        return None
    logger.info("%s was already imported (load %d): nothing to do", csv.path, load)
    return ImportResult(
        kind,
        str(csv.path),
        len(csv.rows),
        unchanged=len(csv.rows),
        already_loaded=True,
        load_id=load,
        encoding=csv.encoding,
    )


def _planned(store: Store, kind: str, csv: CsvFile) -> tuple[ImportResult | None, _Plan]:
    """The plan of importing ``csv`` (or the earlier load of the same bytes)."""
    plan = _Plan()
    done = _already(store, kind, csv)
    if done is None:
        _PLANNERS[kind](store.con, csv, center_key(store.path), plan)
    return done, plan


def _import_csv(store: Store, principal: Principal, kind: str, csv: CsvFile) -> ImportResult:
    done, plan = _planned(store, kind, csv)
    if done is not None:
        return done
    return _execute(store, principal, plan)[0]


def _import_one(store: Store, principal: Principal, kind: str, path: str | Path) -> ImportResult:
    require(principal, Permission.REGISTRY_WRITE)
    return _import_csv(store, principal, kind, _read(kind, path))


#: Rows of what an import adds or changes shown by :func:`preview_import`, at most.
PREVIEW_ROWS = 500


@dataclass
class ImportPreview:
    """What importing a file would do, computed without writing anything.

    ``added`` and ``changed`` describe the records (first :data:`PREVIEW_ROWS`
    of each; never a name or a full identity number); ``problems`` lists every
    bad row (line, field, value, message with the fix). The import would be
    written only if ``problems`` is empty.
    """

    result: ImportResult
    problems: list[Problem]
    added: list[dict[str, Any]]
    changed: list[dict[str, Any]]


def _preview_rows(plan: _Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    added: list[dict[str, Any]] = [
        {
            "participant_id": p.participant_id,
            "national_id": mask_national_id(p.national_id),
            "sex": p.sex,
            "birth_year": p.birth_year,
            "site": p.site,
            "cohorts": ";".join(p.cohorts),
        }
        for p in plan.participants[:PREVIEW_ROWS]
    ]
    added += [
        {
            "participant_id": pid,
            "consent_version": version,
            "signed_date": signed.isoformat(),
            "duo_codes": ";".join(
                [
                    codes.primary_code + (f":{codes.disease}" if codes.disease else ""),
                    *codes.modifiers,
                ]
            ),
            "withdrawn_date": withdrawn.isoformat() if withdrawn else "",
        }
        for pid, version, signed, codes, withdrawn in plan.consents[:PREVIEW_ROWS]
    ]
    added += [
        {
            "label": r.label,
            "participant_id": r.participant_id,
            "specimen_type": r.specimen_type,
            "quantity": f"{r.quantity:g} {r.unit}",
            "status": r.status,
            "position": "/".join(str(x) for x in (r.freezer, r.rack, r.box, r.position))
            if r.freezer
            else "",
        }
        for r in plan.specimens[:PREVIEW_ROWS]
    ]
    changed = [
        {"participant_id": pid, "consent_version": version, "withdrawn_date": when.isoformat()}
        for pid, version, when in plan.withdrawals[:PREVIEW_ROWS]
    ]
    return added, changed


def preview_import(
    store: Store, principal: Principal, kind: str, data: bytes, *, source: str
) -> ImportPreview:
    """Check an uploaded file against the store and say what importing it would do.

    Nothing is written (the same checks as :func:`import_upload`, which a
    preview without problems promises will succeed on an unchanged store).

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError, ImportRejected
        As for :func:`read_upload` (the file as a whole cannot be read).
    """
    require(principal, Permission.REGISTRY_WRITE)
    csv = read_upload(kind, data, source=source)
    done, plan = _planned(store, kind, csv)
    if done is not None:
        return ImportPreview(done, [], [], [])
    added, changed = _preview_rows(plan)
    return ImportPreview(plan.results[0], list(plan.problems), added, changed)


def import_upload(
    store: Store, principal: Principal, kind: str, data: bytes, *, source: str
) -> ImportResult:
    """Import the bytes of an uploaded ``kind`` file, all or nothing.

    See :func:`import_participants`; ``source`` names the file in the provenance.

    Raises
    ------
    AccessDenied, ValidationError, ImportRejected
        As for :func:`import_participants`.
    """
    require(principal, Permission.REGISTRY_WRITE)
    return _import_csv(store, principal, kind, read_upload(kind, data, source=source))


def import_participants(store: Store, principal: Principal, path: str | Path) -> ImportResult:
    """Import ``participants.csv`` all or nothing.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError
        If the file cannot be read or decoded.
    ImportRejected
        Listing every bad row (nothing is written).
    """
    return _import_one(store, principal, "participants", path)


def import_consents(store: Store, principal: Principal, path: str | Path) -> ImportResult:
    """Import ``consents.csv`` all or nothing (participants must be registered).

    Raises
    ------
    AccessDenied, ValidationError, ImportRejected
        As for :func:`import_participants`.
    """
    return _import_one(store, principal, "consents", path)


def import_specimens(store: Store, principal: Principal, path: str | Path) -> ImportResult:
    """Import ``specimens.csv`` all or nothing (participants must be registered).

    Raises
    ------
    AccessDenied, ValidationError, ImportRejected
        As for :func:`import_participants`.
    """
    return _import_one(store, principal, "specimens", path)


def import_all(store: Store, principal: Principal, directory: str | Path) -> list[ImportResult]:
    """Import a folder's participants.csv, consents.csv and specimens.csv in one transaction.

    Consents and specimens may refer to participants of the same folder. Files
    already imported (same SHA-256) are skipped.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError
        If a file is missing, unreadable or undecodable.
    ImportRejected
        Listing every bad row of all three files (nothing is written).
    """
    require(principal, Permission.REGISTRY_WRITE)
    directory = Path(directory)
    missing = [k for k in KINDS if not (directory / f"{k}.csv").is_file()]
    if missing:
        raise ValidationError(
            f"{directory} lacks {', '.join(f'{k}.csv' for k in missing)}: import-all needs "
            "participants.csv, consents.csv and specimens.csv",
            file=directory,
        )
    files = {k: _read(k, directory / f"{k}.csv") for k in KINDS}
    key = center_key(store.path)
    plan = _Plan()
    skipped: dict[str, ImportResult] = {}
    planners = _PLANNERS
    for kind, csv in files.items():
        done = _already(store, kind, csv)
        if done is not None:
            skipped[kind] = done
            continue
        planners[kind](store.con, csv, key, plan)
    if plan.files:
        _execute(store, principal, plan)
    by_kind = {r.kind: r for r in plan.results} | skipped
    return [by_kind[k] for k in KINDS]
