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
        str | None,
        typer.Option(
            help="Name of the first admin user (default: --user, else your operating-system"
            " login); your login is mapped to it."
        ),
    ] = None,
) -> None:
    """Create (or migrate) the store; with a new store, add the first admin."""
    from biobank.core import audit
    from biobank.core.access import Role, add_user, map_login, os_login
    from biobank.core.ids import center_key

    if path is not None:
        state(ctx).store = path
    with open_store(ctx, create=True) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            n = con.execute("SELECT count(*) FROM app_user").fetchone()
            if n is not None and n[0] == 0:
                name = admin or state(ctx).user or os_login()
                first = add_user(con, None, name, Role.ADMIN)
                map_login(con, first, os_login(), name)
                audit.record(con, first, "user.create", name, {"role": "admin", "first": True})
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


@user_app.command("map")
def user_map(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="An operating-system login on this server.")],
    name: Annotated[str, typer.Argument(help="The biobank user it may act as.")],
) -> None:
    """Let an operating-system login act as a biobank user on the command line."""
    from biobank.core import audit
    from biobank.core.access import map_login

    with open_store(ctx) as store:
        actor = acting_principal(ctx, store)
        with store.transaction() as con:
            map_login(con, actor, login, name)
            audit.record(con, actor, "user.map_login", name, {"os_login": login})
    typer.echo(f"login '{login}' may now act as '{name}'")


@user_app.command("unmap")
def user_unmap(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="An operating-system login.")],
    name: Annotated[str, typer.Argument(help="The biobank user.")],
) -> None:
    """Stop an operating-system login from acting as a biobank user."""
    from biobank.core import audit
    from biobank.core.access import unmap_login

    with open_store(ctx) as store:
        actor = acting_principal(ctx, store)
        with store.transaction() as con:
            unmap_login(con, actor, login, name)
            audit.record(con, actor, "user.unmap_login", name, {"os_login": login})
    typer.echo(f"login '{login}' may no longer act as '{name}'")


@user_app.command("logins")
def user_logins(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """List which operating-system logins may act as which users."""
    from biobank.core.access import Permission, require

    with open_store(ctx) as store:
        require(acting_principal(ctx, store), Permission.MANAGE_USERS)
        df = store.con.execute(
            "SELECT os_login, user_name, created_at, created_by FROM os_login_map ORDER BY 1, 2"
        ).pl()
    emit(df, fmt)


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
