"""Write the bcftools call --ploidy-file for the configured sex chromosomes."""

import logging

from biobank.sequencing.regions import reference_contigs, write_ploidy_file

# The `snakemake` object is injected by the script: directive of the rule.
snakemake = globals()["snakemake"]
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
fasta = snakemake.input.fai[: -len(".fai")]
write_ploidy_file(
    snakemake.output[0],
    contigs=reference_contigs(fasta),
    chrx=snakemake.params.chrx,
    chry=snakemake.params.chry,
    par=snakemake.params.par,
)
