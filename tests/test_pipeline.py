"""The main job end to end (``biobank demo``) on the tiny demo preset."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


def _demo(directory: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOBANK_")}
    return subprocess.run(
        [sys.executable, "-m", "biobank", "demo", str(directory), "--preset", "tiny"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("main-job")
    proc = _demo(Path("demo"), cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd / "demo", proc.stdout


def test_demo__finds_the_planted_diabetes_variant(demo_run: tuple[Path, str]) -> None:
    directory, stdout = demo_run
    with (directory / "truth" / "causal_variants.tsv").open() as fh:
        causal = [r for r in csv.DictReader(fh, delimiter="\t")]
    t2d = [r for r in causal if "T2D" in str(r).upper() or "E11" in str(r)]
    assert t2d, causal
    lines = stdout.split("strongest associations:\n")[1].splitlines()
    names = re.split(r"\s{2,}", lines[0].strip())  # columns are 2+ spaces apart
    cells = dict(zip(names, re.split(r"\s{2,}", lines[2].strip()), strict=True))
    assert cells["variant"].split()[0] == f"{t2d[0]['contig']}:{t2d[0]['pos']}"
    assert float(cells["p"]) < 1e-3


def test_demo__scores_workflow_calls_against_truth(demo_run: tuple[Path, str]) -> None:
    _, stdout = demo_run
    assert "Workflow calls against the simulated truth" in stdout
    # SNP and INDEL rows for each sequenced sample
    assert sum(line.startswith("S0") for line in stdout.splitlines()) >= 4


def test_demo__second_run_changes_nothing(demo_run: tuple[Path, str]) -> None:
    directory, _ = demo_run
    store = directory / "biobank.duckdb"
    con = duckdb.connect(str(store), read_only=True)
    before = con.execute("SELECT count(*) FROM provenance").fetchone()
    batches = con.execute("SELECT count(*) FROM genotype_batch").fetchone()
    con.close()
    proc = _demo(Path("demo"), directory.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded before" in proc.stdout
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM provenance").fetchone() == before
    assert con.execute("SELECT count(*) FROM genotype_batch").fetchone() == batches
    con.close()


def test_demo__audit_chain_intact_after_main_job(demo_run: tuple[Path, str]) -> None:
    directory, _ = demo_run
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "biobank",
            "--store",
            str(directory / "biobank.duckdb"),
            "--user",
            "demo-admin",
            "audit",
            "verify",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "audit log intact" in proc.stdout
