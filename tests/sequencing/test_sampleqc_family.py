"""Family checks in sample_qc (biobank.sequencing.sampleqc_family) beside the workflow's QC."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest
from registry_support import USERS, loaded, loaded_template, store, users  # noqa: F401

from biobank.core.store import Store
from biobank.sequencing.sampleqc import STORED_COLUMNS, load_sample_qc
from biobank.sequencing.sampleqc_family import merge_family_checks, summarise_family_checks

WHEN = dt.datetime(2026, 12, 1, 9, 30)


def _qc_table(path: Path, rows: dict[str, bool]) -> Path:
    """A workflow QC table: every stored column, ``qc_pass`` as given per sample."""
    columns = list(STORED_COLUMNS)
    lines = ["\t".join(columns)]
    for sample, ok in rows.items():
        values = {c: "1" for c, kind in STORED_COLUMNS.items() if kind in {"int", "float"}}
        values |= {"sample_id": sample, "qc_pass": str(ok).lower(), "flags": "" if ok else "x"}
        lines.append("\t".join(values.get(c, "") for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check(sample: str, family: str, name: str, status: str, **kw: Any) -> dict[str, Any]:
    return {
        "sample_id": sample,
        "family_id": family,
        "check_name": name,
        "status": status,
        "detail": kw.get("detail", f"{name} {status}"),
        "checked_at": kw.get("checked_at", WHEN),
    }


def _rows(store: Store) -> dict[str, dict[str, Any]]:
    cur = store.con.execute("SELECT * FROM sample_qc ORDER BY sample_id")
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def test_summarise_family_checks__fail_wins_then_pass_then_not_tested() -> None:
    later = WHEN + dt.timedelta(hours=1)
    out = summarise_family_checks(
        [
            _check("S1", "F1", "mendel", "pass"),
            _check("S1", "F2", "relatedness", "fail", detail="S9 not related", checked_at=later),
            _check("S2", "F1", "sex", "not_tested"),
            _check("S2", "F1", "mendel", "pass"),
            _check("S3", "F1", "sex", "not_tested"),
            _check(None, "F1", "sex", "not_tested"),  # type: ignore[arg-type]
        ]
    )
    assert sorted(out) == ["S1", "S2", "S3"]
    assert (out["S1"].status, out["S2"].status, out["S3"].status) == ("fail", "pass", "not_tested")
    assert out["S1"].detail.startswith("F2 relatedness failed: S9 not related")
    assert "passed: F1 mendel" in out["S1"].detail
    assert out["S1"].checked_at == later
    assert "not tested: F1 sex" in out["S2"].detail
    with pytest.raises(ValueError, match="not one of"):
        summarise_family_checks([_check("S1", "F1", "sex", "unknown")])


def test_merge_family_checks__verdict_rows_without_workflow_qc_and_reruns(
    loaded: Store,
    tmp_path: Path,
) -> None:
    load_sample_qc(loaded, _qc_table(tmp_path / "a.tsv", {"S0001": True}), principal=USERS["admin"])
    # S0001 has workflow QC (passed), S0002 none: a failed family check fails both
    failing = [
        _check("S0001", "F1", "mendel", "fail", detail="40 Mendelian errors"),
        _check("S0002", "F1", "relatedness", "pass"),
        _check("S0002", "F1", "sex", "fail"),
    ]
    merged = merge_family_checks(loaded, failing, samples=["S0001", "S0002"])
    assert (merged.samples, merged.failed, merged.cleared) == (2, 2, 0)
    rows = _rows(loaded)
    assert rows["S0001"]["workflow_qc_pass"] is True
    assert (rows["S0001"]["family_check"], rows["S0001"]["qc_pass"]) == ("fail", False)
    assert "40 Mendelian errors" in rows["S0001"]["family_check_detail"]
    assert rows["S0001"]["family_checked_at"] == WHEN
    assert rows["S0002"]["load_id"] is None
    assert (rows["S0002"]["family_check"], rows["S0002"]["qc_pass"]) == ("fail", False)
    # a rerun replaces the summary: one row per sample, the verdicts follow
    passing = [_check("S0001", "F1", "mendel", "pass"), _check("S0002", "F1", "sex", "pass")]
    merge_family_checks(loaded, passing, samples=["S0001", "S0002"])
    merge_family_checks(loaded, passing, samples=["S0001", "S0002"])
    rows = _rows(loaded)
    assert len(rows) == 2
    assert (rows["S0001"]["family_check"], rows["S0001"]["qc_pass"]) == ("pass", True)
    assert (rows["S0002"]["family_check"], rows["S0002"]["qc_pass"]) == ("pass", None)
    # a newer workflow QC keeps the family summary and its verdict
    merge_family_checks(loaded, failing[:1], samples=["S0001"])
    load_sample_qc(loaded, _qc_table(tmp_path / "b.tsv", {"S0001": True}), principal=USERS["admin"])
    assert (_rows(loaded)["S0001"]["family_check"], _rows(loaded)["S0001"]["qc_pass"]) == (
        "fail",
        False,
    )
    # no family check left: the summary goes, a row of family checks only goes with it
    cleared = merge_family_checks(loaded, [], samples=["S0001", "S0002"])
    assert cleared.cleared == 2
    rows = _rows(loaded)
    assert list(rows) == ["S0001"]
    assert (rows["S0001"]["family_check"], rows["S0001"]["qc_pass"]) == (None, True)


def test_merge_family_checks__is_one_transaction(loaded: Store) -> None:
    bad = [_check("S0001", "F1", "mendel", "pass"), _check("S0002", "F1", "sex", "pass")]
    bad[1]["checked_at"] = None  # violates the table's CHECK: nothing may be written
    with pytest.raises(duckdb.ConstraintException, match="CHECK constraint"):
        merge_family_checks(loaded, bad, samples=["S0001", "S0002"])
    assert _rows(loaded) == {}
