"""Tests for biobank.cli (the root command): version, help, root options, errors.

Run as a real subprocess, like a user runs the command.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from biobank import __version__

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_cli__version(tmp_path: Path, run: Run) -> None:
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"biobank {__version__}"


def test_cli__help_lists_commands(tmp_path: Path, run: Run) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("init", "user", "audit"):
        assert command in proc.stdout


def test_cli__store_from_env(tmp_path: Path, run: Run) -> None:
    proc = run("init", cwd=tmp_path, env={"BIOBANK_STORE": "x.duckdb", "BIOBANK_USER": "root1"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.duckdb").exists()
    assert "admin user 'root1'" in proc.stdout


def test_cli__biobank_error_is_one_line_and_exit_1(tmp_path: Path, run: Run) -> None:
    assert run("--user", "alice", "init", cwd=tmp_path).returncode == 0
    proc = run("--user", "mallory", "user", "add", "eve", "--role", "admin", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(
        "error: operating-system login '"
    )  # mallory is no user this login is mapped to
    assert "may not act as biobank user 'mallory'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli__unknown_option_is_usage_error(tmp_path: Path, run: Run) -> None:
    proc = run("--no-such-option", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No such option" in proc.stderr


#: Every command of ``biobank`` and the module under ``biobank.cli`` that defines it.
COMMANDS = {
    "init": "admin",
    "user add": "admin",
    "user map": "admin",
    "user unmap": "admin",
    "user logins": "admin",
    "user list": "admin",
    "serve": "service",
    "panel load": "panels",
    "panel list": "panels",
    "web-password": "service",
    "audit log": "admin",
    "audit verify": "admin",
    "demo-data": "demo",
    "demo": "demo",
    "registry import": "registry",
    "registry import-all": "registry",
    "registry sample-sheet": "sequencing",
    "registry recontact": "registry",
    "registry barcode": "registry",
    "registry aliquot": "registry",
    "registry label": "registry",
    "registry vocab": "registry",
    "participant add": "registry",
    "participant show": "registry",
    "participant list": "registry",
    "participant update": "registry",
    "consent add": "registry",
    "consent withdraw": "registry",
    "consent show": "registry",
    "specimen add": "registry",
    "specimen show": "registry",
    "specimen list": "registry",
    "specimen update": "registry",
    "specimen move": "registry",
    "specimen consume": "registry",
    "specimen ship": "registry",
    "specimen destroy": "registry",
    "specimen link": "registry",
    "load-vcf": "genomes",
    "load-region": "store",
    "load-pgen": "store",
    "store verify": "store",
    "store compact": "store",
    "store partition": "store",
    "store reference": "store",
    "verify": "genomes",
    "load-clinical": "clinical",
    "cohort define": "clinical",
    "cohort list": "clinical",
    "cohort show": "clinical",
    "query carriers": "research",
    "query freq": "research",
    "query assoc": "research",
    "query linear": "research",
    "query survival": "research",
    "query sql": "research",
    "data-dictionary": "access",
    "access request": "access",
    "access approve": "access",
    "access reject": "access",
    "access list": "access",
    "access extract": "access",
    "access withdrawals": "access",
    "compare-calls": "sequencing",
    "load-sample-qc": "sequencing",
    "workflow check": "sequencing",
    "workflow run": "sequencing",
    "partner add": "network",
    "partner list": "network",
    "partner revoke": "network",
    "partner approve": "network",
    "federate count": "network",
    "federate frequencies": "network",
    "federate logistic": "network",
    "family import-ped": "families",
    "family set-affected": "families",
    "family affected": "families",
    "family members": "families",
    "family import-hpo": "families",
    "family add-hpo": "families",
    "family map-icd10": "families",
    "family check": "families",
    "family mendel": "families",
    "family relatedness": "families",
    "family candidates": "families",
    "family phenopacket": "families",
}


def test_cli__every_command_in_its_stage_module() -> None:
    import typer

    from biobank.cli import app

    found: dict[str, str] = {}

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            callback = getattr(command, "callback", None)
            found[" ".join(path)] = callback.__module__.removeprefix("biobank.cli.")
            return
        for name, sub in subcommands.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    assert found == COMMANDS
