"""The research SQL sandbox: one read-only query over the research tables, within limits.

A researcher's SQL runs in its own in-memory DuckDB database that holds only
the research tables it names, each already restricted to the participants the
purpose may use. The store's other tables (identities, consents, specimens,
users, the audit log) do not exist there. The guards, in order:

1. **One SELECT.** Exactly one statement, and it must be a ``SELECT`` (or
   ``WITH ... SELECT``).
2. **Names resolved by DuckDB's parser.** The tables a query reads and its
   common table expressions come from DuckDB's own parse tree
   (``json_serialize_sql``), at any depth.
   A table function (``read_csv``, ``range``, ``duckdb_tables()``), a table
   qualified with another catalog or schema, a table that is not a research
   table, and a CTE named like a research table are refused.
3. **No way out.** External access, extension loading, Python replacement
   scans and configuration changes are switched off before the query runs.
4. **Limits** (:class:`SandboxLimits`): a statement timeout (the query is
   interrupted), a memory limit and a thread cap inside DuckDB, and a cap on
   the rows returned (the result is streamed and the query stopped there).

Every query is audited by the caller: the rows returned when it ran, and the
reason when it was refused or stopped (see :meth:`Workbench.sql`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from biobank.core.errors import StoreError, ValidationError

__all__ = ["SandboxLimits", "SandboxStopped", "run_sandboxed", "tables_read"]

logger = logging.getLogger(__name__)

_SELECT = re.compile(r"^\s*\(*\s*(select|with|from)\b", re.IGNORECASE)


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one research SQL query.

    Attributes
    ----------
    timeout_seconds
        Wall time after which the query is interrupted.
    memory_limit
        DuckDB's ``memory_limit`` inside the sandbox (e.g. ``"512MB"``).
    threads
        DuckDB's ``threads`` inside the sandbox.
    max_rows
        Most rows a result may have; a query that would return more is
        stopped with an error (aggregate it, or add ``LIMIT``).

    The defaults can be changed for a center with the environment variables
    ``BIOBANK_SQL_TIMEOUT``, ``BIOBANK_SQL_MEMORY``, ``BIOBANK_SQL_THREADS`` and
    ``BIOBANK_SQL_MAX_ROWS`` (see :meth:`from_env`).
    """

    timeout_seconds: float = 30.0
    memory_limit: str = "1GB"
    threads: int = 1
    max_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValidationError("must be positive", field="timeout_seconds")
        if self.threads < 1:
            raise ValidationError("must be at least 1", field="threads")
        if self.max_rows < 1:
            raise ValidationError("must be at least 1", field="max_rows")
        if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)", self.memory_limit, re.I):
            raise ValidationError(
                "give a size such as 512MB or 2GB",
                field="memory_limit",
                value=self.memory_limit,
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxLimits:
        """Return the defaults, overridden by ``BIOBANK_SQL_*`` environment variables.

        Raises
        ------
        ValidationError
            If a variable is not a number (or a size, for the memory limit).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, field, kind in (
            ("BIOBANK_SQL_TIMEOUT", "timeout_seconds", float),
            ("BIOBANK_SQL_MEMORY", "memory_limit", str),
            ("BIOBANK_SQL_THREADS", "threads", int),
            ("BIOBANK_SQL_MAX_ROWS", "max_rows", int),
        ):
            if var in env:
                try:
                    values[field] = kind(env[var])
                except ValueError as exc:
                    raise ValidationError(
                        f"is not a {kind.__name__}", field=var, value=env[var]
                    ) from exc
        return cls(**values)


class SandboxStopped(StoreError):
    """A research query was stopped by a sandbox limit (time, memory or rows)."""


def _parse_tree(con: duckdb.DuckDBPyConnection, query: str) -> Any:
    row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise ValidationError(
            f"the SQL does not parse: {tree.get('error_message', 'unknown error')}", field="sql"
        )
    return tree


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def tables_read(con: duckdb.DuckDBPyConnection, query: str, allowed: set[str]) -> set[str]:
    """Return the research tables ``query`` reads, from DuckDB's own parse tree.

    DuckDB parses the query (``json_serialize_sql``); every table reference
    and every common table expression (``WITH name AS ...``) in the tree is
    checked, at any depth (subqueries, ``LATERAL``, set operations).

    Parameters
    ----------
    con
        A DuckDB connection (only its parser is used).
    query
        One SELECT statement.
    allowed
        The research tables' names.

    Raises
    ------
    ValidationError
        If the query calls a table function, qualifies a table with a catalog
        or schema, reads a table not in ``allowed``, or names a common table
        expression like a research table (which would shadow it).
    """
    tree = _parse_tree(con, query)
    tables: set[str] = set()
    ctes: set[str] = set()
    problems: list[str] = []
    for node in _walk(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            problems.append("table functions (read_csv, range, duckdb_tables ...)")
        elif kind == "BASE_TABLE":
            catalog, schema = node.get("catalog_name") or "", node.get("schema_name") or ""
            if catalog or schema:
                problems.append(
                    f"qualified table {'.'.join(filter(None, (catalog, schema)))}."
                    f"{node.get('table_name')}"
                )
            tables.add(str(node.get("table_name")).lower())
        cte = node.get("cte_map")
        if isinstance(cte, dict):
            ctes.update(str(e["key"]).lower() for e in cte.get("map", []) if "key" in e)
    shadowing = sorted(ctes & allowed)
    if shadowing:
        problems.append(
            f"a WITH clause named like a research table ({', '.join(shadowing)}; rename it)"
        )
    unknown = sorted(tables - ctes - allowed)
    if unknown:
        problems.append(f"not research tables: {', '.join(unknown)}")
    if problems:
        raise ValidationError(
            f"research SQL may not use {'; '.join(sorted(set(problems)))}; it can read "
            f"{', '.join(sorted(allowed))}",
            field="sql",
            value=query[:60],
        )
    return tables & allowed


def _check_statement(con: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ValidationError(f"the SQL does not parse: {exc}", field="sql") from exc
    if len(statements) != 1:
        raise ValidationError(f"give exactly one statement, not {len(statements)}", field="sql")
    if statements[0].type != duckdb.StatementType.SELECT or not _SELECT.match(query):
        raise ValidationError(
            "only SELECT (or WITH ... SELECT) queries are allowed in research SQL",
            field="sql",
            value=query[:60],
        )


def _lock_down(con: duckdb.DuckDBPyConnection, limits: SandboxLimits) -> None:
    for setting in (
        f"SET memory_limit = '{limits.memory_limit}'",
        f"SET threads = {int(limits.threads)}",
        "SET preserve_insertion_order = false",
        "SET python_enable_replacements = false",
        "SET enable_external_access = false",
        "SET autoload_known_extensions = false",
        "SET autoinstall_known_extensions = false",
        "SET lock_configuration = true",
    ):
        con.execute(setting)


def _fetch(con: duckdb.DuckDBPyConnection, query: str, limits: SandboxLimits) -> pl.DataFrame:
    timer = threading.Timer(limits.timeout_seconds, con.interrupt)
    timer.start()
    try:
        reader = con.execute(query).to_arrow_reader(batch_size=min(limits.max_rows + 1, 65_536))
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > limits.max_rows:
                raise SandboxStopped(
                    f"research SQL stopped: the result has more than {limits.max_rows:,} rows"
                    " (the row limit); aggregate it or add LIMIT"
                )
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException as exc:
        raise SandboxStopped(
            f"research SQL stopped after {limits.timeout_seconds:g} s (the time limit);"
            " narrow the query"
        ) from exc
    except duckdb.OutOfMemoryException as exc:
        raise SandboxStopped(
            f"research SQL stopped: it needs more than {limits.memory_limit} (the memory limit);"
            " narrow the query"
        ) from exc
    except duckdb.Error as exc:
        raise StoreError(f"research SQL failed: {exc}") from exc
    finally:
        timer.cancel()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def run_sandboxed(
    query: str,
    *,
    allowed: set[str],
    load_table: Callable[[str], pa.Table],
    limits: SandboxLimits,
) -> tuple[pl.DataFrame, set[str]]:
    """Run one research query in a fresh sandbox; return the result and the tables it read.

    Parameters
    ----------
    query
        The researcher's SQL.
    allowed
        Names of the research tables.
    load_table
        Returns a research table (already restricted to the permitted
        participants) by name; called only for the tables the query reads.
    limits
        Time, memory, thread and row limits.

    Raises
    ------
    ValidationError
        If the query is refused before it runs (see :func:`tables_read`).
    SandboxStopped
        If a limit stopped it.
    StoreError
        If DuckDB rejects it (unknown column, type error).
    """
    sandbox = duckdb.connect(":memory:")
    try:
        _check_statement(sandbox, query)
        names = tables_read(sandbox, query, allowed)
        for name in sorted(names):
            sandbox.register(name, load_table(name))
        _lock_down(sandbox, limits)
        return _fetch(sandbox, query, limits), names
    finally:
        sandbox.close()
