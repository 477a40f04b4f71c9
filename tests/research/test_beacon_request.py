"""Beacon request parsing: query kinds, filters (ICD-10 hierarchy, national edition), errors."""

from __future__ import annotations

import pytest

from biobank.core.errors import ValidationError
from biobank.research.beacon.request import parse_filter, parse_get, parse_post

BODY = {"meta": {"apiVersion": "v2.0.0"}}


def _get(**params: str) -> object:
    return parse_get("g_variants", params, max_range=1000)


def test_query_kinds_from_get_parameters() -> None:
    seq = _get(referenceName="chr1", start="122", referenceBases="c", alternateBases="T")
    assert seq.variant.kind == "sequence"  # type: ignore[attr-defined]
    assert seq.variant.start == (122,)  # type: ignore[attr-defined]
    assert seq.variant.reference_bases == "C"  # type: ignore[attr-defined]
    rng = _get(referenceName="1", start="100", end="200", variantType="snp")
    assert (rng.variant.kind, rng.variant.variant_type) == ("range", "SNP")  # type: ignore[attr-defined]
    br = _get(referenceName="1", start="100,150", end="160,300")
    assert br.variant.kind == "bracket"  # type: ignore[attr-defined]
    assert br.variant.end == (160, 300)  # type: ignore[attr-defined]
    gene = _get(geneId="BRCA2")
    assert gene.variant.kind == "gene"  # type: ignore[attr-defined]
    assert _get().variant is None  # type: ignore[attr-defined]


def test_post_body_in_the_models_form_and_flat() -> None:
    wrapped = {
        **BODY,
        "query": {
            "requestParameters": {"g_variant": {"referenceName": "chr2", "start": [5], "end": [9]}},
            "requestedGranularity": "count",
            "pagination": {"skip": 2, "limit": 3},
        },
    }
    req = parse_post("g_variants", wrapped, max_range=1000)
    assert (req.variant.kind, req.granularity, req.skip, req.limit) == ("range", "count", 2, 3)  # type: ignore[union-attr]
    flat = {
        **BODY,
        "query": {"requestParameters": {"referenceName": "chr2", "start": [5], "end": [9]}},
    }
    assert parse_post("g_variants", flat, max_range=1000).variant == req.variant


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"referenceName": "1", "start": "abc", "end": "5"}, "start"),
        ({"referenceName": "1", "start": "-3", "end": "5"}, "start"),
        ({"referenceName": "1", "start": "10", "end": "5"}, "end"),
        ({"referenceName": "1", "start": "0", "end": "100000"}, "end"),  # longer than max_range
        ({"referenceName": "1", "start": "0,5", "end": "9"}, "end"),  # half a bracket
        ({"referenceName": "1", "start": "10"}, "alternateBases"),
        ({"start": "10", "alternateBases": "A"}, "referenceName"),
        ({"referenceName": "1", "start": "1", "alternateBases": "Z"}, "alternateBases"),
        ({"variantType": "CNV", "geneId": "TP53"}, "variantType"),
        ({"requestedGranularity": "everything"}, "requestedGranularity"),
        ({"limit": "5000"}, "limit"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_malformed_get_requests_name_the_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        _get(**params)
    assert err.value.problem.field == field


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"query": {}},
        {**BODY, "query": []},
        {**BODY, "query": {"filters": "ICD10:E11"}},
        {**BODY, "query": {"requestParameters": {"chromosome": "1"}}},
        {**BODY, "query": {"testMode": "yes"}},
    ],
)
def test_malformed_post_bodies(body: object) -> None:
    with pytest.raises(ValidationError):
        parse_post("individuals", body, max_range=1000)


def test_icd10_filters_use_the_hierarchy_and_the_national_edition() -> None:
    e11 = parse_filter("ICD10:E11")
    assert (e11.kind, e11.value, e11.operator) == ("icd10", "E11", "prefix")
    national = parse_filter("ICD10:e11.900x001")
    assert national.value == "E11900X001"
    exact = parse_filter({"id": "ICD10:E11.9", "includeDescendantTerms": False})
    assert (exact.value, exact.operator) == ("E119", "=")
    assert parse_filter("ICD10:I10.x00").value == "I10X00"
    with pytest.raises(ValidationError):
        parse_filter("ICD10:E1")


def test_other_filters() -> None:
    assert parse_filter("NCIT:C16576").value == "female"
    assert parse_filter("DUO:0000007").value == "DS"
    assert parse_filter("cohort:T2D").value == "T2D"
    age = parse_filter({"id": "age", "operator": ">=", "value": "P40Y"})
    assert (age.kind, age.operator, age.value) == ("age", ">=", 40)
    assert parse_filter("age<30").value == 30
    for bad in ("HP:0000001", {"id": "age", "operator": "~", "value": "4"}, {"id": 3}, "age>=old"):
        with pytest.raises(ValidationError):
            parse_filter(bad)
