"""Tests for biobank.clinical.load: the OMOP-style clinical loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import CLINICAL, ClinicalStore, build_clinical_store

from biobank.clinical.load import load_clinical
from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ImportRejected
from biobank.core.store import Store

REGISTRAR = Principal("reg", Role.REGISTRAR)
TABLES = (
    "clinical_person",
    "clinical_condition",
    "clinical_measurement",
    "clinical_observation_period",
    "clinical_death",
)


def _counts(store: Store) -> dict[str, int]:
    out = {}
    for table in (*TABLES, "provenance", "audit_log"):
        row = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        out[table] = int(row[0])
    return out


def test_load_clinical__maps_national_ids_to_pseudonyms(clinical_store: ClinicalStore) -> None:
    with Store(clinical_store.path) as store:
        rows = store.con.execute(
            "SELECT participant_id, sex, year_of_birth FROM clinical_person ORDER BY year_of_birth"
        ).fetchall()
        assert [r[0] for r in rows] == [clinical_store.pid(i) for i in range(1, 11)]
        assert rows[0][1:] == ("male", 1950)
        codes = store.con.execute(
            "SELECT code, code_compact FROM clinical_condition WHERE participant_id = ?",
            [clinical_store.pid(2)],
        ).fetchall()
        assert codes == [("E11.900x001", "E11900X001")]


def test_load_clinical__stores_no_direct_identifier(clinical_store: ClinicalStore) -> None:
    with Store(clinical_store.path) as store:
        for table in TABLES:
            text = store.con.execute(f"SELECT * FROM {table}").pl().write_csv()
            for national_id, _ in clinical_store.ids:
                assert national_id not in text
                assert national_id[6:14] not in text.replace("-", "")  # no full birth date
        columns = {
            r[0]
            for r in store.con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name LIKE 'clinical_%'"
            ).fetchall()
        }
    assert not columns & {"person_source_value", "month_of_birth", "day_of_birth", "national_id"}


def test_load_clinical__reload_is_a_noop(clinical_store: ClinicalStore) -> None:
    with Store(clinical_store.path) as store:
        before = _counts(store)
        result = load_clinical(store, CLINICAL / "good", principal=REGISTRAR)
        assert result.already_loaded
        assert _counts(store) == before


def test_load_clinical__changed_files_add_only_new_rows(
    clinical_store: ClinicalStore, tmp_path: Path
) -> None:
    folder = tmp_path / "more"
    shutil.copytree(CLINICAL / "good", folder)
    with open(folder / "measurement.csv", "a", encoding="utf-8") as fh:
        fh.write("211,2,HbA1c,2016-02-01,7.7,%\n")
    with Store(clinical_store.path) as store:
        before = _counts(store)
        result = load_clinical(store, folder, principal=REGISTRAR)
        after = _counts(store)
    assert not result.already_loaded
    assert (result.persons, result.conditions, result.measurements) == (0, 0, 1)
    assert after["clinical_measurement"] == before["clinical_measurement"] + 1
    assert after["clinical_condition"] == before["clinical_condition"]
    assert after["provenance"] == before["provenance"] + 1


def test_load_clinical__rejects_every_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    cs = build_clinical_store(tmp_path / "s.duckdb", load=False)
    with Store(cs.path) as store:
        before = _counts(store)
        with pytest.raises(ImportRejected, match="problems found, nothing was written") as info:
            load_clinical(store, CLINICAL / "bad", principal=REGISTRAR)
        assert _counts(store) == before
    found = {(Path(p.file or "").name, p.line, p.field) for p in info.value.problems}
    assert found == {
        ("person.csv", 3, "gender_source_value"),
        ("person.csv", 4, "person_source_value"),  # check character
        ("person.csv", 5, "year_of_birth"),  # disagrees with the ID
        ("person.csv", 6, "person_source_value"),  # not registered
        ("condition_occurrence.csv", 3, "condition_source_value"),
        ("condition_occurrence.csv", 4, "condition_start_date"),
        ("condition_occurrence.csv", 5, "person_id"),
        ("condition_occurrence.csv", 6, "condition_start_date"),  # before birth
        ("measurement.csv", 3, "value_as_number"),
        ("observation_period.csv", 2, "observation_period_end_date"),
    }
    message = str(info.value)
    assert "person 11 is not a registered participant" in message
    assert "110105194512018820" not in message  # identity numbers are masked
    assert "110105********8820" in message


def test_load_clinical__rejects_sex_that_disagrees_with_registry(tmp_path: Path) -> None:
    cs = build_clinical_store(tmp_path / "s.duckdb", load=False)
    folder = tmp_path / "c"
    shutil.copytree(CLINICAL / "good", folder)
    text = (folder / "person.csv").read_text().replace("1955,7,7", "1955,7,7").splitlines()
    text[2] = text[2].replace(",F,", ",M,")
    (folder / "person.csv").write_text("\n".join(text) + "\n")
    with Store(cs.path) as store, pytest.raises(ImportRejected, match="registry has this"):
        load_clinical(store, folder, principal=REGISTRAR)


def test_load_clinical__missing_required_file_is_named(tmp_path: Path) -> None:
    cs = build_clinical_store(tmp_path / "s.duckdb", load=False)
    folder = tmp_path / "c"
    shutil.copytree(CLINICAL / "good", folder)
    (folder / "condition_occurrence.csv").unlink()
    with Store(cs.path) as store, pytest.raises(ImportRejected, match=r"condition_occurrence\.csv"):
        load_clinical(store, folder, principal=REGISTRAR)


def test_load_clinical__gb18030_file_is_read(tmp_path: Path) -> None:
    cs = build_clinical_store(tmp_path / "s.duckdb", load=False)
    folder = tmp_path / "c"
    shutil.copytree(CLINICAL / "good", folder)
    text = (folder / "measurement.csv").read_text(encoding="utf-8").replace("%", "百分比")
    (folder / "measurement.csv").write_bytes(text.encode("gb18030"))
    with Store(cs.path) as store:
        load_clinical(store, folder, principal=REGISTRAR)
        units = {
            r[0] for r in store.con.execute("SELECT unit FROM clinical_measurement").fetchall()
        }
    assert "百分比" in units


def test_load_clinical__researcher_may_not_load(tmp_path: Path) -> None:
    cs = build_clinical_store(tmp_path / "s.duckdb", load=False)
    with Store(cs.path) as store, pytest.raises(AccessDenied, match="load_data"):
        load_clinical(store, CLINICAL / "good", principal=Principal("rita", Role.RESEARCHER))


def test_load_clinical__is_audited(clinical_store: ClinicalStore) -> None:
    with Store(clinical_store.path) as store:
        rows = store.con.execute(
            "SELECT user_name, CAST(detail AS VARCHAR) FROM audit_log"
            " WHERE action = 'clinical.load'"
        ).fetchall()
    assert len(rows) == 1
    assert rows[0][0] == "reg"
    assert '"conditions": 11' in rows[0][1]


def test_cli__load_clinical_reports_counts_then_noop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from biobank.cli import main

    cs = build_clinical_store(tmp_path / "s.duckdb", load=False)
    args = ["--store", str(cs.path), "--user", "reg", "load-clinical", str(CLINICAL / "good")]
    assert main([*args, "-f", "json"]) == 0
    first = json.loads(capsys.readouterr().out)[0]
    assert (first["persons"], first["conditions"], first["deaths"]) == (10, 11, 3)
    assert main([*args, "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["already_loaded"] is True
    assert (
        main(["--store", str(cs.path), "--user", "reg", "load-clinical", str(CLINICAL / "bad")])
        == 1
    )
    assert "problems found, nothing was written" in capsys.readouterr().err
