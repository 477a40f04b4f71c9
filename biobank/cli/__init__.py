"""The ``biobank`` command: a thin layer over the library.

Each command parses its options, calls one library function and prints. The
root options (``--store``, ``--user``, ``-v``) are read here. Nobody's identity
is taken on trust: a command acts as the biobank user that an admin mapped to
the operating-system login running it (peer authentication,
:func:`biobank.core.access.peer_principal`); ``--user`` only chooses among the
users that login is mapped to; options that several
commands share are declared once in :mod:`biobank.cli._common`. Every
:class:`~biobank.core.errors.BiobankError` becomes a one-line message on standard
error and exit code 1 in :func:`main`. The command modules mirror the package's
stages and register their commands with ``register(app)``, so that heavy imports
happen only inside commands:

``admin``
    ``init`` (the only command that creates a store), ``user``, ``audit``.
``demo``
    ``demo-data`` and ``demo``.
``registry``
    ``registry``, ``participant``, ``consent``, ``specimen``.
``genomes``
    ``load-vcf``, ``verify``.
``panels``
    ``panel load``, ``panel list`` (reference panels).
``clinical``
    ``load-clinical``, ``cohort``.
``research``
    ``query``.
``sequencing``
    ``compare-calls``, ``load-sample-qc``, ``workflow`` (and ``registry sample-sheet``).
``network``
    ``partner`` (tokens of partner centres), ``federate`` (ask the network's centres).
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from biobank.__about__ import __version__
from biobank.cli._common import StoreOption, UserOption
from biobank.core.errors import AccessDenied, BiobankError

__all__ = ["State", "app", "main"]

app = typer.Typer(
    name="biobank",
    help="Genomics and biobank workbench: registry, workflow, genotype store and cohort queries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Modules under ``biobank.cli`` whose ``register(app)`` adds commands (in this
#: order, which is the order of ``biobank --help``).
COMMAND_MODULES = [
    "admin",
    "demo",
    "registry",
    "genomes",
    "clinical",
    "research",
    "access",
    "sequencing",
    "service",
    "panels",
    "network",
    "families",
]


logger = logging.getLogger(__name__)


@dataclass
class State:
    """Options shared by every command (the typer context object)."""

    store: Path
    user: str | None
    verbose: int


#: the root options of the command being run (for auditing a refusal after it ends)
_last_state: State | None = None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biobank {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    store: StoreOption = Path("biobank.duckdb"),
    user: UserOption = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug).")
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    global _last_state
    ctx.obj = _last_state = State(store=store, user=user, verbose=verbose)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"biobank.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command module not written yet
        if _exc.name != f"biobank.cli.{_name}":
            raise
        continue
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the ``biobank`` command; return its exit code.

    A :class:`~biobank.core.errors.BiobankError` is printed as ``error: <message>``
    on standard error and gives exit code 1.
    """
    try:
        app(args=argv, prog_name="biobank")
    except AccessDenied as exc:
        typer.echo(f"error: {exc}", err=True)
        if not exc.audited:  # a library refusal is in the log already: record it once
            _audit_refusal(exc, sys.argv[1:] if argv is None else argv)
        return 1
    except BiobankError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    except SystemExit as exc:  # click's own exit (help, usage errors, typer.Exit)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _audit_refusal(exc: AccessDenied, argv: list[str]) -> None:
    """Record a refused command in the store's audit log (best effort: a store may be busy)."""
    from biobank.core import audit
    from biobank.core.access import mapped_users, os_login
    from biobank.core.store import Store

    if _last_state is None or not _last_state.store.exists():
        return
    login = os_login()
    words, skip = [], False
    for arg in argv:  # the command and its arguments, without the root options' values
        if skip:
            skip = False
        elif arg in ("--store", "--user"):
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    command = " ".join(words)[:200]
    try:
        with Store(_last_state.store, create=False) as store:
            users = mapped_users(store.con, login)
            user = _last_state.user if _last_state.user in users else None
            role = "none"
            if user is not None:
                row = store.con.execute(
                    "SELECT role FROM app_user WHERE user_name = ?", [user]
                ).fetchone()
                role = str(row[0]) if row else "none"
            with store.transaction() as con:
                audit.record_refusal(
                    con,
                    user=user or f"os:{login}",
                    role=role,
                    action="access.refused",
                    target=command,
                    detail={"os_login": login, "reason": str(exc)[:300], "via": "cli"},
                )
    except BiobankError as err:  # the refusal stands; say why it is not in the log
        logger.warning("could not audit the refused command: %s", err)


def _entry() -> None:
    sys.exit(main())
