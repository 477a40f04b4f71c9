"""Per-sample QC of a cohort: call rate, heterozygosity, Ti/Tv, sex, relatedness.

The sequencing workflow (``workflow/rules/report.smk``) writes
``results/qc/sample_qc.tsv`` with :func:`write_sample_qc`. Genotype counts are
taken with scikit-allel over the cohort VCF's PASS biallelic SNPs on the
autosomes; sex is inferred from X and Y read depth relative to the autosomes
(mosdepth), which does not depend on the ploidy used for calling; relatedness
is plink2's KING-robust kinship (``--make-king-table``).

The table (one row per sample, tab-separated) has the columns:

=================  ==============================================================
``sample_id``      sequencing sample id
``n_sites``        PASS autosomal biallelic SNP sites in the cohort VCF
``n_called``       of these, sites where the sample has a genotype
``call_rate``      ``n_called / n_sites``
``n_hom_ref``      called sites that are homozygous reference
``n_het``          called sites that are heterozygous
``n_hom_alt``      called sites that are homozygous alternate
``het_rate``       ``n_het / n_called``
``het_hom_ratio``  ``n_het / n_hom_alt`` (empty when no hom-alt)
``tstv``           transitions / transversions over the sample's alt alleles
``mean_depth``     mean autosomal read depth (mosdepth)
``x_ratio``        chrX mean depth / autosomal mean depth
``y_ratio``        chrY mean depth / autosomal mean depth (empty without a Y)
``registered_sex`` female, male or empty (unknown)
``inferred_sex``   female, male or empty (unclear)
``sex_check``      match, mismatch or unknown
``max_kinship``    highest KING kinship with another sample (empty for one sample)
``related_to``     samples with kinship above the threshold, ``;``-separated
``flags``          failed checks, ``;``-separated: low_call_rate, het_outlier,
                   tstv_out_of_range, sex_mismatch, related
``qc_pass``        true when ``flags`` is empty
=================  ==============================================================

In the store (:func:`load_sample_qc`) this verdict is kept as ``workflow_qc_pass``;
``sample_qc.qc_pass`` is the overall verdict, which a failed family check also
fails (:mod:`biobank.sequencing.sampleqc_family`).
"""

from __future__ import annotations

import logging
import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biobank.core.errors import ImportRejected, Problem, ValidationError
from biobank.core.tools import run_tool
from biobank.sequencing.sampleqc_family import refresh_verdict

__all__ = [
    "STORED_COLUMNS",
    "GenotypeCounts",
    "SampleQcLoad",
    "SexCall",
    "count_genotypes",
    "infer_sex",
    "king_table",
    "load_sample_qc",
    "read_mosdepth_summary",
    "sample_qc_table",
    "write_sample_qc",
]

logger = logging.getLogger(__name__)

_TRANSITIONS = {("A", "G"), ("G", "A"), ("C", "T"), ("T", "C")}
_NOT_AUTOSOMES = {"M", "MT", "chrM", "chrMT"}


@dataclass(frozen=True)
class SexCall:
    """Sex inferred from read depth.

    Attributes
    ----------
    mean_depth
        Mean depth over the autosomes (length-weighted).
    x_ratio, y_ratio
        Mean depth on X (Y) divided by ``mean_depth``; ``None`` when not computable.
    inferred
        ``"male"``, ``"female"`` or ``None`` when the ratios disagree or are missing.
    """

    mean_depth: float
    x_ratio: float | None
    y_ratio: float | None
    inferred: str | None


@dataclass(frozen=True)
class GenotypeCounts:
    """Per-sample genotype counts over PASS autosomal biallelic SNPs."""

    n_sites: int
    n_called: int
    n_hom_ref: int
    n_het: int
    n_hom_alt: int
    n_transitions: int
    n_transversions: int


def read_mosdepth_summary(path: str | Path) -> dict[str, tuple[int, float]]:
    """Read a ``*.mosdepth.summary.txt`` into ``{contig: (length, mean depth)}``.

    The ``total`` and ``*_region`` rows are left out.

    Raises
    ------
    ValidationError
        If the file lacks the mosdepth columns.
    """
    out: dict[str, tuple[int, float]] = {}
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:4] != ["chrom", "length", "bases", "mean"]:
            raise ValidationError(
                "not a mosdepth summary (expected columns chrom, length, bases, mean)",
                file=path,
                line=1,
            )
        for line in fh:
            chrom, length, _bases, mean = line.rstrip("\n").split("\t")[:4]
            if chrom == "total" or chrom.endswith("_region"):
                continue
            out[chrom] = (int(length), float(mean))
    return out


def infer_sex(
    summary: Mapping[str, tuple[int, float]],
    *,
    chrx: str,
    chry: str,
    x_ratio_male: float,
    y_ratio_male: float,
) -> SexCall:
    """Infer sex from X and Y depth relative to the autosomes.

    One X (X ratio below ``x_ratio_male``) together with a Y (Y ratio above
    ``y_ratio_male``, when the reference has a Y) is male; two X without a Y
    is female; anything else (e.g. X0, XXY, no coverage) is unclear (``None``).
    """
    auto = [
        (length, mean)
        for name, (length, mean) in summary.items()
        if name not in {chrx, chry} and name not in _NOT_AUTOSOMES
    ]
    total_len = sum(length for length, _ in auto)
    mean_depth = sum(length * mean for length, mean in auto) / total_len if total_len else 0.0
    if mean_depth <= 0 or chrx not in summary:
        return SexCall(mean_depth, None, None, None)
    x_ratio = summary[chrx][1] / mean_depth
    y_ratio = summary[chry][1] / mean_depth if chry and chry in summary else None
    one_x = x_ratio < x_ratio_male
    has_y = None if y_ratio is None else y_ratio > y_ratio_male
    inferred: str | None
    if one_x and has_y in (True, None):
        inferred = "male"
    elif not one_x and has_y in (False, None):
        inferred = "female"
    else:
        inferred = None
    return SexCall(mean_depth, x_ratio, y_ratio, inferred)


def count_genotypes(
    vcf: str | Path,
    *,
    exclude_contigs: Sequence[str] = (),
    chunk_length: int = 20_000,
) -> dict[str, GenotypeCounts]:
    """Count genotypes per sample over PASS biallelic SNPs (scikit-allel).

    Parameters
    ----------
    vcf
        Cohort VCF (bgzipped).
    exclude_contigs
        Contigs left out (the sex chromosomes; mitochondria are always left out).

    Returns
    -------
    dict[str, GenotypeCounts]
        By sample id, in VCF order.
    """
    import allel

    excluded = set(exclude_contigs) | _NOT_AUTOSOMES
    fields = [
        "variants/CHROM",
        "variants/REF",
        "variants/ALT",
        "variants/FILTER_PASS",
        "calldata/GT",
    ]
    samples: list[str] = []
    sums: dict[str, np.ndarray] = {}
    names = ["called", "hom_ref", "het", "hom_alt", "ts", "tv"]
    n_sites = 0
    with warnings.catch_warnings():
        # scikit-allel warns about header lines it does not parse (bcftools'
        # Version= attribute, csq's FORMAT/BCSQ description): harmless here.
        warnings.simplefilter("ignore", UserWarning)
        _fields, samples_arr, _headers, chunks = allel.iter_vcf_chunks(
            str(vcf), fields=fields, alt_number=1, chunk_length=chunk_length
        )
        samples = [str(s) for s in samples_arr]
        for name in names:
            sums[name] = np.zeros(len(samples), dtype=np.int64)
        for chunk, _n, _chrom, _pos in chunks:
            ref = chunk["variants/REF"].astype(str)
            alt = chunk["variants/ALT"].astype(str)
            chrom = chunk["variants/CHROM"].astype(str)
            is_snp = (np.char.str_len(ref) == 1) & (np.char.str_len(alt) == 1) & (alt != "")
            keep = chunk["variants/FILTER_PASS"] & is_snp & ~np.isin(chrom, list(excluded))
            if not keep.any():
                continue
            gt = allel.GenotypeArray(chunk["calldata/GT"][keep])
            n_sites += int(keep.sum())
            called = gt.is_called()
            alt_count = gt.to_n_alt(fill=-1)
            sums["called"] += called.sum(axis=0)
            sums["hom_ref"] += gt.is_hom_ref().sum(axis=0)
            sums["het"] += gt.is_het().sum(axis=0)
            sums["hom_alt"] += gt.is_hom_alt().sum(axis=0)
            is_ts = np.array(
                [
                    (r.upper(), a.upper()) in _TRANSITIONS
                    for r, a in zip(ref[keep], alt[keep], strict=True)
                ]
            )
            carries = alt_count > 0
            sums["ts"] += (carries & is_ts[:, None]).sum(axis=0)
            sums["tv"] += (carries & ~is_ts[:, None]).sum(axis=0)
    return {
        s: GenotypeCounts(
            n_sites=n_sites,
            n_called=int(sums["called"][i]),
            n_hom_ref=int(sums["hom_ref"][i]),
            n_het=int(sums["het"][i]),
            n_hom_alt=int(sums["hom_alt"][i]),
            n_transitions=int(sums["ts"][i]),
            n_transversions=int(sums["tv"][i]),
        )
        for i, s in enumerate(samples)
    }


def king_table(vcf: str | Path, out_prefix: str | Path) -> list[tuple[str, str, float]]:
    """KING-robust kinship of every sample pair with plink2 ``--make-king-table``.

    Uses PASS biallelic SNPs on the autosomes. Returns ``[]`` for fewer than
    two samples or when no such SNPs exist.

    Returns
    -------
    list[tuple[str, str, float]]
        ``(sample_1, sample_2, kinship)`` rows.

    Raises
    ------
    ExternalToolError
        If plink2 fails for another reason.
    """
    import cyvcf2

    from biobank.core.errors import ExternalToolError

    out_prefix = Path(out_prefix)
    reader = cyvcf2.VCF(str(vcf))
    n_samples = len(reader.samples)
    reader.close()
    if n_samples < 2:
        return []
    try:
        run_tool(
            [
                "plink2",
                "--vcf",
                vcf,
                "--var-filter",
                "--autosome",
                "--snps-only",
                "just-acgt",
                "--max-alleles",
                "2",
                "--allow-extra-chr",
                "--make-king-table",
                "--threads",
                "1",
                "--out",
                out_prefix,
            ]
        )
    except ExternalToolError as exc:
        text = exc.stderr
        if "No variants" in text or "variants remaining" in text:
            logger.warning("plink2 --make-king-table skipped: %s", text.strip().splitlines()[-1])
            return []
        raise
    rows: list[tuple[str, str, float]] = []
    with open(f"{out_prefix}.kin0", encoding="utf-8") as fh:
        header = fh.readline().lstrip("#").rstrip("\n").split("\t")
        i1, i2, ik = header.index("IID1"), header.index("IID2"), header.index("KINSHIP")
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            rows.append((parts[i1], parts[i2], float(parts[ik])))
    return rows


def _fmt(value: float | None, digits: int = 4) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, digits)


def sample_qc_table(
    counts: Mapping[str, GenotypeCounts],
    *,
    sex_calls: Mapping[str, SexCall],
    registered_sex: Mapping[str, str | None],
    kinship: Sequence[tuple[str, str, float]],
    thresholds: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Combine the per-sample measures into QC rows with pass/fail flags.

    Parameters
    ----------
    counts
        From :func:`count_genotypes`.
    sex_calls
        From :func:`infer_sex`, by sample.
    registered_sex
        ``"female"``, ``"male"`` or ``None`` by sample.
    kinship
        From :func:`king_table`.
    thresholds
        The config's ``sample_qc`` section (``min_call_rate``, ``max_het_sd``,
        ``min_tstv``, ``max_tstv``, ``max_kinship``).

    Returns
    -------
    list[dict]
        One row per sample, columns as in the module docstring.
    """
    rows: list[dict[str, Any]] = []
    het_rates = {s: c.n_het / c.n_called for s, c in counts.items() if c.n_called > 0}
    het_mean = statistics.fmean(het_rates.values()) if len(het_rates) >= 5 else None
    het_sd = statistics.stdev(het_rates.values()) if len(het_rates) >= 5 else None
    for sample, c in counts.items():
        flags: list[str] = []
        call_rate = c.n_called / c.n_sites if c.n_sites else None
        if call_rate is None or call_rate < thresholds["min_call_rate"]:
            flags.append("low_call_rate")
        het_rate = het_rates.get(sample)
        if (
            het_mean is not None
            and het_sd is not None
            and het_rate is not None
            and het_sd > 0
            and abs(het_rate - het_mean) > thresholds["max_het_sd"] * het_sd
        ):
            flags.append("het_outlier")
        tstv = c.n_transitions / c.n_transversions if c.n_transversions else None
        lo, hi = thresholds.get("min_tstv"), thresholds.get("max_tstv")
        if (lo is not None or hi is not None) and (
            tstv is None or (lo is not None and tstv < lo) or (hi is not None and tstv > hi)
        ):
            flags.append("tstv_out_of_range")
        sex = sex_calls.get(sample)
        registered = registered_sex.get(sample)
        inferred = sex.inferred if sex else None
        if registered and inferred:
            sex_check = "match" if registered == inferred else "mismatch"
        else:
            sex_check = "unknown"
        if sex_check == "mismatch":
            flags.append("sex_mismatch")
        pairs = [(b if a == sample else a, k) for a, b, k in kinship if sample in (a, b)]
        related = sorted(o for o, k in pairs if k > thresholds["max_kinship"])
        if related:
            flags.append("related")
        rows.append(
            {
                "sample_id": sample,
                "n_sites": c.n_sites,
                "n_called": c.n_called,
                "call_rate": _fmt(call_rate, 6),
                "n_hom_ref": c.n_hom_ref,
                "n_het": c.n_het,
                "n_hom_alt": c.n_hom_alt,
                "het_rate": _fmt(het_rate, 6),
                "het_hom_ratio": _fmt(c.n_het / c.n_hom_alt if c.n_hom_alt else None),
                "tstv": _fmt(tstv),
                "mean_depth": _fmt(sex.mean_depth if sex else None, 2),
                "x_ratio": _fmt(sex.x_ratio if sex else None),
                "y_ratio": _fmt(sex.y_ratio if sex else None),
                "registered_sex": registered or "",
                "inferred_sex": inferred or "",
                "sex_check": sex_check,
                "max_kinship": _fmt(max((k for _, k in pairs), default=None)),
                "related_to": ";".join(related),
                "flags": ";".join(flags),
                "qc_pass": not flags,
            }
        )
    return rows


def write_sample_qc(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    multiqc: str | Path | None = None,
) -> None:
    """Write the QC rows as TSV (and optionally as MultiQC custom content).

    Parameters
    ----------
    rows
        From :func:`sample_qc_table`.
    path
        The TSV to write.
    multiqc
        Also write a ``*_mqc.tsv`` table that MultiQC shows as a section.
    """
    import polars as pl

    # Empty text is written as an empty field (polars would quote it as "").
    cleaned = [{k: (None if v == "" else v) for k, v in row.items()} for row in rows]
    df = pl.DataFrame(cleaned, infer_schema_length=None)
    df.write_csv(path, separator="\t", null_value="")
    if multiqc is not None:
        head = (
            "# id: 'biobank_sample_qc'\n"
            "# section_name: 'Sample QC'\n"
            "# description: 'Per-sample QC of the cohort VCF (results/qc/sample_qc.tsv): "
            "call rate, heterozygosity, Ti/Tv, inferred vs registered sex, KING kinship.'\n"
            "# plot_type: 'table'\n"
        )
        with open(multiqc, "w", encoding="utf-8") as fh:
            fh.write(head)
            fh.write(df.write_csv(separator="\t", null_value=""))


#: Columns of the QC table that :func:`load_sample_qc` stores, with their types.
STORED_COLUMNS: dict[str, str] = {
    "sample_id": "str",
    "n_sites": "int",
    "n_called": "int",
    "call_rate": "float",
    "n_het": "int",
    "n_hom_alt": "int",
    "het_rate": "float",
    "tstv": "float",
    "mean_depth": "float",
    "registered_sex": "str",
    "inferred_sex": "str",
    "sex_check": "str",
    "max_kinship": "float",
    "related_to": "str",
    "flags": "str",
    "qc_pass": "bool",
}


@dataclass(frozen=True)
class SampleQcLoad:
    """What :func:`load_sample_qc` did."""

    source: str
    load_id: int
    already_loaded: bool
    n_samples: int = 0
    n_failed: int = 0


def _parse_qc_value(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        value = float(text)
        if math.isnan(value):
            return None
        return value
    if kind == "bool":
        if text.lower() not in {"true", "false"}:
            raise ValueError("must be true or false")
        return text.lower() == "true"
    return text


def load_sample_qc(store: Any, path: str | Path, *, principal: Any) -> SampleQcLoad:
    """Load the workflow's per-sample QC table into the store, all or nothing.

    Every sample must be a registered sequencing sample. Loading the same file
    again is a no-op; a newer QC table replaces the workflow's columns of its
    samples and keeps their family check summary; the stored ``qc_pass`` is the
    overall verdict (:mod:`biobank.sequencing.sampleqc_family`), the table's own
    is kept as ``workflow_qc_pass``.

    Parameters
    ----------
    store
        The :class:`~biobank.core.store.Store`.
    path
        ``results/qc/sample_qc.tsv`` (columns as in the module docstring).
    principal
        Who loads (needs ``load_data``).

    Returns
    -------
    SampleQcLoad

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    ImportRejected
        Listing every bad row (missing column, unparsable number, bad ``qc_pass``).
    NotFoundError
        If a sample id is not linked to a registered specimen.
    """
    from biobank.core.access import Permission, require
    from biobank.core.store import file_checksum
    from biobank.registry.inventory import resolve_samples

    require(principal, Permission.LOAD_DATA)
    path = Path(path)
    if not path.is_file():
        raise ValidationError("sample QC table not found", file=path)
    checksum = file_checksum(path)
    earlier = store.find_load(kind="sample-qc", checksum=checksum)
    if earlier is not None:
        return SampleQcLoad(source=str(path), load_id=earlier, already_loaded=True)
    rows = _read_qc_table(path)
    resolve_samples(store.con, [r["sample_id"] for r in rows])
    load_id, failed = _store_qc_rows(store, rows, path=path, checksum=checksum, principal=principal)
    return SampleQcLoad(
        source=str(path),
        load_id=load_id,
        already_loaded=False,
        n_samples=len(rows),
        n_failed=failed,
    )


def _read_qc_table(path: Path) -> list[dict[str, Any]]:
    """Parse every row of the QC table; raise :class:`ImportRejected` listing every bad one."""
    import csv

    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        missing = [c for c in STORED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportRejected(
                [
                    Problem(
                        f"missing column '{c}': write the table with 'biobank' workflow's "
                        "sample_qc rule",
                        file=str(path),
                        line=1,
                        field=c,
                    )
                    for c in missing
                ],
                file=path,
            )
        seen: set[str] = set()
        for line, raw in enumerate(reader, start=2):
            rows.append(_parse_qc_row(raw, path=path, line=line, seen=seen, problems=problems))
    if problems:
        raise ImportRejected(problems, file=path)
    return rows


def _parse_qc_row(
    raw: Mapping[str, str | None],
    *,
    path: Path,
    line: int,
    seen: set[str],
    problems: list[Problem],
) -> dict[str, Any]:
    """Convert one row by :data:`STORED_COLUMNS`; append its problems to ``problems``."""
    row: dict[str, Any] = {}
    for column, kind in STORED_COLUMNS.items():
        text = (raw.get(column) or "").strip()
        try:
            row[column] = _parse_qc_value(text, kind)
        except ValueError:
            problems.append(
                Problem(
                    f"is not a valid {kind}",
                    file=str(path),
                    line=line,
                    field=column,
                    value=text,
                )
            )
    if not row.get("sample_id"):
        problems.append(Problem("sample_id is empty", file=str(path), line=line, field="sample_id"))
    elif row["sample_id"] in seen:
        problems.append(
            Problem(
                "sample appears twice",
                file=str(path),
                line=line,
                field="sample_id",
                value=row["sample_id"],
            )
        )
    else:
        seen.add(row["sample_id"])
    # An empty qc_pass is reported once per file (`problems` holds earlier rows' too).
    if row.get("qc_pass") is None and "qc_pass" not in {p.field for p in problems}:
        problems.append(Problem("qc_pass is empty", file=str(path), line=line, field="qc_pass"))
    return row


def _store_qc_rows(
    store: Any, rows: list[dict[str, Any]], *, path: Path, checksum: str, principal: Any
) -> tuple[int, int]:
    """Insert the rows with their provenance and audit record; return ``(load_id, failed)``."""
    from biobank.core import audit

    columns = list(STORED_COLUMNS)
    with store.transaction() as con:
        load_id = store.record_provenance(
            con,
            kind="sample-qc",
            source=str(path),
            checksum=checksum,
            parameters={"rows": len(rows)},
            user=principal.user,
        )
        # The workflow's columns are replaced; the family check summary stays, and the
        # overall verdict is recomputed from both (sampleqc_family.refresh_verdict).
        updates = ", ".join(f"{c} = excluded.{c}" for c in ["load_id", *columns[1:]])
        con.executemany(
            f"INSERT INTO sample_qc (load_id, {', '.join(columns)}, workflow_qc_pass)"
            f" VALUES (?, {', '.join('?' for _ in columns)}, ?)"
            f" ON CONFLICT (sample_id) DO UPDATE SET {updates},"
            " workflow_qc_pass = excluded.workflow_qc_pass",
            [[load_id, *(r[c] for c in columns), r["qc_pass"]] for r in rows],
        )
        refresh_verdict(con, [r["sample_id"] for r in rows])
        failed = sum(1 for r in rows if not r["qc_pass"])
        audit.record(
            con,
            principal,
            "sample_qc.load",
            str(path),
            {"samples": len(rows), "failed": failed, "load_id": load_id},
        )
    return load_id, failed
