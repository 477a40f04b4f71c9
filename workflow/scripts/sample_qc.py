"""Write the per-sample QC table (results/qc/sample_qc.tsv) and its MultiQC copy."""

import logging
from pathlib import Path

from biobank.sequencing.sampleqc import (
    count_genotypes,
    infer_sex,
    king_table,
    read_mosdepth_summary,
    sample_qc_table,
    write_sample_qc,
)

# The `snakemake` object is injected by the script: directive of the rule.
snakemake = globals()["snakemake"]
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
params = snakemake.params
thresholds = dict(params.thresholds)
sex_calls = {
    sample: infer_sex(
        read_mosdepth_summary(path),
        chrx=params.chrx,
        chry=params.chry,
        x_ratio_male=thresholds["x_ratio_male"],
        y_ratio_male=thresholds["y_ratio_male"],
    )
    for sample, path in zip(params.samples, snakemake.input.coverage, strict=True)
}
counts = count_genotypes(snakemake.input.vcf, exclude_contigs=[params.chrx, params.chry])
kinship = king_table(snakemake.input.vcf, params.plink_prefix)
with open(snakemake.output.king, "w", encoding="utf-8") as fh:
    fh.write("sample_id_1\tsample_id_2\tkinship\n")
    fh.writelines(f"{a}\t{b}\t{k}\n" for a, b, k in kinship)
rows = sample_qc_table(
    counts,
    sex_calls=sex_calls,
    registered_sex=params.registered,
    kinship=kinship,
    thresholds=thresholds,
)
Path(snakemake.output.mqc).parent.mkdir(parents=True, exist_ok=True)
write_sample_qc(rows, snakemake.output.table, multiqc=snakemake.output.mqc)
