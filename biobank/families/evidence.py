"""Read evidence of de novo candidates, from the VCF that the genotypes were loaded from.

The store keeps genotypes, depth and quality, not the reads per allele, so a de
novo call's allele balance and the parents' read support cannot be judged from
it. :func:`add_read_evidence` reads ``FORMAT/AD``, ``DP`` and ``GQ`` of the trio at
each de novo candidate from the source file recorded for the load
(``genotype_load.source``), through htslib (pysam) and the file's index, and
applies a :class:`ReadFilter`:

* the child has at least ``min_child_alt_reads`` ALT reads and an allele balance
  (ALT reads / all reads) of at least ``min_child_allele_balance``;
* each parent has a depth of at least ``min_parent_depth``, a genotype quality of
  at least ``min_parent_quality`` and at most ``max_parent_alt_reads`` ALT reads
  (more suggests a mosaic parent or a missed inherited allele).

Before a file is read it must be the file that was loaded: its SHA-256 must be
the load's checksum. The result is remembered in ``genotype_source_check`` by
path, size and modification time, so an unchanged file is hashed once. A
moved file is found again with ``relocate`` (``--source-path OLD=NEW``); a
missing, changed or unindexed file is refused with a message that says which
and how to fix it (or skip the reads with ``--no-read-evidence``: the columns
are then null and ``read_evidence`` is ``not_checked``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from biobank.core.errors import ValidationError
from biobank.core.store import file_checksum

__all__ = [
    "EVIDENCE_COLUMNS",
    "ReadEvidence",
    "ReadFilter",
    "add_read_evidence",
    "without_read_evidence",
]

#: the columns :func:`add_read_evidence` adds, with their types
EVIDENCE_COLUMNS: dict[str, Any] = {
    "child_alt_reads": pl.Int64,
    "child_allele_balance": pl.Float64,
    "father_depth": pl.Int64,
    "father_alt_reads": pl.Int64,
    "father_GQ": pl.Int64,
    "mother_depth": pl.Int64,
    "mother_alt_reads": pl.Int64,
    "mother_GQ": pl.Int64,
    "read_evidence": pl.String,  # pass, fail, not_checked, not_applicable (other modes)
    "read_evidence_detail": pl.String,
}


@dataclass(frozen=True)
class ReadFilter:
    """Thresholds on the reads of a de novo call (see the module docstring)."""

    min_child_alt_reads: int = 3
    min_child_allele_balance: float = 0.2
    min_parent_depth: int = 10
    min_parent_quality: int = 20
    max_parent_alt_reads: int = 1


@dataclass(frozen=True)
class ReadEvidence:
    """How :func:`biobank.families.inheritance.find_candidates` uses the reads.

    Parameters
    ----------
    read_filter
        The thresholds.
    relocate
        ``{OLD: NEW}`` path prefixes: a source file loaded as ``OLD/x.vcf.gz`` is
        read from ``NEW/x.vcf.gz``.
    keep_failing
        Keep de novo rows that fail the filter (``read_evidence`` = ``fail``)
        instead of dropping them.
    """

    read_filter: ReadFilter = field(default_factory=ReadFilter)
    relocate: Mapping[str, str] = field(default_factory=dict)
    keep_failing: bool = False


@dataclass
class _Reads:
    alt: int | None
    total: int | None
    depth: int | None
    gq: int | None


def _store_dir(con: duckdb.DuckDBPyConnection) -> Path | None:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return Path(row[0]).parent if row and row[0] else None


def _locate(con: duckdb.DuckDBPyConnection, source: str, relocate: Mapping[str, str]) -> Path:
    moved = source
    for old, new in relocate.items():
        if source.startswith(old):
            moved = new + source[len(old) :]
            break
    path = Path(moved)
    tries = [path] if path.is_absolute() else [Path.cwd() / path]
    base = _store_dir(con)
    if not path.is_absolute() and base is not None:
        tries.append(base / path)
    for p in tries:
        if p.is_file():
            return p
    raise ValidationError(
        f"the genotypes were loaded from {source}, which is not there any more"
        + (f" (looked for {moved})" if moved != source else "")
        + ": the de novo read evidence (AD, DP, GQ of the trio) is read from it. Point to "
        "its new place with --source-path OLD=NEW, or skip the reads with --no-read-evidence",
        file=source,
        field="source_path",
    )


def _verified(con: duckdb.DuckDBPyConnection, path: Path, source: str, checksum: str) -> None:
    """Check that ``path`` is the loaded file (SHA-256), remembering the answer."""
    st = path.stat()
    key = str(path.resolve())
    seen = con.execute(
        "SELECT 1 FROM genotype_source_check WHERE path = ? AND n_bytes = ? AND mtime_ns = ?"
        " AND sha256 = ?",
        [key, st.st_size, st.st_mtime_ns, checksum],
    ).fetchone()
    if seen:
        return
    if file_checksum(path) != checksum:
        raise ValidationError(
            f"{path} has changed since the genotypes were loaded from {source} (its SHA-256 "
            "differs): restore the loaded file, point --source-path at a copy of it, or skip "
            "the reads with --no-read-evidence",
            file=path,
            field="source_path",
        )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with contextlib.suppress(duckdb.Error):  # a read-only connection: check again next time
        con.execute(
            "INSERT OR REPLACE INTO genotype_source_check VALUES (?, ?, ?, ?, ?)",
            [key, st.st_size, st.st_mtime_ns, checksum, now],
        )


def _sources(
    con: duckdb.DuckDBPyConnection, samples: Sequence[str], relocate: Mapping[str, str]
) -> dict[str, list[tuple[Path, str]]]:
    """Sample id -> the checked VCF/BCF files its batch was loaded from (none for arrays)."""
    rows = con.execute(
        "SELECT DISTINCT s.sample_id, l.source, split_part(l.checksum, ':', 1)"
        " FROM genotype_sample s JOIN genotype_load l USING (batch_id)"
        " JOIN provenance p USING (load_id)"
        " WHERE p.kind IN ('vcf', 'vcf-region') AND s.sample_id IN (SELECT unnest(?))"
        " ORDER BY 1, 2",
        [list(samples)],
    ).fetchall()
    checked: dict[tuple[str, str], Path] = {}
    out: dict[str, list[tuple[Path, str]]] = {}
    for sample, source, checksum in rows:
        if (source, checksum) not in checked:
            path = _locate(con, source, relocate)
            _verified(con, path, source, checksum)
            checked[(source, checksum)] = path
        out.setdefault(sample, []).append((checked[(source, checksum)], source))
    return out


def _open(path: Path, source: str) -> Any:
    import pysam

    try:
        vf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot open {path}: {exc}", file=path) from exc
    if vf.index is None:
        vf.close()
        raise ValidationError(
            f"{path} (loaded as {source}) has no index, so the trio's reads at the candidate "
            f"sites cannot be looked up: index it with 'bcftools index -t {path}' (VCF.gz) or "
            f"'bcftools index {path}' (BCF), or skip the reads with --no-read-evidence",
            file=path,
        )
    return vf


def _value(sample: Any, key: str) -> Any:
    try:
        return sample[key]
    except KeyError:
        return None


def _reads_at(
    vf: Any, site: tuple[str, int, str, str], samples: Sequence[str]
) -> dict[str, _Reads]:
    contig, pos, ref, alt = site
    out: dict[str, _Reads] = {}
    for rec in vf.fetch(contig, pos - 1, pos):
        if rec.pos != pos or rec.ref != ref or alt not in (rec.alts or ()):
            continue
        ai = rec.alts.index(alt) + 1
        for name in samples:
            smp = rec.samples[name]
            ad = _value(smp, "AD")
            counts = [x for x in ad if x is not None] if ad is not None else []
            has_ad = ad is not None and len(ad) > ai and ad[ai] is not None
            out[name] = _Reads(
                alt=int(ad[ai]) if has_ad else None,
                total=sum(counts) if has_ad else None,
                depth=_value(smp, "DP")
                if _value(smp, "DP") is not None
                else (sum(counts) if has_ad else None),
                gq=_value(smp, "GQ"),
            )
        break
    return out


def _judge(
    child: _Reads | None, parents: Sequence[tuple[str, _Reads | None]], rf: ReadFilter
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    missing: list[str] = []
    reasons: list[str] = []
    if child is None or child.alt is None or not child.total:
        missing.append("the child's AD")
        row["child_alt_reads"] = row["child_allele_balance"] = None
    else:
        ab = child.alt / child.total
        row["child_alt_reads"], row["child_allele_balance"] = child.alt, round(ab, 4)
        if child.alt < rf.min_child_alt_reads:
            reasons.append(f"child ALT reads {child.alt} < {rf.min_child_alt_reads}")
        if ab < rf.min_child_allele_balance:
            reasons.append(f"child allele balance {ab:.2f} < {rf.min_child_allele_balance:.2f}")
    for who, r in parents:
        row[f"{who}_depth"] = None if r is None else r.depth
        row[f"{who}_alt_reads"] = None if r is None else r.alt
        row[f"{who}_GQ"] = None if r is None else r.gq
        if r is None or r.alt is None:
            missing.append(f"the {who}'s AD")
            continue
        if r.depth is not None and r.depth < rf.min_parent_depth:
            reasons.append(f"{who} depth {r.depth} < {rf.min_parent_depth}")
        if r.gq is not None and r.gq < rf.min_parent_quality:
            reasons.append(f"{who} GQ {r.gq} < {rf.min_parent_quality}")
        if r.alt > rf.max_parent_alt_reads:
            reasons.append(f"{who} ALT reads {r.alt} > {rf.max_parent_alt_reads}")
    if reasons:
        row["read_evidence"], row["read_evidence_detail"] = "fail", "; ".join(reasons)
    elif missing:
        row["read_evidence"] = "not_checked"
        row["read_evidence_detail"] = "the source file has no " + ", ".join(missing)
    else:
        row["read_evidence"], row["read_evidence_detail"] = "pass", ""
    return row


def without_read_evidence(df: pl.DataFrame, reason: str) -> pl.DataFrame:
    """``df`` with the evidence columns null and ``read_evidence`` = ``not_checked``."""
    cols = [pl.lit(None, dtype=t).alias(c) for c, t in EVIDENCE_COLUMNS.items()]
    df = df.with_columns(cols)
    de_novo = pl.col("mode") == "de_novo"
    return df.with_columns(
        pl.when(de_novo)
        .then(pl.lit("not_checked"))
        .otherwise(pl.lit("not_applicable"))
        .alias("read_evidence"),
        pl.when(de_novo).then(pl.lit(reason)).otherwise(pl.lit(None)).alias("read_evidence_detail"),
    )


def add_read_evidence(
    con: duckdb.DuckDBPyConnection,
    df: pl.DataFrame,
    parents: Mapping[tuple[str, str], tuple[str, str]],
    options: ReadEvidence,
) -> pl.DataFrame:
    """Add :data:`EVIDENCE_COLUMNS` to the de novo rows of a candidate frame; filter them.

    Parameters
    ----------
    con
        The store (its ``genotype_load`` rows name the source files).
    df
        Rows of :func:`~biobank.families.inheritance.find_candidates` (``family_id,
        proband_sample, mode, variant_contig, variant_position, variant_ref,
        variant_alt``).
    parents
        ``(family_id, child sample) -> (father sample, mother sample)``.
    options
        The filter, path relocations and whether failing rows are kept.

    Returns
    -------
    polars.DataFrame
        ``df`` with the evidence columns; failing de novo rows dropped unless
        ``options.keep_failing``.

    Raises
    ------
    ValidationError
        A source file is missing, changed since the load, or has no index.
    """
    de_novo = df.filter(pl.col("mode") == "de_novo")
    base = without_read_evidence(df, "")
    if de_novo.is_empty():
        return base
    trio = {
        (r["family_id"], r["proband_sample"]): parents[(r["family_id"], r["proband_sample"])]
        for r in de_novo.iter_rows(named=True)
    }
    samples = sorted({s for (_, c), (f, m) in trio.items() for s in (c, f, m)})
    sources = _sources(con, samples, options.relocate)
    by_file: dict[Path, set[str]] = {}
    for s in samples:
        for path, _ in sources.get(s, []):
            by_file.setdefault(path, set()).add(s)
    reads: dict[tuple[str, tuple[str, int, str, str]], _Reads] = {}
    sites = {
        (r["variant_contig"], int(r["variant_position"]), r["variant_ref"], r["variant_alt"])
        for r in de_novo.iter_rows(named=True)
    }
    for path, wanted in by_file.items():
        source = next(src for s in wanted for p, src in sources[s] if p == path)
        vf = _open(path, source)
        try:
            present = [s for s in wanted if s in vf.header.samples]
            vf.subset_samples(present)
            for site in sorted(sites):
                for name, found in _reads_at(vf, site, present).items():
                    reads.setdefault((name, site), found)
        finally:
            vf.close()
    rows = []
    for r in de_novo.iter_rows(named=True):
        site = (r["variant_contig"], int(r["variant_position"]), r["variant_ref"], r["variant_alt"])
        father, mother = trio[(r["family_id"], r["proband_sample"])]
        judged = _judge(
            reads.get((r["proband_sample"], site)),
            [("father", reads.get((father, site))), ("mother", reads.get((mother, site)))],
            options.read_filter,
        )
        rows.append({"family_id": r["family_id"], "proband_sample": r["proband_sample"],
                     "variant_key": r["variant_key"], **judged})  # fmt: skip
    schema = {"family_id": pl.String, "proband_sample": pl.String, "variant_key": pl.Int64}
    ev = pl.DataFrame(rows, schema={**schema, **EVIDENCE_COLUMNS})
    keys = ["family_id", "proband_sample", "variant_key"]
    out = base.update(ev.with_columns(pl.lit("de_novo").alias("mode")), on=[*keys, "mode"])
    if not options.keep_failing:
        out = out.filter(pl.col("read_evidence") != "fail")
    return out
