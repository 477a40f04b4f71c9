"""The top stage: the center as a service, a staff web application over the store.

:func:`create_app` builds the application; ``biobank serve`` runs it with
uvicorn. See ``docs/service.md``.
"""

from __future__ import annotations

from biobank.service.app import create_app

__all__ = ["create_app"]
