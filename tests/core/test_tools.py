"""Tests for biobank.core.tools: external programs and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.core.errors import ExternalToolError, ToolNotFoundError
from biobank.core.tools import run_tool


def test_run_tool__returns_stdout() -> None:
    assert run_tool(["bcftools", "--version"]).startswith("bcftools ")


def test_run_tool__failure_carries_stderr(tmp_path: Path) -> None:
    with pytest.raises(ExternalToolError, match="bcftools failed with exit code") as info:
        run_tool(["bcftools", "view", tmp_path / "missing.vcf.gz"])
    assert info.value.returncode != 0
    assert "missing.vcf.gz" in info.value.stderr


def test_run_tool__missing_program_names_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match="apt-get install plink2"):
        run_tool(["plink2", "--version"])


def test_run_tool__stdout_to_file(tmp_path: Path) -> None:
    out = tmp_path / "v.txt"
    assert run_tool(["samtools", "--version"], stdout=out) == ""
    assert out.read_bytes().startswith(b"samtools ")
