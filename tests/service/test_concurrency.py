"""Many browsers writing at once go through the one writer path: nothing lost or doubled."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from service.support import TestClient, csrf, logged_in, register

from biobank.core import audit
from biobank.core.access import Role
from biobank.core.ids import make_label

CLIENTS = 8
EACH = 5


def _accession(client: TestClient, token: str, pid: str, label: str, position: str) -> int:
    data = {
        "csrftoken": token,
        "label": label,
        "participant_id": pid,
        "specimen_type": "plasma",
        "collected_at": "2024-01-02 09:00",
        "quantity": "1",
        "unit": "mL",
        "freezer": "F01",
        "rack": "R01",
        "box": "B01",
        "position": position,
    }
    return client.post("/specimens", data=data).status_code


def test_concurrent_accessions_are_all_stored_once_and_the_chain_verifies(app: object) -> None:
    first = logged_in(app, Role.REGISTRAR)
    pid = register(first).headers["location"].removeprefix("/participants/")
    clients = [logged_in(app, Role.REGISTRAR) for _ in range(CLIENTS)]
    tokens = [csrf(c, "/specimens/new") for c in clients]

    def work(i: int) -> list[int]:
        return [
            _accession(
                clients[i],
                tokens[i],
                pid,
                make_label("BB", i * EACH + j + 1),
                f"{i * EACH + j + 1}",
            )
            for j in range(EACH)
        ]

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [s for result in pool.map(work, range(CLIENTS)) for s in result]
    assert statuses == [303] * (CLIENTS * EACH)
    con = app.state.service.store.con  # type: ignore[attr-defined]
    assert con.execute("SELECT count(*), count(DISTINCT position) FROM specimen").fetchone() == (
        CLIENTS * EACH,
        CLIENTS * EACH,
    )
    assert audit.verify(con).entries > CLIENTS * EACH


def test_a_race_for_one_position_has_one_winner(app: object) -> None:
    first = logged_in(app, Role.REGISTRAR)
    pid = register(first).headers["location"].removeprefix("/participants/")
    clients = [logged_in(app, Role.REGISTRAR) for _ in range(CLIENTS)]
    tokens = [csrf(c, "/specimens/new") for c in clients]
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(
            pool.map(
                lambda i: _accession(clients[i], tokens[i], pid, make_label("BB", 100 + i), "A1"),
                range(CLIENTS),
            )
        )
    assert sorted(statuses) == [303] + [422] * (CLIENTS - 1)
    con = app.state.service.store.con  # type: ignore[attr-defined]
    assert con.execute("SELECT count(*) FROM specimen WHERE position = 'A1'").fetchone() == (1,)
