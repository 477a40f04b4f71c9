"""Tests for the Workbench's ``variant_filter=`` keyword and its deprecated old name ``filter=``."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import ClinicalStore

import biobank
from biobank.core.errors import ValidationError
from biobank.genomes.filters import VariantFilter

RS1 = VariantFilter(variant_ids=["rs1"])


def test_carriers__variant_filter_selects_like_variant_ids(genotyped_store: ClinicalStore) -> None:
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        by_filter = wb.carriers(variant_filter=RS1)
        by_ids = wb.carriers(variant_ids="rs1")
    assert by_filter.sort("participant_id").equals(by_ids.sort("participant_id"))


@pytest.mark.parametrize("method", ["carriers", "frequencies", "genotype_matrix"])
def test_filter_keyword__still_works_and_warns_deprecation(
    genotyped_store: ClinicalStore, method: str
) -> None:
    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb:
        new = getattr(wb, method)(variant_filter=RS1)
        with pytest.warns(DeprecationWarning, match=r"filter= is deprecated: pass variant_filter="):
            old = getattr(wb, method)(filter=RS1)
    if isinstance(new, pl.DataFrame):
        assert old.equals(new)
    else:
        assert (old.genotypes == new.genotypes).all()
        assert old.variants.equals(new.variants)


def test_association__filter_keyword_warns_and_gives_the_same_result(
    genotyped_store: ClinicalStore,
) -> None:
    from biobank.clinical.cohorts import Diagnosis

    with biobank.open(genotyped_store.path, user="rita", purpose="DS:E11", min_count=1) as wb:
        new = wb.association(Diagnosis("E11"), variant_filter=RS1, covariates=())
        with pytest.warns(DeprecationWarning, match="variant_filter"):
            old = wb.association(Diagnosis("E11"), filter=RS1, covariates=())
    assert old.equals(new)
    assert new["variant_id"].to_list() == ["rs1"]


def test_filter_and_variant_filter__together_are_refused(genotyped_store: ClinicalStore) -> None:
    with (
        biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb,
        pytest.warns(DeprecationWarning, match="filter= is deprecated"),
        pytest.raises(ValidationError, match="variant_filter= only"),
    ):
        wb.carriers(variant_filter=RS1, filter=RS1)


def test_variant_filter_and_region__together_are_refused(genotyped_store: ClinicalStore) -> None:
    with (
        biobank.open(genotyped_store.path, user="rita", purpose="DS:E11") as wb,
        pytest.raises(ValidationError, match="either variant_filter= or region"),
    ):
        wb.carriers(variant_filter=RS1, region="chr1")
