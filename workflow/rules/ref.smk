# Reference preparation: a plain copy of the FASTA, its indexes (samtools faidx,
# bwa index, sequence dictionary), scatter chunks that avoid N gaps, and the
# sex-chromosome ploidy file for bcftools call.


rule ref_copy:
    input:
        config["reference"]["fasta"],
    output:
        REF,
    log:
        "logs/ref/copy.log",
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    shell:
        "(if gzip -t {input:q} 2>/dev/null; then gzip -dc {input:q}; else cat {input:q}; fi)"
        " > {output:q} 2> {log:q}"


rule ref_faidx:
    input:
        REF,
    output:
        f"{REF}.fai",
    log:
        "logs/ref/faidx.log",
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    shell:
        "samtools faidx {input:q} 2> {log:q}"


rule ref_dict:
    input:
        REF,
    output:
        "resources/reference/genome.dict",
    log:
        "logs/ref/dict.log",
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    shell:
        "samtools dict" " --output {output:q}" " {input:q} 2> {log:q}"


rule ref_bwa_index:
    input:
        REF,
    output:
        multiext(REF, ".amb", ".ann", ".bwt", ".pac", ".sa"),
    log:
        "logs/ref/bwa_index.log",
    benchmark:
        "results/benchmarks/ref_bwa_index.tsv"
    conda:
        "../envs/tools.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "bwa index {input:q} 2> {log:q}"


rule ref_chunks:
    input:
        fasta=REF,
        fai=f"{REF}.fai",
    output:
        expand("resources/reference/chunks/{chunk}.bed", chunk=CHUNKS),
    log:
        "logs/ref/chunks.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        min_gap=config["scatter"]["min_gap"],
    script:
        "../scripts/region_chunks.py"


rule ref_ploidy:
    input:
        fai=f"{REF}.fai",
    output:
        "resources/reference/ploidy.txt",
    log:
        "logs/ref/ploidy.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=200,
        runtime=10,
    params:
        chrx=config["reference"]["chrx"],
        chry=config["reference"]["chry"],
        par=config["reference"]["par"],
    script:
        "../scripts/ploidy_file.py"
