"""Soft-filter the cohort VCF: FILTER flags for sites, FORMAT/FT for genotypes."""

import logging

from biobank.sequencing.filters import apply_soft_filters

# The `snakemake` object is injected by the script: directive of the rule.
snakemake = globals()["snakemake"]
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
apply_soft_filters(
    snakemake.input[0],
    snakemake.output[0],
    thresholds=dict(snakemake.params.items()),
)
