"""Helpers shared by command modules: options, opening the store, the acting user, output.

Every option that more than one command takes is declared here once, as an
``Annotated`` alias (``StoreOption``, ``FormatOption``, ...); a command module
declares only the options that are its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import polars as pl

    from biobank.cli import State
    from biobank.core.access import Principal
    from biobank.core.store import Store
    from biobank.research.workbench import Workbench

__all__ = [
    "FormatOption",
    "LimitOption",
    "OutputFormat",
    "PurposeOption",
    "ReasonOption",
    "ResearchPurposeOption",
    "StoreOption",
    "UserOption",
    "acting_principal",
    "emit",
    "open_store",
    "open_workbench",
    "state",
]


class OutputFormat(StrEnum):
    """How a command prints a table."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


# -- shared options ----------------------------------------------------------
#: ``--store`` (env ``BIOBANK_STORE``): the store file of every command.
StoreOption = Annotated[
    Path,
    typer.Option(
        "--store",
        envvar="BIOBANK_STORE",
        help="The DuckDB store file.",
        show_default=True,
    ),
]
#: ``--user`` (env ``BIOBANK_USER``): who acts.
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="BIOBANK_USER",
        help="Act as this biobank user: one of those an admin mapped to your operating-system"
        " login ('biobank user map'); needed only when it is mapped to several.",
    ),
]
#: ``--format``/``-f``: table, csv or json (see :func:`emit`).
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
#: ``--reason``: why a registry record changes (kept with the event and the audit entry).
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept with the event and audit).")]
#: ``--limit``: at most N rows of a listing (default: all).
LimitOption = Annotated[int | None, typer.Option("--limit", help="At most N rows.")]
#: ``--purpose`` of registry reads: optional, only researchers need it.
PurposeOption = Annotated[
    str | None,
    typer.Option("--purpose", help="Research purpose (researchers): GRU, HMB, POA, DS:<ICD-10>."),
]
#: ``--purpose`` (env ``BIOBANK_PURPOSE``) of research commands: required.
ResearchPurposeOption = Annotated[
    str,
    typer.Option(
        "--purpose",
        envvar="BIOBANK_PURPOSE",
        help="Research purpose matched against consents: GRU, HMB, POA or DS:<ICD-10>.",
    ),
]


# -- the store and the acting user --------------------------------------------
def state(ctx: typer.Context) -> State:
    """Return the shared options of the root command."""
    root = ctx.find_root()
    assert root.obj is not None
    return root.obj  # type: ignore[no-any-return,unused-ignore]


@contextmanager
def open_store(
    ctx: typer.Context, *, read_only: bool = False, create: bool = False, check_audit: bool = True
) -> Iterator[Store]:
    """Open the store named by ``--store`` for the duration of a command.

    Parameters
    ----------
    ctx
        The command's context.
    read_only
        Open without write access.
    create
        Create the store if it is missing: only ``biobank init`` does. Otherwise
        a missing store is a :class:`~biobank.core.errors.StoreError` that names
        the path and ``biobank init``, and no file is written.
    check_audit
        Check the audit log against its head outside the store on open (only
        ``biobank audit verify`` skips it, to report what is wrong itself).
    """
    from biobank.core.store import Store

    store = Store(state(ctx).store, read_only=read_only, create=create, check_audit=check_audit)
    try:
        yield store
    finally:
        store.close()


def open_workbench(ctx: typer.Context, purpose: str) -> Workbench:
    """Open the store for research as ``--user`` with ``purpose`` (:func:`biobank.open`)."""
    import biobank
    from biobank.core.access import peer_principal
    from biobank.core.store import Store

    s = state(ctx)
    with Store(s.store, read_only=True, create=False) as store:
        user = peer_principal(store.con, user=s.user).user
    return biobank.open(s.store, user=user, purpose=purpose)


def acting_principal(ctx: typer.Context, store: Store, *, purpose: str | None = None) -> Principal:
    """Return who this command acts as: the user mapped to the operating-system login.

    ``--user`` chooses among the users the login is mapped to; it cannot name
    anyone else (:func:`biobank.core.access.peer_principal`).
    """
    from biobank.core.access import peer_principal

    return peer_principal(store.con, user=state(ctx).user, purpose=purpose)


# -- output --------------------------------------------------------------------
def emit(data: pl.DataFrame | list[dict[str, Any]] | dict[str, Any], fmt: OutputFormat) -> None:
    """Print a table (or a record) as an aligned table, CSV or JSON.

    The column types of a list of records are inferred from all rows, so a
    column that is empty in the first rows and filled later prints as well.
    """
    import polars as pl

    if isinstance(data, dict):
        data = [data]
    df = data if isinstance(data, pl.DataFrame) else pl.DataFrame(data, infer_schema_length=None)
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
