"""The main job end to end on the demo center: registry -> workflow -> store -> query.

``biobank demo DIR`` (and ``./run demo``) calls :func:`run_demo`. Every step is
idempotent: a second run re-uses the generated data, finds the registry files
and VCFs already loaded (by checksum) and lets Snakemake skip finished jobs.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

from biobank.core.errors import ConfigError, ExternalToolError

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = ["DEMO_USERS", "DemoResult", "load_demo_families", "run_demo", "workflow_config_for"]

logger = logging.getLogger(__name__)

#: The demo store's accounts: user name -> role.
DEMO_USERS = {
    "demo-admin": "admin",
    "demo-registrar": "registrar",
    "demo-researcher": "researcher",
}


@dataclass
class DemoResult:
    """What :func:`run_demo` did and found.

    Attributes
    ----------
    store
        The store file.
    steps
        One line per step, in order.
    accuracy
        Workflow calls scored against the simulated truth, one row per sample
        and variant type.
    association
        The cohort query: type 2 diabetes (ICD-10 E11) cases against controls,
        the strongest associations.
    """

    store: Path
    steps: list[str] = field(default_factory=list)
    accuracy: pl.DataFrame | None = None
    association: pl.DataFrame | None = None


def _rebase(path: str, directory: Path) -> str:
    """Map a ``demo/...`` path of the repository config into ``directory``."""
    p = Path(path)
    if p.parts and p.parts[0] == "demo":
        return str(directory.joinpath(*p.parts[1:]).resolve())
    return path


def workflow_config_for(directory: Path, *, repo_config: Path) -> Path:
    """Write a workflow config and sample sheet for a demo folder; return the config path.

    The repository's ``config/config.yaml`` points at ``demo/``; this rebases its
    paths (and the FASTQ paths of the demo's ``samples.tsv``) to absolute paths in
    ``directory``, so the workflow can run in ``directory``.

    Raises
    ------
    ConfigError
        If the repository config or the demo sample sheet is missing.
    """
    if not repo_config.exists():
        raise ConfigError(f"workflow config {repo_config} not found")
    config: dict[str, Any] = yaml.safe_load(repo_config.read_text(encoding="utf-8"))
    sheet_in = directory / "samples.tsv"
    if not sheet_in.exists():
        raise ConfigError(f"{sheet_in} not found: generate the demo with 'biobank demo-data'")
    run_dir = directory / "workflow"
    run_dir.mkdir(parents=True, exist_ok=True)
    sheet_out = run_dir / "samples.tsv"
    with sheet_in.open(encoding="utf-8", newline="") as fin:
        rows = list(csv.DictReader(fin, delimiter="\t"))
    base = directory.resolve()
    for row in rows:
        for col in ("fq1", "fq2"):
            p = Path(row[col])
            # the generator writes "<out as given>/fastq/..."; keep only what follows the folder
            tail = p.parts[p.parts.index("fastq") :] if "fastq" in p.parts else p.parts
            row[col] = str(base.joinpath(*tail))
    with sheet_out.open("w", encoding="utf-8", newline="") as fout:
        writer = csv.DictWriter(fout, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    config["samples"] = str(sheet_out.resolve())
    for key, value in list(config.items()):
        if isinstance(value, str):
            config[key] = _rebase(value, directory)
    for section in config.values():
        if isinstance(section, dict):
            for key, value in list(section.items()):
                if isinstance(value, str):
                    section[key] = _rebase(value, directory)
    out = run_dir / "config.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def _ensure_demo(directory: Path, *, preset: str, seed: int, step: Callable[[str], None]) -> None:
    """Generate the demo center unless ``DIR/manifest.json`` exists."""
    from biobank.testing import generate_demo

    manifest = directory / "manifest.json"
    if manifest.exists():
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        step(
            f"demo center: re-using {directory}"
            f" (preset {meta.get('preset')}, seed {meta.get('seed')})"
        )
    else:
        step(f"demo center: generating into {directory} (preset {preset}, seed {seed})")
        generate_demo(directory, seed=seed, preset=preset)


def _ensure_demo_users(store: Store) -> None:
    """Create the :data:`DEMO_USERS` not yet in the store (the admin first).

    The operating-system login running the demo is mapped to every demo user,
    so that one person can try each role's commands with ``--user`` (a demo
    convenience: at a center, an admin maps each login to its one user).
    """
    from biobank.core import audit
    from biobank.core.access import Role, add_user, get_principal, map_login, mapped_users, os_login

    with store.transaction() as con:
        existing = {r[0] for r in con.execute("SELECT user_name FROM app_user").fetchall()}
        admin = None
        for user, role in DEMO_USERS.items():
            if user in existing:
                continue
            created = add_user(con, admin, user, role)
            if created.role is Role.ADMIN:
                admin = created
            else:
                assert admin is not None
                audit.record(con, admin, "user.create", user, {"role": role})
        if admin is None:
            admin = get_principal(con, "demo-admin")
        login = os_login()
        for user in DEMO_USERS:
            if user not in mapped_users(con, login):
                map_login(con, admin, login, user)


def _grant_demo_access(store: Store, step: Callable[[str], None]) -> None:
    """Approve a data access request of demo-researcher for HMB (the notebooks' purpose)."""
    from biobank.testing.access import grant_record_access

    (req,) = grant_record_access(store, "demo-researcher", ("HMB",))
    step(f"access: demo-researcher holds approved request {req.request_id} for HMB")


def _load_registry_and_population(
    store: Store, directory: Path, step: Callable[[str], None]
) -> None:
    """Import the registry CSVs and load the annotated population VCF."""
    from biobank.core.access import get_principal
    from biobank.genomes import load as vcf
    from biobank.genomes.reference import set_reference
    from biobank.registry.imports import import_all

    registrar = get_principal(store.con, "demo-registrar")
    step("registry: importing participants, consents and specimens")
    for res in import_all(store, registrar, directory / "registry"):
        step(
            f"  {res.kind}: {res.rows} rows, {res.created} new, {res.unchanged} unchanged"
            + (" (file loaded before)" if res.already_loaded else "")
        )
    fasta = directory / "reference" / "genome.fa"
    if not fasta.with_name("genome.fa.fai").is_file():
        import pysam

        pysam.faidx(str(fasta))  # htslib's index, as samtools faidx writes it
    n_contigs = len(set_reference(store, registrar, fasta))
    step(f"store: loads are checked against the reference {fasta.name} ({n_contigs} contigs)")
    step("store: annotating (bcftools csq) and loading the population VCF")
    population = annotate_population(directory)
    step(_vcf_line(vcf.load_vcf(store, population, principal=registrar)))


def _run_workflow(directory: Path, root: Path, cores: int) -> Path:
    """Run the sequencing workflow in ``directory``; return its cohort VCF."""
    from biobank.sequencing.launcher import run_workflow

    config = workflow_config_for(directory, repo_config=root / "config" / "config.yaml")
    code = run_workflow(cores=cores, configfile=config, directory=directory)
    if code != 0:
        raise ExternalToolError(
            ["snakemake", "--configfile", str(config)],
            code,
            f"the workflow failed: see the logs in {directory / 'logs'}",
        )
    return directory / "results" / "vcf" / "cohort.vcf.gz"


def _score_accuracy(directory: Path, cohort_vcf: Path) -> pl.DataFrame | None:
    """Compare the workflow's calls with each truth VCF (one row per sample and type)."""
    from biobank.sequencing.accuracy import compare_calls

    rows: list[dict[str, Any]] = []
    for truth in sorted((directory / "truth").glob("*.vcf.gz")):
        sample = truth.name.removesuffix(".vcf.gz")
        for cmp in compare_calls(
            truth, cohort_vcf, reference=directory / "reference" / "genome.fa", sample=sample
        ):
            rows.append({"sample_id": sample, **cmp.as_dict()})
    return pl.DataFrame(rows) if rows else None


def _load_workflow_outputs(
    store: Store, directory: Path, cohort_vcf: Path, step: Callable[[str], None]
) -> None:
    """Load the workflow's VCF and sample QC, and the clinical tables."""
    from biobank.clinical.load import load_clinical
    from biobank.core.access import get_principal
    from biobank.genomes import load as vcf
    from biobank.sequencing.sampleqc import load_sample_qc

    registrar = get_principal(store.con, "demo-registrar")
    step("store: loading the workflow's VCF as a new batch")
    step(_vcf_line(vcf.load_vcf(store, cohort_vcf, principal=registrar)))
    qc = load_sample_qc(store, directory / "results" / "qc" / "sample_qc.tsv", principal=registrar)
    step(
        "  sample QC: loaded before, nothing to do"
        if qc.already_loaded
        else f"  sample QC: {qc.n_samples} samples, {qc.n_failed} failing QC"
    )
    step("store: loading clinical outcomes (OMOP tables)")
    clin = load_clinical(store, directory / "clinical", principal=registrar)
    step(
        "  (files loaded before: nothing to do)"
        if clin.already_loaded
        else f"  {clin.persons} persons, {clin.conditions} diagnoses, "
        f"{clin.measurements} measurements, {clin.deaths} deaths"
    )


def _cohort_query(store_path: Path) -> pl.DataFrame:
    """The strongest associations with type 2 diabetes, as a researcher."""
    import biobank

    with biobank.open(store_path, user="demo-researcher", purpose="HMB") as wb:
        assoc = wb.association(biobank.Diagnosis("E11"), covariates=("age", "male"))
    shown = [c for c in ASSOCIATION_COLUMNS if c in assoc.columns]
    return assoc.sort("variant_p_value", nulls_last=True).select(shown).head(10)


def run_demo(
    directory: str | Path,
    *,
    preset: str = "demo",
    seed: int = 42,
    cores: int = 2,
    repo_root: Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the main job end to end on a demo center folder.

    Steps: generate the demo center (if ``DIR/manifest.json`` is missing),
    create the store ``DIR/biobank.duckdb`` with demo accounts, import the
    registry CSVs, load the population VCF, run the sequencing workflow on the
    newly sequenced participants, score its calls against the truth, load its
    VCF as a new batch, load the clinical tables, and ask a cohort question.

    Parameters
    ----------
    directory
        The demo folder (created if missing).
    preset, seed
        Demo generator preset and seed (used only when generating).
    cores
        Cores for the workflow.
    repo_root
        The source checkout holding ``workflow/`` and ``config/`` (default: the
        one this package runs from).
    on_step
        Called with a line at the start of each step.

    Raises
    ------
    ExternalToolError
        If the workflow fails (its log names the rule).
    BiobankError
        Whatever a step raises (bad input, access, ...).
    """
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.sequencing.launcher import repo_workflow_dir

    directory = Path(directory)
    root = repo_root or repo_workflow_dir().parent
    result = DemoResult(store=directory / "biobank.duckdb")

    def step(text: str) -> None:
        result.steps.append(text)
        logger.info(text)
        if on_step is not None:
            on_step(text)

    _ensure_demo(directory, preset=preset, seed=seed, step=step)
    center_key(result.store, create=True)
    with Store(result.store) as store:
        _ensure_demo_users(store)
        _grant_demo_access(store, step)
        _load_registry_and_population(store, directory, step)
    step("workflow: FASTQ -> QC -> alignment -> joint calling -> annotation -> QC report")
    cohort_vcf = _run_workflow(directory, root, cores)
    step("accuracy: scoring the workflow's calls against the simulated truth")
    result.accuracy = _score_accuracy(directory, cohort_vcf)
    with Store(result.store) as store:
        _load_workflow_outputs(store, directory, cohort_vcf, step)
    step("query: type 2 diabetes (E11) cases vs controls, logistic regression on age and sex")
    result.association = _cohort_query(result.store)
    with Store(result.store) as store:
        load_demo_families(store, directory, step)
    return result


#: Sample id prefix, first specimen serial and storage slot of the demo's family study
#: (past the demo center's own, so that its registry joins the store without clashes).
FAMILY_SAMPLE_PREFIX, FAMILY_SERIAL_START, FAMILY_SLOT_START = "FS", 900_000, 6480 * 9


def load_demo_families(
    store: Store, directory: Path, step: Callable[[str], None] = logger.info
) -> Path:
    """Plant the family study in the demo: simulate it on the demo's genome (once, into
    ``DIR/families/``), register its participants, load its VCF as its own batch, import
    its PED and HPO terms, and write ``DIR/truth/families.tsv`` (its planted variants).

    Every step is idempotent (files loaded before are recognised by checksum).

    Returns
    -------
    Path
        The truth table ``DIR/truth/families.tsv``.

    Raises
    ------
    ConfigError
        If ``DIR/manifest.json`` (the demo generator's) is missing.
    """
    import shutil
    import time

    import numpy as np

    from biobank.core.access import get_principal
    from biobank.genomes import load as vcf
    from biobank.registry.imports import import_all
    from biobank.registry.pedigree import import_pedigree
    from biobank.registry.phenotypes import import_phenotypes
    from biobank.testing.demo import PRESETS
    from biobank.testing.families import simulate_family_study
    from biobank.testing.genome import build_genome

    manifest = directory / "manifest.json"
    if not manifest.exists():
        raise ConfigError(f"{manifest} not found: generate the demo with 'biobank demo-data'")
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    started = time.perf_counter()
    out = directory / "families"
    if not (out / "truth" / "planted.tsv").exists():
        step("families: simulating the family study on the demo genome")
        # the demo generator's genome: its preset's spec, its first random draws
        rng = np.random.default_rng([int(meta["seed"]), 1])
        simulate_family_study(
            out,
            genome=build_genome(PRESETS[str(meta["preset"])].genome, rng),
            sample_prefix=FAMILY_SAMPLE_PREFIX,
            serial_start=FAMILY_SERIAL_START,
            slot_start=FAMILY_SLOT_START,
        )
    registrar = get_principal(store.con, "demo-registrar")
    step("families: registering participants, loading the family VCF as its own batch")
    for res in import_all(store, registrar, out / "registry"):
        step(f"  {res.kind}: {res.rows} rows, {res.created} new, {res.unchanged} unchanged")
    step(
        _vcf_line(
            vcf.load_vcf(  # the absolute path: the de novo read evidence reads it later
                store,
                (out / "families.vcf.gz").resolve(),
                principal=registrar,
                call_fields=["DP", "GQ"],
            )
        )
    )
    ped = import_pedigree(store, registrar, out / "pedigree.ped")
    step(
        f"  pedigree: {ped.families} families, {ped.created} new members, {ped.unchanged} unchanged"
    )
    step(f"  HPO terms: {import_phenotypes(store, registrar, out / 'phenotypes.tsv')} new")
    truth = directory / "truth" / "families.tsv"
    truth.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "truth" / "planted.tsv", truth)
    step(f"  families: done in {time.perf_counter() - started:.1f} s; planted variants in {truth}")
    return truth


def _vcf_line(report: Any) -> str:
    if report.already_loaded:
        return f"  {report.source}: loaded before (batch {report.batch_id}), nothing to do"
    return (
        f"  {report.source}: batch {report.batch_id}, {report.n_samples} samples, "
        f"{report.n_variants} variants ({report.n_new_variants} new), {report.n_calls} calls "
        f"stored in {report.seconds:.1f} s"
    )


#: Columns of the association table that the demo prints.
ASSOCIATION_COLUMNS = (
    "variant_contig",
    "variant_position",
    "variant_ref",
    "variant_alt",
    "variant_gene",
    "variant_consequence",
    "variant_case_alt_count",
    "variant_control_alt_count",
    "variant_fisher_p_value",
    "variant_beta",
    "variant_p_value",
)


def annotate_population(directory: Path) -> Path:
    """Annotate the demo's population VCF with consequences (``bcftools csq``), once.

    The workflow annotates the VCFs it calls; the population VCF stands for
    earlier sequenced participants and gets the same annotation here.

    Returns
    -------
    Path
        ``DIR/population/cohort.csq.vcf.gz`` (indexed).

    Raises
    ------
    ExternalToolError
        If bcftools fails.
    """
    from biobank.core.tools import run_tool

    source = directory / "population" / "cohort.vcf.gz"
    out = directory / "population" / "cohort.csq.vcf.gz"
    if out.exists() and Path(str(out) + ".tbi").exists():
        return out
    tmp = out.with_name(out.name + ".part")
    run_tool(
        [
            "bcftools",
            "csq",
            "--fasta-ref",
            directory / "reference" / "genome.fa",
            "--gff-annot",
            directory / "reference" / "genes.gff3",
            "--phase",
            "a",
            "--samples",
            "-",
            "--output-type",
            "z",
            "--output",
            tmp,
            source,
        ]
    )
    tmp.replace(out)
    run_tool(["tabix", "-f", "-p", "vcf", out])
    return out
