"""Users, roles and permissions, checked in the library (not only in a UI).

Roles and what they may do (:data:`PERMISSIONS`):

============  ==========================================================
role          may
============  ==========================================================
admin         manage users; everything a registrar may; read the audit log
registrar     write and read the registry (participants, consents, specimens)
researcher    read pseudonymised research data of consented participants
auditor       read and verify the audit log
approver      decide data access requests and issue project extracts
              (the data access committee; never for their own request)
============  ==========================================================

A researcher may apply for data access (:mod:`biobank.research.access_requests`);
record-level research reads need an approved request for the purpose.

No role may read the re-contact identifiers through a research query.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
from dataclasses import dataclass
from enum import StrEnum

import duckdb

from biobank.core.errors import AccessDenied, NotFoundError, ValidationError

__all__ = [
    "PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
    "add_user",
    "get_principal",
    "map_login",
    "mapped_users",
    "os_login",
    "peer_principal",
    "require",
    "unmap_login",
]


class Role(StrEnum):
    """The roles a user can have."""

    ADMIN = "admin"
    REGISTRAR = "registrar"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"
    APPROVER = "approver"


class Permission(StrEnum):
    """Actions checked by :func:`require`."""

    MANAGE_USERS = "manage_users"
    REGISTRY_WRITE = "registry_write"
    REGISTRY_READ = "registry_read"
    RECONTACT_READ = "recontact_read"
    LOAD_DATA = "load_data"
    RESEARCH_READ = "research_read"
    AUDIT_READ = "audit_read"
    ACCESS_REQUEST = "access_request"
    ACCESS_APPROVE = "access_approve"
    ACCESS_EXTRACT = "access_extract"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            Permission.MANAGE_USERS,
            Permission.REGISTRY_WRITE,
            Permission.REGISTRY_READ,
            Permission.RECONTACT_READ,
            Permission.LOAD_DATA,
            Permission.AUDIT_READ,
        }
    ),
    Role.REGISTRAR: frozenset(
        {
            Permission.REGISTRY_WRITE,
            Permission.REGISTRY_READ,
            Permission.RECONTACT_READ,
            Permission.LOAD_DATA,
        }
    ),
    Role.RESEARCHER: frozenset({Permission.RESEARCH_READ, Permission.ACCESS_REQUEST}),
    Role.AUDITOR: frozenset({Permission.AUDIT_READ}),
    Role.APPROVER: frozenset({Permission.ACCESS_APPROVE, Permission.ACCESS_EXTRACT}),
}


@dataclass(frozen=True)
class Principal:
    """Who is acting, with which role, for which purpose.

    Parameters
    ----------
    user
        The user name.
    role
        The user's role.
    purpose
        For research reads: the intended use as a GA4GH DUO-style purpose
        (e.g. ``"HMB"``, ``"DS:E11"``, ``"GRU"``), matched against consents.
    """

    user: str
    role: Role
    purpose: str | None = None

    def can(self, permission: Permission) -> bool:
        """Return whether this principal's role grants ``permission``."""
        return permission in PERMISSIONS[self.role]


def require(principal: Principal, permission: Permission) -> None:
    """Raise unless ``principal`` may do ``permission``.

    Raises
    ------
    AccessDenied
        If the role lacks the permission.
    """
    if not principal.can(permission):
        raise AccessDenied(
            f"user '{principal.user}' with role '{principal.role}' may not {permission.value}: "
            "ask an admin for a role that allows it"
        )


def get_principal(
    con: duckdb.DuckDBPyConnection, user: str, *, purpose: str | None = None
) -> Principal:
    """Look up an active user's role.

    Raises
    ------
    NotFoundError
        If there is no such active user.
    """
    row = con.execute("SELECT role FROM app_user WHERE user_name = ? AND active", [user]).fetchone()
    if row is None:
        raise NotFoundError(
            f"no active user '{user}' in this store: an admin adds users with "
            "'biobank user add NAME --role ROLE'"
        )
    return Principal(user=user, role=Role(row[0]), purpose=purpose)


def add_user(
    con: duckdb.DuckDBPyConnection, actor: Principal | None, user: str, role: Role | str
) -> Principal:
    """Add a user. ``actor`` must be an admin, except for the very first user (bootstrap).

    Raises
    ------
    AccessDenied
        If ``actor`` is not an admin and users already exist.
    ValidationError
        If the role is unknown or the user exists.
    """
    try:
        role = Role(role)
    except ValueError as exc:
        raise ValidationError(
            f"role '{role}' is not one of: {', '.join(r.value for r in Role)}", field="role"
        ) from exc
    count_row = con.execute("SELECT count(*) FROM app_user").fetchone()
    first = count_row is not None and count_row[0] == 0
    if first:
        if role is not Role.ADMIN:
            raise ValidationError("the first user of a store must be an admin", field="role")
        created_by = user
    else:
        if actor is None:
            raise AccessDenied("only an admin may add users")
        require(actor, Permission.MANAGE_USERS)
        created_by = actor.user
    if con.execute("SELECT 1 FROM app_user WHERE user_name = ?", [user]).fetchone():
        raise ValidationError(f"user '{user}' already exists", field="user_name", value=user)
    con.execute(
        "INSERT INTO app_user VALUES (?, ?, TRUE, ?, ?)",
        [user, role.value, dt.datetime.now(dt.UTC).replace(tzinfo=None), created_by],
    )
    return Principal(user=user, role=role)


# --------------------------------------------------------------------------- peer authentication
def os_login() -> str:
    """Return the operating-system login this process acts for (never ``$USER``).

    ``$USER`` and ``$LOGNAME`` are set by whoever starts the process, so they
    prove nothing. The login is the name of the process's effective uid, except
    under ``sudo -u <service account>``: then it is the person who ran sudo
    (``SUDO_USER``, which sudo sets itself). That is how staff run commands on a
    server where only the service account can open the store file (see
    ``docs/operations.md``); whoever could fake ``SUDO_USER`` already runs as
    the account that owns the store.
    """
    uid = os.geteuid()
    sudo_user, sudo_uid = os.environ.get("SUDO_USER"), os.environ.get("SUDO_UID")
    if sudo_user and sudo_uid and sudo_uid.isdigit() and int(sudo_uid) != uid:
        return sudo_user
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return f"uid:{uid}"


def map_login(con: duckdb.DuckDBPyConnection, actor: Principal, login: str, user: str) -> None:
    """Let the operating-system ``login`` act as the biobank ``user`` (admins only).

    Raises
    ------
    AccessDenied
        If ``actor`` is not an admin.
    NotFoundError
        If there is no active user ``user``.
    ValidationError
        If the login is empty or already mapped to that user.
    """
    require(actor, Permission.MANAGE_USERS)
    if not login.strip():
        raise ValidationError("give an operating-system login", field="os_login")
    get_principal(con, user)
    if con.execute(
        "SELECT 1 FROM os_login_map WHERE os_login = ? AND user_name = ?", [login, user]
    ).fetchone():
        raise ValidationError(
            f"login '{login}' is already mapped to user '{user}'", field="os_login", value=login
        )
    con.execute(
        "INSERT INTO os_login_map VALUES (?, ?, ?, ?)",
        [login, user, dt.datetime.now(dt.UTC).replace(tzinfo=None), actor.user],
    )


def unmap_login(con: duckdb.DuckDBPyConnection, actor: Principal, login: str, user: str) -> None:
    """Remove a mapping made by :func:`map_login` (admins only).

    Raises
    ------
    AccessDenied
        If ``actor`` is not an admin.
    NotFoundError
        If ``login`` is not mapped to ``user``.
    """
    require(actor, Permission.MANAGE_USERS)
    row = con.execute(
        "DELETE FROM os_login_map WHERE os_login = ? AND user_name = ? RETURNING 1", [login, user]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"login '{login}' is not mapped to user '{user}'")


def mapped_users(con: duckdb.DuckDBPyConnection, login: str) -> list[str]:
    """Return the active biobank users the operating-system ``login`` may act as."""
    rows = con.execute(
        "SELECT m.user_name FROM os_login_map m JOIN app_user u USING (user_name)"
        " WHERE m.os_login = ? AND u.active ORDER BY 1",
        [login],
    ).fetchall()
    return [str(r[0]) for r in rows]


def peer_principal(
    con: duckdb.DuckDBPyConnection,
    *,
    user: str | None = None,
    purpose: str | None = None,
    login: str | None = None,
) -> Principal:
    """Return who the command line acts as, from the operating-system login (peer authentication).

    Parameters
    ----------
    con
        The store.
    user
        The biobank user to act as, when the login is mapped to several
        (``--user``); it must be one of them.
    purpose
        The research purpose of the principal.
    login
        The operating-system login (default: :func:`os_login`; tests only).

    Raises
    ------
    AccessDenied
        If the login is mapped to no user, or not to ``user``.
    ValidationError
        If the login is mapped to several users and ``user`` does not choose one.
    """
    login = os_login() if login is None else login
    allowed = mapped_users(con, login)
    hint = f"an admin maps it with 'biobank user map {login} USER'"
    if user is not None:
        if user not in allowed:
            raise AccessDenied(
                f"operating-system login '{login}' may not act as biobank user '{user}'"
                f" ({'it may act as ' + ', '.join(allowed) if allowed else 'it is not mapped'});"
                f" {hint}"
            )
        return get_principal(con, user, purpose=purpose)
    if not allowed:
        raise AccessDenied(
            f"operating-system login '{login}' is not mapped to a biobank user; {hint}"
        )
    if len(allowed) > 1:
        raise ValidationError(
            f"login '{login}' may act as {', '.join(allowed)}: choose one with --user",
            field="user",
        )
    return get_principal(con, allowed[0], purpose=purpose)
