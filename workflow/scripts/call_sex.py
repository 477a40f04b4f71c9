"""Write the bcftools call --samples-file line (sample, M/F/U) for one sample.

The registered sex wins; when it is unknown, the sex inferred from X and Y
coverage (mosdepth) is used; when that is unclear too, U (diploid everywhere).
"""

import logging

from biobank.sequencing.sampleqc import infer_sex, read_mosdepth_summary

# The `snakemake` object is injected by the script: directive of the rule.
snakemake = globals()["snakemake"]
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
call = infer_sex(
    read_mosdepth_summary(snakemake.input.summary),
    chrx=snakemake.params.chrx,
    chry=snakemake.params.chry,
    x_ratio_male=snakemake.params.x_ratio_male,
    y_ratio_male=snakemake.params.y_ratio_male,
)
sex = snakemake.params.registered or call.inferred
code = {"male": "M", "female": "F"}.get(sex or "", "U")
logging.info(
    "%s: registered %r, inferred %r -> %s",
    snakemake.wildcards.sample,
    snakemake.params.registered,
    call.inferred,
    code,
)
with open(snakemake.output[0], "w", encoding="utf-8") as fh:
    fh.write(f"{snakemake.wildcards.sample}\t{code}\n")
