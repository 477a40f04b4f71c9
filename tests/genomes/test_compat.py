"""The old flat module paths biobank.vcf and biobank.genotypes still resolve, with a warning."""

from __future__ import annotations

import importlib

import pytest

import biobank.genomes.filters
import biobank.genomes.load
import biobank.genomes.packed
import biobank.genomes.reader


def test_biobank_vcf__load_vcf_warns_and_is_the_new_object() -> None:
    with pytest.warns(DeprecationWarning, match=r"biobank\.vcf\.load_vcf has moved"):
        from biobank.vcf import load_vcf
    assert load_vcf is biobank.genomes.load.load_vcf


def test_biobank_genotypes__variant_filter_warns_and_is_the_new_object() -> None:
    with pytest.warns(DeprecationWarning, match=r"biobank\.genotypes\.VariantFilter has moved"):
        from biobank.genotypes import VariantFilter
    assert VariantFilter is biobank.genomes.filters.VariantFilter
    assert VariantFilter is biobank.genomes.reader.VariantFilter
    with pytest.warns(DeprecationWarning, match=r"biobank\.genotypes\.packed_counts has moved"):
        from biobank.genotypes import packed_counts
    assert packed_counts is biobank.genomes.packed.packed_counts


@pytest.mark.parametrize(
    ("old", "names"),
    [
        (
            "biobank.vcf",
            [
                "CALL_FIELDS",
                "FLAG_FIRST_ALLELE",
                "FLAG_HALF_CALL",
                "FLAG_HAPLOID",
                "FLAG_MISSING",
                "FLAG_OTHER_ALT",
                "FLAG_PHASED",
                "LoadReport",
                "VerifyReport",
                "load_vcf",
                "parse_bcsq",
                "verify_vcf",
            ],
        ),
        (
            "biobank.genotypes",
            [
                "DAMAGING_CONSEQUENCES",
                "VARIANT_COLUMNS",
                "GenotypeMatrix",
                "SampleSet",
                "VariantFilter",
                "carriers",
                "genotype_matrix",
                "packed_counts",
                "pca",
                "sample_table",
                "variants",
            ],
        ),
    ],
)
def test_old_paths__resolve_every_old_public_name(old: str, names: list[str]) -> None:
    module = importlib.import_module(old)
    for name in names:
        with pytest.warns(DeprecationWarning, match=f"{old}.{name} has moved"):
            assert getattr(module, name) is not None
