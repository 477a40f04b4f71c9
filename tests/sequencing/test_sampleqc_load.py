"""Tests for loading the workflow's sample QC table (biobank.sequencing.sampleqc.load_sample_qc)."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_support import USERS, loaded, loaded_template, store, users  # noqa: F401

from biobank.core import audit
from biobank.core.errors import AccessDenied, ImportRejected, NotFoundError
from biobank.core.store import Store
from biobank.sequencing.sampleqc import STORED_COLUMNS, load_sample_qc

HEADER = "\t".join(
    [
        "sample_id", "n_sites", "n_called", "call_rate", "n_hom_ref", "n_het", "n_hom_alt",
        "het_rate", "het_hom_ratio", "tstv", "mean_depth", "x_ratio", "y_ratio",
        "registered_sex", "inferred_sex", "sex_check", "max_kinship", "related_to", "flags",
        "qc_pass",
    ]
)  # fmt: skip


def _row(sample: str, *, call_rate: str = "0.99", flags: str = "", qc_pass: str = "true") -> str:
    return "\t".join(
        [sample, "358", "354", call_rate, "100", "160", "94", "0.45", "1.7", "2.1", "19.8",
         "1.0", "", "female", "female", "match", "-0.01", "", flags, qc_pass]
    )  # fmt: skip


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _count(store: Store, sql: str) -> int:
    row = store.con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_load_sample_qc__stores_rows_and_is_idempotent(loaded: Store, tmp_path: Path) -> None:
    table = _table(
        tmp_path / "qc.tsv",
        [_row("S0001"), _row("S0002", call_rate="0.80", flags="low_call_rate", qc_pass="false")],
    )
    first = load_sample_qc(loaded, table, principal=USERS["registrar"])
    assert (first.n_samples, first.n_failed, first.already_loaded) == (2, 1, False)
    stored = loaded.con.execute(
        "SELECT sample_id, call_rate, flags, qc_pass FROM sample_qc ORDER BY sample_id"
    ).fetchall()
    assert stored == [("S0001", 0.99, None, True), ("S0002", 0.8, "low_call_rate", False)]
    entries = audit.verify(loaded.con).entries
    again = load_sample_qc(loaded, table, principal=USERS["registrar"])
    assert again.already_loaded
    assert again.load_id == first.load_id
    assert _count(loaded, "SELECT count(*) FROM sample_qc") == 2
    assert audit.verify(loaded.con).entries == entries


def test_load_sample_qc__newer_run_replaces_sample_rows(loaded: Store, tmp_path: Path) -> None:
    load_sample_qc(loaded, _table(tmp_path / "a.tsv", [_row("S0001")]), principal=USERS["admin"])
    load_sample_qc(
        loaded,
        _table(tmp_path / "b.tsv", [_row("S0001", call_rate="0.5", qc_pass="false")]),
        principal=USERS["admin"],
    )
    assert loaded.con.execute("SELECT call_rate, qc_pass FROM sample_qc").fetchall() == [
        (0.5, False)
    ]


def test_load_sample_qc__rejects_every_bad_row_and_writes_nothing(
    loaded: Store, tmp_path: Path
) -> None:
    table = _table(
        tmp_path / "bad.tsv",
        [_row("S0001", call_rate="high"), _row("S0002", qc_pass="maybe"), _row("S0001")],
    )
    with pytest.raises(ImportRejected, match="3 problems") as info:
        load_sample_qc(loaded, table, principal=USERS["registrar"])
    found = {(p.line, p.field) for p in info.value.problems}
    assert found == {(2, "call_rate"), (3, "qc_pass"), (4, "sample_id")}
    assert _count(loaded, "SELECT count(*) FROM sample_qc") == 0
    assert _count(loaded, "SELECT count(*) FROM provenance WHERE kind = 'sample-qc'") == 0


def test_load_sample_qc__names_missing_columns(loaded: Store, tmp_path: Path) -> None:
    path = tmp_path / "short.tsv"
    path.write_text("sample_id\tcall_rate\nS0001\t0.9\n", encoding="utf-8")
    with pytest.raises(ImportRejected, match="missing column 'qc_pass'"):
        load_sample_qc(loaded, path, principal=USERS["registrar"])


def test_load_sample_qc__refuses_unregistered_samples(loaded: Store, tmp_path: Path) -> None:
    table = _table(tmp_path / "qc.tsv", [_row("S0001"), _row("S9999")])
    with pytest.raises(NotFoundError, match="S9999"):
        load_sample_qc(loaded, table, principal=USERS["registrar"])
    assert _count(loaded, "SELECT count(*) FROM sample_qc") == 0


@pytest.mark.parametrize("role", ["researcher", "auditor"])
def test_load_sample_qc__needs_load_permission(loaded: Store, tmp_path: Path, role: str) -> None:
    with pytest.raises(AccessDenied, match="load_data"):
        load_sample_qc(loaded, _table(tmp_path / "qc.tsv", [_row("S0001")]), principal=USERS[role])


def test_stored_columns_are_columns_of_the_workflow_table() -> None:
    assert set(STORED_COLUMNS) <= set(HEADER.split("\t"))
