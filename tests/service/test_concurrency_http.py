"""20 browsers at once over real HTTP (uvicorn on 127.0.0.1): nothing lost, doubled or stacked.

Each client logs in, accessions 50 specimens into its own box (half of them
spelling the position in lower case with zeros, ``b03``/``a01``, which must name
the same places as ``B03``/``A1``), then all race to move 5 specimens each into
one shared 81-place box by "first free positions": 16 moves fit, 4 are refused.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from service.serving import served
from service.support import ACCOUNTS, PASSWORD, WANG

from biobank.core import audit
from biobank.core.access import Role
from biobank.core.ids import make_label
from biobank.registry.storage import LOCATION_SQL

pytestmark = pytest.mark.slow

CLIENTS = 20
EACH = 50
MOVED = 5


def _token(client: httpx.Client, path: str) -> str:
    m = re.search(r'name="csrftoken" value="([^"]+)"', client.get(path).text)
    assert m
    return m.group(1)


def _login(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    data = {
        "csrftoken": _token(client, "/login"),
        "username": ACCOUNTS[Role.REGISTRAR],
        "password": PASSWORD,
        "next": "/",
    }
    assert client.post("/login", data=data).status_code == 303
    return client


def _well(j: int, *, padded: bool) -> str:
    row, col = "ABCDEFGHI"[j // 9], j % 9 + 1
    return f"{row.lower()}{col:02d}" if padded else f"{row}{col}"


def _accession_all(client: httpx.Client, i: int, pid: str) -> list[int]:
    token = _token(client, "/specimens/new")
    padded = i % 2 == 1
    statuses = []
    for j in range(EACH):
        data = {
            "csrftoken": token,
            "label": make_label("CC", i * EACH + j + 1),
            "participant_id": pid,
            "specimen_type": "plasma",
            "collected_at": "2024-01-02 09:00",
            "quantity": "0.5",
            "unit": "mL",
            "freezer": "f01" if padded else "F01",
            "rack": "r01" if padded else "R01",
            "box": f"b{i + 1:02d}" if padded else f"B{i + 1:02d}",
            "position": _well(j, padded=padded),
        }
        statuses.append(client.post("/specimens", data=data).status_code)
    return statuses


def _move_some(client: httpx.Client, i: int) -> int:
    box = f"/storage/F01/R01/B{i + 1:02d}"
    data = {
        "csrftoken": _token(client, box),
        "label": [make_label("CC", i * EACH + j + 1) for j in range(MOVED)],
        "freezer": "F09",
        "rack": "R01",
        "box": "B01",
        "positions": "",
        "reason": "consolidate",
        "from_box": f"F01/R01/B{i + 1:02d}",
    }
    return client.post("/storage/move", data=data).status_code


def test_twenty_clients_accession_fifty_each_then_race_for_one_box(app: object) -> None:
    with served(app) as base:
        first = _login(base)
        data = {
            "csrftoken": _token(first, "/participants/new"),
            "national_id": WANG,
            "name": "王芳",
            "sex": "female",
            "birth_date": "1965-03-12",
            "enrolment_date": "2024-01-02",
            "site": "S0001",
        }
        pid = first.post("/participants", data=data).headers["location"].rsplit("/", 1)[-1]
        clients = [_login(base) for _ in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [
                s
                for result in pool.map(lambda i: _accession_all(clients[i], i, pid), range(CLIENTS))
                for s in result
            ]
        assert statuses == [303] * (CLIENTS * EACH)
        with ThreadPoolExecutor(CLIENTS) as pool:
            moves = list(pool.map(lambda i: _move_some(clients[i], i), range(CLIENTS)))
        grid = first.get("/storage/F09/R01/B01?lang=en").text
        for c in clients:
            c.close()
        first.close()
    fits = 81 // MOVED
    assert sorted(moves) == [303] * fits + [409] * (CLIENTS - fits)
    assert f"{fits * MOVED} positions taken, {81 - fits * MOVED} free." in grid
    con = app.state.service.store.con  # type: ignore[attr-defined]
    total, labels = con.execute("SELECT count(*), count(DISTINCT label) FROM specimen").fetchone()
    assert (total, labels) == (CLIENTS * EACH, CLIENTS * EACH)
    places = con.execute(
        f"SELECT count(DISTINCT ({', '.join(LOCATION_SQL)})) FROM specimen"
        " WHERE freezer IS NOT NULL"
    ).fetchone()
    assert places == (CLIENTS * EACH,)
    assert con.execute("SELECT count(*) FROM specimen WHERE freezer = 'F09'").fetchone() == (
        fits * MOVED,
    )
    events = con.execute(
        "SELECT count(*) FROM registry_event WHERE entity = 'specimen' AND action = 'move'"
    ).fetchone()
    assert events == (fits * MOVED,)
    assert audit.verify(con).entries > CLIENTS * EACH
