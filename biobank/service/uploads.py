"""Uploaded import files kept on the server between the preview and the commit.

The browser uploads a CSV once; the service keeps its bytes in ``web_upload``
(schema ``105_web_uploads.sql``) under a random token that only the page's URL
holds (the table has its sha256), bound to the uploading user, and the commit
imports exactly those bytes: a copy sent by the client is never trusted. The
bytes hold names and identity numbers, so they are kept as a Fernet token under
a key derived (HKDF-SHA256) from the center key, which lives outside the
database; a row is deleted at commit, at discard, and after :data:`LIFETIME`
(expired rows are purged at every upload).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from biobank.core.access import Principal
from biobank.core.errors import NotFoundError, ValidationError
from biobank.core.ids import center_key

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = ["LIFETIME", "MAX_BYTES", "Upload", "discard", "fetch", "keep"]

#: How long an upload waits for its commit.
LIFETIME = dt.timedelta(hours=2)
#: The largest file accepted (a 10,000-row specimens file is about 1.5 MB).
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """An upload as kept: its kind, file name, checksum, bytes and times."""

    kind: str
    file_name: str
    checksum: str
    data: bytes
    created_at: dt.datetime
    expires_at: dt.datetime


def _fernet(store: Store) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"biobank web upload v1"
    ).derive(center_key(store.path))
    return Fernet(base64.urlsafe_b64encode(derived))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def keep(store: Store, principal: Principal, kind: str, file_name: str, data: bytes) -> str:
    """Keep an uploaded file for ``principal``; return the token that names it.

    Raises
    ------
    ValidationError
        For an empty file or one larger than :data:`MAX_BYTES`.
    """
    if not data:
        raise ValidationError("the uploaded file is empty: choose a CSV file", field="file")
    if len(data) > MAX_BYTES:
        raise ValidationError(
            f"the file has {len(data)} bytes, more than the {MAX_BYTES} accepted: split it",
            field="file",
        )
    token = secrets.token_urlsafe(24)
    now = _now()
    name = (file_name or "upload.csv").replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload.csv"
    payload = _fernet(store).encrypt(data).decode("ascii")
    with store.transaction() as con:
        con.execute("DELETE FROM web_upload WHERE expires_at <= ?", [now])
        con.execute(
            "INSERT INTO web_upload VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                _digest(token),
                principal.user,
                kind,
                name,
                hashlib.sha256(data).hexdigest(),
                len(data),
                now,
                now + LIFETIME,
                payload,
            ],
        )
    return token


def fetch(store: Store, principal: Principal, token: str) -> Upload:
    """Return the upload named by ``token`` if ``principal`` made it and it has not expired.

    Raises
    ------
    NotFoundError
        For an unknown or expired token, or another user's upload (the same
        answer, so a token of someone else is indistinguishable from none).
    """
    row = store.con.execute(
        "SELECT kind, file_name, checksum, payload, created_at, expires_at FROM web_upload"
        " WHERE upload_id = ? AND user_name = ? AND expires_at > ?",
        [_digest(token), principal.user, _now()],
    ).fetchone()
    if row is None:
        raise NotFoundError("no such upload (it expired, was committed or discarded): upload again")
    data = _fernet(store).decrypt(str(row[3]).encode("ascii"))
    return Upload(str(row[0]), str(row[1]), str(row[2]), data, row[4], row[5])


def discard(store: Store, principal: Principal, token: str) -> None:
    """Delete ``principal``'s upload named by ``token`` (nothing if there is none)."""
    with store.transaction() as con:
        con.execute(
            "DELETE FROM web_upload WHERE upload_id = ? AND user_name = ?",
            [_digest(token), principal.user],
        )
