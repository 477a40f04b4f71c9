# Consequence annotation against the GFF3 (bcftools csq): each variant in a
# transcript carries INFO/BCSQ (consequence|gene|transcript|biotype|strand|...).


rule annotate_csq:
    input:
        vcf="results/joint/cohort.filtered.bcf",
        ref=REF,
        fai=f"{REF}.fai",
        gff=config["reference"]["gff3"],
    output:
        vcf="results/vcf/cohort.vcf.gz",
        tbi="results/vcf/cohort.vcf.gz.tbi",
    log:
        "logs/annotate_csq.log",
    benchmark:
        "results/benchmarks/annotate_csq.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        # --phase a: genotypes are unphased; consequences are computed per
        # allele as if phased (compound variants within a codon are not joined).
        "(bcftools csq"
        " --fasta-ref {input.ref:q}"
        " --gff-annot {input.gff:q}"
        " --phase a"
        " --output-type z"
        " --output {output.vcf:q}"
        " {input.vcf:q}"
        " && tabix -p vcf {output.vcf:q}) 2> {log:q}"
