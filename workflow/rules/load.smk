# Optional last step: load the cohort genotypes and the sample QC table into the
# biobank store. Enabled with `load: {enabled: true, store: PATH}` in the config.
#
# Single-file store (default): `biobank load-vcf results/vcf/cohort.vcf.gz`, then
# `load-sample-qc results/qc/sample_qc.tsv`.
#
# Partitioned store (`load: {partitioned: true}`, docs/store.md): the cohort is also
# written as an indexed BCF (the loader reads it without a text parse), and one
# `biobank load-region` job per scatter chunk loads that chunk's regions as Parquet
# partitions, so loads scale with the cluster like the calling does. Each job reads
# without the store and takes the store's lock only to publish (waiting up to
# `load.wait` seconds for another job's publish). Loads are idempotent (a re-run finds
# the files and regions loaded before, and loads only what is missing).


rule cohort_bcf:
    input:
        vcf="results/vcf/cohort.vcf.gz",
    output:
        bcf="results/vcf/cohort.bcf",
        csi="results/vcf/cohort.bcf.csi",
    log:
        "logs/cohort_bcf.log",
    conda:
        "../envs/tools.yaml"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=60,
    shell:
        "(bcftools view --no-version --threads {threads} -Ob -o {output.bcf:q} {input.vcf:q}"
        " && bcftools index --threads {threads} {output.bcf:q}) 2> {log:q}"


# The store checks every load against the center's reference (biobank store reference):
# a header contig of another length or a record on a contig it lacks is refused.
rule store_reference:
    input:
        fai=f"{REF}.fai",
    output:
        touch("results/load/reference.set"),
    log:
        "logs/store_reference.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        biobank=venv_program("biobank"),
        store=config["load"]["store"],
        user=load_user_option(),
    shell:
        "{params.biobank:q}"
        " --store {params.store:q}"
        " {params.user}"
        " store reference"
        " {input.fai:q} > {log:q} 2>&1"


rule load_region:
    input:
        bcf="results/vcf/cohort.bcf",
        reference="results/load/reference.set",
        csi="results/vcf/cohort.bcf.csi",
        chunk="resources/reference/chunks/{chunk}.bed",
    output:
        touch("results/load/chunks/{chunk}.loaded"),
    log:
        "logs/load_region/{chunk}.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        biobank=venv_program("biobank"),
        store=config["load"]["store"],
        user=load_user_option(),
        wait=config["load"].get("wait", 3600),
    shell:
        "{params.biobank:q}"
        " --store {params.store:q}"
        " {params.user}"
        " load-region"
        " {input.bcf:q}"
        " --regions-file {input.chunk:q}"
        " --wait {params.wait} > {log:q} 2>&1"


rule load_store:
    input:
        vcf="results/vcf/cohort.vcf.gz",
        tbi="results/vcf/cohort.vcf.gz.tbi",
        sample_qc="results/qc/sample_qc.tsv",
        reference="results/load/reference.set",
        chunks=chunk_loads(),
    output:
        touch("results/load/cohort.loaded"),
    log:
        "logs/load_store.log",
    conda:
        "../envs/python.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        biobank=venv_program("biobank"),
        store=config["load"]["store"],
        user=load_user_option(),
        # partitioned: the chunks are loaded; else the whole VCF here
        load_vcf=(
            ""
            if config["load"].get("partitioned", False)
            else "load-vcf results/vcf/cohort.vcf.gz"
        ),
    shell:
        "( [ -z {params.load_vcf:q} ] || {params.biobank:q}"
        " --store {params.store:q}"
        " {params.user}"
        " {params.load_vcf} )"
        " > {log:q} 2>&1"
        " && {params.biobank:q}"
        " --store {params.store:q}"
        " {params.user}"
        " load-sample-qc"
        " {input.sample_qc:q} >> {log:q} 2>&1"
