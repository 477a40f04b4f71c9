"""Service commands: ``serve`` (the staff web application) and ``web-password``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli._common import acting_principal, open_store, state

__all__ = ["register"]


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    root_path: Annotated[
        str, typer.Option(help="Path prefix under a reverse proxy, e.g. /biobank.")
    ] = "",
    secure_cookies: Annotated[bool, typer.Option(help="Mark cookies Secure (behind TLS).")] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(help="Proxies trusted for X-Forwarded-For (the audited client address)."),
    ] = "127.0.0.1",
    beacon_config: Annotated[
        Path | None, typer.Option(help="YAML settings of the Beacon (docs/beacon.md).")
    ] = None,
) -> None:
    """Run the staff web application over the store (see docs/service.md)."""
    import uvicorn

    from biobank.research.beacon.config import BeaconConfig
    from biobank.service import create_app
    from biobank.service.app import load_secret

    store = Path(state(ctx).store)
    beacon = BeaconConfig.load(beacon_config) if beacon_config else None
    app = create_app(store, secret_key=load_secret(store), https_only=secure_cookies, beacon=beacon)
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        root_path=root_path,
    )


def web_password(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The store user whose web password is set.")],
) -> None:
    """Set a user's web password (admins; another user must change it at first login)."""
    from biobank.service.accounts import reset_password

    password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with open_store(ctx) as store:
        actor = acting_principal(ctx, store)
        reset_password(store, actor, user, password, client="cli", must_change=user != actor.user)
    typer.echo(f"web password of {user} set")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``web-password`` to the ``biobank`` command."""
    app.command("serve")(serve)
    app.command("web-password")(web_password)
