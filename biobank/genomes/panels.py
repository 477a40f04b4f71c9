"""Reference panels (1000 Genomes and similar): external datasets that belong to no participant.

A center compares its participants with public panels. :func:`load_panel`
reads a panel VCF (one or several, e.g. one per chromosome, with
:mod:`cyvcf2`) and a sample -> population table, and keeps only what two uses
need, in the panel tables of migration ``090_panels.sql``:

* **allele frequencies per population** (``panel_frequency``: allele count,
  allele number and frequency of every ALT allele per population,
  superpopulation and ``ALL``), to annotate variants
  (:func:`annotate_frequencies`) and filter carriers by "rare in the population"
  (:class:`~biobank.genomes.filters.VariantFilter`'s ``panel_max_frequency``, or
  :func:`filter_rare_in_panel` on a frame);
* **a PCA model** fitted on the panel with :func:`allel.pca` (Patterson scaling)
  on its common (ALT frequency in ``[min_frequency, 1 - min_frequency]``),
  biallelic, fully called autosomal SNPs, LD-pruned per contig with
  :func:`allel.locate_unlinked`: the SNPs' means, scales and loadings
  (``panel_pca_snp``) and the panel samples' coordinates (``panel_sample.pcs``).
  :func:`biobank.genomes.ancestry.project_onto_panel` puts participants on
  these PCs and :func:`~biobank.genomes.ancestry.infer_ancestry` assigns each
  one a group (the rule is documented there).

Panel samples are never written to ``genotype_sample`` or
``sequencing_sample``: no participant query, consent rule, statistic or
research-sandbox table sees them. Panel genotypes themselves are not kept.

Variant matching
    A participant variant matches a panel variant when contig, position, REF
    and ALT are equal, contigs compared in canonical form
    (:func:`~biobank.genomes.filters.canonical_contig_sql`: ``chr1`` = ``1``,
    ``chrX`` = ``X``, ``chrM`` = ``MT`` = ``M``). Both must be on the same
    reference build; swapped REF/ALT or other strands are not matched.

"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from biobank.core.store import Store, file_checksum

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "KG_SUPERPOPULATIONS",
    "PanelReport",
    "annotate_frequencies",
    "canonical_contig",
    "filter_rare_in_panel",
    "list_panels",
    "load_panel",
    "panel_frequencies",
    "panel_id",
    "panel_samples",
    "read_populations",
]

logger = logging.getLogger(__name__)

#: 1000 Genomes phase 3 population -> superpopulation (used when the
#: population table has no superpopulation column).
KG_SUPERPOPULATIONS: dict[str, str] = {
    **dict.fromkeys(["ACB", "ASW", "ESN", "GWD", "LWK", "MSL", "YRI"], "AFR"),
    **dict.fromkeys(["CLM", "MXL", "PEL", "PUR"], "AMR"),
    **dict.fromkeys(["CDX", "CHB", "CHS", "JPT", "KHV"], "EAS"),
    **dict.fromkeys(["CEU", "FIN", "GBR", "IBS", "TSI"], "EUR"),
    **dict.fromkeys(["BEB", "GIH", "ITU", "PJL", "STU"], "SAS"),
}

_SAMPLE_COLUMNS = ("sample_id", "sample.id", "sample", "IID", "#IID", "iid", "Sample")
_POP_COLUMNS = ("population", "Population", "pop", "POP")
_SUPER_COLUMNS = ("superpopulation", "super_pop", "super_population", "Superpopulation")
_AUTOSOME = {str(i) for i in range(1, 23)}


def canonical_contig(contig: str) -> str:
    """Return a contig name in canonical form (``chr1`` -> ``1``; ``chrM``/``MT`` -> ``M``).

    The Python twin of :func:`~biobank.genomes.filters.canonical_contig_sql`.

    Examples
    --------
    >>> canonical_contig("chr1"), canonical_contig("X"), canonical_contig("MT")
    ('1', 'X', 'M')
    """
    bare = contig[3:] if contig[:3].lower() == "chr" else contig
    return "M" if bare.upper() in ("M", "MT") else bare


@dataclass(frozen=True)
class PanelReport:
    """What :func:`load_panel` loaded."""

    panel_id: int
    name: str
    n_samples: int
    n_variants: int
    n_pca_snps: int
    n_components: int
    populations: dict[str, int]
    explained_variance_ratio: list[float]


# --------------------------------------------------------------------------- population table
def read_populations(
    path: str | Path,
    *,
    sample_column: str | None = None,
    population_column: str | None = None,
    superpopulation_column: str | None = None,
) -> pl.DataFrame:
    """Read a sample -> population table (TSV, or CSV by extension).

    Columns are found by name when not given: the sample column is one of
    ``sample_id``, ``sample.id``, ``sample``, ``IID``; the population one of
    ``population``, ``Population``, ``pop``; the superpopulation (optional) one
    of ``superpopulation``, ``super_pop``. Without a superpopulation column,
    1000 Genomes codes are mapped with :data:`KG_SUPERPOPULATIONS` (others get
    none).

    Returns
    -------
    polars.DataFrame
        ``sample_id, population, superpopulation``.

    Raises
    ------
    ValidationError
        If a column is missing, a sample is listed twice or has no population.
    """
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    df = pl.read_csv(path, separator=sep, infer_schema_length=0)

    def pick(given: str | None, names: Sequence[str], what: str, *, required: bool) -> str | None:
        if given is not None:
            if given not in df.columns:
                raise ValidationError(
                    f"{path}: no column {given!r} for the {what}; columns are {df.columns}",
                    file=path,
                    field=what,
                )
            return given
        found = next((c for c in names if c in df.columns), None)
        if found is None and required:
            raise ValidationError(
                f"{path}: no {what} column (looked for {list(names)}; columns are "
                f"{df.columns}): name it with --{what.replace('_', '-')}-column",
                file=path,
                field=what,
            )
        return found

    s_col = pick(sample_column, _SAMPLE_COLUMNS, "sample", required=True)
    p_col = pick(population_column, _POP_COLUMNS, "population", required=True)
    sp_col = pick(superpopulation_column, _SUPER_COLUMNS, "superpopulation", required=False)
    assert s_col is not None
    assert p_col is not None
    out = df.select(
        pl.col(s_col).str.strip_chars().alias("sample_id"),
        pl.col(p_col).str.strip_chars().alias("population"),
        (
            pl.col(sp_col).str.strip_chars()
            if sp_col
            else pl.col(p_col).str.strip_chars().replace_strict(KG_SUPERPOPULATIONS, default=None)
        ).alias("superpopulation"),
    )
    bad = out.filter(pl.col("population").is_null() | (pl.col("population") == ""))
    if bad.height:
        raise ValidationError(
            f"{path}: {bad.height} sample(s) without a population, e.g. "
            f"{bad['sample_id'][0]!r}: give every panel sample a population",
            file=path,
            field="population",
        )
    dup = out.filter(pl.col("sample_id").is_duplicated())
    if dup.height:
        raise ValidationError(
            f"{path}: sample {dup['sample_id'][0]!r} is listed more than once",
            file=path,
            field="sample",
            value=dup["sample_id"][0],
        )
    return out


# --------------------------------------------------------------------------- loading
@dataclass
class _Scan:
    """What one pass over the panel VCFs collects."""

    contig: list[str]
    position: list[int]
    ref: list[str]
    alt: list[str]
    ac: list[np.ndarray]  # per row: (n_groups,) ALT allele counts
    an: list[np.ndarray]  # per row: (n_groups,) called alleles
    pca_rows: list[int]  # rows that are PCA candidates
    pca_gn: list[np.ndarray]  # their (n_samples,) ALT counts


def _scan(
    vcfs: Sequence[Path], samples: list[str], groups: np.ndarray, min_frequency: float
) -> tuple[_Scan, list[str]]:
    """Read the VCFs: per-group counts of every ALT, and the PCA candidate SNPs."""
    import cyvcf2

    scan = _Scan([], [], [], [], [], [], [], [])
    order: list[str] | None = None
    for path in vcfs:
        reader = cyvcf2.VCF(str(path), samples=samples, lazy=True, threads=1)
        try:
            names = list(reader.samples)
            missing = sorted(set(samples) - set(names))
            if missing:
                raise ValidationError(
                    f"{path}: {len(missing)} sample(s) of the population table are not in "
                    f"the VCF, e.g. {missing[:3]}: remove them from the table",
                    file=path,
                    field="sample",
                )
            if order is None:
                order = names
            elif names != order:
                raise ValidationError(
                    f"{path}: sample columns differ from {vcfs[0]}: the panel VCFs must "
                    "hold the same samples in the same order",
                    file=path,
                )
            for rec in reader:
                _scan_record(rec, scan, groups, min_frequency)
        finally:
            reader.close()
    assert order is not None
    return scan, order


def _scan_record(rec: Any, scan: _Scan, groups: np.ndarray, min_frequency: float) -> None:
    """Count one VCF record's alleles per group; keep its dosages if a PCA candidate."""
    alleles = rec.genotype.array()[:, :-1]  # (n, ploidy); -1 missing, -2 absent (haploid)
    called = (alleles >= 0).sum(axis=1)
    an = groups @ called
    contig = canonical_contig(rec.CHROM)
    snp = len(rec.ALT) == 1 and len(rec.REF) == 1 and len(rec.ALT[0]) == 1
    for i, alt in enumerate(rec.ALT, start=1):
        if alt in ("*", "<*>", "<NON_REF>", "."):
            continue
        copies = (alleles == i).sum(axis=1)
        scan.contig.append(contig)
        scan.position.append(int(rec.POS))
        scan.ref.append(rec.REF)
        scan.alt.append(alt)
        scan.ac.append(groups @ copies)
        scan.an.append(an)
        if snp and contig in _AUTOSOME and alleles.shape[1] == 2 and (alleles >= 0).all():
            af = copies.sum() / (2 * len(copies))
            if min_frequency <= af <= 1 - min_frequency:
                scan.pca_rows.append(len(scan.ref) - 1)
                scan.pca_gn.append(copies.astype(np.int8))


def _fit_pca(
    scan: _Scan,
    *,
    n_components: int,
    ld: dict[str, Any],
    iterations: int,
) -> tuple[np.ndarray, Any, np.ndarray]:
    """LD-prune the candidate SNPs per contig and fit ``allel.pca``.

    Returns the kept rows (indices into the scan), the fitted model and the
    samples' coordinates.
    """
    import allel

    rows = np.asarray(scan.pca_rows, dtype=np.int64)
    gn = np.asarray(scan.pca_gn, dtype=np.float64).reshape(len(rows), -1)
    contigs = np.asarray([scan.contig[r] for r in rows])
    keep = np.zeros(len(rows), dtype=bool)
    for contig in dict.fromkeys(contigs.tolist()):
        idx = np.flatnonzero(contigs == contig)
        sel = np.ones(len(idx), dtype=bool)
        for _ in range(iterations):
            loc = allel.locate_unlinked(gn[idx[sel]], **ld)
            inner = np.flatnonzero(sel)
            sel[inner[~loc]] = False
        keep[idx[sel]] = True
    if keep.sum() < n_components or gn.shape[1] < 2:
        raise ValidationError(
            f"the panel has {int(keep.sum())} common LD-pruned autosomal SNPs and "
            f"{gn.shape[1]} samples; the PCA needs at least {n_components} SNPs and 2 "
            "samples: lower min_frequency or n_components, or load more of the genome",
            field="vcf",
        )
    coords, model = allel.pca(gn[keep], n_components=n_components, scaler="patterson")
    return rows[keep], model, np.asarray(coords, dtype=np.float64)


def load_panel(
    store: Store,
    vcfs: str | Path | Sequence[str | Path],
    *,
    populations: str | Path | pl.DataFrame,
    name: str,
    principal: Principal,
    description: str | None = None,
    n_components: int = 10,
    min_frequency: float = 0.05,
    ld_window: int = 100,
    ld_step: int = 20,
    ld_threshold: float = 0.1,
    ld_iterations: int = 2,
    replace: bool = False,
) -> PanelReport:
    """Load a reference panel: per-population allele frequencies and a PCA model.

    Parameters
    ----------
    store
        The store (written in one transaction).
    vcfs
        The panel VCF(s) (bgzipped or plain; several files, e.g. one per
        chromosome, must hold the same samples).
    populations
        The sample -> population table (a path for :func:`read_populations`, or
        its frame). Only the samples listed are loaded.
    name
        The panel's name, e.g. ``"1kg"`` (unique in the store).
    principal
        Who loads; needs the ``load_data`` permission (registrar or admin).
    description
        Free text (source, release, build).
    n_components, min_frequency
        Principal components kept; SNPs for the PCA need an ALT frequency in
        ``[min_frequency, 1 - min_frequency]``.
    ld_window, ld_step, ld_threshold, ld_iterations
        LD pruning with :func:`allel.locate_unlinked` (as :func:`biobank.genomes.reader.pca`).
    replace
        Replace a panel of the same name (otherwise that is an error).

    Returns
    -------
    PanelReport

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    ConflictError
        If a panel of that name exists and ``replace`` is false.
    ValidationError
        If the population table and the VCFs disagree, or too few SNPs remain for the PCA.
    """
    require(principal, Permission.LOAD_DATA)
    paths = [Path(vcfs)] if isinstance(vcfs, str | Path) else [Path(v) for v in vcfs]
    if not paths:
        raise ValidationError("give at least one panel VCF", field="vcf")
    pops = populations if isinstance(populations, pl.DataFrame) else read_populations(populations)
    exists = store.con.execute("SELECT panel_id FROM panel WHERE name = ?", [name]).fetchone()
    if exists and not replace:
        raise ConflictError(
            f"a panel named {name!r} is loaded already: choose another name or replace it"
        )
    samples = pops["sample_id"].to_list()
    # groups: populations, superpopulations, ALL; one-hot (n_groups, n_samples) in VCF order
    scan_groups, group_names, order = _groups_for(paths[0], pops)
    scan, order2 = _scan(paths, samples, scan_groups, min_frequency)
    assert order2 == order
    ld = {"size": ld_window, "step": ld_step, "threshold": ld_threshold}
    rows, model, coords = _fit_pca(scan, n_components=n_components, ld=ld, iterations=ld_iterations)
    ordered = pl.DataFrame({"sample_id": order}).join(pops, on="sample_id", how="left")
    checksum = hashlib.sha256(
        "".join([*(file_checksum(p) for p in paths), str(pops.hash_rows().sum())]).encode()
    ).hexdigest()
    evr = [float(x) for x in model.explained_variance_ratio_]
    source, sizes = ";".join(map(str, paths)), (len(order), len(scan.ref), len(rows))
    who = principal.user
    with store.transaction() as con:
        if exists:
            _delete(con, int(exists[0]))
        load_id = store.record_provenance(
            con,
            kind="panel",
            source=source,
            checksum=checksum,
            parameters={"name": name, "n_components": n_components, "min_frequency": min_frequency}
            | {"ld": [ld_window, ld_step, ld_threshold, ld_iterations]},
            user=principal.user,
        )
        panel_id = _insert_panel_rows(
            con,
            [name, description, source, checksum, load_id, *sizes, n_components, evr, who],
            scan,
            group_names,
            ordered,
            coords,
            rows,
            model,
        )
        detail = {"panel_id": panel_id, "samples": len(order), "variants": len(scan.ref)}
        audit.record(con, principal, "panel.load", name, {**detail, "pca_snps": len(rows)})
    counts = ordered.group_by("population").len().sort("population")
    logger.info("panel %s: %d samples, %d variants, %d PCA SNPs", name, *sizes)
    by_pop = dict(zip(counts["population"], counts["len"], strict=True))
    return PanelReport(panel_id, name, *sizes, n_components, by_pop, evr)


def _groups_for(
    first_vcf: Path, pops: pl.DataFrame
) -> tuple[np.ndarray, list[tuple[str, str]], list[str]]:
    """The one-hot group matrix in the VCF's sample order, and (grouping, name) per row."""
    import cyvcf2

    reader = cyvcf2.VCF(str(first_vcf), samples=pops["sample_id"].to_list(), lazy=True)
    order = list(reader.samples)
    reader.close()
    ordered = pl.DataFrame({"sample_id": order}).join(pops, on="sample_id", how="left")
    names: list[tuple[str, str]] = [("all", "ALL")]
    names += [("population", p) for p in sorted(ordered["population"].unique().to_list())]
    pop = ordered["population"].to_numpy()
    sup = ordered["superpopulation"].to_numpy()
    for s in sorted(ordered["superpopulation"].drop_nulls().unique().to_list()):
        if s == "ALL" or (s in pop and not np.array_equal(pop == s, sup == s)):
            raise ValidationError(
                f"superpopulation {s!r} is also the name of a population (or ALL) with "
                "other members: group names must be unique across the two levels",
                field="superpopulation",
                value=s,
            )
        if s not in pop:  # a superpopulation that is one population is listed once
            names.append(("superpopulation", s))
    mat = np.zeros((len(names), len(order)), dtype=np.int64)
    for i, (grouping, group) in enumerate(names):
        if grouping == "all":
            mat[i] = 1
        else:
            mat[i] = (pop if grouping == "population" else sup) == group
    return mat, names, order


def _insert_panel_rows(
    con: duckdb.DuckDBPyConnection,
    header: list[Any],
    scan: _Scan,
    group_names: list[tuple[str, str]],
    ordered: pl.DataFrame,
    coords: np.ndarray,
    rows: np.ndarray,
    model: Any,
) -> int:
    """Write the panel row (``header``: its columns after ``panel_id``, without
    ``loaded_at``), panel_sample, panel_frequency and panel_pca_snp; return the panel id."""
    row = con.execute("SELECT nextval('panel_seq')").fetchone()
    assert row is not None
    panel_id = int(row[0])
    con.execute(
        "INSERT INTO panel VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [panel_id, *header, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
    )
    n_groups = len(group_names)
    n = len(scan.ref)
    ac = np.asarray(scan.ac, dtype=np.int64).reshape(n, n_groups)
    an = np.asarray(scan.an, dtype=np.int64).reshape(n, n_groups)
    freq = pl.DataFrame(
        {
            "panel_id": np.full(n * n_groups, panel_id, dtype=np.int32),
            "contig": np.repeat(np.asarray(scan.contig, dtype=object), n_groups),
            "position": np.repeat(np.asarray(scan.position, dtype=np.int32), n_groups),
            "ref": np.repeat(np.asarray(scan.ref, dtype=object), n_groups),
            "alt": np.repeat(np.asarray(scan.alt, dtype=object), n_groups),
            "grouping": np.tile([g for g, _ in group_names], n),
            "population": np.tile([p for _, p in group_names], n),
            "allele_count": ac.ravel().astype(np.int32),
            "allele_number": an.ravel().astype(np.int32),
        },
        schema_overrides={"contig": pl.String, "ref": pl.String, "alt": pl.String},
    ).with_columns(
        frequency=pl.when(pl.col("allele_number") > 0).then(
            pl.col("allele_count") / pl.col("allele_number")
        )
    )
    samples = ordered.with_columns(
        panel_id=pl.lit(panel_id, dtype=pl.Int32),
        pcs=pl.Series(coords.tolist(), dtype=pl.List(pl.Float64)),
    ).select("panel_id", "sample_id", "population", "superpopulation", "pcs")
    snps = pl.DataFrame(
        {
            "panel_id": np.full(len(rows), panel_id, dtype=np.int32),
            "snp_index": np.arange(len(rows), dtype=np.int32),
            "contig": [scan.contig[r] for r in rows],
            "position": np.asarray([scan.position[r] for r in rows], dtype=np.int32),
            "ref": [scan.ref[r] for r in rows],
            "alt": [scan.alt[r] for r in rows],
            "mean": np.asarray(model.scaler_.mean_, dtype=np.float64).ravel(),
            "scale": np.asarray(model.scaler_.std_, dtype=np.float64).ravel(),
            "loadings": pl.Series(
                np.asarray(model.components_, dtype=np.float64).T.tolist(),
                dtype=pl.List(pl.Float64),
            ),
        }
    )
    for table, df in (
        ("panel_sample", samples),
        ("panel_frequency", freq),
        ("panel_pca_snp", snps),
    ):
        con.register("_panel_rows", df)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _panel_rows")
        finally:
            con.unregister("_panel_rows")
    return panel_id


def _delete(con: duckdb.DuckDBPyConnection, panel_id: int) -> None:
    for table in ("panel_pca_snp", "panel_frequency", "panel_sample", "panel"):
        con.execute(f"DELETE FROM {table} WHERE panel_id = ?", [panel_id])


# --------------------------------------------------------------------------- aggregate reads
def panel_id(con: duckdb.DuckDBPyConnection, panel: str) -> int:
    """The id of the panel named ``panel``.

    Raises
    ------
    NotFoundError
        If no panel has that name.
    """
    row = con.execute("SELECT panel_id FROM panel WHERE name = ?", [panel]).fetchone()
    if row is None:
        known = [r[0] for r in con.execute("SELECT name FROM panel ORDER BY name").fetchall()]
        raise NotFoundError(
            f"no reference panel named {panel!r} (loaded: {known or 'none'}): "
            "load one with 'biobank panel load'"
        )
    return int(row[0])


def list_panels(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The loaded panels: ``name, description, n_samples, n_variants, n_pca_snps,
    n_components, populations, loaded_by, loaded_at``."""
    return con.execute(
        "SELECT p.name, p.description, p.n_samples, p.n_variants, p.n_pca_snps, p.n_components,"
        " (SELECT count(DISTINCT population) FROM panel_sample s WHERE s.panel_id = p.panel_id)"
        " AS populations, p.loaded_by, p.loaded_at FROM panel p ORDER BY p.name"
    ).pl()


def panel_samples(con: duckdb.DuckDBPyConnection, panel: str) -> pl.DataFrame:
    """The panel's samples: ``sample_id, population, superpopulation, PC1..PCk``.

    Public reference data (not participants): no consent rule applies.
    """
    pid = panel_id(con, panel)
    df = con.execute(
        "SELECT sample_id, population, superpopulation, pcs FROM panel_sample"
        " WHERE panel_id = ? ORDER BY sample_id",
        [pid],
    ).pl()
    k = len(df["pcs"][0]) if df.height else 0
    return df.with_columns([pl.col("pcs").list.get(i).alias(f"PC{i + 1}") for i in range(k)]).drop(
        "pcs"
    )


def panel_frequencies(
    con: duckdb.DuckDBPyConnection,
    panel: str,
    *,
    populations: Sequence[str] | None = None,
    region: str | None = None,
) -> pl.DataFrame:
    """Allele counts and frequencies of a panel, long format.

    Parameters
    ----------
    panel
        The panel name.
    populations
        Groups to return (population, superpopulation or ``ALL``); default all.
    region
        ``contig`` or ``contig:start-end`` (either contig naming).

    Returns
    -------
    polars.DataFrame
        ``variant_contig`` (canonical), ``variant_position, variant_ref,
        variant_alt, grouping, population, allele_count, allele_number, frequency``.
    """
    from biobank.genomes.filters import VariantFilter

    pid = panel_id(con, panel)
    where: str = "TRUE"
    params: list[Any] = []
    if region is not None:
        contig, _, rest = region.strip().partition(":")
        canon = f"{canonical_contig(contig)}:{rest}".rstrip(":")
        where, params = VariantFilter(region=canon).where("f")
    sql = (
        "SELECT f.contig AS variant_contig, f.position AS variant_position, f.ref AS variant_ref,"
        " f.alt AS variant_alt, f.grouping, f.population, f.allele_count, f.allele_number,"
        " f.frequency FROM panel_frequency f WHERE f.panel_id = ? AND " + where
    )
    args: list[Any] = [pid, *params]
    if populations is not None:
        sql += " AND f.population IN (SELECT unnest(?::VARCHAR[]))"
        args.append(list(populations))
    return con.execute(
        sql + " ORDER BY f.contig, f.position, f.ref, f.alt, f.grouping, f.population", args
    ).pl()


def annotate_frequencies(
    con: duckdb.DuckDBPyConnection,
    frame: pl.DataFrame,
    *,
    panel: str,
    populations: Sequence[str],
) -> pl.DataFrame:
    """Add the panel's ALT frequency per population to a variant frame.

    ``frame`` needs ``variant_contig, variant_position, variant_ref,
    variant_alt`` (as :func:`biobank.genomes.reader.variants` or
    :func:`~biobank.genomes.reader.carriers` return); contigs are matched in
    canonical form. One column ``panel_af_<population>`` is added per
    population (null where the panel lacks the variant), rows and order unchanged.

    Raises
    ------
    NotFoundError
        If the panel does not exist.
    ValidationError
        If a population is not in the panel or a variant column is missing.
    """
    pid = panel_id(con, panel)
    need = ["variant_contig", "variant_position", "variant_ref", "variant_alt"]
    lacking = [c for c in need if c not in frame.columns]
    if lacking:
        raise ValidationError(
            f"the frame has no column(s) {lacking}: annotate a frame of variants "
            "(reader.variants, carriers)",
            field="frame",
        )
    known = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT population FROM panel_frequency WHERE panel_id = ?", [pid]
        ).fetchall()
    }
    unknown = [p for p in populations if p not in known]
    if unknown:
        raise ValidationError(
            f"population(s) {unknown} are not in panel {panel!r}; it has {sorted(known)}",
            field="populations",
            value=unknown,
        )
    keys = (
        frame.select(need)
        .unique()
        .with_columns(
            _contig=pl.col("variant_contig").map_elements(canonical_contig, return_dtype=pl.String)
        )
    )
    con.register("_annot_keys", keys)
    try:
        long = con.execute(
            "SELECT k.variant_contig, k.variant_position, k.variant_ref, k.variant_alt,"
            " f.population, f.frequency FROM _annot_keys k JOIN panel_frequency f"
            " ON f.panel_id = ? AND f.contig = k._contig AND f.position = k.variant_position"
            " AND f.ref = k.variant_ref AND f.alt = k.variant_alt"
            " WHERE f.population IN (SELECT unnest(?::VARCHAR[]))",
            [pid, list(populations)],
        ).pl()
    finally:
        con.unregister("_annot_keys")
    out = frame
    for pop in populations:
        col = long.filter(pl.col("population") == pop).select(
            *need, pl.col("frequency").alias(f"panel_af_{pop}")
        )
        out = out.join(col, on=need, how="left", maintain_order="left")
    return out


def filter_rare_in_panel(
    con: duckdb.DuckDBPyConnection,
    frame: pl.DataFrame,
    *,
    panel: str,
    population: str,
    max_frequency: float,
) -> pl.DataFrame:
    """Keep the rows of a variant frame that are rare in a panel population.

    A variant is rare when its ALT frequency in ``population`` is at most
    ``max_frequency`` or the panel does not have it (the same rule as
    ``VariantFilter(panel_max_frequency=...)``). The frame gets the column
    ``panel_af_<population>``.
    """
    out = annotate_frequencies(con, frame, panel=panel, populations=[population])
    col = pl.col(f"panel_af_{population}")
    return out.filter(col.is_null() | (col <= max_frequency))
