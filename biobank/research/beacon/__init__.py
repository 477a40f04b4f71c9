"""The GA4GH Beacon v2 of this center: requests, answers, records, responses.

:mod:`~biobank.research.beacon.request` parses GET and POST requests,
:mod:`~biobank.research.beacon.query` answers them (consent, filters, the
small-count rule, the re-identification defences),
:mod:`~biobank.research.beacon.records` builds default-model records and
:mod:`~biobank.research.beacon.responses` the framework documents. The web
endpoints are :mod:`biobank.service.beacon`; see ``docs/beacon.md``.
"""

from __future__ import annotations

from biobank.research.beacon.config import BeaconConfig
from biobank.research.beacon.query import BeaconAnswer, Requester, answer, resolve_requester
from biobank.research.beacon.request import BeaconRequest, parse_get, parse_post

__all__ = [
    "BeaconAnswer",
    "BeaconConfig",
    "BeaconRequest",
    "Requester",
    "answer",
    "parse_get",
    "parse_post",
    "resolve_requester",
]
