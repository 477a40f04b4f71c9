"""Store administration commands: ``init``, ``user``, ``audit``.

``init`` is the only command that creates a store; every other command refuses
a store path that does not exist (see :func:`biobank.cli._common.open_store`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli._common import (
    FormatOption,
    OutputFormat,
    acting_principal,
    emit,
    open_store,
    state,
)

__all__ = ["register"]

user_app = typer.Typer(help="Manage users and roles (admins only).", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="The store file to create (default: --store).")
    ] = None,
    admin: Annotated[
        str | None, typer.Option(help="Name of the first admin user (default: --user).")
    ] = None,
) -> None:
    """Create (or migrate) the store; with a new store, add the first admin."""
    from biobank.core.access import Role, add_user
    from biobank.core.ids import center_key

    if path is not None:
        state(ctx).store = path
    with open_store(ctx, create=True) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            n = con.execute("SELECT count(*) FROM app_user").fetchone()
            if n is not None and n[0] == 0:
                name = admin or state(ctx).user
                assert name is not None
                add_user(con, None, name, Role.ADMIN)
                typer.echo(f"created store {store.path} with admin user '{name}'")
            else:
                typer.echo(f"store {store.path} is at schema version {store.schema_version()}")


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new user's name.")],
    role: Annotated[str, typer.Option(help="admin, registrar, researcher or auditor.")],
) -> None:
    """Add a user with a role."""
    from biobank.core import audit
    from biobank.core.access import add_user

    with open_store(ctx) as store:
        actor = acting_principal(ctx, store)
        with store.transaction() as con:
            add_user(con, actor, name, role)
            audit.record(con, actor, "user.create", name, {"role": role})
    typer.echo(f"added user '{name}' with role '{role}'")


@user_app.command("list")
def user_list(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """List users and their roles."""
    from biobank.core.access import Permission, require

    with open_store(ctx) as store:
        require(acting_principal(ctx, store), Permission.MANAGE_USERS)
        df = store.con.execute(
            "SELECT user_name, role, active, created_at, created_by FROM app_user ORDER BY 1"
        ).pl()
    emit(df, fmt)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the audit log (hash chain, head outside the store); exit 1 naming the problem."""
    from biobank.core import audit
    from biobank.core.access import Permission, require

    with open_store(ctx, read_only=True, check_audit=False) as store:
        require(acting_principal(ctx, store), Permission.AUDIT_READ)
        report = audit.verify(store.con)
    typer.echo(f"audit log intact: {report.entries} entries, last hash {report.last_hash[:16]}")


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Show the last N entries.")] = 50,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show the newest audit log entries."""
    from biobank.core.access import Permission, require

    with open_store(ctx, read_only=True) as store:
        require(acting_principal(ctx, store), Permission.AUDIT_READ)
        df = store.con.execute(
            "SELECT entry_id, logged_at, user_name, role, action, target, CAST(detail AS VARCHAR)"
            " AS detail FROM audit_log ORDER BY entry_id DESC LIMIT ?",
            [limit],
        ).pl()
    emit(df, fmt)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init)
    app.add_typer(user_app, name="user")
    app.add_typer(audit_app, name="audit")
