"""Tests for biobank.cli.network: ``partner`` (run as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from biobank.core.access import os_login

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_partner_commands__admins_only_and_the_token_is_not_stored(
    run: Run, tmp_path: Path
) -> None:
    assert run("--user", "alice", "init", cwd=tmp_path).returncode == 0
    assert (
        run(
            "--user", "alice", "user", "add", "rita", "--role", "researcher", cwd=tmp_path
        ).returncode
        == 0
    )
    assert run("--user", "alice", "user", "map", os_login(), "rita", cwd=tmp_path).returncode == 0
    refused = run("--user", "rita", "partner", "add", "centre-b", "--purpose", "HMB", cwd=tmp_path)
    assert refused.returncode == 1
    added = run("--user", "alice", "partner", "add", "centre-b", "--purpose", "hmb", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("bbp_")
    bad = run("--user", "alice", "partner", "add", "centre-c", "--purpose", "XYZ", cwd=tmp_path)
    assert bad.returncode == 1
    assert "purpose" in bad.stderr
    approved = run(
        "--user",
        "alice",
        "partner",
        "approve",
        "centre-b",
        "--request-id",
        "DAR-9",
        "--purpose",
        "HMB",
        cwd=tmp_path,
    )
    assert approved.returncode == 0, approved.stderr
    listed = run("--user", "alice", "partner", "list", "--format", "json", cwd=tmp_path)
    rows = json.loads(listed.stdout)
    assert [(r["partner_name"], r["purpose"], r["active"]) for r in rows] == [
        ("centre-b", "HMB", True)
    ]
    assert token not in listed.stdout
    assert run("--user", "alice", "partner", "revoke", "centre-b", cwd=tmp_path).returncode == 0
    con = duckdb.connect(str(tmp_path / "biobank.duckdb"), read_only=True)
    try:
        text = str(con.execute("SELECT * FROM partner_centre").fetchall())
        actions = [
            r[0]
            for r in con.execute(
                "SELECT action FROM audit_log WHERE action LIKE 'partner.%' ORDER BY entry_id"
            ).fetchall()
        ]
    finally:
        con.close()
    assert token not in text
    assert actions == ["partner.create", "partner.approval", "partner.revoke"]
