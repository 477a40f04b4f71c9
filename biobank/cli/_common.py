"""Helpers shared by command modules: options, opening the store, the acting user, output.

Every option that more than one command takes is declared here once, as an
``Annotated`` alias (``StoreOption``, ``FormatOption``, ...); a command module
declares only the options that are its own.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
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
    "SHORT_LABELS",
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
    "render_table",
    "state",
]


class OutputFormat(StrEnum):
    """How a command prints a table.

    ``table`` is for people: the columns a person needs, formatted, fitted to
    the terminal (:func:`render_table`); ``tsv``, ``csv`` and ``json`` are for
    programs: every column, values as they are.
    """

    TABLE = "table"
    TSV = "tsv"
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
#: ``--format``/``-f``: table, tsv, csv or json (see :func:`emit`).
FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help="table: the main columns, formatted, to fit the terminal; tsv, csv, json: "
        "every column, unformatted.",
    ),
]
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
#: Rows a table prints at most (the rest: ``--format tsv``).
TABLE_ROWS = 200
#: Characters a text cell of a table shows at most.
TABLE_TEXT = 24
_GAP = "  "
_PLAIN_INTS = ("position", "_key", "_id", "year", "_year", "batch")
_FRACTIONS = ("frequency", "rate", "precision", "recall", "f1", "concordance", "fraction")


def _is_p_value(name: str) -> bool:
    return name == "p" or name.endswith(("p_value", "_p", "pvalue"))


def _cell(name: str, value: Any) -> str:
    """One value as a person reads it: p-values 1.2e-05, fractions 0.1234, counts 12,345."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if name.endswith(_PLAIN_INTS) else f"{value:,}"
    if isinstance(value, float):
        if _is_p_value(name):
            return f"{value:.2e}"
        if any(part in name for part in _FRACTIONS):
            return f"{value:.4f}"
        return f"{value:.4g}"
    if isinstance(value, list):
        value = ";".join(map(str, value))
    text = str(value)
    return text if len(text) <= TABLE_TEXT else text[: TABLE_TEXT - 1] + "…"


#: Short headers of common columns (after ``variant_`` is dropped), for :func:`render_table`.
SHORT_LABELS = {
    "case_alt_count": "case ALT",
    "control_alt_count": "ctrl ALT",
    "case_ref_count": "case REF",
    "control_ref_count": "ctrl REF",
    "alt_count": "ALT",
    "ref_count": "REF",
    "fisher_odds_ratio": "Fisher OR",
    "fisher_p_value": "Fisher p",
    "p_value": "p",
    "lrt_p_value": "LRT p",
    "score_p_value": "score p",
    "standard_error": "SE",
    "alt_allele_frequency": "ALT freq",
    "alt_allele_count": "ALT count",
    "hwe_p_value": "HWE p",
    "n_obs": "n",
    "gt_concordance": "GT conc",
}


def _label(name: str, labels: Mapping[str, str]) -> str:
    """A column's header: ``labels[name]``, else the name without ``variant_``, shortened."""
    short = name.removeprefix("variant_") or name
    return labels.get(name) or SHORT_LABELS.get(short, short)


def render_table(
    df: pl.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    width: int | None = None,
) -> str:
    """A table for a person: chosen columns, formatted numbers, within ``width`` characters.

    Headers are never wrapped: columns are taken in the order given while they
    fit in ``width`` (default: the terminal's, ``COLUMNS``); a note below
    gives the number of rows and names the columns left out (``--format tsv``
    gives every column). Numbers are
    right-aligned; p-values (columns named ``*p_value``) print as ``1.23e-05``,
    fractions (frequency, rate, precision, recall, F1, concordance) with 4
    decimals, other floats with 4 significant digits, counts with thousands
    separators (not positions, keys, ids or years); null is ``-``; text is cut
    at :data:`TABLE_TEXT` characters.

    Parameters
    ----------
    df
        The table.
    columns
        The columns a person needs, most important first (default: all);
        names not in ``df`` and columns that are entirely null are skipped.
        ``variant`` stands for ``contig:position REF>ALT`` made from the
        ``variant_*`` columns.
    labels
        Headers by column name.
    width
        Characters per line.
    """
    import polars as pl

    labels = labels or {}
    width = width or shutil.get_terminal_size((120, 24)).columns
    n_columns = df.width
    parts = {"variant_contig", "variant_position", "variant_ref", "variant_alt"}
    if (
        columns
        and "variant" in columns
        and "variant" not in df.columns
        and parts <= set(df.columns)
    ):
        df = df.with_columns(
            variant=pl.format(
                "{}:{} {}>{}",
                "variant_contig",
                "variant_position",
                "variant_ref",
                "variant_alt",
            )
        )
    wanted = [c for c in (columns or df.columns) if c in df.columns]
    wanted = [c for c in wanted if df.height == 0 or df[c].null_count() < df.height]
    shown = df.head(TABLE_ROWS)
    cells: list[tuple[str, list[str], bool]] = []
    used = 0
    left_out: list[str] = []
    for name in wanted:
        numeric = shown[name].dtype.is_numeric()
        values = [_cell(name, v) for v in shown[name].to_list()]
        head = _label(name, labels)
        col_width = max([len(head), *map(len, values)])
        if cells and used + len(_GAP) + col_width > width:
            left_out.append(head)
            continue
        used += col_width + (len(_GAP) if cells else 0)
        cells.append((head, values, numeric))

    def line(items: list[str]) -> str:
        out = []
        for (head, values, numeric), item in zip(cells, items, strict=True):
            w = max([len(head), *map(len, values)])
            out.append(item.rjust(w) if numeric else item.ljust(w))
        return _GAP.join(out).rstrip()

    lines = [line([head for head, _, _ in cells])]
    lines.append(line(["-" * max([len(h), *map(len, v)]) for h, v, _ in cells]))
    lines.extend(line([v[i] for _, v, _ in cells]) for i in range(shown.height))
    notes = []
    if df.height > shown.height:
        notes.append(f"{df.height - shown.height:,} more rows.")
    if left_out:
        notes.append(f"Not shown to fit {width} columns: {', '.join(left_out)}.")
    if len(cells) < n_columns:
        notes.append(f"{df.height:,} rows; all {n_columns} columns with --format tsv, csv or json.")
    else:
        notes.append(f"{df.height:,} rows.")
    lines.extend(textwrap.wrap(" ".join(notes), width=width, break_long_words=False))
    return "\n".join(lines)


def emit(
    data: pl.DataFrame | list[dict[str, Any]] | dict[str, Any],
    fmt: OutputFormat,
    *,
    columns: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Print a table (or a record) for a person (``table``) or a program (tsv, csv, json).

    ``table`` shows ``columns`` (default: all) formatted to fit the terminal
    (:func:`render_table`); ``tsv``, ``csv`` and ``json`` give every column
    with its value unformatted. The column types of a list of records are
    inferred from all rows, so a column that is empty in the first rows and
    filled later prints as well.
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
    elif fmt is OutputFormat.TSV:
        sys.stdout.write(df.write_csv(separator="\t"))
    else:
        typer.echo(render_table(df, columns=columns, labels=labels))
