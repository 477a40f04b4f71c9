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

The names below are imported on first use (PEP 562): a load worker process,
which needs only the loading modules, then does not import the reader, the
panels and their dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "infer_ancestry": "biobank.genomes.ancestry",
    "project_onto_panel": "biobank.genomes.ancestry",
    "parse_bcsq": "biobank.genomes.bcsq",
    "allele_counts_in": "biobank.genomes.counts",
    "within_frequency_bounds": "biobank.genomes.counts",
    "CALL_FIELDS": "biobank.genomes.encoding",
    "FLAG_FIRST_ALLELE": "biobank.genomes.encoding",
    "FLAG_HALF_CALL": "biobank.genomes.encoding",
    "FLAG_HAPLOID": "biobank.genomes.encoding",
    "FLAG_MISSING": "biobank.genomes.encoding",
    "FLAG_OTHER_ALT": "biobank.genomes.encoding",
    "FLAG_PHASED": "biobank.genomes.encoding",
    "DAMAGING_CONSEQUENCES": "biobank.genomes.filters",
    "VARIANT_COLUMNS": "biobank.genomes.filters",
    "VariantFilter": "biobank.genomes.filters",
    "LoadReport": "biobank.genomes.load",
    "load_vcf": "biobank.genomes.load",
    "BatchColumns": "biobank.genomes.packed",
    "batch_columns": "biobank.genomes.packed",
    "packed_counts": "biobank.genomes.packed",
    "packed_planes": "biobank.genomes.packed",
    "annotate_frequencies": "biobank.genomes.panels",
    "filter_rare_in_panel": "biobank.genomes.panels",
    "load_panel": "biobank.genomes.panels",
    "panel_frequencies": "biobank.genomes.panels",
    "DenseBlock": "biobank.genomes.reader",
    "GenotypeMatrix": "biobank.genomes.reader",
    "SampleSet": "biobank.genomes.reader",
    "carriers": "biobank.genomes.reader",
    "dense_blocks": "biobank.genomes.reader",
    "genotype_matrix": "biobank.genomes.reader",
    "pca": "biobank.genomes.reader",
    "sample_table": "biobank.genomes.reader",
    "variant_keys": "biobank.genomes.reader",
    "variants": "biobank.genomes.reader",
    "VerifyReport": "biobank.genomes.verify",
    "verify_vcf": "biobank.genomes.verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
