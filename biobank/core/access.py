"""Users, roles and permissions, checked in the library (not only in a UI).

Roles and what they may do (:data:`PERMISSIONS`):

============  ==========================================================
role          may
============  ==========================================================
admin         manage users; everything a registrar may; read the audit log
registrar     write and read the registry (participants, consents, specimens)
researcher    read pseudonymised research data of consented participants
auditor       read and verify the audit log
============  ==========================================================

No role may read the re-contact identifiers through a research query.
"""

from __future__ import annotations

import datetime as dt
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
    "require",
]


class Role(StrEnum):
    """The roles a user can have."""

    ADMIN = "admin"
    REGISTRAR = "registrar"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"


class Permission(StrEnum):
    """Actions checked by :func:`require`."""

    MANAGE_USERS = "manage_users"
    REGISTRY_WRITE = "registry_write"
    REGISTRY_READ = "registry_read"
    RECONTACT_READ = "recontact_read"
    LOAD_DATA = "load_data"
    RESEARCH_READ = "research_read"
    AUDIT_READ = "audit_read"


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
    Role.RESEARCHER: frozenset({Permission.RESEARCH_READ}),
    Role.AUDITOR: frozenset({Permission.AUDIT_READ}),
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
