"""The web import over HTTP: upload, preview, error report, all-or-nothing commit, re-upload."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from service.support import TestClient, audit_rows, csrf, logged_in

from biobank.core.access import Principal, Role
from biobank.registry.events import current_state
from biobank.registry.recontact import read_recontact

DATA = Path(__file__).resolve().parents[1] / "data" / "registry"
WANG = "110105196503120128"
SPECIMEN_HEADER = (
    "label,national_id,parent_label,specimen_type,collected_at,anatomical_site,quantity,unit,"
    "status,freezer,rack,box,position,sequencing_sample_id"
)


def _upload(client: TestClient, kind: str, name: str, data: bytes) -> httpx.Response:
    token = csrf(client, "/import")
    return client.post(
        "/import",
        data={"csrftoken": token, "kind": kind},
        files={"file": (name, data, "text/csv")},
    )


def _token(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/import/[\w-]{20,}", location), location
    return str(location.removeprefix("/import/"))


def _commit(client: TestClient, token: str) -> httpx.Response:
    return client.post(
        f"/import/{token}/commit", data={"csrftoken": csrf(client, f"/import/{token}")}
    )


def _count(app: object, table: str) -> int:
    con = app.state.service.store.con  # type: ignore[attr-defined]
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _import_participants(app: object, client: TestClient) -> None:
    token = _token(
        _upload(client, "participants", "p.csv", (DATA / "participants.csv").read_bytes())
    )
    assert _commit(client, token).status_code == 200


def test_preview_then_commit_then_reupload_adds_nothing(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    data = (DATA / "participants.csv").read_bytes()
    token = _token(_upload(client, "participants", "participants.csv", data))
    assert _count(app, "web_upload") == 1
    preview = client.get(f"/import/{token}?lang=en")
    assert preview.status_code == 200
    assert "4 rows read (utf-8)." in preview.text
    assert "Would add 4, change 0; 0 already registered." in preview.text
    assert WANG not in preview.text  # identity numbers are masked
    assert "王秀英" not in preview.text
    assert 'id="commit"' in preview.text
    assert _count(app, "participant") == 0  # a preview writes nothing

    done = _commit(client, token)
    assert done.status_code == 200
    assert "已导入：新增 4 条" in done.text
    assert _count(app, "participant") == 4
    assert _count(app, "web_upload") == 0  # the kept bytes go with the commit
    assert [r[1] for r in audit_rows(app, "action = 'registry.import'")] == ["reg1"]
    assert client.get(f"/import/{token}").status_code == 404
    events = _count(app, "registry_event")

    again = _token(_upload(client, "participants", "renamed.csv", data))
    preview = client.get(f"/import/{again}?lang=en")
    assert "This file was imported before" in preview.text
    assert "此文件以前已导入：未添加任何内容。" in _commit(client, again).text
    assert _count(app, "participant") == 4
    assert _count(app, "registry_event") == events
    assert len(audit_rows(app, "action = 'registry.import'")) == 1


def test_rows_with_errors_are_reported_and_nothing_is_written(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    _import_participants(app, client)
    rows = [
        SPECIMEN_HEADER,
        f"BB0000001N,{WANG},,whole_blood,2023-04-01T09:30,,10,mL,available,F01,R1,B01,A1,",
        f"BB0000003J,{WANG},,whole_blood,2023-04-01T09:30,,10,mL,available,F01,R1,B01,a01,",
        f"BB0000004H,{WANG},,blood,2023-04-01T09:30,,ten,mL,available,F01,R1,B01,A3,",
        f"BB0000005F,{WANG},,plasma,2023-04-01,,1,mL,available,F01,R1,B01,A4,",
    ]
    data = ("\n".join(rows) + "\n").encode()
    before = current_state(app.state.service.store.con)  # type: ignore[attr-defined]
    token = _token(_upload(client, "specimens", "specimens.csv", data))
    en = client.get(f"/import/{token}?lang=en")
    assert en.status_code == 200
    report = re.findall(
        r"<tr><td>(\d+)</td><td>(\w+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", en.text
    )
    by_line = {(int(line), field): (value, msg) for line, field, value, msg in report}
    assert by_line[(3, "position")][1].startswith("position F01/R1/B01/A1 is already taken by")
    assert by_line[(4, "specimen_type")][0] == "blood"
    assert by_line[(4, "quantity")] == ("ten", "quantity must be a positive number (e.g. 4 or 0.5)")
    assert (5, "collected_at") in by_line
    assert 'id="commit"' not in en.text

    zh = client.get(f"/import/{token}")
    assert "数量须为正数" in zh.text
    assert "每个位置只能放一份样本" in zh.text
    assert "问题及修正方法" in zh.text

    forced = _commit(client, token)  # a commit of a bad file writes nothing
    assert forced.status_code == 422
    assert current_state(app.state.service.store.con) == before  # type: ignore[attr-defined]

    fixed = "\n".join(
        [
            rows[0],
            rows[1],
            rows[2].replace("a01", "A2"),
            rows[3].replace("blood", "plasma").replace("ten", "1"),
            rows[4].replace("2023-04-01,", "2023-04-01T10:00,"),
        ]
    )
    token = _token(_upload(client, "specimens", "specimens.csv", (fixed + "\n").encode()))
    assert _commit(client, token).status_code == 200
    assert _count(app, "specimen") == 4


def test_a_gb18030_upload_is_decoded_and_a_big5_one_refused(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    text = (DATA / "participants.csv").read_text(encoding="utf-8")
    token = _token(_upload(client, "participants", "gb.csv", text.encode("gb18030")))
    assert "（gb18030）" in client.get(f"/import/{token}").text
    assert _commit(client, token).status_code == 200
    store = app.state.service.store  # type: ignore[attr-defined]
    pid = store.con.execute(
        "SELECT participant_id FROM participant WHERE site = 'BJ-CY'"
    ).fetchone()[0]
    ids = read_recontact(store, Principal("reg1", Role.REGISTRAR), pid, reason="test")
    assert ids["name"] == "王秀英"

    big5 = "national_id,name,sex,birth_date,enrolment_date,site\n"
    big5 += "310104197805210255,陳秀英,male,1978-05-21,2023-04-01,臺北榮總\n"
    refused = _upload(client, "participants", "big5.csv", big5.encode("big5"))
    assert refused.status_code == 422
    assert "已尝试 UTF-8 和 GB18030" in refused.text
    assert "Big5" in refused.text
    assert _count(app, "web_upload") == 0  # an unreadable file is not kept
    client.get("/lang/en")
    refused = _upload(client, "participants", "big5.csv", big5.encode("big5"))
    assert "tried UTF-8 and GB18030" in refused.text


def test_a_bad_header_is_reported_at_upload(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    r = _upload(client, "consents", "c.csv", b"national_id,version\n1,2\n")
    assert r.status_code == 422
    assert "缺少列" in r.text
    assert _count(app, "web_upload") == 0


def test_the_kept_upload_is_encrypted_and_bound_to_its_user(app: object) -> None:
    registrar = logged_in(app, Role.REGISTRAR)
    token = _token(
        _upload(registrar, "participants", "p.csv", (DATA / "participants.csv").read_bytes())
    )
    con = app.state.service.store.con  # type: ignore[attr-defined]
    (payload,) = con.execute("SELECT payload FROM web_upload").fetchone()
    assert WANG not in payload
    assert token not in str(con.execute("SELECT * FROM web_upload").fetchall())
    admin = logged_in(app, Role.ADMIN)
    assert admin.get(f"/import/{token}").status_code == 404
    assert _commit(admin, token).status_code == 404
    assert _count(app, "participant") == 0
    discard = registrar.post(
        f"/import/{token}/discard", data={"csrftoken": csrf(registrar, "/import")}
    )
    assert discard.status_code == 303
    assert _count(app, "web_upload") == 0


@pytest.mark.parametrize("role", [Role.RESEARCHER, Role.AUDITOR])
def test_only_registry_writers_may_import(app: object, role: Role) -> None:
    client = logged_in(app, role)
    assert client.get("/import").status_code == 403
    token = csrf(client, "/")
    r = client.post(
        "/import",
        data={"csrftoken": token, "kind": "participants"},
        files={"file": ("p.csv", (DATA / "participants.csv").read_bytes(), "text/csv")},
    )
    assert r.status_code == 403
    assert _count(app, "web_upload") == 0


def test_an_upload_without_its_csrf_token_first_is_refused(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    csv = (DATA / "participants.csv").read_bytes()
    files = {"file": ("p.csv", csv, "text/csv")}
    assert client.post("/import", data={"kind": "participants"}, files=files).status_code == 403
    forged = {"csrftoken": "forged", "kind": "participants"}
    assert client.post("/import", data=forged, files=files).status_code == 403
    token = csrf(client, "/import")
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv.decode()}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrftoken"\r\n\r\n{token}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    late = client.post(
        "/import",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert late.status_code == 403  # the token must come before the file
    assert _count(app, "web_upload") == 0


def test_a_quoted_newline_in_a_name_is_reported_on_its_line(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    text = (
        "national_id,name,sex,birth_date,enrolment_date,site\n"
        '110105196503120128,"王\n秀英",female,1965-03-12,2023-04-01,BJ-CY\n'
    )
    token = _token(_upload(client, "participants", "p.csv", text.encode()))
    page = client.get(f"/import/{token}")
    assert "姓名中含有换行或控制字符" in page.text
    assert re.search(r"<tr><td>2</td><td>name</td>", page.text)
    assert _commit(client, token).status_code == 422
    assert _count(app, "participant") == 0
