"""``biobank access`` and ``biobank data-dictionary`` end to end (one store, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ClinicalStore

from biobank.cli import main
from biobank.core.access import Principal, Role, add_user, map_login, os_login
from biobank.core.store import Store


def _run(cs: ClinicalStore, user: str, *args: str) -> int:
    return main(["--store", str(cs.path), "--user", user, *args])


def test_request_approve_extract_from_the_command_line(
    clinical_store: ClinicalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(clinical_store.path) as store, store.transaction() as con:
        admin = Principal("ada", Role.ADMIN)
        add_user(con, admin, "dac", Role.APPROVER)
        map_login(con, admin, os_login(), "dac")
    capsys.readouterr()
    args = ["--title", "T2D", "--institution", "Gene Center", "--purpose", "DS:E11"]
    code = _run(
        clinical_store, "rita", "access", "request", "t2d", *args,
        "--field", "clinical_person.sex", "--period-end", "2099-12-31", "-f", "json",
    )  # fmt: skip
    assert code == 0
    (req,) = json.loads(capsys.readouterr().out)
    rid = str(req["request_id"])
    assert _run(clinical_store, "rita", "access", "approve", rid, "--reason", "self") == 1
    assert "may not" in capsys.readouterr().err
    assert _run(clinical_store, "dac", "access", "approve", rid, "--reason", "DAC 1") == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert (
        _run(clinical_store, "dac", "access", "extract", rid, "--out", str(out), "-f", "json") == 0
    )
    (res,) = json.loads(capsys.readouterr().out)
    assert res["participants"] == 8
    assert res["issue"] == 1
    manifest = json.loads(Path(res["manifest"]).read_text())
    assert manifest["files"]["extract"]["sha256"] == res["sha256"]
    assert _run(clinical_store, "dac", "access", "list", "--status", "approved", "-f", "csv") == 0
    assert ",t2d,T2D,rita," in capsys.readouterr().out


def test_data_dictionary_prints_markdown_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data-dictionary", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "table,column,type,class,description"
    assert any(
        line.startswith("recontact_identifier,token,VARCHAR,direct_identifier,") for line in lines
    )
    assert main(["data-dictionary"]) == 0
    assert "| token | VARCHAR | direct_identifier |" in capsys.readouterr().out


def _refusals(cs: ClinicalStore) -> list[tuple[str, str, str]]:
    with Store(cs.path) as store:
        rows = store.con.execute(
            "SELECT user_name, target, CAST(detail AS VARCHAR) FROM audit_log"
            " WHERE action = 'access.refused' ORDER BY entry_id"
        ).fetchall()
    return [(str(u), str(t), str(d)) for u, t, d in rows]


def test_a_refused_command_is_audited_once_whether_the_library_or_the_cli_records_it(
    clinical_store: ClinicalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(clinical_store.path) as store, store.transaction() as con:
        admin = Principal("ada", Role.ADMIN)
        add_user(con, admin, "dac", Role.APPROVER)
        map_login(con, admin, os_login(), "dac")
    args = ["--title", "T2D", "--institution", "Gene Center", "--purpose", "DS:E11"]
    assert _run(
        clinical_store, "rita", "access", "request", "t2d", *args,
        "--field", "clinical_person.sex", "--period-end", "2099-12-31", "-f", "json",
    ) == 0  # fmt: skip
    rid = str(json.loads(capsys.readouterr().out)[0]["request_id"])
    before = len(_refusals(clinical_store))
    # extracting a pending request: the library refuses and audits it; the CLI adds nothing
    out = str(tmp_path / "out")
    assert _run(clinical_store, "dac", "access", "extract", rid, "--out", out) == 1
    assert "only an approved request" in capsys.readouterr().err
    library = _refusals(clinical_store)[before:]
    assert len(library) == 1, library
    assert library[0][:2] == ("dac", f"access_request:{rid}")
    assert "cli" not in library[0][2]
    # a researcher may not approve: require() raises and nothing below audits it, so the
    # command line records it, once
    assert _run(clinical_store, "rita", "access", "approve", rid, "--reason", "self") == 1
    assert "may not" in capsys.readouterr().err
    cli = _refusals(clinical_store)[before + 1 :]
    assert len(cli) == 1, cli
    assert cli[0][0] == "rita"
    assert "cli" in cli[0][2]
