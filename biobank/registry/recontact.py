"""Re-contact identifiers: encrypted at rest, readable only by registry staff, audited.

The name, national ID, phone and birth date of a participant are kept for
re-contact only, as a Fernet token (AES-128-CBC + HMAC-SHA256) under a key
derived with HKDF-SHA256 from the center key, which lives outside the database
(:func:`biobank.core.ids.center_key`). A copy of the database alone reveals nothing.
:func:`read_recontact` needs ``recontact_read`` (registrar, admin; no research
role) and records every read with its reason in the audit log.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import NotFoundError, StoreError, ValidationError
from biobank.core.ids import center_key

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = ["decrypt_identifiers", "encrypt_identifiers", "read_recontact"]

logger = logging.getLogger(__name__)


def _fernet(key: bytes) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"biobank recontact v1"
    ).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_identifiers(identifiers: Mapping[str, str], key: bytes) -> str:
    """Encrypt the re-contact identifiers (JSON) with the center-derived Fernet key."""
    payload = json.dumps(dict(identifiers), ensure_ascii=False, sort_keys=True)
    return _fernet(key).encrypt(payload.encode("utf-8")).decode("ascii")


def decrypt_identifiers(token: str, key: bytes) -> dict[str, str]:
    """Decrypt re-contact identifiers.

    Raises
    ------
    StoreError
        If the token was not made with this center key (wrong key file, or tampering).
    """
    try:
        data = _fernet(key).decrypt(token.encode("ascii"))
    except InvalidToken as exc:
        raise StoreError(
            "cannot decrypt re-contact identifiers: the center key is not the one they were "
            "encrypted with (check BIOBANK_CENTER_KEY / BIOBANK_KEY_FILE / <store>.key)"
        ) from exc
    identifiers: dict[str, str] = json.loads(data.decode("utf-8"))
    return identifiers


def read_recontact(
    store: Store, principal: Principal, participant_id: str, *, reason: str
) -> dict[str, str]:
    """Decrypt a participant's re-contact identifiers (name, national ID, phone, birth date).

    Only roles with ``recontact_read`` (registrar, admin) may; every read is
    audited with its reason.

    Raises
    ------
    AccessDenied
        Without ``recontact_read`` (no research role has it).
    ValidationError
        If no reason is given.
    NotFoundError
        If there is no such participant.
    """
    require(principal, Permission.RECONTACT_READ)
    if not reason.strip():
        raise ValidationError("give the reason for re-contact (it is audited)", field="reason")
    key = center_key(store.path)
    with store.transaction() as con:
        row = con.execute(
            "SELECT token FROM recontact_identifier WHERE participant_id = ?", [participant_id]
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no re-contact identifiers for {participant_id}")
        audit.record(con, principal, "recontact.read", participant_id, {"reason": reason})
    return {"participant_id": participant_id, **decrypt_identifiers(str(row[0]), key)}
