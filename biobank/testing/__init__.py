"""Seeded generators of realistic test and demo data (``biobank demo-data OUT``).

* :func:`generate_demo`: a whole demo center folder (reference genome and
  genes, simulated population VCF, truth VCFs, FASTQ reads, registry CSVs,
  OMOP clinical CSVs, manifest), byte-identical for a seed.
* :func:`simulate_cohort_vcf`: only a population VCF, fast, for benchmarks.
* :func:`write_registry_for_samples`: registry CSVs for given sample ids.
* :func:`build_centre_store`: a demo centre's loaded store in seconds (no reads).

Layout and formats: ``docs/ARCHITECTURE.md``; what is simulated: ``reference/README.md``.
"""

from biobank.testing.centre import build_centre_store, load_centre_store
from biobank.testing.demo import OUTPUTS, PRESETS, Manifest, Preset, generate_demo
from biobank.testing.people import (
    REFERENCE_DATE,
    transcode_registry,
    write_registry_for_samples,
)
from biobank.testing.population import simulate_cohort_vcf

__all__ = [
    "OUTPUTS",
    "PRESETS",
    "REFERENCE_DATE",
    "Manifest",
    "Preset",
    "build_centre_store",
    "generate_demo",
    "load_centre_store",
    "simulate_cohort_vcf",
    "transcode_registry",
    "write_registry_for_samples",
]
