"""Stage 3, genomes: loading a cohort VCF into the store (decoding, packing,
staging, publishing), verifying it, and the reader that queries and
statistics use.

Modules: :mod:`~biobank.genomes.encoding` (call flags, packed planes),
:mod:`~biobank.genomes.bcsq`, :mod:`~biobank.genomes.records`,
:mod:`~biobank.genomes.staging`, :mod:`~biobank.genomes.load`,
:mod:`~biobank.genomes.verify`; for reading :mod:`~biobank.genomes.filters`,
:mod:`~biobank.genomes.packed`, :mod:`~biobank.genomes.counts` and
:mod:`~biobank.genomes.reader`; reference panels (1000 Genomes ...: per-population
frequencies and ancestry projection) in :mod:`~biobank.genomes.panels`
and :mod:`~biobank.genomes.ancestry`.
Nothing here imports :mod:`biobank.stats`.
"""

from __future__ import annotations

from biobank.genomes.ancestry import infer_ancestry, project_onto_panel
from biobank.genomes.bcsq import parse_bcsq
from biobank.genomes.counts import allele_counts_in, within_frequency_bounds
from biobank.genomes.encoding import (
    CALL_FIELDS,
    FLAG_FIRST_ALLELE,
    FLAG_HALF_CALL,
    FLAG_HAPLOID,
    FLAG_MISSING,
    FLAG_OTHER_ALT,
    FLAG_PHASED,
)
from biobank.genomes.filters import DAMAGING_CONSEQUENCES, VARIANT_COLUMNS, VariantFilter
from biobank.genomes.load import LoadReport, load_vcf
from biobank.genomes.packed import BatchColumns, batch_columns, packed_counts, packed_planes
from biobank.genomes.panels import (
    annotate_frequencies,
    filter_rare_in_panel,
    load_panel,
    panel_frequencies,
)
from biobank.genomes.reader import (
    DenseBlock,
    GenotypeMatrix,
    SampleSet,
    carriers,
    dense_blocks,
    genotype_matrix,
    pca,
    sample_table,
    variant_keys,
    variants,
)
from biobank.genomes.verify import VerifyReport, verify_vcf

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
    "BatchColumns",
    "DenseBlock",
    "GenotypeMatrix",
    "LoadReport",
    "SampleSet",
    "VariantFilter",
    "VerifyReport",
    "allele_counts_in",
    "annotate_frequencies",
    "batch_columns",
    "carriers",
    "dense_blocks",
    "filter_rare_in_panel",
    "genotype_matrix",
    "infer_ancestry",
    "load_panel",
    "load_vcf",
    "packed_counts",
    "packed_planes",
    "panel_frequencies",
    "parse_bcsq",
    "pca",
    "project_onto_panel",
    "sample_table",
    "variant_keys",
    "variants",
    "verify_vcf",
    "within_frequency_bounds",
]
