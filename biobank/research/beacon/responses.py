"""Beacon v2 response documents: framework endpoints, entry-type answers, errors.

Shapes follow the framework schemas of the specification (``beaconInfoResponse``,
``beaconMapResponse``, ``beaconConfigurationResponse``, ``beaconEntryTypesResponse``,
``beaconFilteringTermsResponse``, ``beaconBooleanResponse``, ``beaconCountResponse``,
``beaconResultsetsResponse``, ``beaconCollectionsResponse``, ``beaconErrorResponse``);
``tests/research/test_beacon_*.py`` validate every one against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from biobank.__about__ import __version__
from biobank.registry.consent import permitted_participants_sql
from biobank.research.beacon.config import BeaconConfig
from biobank.research.beacon.query import BeaconAnswer
from biobank.research.beacon.request import BeaconRequest

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "API_VERSION",
    "ENTRY_TYPE_INFO",
    "answer_response",
    "collections_response",
    "configuration_response",
    "entry_types_response",
    "error_response",
    "filtering_terms_response",
    "info_response",
    "map_response",
    "service_info",
]

API_VERSION = "v2.0.0"
_MODEL = "beacon-v2-default-model"

#: path -> (entry type id, name, default schema file, ontology term, collection?)
ENTRY_TYPE_INFO: dict[str, tuple[str, str, str, str, bool]] = {
    "g_variants": (
        "genomicVariant",
        "Genomic variants",
        "genomicVariations/defaultSchema.json",
        "ENSGLOSSARY:0000092",
        False,
    ),
    "individuals": (
        "individual",
        "Individuals",
        "individuals/defaultSchema.json",
        "NCIT:C25190",
        False,
    ),
    "biosamples": (
        "biosample",
        "Biosamples",
        "biosamples/defaultSchema.json",
        "NCIT:C70699",
        False,
    ),
    "cohorts": ("cohort", "Cohorts", "cohorts/defaultSchema.json", "NCIT:C61512", True),
    "datasets": ("dataset", "Datasets", "datasets/defaultSchema.json", "NCIT:C47824", True),
}


def _schema_ref(path: str) -> str:
    return f"{_MODEL}/{ENTRY_TYPE_INFO[path][2]}"


def _returned_schemas(path: str | None) -> list[dict[str, str]]:
    if path is None:
        return []
    return [{"entityType": ENTRY_TYPE_INFO[path][0], "schema": _schema_ref(path)}]


def _informational_meta(config: BeaconConfig, path: str | None = None) -> dict[str, Any]:
    return {
        "beaconId": config.beacon_id,
        "apiVersion": API_VERSION,
        "returnedSchemas": _returned_schemas(path),
    }


def _request_summary(request: BeaconRequest | None) -> dict[str, Any]:
    if request is None:
        return {
            "apiVersion": API_VERSION,
            "requestedSchemas": [],
            "pagination": {},
            "requestedGranularity": "boolean",
        }
    summary: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "requestedSchemas": _returned_schemas(request.entry_type),
        "pagination": {"skip": request.skip, "limit": request.limit},
        "requestedGranularity": request.granularity,
        "includeResultsetResponses": request.include,
        "testMode": request.test_mode,
    }
    if request.filters:
        summary["filters"] = [f.term for f in request.filters]
    if request.variant is not None:
        # the framework's requestParameters holds objects: the model's name is g_variant
        summary["requestParameters"] = {"g_variant": request.variant.summary()}
    return summary


def _meta(config: BeaconConfig, request: BeaconRequest | None, granularity: str) -> dict[str, Any]:
    return {
        "beaconId": config.beacon_id,
        "apiVersion": API_VERSION,
        "returnedGranularity": granularity,
        "receivedRequestSummary": _request_summary(request),
        "returnedSchemas": _returned_schemas(request.entry_type if request else None),
    }


def error_response(
    config: BeaconConfig, status: int, message: str, request: BeaconRequest | None = None
) -> dict[str, Any]:
    """A ``beaconErrorResponse``: ``errorCode`` is the HTTP status."""
    return {
        "meta": _meta(config, request, "boolean"),
        "error": {"errorCode": status, "errorMessage": message},
    }


def answer_response(
    config: BeaconConfig, request: BeaconRequest, result: BeaconAnswer
) -> dict[str, Any]:
    """A boolean, count or result-set response for an entry-type answer."""
    doc: dict[str, Any] = {
        "meta": _meta(config, request, result.granularity),
        "responseSummary": {"exists": result.exists},
    }
    if result.granularity in {"count", "record"}:
        doc["responseSummary"]["numTotalResults"] = int(result.count or 0)
    if result.granularity == "record":
        doc["response"] = {
            "resultSets": [
                {
                    "id": f"{config.beacon_id}.genotypes",
                    "setType": "dataset",
                    "exists": result.exists,
                    "resultsCount": int(result.count or 0),
                    "results": result.results,
                }
            ]
        }
    return doc


def info_response(config: BeaconConfig) -> dict[str, Any]:
    """``/info``: the beacon and its organisation."""
    return {
        "meta": _informational_meta(config),
        "response": {
            "id": config.beacon_id,
            "name": config.name,
            "apiVersion": API_VERSION,
            "environment": config.environment,
            "organization": {"id": config.organization_id, "name": config.organization_name},
            "version": __version__,
            "description": (
                "Discovery over the consented participants of a regional gene data center:"
                " boolean answers for anyone, counts for partner centres, records under an"
                " approved data access request."
            ),
        },
    }


def service_info(config: BeaconConfig, base_url: str) -> dict[str, Any]:
    """``/service-info``: the GA4GH service-info document."""
    return {
        "id": config.beacon_id,
        "name": config.name,
        "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
        "organization": {"name": config.organization_name, "url": base_url},
        "version": __version__,
        "environment": config.environment,
    }


def _entry_types() -> dict[str, Any]:
    out = {}
    for path, (entry, name, _schema, term, _coll) in ENTRY_TYPE_INFO.items():
        out[entry] = {
            "id": entry,
            "name": name,
            "ontologyTermForThisType": {"id": term},
            "partOfSpecification": f"Beacon {API_VERSION}",
            "defaultSchema": {
                "id": f"ga4gh-beacon-{entry}-{API_VERSION}",
                "name": f"Default schema for {name.lower()}",
                "referenceToSchemaDefinition": _schema_ref(path),
                "schemaVersion": API_VERSION,
            },
            "nonFilteredQueriesAllowed": True,
        }
    return out


def entry_types_response(config: BeaconConfig) -> dict[str, Any]:
    """``/entry_types``."""
    return {"meta": _informational_meta(config), "response": {"entryTypes": _entry_types()}}


def configuration_response(config: BeaconConfig) -> dict[str, Any]:
    """``/configuration``: maturity, security levels and entry types."""
    status = {"prod": "PROD", "test": "TEST"}.get(config.environment, "DEV")
    return {
        "meta": _informational_meta(config),
        "response": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "maturityAttributes": {"productionStatus": status},
            "securityAttributes": {
                "defaultGranularity": "boolean",
                "securityLevels": ["PUBLIC", "REGISTERED", "CONTROLLED"],
            },
            "entryTypes": _entry_types(),
        },
    }


def map_response(config: BeaconConfig, base_url: str) -> dict[str, Any]:
    """``/map``: the endpoint sets under ``base_url`` (the beacon's root URL)."""
    sets = {}
    for path, (entry, _name, schema, _term, _coll) in ENTRY_TYPE_INFO.items():
        sets[entry] = {
            "entryType": entry,
            "rootUrl": f"{base_url}/{path}",
            "openAPIEndpointsDefinition": f"{_MODEL}/{schema.split('/')[0]}/endpoints.json",
        }
    return {
        "meta": _informational_meta(config),
        "response": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "endpointSets": sets,
        },
    }


def filtering_terms_response(
    con: duckdb.DuckDBPyConnection, config: BeaconConfig
) -> dict[str, Any]:
    """``/filtering_terms``: every filter this beacon understands.

    ICD-10 categories are listed only when at least ``min_count`` participants
    whose consent permits the anonymous purpose have them (the listing is
    public); any ICD-10 code, national clinical edition included, may be asked.
    """
    permitted = permitted_participants_sql(config.anonymous_purpose)
    rows = con.execute(
        "SELECT substr(code_compact, 1, 3) AS cat, count(DISTINCT participant_id) AS n"
        f" FROM clinical_condition WHERE participant_id IN ({permitted}) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    terms: list[dict[str, Any]] = [
        {
            "type": "ontology",
            "id": f"ICD10:{cat}",
            "label": f"ICD-10 {cat} and below",
            "scopes": ["individuals", "g_variants", "biosamples"],
        }
        for cat, n in rows
        if n >= config.min_count
    ]
    terms += [
        {"type": "ontology", "id": "NCIT:C16576", "label": "female", "scopes": ["individuals"]},
        {"type": "ontology", "id": "NCIT:C20197", "label": "male", "scopes": ["individuals"]},
    ]
    duo = [
        ("DUO:0000004", "no restriction"),
        ("DUO:0000042", "general research use"),
        ("DUO:0000006", "health or medical or biomedical research"),
        ("DUO:0000007", "disease specific research"),
        ("DUO:0000011", "population origins or ancestry research only"),
    ]
    terms += [
        {"type": "ontology", "id": i, "label": label, "scopes": ["individuals"]} for i, label in duo
    ]
    terms.append(
        {
            "type": "alphanumeric",
            "id": "age",
            "label": "age in years (this year minus the year of birth); operators = < > <= >=",
            "scopes": ["individuals"],
        }
    )
    cohorts = con.execute("SELECT DISTINCT cohort FROM participant_cohort ORDER BY 1").fetchall()
    terms += [
        {
            "type": "custom",
            "id": f"cohort:{c}",
            "label": f"member of cohort {c}",
            "scopes": ["individuals"],
        }
        for (c,) in cohorts
    ]
    resources = [
        {
            "id": "ICD10",
            "name": "ICD-10 (WHO and the national clinical edition 2.0)",
            "nameSpacePrefix": "ICD10",
        },
        {
            "id": "NCIT",
            "name": "NCI Thesaurus",
            "nameSpacePrefix": "NCIT",
            "iriPrefix": "http://purl.obolibrary.org/obo/NCIT_",
        },
        {
            "id": "DUO",
            "name": "Data Use Ontology",
            "nameSpacePrefix": "DUO",
            "iriPrefix": "http://purl.obolibrary.org/obo/DUO_",
        },
    ]
    return {
        "meta": _informational_meta(config),
        "response": {"filteringTerms": terms, "resources": resources},
    }


def collections_response(
    con: duckdb.DuckDBPyConnection,
    config: BeaconConfig,
    request: BeaconRequest,
    *,
    sizes: Mapping[str, int],
) -> dict[str, Any]:
    """``/cohorts`` or ``/datasets``: the collections, with the ``sizes`` the requester may see.

    ``sizes`` comes from :func:`biobank.research.beacon.query.cohort_sizes` (the
    small-count rule and the partner's output checks already applied).
    """
    if request.entry_type == "cohorts":
        rows = con.execute("SELECT DISTINCT cohort FROM participant_cohort ORDER BY 1").fetchall()
        collections: list[dict[str, Any]] = []
        for (name,) in rows:
            item: dict[str, Any] = {
                "id": str(name),
                "name": str(name),
                "cohortType": "study-defined",
            }
            if str(name) in sizes:
                item["cohortSize"] = int(sizes[str(name)])
            collections.append(item)
    else:
        collections = [
            {
                "id": f"{config.beacon_id}.genotypes",
                "name": "Genotypes and clinical data of consented participants",
                "description": (
                    "Every genotyped participant whose current consent permits the requester's"
                    " purpose; coordinates on " + config.assembly
                ),
                "version": __version__,
            }
        ]
    page = collections[request.skip : request.skip + request.limit]
    return {
        "meta": _meta(config, request, "record"),
        "responseSummary": {"exists": bool(collections), "numTotalResults": len(collections)},
        "response": {"collections": page},
    }
