"""Execute the notebooks the way a new user does, so that they never rot.

The fixture lays out a project as ``./run demo`` leaves it: ``notebooks/`` (copies
of the committed notebooks) beside ``demo/`` with ``demo/biobank.duckdb``, its key
file ``demo/biobank.duckdb.key`` and the demo accounts of
:data:`biobank.pipeline.DEMO_USERS`, filled by the library calls ``run_demo`` makes
(tiny preset, with the family study as its own batch; the sequencing workflow's
extra batch is left out). Each notebook
runs with the working directory ``notebooks/`` and no ``BIOBANK_*`` variable set.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def build_demo_project(root: Path) -> Path:
    """Make ``root/notebooks`` and ``root/demo`` as ``./run demo`` does; return ``notebooks/``."""
    from biobank.clinical.load import load_clinical
    from biobank.core import audit
    from biobank.core.access import Role, add_user, get_principal
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.genomes.load import load_vcf
    from biobank.pipeline import DEMO_USERS, annotate_population, load_demo_families
    from biobank.registry.imports import import_all
    from biobank.testing import generate_demo
    from biobank.testing.access import grant_record_access

    demo = root / "demo"
    generate_demo(demo, preset="tiny", seed=42)
    path = demo / "biobank.duckdb"
    center_key(path, create=True)
    with Store(path) as store:
        with store.transaction() as con:
            admin = None
            for user, role in DEMO_USERS.items():
                created = add_user(con, admin, user, role)
                if created.role is Role.ADMIN:
                    admin = created
                else:
                    assert admin is not None
                    audit.record(con, admin, "user.create", user, {"role": role})
        registrar = get_principal(store.con, "demo-registrar")
        import_all(store, registrar, demo / "registry")
        load_vcf(store, annotate_population(demo), principal=registrar)
        load_clinical(store, demo / "clinical", principal=registrar)
        grant_record_access(store, "demo-researcher", ("HMB",))
        load_demo_families(store, demo)
    notebooks = root / "notebooks"
    notebooks.mkdir()
    for name in NAMES:
        shutil.copy(NOTEBOOKS / name, notebooks / name)
    return notebooks


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with ``notebooks/`` and the tiny ``demo/``; returns ``notebooks/``."""
    return build_demo_project(tmp_path_factory.mktemp("project"))


def _execute(name: str, notebooks: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    for var in [v for v in os.environ if v.startswith("BIOBANK_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(notebooks)
    nb = nbformat.read(notebooks / name, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(notebooks)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    return {
        "errors": [o for o in outputs if o.get("output_type") == "error"],
        "images": [o for o in outputs if "image/png" in o.get("data", {})],
        "text": "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream"),
        "html": "".join(o.get("data", {}).get("text/html", "") for o in outputs),
    }


def test_notebooks__the_demo_helpers_match_the_demo_accounts() -> None:
    from biobank.pipeline import DEMO_USERS
    from biobank.research.demo_paths import DEMO_REGISTRAR, DEMO_RESEARCHER

    assert DEMO_USERS[DEMO_RESEARCHER] == "researcher"
    assert DEMO_USERS[DEMO_REGISTRAR] == "registrar"
    assert NAMES == [
        "01_demo_cohort_analysis.ipynb",
        "02_gwas_case_control.ipynb",
        "03_biobank_overview.ipynb",
        "04_family_study.ipynb",
    ]


@pytest.mark.parametrize("start", ["notebooks", ".", "demo", "notebooks/sub"])
def test_find_demo__finds_demo_beside_the_notebooks(start: str, tmp_path: Path) -> None:
    from biobank.research.demo_paths import find_demo

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "biobank.duckdb").write_bytes(b"")
    (tmp_path / "notebooks" / "sub").mkdir(parents=True)
    found = find_demo(tmp_path / start)
    assert found.directory == (tmp_path / "demo").resolve()
    assert found.store == (tmp_path / "demo" / "biobank.duckdb").resolve()
    assert found.researcher == "demo-researcher"


def test_find_demo__without_a_demo_says_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biobank.core.errors import ConfigError
    from biobank.research.demo_paths import find_demo

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "demo").mkdir()  # a demo folder without a store does not count
    monkeypatch.chdir(tmp_path / "notebooks")
    with pytest.raises(ConfigError, match=r"no demo store demo/biobank.duckdb .*'\./run demo'"):
        find_demo()


@pytest.mark.parametrize("name", NAMES)
def test_notebooks__first_cell_says_it_opens_what_run_demo_made(name: str) -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert "opens what `./run demo` made" in first.source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "os.environ" not in code
    assert "BIOBANK_" not in code
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_01__cohort_analysis_runs_on_the_demo(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _execute("01_demo_cohort_analysis.ipynb", demo_project, monkeypatch)
    assert out["errors"] == []
    assert len(out["images"]) == 3  # PCA, Manhattan and Kaplan-Meier plots
    assert f"store: {demo_project.parent / 'demo' / 'biobank.duckdb'}" in out["text"]
    cases = re.search(r"cases: (\d+)\s+controls: (\d+)", out["text"])
    assert cases is not None
    assert int(cases[1]) > 0
    assert int(cases[2]) > 0
    assert "participants usable for this purpose" in out["text"]


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_02__gwas_runs_on_the_demo(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _execute("02_gwas_case_control.ipynb", demo_project, monkeypatch)
    text = out["text"]
    assert out["errors"] == []
    assert len(out["images"]) == 4  # sample QC, PCA, QQ and Manhattan plots
    cases = re.search(r"cases: (\d+)\s+controls: (\d+)", text)
    assert cases is not None
    assert int(cases[1]) > 0
    assert int(cases[2]) > 0
    tested = re.search(r"variants tested after QC: (\d+)", text)
    assert tested is not None
    assert int(tested[1]) > 100
    lambdas = re.findall(r"lambda (.+?): (\d+\.\d+)\s+\((\d+) p-values\)", text)
    assert [name for name, _, _ in lambdas] == [
        "Fisher's exact (allelic 2x2)",
        "logistic regression (Wald; Firth when separated)",
    ]
    for _, value, n in lambdas:
        assert 0.5 < float(value) < 2.0
        assert int(n) > 100
    top = re.search(r"top hits: (\d+)", text)
    assert top is not None
    assert int(top[1]) == 15
    assert "GCK" in out["html"]  # the planted T2D variant's gene is among the top hits


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_03__overview_runs_on_the_demo(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _execute("03_biobank_overview.ipynb", demo_project, monkeypatch)
    assert out["errors"] == []
    assert len(out["images"]) == 3  # enrolment, consents, specimens
    enrolled = re.search(r"participants enrolled: (\d+)", out["text"])
    assert enrolled is not None
    assert int(enrolled[1]) > 100
    assert "reading as: demo-registrar (registrar)" in out["text"]
    assert re.search(r"samples_loaded: \d+", out["text"])
    for column in ("HMB", "whole_blood", "available"):
        assert column in out["html"]
    # aggregate only: no pseudonym, national id or name reaches an output
    assert not re.search(r"\bP-[0-9A-Z]{6,}", out["text"] + out["html"])
    registry = (demo_project.parent / "demo" / "registry" / "participants.csv").read_text("utf-8")
    national_id = registry.splitlines()[1].split(",")[0]
    assert national_id not in out["text"] + out["html"]


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_04__family_study_runs_on_the_demo(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _execute("04_family_study.ipynb", demo_project, monkeypatch)
    text = out["text"]
    assert out["errors"] == []
    families = re.search(r"families: (\d+)\s+members: (\d+)\s+affected: (\d+)", text)
    assert families is not None
    assert int(families[1]) == 7
    assert int(families[3]) >= 5  # one affected child per planted scenario (and a father)
    trios = re.search(r"trios: (\d+)\s+highest error rate: (\d\.\d+)", text)
    assert trios is not None
    assert int(trios[1]) >= 7
    assert float(trios[2]) < 0.01  # genotyping noise only: the pedigrees are right
    lowest = re.search(r"parent-offspring pairs: (\d+)\s+lowest kinship: (-?\d\.\d+)", text)
    assert lowest is not None
    assert float(lowest[2]) > 0.1  # no parent and child unrelated
    sex = re.search(r"sex checks: (.*)", text)
    assert sex is not None
    assert "ok" in sex[1]
    assert "mismatch" not in sex[1]
    assert "the planted variant ranks first: True" in text
    # the decoys beside the planted de novo fail in the reads; the planted one alone passes
    assert "de novo calls passing the read filter: ['MYH7']" in text
    truth = (demo_project.parent / "demo" / "truth" / "families.tsv").read_text("utf-8")
    n_planted = len(truth.splitlines()) - 1
    assert f"planted variants ranked: {n_planted} of {n_planted}" in text
    assert "MYH7" in text
    packet = re.search(r"wrote (.+\.phenopacket\.json)", text)
    assert packet is not None
    from biobank.families.phenopacket import from_json

    family = from_json(Path(packet[1]).read_text("utf-8"))
    assert family.proband.phenotypic_features
    # pseudonyms only: no resident identity number of a family member reaches an output
    ped = (demo_project.parent / "demo" / "families" / "pedigree.ped").read_text("utf-8")
    national_ids = {line.split("\t")[1] for line in ped.splitlines()[1:]}
    assert not any(n in text + out["html"] for n in national_ids)


@pytest.mark.slow
def test_demo_families__planted_variants_found_ranked_first_and_alone(demo_project: Path) -> None:
    """The family study ``run_demo`` plants: with the default filters exactly the planted
    variants of ``demo/truth/families.tsv`` are candidates, each rank 1 for its child (the
    compound heterozygote's two, ranks 1 and 2), beside the demo's own batch."""
    import polars as pl

    from biobank.core.access import get_principal
    from biobank.core.store import Store
    from biobank.families.inheritance import find_candidates
    from biobank.families.ranking import rank_families

    demo = demo_project.parent / "demo"
    truth = pl.read_csv(demo / "truth" / "families.tsv", separator="\t")
    assert sorted(truth["mode"].unique()) == [
        "compound_het",
        "de_novo",
        "dominant",
        "recessive",
        "x_linked",
    ]
    planted = {
        (r["family_id"], r["mode"], r["child_sample_id"], r["position"])
        for r in truth.iter_rows(named=True)
    }
    with Store(demo / "biobank.duckdb") as store:
        batches = store.con.execute("SELECT count(*) FROM genotype_batch").fetchone()
        registrar = get_principal(store.con, "demo-registrar")
        found = find_candidates(store.con, principal=registrar)
        ranked = rank_families(store, registrar)
    assert batches == (2,)  # the population and the families, each its own batch
    assert {
        (r["family_id"], r["mode"], r["proband_sample"], r["variant_position"])
        for r in found.iter_rows(named=True)
    } == planted
    assert set(found["variant_gene"]) == set(truth["gene"])
    for r in truth.iter_rows(named=True):
        rows = ranked.filter(
            (pl.col("proband_sample") == r["child_sample_id"])
            & (pl.col("variant_position") == r["position"])
        )
        assert rows.height == 1, r
        assert rows["rank"][0] <= (2 if r["mode"] == "compound_het" else 1), (r, rows)
