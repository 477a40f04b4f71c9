"""Loading clinical outcomes: an OMOP CDM subset keyed to registry participants.

``biobank load-clinical DIR`` reads these comma-separated files (UTF-8 or
GB18030, header row; see ``docs/queries.md``):

========================  ========  ==============================================================
file                      needed    columns
========================  ========  ==============================================================
person.csv                yes       person_id, person_source_value (national ID),
                                    gender_source_value (F|M), year_of_birth, month_of_birth,
                                    day_of_birth
condition_occurrence.csv  yes       condition_occurrence_id, person_id, condition_source_value
                                    (ICD-10, :mod:`biobank.core.icd10`), condition_start_date,
                                    condition_end_date
measurement.csv           no        measurement_id, person_id, measurement_source_value,
                                    measurement_date, value_as_number, unit_source_value
observation_period.csv    no        observation_period_id, person_id,
                                    observation_period_start_date, observation_period_end_date
death.csv                 no        person_id, death_date, cause_source_value (ICD-10)
========================  ========  ==============================================================

``person_source_value`` is the resident identity number: it is validated
(:func:`biobank.core.ids.validate_national_id`) and replaced by the participant
pseudonym at once; persons who are not registered participants are refused.
Only the pseudonym, the year of birth, the sex and the dates of events are
stored (month and day of birth are checked against the identity number and
dropped). The OMOP ``*_id`` columns are local to the export and not stored.

A load is all or nothing: every bad row of every file is reported in one
:class:`~biobank.core.errors.ImportRejected` (file, line, field, value) and nothing
is written. Loading the same files again is a no-op (the provenance table
knows their checksums), and rows already in the store are never duplicated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from biobank.core import audit, icd10
from biobank.core.access import Permission, Principal, require
from biobank.core.csvio import CsvFile, CsvRow, read_csv
from biobank.core.errors import ImportRejected, Problem, ValidationError
from biobank.core.ids import center_key, national_id_birth_date, pseudonym, validate_national_id

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = ["CLINICAL_FILES", "ClinicalLoad", "load_clinical"]

logger = logging.getLogger(__name__)

#: File name -> (required columns, optional columns, must the file exist).
CLINICAL_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "person.csv": (
        ("person_id", "person_source_value", "gender_source_value", "year_of_birth"),
        ("month_of_birth", "day_of_birth"),
        True,
    ),
    "condition_occurrence.csv": (
        ("person_id", "condition_source_value", "condition_start_date"),
        ("condition_occurrence_id", "condition_end_date"),
        True,
    ),
    "measurement.csv": (
        ("person_id", "measurement_source_value", "measurement_date", "value_as_number"),
        ("measurement_id", "unit_source_value"),
        False,
    ),
    "observation_period.csv": (
        ("person_id", "observation_period_start_date", "observation_period_end_date"),
        ("observation_period_id",),
        False,
    ),
    "death.csv": (("person_id", "death_date"), ("cause_source_value",), False),
}

_SEX = {"F": "female", "M": "male", "FEMALE": "female", "MALE": "male"}

T = TypeVar("T")


@dataclass(frozen=True)
class ClinicalLoad:
    """What :func:`load_clinical` did.

    Attributes
    ----------
    load_id
        The provenance id of this load (or of the earlier identical load).
    already_loaded
        The same files were loaded before: nothing was written.
    persons, conditions, measurements, observation_periods, deaths
        Rows added per table (rows already in the store are not counted).
    """

    load_id: int
    already_loaded: bool
    persons: int = 0
    conditions: int = 0
    measurements: int = 0
    observation_periods: int = 0
    deaths: int = 0


def _mask(value: str) -> str:
    v = (value or "").strip()
    return v[:6] + "*" * max(len(v) - 10, 0) + v[-4:] if len(v) > 10 else "*" * len(v)


class _Checker:
    """Collects problems while converting the fields of one file's rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def bad(self, row: CsvRow, field: str, message: str, value: str | None = None) -> None:
        shown = row[field] if value is None else value
        self.problems.append(Problem(message, str(self.path), row.line, field, shown))

    def convert(
        self, row: CsvRow, field: str, fn: Callable[[str], T], message: str, *, optional: bool
    ) -> T | None:
        text = row[field]
        if text == "":
            if not optional:
                self.bad(row, field, f"{field} is empty: {message}")
            return None
        try:
            return fn(text)
        except (ValueError, ValidationError):
            self.bad(row, field, message)
            return None

    def date(self, row: CsvRow, field: str, *, optional: bool = False) -> dt.date | None:
        return self.convert(
            row,
            field,
            _parse_date,
            "not a real date in the form YYYY-MM-DD (e.g. 2021-03-15)",
            optional=optional,
        )

    def code(self, row: CsvRow, field: str, *, optional: bool = False) -> str | None:
        return self.convert(
            row,
            field,
            icd10.normalise,
            "not an ICD-10 code: a letter, two digits and an optional subdivision "
            "(E11, E11.9, or a national clinical edition code such as E11.900x001)",
            optional=optional,
        )


def _parse_date(text: str) -> dt.date:
    t = text.strip().replace("/", "-")
    if len(t) != 10:
        raise ValueError(text)
    return dt.date.fromisoformat(t)


def _read_files(directory: Path) -> dict[str, CsvFile]:
    if not directory.is_dir():
        raise ValidationError(
            "not a directory: give the folder holding person.csv, condition_occurrence.csv ...",
            file=directory,
        )
    files: dict[str, CsvFile] = {}
    problems: list[Problem] = []
    for name, (required, optional, needed) in CLINICAL_FILES.items():
        path = directory / name
        if not path.exists():
            if needed:
                problems.append(
                    Problem(f"{name} is missing: the clinical folder needs it", str(path))
                )
            continue
        try:
            files[name] = read_csv(path, required=required, optional=optional)
        except ImportRejected as exc:
            problems.extend(exc.problems)
        except ValidationError as exc:
            problems.append(exc.problem)
    if problems:
        raise ImportRejected(problems, file=directory)
    return files


def _combined_checksum(files: dict[str, CsvFile]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}:{files[name].checksum}\n".encode())
    return h.hexdigest()


def _persons(
    file: CsvFile, registered: dict[str, tuple[str, int]], key: bytes, check: _Checker
) -> dict[str, tuple[str, str, int]]:
    """Return person_id -> (participant_id, sex, year_of_birth) for the good rows."""
    out: dict[str, tuple[str, str, int]] = {}
    seen: dict[str, int] = {}
    unknown: list[str] = []
    for row in file.rows:
        pid = row["person_id"]
        if pid == "":
            check.bad(row, "person_id", "person_id is empty")
            continue
        if pid in out or pid in seen:
            check.bad(row, "person_id", f"person_id {pid} appears twice in person.csv")
            continue
        seen[pid] = row.line
        raw_id = row["person_source_value"]
        try:
            national_id = validate_national_id(raw_id, field="person_source_value")
        except ValidationError as exc:
            check.bad(row, "person_source_value", exc.problem.message, _mask(raw_id))
            continue
        sex_text = row["gender_source_value"].upper()
        sex = _SEX.get(sex_text)
        if sex is None:
            check.bad(row, "gender_source_value", "gender_source_value must be F or M")
            continue
        year = check.convert(
            row, "year_of_birth", int, "year_of_birth must be a 4-digit year", optional=False
        )
        if year is None:
            continue
        birth = national_id_birth_date(national_id)
        if year != birth.year:
            check.bad(
                row,
                "year_of_birth",
                "year_of_birth does not match the birth date in the identity number: "
                "check which of the two is wrong",
            )
            continue
        for fld, want in (("month_of_birth", birth.month), ("day_of_birth", birth.day)):
            if (
                fld in file.columns
                and row[fld] != ""
                and (not row[fld].isdigit() or int(row[fld]) != want)
            ):
                check.bad(
                    row,
                    fld,
                    f"{fld} does not match the birth date in the identity number",
                    "(hidden)",
                )
        participant_id = pseudonym(national_id, key)
        if participant_id not in registered:
            unknown.append(pid)
            check.bad(
                row,
                "person_source_value",
                f"person {pid} is not a registered participant: register them "
                "(biobank registry import) before loading their clinical data",
                _mask(raw_id),
            )
            continue
        reg_sex, _ = registered[participant_id]
        if reg_sex != sex:
            check.bad(
                row,
                "gender_source_value",
                f"the registry has this participant as {reg_sex}: correct one of the two",
            )
            continue
        if participant_id in {v[0] for v in out.values()}:
            check.bad(
                row,
                "person_source_value",
                "the same person appears twice in person.csv",
                "(hidden)",
            )
            continue
        out[pid] = (participant_id, sex, year)
    if unknown:
        logger.warning("%d unknown persons in %s: %s", len(unknown), file.path, ", ".join(unknown))
    return out


def _person_of(
    row: CsvRow, persons: dict[str, tuple[str, str, int]], person_ids: set[str], check: _Checker
) -> tuple[str, int] | None:
    pid = row["person_id"]
    if pid in persons:
        return persons[pid][0], persons[pid][2]
    if pid not in person_ids:
        check.bad(row, "person_id", f"person_id {pid} is not in person.csv")
    return None  # a person with problems of its own: reported in person.csv already


def _not_before_birth(
    row: CsvRow, field: str, day: dt.date | None, year: int, check: _Checker
) -> bool:
    if day is None:
        return False
    if day.year < year:
        check.bad(row, field, f"{field} is before the participant's year of birth ({year})")
        return False
    if day > dt.date.today():
        check.bad(row, field, f"{field} is in the future")
        return False
    return True


_Persons = dict[str, tuple[str, str, int]]


def _conditions(
    file: CsvFile, persons: _Persons, person_ids: set[str], check: _Checker
) -> list[dict[str, Any]]:
    """The good rows of ``condition_occurrence.csv``; problems go to ``check``."""
    out: list[dict[str, Any]] = []
    for row in file.rows:
        who = _person_of(row, persons, person_ids, check)
        code = check.code(row, "condition_source_value")
        start = check.date(row, "condition_start_date")
        end = check.date(row, "condition_end_date", optional=True)
        if who is None or code is None:
            continue
        if not _not_before_birth(row, "condition_start_date", start, who[1], check):
            continue
        assert start is not None
        if end is not None and end < start:
            check.bad(row, "condition_end_date", "condition_end_date is before the start date")
            continue
        out.append(
            {
                "participant_id": who[0],
                "code": code,
                "code_compact": code.replace(".", "").upper(),
                "start_date": start,
                "end_date": end,
            }
        )
    return out


def _measurements(
    file: CsvFile, persons: _Persons, person_ids: set[str], check: _Checker
) -> list[dict[str, Any]]:
    """The good rows of ``measurement.csv``; problems go to ``check``."""
    out: list[dict[str, Any]] = []
    for row in file.rows:
        who = _person_of(row, persons, person_ids, check)
        name = row["measurement_source_value"]
        if name == "":
            check.bad(row, "measurement_source_value", "the measurement name is empty")
        day = check.date(row, "measurement_date")
        value = check.convert(
            row,
            "value_as_number",
            float,
            "value_as_number must be a number (use . as the decimal point)",
            optional=False,
        )
        if who is None or name == "" or value is None:
            continue
        if not _not_before_birth(row, "measurement_date", day, who[1], check):
            continue
        out.append(
            {
                "participant_id": who[0],
                "name": name,
                "measured_on": day,
                "value": value,
                "unit": row["unit_source_value"] or None,
            }
        )
    return out


def _observation_periods(
    file: CsvFile, persons: _Persons, person_ids: set[str], check: _Checker
) -> list[dict[str, Any]]:
    """The good rows of ``observation_period.csv``; problems go to ``check``."""
    out: list[dict[str, Any]] = []
    for row in file.rows:
        who = _person_of(row, persons, person_ids, check)
        start = check.date(row, "observation_period_start_date")
        end = check.date(row, "observation_period_end_date")
        if who is None or start is None or end is None:
            continue
        if end < start:
            check.bad(row, "observation_period_end_date", "the period ends before it starts")
            continue
        if not _not_before_birth(row, "observation_period_start_date", start, who[1], check):
            continue
        out.append({"participant_id": who[0], "start_date": start, "end_date": end})
    return out


def _deaths(
    file: CsvFile, persons: _Persons, person_ids: set[str], check: _Checker
) -> list[dict[str, Any]]:
    """The good rows of ``death.csv`` (one per person); problems go to ``check``."""
    out: list[dict[str, Any]] = []
    dead: set[str] = set()
    for row in file.rows:
        who = _person_of(row, persons, person_ids, check)
        day = check.date(row, "death_date")
        cause = check.code(row, "cause_source_value", optional=True)
        if who is None or day is None:
            continue
        if who[0] in dead:
            check.bad(row, "person_id", f"a second death record for person {row['person_id']}")
            continue
        if not _not_before_birth(row, "death_date", day, who[1], check):
            continue
        dead.add(who[0])
        out.append(
            {
                "participant_id": who[0],
                "death_date": day,
                "cause_code": cause,
                "cause_compact": cause.replace(".", "").upper() if cause else None,
            }
        )
    return out


def load_clinical(store: Store, directory: str | Path, *, principal: Principal) -> ClinicalLoad:
    """Load an OMOP-style clinical folder into the store, all or nothing.

    Parameters
    ----------
    store
        The store (opened for writing).
    directory
        The folder with ``person.csv``, ``condition_occurrence.csv`` and optionally
        ``measurement.csv``, ``observation_period.csv``, ``death.csv``.
    principal
        Who loads (needs ``load_data``: admin or registrar).

    Returns
    -------
    ClinicalLoad
        The counts of rows added, or ``already_loaded`` when the same files
        were loaded before.

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    ValidationError
        If the folder or a file cannot be read.
    ImportRejected
        Listing every bad row (file, line, field, value): malformed values,
        unknown persons, a sex or birth year that disagrees with the registry or
        the identity number, events before birth or in the future.
    """
    require(principal, Permission.LOAD_DATA)
    directory = Path(directory)
    files = _read_files(directory)
    checksum = _combined_checksum(files)
    earlier = store.find_load(kind="clinical", checksum=checksum)
    if earlier is not None:
        logger.info("clinical files in %s were loaded before (load %d)", directory, earlier)
        return ClinicalLoad(load_id=earlier, already_loaded=True)

    key = center_key(store.path)
    registered = {
        r[0]: (r[1], int(r[2]))
        for r in store.con.execute(
            "SELECT participant_id, sex, birth_year FROM participant"
        ).fetchall()
    }
    person_file = files["person.csv"]
    check = _Checker(person_file.path)
    persons = _persons(person_file, registered, key, check)
    person_ids = {r["person_id"] for r in person_file.rows}
    problems = list(check.problems)

    tables: dict[str, list[dict[str, Any]]] = {}
    for name, table, read_rows in (
        ("condition_occurrence.csv", "condition", _conditions),
        ("measurement.csv", "measurement", _measurements),
        ("observation_period.csv", "observation_period", _observation_periods),
        ("death.csv", "death", _deaths),
    ):
        tables[table] = []
        if name in files:
            check = _Checker(files[name].path)
            tables[table] = read_rows(files[name], persons, person_ids, check)
            problems.extend(check.problems)

    people = pl.DataFrame(
        [{"participant_id": p, "sex": s, "year_of_birth": y} for p, s, y in persons.values()],
        schema={"participant_id": pl.String, "sex": pl.String, "year_of_birth": pl.Int32},
    )
    problems.extend(_conflicts(store, people, tables["death"], directory))
    if problems:
        raise ImportRejected(problems, file=directory)

    load_id, counts = _write(
        store, files, people, tables, directory=directory, checksum=checksum, principal=principal
    )
    logger.info("loaded clinical data from %s: %s", directory, counts)
    return ClinicalLoad(load_id=load_id, already_loaded=False, **counts)


_CONDITION_SCHEMA = {
    "participant_id": pl.String,
    "code": pl.String,
    "code_compact": pl.String,
    "start_date": pl.Date,
    "end_date": pl.Date,
}
_MEASUREMENT_SCHEMA = {
    "participant_id": pl.String,
    "name": pl.String,
    "measured_on": pl.Date,
    "value": pl.Float64,
    "unit": pl.String,
}
_PERIOD_SCHEMA = {"participant_id": pl.String, "start_date": pl.Date, "end_date": pl.Date}
_DEATH_SCHEMA = {
    "participant_id": pl.String,
    "death_date": pl.Date,
    "cause_code": pl.String,
    "cause_compact": pl.String,
}


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def _conflicts(
    store: Store, people: pl.DataFrame, deaths: list[dict[str, Any]], directory: Path
) -> list[Problem]:
    """Report persons and deaths that disagree with what the store already holds."""
    out: list[Problem] = []
    cur = store.cursor()
    cur.register("new_people", people)
    for pid, sex, year, old_sex, old_year in cur.execute(
        "SELECT n.participant_id, n.sex, n.year_of_birth, o.sex, o.year_of_birth"
        " FROM new_people n JOIN clinical_person o USING (participant_id)"
        " WHERE n.sex <> o.sex OR n.year_of_birth <> o.year_of_birth"
    ).fetchall():
        out.append(
            Problem(
                f"participant {pid} was loaded before with sex {old_sex} and year of birth "
                f"{old_year}, not {sex} / {year}: correct the export",
                str(directory / "person.csv"),
            )
        )
    if deaths:
        cur.register("new_death", _frame(deaths, _DEATH_SCHEMA))
        for pid, day, old_day in cur.execute(
            "SELECT n.participant_id, n.death_date, o.death_date FROM new_death n"
            " JOIN clinical_death o USING (participant_id) WHERE n.death_date <> o.death_date"
        ).fetchall():
            out.append(
                Problem(
                    f"participant {pid} already has death date {old_day}, not {day}",
                    str(directory / "death.csv"),
                    field="death_date",
                    value=str(day),
                )
            )
    cur.close()
    return out


def _write(
    store: Store,
    files: dict[str, CsvFile],
    people: pl.DataFrame,
    tables: dict[str, list[dict[str, Any]]],
    *,
    directory: Path,
    checksum: str,
    principal: Principal,
) -> tuple[int, dict[str, int]]:
    """Insert the new rows in one transaction with provenance and audit; return the counts."""
    with store.transaction() as con:
        load_id = store.record_provenance(
            con,
            kind="clinical",
            source=str(directory),
            checksum=checksum,
            parameters={"files": {n: f.checksum for n, f in sorted(files.items())}},
            tool_version=None,
            user=principal.user,
        )
        counts = {
            "persons": _insert_new(con, "clinical_person", people, load_id, key=["participant_id"]),
            "conditions": _insert_new(
                con,
                "clinical_condition",
                _frame(tables["condition"], _CONDITION_SCHEMA),
                load_id,
            ),
            "measurements": _insert_new(
                con,
                "clinical_measurement",
                _frame(tables["measurement"], _MEASUREMENT_SCHEMA),
                load_id,
            ),
            "observation_periods": _insert_new(
                con,
                "clinical_observation_period",
                _frame(tables["observation_period"], _PERIOD_SCHEMA),
                load_id,
            ),
            "deaths": _insert_new(
                con,
                "clinical_death",
                _frame(tables["death"], _DEATH_SCHEMA),
                load_id,
                key=["participant_id"],
            ),
        }
        audit.record(
            con,
            principal,
            "clinical.load",
            str(directory),
            {"load_id": load_id, "checksum": checksum, **counts},
        )
    return load_id, counts


def _insert_new(
    con: Any, table: str, frame: pl.DataFrame, load_id: int, *, key: list[str] | None = None
) -> int:
    """Insert the distinct rows of ``frame`` not yet in ``table``; return how many."""
    if frame.height == 0:
        return 0
    cols = frame.columns
    match_cols = key or cols
    on = " AND ".join(f"t.{c} IS NOT DISTINCT FROM n.{c}" for c in match_cols)
    view = f"_new_{table}"
    con.register(view, frame.unique())
    try:
        row = con.execute(
            f"INSERT INTO {table} ({', '.join(cols)}, load_id)"
            f" SELECT {', '.join('n.' + c for c in cols)}, ? FROM {view} n"
            f" WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on})",
            [load_id],
        ).fetchone()
    finally:
        con.unregister(view)
    return int(row[0]) if row else 0
