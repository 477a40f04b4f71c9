"""Families and inherited disease: pedigrees checked against the genomes (Mendelian
errors, relatedness), inheritance analyses (de novo, recessive, compound heterozygous,
dominant, X-linked), ranking of candidates by HPO similarity, and GA4GH Phenopacket export.

The pedigrees and phenotypes themselves are registry data
(:mod:`biobank.registry.pedigree`, :mod:`biobank.registry.phenotypes`); this stage
reads them with the genotypes (:mod:`biobank.genomes.reader`). Modules:
:mod:`~biobank.families.members` (who is genotyped, trios, consent),
:mod:`~biobank.families.mendel`, :mod:`~biobank.families.relatedness`,
:mod:`~biobank.families.inheritance`, :mod:`~biobank.families.ranking`,
:mod:`~biobank.families.phenopacket`.
"""

from __future__ import annotations
