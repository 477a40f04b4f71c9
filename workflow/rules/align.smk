# Alignment: bwa mem per unit with its read group, mates fixed (samtools fixmate)
# and sorted; the units of a sample merged, duplicates marked (samtools markdup),
# written as an indexed BAM or CRAM.


rule align_bwa:
    input:
        r1="results/trimmed/{sample}/{unit}_R1.fastq.gz",
        r2="results/trimmed/{sample}/{unit}_R2.fastq.gz",
        ref=REF,
        idx=multiext(REF, ".amb", ".ann", ".bwt", ".pac", ".sa"),
    output:
        temp("results/align/{sample}/units/{unit}.bam"),
    log:
        "logs/bwa/{sample}.{unit}.log",
    benchmark:
        "results/benchmarks/align_bwa/{sample}.{unit}.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=720,
    params:
        read_group=get_read_group,
        tmp="results/align/{sample}/units/{unit}.sort",
    shell:
        "(bwa mem"
        " -t {threads}"
        " -R {params.read_group:q}"
        " {input.ref:q} {input.r1:q} {input.r2:q}"
        " | samtools fixmate -m -u - -"
        " | samtools sort"
        " -T {params.tmp:q}"
        " -m 500M"
        " -o {output:q} -) 2> {log:q}"


rule markdup_samtools:
    input:
        units=get_sample_units,
        ref=REF,
        fai=f"{REF}.fai",
    output:
        aln=f"results/align/{{sample}}.{ALN}",
        idx=f"results/align/{{sample}}.{ALN}.{ALN_INDEX}",
        stats="results/qc/markdup/{sample}.markdup.txt",
    log:
        "logs/markdup/{sample}.log",
    benchmark:
        "results/benchmarks/markdup_samtools/{sample}.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=360,
    params:
        fmt=ALN.upper(),
        tmp="results/align/{sample}.markdup",
    shell:
        "(samtools merge -u -o - {input.units:q}"
        " | samtools markdup"
        " -T {params.tmp:q}"
        " -f {output.stats:q}"
        " --reference {input.ref:q}"
        " -O {params.fmt}"
        " --write-index"
        " -@ {threads}"
        " - {output.aln:q}##idx##{output.idx:q}) 2> {log:q}"
