"""Genotype queries: variant lookup, carriers, genotype matrices (scikit-allel) and PCA.

Every function takes a DuckDB connection and a *sample set*:

* ``None``: every genotyped sample;
* a SQL query string returning a column ``participant_id`` (e.g. a cohort
  definition, or :func:`biobank.registry.consent.permitted_participants_sql`);
* a list of participant ids (pseudonyms).

A participant with several genotyped samples is represented by the first one
loaded. With ``purpose`` the set is further restricted to participants whose
current consent permits that purpose; a researcher must give one.

Variant filters are a :class:`~biobank.genomes.filters.VariantFilter`. Results
are polars DataFrames with sgkit-style column names (``variant_contig``,
``variant_position`` (1-based, as in the VCF), ``variant_ref``, ``variant_alt``,
``variant_id``, ``variant_gene``, ``variant_consequence`` ...).

Reads of individual-level data (:func:`carriers`, :func:`genotype_matrix`,
:func:`pca`) require a principal and write an audit entry ``genotype.read``.

Statistics (:mod:`biobank.stats`) read the store through this module's public
functions: :func:`sample_table`, :func:`variant_keys` and :func:`dense_blocks`
(and :mod:`biobank.genomes.packed`, :mod:`biobank.genomes.counts`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, Role
from biobank.core.errors import AccessDenied, ConsentError, ValidationError
from biobank.genomes.counts import allele_counts_in, within_frequency_bounds
from biobank.genomes.encoding import (
    FLAG_FIRST_ALLELE,
    FLAG_HAPLOID,
    FLAG_MISSING,
    PACKED_FLAGS,
    unpack_bits,
)
from biobank.genomes.filters import (
    DAMAGING_CONSEQUENCES,
    VARIANT_COLUMNS,
    VariantFilter,
    rename_variant_columns,
)
from biobank.genomes.packed import batch_columns, packed_planes

if TYPE_CHECKING:
    import allel
    import duckdb

__all__ = [
    "DAMAGING_CONSEQUENCES",
    "VARIANT_COLUMNS",
    "DenseBlock",
    "GenotypeMatrix",
    "SampleSet",
    "VariantFilter",
    "carriers",
    "dense_blocks",
    "genotype_matrix",
    "pca",
    "sample_table",
    "variant_keys",
    "variants",
]

logger = logging.getLogger(__name__)

#: A sample set: ``None`` (all), a SQL query with column ``participant_id``, or participant ids.
SampleSet = str | Sequence[str] | None


# --------------------------------------------------------------------------- sample sets
def _check_read(principal: Principal, purpose: str | None) -> str | None:
    """Check that ``principal`` may read genotypes; return the purpose to restrict to."""
    if not (principal.can(Permission.RESEARCH_READ) or principal.can(Permission.LOAD_DATA)):
        raise AccessDenied(
            f"user '{principal.user}' with role '{principal.role}' may not read genotypes: "
            "a researcher, registrar or admin role is needed"
        )
    purpose = purpose or principal.purpose
    if principal.role is Role.RESEARCHER and purpose is None:
        raise ConsentError(
            "a research read of genotypes needs a purpose (e.g. 'HMB' or 'DS:E11') "
            "so that only consented participants are used"
        )
    return purpose


@contextmanager
def sample_table(
    con: duckdb.DuckDBPyConnection, samples: SampleSet = None, *, purpose: str | None = None
) -> Iterator[str]:
    """Materialise a sample set as a temporary table; yield its name.

    The table has columns ``sample_key, sample_id, participant_id, batch_id``,
    one row per participant (their first loaded sample), and is dropped on exit.

    Parameters
    ----------
    con
        The store connection.
    samples
        ``None``, a SQL query with column ``participant_id``, or participant ids.
    purpose
        Restrict to participants whose current consent permits this purpose.

    Raises
    ------
    ValidationError
        If the SQL query fails or has no ``participant_id`` column.
    """
    import duckdb

    name = f"_samples_{uuid.uuid4().hex[:12]}"
    if samples is None:
        source = "SELECT participant_id FROM genotype_sample"
        params: list[Any] = []
    elif isinstance(samples, str):
        source = f"SELECT participant_id FROM ({samples}) AS q"
        params = []
    else:
        ids = list(samples)
        bad = [s for s in ids if not isinstance(s, str)]
        if bad:
            raise ValidationError(
                f"participant ids must be strings, got {bad[:3]!r}", field="samples"
            )
        source = "SELECT unnest(?::VARCHAR[]) AS participant_id"
        params = [ids]
    consent = ""
    if purpose is not None:
        from biobank.registry.consent import permitted_participants_sql

        consent = f" AND g.participant_id IN ({permitted_participants_sql(purpose)})"
    sql = (
        f"CREATE TEMP TABLE {name} AS SELECT min(g.sample_key) AS sample_key,"
        " arg_min(g.sample_id, g.sample_key) AS sample_id, g.participant_id,"
        " arg_min(g.batch_id, g.sample_key) AS batch_id"
        f" FROM genotype_sample g WHERE g.participant_id IN ({source}){consent}"
        " GROUP BY g.participant_id ORDER BY sample_key"
    )
    try:
        con.execute(sql, params)
    except duckdb.Error as exc:
        raise ValidationError(
            f"the sample set query failed: {exc}; it must return a column participant_id",
            field="samples",
        ) from exc
    try:
        yield name
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _samples_frame(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    return con.execute(
        f"SELECT sample_key, sample_id, participant_id, batch_id FROM {table} ORDER BY sample_key"
    ).pl()


# --------------------------------------------------------------------------- variants
def variants(
    con: duckdb.DuckDBPyConnection, variant_filter: VariantFilter | None = None
) -> pl.DataFrame:
    """Look up variants (not individual-level: no audit entry).

    Frequency bounds in ``variant_filter`` are ignored here (they need a sample
    set: use :func:`biobank.stats.frequencies.allele_frequencies`).

    Returns
    -------
    polars.DataFrame
        ``variant_key, variant_contig, variant_position`` (1-based),
        ``variant_ref, variant_alt, variant_id, variant_gene,
        variant_consequence, variant_filter, variant_qual``, in store order.
    """
    where, params = (variant_filter or VariantFilter()).where("v")
    df = con.execute(
        "SELECT v.variant_key, v.contig, v.position, v.ref, v.alt, v.variant_id, v.gene,"
        f" v.consequence, v.filter, v.qual FROM variant v WHERE {where} ORDER BY v.variant_key",
        params,
    ).pl()
    return rename_variant_columns(df)


def variant_keys(
    con: duckdb.DuckDBPyConnection, sample_tbl: str, variant_filter: VariantFilter
) -> np.ndarray:
    """Keys of the variants passing ``variant_filter``, sorted.

    Frequency bounds are applied to the frequencies in the sample table
    ``sample_tbl`` (made by :func:`sample_table`).
    """
    if variant_filter.by_frequency:
        freq = allele_counts_in(con, sample_tbl, variant_filter)
        freq = within_frequency_bounds(freq, variant_filter)
        return freq["variant_key"].to_numpy().astype(np.int64)
    where, params = variant_filter.where("v")
    rows = con.execute(
        f"SELECT v.variant_key FROM variant v WHERE {where} ORDER BY v.variant_key", params
    ).fetchnumpy()
    return np.asarray(rows["variant_key"], dtype=np.int64)


# --------------------------------------------------------------------------- dense blocks
@dataclass
class DenseBlock:
    """Dense calls of a block of variants for a sample set (columns in sample-key order).

    Attributes
    ----------
    keys
        (v,) variant keys.
    dosage
        (v, n) uint8 ALT dosage.
    flags
        (v, n) uint8 call flags (:mod:`biobank.genomes.encoding`);
        ``FLAG_MISSING`` also where the sample's batch did not cover the variant.
    """

    keys: np.ndarray  # (v,) variant keys
    dosage: np.ndarray  # (v, n) uint8
    flags: np.ndarray  # (v, n) uint8; FLAG_MISSING also set where the batch did not cover


def dense_blocks(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    keys: np.ndarray,
    *,
    block: int = 4000,
) -> Iterator[DenseBlock]:
    """Yield dense dosage/flag matrices for ``keys``, ``block`` variants at a time.

    Sparse and packed calls of the sample table ``sample_tbl`` (made by
    :func:`sample_table`) over the variants ``keys``, in key order; columns are
    the set's samples in ``sample_key`` order.
    """
    layout = batch_columns(con, sample_tbl)
    n = sum(len(bc.cols) for bc in layout.values())
    skeys = np.zeros(n, dtype=np.int64)
    col_batch = np.zeros(n, dtype=np.int64)  # index of each column's batch in ``batches``
    batches = np.array(sorted(layout), dtype=np.int64)
    batch_pos = {int(b): i for i, b in enumerate(batches)}
    for b, bc in layout.items():
        skeys[bc.cols] = bc.keys
        col_batch[bc.cols] = batch_pos[b]
    col_of = np.full(int(skeys.max()) + 1 if n else 1, -1, dtype=np.int64)
    col_of[skeys] = np.arange(n)
    keys = np.sort(np.asarray(keys, dtype=np.int64))
    in_block = (
        "p.variant_key BETWEEN ? AND ? AND p.variant_key IN (SELECT variant_key FROM _block_keys)"
    )
    for start in range(0, len(keys), block):
        ks = keys[start : start + block]
        lo, hi = int(ks[0]), int(ks[-1])
        key_df = pl.DataFrame({"variant_key": ks.astype(np.int32)})
        con.register("_block_keys", key_df)
        cov = con.execute(
            "SELECT variant_key, batch_id FROM batch_variant WHERE variant_key BETWEEN ? AND ?"
            f" AND batch_id IN (SELECT DISTINCT batch_id FROM {sample_tbl})"
            " AND variant_key IN (SELECT variant_key FROM _block_keys)",
            [lo, hi],
        ).fetchnumpy()
        calls = con.execute(
            "SELECT c.variant_key, c.sample_key, c.dosage, c.flags FROM genotype_call c"
            f" JOIN {sample_tbl} s USING (sample_key)"
            " WHERE c.variant_key BETWEEN ? AND ?"
            " AND c.variant_key IN (SELECT variant_key FROM _block_keys)",
            [lo, hi],
        ).fetchnumpy()
        packed = [
            (bc, *packed_planes(con, b, bc.n_batch, in_block, [lo, hi])) for b, bc in layout.items()
        ]
        con.unregister("_block_keys")
        lut = np.full(hi - lo + 1, -1, dtype=np.int64)
        lut[ks - lo] = np.arange(len(ks))
        covered = np.zeros((len(ks), len(batches)), dtype=bool)
        cv = np.asarray(cov["variant_key"], dtype=np.int64)
        cb = np.asarray(cov["batch_id"], dtype=np.int64)
        if len(cv):
            covered[lut[cv - lo], np.array([batch_pos[int(b)] for b in cb])] = True
        dosage = np.zeros((len(ks), n), dtype=np.uint8)
        # uint8 per batch, then one column gather: C order (``covered[:, col_batch]`` is
        # Fortran-ordered, which made every later pass over the flags strided)
        flags = np.where(covered, np.uint8(0), np.uint8(FLAG_MISSING)).take(col_batch, axis=1)
        vk = np.asarray(calls["variant_key"], dtype=np.int64)
        if len(vk):
            r = lut[vk - lo]
            c = col_of[np.asarray(calls["sample_key"], dtype=np.int64)]
            dosage[r, c] = np.asarray(calls["dosage"], dtype=np.uint8)
            flags[r, c] = np.asarray(calls["flags"], dtype=np.uint8)
        for bc, pk, plo, phi in packed:
            if not len(pk):
                continue
            code = unpack_bits(plo, bc.n_batch)[:, bc.pos]
            code += 2 * unpack_bits(phi, bc.n_batch)[:, bc.pos]
            rows = lut[pk - lo][:, None]
            dosage[rows, bc.cols] = np.where(code == 3, 0, code)
            flags[rows, bc.cols] = PACKED_FLAGS[code]
        yield DenseBlock(keys=ks, dosage=dosage, flags=flags)


def _alleles(dosage: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Turn dense dosage/flags into allele indices ``(v, n, 2)`` int8, -1 missing."""
    g = np.zeros((*dosage.shape, 2), dtype=np.int8)
    missing = (flags & FLAG_MISSING) > 0
    haploid = (flags & FLAG_HAPLOID) > 0
    first = (flags & FLAG_FIRST_ALLELE) > 0
    het = (dosage == 1) & ~haploid
    g[..., 0] = np.where(het, first.astype(np.int8), (dosage >= 1).astype(np.int8))
    g[..., 1] = np.where(het, (~first).astype(np.int8), (dosage == 2).astype(np.int8))
    g[haploid, 1] = -1
    g[missing] = -1
    return g


# --------------------------------------------------------------------------- individual-level
def carriers(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet = None,
    *,
    principal: Principal,
    variant_filter: VariantFilter | None = None,
    purpose: str | None = None,
) -> pl.DataFrame:
    """Participants carrying the ALT allele of the selected variants (one row per call).

    Parameters
    ----------
    con
        The store connection (writable: an audit entry is written).
    samples
        The sample set (see the module docstring).
    principal
        Who reads; must be allowed to read genotypes.
    variant_filter
        Which variants (gene, region, consequence, frequency in the set, ids).
    purpose
        Consent purpose (default: the principal's); required for researchers.

    Returns
    -------
    polars.DataFrame
        ``participant_id, sample_id``, the variant columns, ``call_dosage``
        (copies of the ALT allele), ``call_haploid``, ``call_phased``,
        ``call_DP``, ``call_GQ``; ordered by variant then sample.

    Raises
    ------
    AccessDenied
        If the principal may not read genotypes.
    ConsentError
        If a researcher gives no purpose.
    """
    purpose = _check_read(principal, purpose)
    variant_filter = variant_filter or VariantFilter()
    with sample_table(con, samples, purpose=purpose) as tbl:
        keys = variant_keys(con, tbl, variant_filter)
        con.register("_carrier_keys", pl.DataFrame({"variant_key": keys.astype(np.int32)}))
        try:
            df = con.execute(
                "SELECT s.participant_id, s.sample_id, v.variant_key, v.contig, v.position,"
                " v.ref, v.alt, v.variant_id, v.gene, v.consequence,"
                " c.dosage AS call_dosage, (c.flags & 2) > 0 AS call_haploid,"
                " (c.flags & 4) > 0 AS call_phased, c.dp AS call_DP, c.gq AS call_GQ"
                f" FROM genotype_call_all c JOIN {tbl} s USING (sample_key)"
                " JOIN variant v USING (variant_key)"
                " WHERE c.variant_key IN (SELECT variant_key FROM _carrier_keys)"
                " AND c.dosage > 0 AND c.flags & 1 = 0"
                " ORDER BY c.variant_key, c.sample_key"
            ).pl()
        finally:
            con.unregister("_carrier_keys")
        n_samples = _count(con, tbl)
    df = rename_variant_columns(df)
    audit.record(
        con,
        principal,
        "genotype.read",
        "carriers",
        {
            "filter": variant_filter.describe(),
            "purpose": purpose,
            "samples_in_set": n_samples,
            "variants": len(keys),
            "rows": df.height,
            "participants": df["participant_id"].n_unique(),
        },
    )
    return df


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


@dataclass
class GenotypeMatrix:
    """Genotypes of a sample set over a set of variants.

    Attributes
    ----------
    genotypes
        ``allel.GenotypeArray`` of shape (variants, samples, 2): allele 0 = REF,
        1 = this row's ALT (multi-allelic records are split, so another ALT of
        the record reads as 0), -1 = missing; haploid calls are ``[a, -1]``.
    variants
        One row per variant (sgkit-style columns), in matrix order.
    samples
        ``sample_key, sample_id, participant_id, batch_id`` in matrix column order.
    """

    genotypes: allel.GenotypeArray
    variants: pl.DataFrame
    samples: pl.DataFrame


def genotype_matrix(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet = None,
    *,
    principal: Principal,
    variant_filter: VariantFilter | None = None,
    purpose: str | None = None,
    max_variants: int = 2_000_000,
) -> GenotypeMatrix:
    """Return the genotypes of a sample set over the selected variants as a GenotypeArray.

    Parameters
    ----------
    con
        The store connection (writable: an audit entry is written).
    samples
        The sample set (see the module docstring).
    principal
        Who reads; must be allowed to read genotypes.
    variant_filter
        Which variants (e.g. ``VariantFilter(region="chr1:1-1000000")``).
    purpose
        Consent purpose (default: the principal's); required for researchers.
    max_variants
        Refuse larger requests (memory: variants x samples x 2 bytes).

    Returns
    -------
    GenotypeMatrix

    Raises
    ------
    ValidationError
        If more than ``max_variants`` variants are selected.
    AccessDenied, ConsentError
        As for :func:`carriers`.
    """
    import allel

    purpose = _check_read(principal, purpose)
    variant_filter = variant_filter or VariantFilter()
    with sample_table(con, samples, purpose=purpose) as tbl:
        keys = variant_keys(con, tbl, variant_filter)
        if len(keys) > max_variants:
            raise ValidationError(
                f"{len(keys)} variants selected, more than max_variants={max_variants}: "
                "narrow the region or raise max_variants",
                field="variant_filter",
            )
        sample_df = _samples_frame(con, tbl)
        n = sample_df.height
        blocks = [_alleles(b.dosage, b.flags) for b in dense_blocks(con, tbl, keys)] if n else []
    g = np.concatenate(blocks) if blocks else np.zeros((len(keys), n, 2), dtype=np.int8)
    vdf = variants(con).filter(pl.col("variant_key").is_in(keys.tolist())).sort("variant_key")
    audit.record(
        con,
        principal,
        "genotype.read",
        "genotype_matrix",
        {
            "filter": variant_filter.describe(),
            "purpose": purpose,
            "samples": n,
            "variants": len(keys),
        },
    )
    return GenotypeMatrix(genotypes=allel.GenotypeArray(g), variants=vdf, samples=sample_df)


def pca(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet = None,
    *,
    principal: Principal,
    variant_filter: VariantFilter | None = None,
    purpose: str | None = None,
    n_components: int = 10,
    min_frequency: float = 0.05,
    ld_window: int = 100,
    ld_step: int = 20,
    ld_threshold: float = 0.1,
    ld_iterations: int = 2,
    scaler: str = "patterson",
    seed: int | None = None,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Principal components of a sample set on common, LD-pruned, fully called variants.

    Variants with any missing call, or an ALT frequency outside
    ``[min_frequency, 1 - min_frequency]`` in the set, are dropped; the rest
    are LD-pruned per contig with ``allel.locate_unlinked`` (window, step,
    r² threshold, iterations), then ``allel.pca`` is run.

    Returns
    -------
    tuple
        A DataFrame ``participant_id, sample_id, pc1 .. pcK`` and the explained
        variance ratio of each component.

    Raises
    ------
    ValidationError
        If fewer than two samples or fewer variants than components remain.
    AccessDenied, ConsentError
        As for :func:`carriers`.
    """
    import allel

    del seed  # allel.pca is deterministic (SVD)
    m = genotype_matrix(
        con, samples, principal=principal, variant_filter=variant_filter, purpose=purpose
    )
    g = m.genotypes
    ac = g.to_n_alt(fill=-1)
    complete = (ac >= 0).all(axis=1)
    af = np.where(complete, ac.sum(axis=1) / (2 * max(g.shape[1], 1)), 0)
    keep = complete & (af >= min_frequency) & (af <= 1 - min_frequency)
    gn = ac[keep].astype(np.float64)
    contigs = m.variants["variant_contig"].to_numpy()[keep]
    pruned = []
    for contig in dict.fromkeys(contigs.tolist()):
        sub = gn[contigs == contig]
        sel = np.ones(len(sub), dtype=bool)
        for _ in range(ld_iterations):
            loc = allel.locate_unlinked(
                sub[sel], size=ld_window, step=ld_step, threshold=ld_threshold
            )
            idx = np.flatnonzero(sel)
            sel[idx[~loc]] = False
        pruned.append(sub[sel])
    gp = np.concatenate(pruned) if pruned else np.zeros((0, g.shape[1]))
    if g.shape[1] < 2 or len(gp) < n_components:
        raise ValidationError(
            f"PCA needs at least 2 samples and {n_components} pruned variants; have "
            f"{g.shape[1]} samples and {len(gp)} variants: widen the region or lower "
            "min_frequency",
            field="variant_filter",
        )
    coords, model = allel.pca(gp, n_components=n_components, scaler=scaler)
    out = m.samples.select("participant_id", "sample_id").with_columns(
        [pl.Series(f"pc{i + 1}", coords[:, i]) for i in range(n_components)]
    )
    logger.info("PCA on %d samples x %d pruned variants", g.shape[1], len(gp))
    return out, np.asarray(model.explained_variance_ratio_)
