"""Stage 3, genomes: loading a cohort VCF into the store (decoding, packing,
staging, publishing), verifying it, and the reader that queries and
statistics use.
"""

from __future__ import annotations

from biobank.genomes.load import (
    CALL_FIELDS,
    FLAG_FIRST_ALLELE,
    FLAG_HALF_CALL,
    FLAG_HAPLOID,
    FLAG_MISSING,
    FLAG_OTHER_ALT,
    FLAG_PHASED,
    LoadReport,
    VerifyReport,
    load_vcf,
    parse_bcsq,
    verify_vcf,
)
from biobank.genomes.reader import (
    DAMAGING_CONSEQUENCES,
    VARIANT_COLUMNS,
    GenotypeMatrix,
    SampleSet,
    VariantFilter,
    carriers,
    genotype_matrix,
    pca,
    sample_table,
    variants,
)

__all__ = [
    "CALL_FIELDS",
    "DAMAGING_CONSEQUENCES",
    "FLAG_FIRST_ALLELE",
    "FLAG_HALF_CALL",
    "FLAG_HAPLOID",
    "FLAG_MISSING",
    "FLAG_OTHER_ALT",
    "FLAG_PHASED",
    "VARIANT_COLUMNS",
    "GenotypeMatrix",
    "LoadReport",
    "SampleSet",
    "VariantFilter",
    "VerifyReport",
    "carriers",
    "genotype_matrix",
    "load_vcf",
    "parse_bcsq",
    "pca",
    "sample_table",
    "variants",
    "verify_vcf",
]
