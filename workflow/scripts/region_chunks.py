"""Write the scatter chunks (BED, 0-based half-open) for the reference."""

import logging

from biobank.sequencing.regions import write_region_chunks

# The `snakemake` object is injected by the script: directive of the rule.
snakemake = globals()["snakemake"]
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
write_region_chunks(
    snakemake.input.fasta,
    list(snakemake.output),
    min_gap=snakemake.params.min_gap,
)
