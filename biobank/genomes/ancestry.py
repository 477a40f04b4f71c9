"""Ancestry from a reference panel: project participants onto its PCs, assign a group.

The panel and its PCA model are loaded by :func:`biobank.genomes.panels.load_panel`;
variants are matched as described in :mod:`biobank.genomes.panels` (contig, position,
REF, ALT; ``chr1`` = ``1``).

Ancestry rule (:func:`infer_ancestry`)
    Each participant's ``k`` nearest panel samples (Euclidean distance on the
    first ``n_pcs`` PCs, whose scale is each component's standard deviation,
    so the leading PCs weigh most) vote; the most frequent group (population
    or superpopulation) wins, ``confidence`` is its share of the votes and
    ``distance`` the participant's distance to that group's centroid.
    A participant is *unassigned* (``ancestry`` null) when the confidence is
    below ``min_confidence`` (default 0.6: an admixed or in-between
    participant), or the distance exceeds ``outlier_factor`` (default 2) times
    the group's radius (the 95th percentile of its own panel samples' distances
    to the centroid: a participant unlike every panel group), or the
    participant has calls at fewer than ``min_called`` (default 0.5) of the
    panel's PCA SNPs (a projection from few SNPs shrinks towards the centre).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, Role
from biobank.core.errors import AccessDenied, ConsentError, ValidationError
from biobank.genomes.encoding import FLAG_MISSING
from biobank.genomes.filters import canonical_contig_sql
from biobank.genomes.panels import panel_id, panel_samples
from biobank.genomes.reader import SampleSet, dense_blocks, sample_table

if TYPE_CHECKING:
    import duckdb

__all__ = ["infer_ancestry", "project_onto_panel"]

logger = logging.getLogger(__name__)


def _check_read(principal: Principal, purpose: str | None) -> str | None:
    """As the genotype reader: who may read genotypes, and the purpose to restrict to."""
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


def project_onto_panel(
    con: duckdb.DuckDBPyConnection,
    samples: SampleSet = None,
    *,
    panel: str,
    principal: Principal,
    purpose: str | None = None,
    min_overlap: float = 0.5,
) -> tuple[pl.DataFrame, int]:
    """Project participants onto a panel's principal components.

    The participants' ALT counts at the panel's PCA SNPs (matched by contig,
    position, REF and ALT; see the module docstring) are scaled with the
    panel's means and scales and multiplied by its loadings
    (``allel``'s ``GenotypePCA.transform`` on the stored model). A missing call,
    or a PCA SNP the store does not have, is set to the panel mean (it adds
    nothing to any PC). Audited (``genotype.read``, target ``panel_projection``).

    Parameters
    ----------
    con
        The store connection (writable: an audit entry is written).
    samples
        The participants (see :mod:`biobank.genomes.reader`).
    panel
        The panel name.
    principal, purpose
        As for :func:`biobank.genomes.reader.genotype_matrix`.
    min_overlap
        Refuse when fewer than this share of the panel's PCA SNPs are in the
        store (projections shrink towards the panel's centre as SNPs go missing).

    Returns
    -------
    tuple
        ``participant_id, sample_id, PC1..PCk, n_snps`` (SNPs with a call) and
        the number of the panel's PCA SNPs found in the store.

    Raises
    ------
    ValidationError
        If fewer than ``min_overlap`` of the PCA SNPs are in the store.
    AccessDenied, ConsentError
        As for :func:`biobank.genomes.reader.carriers`.
    """
    from allel.stats.decomposition import GenotypePCA

    purpose = _check_read(principal, purpose)
    pid = panel_id(con, panel)
    snps = con.execute(
        "SELECT snp_index, mean, scale, loadings FROM panel_pca_snp WHERE panel_id = ?"
        " ORDER BY snp_index",
        [pid],
    ).fetchnumpy()
    n_snps = len(snps["snp_index"])
    matched = con.execute(
        "SELECT s.snp_index, min(v.variant_key) AS variant_key FROM panel_pca_snp s"
        f" JOIN variant v ON s.contig = {canonical_contig_sql('v.contig')}"
        " AND s.position = v.position AND s.ref = v.ref AND s.alt = v.alt"
        " WHERE s.panel_id = ? GROUP BY s.snp_index ORDER BY variant_key",
        [pid],
    ).fetchnumpy()
    found = len(matched["snp_index"])
    if found < min_overlap * n_snps:
        raise ValidationError(
            f"only {found} of panel {panel!r}'s {n_snps} PCA SNPs are in the store "
            f"(min_overlap={min_overlap}): are the panel and the cohort on the same "
            "reference build? (contigs 'chr1' and '1' are matched; REF/ALT must agree)",
            field="panel",
            value=panel,
        )
    mean = np.asarray(snps["mean"], dtype=np.float64)
    loadings = np.vstack([np.asarray(x, dtype=np.float64) for x in snps["loadings"]])
    model = GenotypePCA(n_components=loadings.shape[1], scaler="patterson")
    model.scaler_.mean_ = mean[:, None]
    model.scaler_.std_ = np.asarray(snps["scale"], dtype=np.float64)[:, None]
    model.components_ = loadings.T
    keys = np.asarray(matched["variant_key"], dtype=np.int64)
    rows_of = np.asarray(matched["snp_index"], dtype=np.int64)  # in key order
    with sample_table(con, samples, purpose=purpose) as tbl:
        sample_df = con.execute(
            f"SELECT participant_id, sample_id FROM {tbl} ORDER BY sample_key"
        ).pl()
        gn = np.repeat(mean[:, None], sample_df.height, axis=1)
        called = np.zeros(sample_df.height, dtype=np.int64)
        done = 0
        if sample_df.height and len(keys):
            for block in dense_blocks(con, tbl, keys):
                idx = rows_of[done : done + len(block.keys)]
                done += len(block.keys)
                ok = (block.flags & FLAG_MISSING) == 0
                gn[idx] = np.where(ok, block.dosage.astype(np.float64), gn[idx])
                called += ok.sum(axis=0)
    coords = model.transform(gn) if sample_df.height else np.zeros((0, model.n_components))
    out = sample_df.with_columns(
        [pl.Series(f"PC{i + 1}", coords[:, i]) for i in range(coords.shape[1])]
    ).with_columns(n_snps=pl.Series(called, dtype=pl.Int64))
    audit.record(
        con,
        principal,
        "genotype.read",
        "panel_projection",
        {"panel": panel, "purpose": purpose, "samples": out.height, "variants": found},
    )
    return out, found


def infer_ancestry(
    con: duckdb.DuckDBPyConnection,
    projected: pl.DataFrame,
    *,
    panel: str,
    level: str = "superpopulation",
    n_pcs: int | None = None,
    k: int = 10,
    min_confidence: float = 0.6,
    outlier_factor: float = 2.0,
    min_called: float = 0.5,
) -> pl.DataFrame:
    """Assign projected participants to a panel group by k nearest panel samples.

    The rule and the unassigned thresholds are in the module docstring.

    Parameters
    ----------
    projected
        :func:`project_onto_panel`'s frame (``PC1``.. columns).
    panel
        The panel name.
    level
        ``"superpopulation"`` or ``"population"``.
    n_pcs
        PCs used (default: all of the panel's).
    k
        Neighbours that vote.
    min_confidence
        Below this share of votes the participant is unassigned.
    outlier_factor
        Beyond this multiple of the group's radius the participant is unassigned.
    min_called
        A participant with calls at fewer than this share of the panel's PCA
        SNPs (``projected``'s ``n_snps``) is unassigned.

    Returns
    -------
    polars.DataFrame
        ``projected`` plus ``ancestry`` (null = unassigned), ``confidence``,
        ``distance`` (to the centroid of the voted group).
    """
    from scipy.spatial import cKDTree

    if level not in ("superpopulation", "population"):
        raise ValidationError(
            f"level must be 'superpopulation' or 'population', not {level!r}",
            field="level",
            value=level,
        )
    ref = panel_samples(con, panel).filter(pl.col(level).is_not_null())
    pcs = [c for c in ref.columns if c.startswith("PC")]
    pcs = pcs[: n_pcs or len(pcs)]
    x_ref = ref.select(pcs).to_numpy()
    labels = ref[level].to_numpy().astype(str)
    groups = np.unique(labels)
    centroids = np.vstack([x_ref[labels == g].mean(axis=0) for g in groups])
    radius = np.array(
        [
            np.quantile(np.linalg.norm(x_ref[labels == g] - centroids[i], axis=1), 0.95)
            for i, g in enumerate(groups)
        ]
    )
    x = projected.select(pcs).to_numpy()
    if not len(x):
        return projected.with_columns(
            ancestry=pl.lit(None, pl.String),
            confidence=pl.lit(None, pl.Float64),
            distance=pl.lit(None, pl.Float64),
        )
    kk = min(k, len(x_ref))
    _, nn = cKDTree(x_ref).query(x, k=kk)
    nn = nn.reshape(len(x), kk)
    votes = np.stack([(labels[nn] == g).sum(axis=1) for g in groups], axis=1)
    best = votes.argmax(axis=1)
    confidence = votes[np.arange(len(x)), best] / kk
    distance = np.linalg.norm(x - centroids[best], axis=1)
    ok = (confidence >= min_confidence) & (distance <= outlier_factor * radius[best])
    if "n_snps" in projected.columns:  # too few calls: the projection sits near the centre
        row = con.execute(
            "SELECT n_pca_snps FROM panel WHERE panel_id = ?", [panel_id(con, panel)]
        ).fetchone()
        n_model = int(row[0]) if row else 0
        ok &= projected["n_snps"].to_numpy() >= min_called * n_model
    return projected.with_columns(
        ancestry=pl.Series(np.where(ok, groups[best], None), dtype=pl.String),
        confidence=pl.Series(confidence, dtype=pl.Float64),
        distance=pl.Series(distance, dtype=pl.Float64),
    )
