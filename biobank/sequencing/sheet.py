"""Export a Snakemake sample sheet for a sequencing batch from the registry.

The rows are the registry's sequencing samples (DNA specimens linked to a
sample id) whose participants still consent (current consent not withdrawn),
with their FASTQ pairs found on disk by a pattern such as
``fastq/{sample_id}_{unit}_R{read}.fastq.gz`` (a folder means exactly that
pattern inside it). Flow cell and lane are read from the first Illumina
(CASAVA 1.8) read name when it has them. Every row is validated with the
workflow's own JSON Schema (``workflow/schemas/samples.schema.yaml``), so the
workflow and the registry cannot disagree on the format.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConfigError, ConsentError, ImportRejected, NotFoundError, Problem
from biobank.registry.consent import current_consent_sql
from biobank.sequencing._schema import load_schema
from biobank.sequencing.launcher import repo_workflow_dir

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "SHEET_COLUMNS",
    "SampleSheetExport",
    "find_fastqs",
    "sample_sheet",
    "write_sample_sheet",
]

logger = logging.getLogger(__name__)

SHEET_COLUMNS = ("sample_id", "unit", "library", "platform", "flowcell", "lane", "fq1", "fq2")
DEFAULT_PATTERN = "{sample_id}_{unit}_R{read}.fastq.gz"
_CASAVA = re.compile(r"^@[^:\s]+:[^:\s]+:(?P<flowcell>[^:\s]+):(?P<lane>\d+):\d+:\d+:\d+")


@dataclass
class SampleSheetExport:
    """Rows of the sheet, and the samples left out because consent was withdrawn."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)


def _pattern_regex(pattern: str) -> tuple[Path, re.Pattern[str]]:
    """Split a FASTQ pattern into its fixed folder and a regex for the rest."""
    for needed in ("{sample_id}", "{read}"):
        if needed not in pattern:
            raise ConfigError(
                f"FASTQ pattern '{pattern}' lacks {needed}: e.g. 'fastq/{DEFAULT_PATTERN}'"
            )
    parts = Path(pattern).parts
    i = next(i for i, p in enumerate(parts) if "{" in p)
    base = Path(*parts[:i]) if i else Path(".")
    rest = "/".join(parts[i:])
    regex = re.escape(rest)
    for name, body in (
        ("sample_id", r"[A-Za-z0-9][A-Za-z0-9_-]*?"),
        ("unit", r"[A-Za-z0-9][A-Za-z0-9_-]*?"),
        ("read", r"[12]"),
    ):
        regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>{body})", 1)
    return base, re.compile(f"^{regex}$")


def find_fastqs(pattern: str | Path) -> dict[tuple[str, str], dict[str, Path]]:
    """Find FASTQ files matching ``pattern``: ``(sample_id, unit) -> {"1": path, "2": path}``.

    ``pattern`` is a folder (meaning ``<folder>/{sample_id}_{unit}_R{read}.fastq.gz``)
    or a path with ``{sample_id}``, ``{read}`` and optionally ``{unit}``.

    Raises
    ------
    ConfigError
        If the folder does not exist or the pattern lacks a placeholder.
    """
    text = str(pattern)
    if "{" not in text:
        if not Path(text).is_dir():
            raise ConfigError(f"FASTQ folder {text} does not exist")
        text = str(Path(text) / DEFAULT_PATTERN)
    base, regex = _pattern_regex(text)
    if not base.is_dir():
        raise ConfigError(f"FASTQ folder {base} (from pattern {text}) does not exist")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for path in sorted(base.rglob("*")):
        if not path.is_file():
            continue
        m = regex.match(path.relative_to(base).as_posix())
        if m is None:
            continue
        unit = m.groupdict().get("unit") or "1"
        found.setdefault((m["sample_id"], unit), {})[m["read"]] = path
    return found


def _flowcell_lane(fq1: Path) -> tuple[str | None, str | None]:
    opener = gzip.open if fq1.suffix == ".gz" else open
    try:
        with opener(fq1, "rt", encoding="ascii", errors="replace") as fh:
            head = fh.readline()
    except OSError:
        return None, None
    m = _CASAVA.match(head)
    return (m["flowcell"], m["lane"]) if m else (None, None)


def _samples_schema() -> dict[str, Any]:
    path = repo_workflow_dir() / "schemas" / "samples.schema.yaml"
    if not path.is_file():
        raise ConfigError(f"the workflow's sample sheet schema {path} is missing")
    return load_schema(path)


def sample_sheet(
    store: Store,
    principal: Principal,
    *,
    fastq: str | Path,
    sample_ids: Sequence[str] | None = None,
    platform: str = "ILLUMINA",
    flowcell: str = "unknown",
    lane: str = "1",
    with_sex: bool = False,
) -> SampleSheetExport:
    """Build the sample sheet rows of a sequencing batch.

    Parameters
    ----------
    store, principal
        The store and who exports (needs ``registry_read``; audited).
    fastq
        A folder or a pattern (see :func:`find_fastqs`).
    sample_ids
        The batch: these sequencing sample ids (each must be registered and have
        FASTQs). ``None``: every registered sample that has FASTQs.
    platform
        Read group platform (``ILLUMINA``, ``DNBSEQ`` ...).
    flowcell, lane
        Used when the first read name does not carry them.
    with_sex
        Add the optional ``sex`` column (registered sex).

    Raises
    ------
    AccessDenied
        Without ``registry_read``.
    NotFoundError
        Listing requested sample ids that are not registered.
    ConsentError
        Listing requested sample ids whose participant withdrew consent.
    ImportRejected
        Listing requested samples without a complete FASTQ pair, or rows the
        workflow's schema rejects.
    """
    require(principal, Permission.REGISTRY_READ)
    fastqs = find_fastqs(fastq)
    registered = _registered_samples(store)
    explicit = sample_ids is not None
    wanted = (
        list(dict.fromkeys(sample_ids))
        if sample_ids is not None
        else sorted({s for s, _ in fastqs if s in registered})
    )
    unknown = [s for s in wanted if s not in registered]
    if unknown:
        raise NotFoundError(f"sample ids not registered: {', '.join(unknown)}")
    withdrawn = [s for s in wanted if registered[s][2]]
    if withdrawn and explicit:
        raise ConsentError(
            f"the participants of {', '.join(withdrawn)} withdrew consent (or never gave it): "
            "they cannot be sequenced; remove them from the batch"
        )
    export = SampleSheetExport(withdrawn=withdrawn)
    if withdrawn:
        logger.warning("left out %d samples whose consent is withdrawn", len(withdrawn))
    problems = _add_rows(
        export,
        [s for s in wanted if s not in withdrawn],
        fastqs=fastqs,
        registered=registered,
        fastq=fastq,
        defaults={"platform": platform, "flowcell": flowcell, "lane": lane},
        with_sex=with_sex,
    )
    if problems:
        raise ImportRejected(problems)
    with store.transaction() as wcon:
        audit.record(
            wcon,
            principal,
            "samplesheet.export",
            "sequencing_sample",
            {"samples": [r["sample_id"] for r in export.rows], "withdrawn": withdrawn},
        )
    return export


def _registered_samples(store: Store) -> dict[str, tuple[str, str, bool]]:
    """Sample id -> (participant id, sex, consent withdrawn or never given)."""
    return {
        r[0]: (r[1], r[2], r[3])
        for r in store.con.execute(
            "SELECT q.sample_id, q.participant_id, p.sex, c.withdrawn_date IS NOT NULL"
            " OR c.participant_id IS NULL FROM sequencing_sample q"
            " JOIN participant p USING (participant_id)"
            f" LEFT JOIN ({current_consent_sql()}) c USING (participant_id)"
        ).fetchall()
    }


def _add_rows(
    export: SampleSheetExport,
    samples: Sequence[str],
    *,
    fastqs: dict[tuple[str, str], dict[str, Path]],
    registered: dict[str, tuple[str, str, bool]],
    fastq: str | Path,
    defaults: dict[str, str],
    with_sex: bool,
) -> list[Problem]:
    """Add a row per FASTQ pair of each sample to ``export``; return the problems found.

    ``defaults`` holds ``platform`` and the ``flowcell`` and ``lane`` used when
    the first read name does not carry them.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(_samples_schema())
    problems: list[Problem] = []
    for sid in samples:
        units = sorted(u for (s, u) in fastqs if s == sid)
        if not units:
            problems.append(
                Problem(f"no FASTQ files for sample {sid} under {fastq}", field="fq1", value=sid)
            )
        for unit in units:
            pair = fastqs[(sid, unit)]
            if set(pair) != {"1", "2"}:
                problems.append(
                    Problem(
                        f"sample {sid} unit {unit} has only read {''.join(pair)}",
                        field="fq2",
                        value=sid,
                    )
                )
                continue
            fc, ln = _flowcell_lane(pair["1"])
            row: dict[str, Any] = {
                "sample_id": sid,
                "unit": unit,
                "library": f"LIB-{sid}",
                "platform": defaults["platform"],
                "flowcell": fc or defaults["flowcell"],
                "lane": ln or defaults["lane"],
                "fq1": str(pair["1"]),
                "fq2": str(pair["2"]),
            }
            if with_sex:
                row["sex"] = registered[sid][1]
            for error in validator.iter_errors(row):
                where = ".".join(str(p) for p in error.absolute_path) or "(row)"
                problems.append(Problem(error.message, field=where, value=sid))
            export.rows.append(row)
    return problems


def write_sample_sheet(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as the workflow's tab-separated ``samples.tsv``."""
    path = Path(path)
    columns = list(SHEET_COLUMNS) + (["sex"] if rows and "sex" in rows[0] else [])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
