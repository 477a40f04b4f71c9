"""Time and size of a project extract, on the demo store and on a 10,000-participant store.

Usage::

    .venv/bin/python benchmarks/bench_extract.py demo [STORE]   # a copy of demo/biobank.duckdb
    .venv/bin/python benchmarks/bench_extract.py 10000 [N_VARIANTS]

``demo`` copies the store ``./run demo`` wrote (default ``demo/biobank.duckdb``;
its key and audit head file too) into ``$BIOBANK_BENCH_DIR``. ``10000`` builds,
once, a store of 10,000 simulated participants (registry and OMOP clinical
tables from :mod:`biobank.testing`, an msprime cohort VCF of N_VARIANTS
variants, default 2,000) and keeps it there.

In each store a researcher applies for purpose HMB with every extractable
clinical field, an approver approves, and two extracts are timed: **clinical**
(person, conditions, measurements, deaths) and **clinical + genotypes** (also
``genotype_call_all.dosage``). Printed: wall time of :func:`build_extract`
(median of 3 issues), participants, rows per table, size of the extract file
against the store file, and the time of a re-issue after 1% of the
participants withdrew (its withdrawal list length is checked against the
withdrawals made).
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import WORK, cohort_vcf, sample_names

from biobank.core.access import Principal, Role, add_user, get_principal
from biobank.core.store import Store
from biobank.registry.consent import withdraw_consent
from biobank.research.access_requests import approve_request, submit_request
from biobank.research.extracts import build_extract

CLINICAL = [
    "clinical_person.sex",
    "clinical_person.year_of_birth",
    "clinical_condition.code",
    "clinical_condition.start_date",
    "clinical_measurement.name",
    "clinical_measurement.measured_on",
    "clinical_measurement.value",
    "clinical_measurement.unit",
    "clinical_death.death_date",
    "clinical_death.cause_code",
]


def demo_store(source: Path) -> Path:
    """Copy the demo store (with its key and audit head) into the bench folder."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "extract_demo.duckdb"
    for suffix in ("", ".key", ".audit-head"):
        shutil.copy(str(source) + suffix, str(path) + suffix)
    return path


def big_store(n: int, n_variants: int) -> Path:
    """Build (once) a store with ``n`` participants, clinical tables and genotypes."""
    from biobank.clinical.load import load_clinical
    from biobank.core.ids import center_key
    from biobank.genomes.load import load_vcf
    from biobank.registry.imports import import_all
    from biobank.testing import clinical as clin
    from biobank.testing import people as ppl

    path = WORK / f"extract_{n}x{n_variants}.duckdb"
    if path.exists():
        return path
    vcf = cohort_vcf(n, n_variants)
    t = time.perf_counter()
    rng = np.random.default_rng(16)
    sexes = ["male" if x < 0.5 else "female" for x in rng.random(n)]
    ancestries = ["Han-North"] * n
    people = ppl.make_people(
        rng, sexes=sexes, ancestries=ancestries, parents=[None] * n, sample_ids=sample_names(n)
    )
    tables = clin.simulate_clinical(rng, people, {})
    folder = WORK / f"extract_{n}_csv"
    ppl.write_registry(folder / "registry", ppl.registry_rows(rng, people))
    clin.write_clinical(folder / "clinical", tables)
    tmp = path.with_name(path.name + ".building")
    with Store(tmp) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "admin", Role.ADMIN)
            add_user(con, admin, "registrar", Role.REGISTRAR)
        registrar = Principal("registrar", Role.REGISTRAR)
        import_all(store, registrar, folder / "registry")
        load_clinical(store, folder / "clinical", principal=registrar)
        load_vcf(store, vcf, principal=registrar)
    for suffix in ("", ".key", ".audit-head"):
        Path(str(tmp) + suffix).rename(str(path) + suffix)
    print(f"built {path} in {time.perf_counter() - t:.0f} s")
    return path


def _users(store: Store) -> tuple[Principal, Principal]:
    admin = Principal(
        str(store.con.execute("SELECT user_name FROM app_user WHERE role = 'admin'").fetchone()[0]),  # type: ignore[index]
        Role.ADMIN,
    )
    with store.transaction() as con:
        for name, role in (("bench-researcher", Role.RESEARCHER), ("bench-dac", Role.APPROVER)):
            if not con.execute("SELECT 1 FROM app_user WHERE user_name = ?", [name]).fetchone():
                add_user(con, admin, name, role)
    return get_principal(store.con, "bench-researcher"), get_principal(store.con, "bench-dac")


def _approved(store: Store, fields: list[str], project: str) -> int:
    researcher, dac = _users(store)
    req = submit_request(
        store,
        researcher,
        project=project,
        title="benchmark",
        institution="bench",
        country="CN",
        foreign_party=False,
        purpose="HMB",
        fields=fields,
        period_start=dt.date.today(),
        period_end=dt.date.today() + dt.timedelta(days=30),
    )
    return approve_request(store, dac, req.request_id, reason="benchmark").request_id


def run(path: Path) -> None:
    out = WORK / "extracts"
    shutil.rmtree(out, ignore_errors=True)
    store_mb = path.stat().st_size / 1e6
    with Store(path) as store:
        n_all = store.con.execute("SELECT count(*) FROM participant").fetchone()[0]  # type: ignore[index]
        dac = _users(store)[1]
        print(f"store {path.name}: {n_all} participants, {store_mb:.1f} MB")
        for label, fields in (
            ("clinical", CLINICAL),
            ("clinical + genotypes", [*CLINICAL, "genotype_call_all.dosage"]),
        ):
            rid = _approved(store, fields, label.replace(" + ", "-"))
            times, res = [], None
            for i in range(3):
                t = time.perf_counter()
                res = build_extract(store, dac, rid, out / f"{rid}-{i}")
                times.append(time.perf_counter() - t)
            assert res is not None
            m = res.manifest
            mb = m["files"]["extract"]["bytes"] / 1e6
            rows = ", ".join(f"{k} {v['rows']:,}" for k, v in m["tables"].items())
            print(
                f"  {label}: {statistics.median(times):.2f} s (median of 3), "
                f"{m['participants']:,} participants, {mb:.2f} MB "
                f"({mb / store_mb:.2f} x the store); rows: {rows}"
            )
        row = store.con.execute(
            "SELECT user_name FROM app_user WHERE role = 'registrar' ORDER BY 1 LIMIT 1"
        ).fetchone()
        assert row is not None, "the store has no registrar"
        registrar = Principal(str(row[0]), Role.REGISTRAR)
        members = [
            r[0]
            for r in store.con.execute(
                "SELECT participant_id FROM access_extract_member WHERE extract_id ="
                " (SELECT max(extract_id) FROM access_extract WHERE request_id = ?) ORDER BY 1",
                [rid],
            ).fetchall()
        ]
        gone = members[::100]  # 1% of the last issue
        t = time.perf_counter()
        for pid in gone:
            withdraw_consent(store, registrar, pid, withdrawn_date=dt.date.today(), reason="bench")
        t_withdraw = time.perf_counter() - t
        t = time.perf_counter()
        res = build_extract(store, dac, rid, out / f"{rid}-reissue")
        t_reissue = time.perf_counter() - t
        assert res.manifest["withdrawn_since_previous_issue"] == len(gone), res.manifest
        print(
            f"  re-issue after {len(gone)} withdrawals ({t_withdraw:.1f} s to record them): "
            f"{t_reissue:.2f} s, withdrawal list {res.manifest['withdrawn_since_previous_issue']}"
        )


def main(argv: list[str]) -> None:
    kind = argv[0] if argv else "demo"
    if kind == "demo":
        run(demo_store(Path(argv[1] if len(argv) > 1 else "demo/biobank.duckdb")))
    else:
        run(big_store(int(kind), int(argv[1]) if len(argv) > 1 else 2000))


if __name__ == "__main__":
    main(sys.argv[1:])
