"""Bulk CSV import pages: upload, preview with a row-by-row error report, commit all or nothing.

1. ``POST /import`` decodes and parses the upload at once (UTF-8 or GB18030;
   Big5 and undecodable files are refused naming the encodings tried, and a
   bad header is reported) and keeps the bytes on the server
   (:mod:`biobank.service.uploads`) under a random token bound to the user.
2. ``GET /import/{token}`` plans the import against the store without writing
   (:func:`biobank.registry.imports.preview_import`): what would be added or
   changed, and every problem with its line, field, value and fix.
3. ``POST /import/{token}/commit`` imports exactly the kept bytes in one
   transaction (:func:`biobank.registry.imports.import_upload`), or nothing if
   any row is bad; the same file again adds nothing (its checksum is in the
   provenance). The kept upload is deleted with the commit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response

from biobank.core.errors import ImportRejected, NotFoundError, Problem, ValidationError
from biobank.registry.imports import KINDS, import_upload, preview_import, read_upload
from biobank.service import uploads
from biobank.service.app import Ctx, HTTPError
from biobank.service.i18n import N_
from biobank.service.library_messages import library_message
from biobank.service.views import ctx_of, redirect

__all__: list[str] = []

#: kind -> its name on the page.
KIND_NAMES = {
    "participants": N_("Participants"),
    "consents": N_("Consents"),
    "specimens": N_("Specimens"),
}


def _report(problems: list[Problem], ctx: Ctx) -> list[dict[str, Any]]:
    """The error report: line, field, value and the translated message (with its fix)."""
    return [
        {
            "line": p.line if p.line is not None else "",
            "field": p.field or "",
            "value": p.value if p.value is not None else "",
            "message": library_message(p.message, ctx.gettext),
        }
        for p in sorted(problems, key=lambda p: p.line or 0)  # stable: per line, as found
    ]


def _form(
    ctx: Ctx,
    *,
    error: str = "",
    problems: list[Problem] | None = None,
    kind: str = "",
    http_status: int = 200,
) -> Response:
    return ctx.render(
        "import.html",
        http_status=http_status,
        kinds=KIND_NAMES,
        kind=kind,
        error=error,
        report=_report(problems or [], ctx),
        max_mb=uploads.MAX_BYTES // (1024 * 1024),
    )


def import_form(request: Request) -> Response:
    return _form(ctx_of(request))


def import_upload_view(
    request: Request,
    kind: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    ctx = ctx_of(request)
    _ = ctx.gettext
    if kind not in KINDS:
        return _form(ctx, error=_("Choose what the file holds."), http_status=422)
    if file is None or not file.filename:
        return _form(ctx, error=_("Choose a CSV file to upload."), kind=kind, http_status=422)
    data = file.file.read(uploads.MAX_BYTES + 1)
    name = file.filename
    try:
        read_upload(kind, data, source=name)  # refuse an unreadable file before keeping it
        token = ctx.act(lambda store: uploads.keep(store, ctx.user, kind, name, data))
    except ImportRejected as exc:
        return _form(
            ctx,
            error=_("The file cannot be read: nothing was kept or imported."),
            problems=exc.problems,
            kind=kind,
            http_status=422,
        )
    except ValidationError as exc:
        message = library_message(exc.problem.message, _)
        return _form(ctx, error=message, kind=kind, http_status=422)
    return redirect(request, f"/import/{token}")


def _preview(ctx: Ctx, token: str, *, http_status: int = 200, error: str = "") -> Response:
    def plan(store: Any) -> tuple[uploads.Upload, Any]:
        upload = uploads.fetch(store, ctx.user, token)
        return upload, preview_import(
            store, ctx.user, upload.kind, upload.data, source=upload.file_name
        )

    try:
        upload, preview = ctx.act(plan)
    except NotFoundError as exc:
        raise HTTPError(
            404,
            ctx.gettext(
                "No such upload: it expired, was imported or discarded; upload the file again."
            ),
        ) from exc
    return ctx.render(
        "import_preview.html",
        http_status=http_status,
        token=token,
        upload=upload,
        kind_name=ctx.gettext(KIND_NAMES[upload.kind]),
        result=preview.result,
        added=preview.added,
        changed=preview.changed,
        report=_report(preview.problems, ctx),
        error=error,
        done=None,
    )


def import_preview(request: Request, token: str) -> Response:
    return _preview(ctx_of(request), token)


def import_commit(request: Request, token: str) -> Response:
    ctx = ctx_of(request)
    _ = ctx.gettext

    def commit(store: Any) -> tuple[uploads.Upload, Any]:
        upload = uploads.fetch(store, ctx.user, token)
        result = import_upload(store, ctx.user, upload.kind, upload.data, source=upload.file_name)
        uploads.discard(store, ctx.user, token)
        return upload, result

    try:
        upload, result = ctx.act(commit)
    except NotFoundError as exc:
        raise HTTPError(
            404, _("No such upload: it expired, was imported or discarded; upload the file again.")
        ) from exc
    except ImportRejected:
        return _preview(
            ctx,
            token,
            http_status=422,
            error=_("Nothing was imported: fix the rows below and upload the file again."),
        )
    return ctx.render(
        "import_preview.html",
        token="",
        upload=upload,
        kind_name=_(KIND_NAMES[upload.kind]),
        result=result,
        added=[],
        changed=[],
        report=[],
        error="",
        done=result,
    )


def import_discard(request: Request, token: str) -> Response:
    ctx = ctx_of(request)
    ctx.act(lambda store: uploads.discard(store, ctx.user, token))
    return redirect(request, "/import")
