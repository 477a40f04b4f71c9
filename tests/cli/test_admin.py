"""Tests for biobank.cli.admin: ``init``, ``user``, ``audit`` (run as a real subprocess)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_init__default_store_in_working_directory(run: Run, tmp_path: Path) -> None:
    proc = run("--user", "alice", "init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "biobank.duckdb").exists()
    assert (tmp_path / "biobank.duckdb.key").exists()
    assert (tmp_path / "biobank.duckdb.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("actor", "allowed"), [("alice", True), ("rita", False), ("aud", False)])
def test_user_add__only_admins(run: Run, tmp_path: Path, actor: str, allowed: bool) -> None:
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


def test_audit_verify__after_writes(run: Run, tmp_path: Path) -> None:
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


@pytest.mark.usefixtures("clean_env")
def test_init__path_argument_creates_that_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from biobank.cli import main

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "center" / "new.duckdb"
    path.parent.mkdir()
    assert main(["--user", "alice", "init", str(path)]) == 0
    assert capsys.readouterr().out == f"created store {path} with admin user 'alice'\n"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "new.duckdb",
        "new.duckdb.audit-head",  # the audit log's head outside the store
        "new.duckdb.key",
    ]
    assert not (tmp_path / "biobank.duckdb").exists()
    # again: the store is kept (and migrated), not replaced
    assert main(["--user", "bob", "init", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"store {path} is at schema version ")
    assert main(["--store", str(path), "--user", "alice", "user", "list", "-f", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("alice,admin,")
