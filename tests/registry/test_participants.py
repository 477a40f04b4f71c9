"""Tests for the registry: participants, specimens, storage, events, imports, sample sheets."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from registry_support import (
    CHEN,
    CONSENT_HEADER,
    DATA,
    LI,
    OUYANG,
    PARTICIPANT_HEADER,
    SPECIMEN_HEADER,
    WANG,
    loaded,
    loaded_template,
    snapshot,
    store,
    users,
    write_csv,
)

from biobank.core.access import Principal, os_login
from biobank.core.errors import (
    ConflictError,
    ConsentError,
    ImportRejected,
    NotFoundError,
    StoreError,
    ValidationError,
)
from biobank.core.ids import center_key, make_label, pseudonym
from biobank.core.store import Store
from biobank.registry import events
from biobank.registry.consent import permitted_participants
from biobank.registry.imports import (
    import_all,
    import_consents,
    import_participants,
    import_specimens,
)
from biobank.registry.inventory import (
    consume_specimen,
    destroy_specimen,
    get_specimen,
    label_barcode_svg,
    link_sequencing_sample,
    list_specimens,
    move_specimen,
    resolve_samples,
    ship_specimen,
    update_specimen,
)
from biobank.registry.participants import (
    find_participant,
    get_participant,
    list_participants,
    register_participant,
    update_participant,
)
from biobank.registry.recontact import read_recontact
from biobank.registry.specimens import add_specimen
from biobank.sequencing.sheet import sample_sheet, write_sample_sheet

__all__ = ["loaded", "loaded_template", "store", "users"]  # fixtures used by the tests below

Users = dict[str, Principal]


def pid(store: Store, national_id: str) -> str:
    return pseudonym(national_id, center_key(store.path))


# -- participants and privacy -------------------------------------------------
def test_import_all__registers_fixture_with_pseudonyms(loaded: Store) -> None:
    ids = {r[0] for r in loaded.con.execute("SELECT participant_id FROM participant").fetchall()}
    assert ids == {pid(loaded, n) for n in (WANG, LI, CHEN, OUYANG)}
    row = loaded.con.execute(
        "SELECT sex, birth_year, site FROM participant WHERE participant_id = ?",
        [pid(loaded, WANG)],
    ).fetchone()
    assert row == ("female", 1965, "BJ-CY")
    cohorts = loaded.con.execute(
        "SELECT cohort FROM participant_cohort WHERE participant_id = ? ORDER BY 1",
        [pid(loaded, WANG)],
    ).fetchall()
    assert cohorts == [("CAD",), ("T2D",)]


def test_import__direct_identifiers_never_stored_in_clear(loaded: Store) -> None:
    secrets = [WANG, LI, CHEN, OUYANG, "王秀英", "李建国", "欧阳", "13800138000", "1965-03-12"]
    con = loaded.con
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    for table in tables:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
            ).fetchall()
        ]
        for col in cols:
            values = con.execute(f"SELECT CAST({col} AS VARCHAR) FROM {table}").fetchall()
            for (value,) in values:
                for secret in secrets:
                    assert secret not in (value or ""), f"{secret!r} found in {table}.{col}"


def test_read_recontact__decrypts_and_audits(loaded: Store, users: Users) -> None:
    p = pid(loaded, OUYANG)
    record = read_recontact(loaded, users["registrar"], p, reason="follow-up call")
    assert record["name"] == "欧阳, 伟"
    assert record["national_id"] == OUYANG
    assert record["phone"] == "+8613912345678"
    last = loaded.con.execute(
        "SELECT action, target, user_name FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    assert last == ("recontact.read", p, "reg1")


def test_read_recontact__wrong_key_is_refused(
    loaded: Store, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    wang = pid(loaded, WANG)
    monkeypatch.setenv("BIOBANK_CENTER_KEY", "ab" * 32)
    with pytest.raises(StoreError, match="cannot decrypt"):
        read_recontact(loaded, users["registrar"], wang, reason="x")


def test_register_participant__same_person_twice_is_noop_and_conflict_detected(
    store: Store, users: Users
) -> None:
    args = dict(
        national_id=WANG,
        name="王秀英",
        sex="female",
        birth_date="1965-03-12",
        enrolment_date="2023-04-01",
        site="BJ-CY",
    )
    first = register_participant(store, users["registrar"], **args)  # type: ignore[arg-type]
    before = snapshot(store)
    assert register_participant(store, users["registrar"], **args) == first  # type: ignore[arg-type]
    assert snapshot(store) == before
    with pytest.raises(ConflictError, match=r"already registered .* site"):
        register_participant(store, users["registrar"], **{**args, "site": "SH-XH"})  # type: ignore[arg-type]


def test_register_participant__typo_in_national_id_creates_no_second_person(
    store: Store, users: Users
) -> None:
    typo = WANG[:-2] + ("3" if WANG[-2] != "3" else "4") + WANG[-1]
    with pytest.raises(ImportRejected, match="check character"):
        register_participant(
            store,
            users["registrar"],
            national_id=typo,
            name="王秀英",
            sex="female",
            birth_date="1965-03-12",
            enrolment_date="2023-04-01",
            site="BJ-CY",
        )
    assert store.con.execute("SELECT count(*) FROM participant").fetchone() == (0,)


def test_update_participant__site_cohorts_and_phone(loaded: Store, users: Users) -> None:
    p = pid(loaded, LI)
    changed = update_participant(
        loaded,
        users["registrar"],
        p,
        reason="moved to another hospital",
        site="BJ-HD",
        cohorts=["CAD"],
        phone="13911112222",
    )
    assert set(changed) == {"site", "cohorts", "phone"}
    shown = get_participant(loaded, users["registrar"], p)
    assert shown["site"] == "BJ-HD"
    assert shown["cohorts"] == "CAD"
    assert read_recontact(loaded, users["registrar"], p, reason="check")["phone"] == "13911112222"


def test_find_participant__by_national_id(loaded: Store, users: Users) -> None:
    assert find_participant(loaded, users["registrar"], CHEN) == pid(loaded, CHEN)
    with pytest.raises(NotFoundError, match=r"110105\*+"):
        find_participant(loaded, users["registrar"], "11010519491231002X")


def test_get_participant__labels_in_chinese(loaded: Store, users: Users) -> None:
    shown = get_participant(loaded, users["registrar"], pid(loaded, WANG), lang="zh-CN")
    assert shown["sex"] == "女"
    assert shown["consent_codes"] == "GRU;IRB"
    assert shown["specimens"] == 3


def test_list_participants__filters(loaded: Store, users: Users) -> None:
    rows = list_participants(loaded, users["registrar"], cohort="T2D")
    assert {r["participant_id"] for r in rows} == {pid(loaded, WANG), pid(loaded, LI)}
    rows = list_participants(loaded, users["registrar"], sex="male", consented_for="HMB")
    assert [r["participant_id"] for r in rows] == [pid(loaded, LI)]


def test_list_participants__rejects_unknown_sex_filter(loaded: Store, users: Users) -> None:
    # a typo must not silently return an empty list
    with pytest.raises(ValidationError, match="sex 'mael' is not one of: female, male"):
        list_participants(loaded, users["registrar"], sex="mael")


# -- imports: all or nothing -------------------------------------------------
def test_import_participants__every_bad_row_reported_and_nothing_written(
    store: Store, users: Users, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        PARTICIPANT_HEADER,
        [
            f"{WANG},王秀英,female,1965-03-12,13800138000,2023-04-01,BJ-CY,T2D",
            f"{LI[:-1]}0,李建国,male,1978-05-21,,2023-05-15,SH-XH,",  # bad check character
            f"{CHEN},陈静,male,1989-11-30,,2024-01-10,GZ-TH,",  # sex differs from the ID
            f"{OUYANG},欧阳伟,male,1992-07-05,,2024-02-20,CD-WH,",  # birth date differs
            f"{WANG},王秀英,female,1965-03-12,,2023-04-01,BJ-CY,",  # same person again
            "11010519491231002X,赵敏,female,1949-12-31,,2099-01-01,BJ-CY,",  # future enrolment
        ],
    )
    before = snapshot(store)
    with pytest.raises(ImportRejected) as info:
        import_participants(store, users["registrar"], path)
    got = {(p.line, p.field) for p in info.value.problems}
    assert got == {
        (3, "national_id"),
        (4, "sex"),
        (5, "birth_date"),
        (6, "national_id"),
        (7, "enrolment_date"),
    }
    assert all(p.file == str(path) for p in info.value.problems)
    assert "5 problems found, nothing was written" in str(info.value)
    assert LI not in str(info.value)  # identity numbers are masked in messages
    assert snapshot(store) == before


def test_import_participants__reimport_same_file_is_noop(loaded: Store, users: Users) -> None:
    before = snapshot(loaded)
    result = import_participants(loaded, users["registrar"], DATA / "participants.csv")
    assert result.already_loaded
    assert snapshot(loaded) == before


def test_import__same_records_in_another_file_are_noop(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    lines = (DATA / "specimens.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "specimens_again.csv"
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n", encoding="utf-8")
    before = snapshot(loaded)
    result = import_specimens(loaded, users["registrar"], path)
    assert (result.created, result.unchanged, result.already_loaded) == (0, 9, False)
    after = snapshot(loaded)
    assert after["state"] == before["state"]
    assert after["events"] == before["events"]


def test_import__conflicting_content_is_rejected(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        CONSENT_HEADER,
        [f"{LI},v1,2023-05-15,GRU,,"],  # v1 was registered as HMB;NPU
    )
    before = snapshot(loaded)
    with pytest.raises(ImportRejected, match="registered with different duo_codes"):
        import_consents(loaded, users["registrar"], path)
    assert snapshot(loaded) == before


def test_import_consents__withdrawal_date_appearing_records_withdrawal(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    assert pid(loaded, LI) in permitted_participants(loaded.con, "HMB")
    path = write_csv(
        tmp_path / "c.csv", CONSENT_HEADER, [f"{LI},v1,2023-05-15,HMB;NPU,,2024-12-01"]
    )
    result = import_consents(loaded, users["registrar"], path)
    assert (result.created, result.updated) == (0, 1)
    assert pid(loaded, LI) not in permitted_participants(loaded.con, "HMB")


def test_import_consents__bad_rows(store: Store, users: Users, tmp_path: Path) -> None:
    import_participants(store, users["registrar"], DATA / "participants.csv")
    path = write_csv(
        tmp_path / "c.csv",
        CONSENT_HEADER,
        [
            "11010519491231002X,v1,2020-01-01,GRU,,",  # unknown participant
            f"{WANG},v1,2023-04-01,DS,,",  # DS without disease
            f"{LI},v1,2023-05-15,GRU;HMB,,",  # two primary codes
            f"{CHEN},v1,2024-01-10,HMB;XYZ,,",  # unknown code
            f"{OUYANG},v1,2024-02-20,POA,,2024-01-01",  # withdrawn before signed
            f"{OUYANG},v2,1960-01-01,HMB,,",  # signed before birth
        ],
    )
    with pytest.raises(ImportRejected) as info:
        import_consents(store, users["registrar"], path)
    got = {(p.line, p.field) for p in info.value.problems}
    assert got == {
        (2, "national_id"),
        (3, "disease"),
        (4, "duo_codes"),
        (5, "duo_codes"),
        (6, "withdrawn_date"),
        (7, "signed_date"),
    }
    assert store.con.execute("SELECT count(*) FROM consent").fetchone() == (0,)


def _spec(label: str, nid: str, **kw: str) -> str:
    values = {
        "label": label,
        "national_id": nid,
        "parent_label": "",
        "specimen_type": "whole_blood",
        "collected_at": "2023-06-01T09:00",
        "anatomical_site": "",
        "quantity": "5",
        "unit": "mL",
        "status": "available",
        "freezer": "",
        "rack": "",
        "box": "",
        "position": "",
        "sequencing_sample_id": "",
    }
    values.update(kw)
    return ",".join(values.values())


def test_import_specimens__every_rule_reported_and_nothing_written(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    lab = [make_label("BB", 100 + i) for i in range(12)]
    rows = [
        _spec(lab[0], WANG, specimen_type="blood"),  # 2 unknown vocabulary
        _spec(lab[1], WANG, collected_at="1960-01-01T08:00"),  # 3 before birth
        _spec(lab[2], WANG, collected_at="2099-01-01T08:00"),  # 4 in the future
        _spec(lab[3], WANG),  # 5 fine
        _spec(lab[3], WANG),  # 6 duplicate label in the file
        _spec("BB00000012", WANG),  # 7 bad check character
        _spec(lab[4], WANG, freezer="F01", rack="R1", box="B01", position="A1"),  # 8 taken (store)
        _spec(lab[5], LI, freezer="F09", rack="R1", box="B01", position="C3"),  # 9 fine
        _spec(lab[6], LI, freezer="F09", rack="R1", box="B01", position="C3"),  # 10 same position
        _spec(lab[7], LI, parent_label="BB0000004H", quantity="9"),  # 11 larger than parent (8 mL)
        _spec(lab[8], CHEN, specimen_type="tissue_ffpe", quantity="3", unit="blocks"),  # 12 no site
        _spec(lab[9], CHEN, sequencing_sample_id="S9999"),  # 13 sequencing a blood tube
        _spec(lab[10], WANG, parent_label=make_label("BB", 999)),  # 14 unknown parent
        _spec(lab[11], WANG, unit="gallons"),  # 15 unknown unit
    ]
    path = write_csv(tmp_path / "s.csv", SPECIMEN_HEADER, rows)
    before = snapshot(loaded)
    with pytest.raises(ImportRejected) as info:
        import_specimens(loaded, users["registrar"], path)
    got = {(p.line, p.field) for p in info.value.problems}
    assert got == {
        (2, "specimen_type"),
        (3, "collected_at"),
        (4, "collected_at"),
        (6, "label"),
        (7, "label"),
        (8, "position"),
        (10, "position"),
        (11, "quantity"),
        (12, "anatomical_site"),
        (13, "sequencing_sample_id"),
        (14, "parent_label"),
        (15, "unit"),
    }
    text = str(info.value)
    assert "larger than what is left of parent BB0000004H" in text
    assert "already taken by BB0000001N" in text
    assert snapshot(loaded) == before


def test_import_specimens__aliquots_together_larger_than_parent_rejected(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    a, b = make_label("BB", 201), make_label("BB", 202)
    path = write_csv(
        tmp_path / "s.csv",
        SPECIMEN_HEADER,
        [
            _spec(a, LI, parent_label="BB0000004H", specimen_type="plasma", quantity="5"),
            _spec(
                b, LI, parent_label="BB0000004H", specimen_type="plasma", quantity="3500", unit="µL"
            ),
        ],
    )
    with pytest.raises(ImportRejected, match=r"line 3.*larger than what is left.*3 mL of 8"):
        import_specimens(loaded, users["registrar"], path)


def test_import_specimens__children_before_parents_in_file_are_accepted(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    parent, child = make_label("BB", 301), make_label("BB", 302)
    path = write_csv(
        tmp_path / "s.csv",
        SPECIMEN_HEADER,
        [
            _spec(
                child,
                LI,
                parent_label=parent,
                specimen_type="plasma",
                quantity="2",
                collected_at="2023-06-01T10:00",
            ),
            _spec(parent, LI),
        ],
    )
    result = import_specimens(loaded, users["registrar"], path)
    assert result.created == 2
    assert get_specimen(loaded, users["registrar"], child)["lineage"] == f"{parent} > {child}"


def test_import__quoted_newline_keeps_line_numbers_and_is_refused_in_a_name(
    store: Store, users: Users, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        PARTICIPANT_HEADER,
        [
            f'{WANG},"王秀英\n(王秀瑛)",female,1965-03-12,,2023-04-01,BJ-CY,',
            f"{LI},李建国,male,1978-05-21,,2023-05-15,,",  # site missing, on line 4
        ],
    )
    with pytest.raises(ImportRejected) as info:
        import_participants(store, users["registrar"], path)
    # the name on line 2 spans two lines (refused: a name is one line); the next row
    # starts on line 4 of the file
    assert [(p.line, p.field) for p in info.value.problems] == [(2, "name"), (4, "site")]
    assert "line break" in info.value.problems[0].message


def test_import__gb18030_file_keeps_chinese_names(
    store: Store, users: Users, tmp_path: Path
) -> None:
    text = (DATA / "participants.csv").read_text(encoding="utf-8")
    path = tmp_path / "participants_gb.csv"
    path.write_bytes(text.encode("gb18030"))
    result = import_participants(store, users["registrar"], path)
    assert (result.created, result.encoding) == (4, "gb18030")
    record = read_recontact(store, users["registrar"], pid(store, WANG), reason="check")
    assert record["name"] == "王秀英"


def test_import__undecodable_file_names_offset_and_writes_nothing(
    store: Store, users: Users, tmp_path: Path
) -> None:
    good = f"{PARTICIPANT_HEADER}\n{WANG},王秀英,female,1965-03-12,,2023-04-01,BJ-CY,\n"
    data = good.encode("utf-8")
    bad = data[:60] + b"\xff\xfe\xff" + data[60:]
    path = tmp_path / "broken.csv"
    path.write_bytes(bad)
    before = snapshot(store)
    with pytest.raises(ValidationError, match=r"broken\.csv.*offset 60"):
        import_participants(store, users["registrar"], path)
    assert snapshot(store) == before


def test_import__missing_and_unknown_columns_are_named(
    store: Store, users: Users, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        "national_id,name,sex,enrolment_date,site,hobby",
        [f"{WANG},王秀英,female,2023-04-01,BJ-CY,chess"],
    )
    with pytest.raises(
        ImportRejected, match=r"missing column: birth_date.*\n.*unknown column: hobby"
    ):
        import_participants(store, users["registrar"], path)


def test_import_all__bad_specimen_rolls_back_participants_too(
    store: Store, users: Users, tmp_path: Path
) -> None:
    folder = tmp_path / "reg"
    shutil.copytree(DATA, folder)
    with open(folder / "specimens.csv", "a", encoding="utf-8") as fh:
        fh.write(_spec(make_label("BB", 500), WANG, specimen_type="lymph") + "\n")
    before = snapshot(store)
    with pytest.raises(ImportRejected, match=r"specimens\.csv, line 11, field 'specimen_type'"):
        import_all(store, users["registrar"], folder)
    assert snapshot(store) == before


def test_import_all__consent_for_unknown_participant_rejected(
    store: Store, users: Users, tmp_path: Path
) -> None:
    folder = tmp_path / "reg"
    shutil.copytree(DATA, folder)
    with open(folder / "consents.csv", "a", encoding="utf-8") as fh:
        fh.write("11010519491231002X,v1,2020-01-01,GRU,,\n")
    with pytest.raises(ImportRejected, match=r"consents\.csv, line 7, field 'national_id'"):
        import_all(store, users["registrar"], folder)
    assert store.con.execute("SELECT count(*) FROM participant").fetchone() == (0,)


@pytest.mark.slow
def test_import__killed_mid_transaction_leaves_store_unchanged(
    store: Store, users: Users, tmp_path: Path
) -> None:
    import_participants(store, users["registrar"], DATA / "participants.csv")
    before = snapshot(store)
    path = store.path
    store.close()
    marker = tmp_path / "paused"
    script = (
        "import sys\n"
        "from biobank.core.store import Store\n"
        "from biobank.core.access import get_principal\n"
        "from biobank.registry.imports import import_all\n"
        f"s = Store({str(path)!r})\n"
        "import_all(s, get_principal(s.con, 'reg1'), sys.argv[1])\n"
    )
    env = {
        **os.environ,
        "BIOBANK_FAULT_INJECT": "import",
        "BIOBANK_FAULT_MARKER": str(marker),
    }
    env.pop("BIOBANK_CENTER_KEY", None)
    env.pop("BIOBANK_KEY_FILE", None)
    proc = subprocess.Popen([sys.executable, "-c", script, str(DATA)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the import ended before reaching the fault point"
            assert time.monotonic() < deadline, "the import never reached the fault point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with Store(path) as reopened:
        assert snapshot(reopened) == before
        assert reopened.con.execute("SELECT count(*) FROM specimen").fetchone() == (0,)


# -- specimens, storage and events ------------------------------------------------
def test_move_specimen__occupied_position_refused_and_move_recorded(
    loaded: Store, users: Users
) -> None:
    reg = users["registrar"]
    with pytest.raises(ConflictError, match="already taken by BB0000003J"):
        move_specimen(
            loaded,
            reg,
            "BB0000001N",
            freezer="F01",
            rack="R1",
            box="B01",
            position="A2",
            reason="reorganise",
        )
    move_specimen(
        loaded,
        reg,
        "BB0000001N",
        freezer="F03",
        rack="R2",
        box="B07",
        position="h12",
        reason="reorganise",
    )
    spec = get_specimen(loaded, reg, "BB0000001N")
    assert (spec["freezer"], spec["rack"], spec["box"], spec["position"]) == (
        "F03",
        "R2",
        "B07",
        "H12",
    )
    row = loaded.con.execute(
        "SELECT action, reason, user_name FROM registry_event WHERE entity_key = 'BB0000001N'"
        " ORDER BY event_id DESC LIMIT 1"
    ).fetchone()
    assert row == ("move", "reorganise", "reg1")


def test_add_specimen__aliquot_larger_than_parent_refused(loaded: Store, users: Users) -> None:
    with pytest.raises(ImportRejected, match="larger than what is left of parent BB0000001N"):
        add_specimen(
            loaded,
            users["registrar"],
            label=make_label("BB", 400),
            participant_id=pid(loaded, WANG),
            parent_label="BB0000001N",
            specimen_type="plasma",
            collected_at="2023-04-01T10:00",
            quantity=9.6,
            unit="mL",
        )
    spec = add_specimen(
        loaded,
        users["registrar"],
        label=make_label("BB", 400),
        participant_id=pid(loaded, WANG),
        parent_label="BB0000001N",
        specimen_type="plasma",
        collected_at="2023-04-01T10:00",
        quantity=9.5,
        unit="mL",
    )
    assert spec.parent_label == "BB0000001N"


def test_add_specimen__collection_before_birth_refused(loaded: Store, users: Users) -> None:
    with pytest.raises(ImportRejected, match="before the participant's birth"):
        add_specimen(
            loaded,
            users["registrar"],
            label=make_label("BB", 401),
            participant_id=pid(loaded, CHEN),
            specimen_type="saliva",
            collected_at="1989-11-29T10:00",
            quantity=1,
            unit="mL",
        )


def test_consume_specimen__partial_then_rest(loaded: Store, users: Users) -> None:
    reg = users["registrar"]
    spec = consume_specimen(
        loaded, reg, "BB0000003J", quantity=5000, unit="ng", reason="library prep"
    )
    assert spec["status"] == "available"
    assert get_specimen(loaded, reg, "BB0000003J")["remaining"] == pytest.approx(15.0)
    with pytest.raises(ConflictError, match="has 15 µg left"):
        consume_specimen(loaded, reg, "BB0000003J", quantity=16, reason="too much")
    spec = consume_specimen(loaded, reg, "BB0000003J", reason="used up")
    assert spec["status"] == "consumed"
    assert spec["freezer"] is None
    with pytest.raises(ConflictError, match="is consumed"):
        consume_specimen(loaded, reg, "BB0000003J", reason="again")


def test_ship_and_destroy__free_positions(loaded: Store, users: Users) -> None:
    reg = users["registrar"]
    ship_specimen(loaded, reg, "BB0000005F", destination="BGI Shenzhen", reason="sequencing")
    destroy_specimen(loaded, reg, "BB00000089", reason="tube cracked")
    # both positions can be reused now
    move_specimen(
        loaded,
        reg,
        "BB0000004H",
        freezer="F01",
        rack="R1",
        box="B01",
        position="A4",
        reason="reuse",
    )
    move_specimen(
        loaded,
        reg,
        "BB0000006D",
        freezer="F02",
        rack="R1",
        box="B01",
        position="A3",
        reason="reuse",
    )
    assert get_specimen(loaded, reg, "BB0000005F")["shipped_to"] == "BGI Shenzhen"
    assert [r["label"] for r in list_specimens(loaded, reg, status="shipped")] == ["BB0000005F"]


def test_events__replay_reproduces_current_state(loaded: Store, users: Users) -> None:
    from biobank.registry.consent import add_consent, withdraw_consent

    reg = users["registrar"]
    move_specimen(
        loaded, reg, "BB0000001N", freezer="F05", rack="R1", box="B1", position="A1", reason="r"
    )
    consume_specimen(loaded, reg, "BB0000007B", quantity=2, reason="r")
    ship_specimen(loaded, reg, "BB0000005F", destination="lab", reason="r")
    withdraw_consent(loaded, reg, pid(loaded, CHEN), reason="participant request")
    add_consent(
        loaded,
        reg,
        pid(loaded, CHEN),
        version="v2",
        signed_date=dt.date(2025, 1, 1),
        duo_codes="HMB",
    )
    update_participant(loaded, reg, pid(loaded, WANG), reason="r", cohorts=["T2D"])
    link_sequencing_sample(loaded, reg, "BB0000007B", "S0003B")
    state = events.current_state(loaded.con)
    assert events.replay(loaded.con) == state
    assert state["specimen"][("BB0000007B",)]["consumed_quantity"] == 2.0
    assert ("P", "CAD") not in state["participant_cohort"]
    # a change that bypasses the event log is visible as a difference
    loaded.con.execute("UPDATE specimen SET status = 'destroyed' WHERE label = 'BB0000004H'")
    assert events.replay(loaded.con) != events.current_state(loaded.con)


# -- sequencing samples -------------------------------------------------------
def test_sequencing_sample__contract_columns(loaded: Store) -> None:
    cols = loaded.con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'sequencing_sample'"
        " ORDER BY column_index"
    ).fetchall()
    assert cols == [
        ("sample_id", "VARCHAR"),
        ("specimen_label", "VARCHAR"),
        ("participant_id", "VARCHAR"),
    ]
    assert loaded.con.execute(
        "SELECT participant_id FROM sequencing_sample WHERE sample_id = 'S0003'"
    ).fetchone() == (pid(loaded, CHEN),)


def test_resolve_samples__maps_and_lists_every_unknown(loaded: Store) -> None:
    assert resolve_samples(loaded.con, ["S0002", "S0001"]) == {
        "S0002": pid(loaded, LI),
        "S0001": pid(loaded, WANG),
    }
    with pytest.raises(NotFoundError, match=r"2 sample ids are not linked.*S0009, S0010"):
        resolve_samples(loaded.con, ["S0001", "S0009", "S0010"])


def test_link_sequencing_sample__refuses_non_dna_and_reuse(loaded: Store, users: Users) -> None:
    with pytest.raises(ValidationError, match="whole_blood"):
        link_sequencing_sample(loaded, users["registrar"], "BB0000001N", "S0100")
    with pytest.raises(ConflictError, match="already linked to BB0000003J"):
        link_sequencing_sample(loaded, users["registrar"], "BB0000005F", "S0001")


# -- sample sheet -------------------------------------------------------------------
def _fastq(path: Path, name: str) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write(f"@{name}\nACGT\n+\nIIII\n")


def test_sample_sheet__matches_workflow_reader_and_skips_withdrawn(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    from biobank.sequencing.launcher import repo_workflow_dir
    from biobank.sequencing.units import read_sample_sheet

    fq = tmp_path / "fastq"
    fq.mkdir()
    for sample in ("S0001", "S0002", "S0004"):
        for read in (1, 2):
            _fastq(
                fq / f"{sample}_L1_R{read}.fastq.gz",
                f"A00123:8:HFLY2DSX2:3:1101:1000:2000 {read}:N:0:ACGT",
            )
    _fastq(fq / "S0002_L2_R1.fastq.gz", "r1/1")
    _fastq(fq / "S0002_L2_R2.fastq.gz", "r1/2")
    export = sample_sheet(loaded, users["registrar"], fastq=fq)
    assert export.withdrawn == ["S0004"]  # OUYANG's current consent is withdrawn
    out = write_sample_sheet(export.rows, tmp_path / "samples.tsv")
    header = out.read_text().splitlines()[0].split("\t")
    assert header == ["sample_id", "unit", "library", "platform", "flowcell", "lane", "fq1", "fq2"]
    sheet = read_sample_sheet(out, schema=repo_workflow_dir() / "schemas" / "samples.schema.yaml")
    units = {(u.sample_id, u.unit) for u in sheet.units}
    assert units == {("S0001", "L1"), ("S0002", "L1"), ("S0002", "L2")}
    flowcells = {(r["sample_id"], r["unit"]): (r["flowcell"], r["lane"]) for r in export.rows}
    assert flowcells[("S0001", "L1")] == ("HFLY2DSX2", "3")
    assert flowcells[("S0002", "L2")] == ("unknown", "1")
    with pytest.raises(ConsentError, match="S0004"):
        sample_sheet(loaded, users["registrar"], fastq=fq, sample_ids=["S0001", "S0004"])
    with pytest.raises(ImportRejected, match="no FASTQ files for sample S0003"):
        sample_sheet(loaded, users["registrar"], fastq=fq, sample_ids=["S0003"])


# -- barcode ----------------------------------------------------------------------------
def test_label_barcode_svg__code128_of_valid_label_only() -> None:
    svg = label_barcode_svg("bb0000001n")
    assert svg.lstrip().startswith("<?xml")
    assert "<svg" in svg
    assert "BB0000001N" in svg
    with pytest.raises(ValidationError, match="check character"):
        label_barcode_svg("BB0000001M")


# -- CLI ------------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path, user: str = "reg1") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOBANK_")}
    return subprocess.run(
        [sys.executable, "-m", "biobank", "--store", "s.duckdb", "--user", user, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_cli__registry_round_trip(tmp_path: Path) -> None:
    assert _cli("init", cwd=tmp_path, user="boss").returncode == 0
    assert (
        _cli("user", "add", "reg1", "--role", "registrar", cwd=tmp_path, user="boss").returncode
        == 0
    )
    assert (
        _cli("user", "add", "res1", "--role", "researcher", cwd=tmp_path, user="boss").returncode
        == 0
    )
    for user in ("reg1", "res1"):  # this login may act as each of them (peer authentication)
        mapped = _cli("user", "map", os_login(), user, cwd=tmp_path, user="boss")
        assert mapped.returncode == 0, mapped.stderr
    proc = _cli("registry", "import-all", str(DATA), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["created"] for r in json.loads(proc.stdout)] == [4, 5, 9]
    proc = _cli(
        "participant",
        "list",
        "--purpose",
        "DS:C50.9",
        "--format",
        "json",
        cwd=tmp_path,
        user="res1",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 3  # GRU, HMB and DS:C50 consents; not the withdrawn one
    proc = _cli(
        "registry", "recontact", "P-AAAAAAAAAAAA", "--reason", "x", cwd=tmp_path, user="res1"
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "error: user 'res1' with role 'researcher' may not recontact_read"
    )
    proc = _cli("specimen", "show", "BB0000003J", "--format", "csv", cwd=tmp_path)
    assert "BB0000001N > BB0000002L > BB0000003J" in proc.stdout
    proc = _cli(
        "specimen", "move", "BB0000003J", "--to", "F01/R1/B01/A1", "--reason", "x", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "already taken by BB0000001N" in proc.stderr
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM specimen").fetchone() == (9,)


# -- the demo generator's registry files (the contract with biobank.testing) ------------
@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_import_all__demo_generator_files_round_trip(
    store: Store, users: Users, tmp_path: Path, encoding: str
) -> None:
    import csv

    from biobank.testing.people import write_registry_for_samples

    samples = [f"S{i:04d}" for i in range(1, 31)]
    write_registry_for_samples(tmp_path / "reg", samples, seed=7, encoding=encoding)
    results = import_all(store, users["registrar"], tmp_path / "reg")
    for result in results:
        path = tmp_path / "reg" / f"{result.kind}.csv"
        with open(path, encoding=encoding, newline="") as fh:
            n_rows = sum(1 for _ in csv.DictReader(fh))
        ascii_only = path.read_bytes().isascii()  # plain ASCII is valid UTF-8 as well
        assert (result.created, result.encoding) == (n_rows, "utf-8" if ascii_only else encoding)
    assert set(resolve_samples(store.con, samples)) == set(samples)
    assert events.replay(store.con) == events.current_state(store.con)
    again = import_all(store, users["registrar"], tmp_path / "reg")
    assert all(r.already_loaded for r in again)


def test_update_specimen__corrections_rechecked(loaded: Store, users: Users) -> None:
    reg = users["registrar"]
    spec = update_specimen(
        loaded,
        reg,
        "BB0000006D",
        reason="typo",
        anatomical_site="left breast",
        collected_at="2024-01-12T11:20",
    )
    assert spec["anatomical_site"] == "left breast"
    with pytest.raises(ValidationError, match="anatomical_site is required"):
        update_specimen(loaded, reg, "BB0000006D", reason="x", anatomical_site="")
    with pytest.raises(ValidationError, match="after an aliquot was made"):
        update_specimen(loaded, reg, "BB0000006D", reason="x", collected_at="2024-01-14T08:00")
    with pytest.raises(ValidationError, match="before the participant's birth"):
        update_specimen(loaded, reg, "BB0000006D", reason="x", collected_at="1980-01-01T08:00")
    consume_specimen(loaded, reg, "BB0000001N", quantity=3, reason="assay")
    with pytest.raises(ValidationError, match=r"already gave 3\.5 mL"):
        update_specimen(loaded, reg, "BB0000001N", reason="x", quantity=3)
    with pytest.raises(ValidationError, match="larger than what is left of parent BB0000001N"):
        update_specimen(loaded, reg, "BB0000002L", reason="x", quantity=7.5)
    update_specimen(loaded, reg, "BB0000002L", reason="re-measured", quantity=6.5)
    assert events.replay(loaded.con) == events.current_state(loaded.con)


def test_sample_sheet__pattern_without_unit_and_missing_mate(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    run = tmp_path / "run7"
    (run / "S0001").mkdir(parents=True)
    (run / "S0002").mkdir()
    for read in (1, 2):
        _fastq(run / "S0001" / f"reads_{read}.fq.gz", "r")
    _fastq(run / "S0002" / "reads_1.fq.gz", "r")
    pattern = str(run / "{sample_id}" / "reads_{read}.fq.gz")
    export = sample_sheet(
        loaded,
        users["registrar"],
        fastq=pattern,
        sample_ids=["S0001"],
        platform="DNBSEQ",
        with_sex=True,
    )
    assert [(r["sample_id"], r["unit"], r["platform"], r["sex"]) for r in export.rows] == [
        ("S0001", "1", "DNBSEQ", "female")
    ]
    with pytest.raises(ImportRejected, match="sample S0002 unit 1 has only read 1"):
        sample_sheet(loaded, users["registrar"], fastq=pattern, sample_ids=["S0002"])
    with pytest.raises(NotFoundError, match="not registered: S9999"):
        sample_sheet(loaded, users["registrar"], fastq=pattern, sample_ids=["S9999"])


def test_import_all__missing_file_named(store: Store, users: Users, tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    folder.mkdir()
    shutil.copy(DATA / "participants.csv", folder)
    with pytest.raises(ValidationError, match=r"lacks consents\.csv, specimens\.csv"):
        import_all(store, users["registrar"], folder)
    assert store.con.execute("SELECT count(*) FROM participant").fetchone() == (0,)


def test_import__big5_file_is_refused_and_writes_nothing(
    store: Store, users: Users, tmp_path: Path
) -> None:
    text = f"{PARTICIPANT_HEADER}\n{WANG},陳秀英,female,1965-03-12,,2023-04-01,臺北榮總,\n"
    path = tmp_path / "big5.csv"
    path.write_bytes(text.encode("big5"))
    before = snapshot(store)
    with pytest.raises(ValidationError, match=r"big5\.csv.*private-use.*tried UTF-8, GB18030"):
        import_participants(store, users["registrar"], path)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("freezer", "rack", "box", "position"),
    [("f01", "r1", "b01", "a1"), ("F01", "R1", "B01", "A01"), ("F01", "r1", "B01", "a001")],
)
def test_move_specimen__a_position_is_the_same_place_whatever_its_case_and_zeros(
    loaded: Store, users: Users, freezer: str, rack: str, box: str, position: str
) -> None:
    """BB0000001N holds F01/R1/B01/A1: every spelling of that place is taken."""
    reg = users["registrar"]
    before = snapshot(loaded)
    with pytest.raises(ConflictError, match="F01/R1/B01/A1 is already taken by BB0000001N"):
        move_specimen(
            loaded,
            reg,
            "BB0000006D",
            freezer=freezer,
            rack=rack,
            box=box,
            position=position,
            reason="r",
        )
    assert snapshot(loaded) == before


def test_move_specimen__stores_the_normalised_position(loaded: Store, users: Users) -> None:
    reg = users["registrar"]
    move_specimen(
        loaded, reg, "BB0000001N", freezer="f09", rack="r2", box="b3", position="c07", reason="r"
    )
    spec = get_specimen(loaded, reg, "BB0000001N")
    assert (spec["freezer"], spec["rack"], spec["box"], spec["position"]) == (
        "F09",
        "R2",
        "B3",
        "C7",
    )


def test_import__a_position_taken_under_another_spelling_is_refused(
    loaded: Store, users: Users, tmp_path: Path
) -> None:
    from biobank.registry.imports import import_specimens

    label = make_label("BB", 90)
    path = write_csv(
        tmp_path / "s.csv",
        SPECIMEN_HEADER,
        [_spec(label, WANG, freezer="f01", rack="r1", box="b01", position="a01")],
    )
    with pytest.raises(ImportRejected) as info:
        import_specimens(loaded, users["registrar"], path)
    assert [p.field for p in info.value.problems] == ["position"]
    assert "BB0000001N" in info.value.problems[0].message
