"""Tests for the biobank command's shared behaviour (run as a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from biobank import __version__

BIOBANK = [sys.executable, "-m", "biobank"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("BIOBANK_STORE", None)
    full_env.pop("BIOBANK_USER", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [*BIOBANK, *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )


def test_cli__version(tmp_path: Path) -> None:
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"biobank {__version__}"


def test_cli__help_lists_commands(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("init", "user", "audit"):
        assert command in proc.stdout


def test_cli__default_store_in_working_directory(tmp_path: Path) -> None:
    proc = run("--user", "alice", "init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "biobank.duckdb").exists()
    assert (tmp_path / "biobank.duckdb.key").exists()
    assert (tmp_path / "biobank.duckdb.key").stat().st_mode & 0o077 == 0


def test_cli__store_from_env(tmp_path: Path) -> None:
    proc = run("init", cwd=tmp_path, env={"BIOBANK_STORE": "x.duckdb", "BIOBANK_USER": "root1"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.duckdb").exists()
    assert "admin user 'root1'" in proc.stdout


def test_cli__biobank_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    assert run("--user", "alice", "init", cwd=tmp_path).returncode == 0
    proc = run("--user", "mallory", "user", "add", "eve", "--role", "admin", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("error: no active user 'mallory'")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("actor", "allowed"), [("alice", True), ("rita", False), ("aud", False)])
def test_cli__only_admins_add_users(tmp_path: Path, actor: str, allowed: bool) -> None:
    assert run("--user", "alice", "init", cwd=tmp_path).returncode == 0
    assert (
        run(
            "--user", "alice", "user", "add", "rita", "--role", "registrar", cwd=tmp_path
        ).returncode
        == 0
    )
    assert (
        run("--user", "alice", "user", "add", "aud", "--role", "auditor", cwd=tmp_path).returncode
        == 0
    )
    proc = run("--user", actor, "user", "add", "newbie", "--role", "researcher", cwd=tmp_path)
    assert (proc.returncode == 0) is allowed, proc.stderr
    if not allowed:
        assert "may not manage_users" in proc.stderr


def test_cli__audit_verify_after_writes(tmp_path: Path) -> None:
    assert run("--user", "alice", "init", cwd=tmp_path).returncode == 0
    for name in ("a1", "a2", "a3"):
        assert (
            run(
                "--user", "alice", "user", "add", name, "--role", "auditor", cwd=tmp_path
            ).returncode
            == 0
        )
    proc = run("--user", "a1", "audit", "verify", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "intact: 3 entries" in proc.stdout


def test_cli__unknown_option_is_usage_error(tmp_path: Path) -> None:
    proc = run("--no-such-option", cwd=tmp_path)
    assert proc.returncode == 2
    assert "No such option" in proc.stderr
