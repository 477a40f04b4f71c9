# Sample QC table and the run's MultiQC report.


rule stats_bcftools:
    input:
        vcf="results/vcf/cohort.vcf.gz",
        ref=REF,
    output:
        "results/qc/bcftools/cohort.stats.txt",
    log:
        "logs/stats_bcftools.log",
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    shell:
        "bcftools stats"
        " --fasta-ref {input.ref:q}"
        " --samples -"
        " {input.vcf:q} > {output:q} 2> {log:q}"


rule sample_qc:
    input:
        vcf="results/vcf/cohort.vcf.gz",
        tbi="results/vcf/cohort.vcf.gz.tbi",
        coverage=expand(
            "results/qc/mosdepth/{sample}.mosdepth.summary.txt", sample=SAMPLES
        ),
    output:
        table="results/qc/sample_qc.tsv",
        mqc="results/qc/multiqc/sample_qc_mqc.tsv",
        king="results/qc/relatedness/cohort.kin0.tsv",
    log:
        "logs/sample_qc.log",
    benchmark:
        "results/benchmarks/sample_qc.tsv"
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        samples=SAMPLES,
        registered={s: SHEET.sex.get(s) for s in SAMPLES},
        chrx=config["reference"]["chrx"],
        chry=config["reference"]["chry"],
        thresholds=config["sample_qc"],
        plink_prefix=lambda wildcards, output: output.king.removesuffix(".kin0.tsv"),
    script:
        "../scripts/sample_qc.py"


rule report_multiqc:
    input:
        fastp=expand(
            "results/qc/fastp/{u.sample_id}.{u.unit}.fastp.json", u=SHEET.units
        ),
        stats=expand("results/qc/samtools/{sample}.stats.txt", sample=SAMPLES),
        flagstat=expand("results/qc/samtools/{sample}.flagstat.txt", sample=SAMPLES),
        mosdepth=expand(
            "results/qc/mosdepth/{sample}.mosdepth.{kind}.txt",
            sample=SAMPLES,
            kind=["summary", "global.dist"],
        ),
        bcftools="results/qc/bcftools/cohort.stats.txt",
        sample_qc="results/qc/multiqc/sample_qc_mqc.tsv",
    output:
        "results/qc/multiqc_report.html",
    log:
        "logs/multiqc.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        multiqc=venv_program("multiqc"),
    shell:
        "{params.multiqc:q}"
        " --force"
        " --no-data-dir"
        " --title 'Sequencing run QC'"
        " --filename multiqc_report.html"
        " --outdir results/qc"
        " {input:q} 2> {log:q}"
