"""The workflow's sample sheet: its units (FASTQ pairs), validation and the FASTQ pair check.

:func:`read_sample_sheet` reads and validates ``samples.tsv`` against the
workflow's JSON Schema (``workflow/schemas/samples.schema.yaml``);
:func:`check_fastq_pair` checks that a unit's two FASTQ files exist and are
mates of each other. Both report every problem with file, line and field.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from biobank.core.errors import ConfigError, ImportRejected, Problem, ValidationError
from biobank.sequencing._schema import describe, key_path, load_schema

__all__ = [
    "FASTQ_PAIR_CHECK_RECORDS",
    "SampleSheet",
    "Unit",
    "check_fastq_pair",
    "read_sample_sheet",
]

#: How many leading records of a FASTQ pair are compared by name.
FASTQ_PAIR_CHECK_RECORDS = 1000

_SEX_VALUES = {"female", "male"}


@dataclass(frozen=True)
class Unit:
    """One sequencing unit (a FASTQ pair) of a sample.

    Attributes
    ----------
    sample_id
        The sequencing sample id (VCF sample name).
    unit
        The unit name, unique within the sample.
    library, platform, flowcell, lane
        Read group fields (LB, PL and PU = ``flowcell.lane.sample_id``).
    fq1, fq2
        FASTQ paths as resolved (see :func:`read_sample_sheet`).
    line
        1-based line of the sample sheet (the header is line 1).
    """

    sample_id: str
    unit: str
    library: str
    platform: str
    flowcell: str
    lane: str
    fq1: str
    fq2: str
    line: int


@dataclass
class SampleSheet:
    """A validated sample sheet.

    Attributes
    ----------
    path
        The sample sheet file.
    units
        Every unit, in file order.
    sex
        Registered sex per sample (``"female"``, ``"male"``) or ``None`` when unknown.
    """

    path: Path
    units: list[Unit]
    sex: dict[str, str | None] = field(default_factory=dict)

    @property
    def samples(self) -> list[str]:
        """Sample ids in order of first appearance."""
        return list(dict.fromkeys(u.sample_id for u in self.units))

    def units_of(self, sample_id: str) -> list[Unit]:
        """The units of one sample, in file order."""
        return [u for u in self.units if u.sample_id == sample_id]

    def unit(self, sample_id: str, unit: str) -> Unit:
        """One unit of one sample."""
        for u in self.units:
            if u.sample_id == sample_id and u.unit == unit:
                return u
        raise KeyError(f"{sample_id}/{unit}")


def _resolve_fastq(value: str, sheet_dir: Path, workdir: Path) -> str:
    path = Path(value)
    if path.is_absolute():
        return str(path)
    if (workdir / path).exists():
        return value
    alt = sheet_dir / path
    if alt.exists():
        return str(alt.resolve())
    return value


def _read_metadata(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        raise ConfigError(
            f"sample metadata file {path} does not exist: "
            "fix 'sample_metadata' in the config or set it to \"\""
        )
    out: dict[str, str | None] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        fields = reader.fieldnames or []
        for col in ("sample_id", "sex"):
            if col not in fields:
                raise ValidationError(
                    f"column '{col}' is missing: the metadata needs columns sample_id and sex",
                    file=path,
                    line=1,
                    field=col,
                )
        for row in reader:
            sex = (row["sex"] or "").strip().lower()
            if sex not in _SEX_VALUES | {""}:
                raise ValidationError(
                    "sex must be female, male or empty (unknown)",
                    file=path,
                    line=reader.line_num,
                    field="sex",
                    value=row["sex"],
                )
            out[row["sample_id"]] = sex or None
    return out


def _check_sheet_file(path: Path) -> None:
    """Raise unless the sample sheet exists and is UTF-8 text."""
    if not path.is_file():
        raise ConfigError(
            f"sample sheet {path} does not exist: fix 'samples' in the config "
            "(demo: run `biobank demo-data demo` first)"
        )
    try:
        path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            "the sample sheet is not UTF-8 text: save it as UTF-8, tab-separated",
            file=path,
        ) from exc


def _check_header(
    header: Sequence[str], *, required: Sequence[str], columns: Sequence[str], path: Path
) -> None:
    """Raise :class:`ImportRejected` for missing required or unknown columns."""
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportRejected(
            [
                Problem(
                    f"required column '{c}' is missing: the header must name the "
                    f"tab-separated columns {' '.join(required)}",
                    file=str(path),
                    line=1,
                    field=c,
                )
                for c in missing
            ],
            file=path,
        )
    unknown = [c for c in header if c not in columns]
    if unknown:
        raise ImportRejected(
            [
                Problem(
                    f"unknown column '{c}': allowed columns are {', '.join(columns)}",
                    file=str(path),
                    line=1,
                    field=c,
                )
                for c in unknown
            ],
            file=path,
        )


@dataclass
class _SheetRows:
    """The units read so far and the problems found, row by row."""

    path: Path
    workdir: Path
    schema: Mapping[str, Any]
    header: Sequence[str]
    problems: list[Problem] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    sex: dict[str, str | None] = field(default_factory=dict)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    library_sample: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validator = jsonschema.Draft202012Validator(self.schema)

    def problem(self, message: str, line: int, **where: Any) -> None:
        self.problems.append(Problem(message, file=str(self.path), line=line, **where))

    def add(self, row: Mapping[str | None, Any], line: int) -> None:
        """Check one row; keep its unit when it is good, else record its problems."""
        if None in row or any(v is None for v in row.values()):
            self.problem(
                f"row has {len(row.get(None) or []) + len(self.header)} fields or fewer "
                f"than the {len(self.header)} columns of the header: separate with tabs",
                line,
            )
            return
        record = {k: v.strip() for k, v in row.items() if k is not None and v is not None}
        row_errors = sorted(self.validator.iter_errors(record), key=lambda e: list(e.path))
        for err in row_errors:
            col = key_path(err)
            self.problem(
                f"{err.message} (expected: {describe(self.schema, col)})",
                line,
                field=col,
                value=record.get(col),
            )
        if row_errors or not self._unique(record, line):
            return
        if "sex" in record:
            registered = record["sex"] or None
            before = self.sex.get(record["sample_id"], registered)
            if before != registered:
                self.problem(
                    f"sex differs from another row of sample '{record['sample_id']}'",
                    line,
                    field="sex",
                    value=record["sex"],
                )
            self.sex[record["sample_id"]] = registered
        self.units.append(
            Unit(
                sample_id=record["sample_id"],
                unit=record["unit"],
                library=record["library"],
                platform=record["platform"],
                flowcell=record["flowcell"],
                lane=record["lane"],
                fq1=_resolve_fastq(record["fq1"], self.path.parent, self.workdir),
                fq2=_resolve_fastq(record["fq2"], self.path.parent, self.workdir),
                line=line,
            )
        )

    def _unique(self, record: Mapping[str, str], line: int) -> bool:
        """Whether the unit is new and its library belongs to this sample (else record why not)."""
        key = (record["sample_id"], record["unit"])
        if key in self.seen:
            self.problem(
                f"duplicate unit '{key[1]}' of sample '{key[0]}' (first on line "
                f"{self.seen[key]}): give each FASTQ pair of a sample its own unit name",
                line,
                field="unit",
                value=key[1],
            )
            return False
        self.seen[key] = line
        owner = self.library_sample.setdefault(record["library"], record["sample_id"])
        if owner != record["sample_id"]:
            self.problem(
                f"library '{record['library']}' already belongs to sample '{owner}': "
                "a library comes from one sample (duplicates are marked per library)",
                line,
                field="library",
                value=record["library"],
            )
            return False
        return True


def read_sample_sheet(
    path: str | Path,
    *,
    schema: str | Path,
    workdir: str | Path = ".",
    metadata: str | Path | None = None,
) -> SampleSheet:
    """Read and validate the sample sheet (tab-separated, header row).

    Each row is checked against the JSON Schema (which defines the columns,
    the sample id naming rule and the platforms); ``(sample_id, unit)`` pairs
    must be unique; a library must not span two samples. Relative FASTQ paths
    are taken relative to ``workdir``, or to the sheet's own folder when they
    do not exist there (so a demo folder's own ``samples.tsv`` works as is).

    Parameters
    ----------
    path
        The sample sheet.
    schema
        ``workflow/schemas/samples.schema.yaml``.
    workdir
        The directory Snakemake runs in.
    metadata
        Optional TSV with columns ``sample_id`` and ``sex``.

    Raises
    ------
    ConfigError
        If the file does not exist.
    ImportRejected
        Listing every bad row with its line number and column.
    """
    path = Path(path)
    _check_sheet_file(path)
    sheet_schema = load_schema(schema)
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the header.
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        _check_header(
            header,
            required=list(sheet_schema["required"]),
            columns=list(sheet_schema["properties"]),
            path=path,
        )
        rows = _SheetRows(path=path, workdir=Path(workdir), schema=sheet_schema, header=header)
        for row in reader:
            rows.add(row, reader.line_num)
    units, sex, problems = rows.units, rows.sex, rows.problems
    if not units and not problems:
        problems.append(Problem("the sample sheet has no rows", file=str(path), line=2))
    if problems:
        raise ImportRejected(problems, file=path)
    if metadata:
        for sample_id, value in _read_metadata(Path(metadata)).items():
            if sample_id in {u.sample_id for u in units}:
                sex[sample_id] = value
    for s in dict.fromkeys(u.sample_id for u in units):
        sex.setdefault(s, None)
    return SampleSheet(path=path, units=units, sex=sex)


def _open_text(path: Path) -> Any:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="ascii", errors="replace")
    return open(path, encoding="ascii", errors="replace")


def _read_names(path: Path, n: int) -> Iterator[str]:
    """Yield the names of the first ``n`` FASTQ records (without /1, /2 and comments)."""
    with _open_text(path) as fh:
        for i, line in enumerate(fh):
            if i // 4 >= n:
                return
            if i % 4 == 0:
                if not line.startswith("@"):
                    raise ValueError(f"record {i // 4 + 1} does not start with '@'")
                name = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
                yield re.sub(r"/[12]$", "", name)


def check_fastq_pair(unit: Unit, *, sheet: str | Path, workdir: str | Path = ".") -> list[Problem]:
    """Check that a unit's FASTQ files exist, are readable and pair up.

    Cheap by design: the names of the first :data:`FASTQ_PAIR_CHECK_RECORDS`
    records of R1 and R2 must agree (and both files must have the same number
    of records among those), which catches swapped, truncated or mismatched
    files without reading them whole.

    Returns
    -------
    list[Problem]
        Empty when the pair is fine.
    """
    problems: list[Problem] = []
    workdir = Path(workdir)
    paths = {}
    for col in ("fq1", "fq2"):
        value = getattr(unit, col)
        p = Path(value) if Path(value).is_absolute() else workdir / value
        if not p.is_file():
            problems.append(
                Problem(
                    f"FASTQ file of sample '{unit.sample_id}' unit '{unit.unit}' does not "
                    "exist: fix the path (relative paths are relative to the directory "
                    "the workflow runs in)",
                    file=str(sheet),
                    line=unit.line,
                    field=col,
                    value=value,
                )
            )
        elif not os.access(p, os.R_OK):
            problems.append(
                Problem(
                    "FASTQ file is not readable: fix its permissions (chmod a+r)",
                    file=str(sheet),
                    line=unit.line,
                    field=col,
                    value=value,
                )
            )
        else:
            paths[col] = p
    if len(paths) < 2:
        return problems
    try:
        names1 = list(_read_names(paths["fq1"], FASTQ_PAIR_CHECK_RECORDS))
        names2 = list(_read_names(paths["fq2"], FASTQ_PAIR_CHECK_RECORDS))
    except (OSError, EOFError, ValueError) as exc:
        return [
            Problem(
                f"FASTQ of sample '{unit.sample_id}' unit '{unit.unit}' cannot be read "
                f"({exc}): replace the file with an intact (gzip) FASTQ",
                file=str(sheet),
                line=unit.line,
                field="fq1",
            )
        ]
    if not names1 or not names2:
        which = "fq1" if not names1 else "fq2"
        problems.append(
            Problem(
                "FASTQ file is empty: remove the row or give the right file",
                file=str(sheet),
                line=unit.line,
                field=which,
                value=getattr(unit, which),
            )
        )
    elif len(names1) != len(names2):
        problems.append(
            Problem(
                f"R1 and R2 have different numbers of reads ({len(names1)} vs "
                f"{len(names2)} in the first {FASTQ_PAIR_CHECK_RECORDS}): the files are not "
                "mates of each other or one is truncated",
                file=str(sheet),
                line=unit.line,
                field="fq2",
                value=unit.fq2,
            )
        )
    else:
        for i, (a, b) in enumerate(zip(names1, names2, strict=True), start=1):
            if a != b:
                problems.append(
                    Problem(
                        f"read {i} is named '{a}' in R1 but '{b}' in R2: fq1 and fq2 "
                        "are not mates of each other (swapped or mismatched files)",
                        file=str(sheet),
                        line=unit.line,
                        field="fq2",
                        value=unit.fq2,
                    )
                )
                break
    return problems
