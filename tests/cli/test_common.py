"""Tests for biobank.cli._common: opening the store (never creating it) and printing tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biobank.cli import main
from biobank.cli._common import OutputFormat, emit


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "command",
    [
        ["user", "list"],
        ["audit", "verify"],
        ["specimen", "list"],
        ["registry", "import-all", "registry"],
        ["load-clinical", "clinical"],
        ["load-vcf", "x.vcf"],
        ["cohort", "list", "--purpose", "HMB"],
        ["query", "freq", "--purpose", "HMB"],
    ],
    ids=" ".join,
)
def test_open_store__mistyped_store_is_refused_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    typo = tmp_path / "biobnak.duckdb"
    code = main(["--store", str(typo), "--user", "alice", *command])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"error: store {typo} does not exist: ")
    assert f"'biobank init {typo}'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("clean_env")
def test_open_store__existing_store_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.duckdb"
    assert main(["--store", str(path), "--user", "alice", "init"]) == 0
    capsys.readouterr()
    assert main(["--store", str(path), "--user", "alice", "user", "list", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["user_name"] == "alice"


def test_emit__column_types_from_all_rows(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"label": f"L{i}", "freezer": None if i < 150 else "F01"} for i in range(160)]
    emit(rows, OutputFormat.JSON)
    assert json.loads(capsys.readouterr().out) == rows
    emit(rows, OutputFormat.CSV)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "label,freezer"
    assert lines[1] == "L0,"
    assert lines[-1] == "L159,F01"
