# Read QC and trimming (fastp) and alignment QC (samtools stats/flagstat, mosdepth).


rule trim_fastp:
    input:
        unpack(get_fastqs),
    output:
        r1=temp("results/trimmed/{sample}/{unit}_R1.fastq.gz"),
        r2=temp("results/trimmed/{sample}/{unit}_R2.fastq.gz"),
        json="results/qc/fastp/{sample}.{unit}.fastp.json",
        html="results/qc/fastp/{sample}.{unit}.fastp.html",
    log:
        "logs/fastp/{sample}.{unit}.log",
    benchmark:
        "results/benchmarks/trim_fastp/{sample}.{unit}.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        min_length=config["trimming"]["min_length"],
        max_n=config["trimming"]["max_n_bases"],
        extra=config["trimming"]["extra"],
    shell:
        "fastp"
        " --in1 {input.r1:q}"
        " --in2 {input.r2:q}"
        " --out1 {output.r1:q}"
        " --out2 {output.r2:q}"
        " --json {output.json:q}"
        " --html {output.html:q}"
        " --length_required {params.min_length}"
        " --n_base_limit {params.max_n}"
        " --detect_adapter_for_pe"
        " --thread {threads}"
        " {params.extra}"
        " 2> {log:q}"


rule stats_samtools:
    input:
        aln=f"results/align/{{sample}}.{ALN}",
        idx=f"results/align/{{sample}}.{ALN}.{ALN_INDEX}",
        ref=REF,
    output:
        stats="results/qc/samtools/{sample}.stats.txt",
        flagstat="results/qc/samtools/{sample}.flagstat.txt",
    log:
        "logs/samtools_stats/{sample}.log",
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
    shell:
        "(samtools stats"
        " --reference {input.ref:q}"
        " {input.aln:q} > {output.stats:q}"
        " && samtools flagstat"
        " {input.aln:q} > {output.flagstat:q}) 2> {log:q}"


rule coverage_mosdepth:
    input:
        aln=f"results/align/{{sample}}.{ALN}",
        idx=f"results/align/{{sample}}.{ALN}.{ALN_INDEX}",
        ref=REF,
    output:
        summary="results/qc/mosdepth/{sample}.mosdepth.summary.txt",
        dist="results/qc/mosdepth/{sample}.mosdepth.global.dist.txt",
    log:
        "logs/mosdepth/{sample}.log",
    benchmark:
        "results/benchmarks/coverage_mosdepth/{sample}.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        prefix=lambda wildcards, output: output.summary.removesuffix(
            ".mosdepth.summary.txt"
        ),
        # A stable path: params are compared between runs.
        wrapper=f"{workflow.basedir}/scripts/mosdepth.sh",
    shell:
        "bash {params.wrapper:q}"
        " --no-per-base"
        " --fast-mode"
        " --fasta {input.ref:q}"
        " --threads {threads}"
        " {params.prefix:q}"
        " {input.aln:q} 2> {log:q}"
