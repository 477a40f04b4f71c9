# Sample sheet loading, start-up validation and input functions.
#
# Every check runs before the job graph is built (biobank.sequencing.checks.check_inputs):
# a bad config key, sample sheet row, FASTQ pair, reference contig or a missing
# program stops the run with a message naming the file, row and field.

import shlex
import sys
from pathlib import Path

from biobank.sequencing.checks import check_inputs


def _config_file():
    files = list(getattr(workflow, "configfiles", None) or [])
    return files[-1] if files else "config/config.yaml"


def _uses_software_deployment():
    """True when --sdm conda/apptainer provides the tools (not the host)."""
    settings = getattr(workflow, "deployment_settings", None)
    methods = getattr(settings, "deployment_method", None) or ()
    return len(methods) > 0


SHEET = check_inputs(
    config,
    config_file=_config_file(),
    workflow_dir=Path(workflow.basedir),
    tools=not _uses_software_deployment(),
)
SAMPLES = SHEET.samples
CHUNKS = [f"{i:04d}" for i in range(config["scatter"]["chunks"])]
ALN = "cram" if config["alignment"]["cram"] else "bam"
ALN_INDEX = "crai" if ALN == "cram" else "bai"
REF = "resources/reference/genome.fa"
# Programs installed into the same environment as Snakemake (multiqc, biobank).
VENV_BIN = Path(sys.executable).parent


wildcard_constraints:
    sample="[A-Za-z0-9][A-Za-z0-9_-]*",
    unit="[A-Za-z0-9][A-Za-z0-9_-]*",
    chunk="[0-9]{4}",


def venv_program(name):
    """Path of a program next to Snakemake's Python, else its bare name."""
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def get_fastqs(wildcards):
    unit = SHEET.unit(wildcards.sample, wildcards.unit)
    return {"r1": unit.fq1, "r2": unit.fq2}


def get_read_group(wildcards):
    u = SHEET.unit(wildcards.sample, wildcards.unit)
    return (
        f"@RG\\tID:{u.sample_id}.{u.unit}\\tSM:{u.sample_id}\\tLB:{u.library}"
        f"\\tPL:{u.platform}\\tPU:{u.flowcell}.{u.lane}.{u.sample_id}"
    )


def get_sample_units(wildcards):
    return [
        f"results/align/{wildcards.sample}/units/{u.unit}.bam"
        for u in SHEET.units_of(wildcards.sample)
    ]


def get_registered_sex(wildcards):
    return SHEET.sex.get(wildcards.sample) or ""


def get_final_outputs():
    outputs = [
        "results/vcf/cohort.vcf.gz",
        "results/vcf/cohort.vcf.gz.tbi",
        "results/qc/sample_qc.tsv",
        "results/qc/multiqc_report.html",
    ]
    if config["load"]["enabled"]:
        outputs.append("results/load/cohort.loaded")
    return outputs


def load_user_option():
    """``--user USER`` for the load rules (none: $BIOBANK_USER or $USER)."""
    user = config["load"].get("user")
    return f"--user {shlex.quote(user)}" if user else ""


def chunk_loads():
    """The per-chunk load markers of a partitioned load (none for a single-file store)."""
    if not config["load"].get("partitioned", False):
        return []
    return expand("results/load/chunks/{chunk}.loaded", chunk=CHUNKS)
