"""The national network: ``partner`` (tokens of other centres) and ``federate`` (ask them).

``partner`` commands act on this centre's store (admins); ``federate`` needs
no store: it reads a centres file (``docs/federation.md``) and asks every
centre's ``biobank serve`` over HTTPS with the token each centre issued.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from biobank.cli._common import FormatOption, OutputFormat, acting_principal, emit, open_store

__all__ = ["register"]

partner_app = typer.Typer(
    help="Partner centres that may ask this one (Beacon, federation; admins).",
    no_args_is_help=True,
)
federate_app = typer.Typer(
    help="Ask every centre of a centres file the same question (aggregates only).",
    no_args_is_help=True,
)

CentresOption = Annotated[
    Path, typer.Option("--centres", help="YAML file: centres: [{name, url, token | token_env}].")
]
FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", help="A Beacon filter (ICD10:E11, NCIT:C20197, cohort:T2D, age>=40)."),
]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for each centre.")]


@partner_app.command("add")
def partner_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The partner centre's name.")],
    purpose: Annotated[
        str, typer.Option(help="Purpose its agreement covers: HMB, GRU, DS:E11 ...")
    ],
) -> None:
    """Register a partner centre and print its token (shown once: send it securely)."""
    from biobank.research.partners import add_partner

    with open_store(ctx) as store:
        token = add_partner(store, acting_principal(ctx, store), name, purpose=purpose)
    typer.echo(f"partner '{name}' added; its token (shown once, only its hash is kept):")
    typer.echo(token)


@partner_app.command("list")
def partner_list(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """List partner centres (never their tokens)."""
    from biobank.core.access import Permission, require
    from biobank.research.partners import list_partners

    with open_store(ctx) as store:
        require(acting_principal(ctx, store), Permission.MANAGE_USERS)
        rows = list_partners(store.con)
    emit(rows, fmt)


@partner_app.command("revoke")
def partner_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The partner centre.")]
) -> None:
    """Revoke a partner's token at once."""
    from biobank.research.partners import revoke_partner

    with open_store(ctx) as store:
        revoke_partner(store, acting_principal(ctx, store), name)
    typer.echo(f"partner '{name}' revoked")


@partner_app.command("approve")
def partner_approve(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The partner centre.")],
    request_id: Annotated[str, typer.Option(help="The approved data access request's id.")],
    purpose: Annotated[str, typer.Option(help="The approved purpose (the partner's).")],
    expires: Annotated[str | None, typer.Option(help="Last valid day, YYYY-MM-DD.")] = None,
) -> None:
    """Record a data access committee approval (record-level Beacon answers; see docs)."""
    from biobank.research.partners import record_approved_request

    until = dt.date.fromisoformat(expires) if expires else None
    with open_store(ctx) as store:
        record_approved_request(
            store,
            acting_principal(ctx, store),
            request_id,
            requester=name,
            purpose=purpose,
            expires_on=until,
        )
    typer.echo(f"request {request_id} of '{name}' recorded as approved for {purpose}")


def _federation(centres: Path, timeout: float) -> Any:
    from biobank.research.federation import Federation, load_centres

    return Federation(load_centres(centres), timeout=timeout)


def _missing(missing: dict[str, str]) -> None:
    for name, why in missing.items():
        typer.echo(f"missing centre {name}: {why}", err=True)


@federate_app.command("count")
def federate_count(
    centres: CentresOption, filters: FilterOption = None, timeout: TimeoutOption = 30.0
) -> None:
    """Participants the filters select, summed over the centres."""
    from biobank.research.federation import federated_count

    result = federated_count(_federation(centres, timeout), list(filters or []))
    typer.echo(
        json.dumps(
            {"n": result.value, "centres": result.centres, "missing": result.missing}, indent=1
        )
    )
    _missing(result.missing)


@federate_app.command("frequencies")
def federate_frequencies(
    centres: CentresOption,
    region: Annotated[str, typer.Option(help="chr1:1-5000 (1-based, inclusive).")],
    cohort: Annotated[list[str] | None, typer.Option(help="A registry cohort (repeat).")] = None,
    filters: FilterOption = None,
    timeout: TimeoutOption = 30.0,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """ALT allele frequencies per variant and cohort, pooled over the centres."""
    from biobank.research.federation import federated_frequencies

    result = federated_frequencies(
        _federation(centres, timeout),
        region,
        cohorts=list(cohort or []),
        filters=list(filters or []),
    )
    rows = [
        {"cohort": c, "variant": v}
        | {k: x for k, x in cell.items() if k != "suppressed_at"}
        | {"suppressed_at": ",".join(cell["suppressed_at"])}
        for c, cells in result.value.items()
        for v, cell in cells.items()
    ]
    emit(rows, fmt)
    _missing(result.missing)


@federate_app.command("logistic")
def federate_logistic(
    centres: CentresOption,
    outcome: Annotated[str, typer.Option(help="Cases: an ICD-10 code or range (E11, I20-I25).")],
    covariate: Annotated[
        list[str], typer.Option(help="sex, age or variant:<contig>:<pos>:<ref>:<alt> (repeat).")
    ],
    reference_year: Annotated[int, typer.Option(help="Age = this year - birth year.")] = 2026,
    filters: FilterOption = None,
    timeout: TimeoutOption = 30.0,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Logistic regression pooled over the centres (per-iteration sufficient statistics)."""
    from biobank.research.federation import federated_logistic

    fit = federated_logistic(
        _federation(centres, timeout),
        outcome,
        list(covariate),
        reference_year=reference_year,
        filters=list(filters or []),
    )
    emit(
        [
            {"term": t, "beta": float(b), "standard_error": float(s)}
            for t, b, s in zip(fit.columns, fit.beta, fit.standard_error, strict=True)
        ],
        fmt,
    )
    typer.echo(
        f"n = {fit.n} ({fit.n_cases} cases) at {', '.join(fit.centres)};"
        f" {fit.iterations} Newton iterations",
        err=True,
    )
    _missing(fit.missing)


def register(app: typer.Typer) -> None:
    """Add ``partner`` and ``federate`` to the ``biobank`` command."""
    app.add_typer(partner_app, name="partner")
    app.add_typer(federate_app, name="federate")
