"""Inheritance analyses over the store: candidate variants of affected family members.

:func:`find_candidates` looks at the variants with a damaging consequence
(:data:`biobank.genomes.filters.DAMAGING_CONSEQUENCES` by default) that are rare in
the center's own **controls** (genotyped participants who are in no family,
consented for the purpose when one is given), and keeps those whose genotypes in
a family fit a mode of inheritance:

``de_novo``
    the affected child carries the ALT allele (heterozygous, or hemizygous on
    chrX), both parents are called hom-ref;
``recessive``
    autosomal recessive: the affected child is homozygous ALT, both parents are
    heterozygous carriers, no unaffected sibling is homozygous;
``compound_het``
    two (or more) heterozygous variants of the child in one gene, at least one
    from the father only and one from the mother only (phased by transmission),
    in a pair that no unaffected sibling carries both of (``partner_variant_key``
    names the first such partner);
``x_linked``
    on chrX: an affected son hemizygous ALT with a heterozygous mother and a
    hom-ref father, or an affected daughter homozygous with a hemizygous father
    and a carrier mother; no unaffected brother hemizygous ALT;
``dominant``
    a family with at least two genotyped affected members: every affected
    member carries it, every genotyped unaffected member is hom-ref.

Quality filters (:class:`CandidateFilter`) apply to every non-reference call the
decision uses: ``DP >= min_depth`` and ``GQ >= min_quality`` when the store has
them (``load-vcf --call-field DP --call-field GQ``); calls stored without them
pass. Hom-ref calls carry no depth in the sparse store, so the parents' read
support of a de novo call and allele balance (no ``AD`` in the store) are not
checked from the store: :mod:`biobank.families.evidence` reads them (``AD``,
``DP``, ``GQ`` of the trio) from the VCF the genotypes were loaded from and drops
de novo rows that fail its :class:`~biobank.families.evidence.ReadFilter`.

Results are polars frames, one row per (family, proband, mode, variant), with
the variant columns, gene and consequence, the control frequency, the
proband's depth and quality, the genotypes of the trio and of every member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Principal
from biobank.core.errors import ValidationError
from biobank.families.evidence import ReadEvidence, add_read_evidence, without_read_evidence
from biobank.families.members import FamilySamples, check_read, decode, family_samples, is_x, trios
from biobank.genomes.counts import allele_counts_in
from biobank.genomes.filters import DAMAGING_CONSEQUENCES, VariantFilter
from biobank.genomes.reader import dense_blocks, sample_table, variant_keys, variants

__all__ = ["DEFAULT_READ_EVIDENCE", "MODES", "CandidateFilter", "find_candidates"]

MODES = ("de_novo", "recessive", "compound_het", "x_linked", "dominant")
#: the default: de novo rows are checked with :class:`~biobank.families.evidence.ReadFilter`
DEFAULT_READ_EVIDENCE = ReadEvidence()
_CONTROLS_SQL = (
    "SELECT participant_id FROM genotype_sample"
    " WHERE participant_id NOT IN (SELECT participant_id FROM family_member)"
)


@dataclass(frozen=True)
class CandidateFilter:
    """Default filters of :func:`find_candidates`.

    Parameters
    ----------
    consequences
        BCSQ consequences to consider (``None``: every variant).
    max_control_frequency
        Highest ALT frequency among the controls (inclusive).
    min_depth, min_quality
        Lowest DP and GQ of the non-reference calls used.
    pass_only
        Only variants whose FILTER is PASS (or missing).
    """

    consequences: tuple[str, ...] | None = DAMAGING_CONSEQUENCES
    max_control_frequency: float = 0.01
    min_depth: int = 10
    min_quality: int = 20
    pass_only: bool = True


@dataclass
class _Calls:
    """Dense calls of the family members at the candidate variants."""

    keys: np.ndarray
    dosage: np.ndarray  # (v, n) int8
    missing: np.ndarray
    haploid: np.ndarray
    good: np.ndarray  # call passes DP/GQ (hom-ref and unknown pass)
    dp: np.ndarray  # -1 unknown
    gq: np.ndarray
    x: np.ndarray  # (v,) chrX
    gene: np.ndarray  # (v,) object


def _read_calls(
    con: duckdb.DuckDBPyConnection,
    fs: FamilySamples,
    keys: np.ndarray,
    vdf: pl.DataFrame,
    cf: CandidateFilter,
) -> _Calls:
    n = fs.n_samples
    blocks = list(dense_blocks(con, fs.table, keys)) if len(keys) and n else []
    if blocks:
        dosage = np.concatenate([b.dosage for b in blocks])
        flags = np.concatenate([b.flags for b in blocks])
    else:
        dosage = np.zeros((len(keys), n), np.uint8)
        flags = np.zeros((len(keys), n), np.uint8)
    d, miss, hap = decode(dosage, flags)
    dp = np.full(d.shape, -1, dtype=np.int32)
    gq = np.full(d.shape, -1, dtype=np.int32)
    if len(keys) and n:
        con.register("_cand_keys", pl.DataFrame({"variant_key": keys.astype(np.int32)}))
        try:
            q = con.execute(
                "SELECT c.variant_key, s.col, c.dp, c.gq FROM genotype_call c JOIN"
                " (SELECT sample_key, CAST(row_number() OVER (ORDER BY sample_key) - 1 AS INTEGER)"
                f" AS col FROM {fs.table}) s USING (sample_key)"
                " WHERE c.variant_key IN (SELECT variant_key FROM _cand_keys)"
            ).fetchnumpy()
        finally:
            con.unregister("_cand_keys")
        row = np.searchsorted(keys, np.asarray(q["variant_key"], dtype=np.int64))
        col = np.asarray(q["col"], dtype=np.int64)
        dp[row, col] = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(q["dp"], dtype=float)), -1)
        gq[row, col] = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(q["gq"], dtype=float)), -1)
    nonref = ~miss & (d > 0)
    ok = ((dp < 0) | (dp >= cf.min_depth)) & ((gq < 0) | (gq >= cf.min_quality))
    meta = vdf.filter(pl.col("variant_key").is_in(keys.tolist())).sort("variant_key")
    return _Calls(
        keys=keys,
        dosage=d,
        missing=miss,
        haploid=hap,
        good=~nonref | ok,
        dp=dp,
        gq=gq,
        x=np.array([is_x(c) for c in meta["variant_contig"]], dtype=bool),
        gene=meta["variant_gene"].to_numpy().astype(object),
    )


def _control_frequencies(
    con: duckdb.DuckDBPyConnection, vf: VariantFilter, purpose: str | None
) -> pl.DataFrame:
    with sample_table(con, _CONTROLS_SQL, purpose=purpose) as ctl:
        df = allele_counts_in(con, ctl, vf)
    return df.select(
        pl.col("variant_key").cast(pl.Int64),
        pl.col("variant_alt_allele_frequency").fill_null(0.0).alias("control_frequency"),
        pl.col("variant_allele_total").alias("control_allele_number"),
    )


def _is_ref(c: _Calls, col: int) -> np.ndarray:
    return ~c.missing[:, col] & (c.dosage[:, col] == 0)


def _carries(c: _Calls, col: int) -> np.ndarray:
    return ~c.missing[:, col] & (c.dosage[:, col] > 0) & c.good[:, col]


def _het(c: _Calls, col: int) -> np.ndarray:
    return _carries(c, col) & (c.dosage[:, col] == 1) & ~c.haploid[:, col]


def _hom(c: _Calls, col: int) -> np.ndarray:
    return _carries(c, col) & (c.dosage[:, col] == 2)


def _trio_modes(
    c: _Calls, t: dict[str, Any], sibs: list[int], modes: Sequence[str]
) -> list[tuple[str, int, int | None]]:
    """(mode, variant row, partner row) hits of one proband trio."""
    cc, fc, mc = int(t["c_col"]), int(t["f_col"]), int(t["m_col"])
    hits: list[tuple[str, int, int | None]] = []
    auto = ~c.x
    if "de_novo" in modes:
        carrier = _carries(c, cc) & (c.dosage[:, cc] == 1)
        for r in np.flatnonzero(carrier & _is_ref(c, fc) & _is_ref(c, mc)):
            hits.append(("de_novo", int(r), None))
    if "recessive" in modes:
        ok = auto & _hom(c, cc) & ~c.haploid[:, cc] & _het(c, fc) & _het(c, mc)
        for s in sibs:
            ok &= ~(~c.missing[:, s] & (c.dosage[:, s] == 2))
        hits += [("recessive", int(r), None) for r in np.flatnonzero(ok)]
    if "compound_het" in modes:
        hits += _compound_het(c, cc, fc, mc, sibs)
    if "x_linked" in modes:
        son = c.haploid[:, cc] & _carries(c, cc) & _het(c, mc) & _is_ref(c, fc)
        daughter = ~c.haploid[:, cc] & _hom(c, cc) & _carries(c, fc) & _carries(c, mc)
        ok = c.x & (son | daughter)
        for s in sibs:
            ok &= ~(c.haploid[:, s] & ~c.missing[:, s] & (c.dosage[:, s] == 1))
        hits += [("x_linked", int(r), None) for r in np.flatnonzero(ok)]
    return hits


def _compound_het(
    c: _Calls, cc: int, fc: int, mc: int, sibs: list[int]
) -> list[tuple[str, int, int | None]]:
    het = ~c.x & _het(c, cc)
    paternal = het & _carries(c, fc) & _is_ref(c, mc)
    maternal = het & _carries(c, mc) & _is_ref(c, fc)
    hits: list[tuple[str, int, int | None]] = []
    genes = {g for g in c.gene[paternal | maternal] if g}
    for g in sorted(genes):
        in_gene = c.gene == g
        pat, mat = np.flatnonzero(paternal & in_gene), np.flatnonzero(maternal & in_gene)
        if not len(pat) or not len(mat):
            continue
        carried = [~c.missing[:, s] & (c.dosage[:, s] > 0) for s in sibs]
        # a (paternal, maternal) pair explains the disease unless an unaffected sibling has both
        ok = np.ones((len(pat), len(mat)), dtype=bool)
        for has in carried:
            ok &= ~np.outer(has[pat], has[mat])
        hits += [
            ("compound_het", int(r), int(mat[np.argmax(ok[i])]))
            for i, r in enumerate(pat)
            if ok[i].any()
        ]
        hits += [
            ("compound_het", int(r), int(pat[np.argmax(ok[:, j])]))
            for j, r in enumerate(mat)
            if ok[:, j].any()
        ]
    return hits


def _dominant(c: _Calls, fam: pl.DataFrame) -> list[tuple[int, np.ndarray]]:
    g = fam.filter(pl.col("col").is_not_null())
    aff = [int(x) for x in g.filter(pl.col("affected") == "affected")["col"]]
    unaff = [int(x) for x in g.filter(pl.col("affected") == "unaffected")["col"]]
    if len(aff) < 2:
        return []
    ok = np.ones(len(c.keys), dtype=bool)
    for a in aff:
        ok &= _carries(c, a)
    for u in unaff:
        ok &= _is_ref(c, u)
    return [(int(r), ok) for r in np.flatnonzero(ok)]


_GT = {(0, False): "0/0", (1, False): "0/1", (2, False): "1/1", (0, True): "0", (1, True): "1"}


def _gt(c: _Calls, r: int, col: int) -> str:
    if c.missing[r, col]:
        return "."
    return _GT.get((int(c.dosage[r, col]), bool(c.haploid[r, col])), "?")


def _rows_for_family(
    c: _Calls, fam_id: str, fam: pl.DataFrame, trio_rows: list[dict[str, Any]], modes: Sequence[str]
) -> list[dict[str, Any]]:
    g = fam.filter(pl.col("col").is_not_null()).sort("col")
    members = list(zip(g["sample_id"].to_list(), [int(x) for x in g["col"]], strict=True))
    unaffected_kids = {
        int(r["col"])
        for r in g.iter_rows(named=True)
        if r["father_id"] and r["affected"] != "affected"
    }
    out: list[dict[str, Any]] = []

    def add(
        mode: str,
        r: int,
        partner: int | None,
        proband: dict[str, Any],
        cols: tuple[int, int, int] | None,
    ) -> None:
        pc = int(proband["col"])
        out.append(
            {
                "family_id": fam_id,
                "proband_id": proband["participant_id"],
                "proband_sample": proband["sample_id"],
                "mode": mode,
                "variant_key": int(c.keys[r]),
                "partner_variant_key": int(c.keys[partner]) if partner is not None else None,
                "call_proband": _gt(c, r, pc),
                "call_father": _gt(c, r, cols[1]) if cols else None,
                "call_mother": _gt(c, r, cols[2]) if cols else None,
                "proband_DP": int(c.dp[r, pc]) if c.dp[r, pc] >= 0 else None,
                "proband_GQ": int(c.gq[r, pc]) if c.gq[r, pc] >= 0 else None,
                "member_genotypes": ";".join(f"{s}={_gt(c, r, col)}" for s, col in members),
            }
        )

    for t in trio_rows:
        sibs = [
            s
            for s in unaffected_kids
            if s != int(t["c_col"])
            and g.filter(pl.col("col") == s)["father_id"][0] == t["father_id"]
        ]
        proband = {
            "participant_id": t["child_id"],
            "sample_id": t["child_sample"],
            "col": t["c_col"],
        }
        for mode, r, partner in _trio_modes(c, t, sibs, modes):
            add(mode, r, partner, proband, (int(t["c_col"]), int(t["f_col"]), int(t["m_col"])))
    if "dominant" in modes:
        first = g.filter(pl.col("affected") == "affected").sort("birth_year", descending=True)
        for r, _ in _dominant(c, fam):
            p = first.row(0, named=True)
            add("dominant", r, None, p, None)
    return out


def find_candidates(
    con: duckdb.DuckDBPyConnection,
    *,
    principal: Principal,
    families: Sequence[str] | None = None,
    purpose: str | None = None,
    modes: Sequence[str] = MODES,
    candidate_filter: CandidateFilter | None = None,
    read_evidence: ReadEvidence | None = DEFAULT_READ_EVIDENCE,
    phenotype: str | None = None,
) -> pl.DataFrame:
    """Candidate variants of the affected members of ``families`` (see the module docstring).

    Parameters
    ----------
    con
        The store connection (an audit entry is written).
    principal, purpose
        Who reads, for which consent purpose (researchers must give one; members
        and controls without consent for it are left out).
    families
        Family ids (default: every family).
    modes
        Any of :data:`MODES`.
    candidate_filter
        Consequence, control-frequency, depth and quality filters.
    read_evidence
        How de novo rows are checked in the reads of the source VCF
        (:mod:`biobank.families.evidence`); ``None``: not checked (the evidence
        columns are null, ``read_evidence`` is ``not_checked``).
    phenotype
        An HPO term or ICD-10 code: who is affected is read for that phenotype
        (:mod:`biobank.registry.affected`; a member without a status for it
        keeps the overall one). Default: the overall status.

    Returns
    -------
    polars.DataFrame
        ``family_id, proband_id, proband_sample, mode, variant_key,
        variant_contig, variant_position, variant_ref, variant_alt,
        variant_gene, variant_consequence, control_frequency,
        control_allele_number, partner_variant_key, call_proband,
        call_father, call_mother, proband_DP, proband_GQ, member_genotypes``, then
        :data:`~biobank.families.evidence.EVIDENCE_COLUMNS`.

    Raises
    ------
    ValidationError
        For an unknown mode; a source file of the reads missing, changed or not indexed.
    AccessDenied, ConsentError
        As :func:`biobank.families.members.check_read`.
    """
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValidationError(f"unknown mode {bad[0]!r}: use {', '.join(MODES)}", field="modes")
    purpose = check_read(principal, purpose)
    cf = candidate_filter or CandidateFilter()
    vf = VariantFilter(consequences=cf.consequences, pass_only=cf.pass_only)
    vdf = variants(con, vf).with_columns(pl.col("variant_key").cast(pl.Int64))
    freq = _control_frequencies(con, vf, purpose)
    rare = freq.filter(pl.col("control_frequency") <= cf.max_control_frequency)
    rows: list[dict[str, Any]] = []
    with family_samples(con, families=families, purpose=purpose, phenotype=phenotype) as fs:
        keys = np.intersect1d(variant_keys(con, fs.table, vf), rare["variant_key"].to_numpy())
        calls = _read_calls(con, fs, keys.astype(np.int64), vdf, cf)
        tr = trios(fs.members).filter(pl.col("child_affected") == "affected")
        parents = {
            (t["family_id"], t["child_sample"]): (t["father_sample"], t["mother_sample"])
            for t in tr.iter_rows(named=True)
        }
        for (fam_id,), fam in fs.members.group_by(["family_id"], maintain_order=True):
            fam_trios = [t for t in tr.iter_rows(named=True) if t["family_id"] == fam_id]
            rows += _rows_for_family(calls, str(fam_id), fam, fam_trios, modes)
        audit.record(
            con,
            principal,
            "genotype.read",
            "family_candidates",
            {
                "purpose": purpose,
                "families": list(families)[:50] if families else "all",
                "modes": list(modes),
                "phenotype": phenotype,
                "variants": len(keys),
                "rows": len(rows),
                "read_evidence": read_evidence is not None,
            },
        )
    df = _candidate_frame(rows, vdf, freq)
    if read_evidence is None:
        return without_read_evidence(df, "not asked for (--no-read-evidence)")
    return add_read_evidence(con, df, parents, read_evidence)


def _candidate_frame(
    rows: list[dict[str, Any]], vdf: pl.DataFrame, freq: pl.DataFrame
) -> pl.DataFrame:
    schema = {
        "family_id": pl.String, "proband_id": pl.String, "proband_sample": pl.String,
        "mode": pl.String, "variant_key": pl.Int64, "partner_variant_key": pl.Int64,
        "call_proband": pl.String, "call_father": pl.String, "call_mother": pl.String,
        "proband_DP": pl.Int64, "proband_GQ": pl.Int64, "member_genotypes": pl.String,
    }  # fmt: skip
    df = pl.DataFrame(rows, schema=schema)
    meta = vdf.select(
        "variant_key", "variant_contig", "variant_position", "variant_ref", "variant_alt",
        "variant_gene", "variant_consequence",
    )  # fmt: skip
    df = df.join(meta, on="variant_key", how="left").join(freq, on="variant_key", how="left")
    return df.select(
        "family_id", "proband_id", "proband_sample", "mode", "variant_key", "variant_contig",
        "variant_position", "variant_ref", "variant_alt", "variant_gene", "variant_consequence",
        "control_frequency", "control_allele_number", "partner_variant_key", "call_proband",
        "call_father", "call_mother", "proband_DP", "proband_GQ", "member_genotypes",
    ).sort("family_id", "proband_sample", "mode", "variant_key")  # fmt: skip
