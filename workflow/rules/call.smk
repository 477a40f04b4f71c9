# Variant calling. Per sample: sex for ploidy, gVCF called with bcftools over the
# scatter chunks and gathered (kept, so a new batch never re-calls old samples).
# Cohort: gVCFs merged per chunk (bcftools merge --gvcf: a covered reference
# block is a hom-ref genotype, no coverage is a missing one), gathered,
# normalised (multi-allelics split, indels left-aligned) and soft-filtered.


rule call_sex:
    input:
        summary="results/qc/mosdepth/{sample}.mosdepth.summary.txt",
    output:
        "results/calls/{sample}.sex.tsv",
    log:
        "logs/call_sex/{sample}.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=200,
        runtime=10,
    params:
        registered=get_registered_sex,
        chrx=config["reference"]["chrx"],
        chry=config["reference"]["chry"],
        x_ratio_male=config["sample_qc"]["x_ratio_male"],
        y_ratio_male=config["sample_qc"]["y_ratio_male"],
    script:
        "../scripts/call_sex.py"


rule call_bcftools:
    input:
        aln=f"results/align/{{sample}}.{ALN}",
        idx=f"results/align/{{sample}}.{ALN}.{ALN_INDEX}",
        ref=REF,
        fai=f"{REF}.fai",
        chunk="resources/reference/chunks/{chunk}.bed",
        ploidy="resources/reference/ploidy.txt",
        sex="results/calls/{sample}.sex.tsv",
    output:
        temp("results/calls/{sample}/chunks/{chunk}.g.bcf"),
    log:
        "logs/call_bcftools/{sample}.{chunk}.log",
    benchmark:
        "results/benchmarks/call_bcftools/{sample}.{chunk}.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        min_mapq=config["calling"]["min_mapq"],
        min_baseq=config["calling"]["min_baseq"],
        max_depth=config["calling"]["max_depth"],
        bands=",".join(str(b) for b in config["calling"]["gvcf_bands"]),
    shell:
        "(bcftools mpileup"
        " --fasta-ref {input.ref:q}"
        " --regions-file {input.chunk:q}"
        " --annotate FORMAT/AD,FORMAT/DP"
        " --min-MQ {params.min_mapq}"
        " --min-BQ {params.min_baseq}"
        " --max-depth {params.max_depth}"
        " --output-type u"
        " {input.aln:q}"
        " | bcftools call"
        " --multiallelic-caller"
        " --gvcf {params.bands}"
        " --annotate FORMAT/GQ"
        " --ploidy-file {input.ploidy:q}"
        " --samples-file {input.sex:q}"
        " --output-type b"
        " --output {output:q}) 2> {log:q}"


rule gather_gvcf:
    input:
        expand("results/calls/{{sample}}/chunks/{chunk}.g.bcf", chunk=CHUNKS),
    output:
        gvcf="results/calls/{sample}.g.vcf.gz",
        tbi="results/calls/{sample}.g.vcf.gz.tbi",
    log:
        "logs/gather_gvcf/{sample}.log",
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=60,
    shell:
        "(bcftools concat"
        " --output-type z"
        " --output {output.gvcf:q}"
        " {input:q}"
        " && tabix -p vcf {output.gvcf:q}) 2> {log:q}"


rule joint_merge:
    input:
        gvcfs=expand("results/calls/{sample}.g.vcf.gz", sample=SAMPLES),
        tbis=expand("results/calls/{sample}.g.vcf.gz.tbi", sample=SAMPLES),
        ref=REF,
        fai=f"{REF}.fai",
        chunk="resources/reference/chunks/{chunk}.bed",
    output:
        temp("results/joint/chunks/{chunk}.bcf"),
    log:
        "logs/joint_merge/{chunk}.log",
    benchmark:
        "results/benchmarks/joint_merge/{chunk}.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        # bcftools merge needs two or more files; one sample's gVCF is viewed.
        merge=lambda wildcards, input: (
            f"merge --gvcf {shlex.quote(input.ref)}"
            if len(input.gvcfs) > 1
            else "view"
        ),
    shell:
        "(bcftools {params.merge}"
        " --regions-file {input.chunk:q}"
        " --output-type u"
        " {input.gvcfs:q}"
        " | bcftools view"
        " --targets-file {input.chunk:q}"
        " --min-ac 1"
        " --output-type b"
        " --output {output:q}) 2> {log:q}"


rule joint_gather:
    input:
        chunks=expand("results/joint/chunks/{chunk}.bcf", chunk=CHUNKS),
        ref=REF,
        fai=f"{REF}.fai",
    output:
        temp("results/joint/cohort.norm.bcf"),
    log:
        "logs/joint_gather.log",
    benchmark:
        "results/benchmarks/joint_gather.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    shell:
        "(bcftools concat"
        " --output-type u"
        " {input.chunks:q}"
        " | bcftools norm"
        " --multiallelics -any"
        " --fasta-ref {input.ref:q}"
        " --output-type u"
        " | bcftools +fill-tags"
        " --output-type b"
        " --output {output:q}"
        " -- --tags AC,AN,AF,NS,F_MISSING) 2> {log:q}"


rule filter_variants:
    input:
        "results/joint/cohort.norm.bcf",
    output:
        temp("results/joint/cohort.filtered.bcf"),
    log:
        "logs/filter_variants.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
    params:
        min_qual=config["filters"]["min_qual"],
        min_site_dp=config["filters"]["min_site_dp"],
        max_site_dp=config["filters"]["max_site_dp"],
        min_mq=config["filters"]["min_mq"],
        min_gq=config["filters"]["min_gq"],
        min_dp=config["filters"]["min_dp"],
    script:
        "../scripts/filter_variants.py"
