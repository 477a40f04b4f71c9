"""Relatedness from the genotypes compared with the registered pedigrees.

* :func:`expected_kinship`: kinship coefficients implied by a pedigree (the
  classical recursion: ``phi(i, j) = (phi(father_j, i) + phi(mother_j, i)) / 2``
  for ``j`` not an ancestor of ``i``; ``phi(i, i) = 1/2`` without inbreeding;
  monozygotic twins are one person).
* :func:`king_pairs`: KING-robust kinship of pairs of genotyped family members
  over the store's biallelic autosomal PASS SNPs, with ``NSNP``, ``HETHET`` and
  ``IBS0`` counted as plink2 ``--make-king-table`` does (tested to agree).
* :func:`check_relatedness`: each pair of members with its expected and
  inferred relationship and a status: ``ok``, ``expected_not_related`` (e.g.
  non-paternity, a sample swap), ``unexpected_relative`` (second degree or
  closer), ``distant_relative`` (third degree: often population structure on a
  small genome), ``other_degree`` (e.g. half siblings registered as full); plus
  per-member sex checks
  (:func:`check_sex`) from the chrX calls (males are haploid there).

Degrees from kinship follow KING's thresholds: above 0.354 duplicate or
monozygotic twin, 0.177-0.354 first degree (parent-offspring when the share
of IBS0 sites is below :data:`PO_MAX_IBS0`, else full siblings), 0.0884-0.177
second, 0.0442-0.0884 third degree, below that unrelated.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import duckdb
import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Principal
from biobank.families.members import check_read, decode, family_samples
from biobank.genomes.encoding import FLAG_HAPLOID, FLAG_MISSING
from biobank.genomes.reader import dense_blocks

__all__ = [
    "DEGREE_BOUNDS",
    "PO_MAX_IBS0",
    "check_relatedness",
    "check_sex",
    "classify",
    "expected_kinship",
    "expected_relationship",
    "king_pairs",
]

#: Lower kinship bounds of: duplicate/MZ twin, first, second, third degree (KING).
DEGREE_BOUNDS = (0.354, 0.177, 0.0884, 0.0442)
#: Parent-offspring pairs share no IBS0 site but for genotyping errors (share of NSNP).
PO_MAX_IBS0 = 0.005

_SNP_SQL = (
    "SELECT variant_key FROM variant WHERE length(ref) = 1 AND length(alt) = 1"
    " AND ref IN ('A','C','G','T') AND alt IN ('A','C','G','T') AND n_alt_alleles = 1"
    " AND (filter IS NULL OR filter = 'PASS')"
    " AND regexp_replace(contig, '^chr', '') NOT IN ('X', 'Y', 'M', 'MT', 'XY')"
    " ORDER BY variant_key"
)


def expected_kinship(members: pl.DataFrame) -> dict[tuple[str, str], float]:
    """Kinship coefficients of every pair in one family's pedigree.

    Parameters
    ----------
    members
        ``participant_id, father_id, mother_id`` (and optionally ``twin_group``)
        of one family.

    Returns
    -------
    dict
        ``(a, b) -> phi`` for ``a < b`` (participant ids).
    """
    parents = {
        r["participant_id"]: (r["father_id"], r["mother_id"]) for r in members.iter_rows(named=True)
    }
    twins: dict[str, str] = {}
    if "twin_group" in members.columns:
        first: dict[str, str] = {}
        for r in members.iter_rows(named=True):
            if r["twin_group"]:
                twins[r["participant_id"]] = first.setdefault(r["twin_group"], r["participant_id"])
    depth: dict[str, int] = {}

    def generation(p: str) -> int:
        if p not in depth:
            f, m = parents.get(p, (None, None))
            depth[p] = 1 + max(generation(f) if f else 0, generation(m) if m else 0)
        return depth[p]

    cache: dict[tuple[str, str], float] = {}

    def phi(a: str | None, b: str | None) -> float:
        if a is None or b is None:
            return 0.0
        a, b = twins.get(a, a), twins.get(b, b)
        if a == b:
            f, m = parents.get(a, (None, None))
            return 0.5 * (1 + phi(f, m))
        if generation(a) < generation(b):  # recurse on the younger one (not an ancestor)
            a, b = b, a
        key = (a, b)
        if key not in cache:
            f, m = parents.get(a, (None, None))
            cache[key] = 0.5 * (phi(f, b) + phi(m, b))
        return cache[key]

    ids = sorted(parents)
    return {(a, b): phi(a, b) for a, b in itertools.combinations(ids, 2)}


def expected_relationship(
    a: str, b: str, parents: Mapping[str, tuple[str | None, str | None]], phi: float
) -> str:
    """Name the registered relationship of ``a`` and ``b`` (for messages and tables)."""
    pa, pb = parents.get(a, (None, None)), parents.get(b, (None, None))
    if a in pb or b in pa:
        return "parent-offspring"
    if pa[0] and pa[1] and pa == pb:
        return "full-siblings" if phi < DEGREE_BOUNDS[0] else "monozygotic-twins"
    if (pa[0] and pa[0] == pb[0]) or (pa[1] and pa[1] == pb[1]):
        return "half-siblings"
    return _degree_name(phi, None)


def _degree_name(phi: float, ibs0_share: float | None) -> str:
    if phi > DEGREE_BOUNDS[0]:
        return "duplicate-or-mz-twin"
    if phi > DEGREE_BOUNDS[1]:
        if ibs0_share is None:
            return "first-degree"
        return "parent-offspring" if ibs0_share < PO_MAX_IBS0 else "full-siblings"
    if phi > DEGREE_BOUNDS[2]:
        return "second-degree"
    if phi > DEGREE_BOUNDS[3]:
        return "third-degree"
    return "unrelated"


def classify(kinship: float, ibs0_share: float) -> str:
    """Inferred relationship from KING kinship and the share of IBS0 sites."""
    return _degree_name(kinship, ibs0_share)


def _degree(phi: float) -> int:
    """0 (duplicate/MZ), 1, 2, 3, or 4 (unrelated) for a kinship coefficient."""
    return next((i for i, bound in enumerate(DEGREE_BOUNDS) if phi > bound), 4)


def king_pairs(
    con: duckdb.DuckDBPyConnection,
    table: str,
    pairs: np.ndarray,
) -> pl.DataFrame:
    """KING-robust kinship of column pairs of a sample table over autosomal SNPs.

    Parameters
    ----------
    con
        The store connection.
    table
        A sample table (:func:`biobank.genomes.reader.sample_table`).
    pairs
        ``(k, 2)`` int array of column indices.

    Returns
    -------
    polars.DataFrame
        ``i, j, nsnp, hethet, ibs0, het_i, het_j, kinship``; ``kinship`` is plink2's
        ``(HETHET - 2 IBS0) / (2 min(het_i, het_j)) + 1/2 - (het_i + het_j) / (4 min)``
        with heterozygote counts over the sites both are called.
    """
    keys = np.asarray(con.execute(_SNP_SQL).fetchnumpy()["variant_key"], dtype=np.int64)
    k = len(pairs)
    counts = np.zeros((6, k), dtype=np.int64)  # nsnp, hethet, ibs0, het_i, het_j, unused
    if k and len(keys):
        i, j = pairs[:, 0], pairs[:, 1]
        for block in dense_blocks(con, table, keys):
            d, miss, _ = decode(block.dosage, block.flags)
            both = ~miss[:, i] & ~miss[:, j]
            di, dj = d[:, i], d[:, j]
            hi, hj = (di == 1) & both, (dj == 1) & both
            counts[0] += both.sum(axis=0)
            counts[1] += (hi & hj).sum(axis=0)
            counts[2] += (both & (np.abs(di.astype(np.int16) - dj) == 2)).sum(axis=0)
            counts[3] += hi.sum(axis=0)
            counts[4] += hj.sum(axis=0)
    nsnp, hethet, ibs0, het_i, het_j = counts[:5]
    small = np.minimum(het_i, het_j).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        kin = (hethet - 2 * ibs0) / (2 * small) + 0.5 - (het_i + het_j) / (4 * small)
    return pl.DataFrame(
        {
            "i": pairs[:, 0] if k else np.zeros(0, np.int64),
            "j": pairs[:, 1] if k else np.zeros(0, np.int64),
            "nsnp": nsnp,
            "hethet": hethet,
            "ibs0": ibs0,
            "het_i": het_i,
            "het_j": het_j,
            "kinship": np.where(small > 0, kin, np.nan),
        }
    )


def _pairs_frame(members: pl.DataFrame, scope: str) -> pl.DataFrame:
    """Pairs of genotyped members to compare: within each family, or all of them."""
    g = members.filter(pl.col("col").is_not_null())
    if scope == "all":
        one = g.unique("participant_id", keep="first").sort("col")
        rows = [
            (a["family_id"], a["participant_id"], b["family_id"], b["participant_id"])
            for a, b in itertools.combinations(one.iter_rows(named=True), 2)
        ]
    else:
        rows = []
        for (_,), fam in g.group_by(["family_id"], maintain_order=True):
            for a, b in itertools.combinations(fam.sort("col").iter_rows(named=True), 2):
                rows.append(
                    (a["family_id"], a["participant_id"], b["family_id"], b["participant_id"])
                )
    return pl.DataFrame(
        rows, schema=["family_1", "participant_1", "family_2", "participant_2"], orient="row"
    )


def _expected(members: pl.DataFrame) -> dict[tuple[str, str], tuple[float, str]]:
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for (_,), fam in members.group_by(["family_id"], maintain_order=True):
        parents = {
            r["participant_id"]: (r["father_id"], r["mother_id"]) for r in fam.iter_rows(named=True)
        }
        for (a, b), phi in expected_kinship(fam).items():
            out[(a, b)] = (phi, expected_relationship(a, b, parents, phi))
    return out


def _status(expected_phi: float, kinship: float) -> str:
    e, o = _degree(expected_phi), _degree(kinship)
    if e == o:
        return "ok"
    if e < 4 and o == 4:
        return "expected_not_related"
    if e == 4:
        return "unexpected_relative" if o <= 2 else "distant_relative"
    return "other_degree"


def check_relatedness(
    con: duckdb.DuckDBPyConnection,
    *,
    principal: Principal,
    families: Sequence[str] | None = None,
    purpose: str | None = None,
    scope: str = "within",
) -> pl.DataFrame:
    """Compare the KING kinship of member pairs with their registered relationship.

    Parameters
    ----------
    con
        The store connection (an audit entry is written).
    principal, purpose
        Who reads and for which purpose (researchers: consented members only).
    families
        Families to check (default all).
    scope
        ``"within"``: pairs in the same family; ``"all"``: every pair of members
        of the chosen families (finds relatives registered in different families;
        quadratic in the number of members).

    Returns
    -------
    polars.DataFrame
        ``family_1, sample_1, family_2, sample_2, participant_1, participant_2,
        expected_kinship, expected_relationship, nsnp, hethet, ibs0, kinship,
        inferred_relationship, status``.
    """
    purpose = check_read(principal, purpose)
    with family_samples(con, families=families, purpose=purpose) as fs:
        pairs = _pairs_frame(fs.members, scope)
        col = dict(
            fs.members.filter(pl.col("col").is_not_null())
            .select("participant_id", "col")
            .unique("participant_id")
            .iter_rows()
        )
        sid = dict(
            fs.members.filter(pl.col("col").is_not_null())
            .select("participant_id", "sample_id")
            .unique("participant_id")
            .iter_rows()
        )
        idx = np.array(
            [
                [col[a], col[b]]
                for a, b in zip(pairs["participant_1"], pairs["participant_2"], strict=True)
            ],
            dtype=np.int64,
        ).reshape(-1, 2)
        king = king_pairs(con, fs.table, idx)
        expected = _expected(fs.members)
        audit.record(
            con,
            principal,
            "genotype.read",
            "relatedness",
            {"purpose": purpose, "pairs": pairs.height, "scope": scope},
        )
    rows = []
    for p, kr in zip(pairs.iter_rows(named=True), king.iter_rows(named=True), strict=True):
        a, b = sorted((p["participant_1"], p["participant_2"]))
        same = p["family_1"] == p["family_2"]
        phi, rel = expected.get((a, b), (0.0, "unrelated")) if same else (0.0, "unrelated")
        share = kr["ibs0"] / kr["nsnp"] if kr["nsnp"] else float("nan")
        kin = float(kr["kinship"])
        rows.append(
            {
                "family_1": p["family_1"],
                "sample_1": sid[p["participant_1"]],
                "family_2": p["family_2"],
                "sample_2": sid[p["participant_2"]],
                "participant_1": p["participant_1"],
                "participant_2": p["participant_2"],
                "expected_kinship": phi,
                "expected_relationship": rel,
                "nsnp": kr["nsnp"],
                "hethet": kr["hethet"],
                "ibs0": kr["ibs0"],
                "kinship": kin,
                "inferred_relationship": classify(kin, share),
                "status": _status(phi, kin),
            }
        )
    schema = {
        "family_1": pl.String, "sample_1": pl.String, "family_2": pl.String,
        "sample_2": pl.String, "participant_1": pl.String, "participant_2": pl.String,
        "expected_kinship": pl.Float64, "expected_relationship": pl.String, "nsnp": pl.Int64,
        "hethet": pl.Int64, "ibs0": pl.Int64, "kinship": pl.Float64,
        "inferred_relationship": pl.String, "status": pl.String,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def check_sex(
    con: duckdb.DuckDBPyConnection,
    *,
    principal: Principal,
    families: Sequence[str] | None = None,
    purpose: str | None = None,
) -> pl.DataFrame:
    """Registered sex against the chrX calls: males are haploid there, females not.

    Returns
    -------
    polars.DataFrame
        ``family_id, participant_id, sample_id, registered_sex, x_calls,
        x_haploid, x_het, inferred_sex, status`` (``ok``, ``mismatch`` or
        ``not_tested`` without chrX calls).
    """
    purpose = check_read(principal, purpose)
    with family_samples(con, families=families, purpose=purpose) as fs:
        stats = con.execute(
            "SELECT s.participant_id, count(*) AS x_calls,"
            f" count(*) FILTER (WHERE c.flags & {FLAG_HAPLOID} > 0) AS x_haploid,"
            f" count(*) FILTER (WHERE c.dosage = 1 AND c.flags & {FLAG_HAPLOID | FLAG_MISSING} = 0)"
            " AS x_het"
            f" FROM genotype_call_all c JOIN {fs.table} s USING (sample_key)"
            " JOIN variant v USING (variant_key)"
            f" WHERE regexp_replace(v.contig, '^chr', '') = 'X' AND c.flags & {FLAG_MISSING} = 0"
            " GROUP BY s.participant_id"
        ).pl()
        audit.record(con, principal, "genotype.read", "sex_check", {"purpose": purpose})
    df = (
        fs.members.filter(pl.col("col").is_not_null())
        .select("family_id", "participant_id", "sample_id", pl.col("sex").alias("registered_sex"))
        .join(stats, on="participant_id", how="left")
        .with_columns(pl.col("x_calls", "x_haploid", "x_het").fill_null(0))
    )
    inferred = (
        pl.when(pl.col("x_calls") == 0)
        .then(None)
        .when(pl.col("x_haploid") > pl.col("x_calls") / 2)
        .then(pl.lit("male"))
        .otherwise(pl.lit("female"))
    )
    return df.with_columns(inferred.alias("inferred_sex")).with_columns(
        pl.when(pl.col("inferred_sex").is_null())
        .then(pl.lit("not_tested"))
        .when(pl.col("inferred_sex") == pl.col("registered_sex"))
        .then(pl.lit("ok"))
        .otherwise(pl.lit("mismatch"))
        .alias("status")
    )
