"""Web accounts: passwords (argon2id), failed-login lockout, server-side login sessions.

A web account belongs to a user of the store (:mod:`biobank.core.access`): the
role and the ``active`` flag stay in ``app_user``; table ``web_account`` adds
the password hash and the failed-login counter, ``web_session`` the login
sessions (schema ``060_web.sql``). The session cookie carries only a random
token; its sha256 is the session's key, so a copy of the store holds no usable
session.

Every change is audited with :func:`biobank.core.audit.record` in the same
transaction. :func:`set_role` and :func:`set_active` write ``app_user``, for
which :mod:`biobank.core.access` has no function yet; they check
``manage_users`` with :func:`~biobank.core.access.require` like ``add_user``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from biobank.core import audit
from biobank.core.access import Permission, Principal, Role, add_user, get_principal, require
from biobank.core.errors import AccessDenied, NotFoundError, ValidationError
from biobank.core.store import Store

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "LoginPolicy",
    "RateLimiter",
    "authenticate",
    "change_password",
    "create_account",
    "end_session",
    "list_accounts",
    "reset_password",
    "session_principal",
    "set_active",
    "set_password",
    "set_role",
    "start_session",
]

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10

#: The password hasher (argon2id, the library's defaults); tests replace it by a cheaper one.
HASHER = PasswordHasher()
#: Hash verified against when the user does not exist (same time as a known user), per hasher.
_DUMMY: dict[int, str] = {}


def _dummy_hash() -> str:
    if id(HASHER) not in _DUMMY:
        _DUMMY[id(HASHER)] = HASHER.hash(secrets.token_hex(16))
    return _DUMMY[id(HASHER)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class LoginPolicy:
    """Lockout and session lifetimes.

    Parameters
    ----------
    max_failures
        Failed logins in a row after which the account is locked.
    lockout
        How long a locked account stays locked.
    session_lifetime
        Absolute lifetime of a login session (idle expiry is the cookie's max age).
    """

    max_failures: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    session_lifetime: dt.timedelta = dt.timedelta(hours=10)


class RateLimiter:
    """Failed logins per client address in a sliding window (in memory, one process).

    Parameters
    ----------
    limit
        Failed attempts allowed per window.
    window
        Window length in seconds.
    """

    def __init__(self, *, limit: int = 20, window: float = 600.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(client, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def blocked(self, client: str) -> bool:
        """Return whether ``client`` used up its failed attempts."""
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.limit

    def failed(self, client: str) -> None:
        """Count one failed attempt of ``client``."""
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"a password has at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )


def set_password(
    con: duckdb.DuckDBPyConnection, user: str, password: str, *, must_change: bool = False
) -> None:
    """Store the argon2id hash of ``password`` for ``user`` (no permission check: callers do).

    Raises
    ------
    ValidationError
        If the password is too short.
    """
    _check_password(password)
    con.execute(
        "INSERT OR REPLACE INTO web_account VALUES (?, ?, 0, NULL, ?, ?)",
        [user, HASHER.hash(password), must_change, _now()],
    )
    con.execute(
        "UPDATE web_session SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL",
        [_now(), user],
    )


def create_account(
    store: Store,
    actor: Principal | None,
    user: str,
    role: Role | str,
    password: str,
    *,
    client: str,
) -> Principal:
    """Add a store user (:func:`~biobank.core.access.add_user`) with a web password.

    The first user of a store (an admin) needs no ``actor``. The new user must
    change the password at the first login, unless it is that first admin.
    """
    _check_password(password)
    with store.transaction() as con:
        new = add_user(con, actor, user, role)
        set_password(con, user, password, must_change=actor is not None)
        audit.record(
            con, actor or new, "web.account.create", user, {"role": new.role, "client": client}
        )
    return new


def list_accounts(store: Store, actor: Principal) -> list[dict[str, object]]:
    """Return every user with role, active flag and web-account state (``manage_users``)."""
    require(actor, Permission.MANAGE_USERS)
    cur = store.con.execute(
        "SELECT u.user_name, u.role, u.active, a.user_name IS NOT NULL AS has_password,"
        " a.failed_logins, a.locked_until, a.must_change"
        " FROM app_user u LEFT JOIN web_account a USING (user_name) ORDER BY u.user_name"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _principal_of(con: duckdb.DuckDBPyConnection, user: str) -> Principal | None:
    row = con.execute("SELECT role FROM app_user WHERE user_name = ? AND active", [user]).fetchone()
    return Principal(user, Role(row[0])) if row else None


def authenticate(
    store: Store, user: str, password: str, *, client: str, policy: LoginPolicy
) -> Principal | None:
    """Check a login; count failures, lock the account after ``policy.max_failures``.

    Every failure of a known user is audited (``web.login.failed``, and
    ``web.login.locked`` when it locks the account); a success resets the count.

    Returns
    -------
    Principal or None
        The user, or ``None`` if the name, the password or the account's state is wrong
        (the caller does not say which).
    """
    now = _now()
    with store.transaction() as con:
        principal = _principal_of(con, user)
        row = con.execute(
            "SELECT password_hash, failed_logins, locked_until FROM web_account"
            " WHERE user_name = ?",
            [user],
        ).fetchone()
        if principal is None or row is None:
            with contextlib.suppress(VerificationError):  # same time as a known user
                HASHER.verify(_dummy_hash(), password)
            logger.warning("failed login for unknown or inactive user %r from %s", user, client)
            return None
        stored_hash, failures, locked_until = row
        if locked_until is not None and locked_until > now:
            audit.record(con, principal, "web.login.refused", user, {"client": client})
            return None
        try:
            HASHER.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            failures = int(failures) + 1
            lock = failures >= policy.max_failures
            con.execute(
                "UPDATE web_account SET failed_logins = ?, locked_until = ? WHERE user_name = ?",
                [0 if lock else failures, now + policy.lockout if lock else None, user],
            )
            audit.record(
                con, principal, "web.login.failed", user, {"client": client, "failures": failures}
            )
            if lock:
                audit.record(
                    con,
                    principal,
                    "web.login.locked",
                    user,
                    {"client": client, "until": (now + policy.lockout).isoformat()},
                )
                logger.warning("account %s locked after %d failed logins", user, failures)
            return None
        if HASHER.check_needs_rehash(stored_hash):
            con.execute(
                "UPDATE web_account SET password_hash = ? WHERE user_name = ?",
                [HASHER.hash(password), user],
            )
        con.execute(
            "UPDATE web_account SET failed_logins = 0, locked_until = NULL WHERE user_name = ?",
            [user],
        )
    return principal


def start_session(store: Store, principal: Principal, *, client: str, policy: LoginPolicy) -> str:
    """Open a login session; return the token for the cookie (audited ``web.login``)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    with store.transaction() as con:
        con.execute(
            "INSERT INTO web_session VALUES (?, ?, ?, ?, ?, NULL)",
            [_digest(token), principal.user, client, now, now + policy.session_lifetime],
        )
        audit.record(con, principal, "web.login", principal.user, {"client": client})
    return token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_principal(store: Store, token: str) -> tuple[Principal, bool] | None:
    """Return the user of a live session and whether they must change the password.

    ``None`` if the session is unknown, expired, revoked, or its user inactive.
    """
    row = store.con.execute(
        "SELECT s.user_name, coalesce(a.must_change, FALSE) FROM web_session s"
        " LEFT JOIN web_account a USING (user_name)"
        " WHERE s.session_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?",
        [_digest(token), _now()],
    ).fetchone()
    if row is None:
        return None
    try:
        return get_principal(store.con, row[0]), bool(row[1])
    except NotFoundError:
        return None


def end_session(store: Store, principal: Principal, token: str, *, client: str) -> None:
    """Revoke one session (logout), audited ``web.logout``."""
    with store.transaction() as con:
        con.execute(
            "UPDATE web_session SET revoked_at = ? WHERE session_id = ?", [_now(), _digest(token)]
        )
        audit.record(con, principal, "web.logout", principal.user, {"client": client})


def change_password(
    store: Store, principal: Principal, current: str, new: str, *, client: str
) -> None:
    """Change one's own password; every session of the user ends (audited).

    Raises
    ------
    AccessDenied
        If ``current`` is wrong.
    ValidationError
        If ``new`` is too short or equal to ``current``.
    """
    _check_password(new)
    if new == current:
        raise ValidationError("the new password must differ from the current one", field="new")
    with store.transaction() as con:
        row = con.execute(
            "SELECT password_hash FROM web_account WHERE user_name = ?", [principal.user]
        ).fetchone()
        try:
            if row is None:
                raise VerificationError("no web account")
            HASHER.verify(row[0], current)
        except (VerificationError, InvalidHashError) as exc:
            raise AccessDenied("the current password is wrong") from exc
        set_password(con, principal.user, new)
        audit.record(con, principal, "web.password.change", principal.user, {"client": client})


def reset_password(
    store: Store,
    actor: Principal,
    user: str,
    password: str,
    *,
    client: str,
    must_change: bool = True,
) -> None:
    """Set a user's password (``manage_users``); by default they must change it at next login."""
    require(actor, Permission.MANAGE_USERS)
    with store.transaction() as con:
        _existing(con, user)
        set_password(con, user, password, must_change=must_change)
        audit.record(con, actor, "web.password.reset", user, {"client": client})


def _existing(con: duckdb.DuckDBPyConnection, user: str) -> None:
    if not con.execute("SELECT 1 FROM app_user WHERE user_name = ?", [user]).fetchone():
        raise NotFoundError(f"no user '{user}' in this store")


def set_role(store: Store, actor: Principal, user: str, role: Role | str, *, client: str) -> None:
    """Give ``user`` another role (``manage_users``); an admin cannot demote themself."""
    require(actor, Permission.MANAGE_USERS)
    try:
        new_role = Role(role)
    except ValueError as exc:
        raise ValidationError(
            f"role '{role}' is not one of: {', '.join(r.value for r in Role)}", field="role"
        ) from exc
    if user == actor.user and new_role is not Role.ADMIN:
        raise ValidationError("an admin cannot remove their own admin role", field="role")
    with store.transaction() as con:
        _existing(con, user)
        con.execute("UPDATE app_user SET role = ? WHERE user_name = ?", [new_role.value, user])
        audit.record(con, actor, "web.account.role", user, {"role": new_role, "client": client})


def set_active(store: Store, actor: Principal, user: str, active: bool, *, client: str) -> None:
    """Activate or deactivate ``user`` (``manage_users``); deactivation ends their sessions."""
    require(actor, Permission.MANAGE_USERS)
    if user == actor.user and not active:
        raise ValidationError("an admin cannot deactivate themself", field="user_name")
    with store.transaction() as con:
        _existing(con, user)
        con.execute("UPDATE app_user SET active = ? WHERE user_name = ?", [active, user])
        con.execute(
            "UPDATE web_account SET failed_logins = 0, locked_until = NULL WHERE user_name = ?",
            [user],
        )
        if not active:
            con.execute(
                "UPDATE web_session SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL",
                [_now(), user],
            )
        audit.record(con, actor, "web.account.active", user, {"active": active, "client": client})
