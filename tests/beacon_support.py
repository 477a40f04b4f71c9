"""Beacon and federation test helpers: schema validation (no network) and small centre stores.

The Beacon v2 schemas are in ``tests/data/beacon-v2-schemas`` (CC0, see its
LICENSE.md). They refer to each other by relative paths and, in places, by
``https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/...``: every file
is registered under that URL in a local :class:`referencing.Registry`, so both
kinds of reference resolve to the copies here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).parent / "data" / "beacon-v2-schemas"
BASE = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
MODEL = "models/json/beacon-v2-default-model/"

#: response kind -> framework schema
RESPONSES = {
    "info": "framework/json/responses/beaconInfoResponse.json",
    "service-info": "framework/json/responses/ga4gh-service-info-1-0-0-schema.json",
    "map": "framework/json/responses/beaconMapResponse.json",
    "configuration": "framework/json/responses/beaconConfigurationResponse.json",
    "entry_types": "framework/json/responses/beaconEntryTypesResponse.json",
    "filtering_terms": "framework/json/responses/beaconFilteringTermsResponse.json",
    "boolean": "framework/json/responses/beaconBooleanResponse.json",
    "count": "framework/json/responses/beaconCountResponse.json",
    "record": "framework/json/responses/beaconResultsetsResponse.json",
    "collections": "framework/json/responses/beaconCollectionsResponse.json",
    "error": "framework/json/responses/beaconErrorResponse.json",
}
#: entry type path -> default schema of its records
RECORDS = {
    "g_variants": MODEL + "genomicVariations/defaultSchema.json",
    "individuals": MODEL + "individuals/defaultSchema.json",
    "biosamples": MODEL + "biosamples/defaultSchema.json",
    "cohorts": MODEL + "cohorts/defaultSchema.json",
    "datasets": MODEL + "datasets/defaultSchema.json",
}


#: the genomicVariations schema with LegacyVariation (location: any object) as variation
WITHOUT_VRS = MODEL + "genomicVariations/test-without-vrs.json"


@cache
def _registry() -> Any:
    import copy

    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        uri = BASE + path.relative_to(SCHEMAS).as_posix()
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    variants = json.loads((SCHEMAS / RECORDS["g_variants"]).read_text(encoding="utf-8"))
    derived = copy.deepcopy(variants)
    legacy = derived["$defs"]["LegacyVariation"]
    legacy["properties"]["location"] = {"type": "object"}
    derived["properties"]["variation"] = {"$ref": "#/$defs/LegacyVariation"}
    resources.append(
        (BASE + WITHOUT_VRS, Resource.from_contents(derived, default_specification=DRAFT202012))
    )
    return Registry().with_resources(resources)


def validate(document: Any, schema: str) -> None:
    """Raise :class:`jsonschema.ValidationError` unless ``document`` is valid against ``schema``.

    ``schema`` is a path under ``tests/data/beacon-v2-schemas``, optionally with
    a ``#/$defs/...`` fragment.
    """
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator({"$ref": BASE + schema}, registry=_registry())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        raise errors[0]


def validate_response(document: dict[str, Any], kind: str, entry_type: str | None = None) -> None:
    """Validate a response of ``kind`` (a key of :data:`RESPONSES`) and its records."""
    validate(document, RESPONSES[kind])
    if kind == "record":
        assert entry_type is not None
        for result_set in document["response"]["resultSets"]:
            for record in result_set["results"]:
                validate_record(record, entry_type)
    if kind == "collections":
        assert entry_type is not None
        for record in document["response"]["collections"]:
            validate_record(record, entry_type)


def validate_record(record: dict[str, Any], entry_type: str) -> None:
    """Validate one record against its entry type's default schema.

    ``genomicVariations`` refers to VRS 1.3 (not shipped) for ``variation`` and its
    ``location``: the record is validated against a copy of the schema (same
    folder, so its relative references resolve) whose ``variation`` is the
    schema's own ``LegacyVariation`` with ``location`` any object, and the VRS
    ``SequenceLocation`` is checked by shape.
    """
    if entry_type != "g_variants":
        validate(record, RECORDS[entry_type])
        return
    validate(record, WITHOUT_VRS)
    location = record["variation"]["location"]
    assert location["type"] == "SequenceLocation"
    interval = location["interval"]
    assert interval["type"] == "SequenceInterval"
    assert interval["start"]["type"] == interval["end"]["type"] == "Number"
    assert 0 <= interval["start"]["value"] < interval["end"]["value"]


@dataclass(frozen=True)
class BeaconCentre:
    """A demo centre store with partner centres (tokens) for the Beacon tests.

    ``count_token``: partner ``centre-count`` (purpose HMB, counts);
    ``record_token``: partner ``centre-record`` (HMB, approved request ``DAR-1``);
    ``ds_token``: partner ``centre-ds`` (purpose DS:C50, counts).
    """

    path: Path
    demo: Path
    count_token: str
    record_token: str
    ds_token: str

    @property
    def vcf(self) -> Path:
        """The cohort VCF the store was loaded from."""
        return self.demo / "population" / "cohort.vcf.gz"


def build_beacon_centre(root: Path, *, seed: int = 11) -> BeaconCentre:
    """:func:`build_centre_store` plus three partner centres."""
    from biobank.core.access import Principal, Role
    from biobank.core.store import Store
    from biobank.research.partners import add_partner, record_approved_request
    from biobank.testing import build_centre_store

    path = build_centre_store(root, seed=seed)
    admin = Principal("admin", Role.ADMIN)
    with Store(path) as store:
        count = add_partner(store, admin, "centre-count", purpose="HMB")
        record = add_partner(store, admin, "centre-record", purpose="HMB")
        ds = add_partner(store, admin, "centre-ds", purpose="DS:C50")
        record_approved_request(store, admin, "DAR-1", requester="centre-record", purpose="HMB")
    return BeaconCentre(path, root / "demo", count, record, ds)


def permitted_samples(con: Any, purpose_codes: tuple[str, ...]) -> dict[str, str]:
    """VCF sample id -> participant of the genotyped participants whose current consent
    (latest signed, then latest registered; not withdrawn) has one of ``purpose_codes``.

    Written here without the library's consent SQL, to check it.
    """
    rows = con.execute(
        "WITH ranked AS (SELECT participant_id, primary_code, withdrawn_date,"
        " row_number() OVER (PARTITION BY participant_id"
        " ORDER BY signed_date DESC, consent_seq DESC) AS r FROM consent)"
        " SELECT g.sample_id, g.participant_id FROM genotype_sample g JOIN ranked c"
        " ON c.participant_id = g.participant_id AND c.r = 1"
        " WHERE c.withdrawn_date IS NULL AND list_contains(?, c.primary_code)",
        [list(purpose_codes)],
    ).fetchall()
    return {str(s): str(p) for s, p in rows}


#: consent codes that permit the purpose HMB (biobank.registry.consent's table)
HMB_CODES = ("NRES", "GRU", "HMB")


def split_demo(demo: Path, out: Path, k: int = 3) -> list[Path]:
    """Split one demo folder into ``k`` centres of the same genome (participant i to i % k).

    Each ``out/centre<j>`` has ``registry/``, ``clinical/`` and
    ``population/cohort.vcf.gz`` (bcftools view -S of that centre's samples), so
    the centres share variants and their union is the original cohort.
    """
    import csv
    import subprocess

    def rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)

    def write(path: Path, names: list[str], data: list[dict[str, str]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, names)
            writer.writeheader()
            writer.writerows(data)

    _, people = rows(demo / "registry" / "participants.csv")
    centre_of = {p["national_id"]: i % k for i, p in enumerate(people)}
    _, persons = rows(demo / "clinical" / "person.csv")
    person_centre = {p["person_id"]: centre_of[p["person_source_value"]] for p in persons}
    folders = [out / f"centre{j}" for j in range(k)]
    for name in ("participants.csv", "consents.csv", "specimens.csv"):
        names, data = rows(demo / "registry" / name)
        for j, folder in enumerate(folders):
            write(
                folder / "registry" / name,
                names,
                [r for r in data if centre_of[r["national_id"]] == j],
            )
    for src in sorted((demo / "clinical").glob("*.csv")):
        names, data = rows(src)
        for j, folder in enumerate(folders):
            write(
                folder / "clinical" / src.name,
                names,
                [r for r in data if person_centre[r["person_id"]] == j],
            )
    _, specimens = rows(demo / "registry" / "specimens.csv")
    header = subprocess.run(
        ["bcftools", "query", "-l", str(demo / "population" / "cohort.vcf.gz")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for j, folder in enumerate(folders):
        samples = [
            s["sequencing_sample_id"]
            for s in specimens
            if s["sequencing_sample_id"]
            and centre_of[s["national_id"]] == j
            and s["sequencing_sample_id"] in header
        ]
        keep = folder / "samples.txt"
        keep.write_text("\n".join(samples) + "\n", encoding="utf-8")
        vcf = folder / "population" / "cohort.vcf.gz"
        vcf.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "bcftools",
                "view",
                "-S",
                str(keep),
                "-Oz",
                "-o",
                str(vcf),
                str(demo / "population" / "cohort.vcf.gz"),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["bcftools", "index", "-t", str(vcf)], check=True, capture_output=True)
    return folders
