"""Ranking by HPO similarity: planted variants rank first for their child; the fast similarity
equals pyhpo's own HPOSet.similarity."""

from __future__ import annotations

import warnings

import polars as pl
import pytest
from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.families.inheritance import CandidateFilter
from biobank.families.ranking import gene_modes, phenotype_similarity, rank_families

REGISTRAR = Principal("registrar", Role.REGISTRAR)
RELAXED = CandidateFilter(
    consequences=None, max_control_frequency=1.0, min_depth=0, min_quality=0, pass_only=False
)


def test_rank_families__planted_variant_ranks_first_for_its_child(
    family_store: FamilyStore,
) -> None:
    """Without any filter (over 1,000 candidates) each child's planted variant is rank 1
    (the two of the compound heterozygote ranks 1 and 2)."""
    study = family_store.study
    with Store(family_store.path) as store:
        ranked = rank_families(store, REGISTRAR, candidate_filter=RELAXED)
    assert ranked.height > 500
    for p in study.planted:
        rows = ranked.filter(
            (pl.col("proband_sample") == study.sample_ids[p.child])
            & (pl.col("variant_position") == p.pos + 1)
            & (pl.col("mode") == p.mode)
        )
        assert rows.height == 1, p
        limit = 2 if p.mode == "compound_het" else 1
        assert rows["rank"][0] <= limit, (p, rows)
        assert rows["phenotype_score"][0] > 0.4


@pytest.mark.parametrize(
    ("terms", "gene"),
    [
        (["HP:0001394", "HP:0010836"], "ATP7B"),
        (["HP:0006528", "HP:0002205", "HP:0001738"], "CFTR"),
        (["HP:0001638", "HP:0001644"], "LDLR"),
        (["HP:0001987"], "OTC"),
    ],
)
def test_phenotype_similarity__equals_pyhpo(terms: list[str], gene: str) -> None:
    from pyhpo import HPOSet

    from biobank.registry.phenotypes import ontology

    onto = ontology()
    genes = {g.name: g for g in onto.genes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        patient = HPOSet.from_queries(terms).remove_modifier()
        annotated = HPOSet.from_queries([int(i) for i in genes[gene].hpo]).remove_modifier()
        expected = patient.similarity(annotated, kind="gene", method="graphic", combine="funSimAvg")
    assert phenotype_similarity(terms, gene) == pytest.approx(expected, rel=1e-12)


def test_gene_modes__from_the_hpo_annotations() -> None:
    assert "recessive" in gene_modes("ATP7B")
    assert "x_linked" in gene_modes("OTC")
    assert gene_modes("NOT_A_GENE") == frozenset()
