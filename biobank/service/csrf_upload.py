"""CSRF for file-upload forms: hand the form's token to asgi-csrf as its header.

asgi-csrf checks the token of a ``multipart/form-data`` body with a
python-multipart API that no longer exists (``FormParser(FileClass=...)``,
removed in python-multipart 0.0.26, whose later releases fix CVE-2026-40347;
simonw/asgi-csrf#38, fix proposed in #39). Until a release has the fix, this
middleware, placed outside asgi-csrf, reads the first part of a multipart body
(the upload forms put ``csrftoken`` first, as asgi-csrf requires) and checks
it as asgi-csrf does (equal to the ``csrftoken`` cookie, whose signature is
valid under the service's secret). A good token goes on in the ``x-csrftoken``
header, where asgi-csrf checks it again, and the body is replayed; a missing,
late (after a file) or wrong token is refused with asgi-csrf's own failure
page, before asgi-csrf would reach its broken multipart path.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["MultipartCsrfToken"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bytes read at most to find the first part (headers and a token are far shorter).
_LIMIT = 16 * 1024
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


def first_field(body: bytes, boundary: bytes) -> tuple[bytes, bytes] | None:
    """Return (name, value) of the first part of a multipart ``body``.

    ``None`` while the first part is incomplete; ``(b"", b"")`` when it is a
    file or has no name.

    >>> body = b'--b\\r\\nContent-Disposition: form-data; name="t"\\r\\n\\r\\nxyz\\r\\n--b'
    >>> first_field(body, b"b")
    (b't', b'xyz')
    """
    start = body.find(b"--" + boundary + b"\r\n")
    if start < 0:
        return None
    head_start = start + len(boundary) + 4
    head_end = body.find(b"\r\n\r\n", head_start)
    if head_end < 0:
        return None
    headers = body[head_start:head_end]
    disposition = next(
        (h for h in headers.split(b"\r\n") if h.lower().startswith(b"content-disposition:")), b""
    )
    m = _NAME.search(disposition)
    if m is None or b"filename" in disposition.lower():
        return b"", b""
    end = body.find(b"\r\n--" + boundary, head_end + 4)
    if end < 0:
        return None
    return m.group(1), body[head_end + 4 : end]


class MultipartCsrfToken:
    """ASGI middleware: the ``csrftoken`` field of a multipart form becomes ``x-csrftoken``.

    Parameters
    ----------
    app
        The application wrapped (asgi-csrf and what it wraps).
    signing_secret
        The secret asgi-csrf signs its cookie with.
    refuse
        Called as ``refuse(scope, send, message_id)`` to answer a multipart
        request without the right token first (asgi-csrf's ``send_csrf_failed``).
    field, header, cookie, namespace
        The form field, header and cookie asgi-csrf reads, and its signing namespace.
    skip_if_scope
        Requests for which this returns true pass untouched (as asgi-csrf's own
        ``skip_if_scope``: the partner paths, which carry bearer tokens).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        signing_secret: str,
        refuse: Callable[..., Awaitable[None]],
        field: bytes = b"csrftoken",
        header: bytes = b"x-csrftoken",
        cookie: str = "csrftoken",
        namespace: str = "csrftoken",
        skip_if_scope: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.skip_if_scope = skip_if_scope
        self.refuse = refuse
        self.field = field
        self.header = header
        self.cookie = cookie
        self.namespace = namespace
        self.signer = URLSafeSerializer(signing_secret)

    def _cookie_token(self, headers: dict[bytes, bytes]) -> str | None:
        """The signed token of the CSRF cookie if its signature is valid."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get(b"cookie", b"").decode("latin-1"))
        except CookieError:  # a malformed cookie header holds no token
            return None
        morsel = jar.get(self.cookie)
        if morsel is None:
            return None
        try:
            self.signer.loads(morsel.value, self.namespace)
        except BadSignature:
            return None
        return morsel.value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") in ("GET", "HEAD", "OPTIONS", "TRACE")
            or (self.skip_if_scope is not None and self.skip_if_scope(scope))
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"")
        m = re.match(rb'\s*multipart/form-data\s*;.*boundary="?([^";]+)"?', ctype, re.IGNORECASE)
        if m is None or self.header in headers:
            await self.app(scope, receive, send)
            return
        boundary = m.group(1)
        messages: list[Message] = []
        body = b""
        found = None
        more = True
        while more and len(body) < _LIMIT:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            found = first_field(body, boundary)
            if found is not None:
                break
        expected = self._cookie_token(headers)
        given = found[1].strip().decode("latin-1") if found and found[0] == self.field else ""
        if expected is None or not secrets.compare_digest(given, expected):
            await self.refuse(scope, send, "multipart token missing, late or wrong")
            return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        inner = dict(scope)
        inner["headers"] = [*scope.get("headers", []), (self.header, given.encode("latin-1"))]
        await self.app(inner, replay, send)
