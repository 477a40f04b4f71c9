"""Helpers shared by command modules: opening the store, the acting user, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import polars as pl

    from biobank.cli import State
    from biobank.core.access import Principal
    from biobank.core.store import Store

__all__ = ["OutputFormat", "acting_principal", "emit", "open_store", "state"]


class OutputFormat(StrEnum):
    """How a command prints a table."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def state(ctx: typer.Context) -> State:
    """Return the shared options of the root command."""
    root = ctx.find_root()
    assert root.obj is not None
    return root.obj  # type: ignore[no-any-return,unused-ignore]


@contextmanager
def open_store(ctx: typer.Context, *, read_only: bool = False) -> Iterator[Store]:
    """Open the store named by ``--store`` for the duration of a command."""
    from biobank.core.store import Store

    store = Store(state(ctx).store, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def acting_principal(ctx: typer.Context, store: Store, *, purpose: str | None = None) -> Principal:
    """Return the principal for ``--user`` (looked up in the store's users)."""
    from biobank.core.access import get_principal

    user = state(ctx).user
    assert user is not None
    return get_principal(store.con, user, purpose=purpose)


def emit(data: pl.DataFrame | list[dict[str, Any]] | dict[str, Any], fmt: OutputFormat) -> None:
    """Print a table (or a record) as an aligned table, CSV or JSON."""
    import polars as pl

    if isinstance(data, dict):
        data = [data]
    df = data if isinstance(data, pl.DataFrame) else pl.DataFrame(data)
    if fmt is OutputFormat.JSON:
        sys.stdout.write(json.dumps(df.to_dicts(), ensure_ascii=False, default=str, indent=1))
        sys.stdout.write("\n")
    elif fmt is OutputFormat.CSV:
        sys.stdout.write(df.write_csv())
    else:
        with pl.Config(
            tbl_rows=200, tbl_cols=30, fmt_str_lengths=60, tbl_hide_dataframe_shape=False
        ):
            typer.echo(str(df))
