"""Page times of the staff web application on a large registry, over real HTTP.

Usage::

    .venv/bin/python benchmarks/bench_service.py [N_PARTICIPANTS] [N_SPECIMENS] [N_IMPORT]

(default 100,000 participants, 500,000 specimens, a 10,000-row import). Builds
the store once under ``$BIOBANK_BENCH_DIR`` (default ``/tmp/biobank-bench``):
participants with real pseudonyms of valid identity numbers
(:func:`biobank.testing.people.national_id`), five specimens each (a whole
blood and two aliquots of it, a DNA and a saliva), all stored in 9 x 9 boxes,
inserted in bulk into the library's tables (setup only: no events, no audit).
Then ``biobank serve`` runs on 127.0.0.1 in its own process and one client
times, over HTTP, ``N_REQUESTS`` of each page (a different random participant,
box or specimen each time, after 10 warm-up requests):

* participant search: POST a resident ID (hashed, looked up, audited; 303 to
  the participant), then the participant page it redirects to;
* the box grid of a random box;
* the specimen page of a random specimen;

and prints p50 / p95 / max (targets: p95 < 150 ms) and the server process's
CPU time per request (from ``/proc``: what the page costs whatever else the
machine is doing; on a shared host the wall-clock percentiles include waiting
for a CPU). Last, a 10,000-row
specimens CSV for registered participants goes through the web import
(upload, preview, commit), timed step by step (target: < 10 s in all).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import WORK

from biobank.core.ids import center_key, make_label, pseudonym
from biobank.core.store import Store
from biobank.testing.people import national_id

N_REQUESTS = 200
USER, PASSWORD = "bench", "bench password 1234"
REGIONS = ("110105", "310104", "440106", "510107", "330106", "420102")


def person(i: int) -> tuple[str, dt.date, str]:
    """The i-th benchmark person: identity number, birth date, sex (all distinct)."""
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=i // 200)
    sex = "male" if i % 2 else "female"
    order = (i // 2) % 100
    region = REGIONS[(i // 100) % 2]
    return national_id(region, birth, order, sex), birth, sex


def slot(k: int) -> tuple[str, str, str, str]:
    """The k-th storage place: 81 per box, 10 boxes per rack, 10 racks per freezer."""
    pos, box, rack, freezer = k % 81, (k // 81) % 10, (k // 810) % 10, k // 8100
    return (
        f"F{freezer + 1:03d}",
        f"R{rack + 1:02d}",
        f"B{box + 1:02d}",
        f"{'ABCDEFGHI'[pos // 9]}{pos % 9 + 1}",
    )


def build(path: Path, n_people: int, n_specimens: int) -> None:
    """Create the store with bulk inserts (participants, consents, specimens) and a web user."""
    import pyarrow as pa

    from biobank.core.access import Role
    from biobank.service.accounts import create_account

    t = time.perf_counter()
    for f in path.parent.glob(path.name + "*"):
        f.unlink()
    os.environ.pop("BIOBANK_CENTER_KEY", None)
    with Store(path) as store:
        key = center_key(store.path, create=True)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        people = [person(i) for i in range(n_people)]
        pids = [pseudonym(nid, key) for nid, _, _ in people]
        participants = pa.table(
            {
                "participant_id": pids,
                "sex": [sex for _, _, sex in people],
                "birth_year": [b.year for _, b, _ in people],
                "enrolment_date": [
                    dt.date(2023, 1, 1) + dt.timedelta(days=i % 600) for i in range(n_people)
                ],
                "site": [f"S{i % 40:04d}" for i in range(n_people)],
                "created_at": [now] * n_people,
                "updated_at": [now] * n_people,
            }
        )
        consents = pa.table(
            {
                "participant_id": pids,
                "consent_version": ["v1"] * n_people,
                "consent_seq": list(range(1, n_people + 1)),
                "signed_date": [dt.date(2023, 1, 1)] * n_people,
                "primary_code": ["GRU"] * n_people,
                "disease": pa.nulls(n_people, pa.string()),
                "modifiers": [""] * n_people,
                "withdrawn_date": pa.nulls(n_people, pa.date32()),
            }
        )
        kinds = [
            ("whole_blood", "mL", 10.0),
            ("plasma", "mL", 0.5),
            ("plasma", "mL", 0.5),
            ("dna", "µg", 20.0),
            ("saliva", "mL", 2.0),
        ]
        labels, owners, parents, types, qty, units, places = [], [], [], [], [], [], []
        for k in range(n_specimens):
            p, j = divmod(k, len(kinds))
            label = make_label("BN", k + 1)
            labels.append(label)
            owners.append(pids[p % n_people])
            parents.append(labels[k - j] if j in (1, 2) else None)
            types.append(kinds[j][0])
            units.append(kinds[j][1])
            qty.append(kinds[j][2])
            places.append(slot(k))
        collected = dt.datetime(2023, 6, 1, 9, 0)
        specimens = pa.table(
            {
                "label": labels,
                "participant_id": owners,
                "parent_label": pa.array(parents, pa.string()),
                "specimen_type": types,
                "collected_at": [collected] * n_specimens,
                "anatomical_site": pa.nulls(n_specimens, pa.string()),
                "quantity": qty,
                "unit": units,
                "consumed_quantity": [0.0] * n_specimens,
                "status": ["available"] * n_specimens,
                "freezer": [s[0] for s in places],
                "rack": [s[1] for s in places],
                "box": [s[2] for s in places],
                "position": [s[3] for s in places],
                "shipped_to": pa.nulls(n_specimens, pa.string()),
                "created_at": [now] * n_specimens,
                "updated_at": [now] * n_specimens,
            }
        )
        with store.transaction() as con:
            for name, table in (
                ("participant", participants),
                ("consent", consents),
                ("specimen", specimens),
            ):
                con.register("_bulk", table)
                con.execute(f"INSERT INTO {name} SELECT * FROM _bulk")
                con.unregister("_bulk")
        admin = create_account(store, None, "bench-admin", Role.ADMIN, PASSWORD, client="bench")
        create_account(store, admin, USER, Role.REGISTRAR, PASSWORD, client="bench")
        store.con.execute("UPDATE web_account SET must_change = FALSE")
        store.con.execute("CHECKPOINT")
    for f in (path, Path(f"{path}.key")):
        f.chmod(0o600)
    print(
        f"built {path} ({n_people:,} participants, {n_specimens:,} specimens) "
        f"in {time.perf_counter() - t:.1f} s"
    )


def serve(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``biobank serve`` on a free port; return the process and its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("biobank")
    proc = subprocess.Popen(
        [str(exe), "--store", str(path), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/login", timeout=2)
            return proc, base
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(f"biobank serve ended: {proc.stderr.read().decode()}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("biobank serve did not start")


def token(client: httpx.Client, path: str) -> str:
    m = re.search(r'name="csrftoken" value="([^"]+)"', client.get(path).text)
    if not m:
        raise SystemExit(f"no form on {path}")
    return m.group(1)


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    for i in range(10):
        fn(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return sorted(out)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def check(ok: bool, what: object) -> None:
    """Stop the benchmark when a page did not answer as it should."""
    if not ok:
        raise SystemExit(f"unexpected answer: {what}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (from /proc): the server's own work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_csv(n_rows: int, n_people: int) -> bytes:
    """A specimens CSV of ``n_rows`` new plasma aliquots for registered people, in new boxes."""
    rng = random.Random(7)
    lines = ["label,national_id,specimen_type,collected_at,quantity,unit,freezer,rack,box,position"]
    for k in range(n_rows):
        nid = person(rng.randrange(n_people))[0]
        fz, rk, bx, pos = slot(k)
        lines.append(
            f"{make_label('IM', k + 1)},{nid},plasma,2024-03-01T09:00,0.5,mL,"
            f"IMP{fz[1:]},{rk},{bx},{pos}"
        )
    return ("\n".join(lines) + "\n").encode()


def main(n_people: int = 100_000, n_specimens: int = 500_000, n_import: int = 10_000) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"service_{n_people}x{n_specimens}.duckdb"
    build(path, n_people, n_specimens)
    proc, base = serve(path)
    rng = random.Random(1)
    try:
        client = httpx.Client(base_url=base, timeout=120)
        r = client.post(
            "/login",
            data={
                "csrftoken": token(client, "/login"),
                "username": USER,
                "password": PASSWORD,
                "next": "/",
            },
        )
        check(r.status_code == 303, r.text)
        search_token = token(client, "/participants")
        n_boxes = n_specimens // 81  # full boxes only
        people = [rng.randrange(n_people) for _ in range(N_REQUESTS + 10)]
        boxes = [slot(rng.randrange(n_boxes) * 81)[:3] for _ in range(N_REQUESTS + 10)]
        specs = [make_label("BN", rng.randrange(n_specimens) + 1) for _ in range(N_REQUESTS + 10)]

        def search(i: int) -> None:
            r = client.post(
                "/participants/search",
                data={"csrftoken": search_token, "q": person(people[i])[0]},
            )
            check(r.status_code == 303 and "/participants/P-" in r.headers["location"], r)
            found[i] = r.headers["location"]

        def participant(i: int) -> None:
            r = client.get(found[i])
            check(r.status_code == 200 and found[i].rsplit("/", 1)[1] in r.text, r.status_code)

        def grid(i: int) -> None:
            r = client.get("/storage/" + "/".join(boxes[i]))
            check(r.status_code == 200 and r.text.count('class="taken"') == 81, r.status_code)

        def specimen(i: int) -> None:
            r = client.get(f"/specimens/{specs[i]}")
            check(r.status_code == 200, r.status_code)

        rows = []
        found: dict[int, str] = {}
        for name, fn in (
            ("participant search (POST, 303)", search),
            ("participant page (it redirects to)", participant),
            ("box grid", grid),
            ("specimen page", specimen),
        ):
            cpu = cpu_seconds(proc.pid)
            times = timed(fn, N_REQUESTS)
            cpu_ms = (cpu_seconds(proc.pid) - cpu) * 1000 / (N_REQUESTS + 10)
            rows.append((name, pct(times, 0.5), pct(times, 0.95), times[-1], cpu_ms))

        data = import_csv(n_import, n_people)
        cpu = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        r = client.post(
            "/import",
            data={"csrftoken": token(client, "/import"), "kind": "specimens"},
            files={"file": ("bench.csv", data, "text/csv")},
        )
        check(r.status_code == 303, r.text[:2000])
        t1 = time.perf_counter()
        preview = client.get(r.headers["location"])
        check(f"将新增 {n_import}" in preview.text, preview.text[:3000])
        t2 = time.perf_counter()
        done = client.post(
            r.headers["location"] + "/commit", data={"csrftoken": token(client, "/import")}
        )
        check(done.status_code == 200 and "import-done" in done.text, done.text[:2000])
        t3 = time.perf_counter()
        import_cpu = cpu_seconds(proc.pid) - cpu
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"\n{N_REQUESTS} requests each, one client, over HTTP to biobank serve (127.0.0.1)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{'page':<36}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'server CPU ms':>15}"
        "  target p95 < 150 ms"
    )
    for name, p50, p95, top, cpu_ms in rows:
        verdict = "ok" if p95 < 150 else "MISSED"
        print(f"{name:<36}{p50:9.1f}{p95:9.1f}{top:9.1f}{cpu_ms:15.1f}  {verdict}")
    total = t3 - t0
    print(
        f"\nweb import of {n_import:,} specimen rows: upload {t1 - t0:.2f} s, preview "
        f"{t2 - t1:.2f} s, commit {t3 - t2:.2f} s, total {total:.2f} s (server CPU "
        f"{import_cpu:.2f} s)  target < 10 s  {'ok' if total < 10 else 'MISSED'}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
