"""Start-up checks and helpers of the sequencing workflow (``workflow/Snakefile``).

The Snakefile calls :func:`check_inputs` before it builds the job graph, so a
bad configuration, sample sheet, FASTQ pair, reference or a missing tool stops
the run before any work starts, with a message that names the file, row and
field and says how to fix it. ``biobank workflow check`` runs the same checks.

The helpers below are also used by rule scripts: :func:`write_region_chunks`
(scatter regions that avoid N gaps), :func:`write_ploidy_file` (sex chromosome
ploidy for ``bcftools call``) and :func:`run_workflow`.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from biobank.core.errors import ConfigError, ImportRejected, Problem, ValidationError
from biobank.core.tools import DEBIAN_PACKAGES

__all__ = [
    "REQUIRED_TOOLS",
    "SampleSheet",
    "Unit",
    "check_config",
    "check_fastq_pair",
    "check_inputs",
    "check_reference",
    "check_tools",
    "plan_region_chunks",
    "read_sample_sheet",
    "reference_contigs",
    "repo_workflow_dir",
    "run_workflow",
    "write_ploidy_file",
    "write_region_chunks",
]

logger = logging.getLogger(__name__)

#: External programs the workflow runs.
REQUIRED_TOOLS = ("bwa", "samtools", "bcftools", "bgzip", "tabix", "fastp", "mosdepth", "plink2")

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


def repo_workflow_dir() -> Path:
    """The ``workflow/`` folder of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "workflow"


def _load_schema(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        schema: dict[str, Any] = yaml.safe_load(fh)
    return schema


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def check_config(config: Mapping[str, Any], *, schema: str | Path, file: str | Path) -> None:
    """Validate the workflow configuration against its JSON Schema.

    Parameters
    ----------
    config
        The parsed configuration.
    schema
        ``workflow/schemas/config.schema.yaml``.
    file
        The configuration file, for messages.

    Raises
    ------
    ImportRejected
        Listing every invalid key with its key path (e.g. ``filters.min_qual``).
    """
    validator = jsonschema.Draft202012Validator(_load_schema(schema))
    problems = [
        Problem(
            f"{err.message}; fix it in {file} (documented there)",
            file=str(file),
            field=_key_path(err),
        )
        for err in sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.path))
    ]
    if problems:
        raise ImportRejected(problems, file=file)


def _describe(schema: Mapping[str, Any], column: str) -> str:
    text = schema.get("properties", {}).get(column, {}).get("description", "see the schema")
    return str(text).strip()


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
    workdir = Path(workdir)
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
    sheet_schema = _load_schema(schema)
    validator = jsonschema.Draft202012Validator(sheet_schema)
    columns = list(sheet_schema["properties"])
    required = list(sheet_schema["required"])
    problems: list[Problem] = []
    units: list[Unit] = []
    sex: dict[str, str | None] = {}
    seen: dict[tuple[str, str], int] = {}
    library_sample: dict[str, str] = {}
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the header.
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
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
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                problems.append(
                    Problem(
                        f"row has {len(row.get(None) or []) + len(header)} fields or fewer "
                        f"than the {len(header)} columns of the header: separate with tabs",
                        file=str(path),
                        line=line,
                    )
                )
                continue
            record = {k: v.strip() for k, v in row.items() if k is not None and v is not None}
            row_errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
            for err in row_errors:
                col = _key_path(err)
                problems.append(
                    Problem(
                        f"{err.message} (expected: {_describe(sheet_schema, col)})",
                        file=str(path),
                        line=line,
                        field=col,
                        value=record.get(col),
                    )
                )
            if row_errors:
                continue
            key = (record["sample_id"], record["unit"])
            if key in seen:
                problems.append(
                    Problem(
                        f"duplicate unit '{key[1]}' of sample '{key[0]}' (first on line "
                        f"{seen[key]}): give each FASTQ pair of a sample its own unit name",
                        file=str(path),
                        line=line,
                        field="unit",
                        value=key[1],
                    )
                )
                continue
            seen[key] = line
            owner = library_sample.setdefault(record["library"], record["sample_id"])
            if owner != record["sample_id"]:
                problems.append(
                    Problem(
                        f"library '{record['library']}' already belongs to sample '{owner}': "
                        "a library comes from one sample (duplicates are marked per library)",
                        file=str(path),
                        line=line,
                        field="library",
                        value=record["library"],
                    )
                )
                continue
            if "sex" in record:
                registered = record["sex"] or None
                before = sex.get(record["sample_id"], registered)
                if before != registered:
                    problems.append(
                        Problem(
                            f"sex differs from another row of sample '{record['sample_id']}'",
                            file=str(path),
                            line=line,
                            field="sex",
                            value=record["sex"],
                        )
                    )
                sex[record["sample_id"]] = registered
            units.append(
                Unit(
                    sample_id=record["sample_id"],
                    unit=record["unit"],
                    library=record["library"],
                    platform=record["platform"],
                    flowcell=record["flowcell"],
                    lane=record["lane"],
                    fq1=_resolve_fastq(record["fq1"], path.parent, workdir),
                    fq2=_resolve_fastq(record["fq2"], path.parent, workdir),
                    line=line,
                )
            )
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


def reference_contigs(fasta: str | Path) -> dict[str, int]:
    """Contig names and lengths of a FASTA (from its ``.fai`` when present).

    Raises
    ------
    ConfigError
        If the FASTA does not exist or holds no sequence.
    """
    fasta = Path(fasta)
    if not fasta.is_file():
        raise ConfigError(
            f"reference FASTA {fasta} does not exist: fix 'reference.fasta' in the config "
            "(demo: run `biobank demo-data demo` first)"
        )
    fai = Path(f"{fasta}.fai")
    contigs: dict[str, int] = {}
    if fai.is_file() and fai.stat().st_mtime >= fasta.stat().st_mtime:
        with open(fai, encoding="utf-8") as fh:
            for line in fh:
                name, length = line.split("\t")[:2]
                contigs[name] = int(length)
    else:
        import pysam

        try:
            with pysam.FastxFile(str(fasta)) as fx:
                for rec in fx:
                    contigs[str(rec.name)] = len(rec.sequence or "")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"reference FASTA {fasta} cannot be read: {exc}") from exc
    if not contigs:
        raise ConfigError(f"reference FASTA {fasta} holds no sequence: give a FASTA file")
    return contigs


def check_reference(config: Mapping[str, Any], *, file: str | Path) -> list[Problem]:
    """Check that the reference exists and has the contigs the config names."""
    ref = config["reference"]
    problems: list[Problem] = []
    try:
        contigs = reference_contigs(ref["fasta"])
    except ConfigError as exc:
        return [Problem(str(exc), file=str(file), field="reference.fasta", value=ref["fasta"])]
    if not Path(ref["gff3"]).is_file():
        problems.append(
            Problem(
                "GFF3 annotation does not exist: fix 'reference.gff3' in the config",
                file=str(file),
                field="reference.gff3",
                value=ref["gff3"],
            )
        )
    shown = ", ".join(list(contigs)[:8]) + (" ..." if len(contigs) > 8 else "")
    named = [(f"reference.{k}", ref[k]) for k in ("chrx", "chry") if ref[k]]
    named += [(f"reference.par.{i}.contig", p["contig"]) for i, p in enumerate(ref["par"])]
    for key, name in named:
        if name not in contigs:
            problems.append(
                Problem(
                    f"contig '{name}' is not in the reference {ref['fasta']} (it has: {shown}): "
                    "set the name the FASTA uses (e.g. X or chrX)"
                    + (', or "" when it has none' if not key.startswith("reference.par") else ""),
                    file=str(file),
                    field=key,
                    value=name,
                )
            )
    return problems


def _mosdepth_works() -> bool:
    """Whether mosdepth runs (Debian's needs ``libhts.so``, see ``scripts/mosdepth.sh``)."""
    script = repo_workflow_dir() / "scripts" / "mosdepth.sh"
    proc = subprocess.run(
        ["bash", str(script), "--version"], capture_output=True, check=False, timeout=60
    )
    return proc.returncode == 0


def check_tools(tools: Sequence[str] = REQUIRED_TOOLS) -> None:
    """Check that every external program the workflow runs is installed.

    Raises
    ------
    ConfigError
        Naming every missing program and the Debian packages to install.
    """
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing and "mosdepth" in tools and not _mosdepth_works():
        raise ConfigError(
            "mosdepth is installed but cannot start (it cannot load libhts.so): "
            "install the Debian package 'libhts-dev' (sudo apt-get install libhts-dev)"
        )
    if missing:
        packages = sorted({DEBIAN_PACKAGES.get(t, t) for t in missing})
        raise ConfigError(
            f"required programs are not installed: {', '.join(missing)}; install the Debian "
            f"packages with: sudo apt-get install {' '.join(packages)}"
        )


def check_inputs(
    config: Mapping[str, Any],
    *,
    config_file: str | Path,
    workflow_dir: str | Path | None = None,
    workdir: str | Path = ".",
    tools: bool = True,
    fastqs: bool = True,
) -> SampleSheet:
    """Run every start-up check and return the validated sample sheet.

    Checks, in order: the configuration against its schema; the sample sheet
    (schema, naming rules, duplicate units); the reference and GFF3 and the
    contigs the configuration names; every FASTQ pair; the external programs.

    Parameters
    ----------
    config
        The parsed configuration.
    config_file
        Its file, for messages.
    workflow_dir
        The ``workflow/`` folder holding ``schemas/`` (default: this checkout's).
    workdir
        The directory Snakemake runs in.
    tools, fastqs
        Whether to check the programs and FASTQ files (a dry run may skip them).

    Raises
    ------
    ImportRejected
        Every problem in the configuration, sample sheet, FASTQs and reference.
    ConfigError
        A missing sample sheet or missing programs.
    """
    wdir = Path(workflow_dir) if workflow_dir is not None else repo_workflow_dir()
    check_config(config, schema=wdir / "schemas" / "config.schema.yaml", file=config_file)
    workdir = Path(workdir)
    sheet = read_sample_sheet(
        workdir / config["samples"],
        schema=wdir / "schemas" / "samples.schema.yaml",
        workdir=workdir,
        metadata=(workdir / config["sample_metadata"]) if config.get("sample_metadata") else None,
    )
    problems = check_reference(config, file=config_file)
    if fastqs:
        for unit in sheet.units:
            problems += check_fastq_pair(unit, sheet=sheet.path, workdir=workdir)
    if problems:
        raise ImportRejected(problems)
    if tools:
        check_tools()
    return sheet


def _gaps(fasta: Path, min_gap: int) -> dict[str, list[tuple[int, int]]]:
    """Runs of at least ``min_gap`` N per contig, 0-based half-open."""
    import pysam

    gaps: dict[str, list[tuple[int, int]]] = {}
    pattern = re.compile(f"[Nn]{{{min_gap},}}")
    with pysam.FastaFile(str(fasta)) as fa:
        for name in fa.references:
            seq = fa.fetch(name)
            gaps[name] = [(m.start(), m.end()) for m in pattern.finditer(seq)]
    return gaps


def plan_region_chunks(
    contigs: Mapping[str, int],
    gaps: Mapping[str, Sequence[tuple[int, int]]],
    n_chunks: int,
) -> list[list[tuple[str, int, int]]]:
    """Split a genome into ``n_chunks`` lists of intervals with about equal sequence.

    Intervals are 0-based half-open, in genome order, cover every non-gap base
    exactly once and never include a gap; a chunk is contiguous in genome
    order, so gathering chunk results in chunk order keeps the genome sorted.

    Raises
    ------
    ConfigError
        If there are fewer non-gap bases than chunks.

    Examples
    --------
    >>> plan_region_chunks({"a": 100, "b": 50}, {"a": [(40, 60)]}, 2)
    [[('a', 0, 40), ('a', 60, 85)], [('a', 85, 100), ('b', 0, 50)]]
    """
    segments: list[tuple[str, int, int]] = []
    for name, length in contigs.items():
        start = 0
        for g0, g1 in sorted(gaps.get(name, ())):
            if g0 > start:
                segments.append((name, start, g0))
            start = max(start, g1)
        if start < length:
            segments.append((name, start, length))
    total = sum(e - s for _, s, e in segments)
    if total < n_chunks:
        raise ConfigError(
            f"the reference has {total} bases outside N gaps, fewer than the "
            f"{n_chunks} scatter chunks: lower 'scatter.chunks' in the config"
        )
    chunks: list[list[tuple[str, int, int]]] = [[] for _ in range(n_chunks)]
    # Cut points are at k * total / n_chunks bases of the non-gap sequence.
    target = [round(total * (k + 1) / n_chunks) for k in range(n_chunks)]
    done = 0
    k = 0
    for name, s, e in segments:
        while s < e:
            take = min(e - s, target[k] - done) if k < n_chunks - 1 else e - s
            if take > 0:
                chunks[k].append((name, s, s + take))
                s += take
                done += take
            if k < n_chunks - 1 and done >= target[k]:
                k += 1
    return chunks


def write_region_chunks(fasta: str | Path, out: Sequence[str | Path], *, min_gap: int) -> None:
    """Write one BED file (0-based half-open) per chunk for the reference.

    Parameters
    ----------
    fasta
        Reference FASTA (indexed).
    out
        The BED files to write; their number is the number of chunks.
    min_gap
        Runs of at least this many N are not part of any chunk.
    """
    contigs = reference_contigs(fasta)
    chunks = plan_region_chunks(contigs, _gaps(Path(fasta), min_gap), len(out))
    for path, intervals in zip(out, chunks, strict=True):
        with open(path, "w", encoding="utf-8") as fh:
            for name, s, e in intervals:
                fh.write(f"{name}\t{s}\t{e}\n")


def write_ploidy_file(
    path: str | Path,
    *,
    contigs: Mapping[str, int],
    chrx: str,
    chry: str,
    par: Sequence[Mapping[str, Any]],
) -> None:
    """Write a ``bcftools call --ploidy-file`` for the sex chromosomes.

    Males (``M``) are haploid on X outside the pseudo-autosomal regions and
    on Y; females (``F``) have no Y. Samples of unknown sex (``U``) are
    treated as diploid everywhere. Coordinates are 1-based inclusive. An
    empty ``chrx`` or ``chry`` means the reference has no such chromosome.
    """
    lines: list[str] = []
    if chrx:
        pars = sorted((int(p["start"]), int(p["end"])) for p in par if p["contig"] == chrx)
        start = 1
        for p0, p1 in pars:
            if p0 > start:
                lines.append(f"{chrx}\t{start}\t{p0 - 1}\tM\t1")
            start = max(start, p1 + 1)
        if start <= contigs[chrx]:
            lines.append(f"{chrx}\t{start}\t{contigs[chrx]}\tM\t1")
    if chry:
        y_len = contigs[chry]
        lines.append(f"{chry}\t1\t{y_len}\tM\t1")
        lines.append(f"{chry}\t1\t{y_len}\tF\t0")
    lines += ["*\t*\t*\tM\t2", "*\t*\t*\tF\t2", "*\t*\t*\tU\t2"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_workflow(
    *,
    cores: int = 2,
    configfile: str | Path | None = None,
    directory: str | Path | None = None,
    targets: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> int:
    """Run the Snakemake workflow of this checkout as a subprocess.

    Returns
    -------
    int
        Snakemake's exit code.
    """
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [
        str(snakemake if snakemake.exists() else "snakemake"),
        "--snakefile",
        str(repo_workflow_dir() / "Snakefile"),
        "--cores",
        str(cores),
    ]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if directory is not None:
        cmd += ["--directory", str(directory)]
    cmd += [*extra, *targets]
    logger.info("running %s", " ".join(cmd))
    return subprocess.run(cmd, check=False).returncode


#: Site filters: FILTER name, description template and the bcftools expression
#: that *fails* a site. Thresholds come from the config's ``filters`` section.
SITE_FILTERS: tuple[tuple[str, str, str], ...] = (
    ("LowQual", "min_qual", "QUAL<{min_qual}"),
    ("LowDP", "min_site_dp", "INFO/DP<{min_site_dp}"),
    ("HighDP", "max_site_dp", "INFO/DP>{max_site_dp}"),
    ("LowMQ", "min_mq", "INFO/MQ<{min_mq}"),
)


def apply_soft_filters(
    src: str | Path,
    dst: str | Path,
    *,
    thresholds: Mapping[str, float],
) -> None:
    """Flag failing sites in FILTER and failing genotypes in FORMAT/FT.

    Nothing is removed. Site filters (``bcftools filter --soft-filter``, one
    pass per filter, names added with ``--mode +``): ``LowQual`` (QUAL below
    ``min_qual``), ``LowDP``/``HighDP`` (INFO/DP outside ``min_site_dp`` ..
    ``max_site_dp``), ``LowMQ`` (INFO/MQ below ``min_mq``); passing sites get
    ``PASS``. Genotype filters in FORMAT/FT: ``LowGQ`` (GQ below ``min_gq``;
    a missing GQ, as on a hom-ref genotype from a gVCF reference block, is not
    a failure) and ``LowGtDP`` (DP below ``min_dp``); ``PASS`` otherwise and
    missing (``.``) for a no-call.

    Parameters
    ----------
    src
        Input VCF/BCF.
    dst
        Output (BCF when it ends in ``.bcf``, else bgzipped VCF).
    thresholds
        The config's ``filters`` section.

    Raises
    ------
    ExternalToolError
        If bcftools fails.
    """
    import tempfile

    import cyvcf2
    import numpy as np

    from biobank.core.tools import run_tool

    with tempfile.TemporaryDirectory(prefix="soft-filter-") as tmp:
        current = Path(src)
        for i, (name, key, expr) in enumerate(SITE_FILTERS):
            out = Path(tmp) / f"step{i}.bcf"
            run_tool(
                [
                    "bcftools",
                    "filter",
                    "--soft-filter",
                    name,
                    "--mode",
                    "+",
                    "--exclude",
                    expr.format(**{key: thresholds[key]}),
                    "--output-type",
                    "u",
                    "--output",
                    out,
                    current,
                ]
            )
            current = out
        reader = cyvcf2.VCF(str(current))
        reader.add_format_to_header(
            {
                "ID": "FT",
                "Number": "1",
                "Type": "String",
                "Description": (
                    f"Genotype filter: PASS, or LowGQ (GQ<{thresholds['min_gq']}) and/or "
                    f"LowGtDP (DP<{thresholds['min_dp']}), ';'-separated"
                ),
            }
        )
        mode = "wb" if str(dst).endswith(".bcf") else "wz"
        writer = cyvcf2.Writer(str(dst), reader, mode=mode)
        n = len(reader.samples)
        int_missing = np.iinfo(np.int32).min
        try:
            for variant in reader:
                called = np.array([g[0] >= 0 for g in variant.genotypes], dtype=bool)
                low_gq = np.zeros(n, dtype=bool)
                low_dp = np.zeros(n, dtype=bool)
                gq = variant.format("GQ")
                if gq is not None:
                    vals = gq[:, 0]
                    low_gq = (vals > int_missing) & (vals < thresholds["min_gq"])
                dp = variant.format("DP")
                if dp is not None:
                    vals = dp[:, 0]
                    low_dp = (vals > int_missing) & (vals < thresholds["min_dp"])
                ft = []
                for i in range(n):
                    if not called[i]:
                        ft.append(b".")
                        continue
                    flags = [f for f, bad in (("LowGQ", low_gq[i]), ("LowGtDP", low_dp[i])) if bad]
                    ft.append(";".join(flags).encode() if flags else b"PASS")
                variant.set_format("FT", np.array(ft))
                writer.write_record(variant)
        finally:
            writer.close()
            reader.close()
