# Optional last step: load the cohort VCF and the sample QC table into the
# biobank store. Enabled with `load: {enabled: true, store: PATH}` in the
# config; it runs `biobank --store PATH [--user USER] load-vcf
# results/vcf/cohort.vcf.gz` and then `load-sample-qc results/qc/sample_qc.tsv`.
# Both loads are idempotent (a re-run finds the files loaded before).


rule load_store:
    input:
        vcf="results/vcf/cohort.vcf.gz",
        tbi="results/vcf/cohort.vcf.gz.tbi",
        sample_qc="results/qc/sample_qc.tsv",
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
        user=(
            f"--user {shlex.quote(config['load']['user'])}"
            if config["load"].get("user")
            else ""
        ),
    shell:
        "{params.biobank:q}"
        " --store {params.store:q}"
        " {params.user}"
        " load-vcf"
        " {input.vcf:q} > {log:q} 2>&1"
        " && {params.biobank:q}"
        " --store {params.store:q}"
        " {params.user}"
        " load-sample-qc"
        " {input.sample_qc:q} >> {log:q} 2>&1"
