"""The participant page shows staff a Sample QC section: workflow QC and family checks."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from families_support import FamilyStore
from service.support import ACCOUNTS, PASSWORD, SECRET, logged_in

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.families.checks import run_family_checks
from biobank.registry.pedigree import PedRow, register_family
from biobank.service import create_app
from biobank.service.accounts import create_account

REGISTRAR = Principal("registrar", Role.REGISTRAR)


def _plant_swap(store: Store, family: FamilyStore) -> str:
    """An unrelated participant registered as the child of FAM03's parents; their sample."""
    study = family.study
    f, m, _ = study.families["FAM03"]
    in_family = {x for a, b, c in study.families.values() for x in (a, b, *c)}
    nid = study.national_ids
    year = [int(x[6:10]) for x in nid]
    stranger = next(
        i for i in range(len(nid)) if i not in in_family and year[i] >= max(year[f], year[m]) + 15
    )
    register_family(
        store,
        REGISTRAR,
        [
            PedRow("SWAP", nid[f], sex="1"),
            PedRow("SWAP", nid[m], sex="2"),
            PedRow("SWAP", nid[stranger], nid[f], nid[m]),
        ],
    )
    return study.sample_ids[stranger]


@pytest.fixture
def family_app(family_store_rw: FamilyStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The service over a copy of the family study with web accounts, the swap planted
    and the family checks run twice."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    path = family_store_rw.path
    with Store(path) as store:
        admin = Principal("admin", Role.ADMIN)
        for role in (Role.REGISTRAR, Role.RESEARCHER, Role.AUDITOR):
            create_account(store, admin, ACCOUNTS[role], role, PASSWORD, client="t")
        store.con.execute("UPDATE web_account SET must_change = FALSE")
        sample = _plant_swap(store, family_store_rw)
        run_family_checks(store, REGISTRAR)
        run_family_checks(store, REGISTRAR)
    for p in (path, Path(str(path) + ".key")):
        p.chmod(0o600)
    application = create_app(path, secret_key=SECRET)
    application.state.sample = sample  # type: ignore[attr-defined]
    yield application
    application.state.service.store.close()  # type: ignore[attr-defined]


def _section(html: str) -> str:
    m = re.search(r'<section id="sample-qc">(.*?)</section>', html, re.S)
    assert m, "no Sample QC section"
    return m.group(1)


def test_participant_page__sample_qc_shows_the_swap_as_failed(family_app: object) -> None:
    sample = family_app.state.sample  # type: ignore[attr-defined]
    con = family_app.state.service.store.con  # type: ignore[attr-defined]
    pid, stored = con.execute(
        "SELECT participant_id, family_check FROM sample_qc JOIN genotype_sample"
        " USING (sample_id) WHERE sample_id = ?",
        [sample],
    ).fetchone()
    assert stored == "fail"
    checks = con.execute(
        "SELECT check_name, status, detail FROM family_check WHERE sample_id = ?", [sample]
    ).fetchall()
    staff = logged_in(family_app, Role.REGISTRAR)
    staff.get("/lang/en")
    page = staff.get(f"/participants/{pid}")
    assert page.status_code == 200
    section = _section(page.text)
    assert f"Sample {sample}" in section
    verdict = re.search(r'<dd class="qc-verdict">(.*?)</dd>', section, re.S)
    assert verdict
    assert verdict.group(1).strip() == "fail"
    assert re.search(r'<dd class="family-check">fail \(', section)
    assert "No workflow QC loaded" in section
    # one table row per stored check (a rerun added none), with its status and detail
    rows = re.findall(r'<tr class="check-(\w+)">(.*?)</tr>', section, re.S)
    assert sorted(s for s, _ in rows) == sorted(s for _, s, _ in checks)
    for _name, status, detail in checks:
        assert any(s == status and html.escape(detail) in body for s, body in rows), detail
    # the Chinese page says it in Chinese
    staff.get("/lang/zh_CN")
    zh = _section(staff.get(f"/participants/{pid}").text)
    assert "样本质控" in zh
    assert "未通过" in zh


@pytest.mark.parametrize("role", [Role.RESEARCHER, Role.AUDITOR])
def test_participant_page__sample_qc_is_staff_only(family_app: object, role: Role) -> None:
    sample = family_app.state.sample  # type: ignore[attr-defined]
    con = family_app.state.service.store.con  # type: ignore[attr-defined]
    (pid,) = con.execute(
        "SELECT participant_id FROM genotype_sample WHERE sample_id = ?", [sample]
    ).fetchone()
    page = logged_in(family_app, role).get(f"/participants/{pid}")
    assert page.status_code == 403
    assert 'id="sample-qc"' not in page.text
    assert sample not in page.text


def test_participant_page__sample_qc_shows_workflow_figures(
    family_app: object, tmp_path: Path
) -> None:
    from biobank.sequencing.sampleqc import STORED_COLUMNS, load_sample_qc

    sample = family_app.state.sample  # type: ignore[attr-defined]
    store = family_app.state.service.store  # type: ignore[attr-defined]
    planted = {"sample_id": sample, "n_sites": "4000", "n_called": "3893", "call_rate": "0.97325",
               "tstv": "2.0871", "mean_depth": "31.46", "qc_pass": "true"}  # fmt: skip
    table = tmp_path / "sample_qc.tsv"
    table.write_text(
        "\t".join(STORED_COLUMNS) + "\n" + "\t".join(planted.get(c, "") for c in STORED_COLUMNS),
        encoding="utf-8",
    )
    load_sample_qc(store, table, principal=REGISTRAR)
    (pid,) = store.con.execute(
        "SELECT participant_id FROM genotype_sample WHERE sample_id = ?", [sample]
    ).fetchone()
    staff = logged_in(family_app, Role.REGISTRAR)
    staff.get("/lang/en")
    section = _section(staff.get(f"/participants/{pid}").text)
    assert "3893 / 4000" in section
    assert f"{float(planted['call_rate']):.4f}" in section
    assert f"{float(planted['tstv']):.2f}" in section
    assert f"{float(planted['mean_depth']):.1f}" in section
    assert re.search(r"<dt>Workflow QC</dt><dd>pass</dd>", section)
    # the workflow passed the sample, the failed family check still fails it overall
    verdict = re.search(r'<dd class="qc-verdict">(.*?)</dd>', section, re.S)
    assert verdict
    assert verdict.group(1).strip() == "fail"
