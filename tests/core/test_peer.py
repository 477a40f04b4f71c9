"""Tests for the command line's peer authentication (biobank.core.access.peer_principal).

The attack this closes: ``USER=demo-researcher biobank --user demo-registrar registry
recontact ...`` used to act as whoever was named. Now the operating-system login (the
process's effective uid, never ``$USER``) must be mapped to the user by an admin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from registry_support import loaded, loaded_template, store, users

from biobank.core.access import (
    Principal,
    map_login,
    mapped_users,
    os_login,
    peer_principal,
    unmap_login,
)
from biobank.core.errors import AccessDenied, NotFoundError, ValidationError
from biobank.core.store import Store

__all__ = ["loaded", "loaded_template", "store", "users"]


def test_os_login__is_the_effective_uid_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pwd

    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    assert os_login() == pwd.getpwuid(os.geteuid()).pw_name


def test_os_login__under_sudo_is_the_person_who_ran_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("SUDO_USER", "li.nurse")
    monkeypatch.setenv("SUDO_UID", str(os.geteuid() + 1000))  # sudo -u <service account>
    assert os_login() == "li.nurse"
    monkeypatch.setenv("SUDO_UID", str(os.geteuid()))  # not a change of account: ignored
    assert os_login() == me
    monkeypatch.setenv("SUDO_UID", "not-a-number")
    assert os_login() == me


def test_peer_principal__an_unmapped_login_is_refused(store: Store) -> None:
    with pytest.raises(AccessDenied, match="login 'mallory' is not mapped to a biobank user"):
        peer_principal(store.con, login="mallory")
    with pytest.raises(AccessDenied, match="may not act as biobank user 'adm1'"):
        peer_principal(store.con, user="adm1", login="mallory")


def test_peer_principal__one_mapping_needs_no_user(
    store: Store, users: dict[str, Principal]
) -> None:
    with store.transaction() as con:
        map_login(con, users["admin"], "li.nurse", "reg1")
    assert peer_principal(store.con, login="li.nurse").user == "reg1"
    with pytest.raises(
        AccessDenied, match=r"may not act as biobank user 'adm1' \(it may act as reg1\)"
    ):
        peer_principal(store.con, user="adm1", login="li.nurse")


def test_peer_principal__several_mappings_need_a_choice(
    store: Store, users: dict[str, Principal]
) -> None:
    with store.transaction() as con:
        map_login(con, users["admin"], "dr.wang", "reg1")
        map_login(con, users["admin"], "dr.wang", "aud1")
    assert mapped_users(store.con, "dr.wang") == ["aud1", "reg1"]
    with pytest.raises(ValidationError, match="may act as aud1, reg1: choose one with --user"):
        peer_principal(store.con, login="dr.wang")
    assert peer_principal(store.con, user="aud1", login="dr.wang").role.value == "auditor"


def test_map_login__admins_only_known_users_and_undone_by_unmap(
    store: Store, users: dict[str, Principal]
) -> None:
    with store.transaction() as con:
        with pytest.raises(AccessDenied):
            map_login(con, users["registrar"], "eve", "adm1")
        with pytest.raises(NotFoundError, match="no active user 'ghost'"):
            map_login(con, users["admin"], "eve", "ghost")
        map_login(con, users["admin"], "eve", "res1")
        with pytest.raises(ValidationError, match="already mapped"):
            map_login(con, users["admin"], "eve", "res1")
        unmap_login(con, users["admin"], "eve", "res1")
        with pytest.raises(NotFoundError, match="not mapped"):
            unmap_login(con, users["admin"], "eve", "res1")
    with pytest.raises(AccessDenied, match="not mapped"):
        peer_principal(store.con, login="eve")


def _biobank(
    store: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BIOBANK_")}
    return subprocess.run(
        [sys.executable, "-m", "biobank", "--store", str(store), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_cli__user_env_and_user_option_cannot_name_an_unmapped_user(
    loaded: Store, users: dict[str, Principal]
) -> None:
    me = os_login()
    with loaded.transaction() as con:
        unmap_login(con, users["admin"], me, "reg1")  # this login may no longer be the registrar
    path = loaded.path
    loaded.close()
    proc = _biobank(
        path, "--user", "reg1", "participant", "list", env={"USER": "reg1", "LOGNAME": "reg1"}
    )
    assert proc.returncode == 1
    assert f"login '{me}' may not act as biobank user 'reg1'" in proc.stderr
    with Store(path, read_only=True) as s:
        read = s.con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'participant.list'"
        ).fetchone()
        refused = s.con.execute(
            "SELECT user_name, role, target, CAST(detail AS VARCHAR) FROM audit_log"
            " WHERE action = 'access.refused'"
        ).fetchall()
    assert read == (0,)  # nothing was read
    # the refusal itself is in the log, with the login that tried
    ((who, role, target, detail),) = refused
    assert (who, role, target) == (f"os:{me}", "none", "participant list")
    assert f'"os_login": "{me}"' in detail
    ok = _biobank(path, "--user", "aud1", "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "audit log intact" in ok.stdout


@pytest.mark.slow
def test_cli__init_maps_the_login_that_created_the_store(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    made = _biobank(path, "init", "--admin", "boss")
    assert made.returncode == 0, made.stderr
    listed = _biobank(path, "user", "logins", "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].startswith(f"{os_login()},boss,")
