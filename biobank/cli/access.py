"""Data access commands: ``data-dictionary`` and ``access request|approve|reject|list|extract``.

``access`` acts as the user mapped to the operating-system login (``--user``
chooses among several): researchers apply, approvers (the data access
committee) decide and issue extracts. The rules live in
:mod:`biobank.research.access_requests` and :mod:`biobank.research.extracts`.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from biobank.cli._common import (
    FormatOption,
    OutputFormat,
    acting_principal,
    emit,
    open_store,
)

if TYPE_CHECKING:
    from biobank.research.access_requests import AccessRequest

__all__ = ["register"]

access_app = typer.Typer(
    help="Data access requests, decisions and project extracts.", no_args_is_help=True
)


def _row(req: AccessRequest) -> dict[str, Any]:
    """A request as one flat record (fields joined with ``;`` for CSV)."""
    from dataclasses import asdict

    out = asdict(req)
    out["fields"] = ";".join(req.fields)
    return out


class DictionaryFormat(StrEnum):
    """Output formats of ``data-dictionary``."""

    MD = "md"
    CSV = "csv"


def data_dictionary_cmd(
    fmt: Annotated[
        DictionaryFormat, typer.Option("--format", "-f", help="md (Markdown) or csv.")
    ] = DictionaryFormat.MD,
) -> None:
    """Print every column of the store schema with its type, class and description."""
    import sys

    from biobank.core.classification import data_dictionary, data_dictionary_markdown
    from biobank.core.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "schema.duckdb") as store:
        df = data_dictionary(store.con)
    if fmt is DictionaryFormat.CSV:
        sys.stdout.write(df.write_csv())
    else:
        typer.echo(data_dictionary_markdown(df))


@access_app.command("request")
def request_cmd(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Short project name.")],
    title: Annotated[str, typer.Option(help="What the project studies.")],
    institution: Annotated[str, typer.Option(help="The applicant's institution.")],
    purpose: Annotated[str, typer.Option(help="GRU, HMB, POA or DS:<ICD-10>.")],
    field: Annotated[
        list[str], typer.Option("--field", help="TABLE.COLUMN (repeatable); see data-dictionary.")
    ],
    period_end: Annotated[str, typer.Option(help="Last day of the project (YYYY-MM-DD).")],
    country: Annotated[str, typer.Option(help="ISO two-letter country.")] = "CN",
    foreign_party: Annotated[
        bool, typer.Option("--foreign-party", help="A foreign organisation or person takes part.")
    ] = False,
    period_start: Annotated[str | None, typer.Option(help="Default today.")] = None,
    cohort: Annotated[
        str | None, typer.Option(help="Cohort definition JSON (text or @file).")
    ] = None,
    hgr_approval: Annotated[
        str | None, typer.Option(help="Approval number of the human genetic resources authority.")
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Apply for data access (researchers); an approver decides."""
    from biobank.research.access_requests import submit_request

    text = Path(cohort[1:]).read_text() if cohort and cohort.startswith("@") else cohort
    with open_store(ctx) as store:
        req = submit_request(
            store,
            acting_principal(ctx, store),
            project=project,
            title=title,
            institution=institution,
            country=country,
            foreign_party=foreign_party,
            purpose=purpose,
            fields=field,
            period_start=period_start or dt.date.today(),
            period_end=period_end,
            cohort=text,
            hgr_approval=hgr_approval,
        )
    emit(_row(req), fmt)


@access_app.command("approve")
def approve_cmd(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="The request.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the decision).")],
    expires_on: Annotated[str | None, typer.Option(help="Default: end of the period.")] = None,
    hgr_approval: Annotated[
        str | None, typer.Option(help="Authority approval number (foreign-party requests).")
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Approve a pending request (approvers; not your own)."""
    from biobank.research.access_requests import approve_request

    with open_store(ctx) as store:
        req = approve_request(
            store,
            acting_principal(ctx, store),
            request_id,
            reason=reason,
            expires_on=expires_on,
            hgr_approval=hgr_approval,
        )
    emit(_row(req), fmt)


@access_app.command("reject")
def reject_cmd(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="The request.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the decision).")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Reject a pending request (approvers; not your own)."""
    from biobank.research.access_requests import reject_request

    with open_store(ctx) as store:
        req = reject_request(store, acting_principal(ctx, store), request_id, reason=reason)
    emit(_row(req), fmt)


@access_app.command("list")
def list_cmd(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, approved or rejected.")] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List requests (researchers: their own; approvers and admins: all)."""
    from biobank.research.access_requests import list_requests

    with open_store(ctx, read_only=True) as store:
        df = list_requests(store.con, acting_principal(ctx, store), status=status)
    emit(
        df.with_columns(df["fields"].list.join(";")),
        fmt,
        columns=["request_id", "project", "applicant", "purpose", "foreign_party", "status"],
    )


@access_app.command("extract")
def extract_cmd(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="An approved request.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the extract files.")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Issue (or re-issue) the project extract of an approved request (approvers)."""
    from biobank.research.extracts import build_extract

    with open_store(ctx) as store:
        res = build_extract(store, acting_principal(ctx, store), request_id, out)
    m = res.manifest
    emit(
        {
            "issue": res.issue,
            "extract": str(res.path),
            "sha256": m["files"]["extract"]["sha256"],
            "participants": m["participants"],
            "withdrawn": m["withdrawn_since_previous_issue"],
            "manifest": str(res.manifest_path),
        },
        fmt,
    )


@access_app.command("withdrawals")
def withdrawals_cmd(
    ctx: typer.Context,
    request_id: Annotated[int, typer.Argument(help="An extracted request.")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List who left a project's cohort since its last extract (project pseudonyms)."""
    from biobank.research.extracts import withdrawal_list

    with open_store(ctx) as store:
        emit(withdrawal_list(store, acting_principal(ctx, store), request_id), fmt)


def register(app: typer.Typer) -> None:
    """Add ``data-dictionary`` and ``access`` to the root command."""
    app.command("data-dictionary")(data_dictionary_cmd)
    app.add_typer(access_app, name="access")
