"""Beacon v2 requests: GET query strings and POST bodies, parsed and validated.

Coordinates follow the Beacon v2 specification: ``start`` and ``end`` are
**0-based**, ``start`` inclusive and ``end`` exclusive (interbase); the store's
``variant.position`` is 1-based (VCF), so a variant covers ``[position - 1,
position - 1 + len(ref))``. Query kinds (``docs/beacon.md``):

==========  =====================================================================
kind        parameters
==========  =====================================================================
sequence    ``referenceName``, ``start`` (one value), ``alternateBases``, optional
            ``referenceBases``
range       ``referenceName``, ``start``, ``end`` (one value each); optional
            ``variantType``, ``referenceBases``, ``alternateBases``
bracket     ``referenceName``, ``start`` = [min, max], ``end`` = [min, max]
gene        ``geneId`` (optional ``variantType``)
==========  =====================================================================

Filters (``/filtering_terms`` lists them): ``ICD10:<code>`` (WHO or national
clinical edition 2.0, descendants included unless ``includeDescendantTerms`` is
false), sex ``NCIT:C16576`` (female) / ``NCIT:C20197`` (male), consent
``DUO:<id>``, ``cohort:<name>`` and ``age`` with an operator (``age>=40`` in a
query string, ``{"id": "age", "operator": ">=", "value": "P40Y"}`` in a body).

Every malformed request raises :class:`~biobank.core.errors.ValidationError`
naming the parameter; the service answers it with the specification's error
shape (``{"meta": ..., "error": {"errorCode": 400, "errorMessage": ...}}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from biobank.core import icd10
from biobank.core.errors import ValidationError

__all__ = [
    "DUO_TERMS",
    "ENTRY_TYPES",
    "GRANULARITIES",
    "SEX_TERMS",
    "VARIANT_TYPES",
    "BeaconFilter",
    "BeaconRequest",
    "VariantQuery",
    "parse_filter",
    "parse_get",
    "parse_post",
]

#: Beacon entry types served, by their path name.
ENTRY_TYPES = ("g_variants", "individuals", "biosamples", "cohorts", "datasets")
#: The granularities, from least to most detailed.
GRANULARITIES = ("boolean", "count", "record")
#: Sex filters (NCIT terms used by the Beacon v2 default model) -> participant.sex.
SEX_TERMS = {"NCIT:C16576": "female", "NCIT:C20197": "male"}
#: DUO permission terms -> consent.primary_code.
DUO_TERMS = {
    "DUO:0000004": "NRES",
    "DUO:0000042": "GRU",
    "DUO:0000006": "HMB",
    "DUO:0000007": "DS",
    "DUO:0000011": "POA",
}
#: Variant types understood by ``variantType`` (by the lengths of ref and alt).
VARIANT_TYPES = ("SNP", "MNP", "INDEL", "DEL", "INS")

_BASES = re.compile(r"^[ACGTN]+$")
_AGE_TEXT = re.compile(r"^age\s*(<=|>=|=|<|>)\s*(.+)$", re.IGNORECASE)
_AGE_VALUE = re.compile(r"^(?:P(\d+)Y|(\d+))$", re.IGNORECASE)
_GET_PARAMS = {
    "requestedGranularity",
    "filters",
    "skip",
    "limit",
    "includeResultsetResponses",
    "testMode",
    "referenceName",
    "start",
    "end",
    "referenceBases",
    "alternateBases",
    "variantType",
    "geneId",
    "assemblyId",
}
_VARIANT_PARAMS = (
    "referenceName",
    "start",
    "end",
    "referenceBases",
    "alternateBases",
    "variantType",
    "geneId",
    "assemblyId",
)


@dataclass(frozen=True)
class BeaconFilter:
    """One parsed filter.

    Attributes
    ----------
    kind
        ``icd10``, ``sex``, ``duo``, ``cohort`` or ``age``.
    term
        The filter id as asked (for the request summary).
    value
        ICD-10 pattern in compact form, sex, DUO primary code, cohort name, or age in years.
    operator
        For ``age``: ``=``, ``<``, ``>``, ``<=``, ``>=``; for ICD-10 ``prefix`` (descendants
        included) or ``=``.
    """

    kind: str
    term: str
    value: str | int
    operator: str = "="


@dataclass(frozen=True)
class VariantQuery:
    """The variant part of a request (coordinates 0-based, ``end`` exclusive)."""

    kind: str
    reference_name: str | None = None
    start: tuple[int, ...] = ()
    end: tuple[int, ...] = ()
    reference_bases: str | None = None
    alternate_bases: str | None = None
    variant_type: str | None = None
    gene_id: str | None = None
    assembly_id: str | None = None

    def summary(self) -> dict[str, Any]:
        """The request parameters as the specification names them (for the response meta)."""
        out: dict[str, Any] = {}
        for name, value in (
            ("referenceName", self.reference_name),
            ("start", list(self.start) or None),
            ("end", list(self.end) or None),
            ("referenceBases", self.reference_bases),
            ("alternateBases", self.alternate_bases),
            ("variantType", self.variant_type),
            ("geneId", self.gene_id),
            ("assemblyId", self.assembly_id),
        ):
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class BeaconRequest:
    """A parsed Beacon request for one entry type."""

    entry_type: str
    granularity: str = "boolean"
    filters: tuple[BeaconFilter, ...] = ()
    variant: VariantQuery | None = None
    skip: int = 0
    limit: int = 10
    include: str = "HIT"
    test_mode: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _bad(message: str, field_name: str, value: object = None) -> ValidationError:
    return ValidationError(message, field=field_name, value=value)


def _int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise _bad(f"{name} must be an integer, not {value!r}", name, value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        number = int(value)
    else:
        raise _bad(f"{name} must be an integer, not {value!r}", name, value)
    if number < 0:
        raise _bad(f"{name} must not be negative (coordinates are 0-based)", name, value)
    return number


def _positions(value: object, name: str) -> tuple[int, ...]:
    if value is None:
        return ()
    items: list[object]
    if isinstance(value, list):
        items = list(value)
    elif isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    else:
        items = [value]
    if not 1 <= len(items) <= 2:
        raise _bad(f"{name} takes one or two positions, got {len(items)}", name, value)
    return tuple(_int(v, name) for v in items)


def _bases(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _BASES.match(value.upper()):
        raise _bad(f"{name} must be bases A, C, G, T or N, not {value!r}", name, value)
    return value.upper()


def _variant_query(params: Mapping[str, Any], max_range: int) -> VariantQuery | None:
    """Classify and validate the variant parameters (``None`` when there are none)."""
    given = {k: params[k] for k in _VARIANT_PARAMS if params.get(k) not in (None, "")}
    if not given or set(given) == {"assemblyId"}:
        return None
    ref_name = given.get("referenceName")
    if ref_name is not None and (not isinstance(ref_name, str) or not ref_name.strip()):
        raise _bad("referenceName must be a chromosome name such as 1 or chr1", "referenceName")
    start, end = _positions(given.get("start"), "start"), _positions(given.get("end"), "end")
    vtype = given.get("variantType")
    if vtype is not None and (not isinstance(vtype, str) or vtype.upper() not in VARIANT_TYPES):
        raise _bad(f"variantType must be one of {', '.join(VARIANT_TYPES)}", "variantType", vtype)
    gene = given.get("geneId")
    if gene is not None and (not isinstance(gene, str) or not gene.strip()):
        raise _bad("geneId must be a gene symbol such as BRCA2", "geneId", gene)
    common: dict[str, Any] = {
        "reference_name": ref_name.strip() if isinstance(ref_name, str) else None,
        "start": start,
        "end": end,
        "reference_bases": _bases(given.get("referenceBases"), "referenceBases"),
        "alternate_bases": _bases(given.get("alternateBases"), "alternateBases"),
        "variant_type": vtype.upper() if isinstance(vtype, str) else None,
        "gene_id": gene.strip() if isinstance(gene, str) else None,
        "assembly_id": given.get("assemblyId"),
    }
    if gene is not None and not start:
        return VariantQuery("gene", **common)
    if ref_name is None or not start:
        raise _bad(
            "a variant query needs referenceName and start (sequence or range query), or geneId",
            "referenceName" if ref_name is None else "start",
        )
    if len(start) == 2 or len(end) == 2:
        if len(start) != 2 or len(end) != 2:
            raise _bad("a bracket query needs two start and two end positions", "end", end)
        if start[0] > start[1] or end[0] > end[1] or start[0] >= end[1]:
            raise _bad("bracket positions must be [min, max] with start before end", "start")
        if end[1] - start[0] > max_range:
            raise _bad(f"the bracket spans more than {max_range:,} bases: narrow it", "end")
        return VariantQuery("bracket", **common)
    if not end:
        if common["alternate_bases"] is None:
            raise _bad(
                "a sequence query needs alternateBases (or give end for a range query)",
                "alternateBases",
            )
        return VariantQuery("sequence", **common)
    if end[0] <= start[0]:
        raise _bad(f"end {end[0]} must be after start {start[0]} (0-based, end exclusive)", "end")
    if end[0] - start[0] > max_range:
        raise _bad(
            f"the range spans {end[0] - start[0]:,} bases, more than {max_range:,}: narrow it",
            "end",
        )
    return VariantQuery("range", **common)


def _age(term: str, operator: str, value: object) -> BeaconFilter:
    if operator not in {"=", "<", ">", "<=", ">="}:
        raise _bad(f"age filter operator {operator!r} is not one of = < > <= >=", "filters")
    m = _AGE_VALUE.match(str(value).strip())
    if m is None:
        raise _bad(f"age value {value!r} must be years, e.g. 40 or P40Y", "filters", value)
    return BeaconFilter("age", term, int(m[1] or m[2]), operator)


def parse_filter(item: object) -> BeaconFilter:
    """Parse one filter (a string id or a filter object)."""
    if isinstance(item, str):
        obj: dict[str, Any] = {"id": item}
    elif isinstance(item, dict) and isinstance(item.get("id"), str):
        obj = item
    else:
        raise _bad(f"a filter must be a term id or an object with an id, not {item!r}", "filters")
    term = obj["id"].strip()
    if term.lower() == "age" or _AGE_TEXT.match(term):
        m = _AGE_TEXT.match(term)
        if m:
            return _age(term, m[1], m[2])
        return _age(term, str(obj.get("operator", "=")), obj.get("value"))
    prefix, _, code = term.partition(":")
    upper = prefix.upper()
    if upper == "ICD10" and code:
        descend = obj.get("includeDescendantTerms", True)
        if not isinstance(descend, bool):
            raise _bad("includeDescendantTerms must be true or false", "filters", descend)
        pattern = icd10.parse_pattern(code, field="filters")
        return BeaconFilter("icd10", term, pattern.low, "prefix" if descend else "=")
    if term.upper() in SEX_TERMS:
        return BeaconFilter("sex", term, SEX_TERMS[term.upper()])
    if term.upper() in DUO_TERMS:
        return BeaconFilter("duo", term, DUO_TERMS[term.upper()])
    if prefix.lower() == "cohort" and code:
        return BeaconFilter("cohort", term, code)
    raise _bad(
        f"unknown filter {term!r}: /filtering_terms lists the filters of this beacon"
        " (ICD10:<code>, NCIT:C16576, NCIT:C20197, DUO:<id>, cohort:<name>, age)",
        "filters",
        term,
    )


def _granularity(value: object) -> str:
    if value is None:
        return "boolean"
    if value not in GRANULARITIES:
        raise _bad(
            f"requestedGranularity must be one of {', '.join(GRANULARITIES)}",
            "requestedGranularity",
            value,
        )
    return str(value)


def _include(value: object) -> str:
    if value is None:
        return "HIT"
    if value not in {"ALL", "HIT", "MISS", "NONE"}:
        raise _bad("includeResultsetResponses must be ALL, HIT, MISS or NONE", "include", value)
    return str(value)


def _page(skip: object, limit: object) -> tuple[int, int]:
    s = 0 if skip is None else _int(skip, "skip")
    n = 10 if limit is None else _int(limit, "limit")
    if n > 1000:
        raise _bad("limit must be at most 1000", "limit", n)
    return s, n


def parse_get(entry_type: str, query: Mapping[str, str], *, max_range: int) -> BeaconRequest:
    """Parse the query string of a GET request.

    Raises
    ------
    ValidationError
        For an unknown parameter or a malformed value.
    """
    unknown = sorted(set(query) - _GET_PARAMS)
    if unknown:
        raise _bad(
            f"unknown parameter {unknown[0]!r}: this beacon reads {', '.join(sorted(_GET_PARAMS))}",
            unknown[0],
        )
    filters = [f for f in (query.get("filters") or "").split(",") if f.strip()]
    skip, limit = _page(query.get("skip"), query.get("limit"))
    return BeaconRequest(
        entry_type=entry_type,
        granularity=_granularity(query.get("requestedGranularity")),
        filters=tuple(parse_filter(f.strip()) for f in filters),
        variant=_variant_query(query, max_range),
        skip=skip,
        limit=limit,
        include=_include(query.get("includeResultsetResponses")),
        test_mode=str(query.get("testMode", "false")).lower() == "true",
    )


def parse_post(entry_type: str, body: object, *, max_range: int) -> BeaconRequest:
    """Parse the JSON body of a POST request (``beaconRequestBody``).

    Raises
    ------
    ValidationError
        If the body is not an object with ``meta`` (and an optional ``query``),
        or a value is malformed.
    """
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object with 'meta' and 'query'", "body")
    meta = body.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("apiVersion"), str):
        raise _bad('the request body needs meta.apiVersion (e.g. "v2.0.0")', "meta")
    query = body.get("query", {})
    if not isinstance(query, dict):
        raise _bad("query must be a JSON object", "query")
    params = query.get("requestParameters", {})
    if isinstance(params, dict) and set(params) - {"$schema"} == {"g_variant"}:
        params = params["g_variant"]  # the model's form; flat parameters are accepted too
    if not isinstance(params, dict):
        raise _bad("requestParameters must be a JSON object", "requestParameters")
    unknown = sorted(set(params) - set(_VARIANT_PARAMS) - {"$schema"})
    if unknown:
        raise _bad(f"unknown request parameter {unknown[0]!r}", "requestParameters", unknown[0])
    filters = query.get("filters", [])
    if not isinstance(filters, list):
        raise _bad("filters must be a list of filter objects or term ids", "filters")
    pagination = query.get("pagination", {})
    if not isinstance(pagination, dict):
        raise _bad("pagination must be an object with skip and limit", "pagination")
    skip, limit = _page(pagination.get("skip"), pagination.get("limit"))
    test_mode = query.get("testMode", False)
    if not isinstance(test_mode, bool):
        raise _bad("testMode must be true or false", "testMode", test_mode)
    return BeaconRequest(
        entry_type=entry_type,
        granularity=_granularity(query.get("requestedGranularity")),
        filters=tuple(parse_filter(f) for f in filters),
        variant=_variant_query(params, max_range),
        skip=skip,
        limit=limit,
        include=_include(query.get("includeResultsetResponses")),
        test_mode=test_mode,
    )
