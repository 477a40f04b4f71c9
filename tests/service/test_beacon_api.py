"""The Beacon v2 API over HTTP: schema-valid answers, the granularity matrix, consent,
small counts, the rare-allele defence and the budget, and one error shape.

Every response is validated against the Beacon v2 JSON Schemas (tests/data/beacon-v2-schemas,
a local ``referencing`` registry). Counts are checked against bcftools on the cohort VCF the
store was loaded from, restricted to the consented samples, and against SQL written here.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from beacon_support import HMB_CODES, BeaconCentre, permitted_samples, validate_response
from service.support import SECRET, TestClient

from biobank.research.beacon.config import BeaconConfig
from biobank.service import create_app

BODY = {"meta": {"apiVersion": "v2.0.0"}}
#: SQL (written here) of the participants with a diagnosis: append the condition on code
DX = "p.participant_id IN (SELECT participant_id FROM clinical_condition WHERE code "
CONFIG = BeaconConfig(environment="test", anonymous_budget=500, partner_budget=500)
ENTRY = ("g_variants", "individuals", "biosamples", "cohorts", "datasets")
FRAMEWORK = {
    "": "info",
    "/info": "info",
    "/service-info": "service-info",
    "/map": "map",
    "/configuration": "configuration",
    "/entry_types": "entry_types",
    "/filtering_terms": "filtering_terms",
}


@pytest.fixture(scope="module")
def app(beacon_centre: BeaconCentre) -> Iterator[Any]:
    application = create_app(beacon_centre.path, secret_key=SECRET, beacon=CONFIG)
    yield application
    application.state.service.store.close()


@pytest.fixture(scope="module")
def client(app: Any) -> TestClient:
    return TestClient(app)


@pytest.fixture(autouse=True)
def _fresh_release_record(app: Any) -> None:
    """Each test starts with no counts released to the partners (the differencing record).

    The tests of the numbers ask overlapping questions one after the other; the
    record they would share is what ``test_differencing_*`` below test.
    """
    app.state.service.store.con.execute(
        "DELETE FROM disclosure_release WHERE user_name LIKE 'centre-%'"
    )


def _con(client: TestClient) -> Any:
    """The store connection of the app under test (a second DuckDB connection is refused)."""
    return client.app.state.service.store.con


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _post(client: TestClient, entry: str, query: dict[str, Any], token: str | None = None) -> Any:
    headers = _auth(token) if token else {}
    return client.post(f"/api/beacon/{entry}", json={**BODY, "query": query}, headers=headers)


def _checked(response: Any, entry: str | None = None) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    kind = doc["meta"]["returnedGranularity"]
    if entry in {"cohorts", "datasets"}:
        kind = "collections"
    validate_response(doc, kind, entry)
    return doc


def _bcftools_rows(centre: BeaconCentre, con: Any, region: str) -> list[dict[str, Any]]:
    """Biallelic records of ``region`` among the HMB-consented samples: AC, AN, carriers."""
    samples = sorted(permitted_samples(con, HMB_CODES))
    view = subprocess.run(
        ["bcftools", "view", "-s", ",".join(samples), "-r", region, str(centre.vcf)],
        check=True,
        capture_output=True,
    ).stdout
    norm = subprocess.run(
        ["bcftools", "norm", "-m", "-any"], input=view, check=True, capture_output=True
    ).stdout
    tagged = subprocess.run(
        ["bcftools", "+fill-tags", "-", "--", "-t", "AC,AN"],
        input=norm,
        check=True,
        capture_output=True,
    ).stdout
    out = subprocess.run(
        ["bcftools", "query", "-f", "%POS\t%REF\t%ALT\t%AC\t%AN\t[%GT,]\n"],
        input=tagged,
        check=True,
        capture_output=True,
    ).stdout.decode()
    rows = []
    for line in out.splitlines():
        pos, ref, alt, ac, an, gts = line.split("\t")
        carriers = sum(
            1 for g in gts.strip(",").split(",") if "1" in g.replace("/", "|").split("|")
        )
        rows.append(
            {
                "pos": int(pos),
                "ref": ref,
                "alt": alt,
                "ac": int(ac),
                "an": int(an),
                "carriers": carriers,
            }
        )
    return rows


# -- framework ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", sorted(FRAMEWORK))
def test_framework_endpoints_are_schema_valid(client: TestClient, suffix: str) -> None:
    response = client.get("/api/beacon" + suffix)
    assert response.status_code == 200
    validate_response(response.json(), FRAMEWORK[suffix])


def test_map_and_entry_types_name_every_entry_type(client: TestClient) -> None:
    sets = client.get("/api/beacon/map").json()["response"]["endpointSets"]
    assert {s["rootUrl"].rsplit("/", 1)[1] for s in sets.values()} == set(ENTRY)
    types = client.get("/api/beacon/entry_types").json()["response"]["entryTypes"]
    assert set(types) == {"genomicVariant", "individual", "biosample", "cohort", "dataset"}


def test_filtering_terms_advertise_every_filter_kind(client: TestClient) -> None:
    terms = {
        t["id"]
        for t in client.get("/api/beacon/filtering_terms").json()["response"]["filteringTerms"]
    }
    assert {"ICD10:E11", "ICD10:I10", "NCIT:C16576", "NCIT:C20197", "DUO:0000006", "age"} <= terms
    assert {"cohort:T2D", "cohort:BC"} <= terms
    # a category is listed only if at least 5 consented people have it (else it singles them out)
    con = _con(client)
    for (cat,) in con.execute(
        "SELECT DISTINCT substr(code, 1, 3) FROM clinical_condition"
    ).fetchall():
        n = _expected_individuals(
            con,
            DX + "LIKE ?)",
            [cat + "%"],
        )
        assert (f"ICD10:{cat}" in terms) == (n >= 5), (cat, n)


# -- granularity matrix -----------------------------------------------------------------------
@pytest.mark.parametrize("entry", ENTRY)
@pytest.mark.parametrize("who", ["anonymous", "count", "record"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_entry_type_and_granularity_is_schema_valid(
    client: TestClient, beacon_centre: BeaconCentre, entry: str, who: str, method: str
) -> None:
    token = {
        "anonymous": None,
        "count": beacon_centre.count_token,
        "record": beacon_centre.record_token,
    }[who]
    if method == "GET":
        url = f"/api/beacon/{entry}?requestedGranularity=record&limit=5"
        if entry in {"g_variants", "individuals", "biosamples"}:
            url += "&referenceName=chr1&start=0&end=60000"
        doc = _checked(client.get(url, headers=_auth(token) if token else {}), entry)
    else:
        query: dict[str, Any] = {"requestedGranularity": "record", "pagination": {"limit": 5}}
        if entry in {"g_variants", "individuals", "biosamples"}:
            query["requestParameters"] = {
                "g_variant": {"referenceName": "chr1", "start": [0], "end": [60000]}
            }
        doc = _checked(_post(client, entry, query, token), entry)
    if entry in {"cohorts", "datasets"}:
        sizes = [c.get("cohortSize") for c in doc["response"]["collections"]]
        if entry == "cohorts":  # sizes for partners only
            assert (who == "anonymous") == all(s is None for s in sizes)
        return
    expected = {"anonymous": "boolean", "count": "count", "record": "record"}[who]
    assert doc["meta"]["returnedGranularity"] == expected
    assert doc["responseSummary"]["exists"] is True
    if expected == "record":
        results = doc["response"]["resultSets"][0]["results"]
        assert 0 < len(results) <= 5


def test_an_unknown_token_is_refused_not_downgraded(client: TestClient) -> None:
    for header in ("Bearer bbp_not-a-token", "Basic abc", "Bearer "):
        response = client.get("/api/beacon/g_variants", headers={"Authorization": header})
        assert response.status_code == 401
        validate_response(response.json(), "error")


def test_a_revoked_partner_is_refused(beacon_centre: BeaconCentre, app: Any) -> None:
    from biobank.core.access import Principal, Role
    from biobank.research.partners import add_partner, revoke_partner

    store = app.state.service.store
    admin = Principal("admin", Role.ADMIN)
    token = add_partner(store, admin, "centre-gone", purpose="HMB")
    client = TestClient(app)
    assert client.get("/api/beacon/individuals", headers=_auth(token)).status_code == 200
    revoke_partner(store, admin, "centre-gone")
    assert client.get("/api/beacon/individuals", headers=_auth(token)).status_code == 401
    hashes = [r[0] for r in store.con.execute("SELECT token_hash FROM partner_centre").fetchall()]
    assert token not in hashes
    assert all(len(h) == 64 for h in hashes)


# -- the numbers ------------------------------------------------------------------------------
def test_variant_counts_equal_bcftools_on_the_consented_samples(
    client: TestClient, beacon_centre: BeaconCentre
) -> None:
    rows = _bcftools_rows(beacon_centre, _con(client), "chr1:1-60000")
    present = [r for r in rows if r["ac"] > 0]
    visible = [r for r in present if r["carriers"] >= 5 and r["ac"] / r["an"] >= 0.05]
    assert 0 < len(visible) < len(present)  # the defence hides some: the test can fail
    params = {"g_variant": {"referenceName": "chr1", "start": [0], "end": [60000]}}
    count = _checked(
        _post(
            client,
            "g_variants",
            {"requestParameters": params, "requestedGranularity": "count"},
            beacon_centre.count_token,
        )
    )
    assert count["responseSummary"]["numTotalResults"] == len(visible)
    record = _checked(
        _post(
            client,
            "g_variants",
            {
                "requestParameters": params,
                "requestedGranularity": "record",
                "pagination": {"limit": 1000},
            },
            beacon_centre.record_token,
        ),
        "g_variants",
    )
    assert record["responseSummary"]["numTotalResults"] == len(present)
    got = {
        (
            r["variation"]["location"]["interval"]["start"]["value"] + 1,
            r["variation"]["alternateBases"],
        ): r["frequencyInPopulations"][0]["frequencies"][0]["alleleFrequency"]
        for r in record["response"]["resultSets"][0]["results"]
    }
    assert got == pytest.approx({(r["pos"], r["alt"]): r["ac"] / r["an"] for r in present})


def test_sequence_bracket_gene_and_type_queries(
    client: TestClient, beacon_centre: BeaconCentre
) -> None:
    rows = [r for r in _bcftools_rows(beacon_centre, _con(client), "chr1:1-60000") if r["ac"] > 0]
    rare = next(r for r in rows if r["ac"] == 1)
    common = next(r for r in rows if r["carriers"] >= 5 and r["ac"] / r["an"] >= 0.05)
    token_c, token_r = beacon_centre.count_token, beacon_centre.record_token

    def exists(r: dict[str, Any], token: str | None) -> bool:
        url = (
            f"/api/beacon/g_variants?referenceName=chr1&start={r['pos'] - 1}"
            f"&referenceBases={r['ref']}&alternateBases={r['alt']}"
        )
        return bool(
            _checked(client.get(url, headers=_auth(token) if token else {}))["responseSummary"][
                "exists"
            ]
        )

    assert exists(common, None)
    assert exists(common, token_c)
    assert exists(common, token_r)
    # a singleton: hidden from anonymous and partner requesters, shown under the approved request
    assert not exists(rare, None)
    assert not exists(rare, token_c)
    assert exists(rare, token_r)
    # bracket: variants starting in [p-1, p-1] and ending in [p-1+len(ref), p+len(ref)]
    p, n = rare["pos"], len(rare["ref"])
    url = (
        f"/api/beacon/g_variants?referenceName=1&start={p - 1},{p - 1}"
        f"&end={p - 1 + n},{p + n}&requestedGranularity=count"
    )
    doc = _checked(client.get(url, headers=_auth(token_r)))
    assert doc["responseSummary"]["numTotalResults"] == sum(1 for r in rows if r["pos"] == p)
    snps = sum(1 for r in rows if len(r["ref"]) == len(r["alt"]) == 1)
    url = (
        "/api/beacon/g_variants?referenceName=chr1&start=0&end=60000&variantType=SNP"
        "&requestedGranularity=count"
    )
    assert (
        _checked(client.get(url, headers=_auth(token_r)))["responseSummary"]["numTotalResults"]
        == snps
    )


def test_gene_query_matches_the_annotation(client: TestClient, beacon_centre: BeaconCentre) -> None:
    # the demo VCF has no BCSQ annotation: name a gene over chr1:1-20000 (gene only)
    _con(client).execute(
        "UPDATE variant SET gene = 'GENE1' WHERE contig = 'chr1' AND position <= 20000"
    )
    rows = [r for r in _bcftools_rows(beacon_centre, _con(client), "chr1:1-20000") if r["ac"] > 0]
    for geneq in ("geneId=GENE1", "geneId=GENE1&variantType=SNP", "geneId=NOPE"):
        url = f"/api/beacon/g_variants?{geneq}&requestedGranularity=count"
        doc = _checked(client.get(url, headers=_auth(beacon_centre.record_token)))
        expected = {
            "geneId=GENE1": len(rows),
            "geneId=GENE1&variantType=SNP": sum(
                1 for r in rows if len(r["ref"]) == len(r["alt"]) == 1
            ),
            "geneId=NOPE": 0,
        }[geneq]
        assert doc["responseSummary"]["numTotalResults"] == expected, geneq


def _expected_individuals(
    con: Any, where: str, params: list[Any], codes: tuple[str, ...] = HMB_CODES
) -> int:
    """Consented participants (current consent among ``codes``) matching ``where`` (SQL here)."""
    row = con.execute(
        "WITH ranked AS (SELECT participant_id, primary_code, withdrawn_date, row_number() OVER"
        " (PARTITION BY participant_id ORDER BY signed_date DESC, consent_seq DESC) AS r"
        " FROM consent) SELECT count(*) FROM participant p JOIN ranked c"
        " ON c.participant_id = p.participant_id AND c.r = 1"
        f" WHERE c.withdrawn_date IS NULL AND list_contains(?, c.primary_code) AND {where}",
        [list(codes), *params],
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("filters", "where", "params"),
    [
        (
            ["ICD10:E11"],
            DX + "LIKE 'E11%')",
            [],
        ),
        (
            ["ICD10:E11.9"],
            DX + "IN ('E11.9', 'E11.900'))",
            [],
        ),
        (
            [{"id": "ICD10:E11.9", "includeDescendantTerms": False}],
            DX + "= 'E11.9')",
            [],
        ),
        (
            ["ICD10:I10.x00"],
            DX + "= 'I10.x00')",
            [],
        ),
        (
            ["ICD10:I10", "NCIT:C16576"],
            "p.sex = 'female' AND " + DX + "LIKE 'I10%')",
            [],
        ),
        (
            ["cohort:HTN", {"id": "age", "operator": ">=", "value": "P60Y"}],
            "year(current_date) - p.birth_year >= 60 AND p.participant_id IN"
            " (SELECT participant_id FROM participant_cohort WHERE cohort = 'HTN')",
            [],
        ),
        (["DUO:0000042"], "c.primary_code = 'GRU'", []),
    ],
)
def test_individual_counts_with_filters(
    client: TestClient,
    beacon_centre: BeaconCentre,
    filters: list[Any],
    where: str,
    params: list[Any],
) -> None:
    expected = _expected_individuals(_con(client), where, params)
    doc = _checked(
        _post(
            client,
            "individuals",
            {"filters": filters, "requestedGranularity": "count"},
            beacon_centre.count_token,
        )
    )
    if 0 < expected < 5:
        assert doc["meta"]["returnedGranularity"] == "boolean"
        assert "numTotalResults" not in doc["responseSummary"]
    else:
        assert doc["responseSummary"]["numTotalResults"] == expected
    assert doc["responseSummary"]["exists"] is (expected > 0)


def test_consent_is_honoured(client: TestClient, beacon_centre: BeaconCentre) -> None:
    # POA and DS consents never permit HMB: asking for them finds no one
    for duo in ("DUO:0000011", "DUO:0000007"):
        doc = _checked(
            _post(
                client,
                "individuals",
                {"filters": [duo], "requestedGranularity": "count"},
                beacon_centre.count_token,
            )
        )
        assert doc["responseSummary"] == {"exists": False, "numTotalResults": 0}
    # a DS:C50 partner counts the DS:C50 consents too, and only what DS:C50 permits
    everyone = _checked(
        _post(client, "individuals", {"requestedGranularity": "count"}, beacon_centre.count_token)
    )
    ds = _checked(
        _post(client, "individuals", {"requestedGranularity": "count"}, beacon_centre.ds_token)
    )
    n_hmb = _expected_individuals(_con(client), "TRUE", [])
    assert everyone["responseSummary"]["numTotalResults"] == n_hmb
    con = _con(client)
    n_ds = con.execute(
        "WITH ranked AS (SELECT *, row_number() OVER (PARTITION BY participant_id"
        " ORDER BY signed_date DESC, consent_seq DESC) AS r FROM consent)"
        " SELECT count(*) FROM ranked WHERE r = 1 AND withdrawn_date IS NULL"
        " AND (primary_code IN ('NRES', 'GRU', 'HMB')"
        " OR (primary_code = 'DS' AND starts_with('C50', replace(disease, '.', ''))))"
    ).fetchone()[0]
    assert ds["responseSummary"]["numTotalResults"] == n_ds != n_hmb


def test_small_counts_are_never_counts(client: TestClient, beacon_centre: BeaconCentre) -> None:
    """Filters that select 1 to 4 consented people: no unapproved requester sees the number."""
    small = []
    for code in ("E11.2", "C50.4", "I25.9", "E78.0", "E11.4", "C50.901"):
        n = _expected_individuals(
            _con(client),
            DX + "= ?)",
            [code],
        )
        if 0 < n < 5:
            small.append(code)
    assert small, "the demo store should have a rare diagnosis"
    for code in small:
        for entry in ("individuals", "biosamples", "g_variants"):
            query: dict[str, Any] = {
                "filters": [{"id": f"ICD10:{code}", "includeDescendantTerms": False}],
                "requestedGranularity": "count",
            }
            if entry == "g_variants":
                query["requestParameters"] = {
                    "g_variant": {"referenceName": "chr1", "start": [0], "end": [60000]}
                }
            doc = _checked(_post(client, entry, query, beacon_centre.count_token))
            assert doc["meta"]["returnedGranularity"] == "boolean", (code, entry)
            assert "numTotalResults" not in doc["responseSummary"]


def test_record_answers_are_audited(
    client: TestClient, app: Any, beacon_centre: BeaconCentre
) -> None:
    store = app.state.service.store
    before = store.con.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'beacon.record'"
    ).fetchone()[0]
    _checked(
        _post(
            client, "individuals", {"requestedGranularity": "record"}, beacon_centre.record_token
        ),
        "individuals",
    )
    _checked(
        _post(client, "individuals", {"requestedGranularity": "count"}, beacon_centre.count_token)
    )
    rows = store.con.execute(
        "SELECT user_name, target, detail FROM audit_log WHERE action = 'beacon.record'"
        " ORDER BY entry_id"
    ).fetchall()
    assert len(rows) == before + 1
    assert rows[-1][0] == "partner:centre-record"
    assert '"DAR-1"' in rows[-1][2]


def test_the_query_budget(app: Any, beacon_centre: BeaconCentre) -> None:
    service = app.state.service
    used = service.store.con.execute(
        "SELECT coalesce(sum(n_queries), 0) FROM beacon_query_budget"
        " WHERE requester = 'centre-count'"
    ).fetchone()[0]
    service.beacon = dataclasses.replace(CONFIG, partner_budget=int(used) + 2)
    try:
        client = TestClient(app)
        for _ in range(2):
            assert _post(client, "individuals", {}, beacon_centre.count_token).status_code == 200
        refused = _post(client, "individuals", {}, beacon_centre.count_token)
        assert refused.status_code == 429
        validate_response(refused.json(), "error")
        # the approved requester has no budget
        assert _post(client, "individuals", {}, beacon_centre.record_token).status_code == 200
    finally:
        service.beacon = CONFIG


# -- one error shape ------------------------------------------------------------------------
BAD_GET = [
    ("g_variants", "referenceName=chr1&start=abc&end=10", 400),
    ("individuals", "referenceName=chr1&start=10&end=5", 400),
    ("biosamples", "referenceName=chr1&start=0&end=900000000", 400),
    ("g_variants", "filters=HP:0001", 400),
    ("individuals", "filters=ICD10:XYZ", 400),
    ("cohorts", "requestedGranularity=all", 400),
    ("datasets", "skip=-1", 400),
    ("g_variants", "chromosome=1", 400),
    ("g_variants", "referenceName=chr1&start=1&alternateBases=A&assemblyId=GRCh37", 400),
]


@pytest.mark.parametrize(("entry", "query", "status"), BAD_GET)
def test_malformed_get_requests_get_the_error_shape(
    client: TestClient, entry: str, query: str, status: int
) -> None:
    response = client.get(f"/api/beacon/{entry}?{query}")
    assert response.status_code == status
    doc = response.json()
    validate_response(doc, "error")
    assert doc["error"]["errorCode"] == status
    assert doc["error"]["errorMessage"]


@pytest.mark.parametrize("entry", ENTRY)
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"query": {}}',
        b'{"meta": {"apiVersion": "v2.0.0"}, "query": {"filters": ["NOPE:1"]}}',
        b'{"meta": {"apiVersion": "v2.0.0"}, "query": {"requestParameters":'
        b' {"g_variant": {"referenceName": "1", "start": [5, 1], "end": [9, 10]}}}}',
        b"\xff\xfe",
    ],
)
def test_malformed_post_bodies_get_the_error_shape(
    client: TestClient, entry: str, body: bytes
) -> None:
    response = client.post(
        f"/api/beacon/{entry}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    validate_response(response.json(), "error")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/beacon/runs", 404),
        ("DELETE", "/api/beacon/individuals", 405),
        ("GET", "/api/beacon/info?x=1", 400),
        ("POST", "/api/beacon/info", 405),
    ],
)
def test_unknown_paths_and_methods_get_the_error_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    validate_response(response.json(), "error")


def test_record_level_under_an_approved_data_access_request(app: Any) -> None:
    """A partner whose store user (same name) holds an approved request gets records."""
    import datetime as dt

    from biobank.core.access import Principal, Role, add_user
    from biobank.research.access_requests import approve_request, submit_request
    from biobank.research.partners import add_partner

    store = app.state.service.store
    admin = Principal("admin", Role.ADMIN)
    token = add_partner(store, admin, "centre-dar", purpose="HMB")
    client = TestClient(app)
    query = {"requestedGranularity": "record"}
    before = _checked(_post(client, "individuals", query, token), "individuals")
    assert before["meta"]["returnedGranularity"] == "count"
    with store.transaction() as con:
        add_user(con, admin, "centre-dar", Role.RESEARCHER)
        add_user(con, admin, "dac-beacon", Role.APPROVER)
    req = submit_request(
        store,
        Principal("centre-dar", Role.RESEARCHER),
        project="network-discovery",
        title="Discovery for the national network",
        institution="Partner gene data center",
        country="CN",
        foreign_party=False,
        purpose="HMB",
        fields=["clinical_person.sex", "clinical_condition.code"],
        period_start=dt.date.today(),
        period_end=dt.date.today() + dt.timedelta(days=30),
    )
    approve_request(store, Principal("dac-beacon", Role.APPROVER), req.request_id, reason="DAC ok")
    after = _checked(_post(client, "individuals", query, token), "individuals")
    assert after["meta"]["returnedGranularity"] == "record"
    detail = store.con.execute(
        "SELECT detail FROM audit_log WHERE action = 'beacon.record' ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()[0]
    assert f"access-request-{req.request_id}" in detail


# -- differencing through filters (issue 16's output checks on every count answer) -----------
def _age(n: int, operator: str = ">=") -> dict[str, Any]:
    return {"id": "age", "operator": operator, "value": f"P{n}Y"}


def _count(client: TestClient, filters: list[Any], token: str) -> dict[str, Any]:
    return _checked(
        _post(client, "individuals", {"filters": filters, "requestedGranularity": "count"}, token)
    )


def _withheld(con: Any, user: str) -> list[str]:
    rows = con.execute(
        "SELECT detail FROM audit_log WHERE action = 'disclosure.withheld' AND user_name = ?"
        " ORDER BY entry_id",
        [user],
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_differencing_two_filtered_counts_is_answered_boolean(
    client: TestClient, beacon_centre: BeaconCentre
) -> None:
    """``age >= X`` and ``age >= X+1`` differ by the one consented person aged X: the second
    count would give that person away (the attack is real: both counts are large)."""
    con = _con(client)
    age = "year(current_date) - p.birth_year"
    found = [
        x
        for x in range(20, 90)
        if _expected_individuals(con, f"{age} = {x}", []) == 1
        and _expected_individuals(con, f"{age} >= {x + 1}", []) >= 5
    ]
    assert found, "the demo centre should have an age held by one consented person"
    x = found[0]
    n = _expected_individuals(con, f"{age} >= {x}", [])
    token = beacon_centre.count_token
    before = len(_withheld(con, "partner:centre-count"))
    first = _count(client, [_age(x)], token)
    assert first["responseSummary"] == {"exists": True, "numTotalResults": n}
    second = _count(client, [_age(x + 1)], token)
    assert second["meta"]["returnedGranularity"] == "boolean"  # not n - 1
    assert second["responseSummary"] == {"exists": True}
    withheld = _withheld(con, "partner:centre-count")
    assert len(withheld) == before + 1
    assert "differencing" in withheld[-1]
    # the same question again is the same count (nothing new), and it is recorded for the partner
    assert _count(client, [_age(x)], token)["responseSummary"]["numTotalResults"] == n
    recorded = con.execute(
        "SELECT n_members FROM disclosure_release WHERE user_name = 'centre-count'"
    ).fetchall()
    assert recorded == [(n,)]
    # another partner has its own record: its first count is answered
    other = _count(client, [_age(x + 1)], beacon_centre.record_token)  # approved: no checks
    assert other["responseSummary"]["numTotalResults"] == n - 1


def test_differencing_three_filtered_counts_is_refused(
    client: TestClient, beacon_centre: BeaconCentre
) -> None:
    """``age >= X`` - ``age >= X & female`` - ``age >= X+1 & male`` = the males aged X: every
    pair differs by many, the three together by one person (the multi-release audit)."""
    con = _con(client)
    age = "year(current_date) - p.birth_year"
    choices = []
    for x in range(20, 90):
        sizes = [
            _expected_individuals(con, f"{age} >= {x}", []),
            _expected_individuals(con, f"{age} >= {x} AND p.sex = 'female'", []),
            _expected_individuals(con, f"{age} >= {x + 1} AND p.sex = 'male'", []),
        ]
        males_x = _expected_individuals(con, f"{age} = {x} AND p.sex = 'male'", [])
        gaps = [abs(a - b) for a in sizes for b in sizes if a != b]
        if males_x == 1 and min(sizes) >= 5 and min(gaps) >= 5:
            choices.append((x, sizes))
    assert choices, "the demo centre should have an age held by one consented man"
    x, sizes = choices[0]
    token = beacon_centre.count_token
    queries = [[_age(x)], [_age(x), "NCIT:C16576"], [_age(x + 1), "NCIT:C20197"]]
    docs = [_count(client, q, token) for q in queries]
    assert [d["responseSummary"].get("numTotalResults") for d in docs[:2]] == sizes[:2]
    assert docs[2]["meta"]["returnedGranularity"] == "boolean"
    assert docs[2]["responseSummary"] == {"exists": True}
    assert "several releases" in _withheld(con, "partner:centre-count")[-1]


def test_differencing_between_entry_types_is_caught(
    client: TestClient, beacon_centre: BeaconCentre
) -> None:
    """Biosamples and g_variants counts are about people too: they share the partner's record."""
    con = _con(client)
    age = "year(current_date) - p.birth_year"
    x = next(
        x
        for x in range(20, 90)
        if _expected_individuals(con, f"{age} = {x}", []) == 1
        and _expected_individuals(con, f"{age} >= {x + 1}", []) >= 5
    )
    token = beacon_centre.count_token
    assert _count(client, [_age(x)], token)["meta"]["returnedGranularity"] == "count"
    tubes = _checked(
        _post(
            client, "biosamples", {"filters": [_age(x + 1)], "requestedGranularity": "count"}, token
        )
    )
    assert tubes["meta"]["returnedGranularity"] == "boolean"
    variants = _checked(
        _post(
            client,
            "g_variants",
            {
                "filters": [_age(x + 1)],
                "requestParameters": {
                    "g_variant": {"referenceName": "chr1", "start": [0], "end": [60000]}
                },
                "requestedGranularity": "count",
            },
            token,
        )
    )
    assert variants["meta"]["returnedGranularity"] == "boolean"


def test_cohort_sizes_pass_the_same_checks(client: TestClient, beacon_centre: BeaconCentre) -> None:
    """``/cohorts`` sizes are counts too: a filtered count one person short of a cohort shown
    there is answered boolean."""
    con = _con(client)
    age = "year(current_date) - p.birth_year"
    in_cohort = (
        "p.participant_id IN (SELECT participant_id FROM participant_cohort WHERE cohort = ?)"
    )
    found = []
    for (cohort,) in con.execute(
        "SELECT DISTINCT cohort FROM participant_cohort ORDER BY 1"
    ).fetchall():
        for x in range(20, 90):
            if (
                _expected_individuals(con, f"{in_cohort} AND {age} < {x}", [cohort]) == 1
                and _expected_individuals(con, f"{in_cohort} AND {age} >= {x}", [cohort]) >= 5
            ):
                found.append((cohort, x))
                break
    assert found, "some cohort should have one youngest consented member"
    cohort, x = found[0]
    size = _expected_individuals(con, in_cohort, [cohort])
    doc = _checked(
        client.get("/api/beacon/cohorts", headers=_auth(beacon_centre.count_token)), "cohorts"
    )
    shown = {c["id"]: c.get("cohortSize") for c in doc["response"]["collections"]}
    assert shown[cohort] == size
    labels = [
        r[0]
        for r in con.execute(
            "SELECT label FROM disclosure_release WHERE user_name = 'centre-count'"
        ).fetchall()
    ]
    assert f"beacon cohort {cohort}" in labels
    rest = _count(client, [f"cohort:{cohort}", _age(x)], beacon_centre.count_token)
    assert rest["meta"]["returnedGranularity"] == "boolean"


# -- record level follows the approved request: its fields and its cohort ---------------------
def test_record_level_shows_only_the_approved_fields_and_cohort(
    app: Any, beacon_centre: BeaconCentre
) -> None:
    """A request approving diagnoses only, for the E11 cohort: records of E11 members without
    sex or collection dates, and no genotype answer above count (genotypes not approved)."""
    import datetime as dt

    from biobank.clinical.cohorts import Diagnosis
    from biobank.core.access import Principal, Role, add_user
    from biobank.research.access_requests import approve_request, submit_request
    from biobank.research.beacon.records import UNKNOWN_SEX
    from biobank.research.partners import add_partner

    store = app.state.service.store
    admin = Principal("admin", Role.ADMIN)
    token = add_partner(store, admin, "centre-narrow", purpose="HMB")
    with store.transaction() as con:
        add_user(con, admin, "centre-narrow", Role.RESEARCHER)
        add_user(con, admin, "dac-narrow", Role.APPROVER)
    req = submit_request(
        store,
        Principal("centre-narrow", Role.RESEARCHER),
        project="narrow-discovery",
        title="Diabetes discovery",
        institution="Partner gene data center",
        country="CN",
        foreign_party=False,
        purpose="HMB",
        fields=["clinical_condition.code"],
        cohort=Diagnosis("E11"),
        period_start=dt.date.today(),
        period_end=dt.date.today() + dt.timedelta(days=30),
    )
    approve_request(store, Principal("dac-narrow", Role.APPROVER), req.request_id, reason="ok")
    client = TestClient(app)
    con = _con(client)
    e11 = {
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT participant_id FROM clinical_condition WHERE code LIKE 'E11%'"
        ).fetchall()
    }
    n_e11 = _expected_individuals(con, DX + "LIKE 'E11%')", [])
    n_all = _expected_individuals(con, "TRUE", [])
    assert 5 <= n_e11 < n_all
    query = {"requestedGranularity": "record", "pagination": {"limit": 1000}}
    people = _checked(_post(client, "individuals", query, token), "individuals")
    assert people["meta"]["returnedGranularity"] == "record"
    assert people["responseSummary"]["numTotalResults"] == n_e11  # the cohort, not everyone
    records = people["response"]["resultSets"][0]["results"]
    assert len(records) == n_e11
    assert {r["id"] for r in records} <= e11
    assert all(r["sex"] == UNKNOWN_SEX for r in records)  # sex is not approved
    assert all(
        any(d["diseaseCode"]["id"].startswith("ICD10:E11") for d in r["diseases"]) for r in records
    )
    tubes = _checked(_post(client, "biosamples", query, token), "biosamples")
    results = tubes["response"]["resultSets"][0]["results"]
    assert results
    assert {r["individualId"] for r in results} <= e11
    assert all("collectionDate" not in r for r in results)
    # genotypes are not approved: a variant question is answered as to a partner (count)
    variant = {"g_variant": {"referenceName": "chr1", "start": [0], "end": [60000]}}
    for entry in ("g_variants", "individuals"):
        doc = _checked(_post(client, entry, {**query, "requestParameters": variant}, token), entry)
        assert doc["meta"]["returnedGranularity"] in {"count", "boolean"}, entry
        assert "response" not in doc
    # an approval without fields or cohort (recorded outside the store) still shows everything
    full = _checked(_post(client, "individuals", query, beacon_centre.record_token), "individuals")
    assert full["responseSummary"]["numTotalResults"] == n_all
    assert any(r["sex"] != UNKNOWN_SEX for r in full["response"]["resultSets"][0]["results"])


def test_differencing_across_federation_and_beacon_is_caught(
    client: TestClient, beacon_centre: BeaconCentre
) -> None:
    """A federated count and a Beacon count share the partner's record: asking one of each
    does not split the attack."""
    from biobank.research.federation.centre import answer_question
    from biobank.research.partners import Partner

    con = _con(client)
    age = "year(current_date) - p.birth_year"
    x = next(
        x
        for x in range(20, 90)
        if _expected_individuals(con, f"{age} = {x}", []) == 1
        and _expected_individuals(con, f"{age} >= {x + 1}", []) >= 5
    )
    n = _expected_individuals(con, f"{age} >= {x}", [])
    store = client.app.state.service.store
    federated = answer_question(
        store, Partner("centre-count", "HMB"), "count", {"filters": [_age(x)]}, min_count=5
    )
    assert federated["n"] == n
    second = _count(client, [_age(x + 1)], beacon_centre.count_token)
    assert second["meta"]["returnedGranularity"] == "boolean"
