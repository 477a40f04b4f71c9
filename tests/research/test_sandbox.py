"""Tests for biobank.research.sandbox: limits, name resolution, and that refusals are audited.

The insider attacks of the data-access issue are kept here as tests: a common
table expression named like a research table, a query that runs forever, one
that returns a cross join row by row, and one that needs all the memory.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import ClinicalStore

import biobank
from biobank.core.errors import ValidationError
from biobank.core.store import Store
from biobank.research.sandbox import SandboxLimits, SandboxStopped

#: a query that never ends on its own (a recursive CTE reads no table and calls no function)
FOREVER = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1e15)"
    " SELECT count(*) AS n FROM r"
)


def _sql_audit(cs: ClinicalStore) -> list[dict[str, object]]:
    with Store(cs.path, read_only=True) as store:
        rows = store.con.execute(
            "SELECT CAST(detail AS VARCHAR) FROM audit_log WHERE action = 'research.sql'"
            " ORDER BY entry_id"
        ).fetchall()
    return [json.loads(d) for (d,) in rows]


def test_sql__a_cte_named_like_a_research_table_is_refused_and_audited(
    clinical_store: ClinicalStore,
) -> None:
    query = "WITH person AS (SELECT 'x' AS participant_id) SELECT * FROM person"
    with (
        biobank.open(clinical_store.path, user="rita", purpose="HMB") as wb,
        pytest.raises(ValidationError, match=r"WITH clause named like a research table \(person"),
    ):
        wb.sql(query)
    (entry,) = _sql_audit(clinical_store)
    assert "named like a research table" in str(entry["refused"])


def test_sql__a_cte_shadowing_a_table_inside_a_subquery_is_refused(
    clinical_store_ro: ClinicalStore,
) -> None:
    query = "SELECT * FROM (WITH measurement AS (SELECT 1 AS v) SELECT * FROM measurement) t"
    with (
        biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb,
        pytest.raises(ValidationError, match="measurement"),
    ):
        wb.sql(query)


def test_sql__a_cte_with_its_own_name_still_works(clinical_store_ro: ClinicalStore) -> None:
    with biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb:
        n = wb.sql(
            "WITH men AS (SELECT * FROM person WHERE sex = 'male') SELECT count(*) AS n FROM men"
        )
    assert n["n"].item() >= 0


def test_sql__a_query_that_never_ends_is_stopped_at_the_time_limit(
    clinical_store: ClinicalStore,
) -> None:
    limits = SandboxLimits(timeout_seconds=1.0)
    start = time.monotonic()
    with (
        biobank.open(clinical_store.path, user="rita", purpose="HMB", sql_limits=limits) as wb,
        pytest.raises(SandboxStopped, match=r"after 1 s \(the time limit\)"),
    ):
        wb.sql(FOREVER)
    assert time.monotonic() - start < 10
    (entry,) = _sql_audit(clinical_store)
    assert "time limit" in str(entry["stopped"])


def test_sql__a_cross_join_is_stopped_at_the_row_limit_without_running_to_the_end(
    clinical_store: ClinicalStore,
) -> None:
    limits = SandboxLimits(timeout_seconds=30, max_rows=1_000)
    query = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1e6)"
        " SELECT * FROM r, person, measurement"
    )
    start = time.monotonic()
    with (
        biobank.open(clinical_store.path, user="rita", purpose="HMB", sql_limits=limits) as wb,
        pytest.raises(SandboxStopped, match="more than 1,000 rows"),
    ):
        wb.sql(query)
    assert time.monotonic() - start < 30


def test_sql__a_query_needing_more_memory_than_the_limit_is_stopped(
    clinical_store: ClinicalStore,
) -> None:
    limits = SandboxLimits(timeout_seconds=60, memory_limit="32MB")
    with biobank.open(clinical_store.path, user="rita", purpose="HMB") as wb:  # default: 1GB
        assert (
            len(
                wb.sql(
                    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3000)"
                    " SELECT list(a.n * b.n) AS l FROM r a, r b"
                )["l"].item()
            )
            == 9_000_000
        )
    query = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3000)"
        " SELECT list(a.n * b.n) AS l FROM r a, r b"
    )
    with (
        biobank.open(clinical_store.path, user="rita", purpose="HMB", sql_limits=limits) as wb,
        pytest.raises(SandboxStopped, match=r"more than 32MB \(the memory limit\)"),
    ):
        wb.sql(query)


def test_sql__limits_cannot_be_changed_from_inside(clinical_store_ro: ClinicalStore) -> None:
    with (
        biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb,
        pytest.raises(ValidationError, match="only SELECT"),
    ):
        wb.sql("SET memory_limit = '20GB'")
    with biobank.open(clinical_store_ro.path, user="rita", purpose="HMB") as wb:
        got = wb.sql("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m")
    assert got["t"].item() == 1


def test_sandbox_limits__from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = SandboxLimits.from_env(
        {"BIOBANK_SQL_TIMEOUT": "2.5", "BIOBANK_SQL_MAX_ROWS": "10", "BIOBANK_SQL_MEMORY": "64MB"}
    )
    assert limits == SandboxLimits(timeout_seconds=2.5, max_rows=10, memory_limit="64MB")
    with pytest.raises(ValidationError, match="BIOBANK_SQL_THREADS"):
        SandboxLimits.from_env({"BIOBANK_SQL_THREADS": "many"})
    with pytest.raises(ValidationError, match="memory_limit"):
        SandboxLimits(memory_limit="lots")
    with pytest.raises(ValidationError, match="timeout_seconds"):
        SandboxLimits(timeout_seconds=0)
