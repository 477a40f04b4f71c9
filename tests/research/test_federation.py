"""Federated analysis: three centres, each its own store of a different demo seed.

In-process tests call a centre's answer function directly; the slow test starts three
``biobank serve`` processes on loopback and a coordinator over HTTP. Expected values are
computed here from each store with SQL written for the test, bcftools on each centre's
VCF, and statsmodels on the pooled rows.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from beacon_support import HMB_CODES, permitted_samples

from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ValidationError
from biobank.core.store import Store
from biobank.research.federation import (
    Centre,
    Federation,
    answer_question,
    federated_count,
    federated_frequencies,
    federated_logistic,
)
from biobank.research.federation.centre import design_matrix, logistic_statistics
from biobank.research.partners import Partner, add_partner
from biobank.testing import build_centre_store

#: every test here needs the three centre stores (about 20 s to build)
pytestmark = pytest.mark.slow

SEEDS = (21, 22, 23)
YEAR = 2026
QUESTION = {"outcome": "E11", "covariates": ["sex", "age"], "reference_year": YEAR}


@dataclass(frozen=True)
class Network:
    """Three centre stores and the token each issued to the coordinator."""

    stores: tuple[Path, ...]
    tokens: tuple[str, ...]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    stores, tokens = [], []
    for seed in SEEDS:
        path = build_centre_store(tmp_path_factory.mktemp(f"centre{seed}"), seed=seed)
        with Store(path) as store:
            tokens.append(
                add_partner(store, Principal("admin", Role.ADMIN), "coordinator", purpose="HMB")
            )
        stores.append(path)
    return Network(tuple(stores), tuple(tokens))


def _pooled_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Design (intercept, male, age) and outcome (an E11 code) of the HMB-consented (SQL here)."""
    with Store(path, read_only=True) as store:
        rows = store.con.execute(
            "WITH ranked AS (SELECT participant_id, primary_code, withdrawn_date, row_number()"
            " OVER (PARTITION BY participant_id ORDER BY signed_date DESC, consent_seq DESC) AS r"
            " FROM consent) SELECT p.sex = 'male', ? - p.birth_year, EXISTS (SELECT 1 FROM"
            " clinical_condition c WHERE c.participant_id = p.participant_id"
            " AND c.code LIKE 'E11%') FROM participant p JOIN ranked k"
            " ON k.participant_id = p.participant_id AND k.r = 1"
            " WHERE k.withdrawn_date IS NULL AND list_contains(?, k.primary_code)",
            [YEAR, list(HMB_CODES)],
        ).fetchall()
    x = np.array([[1.0, float(m), float(a)] for m, a, _ in rows])
    y = np.array([float(c) for _m, _a, c in rows])
    return x, y


@dataclass(frozen=True)
class Expected:
    """What the centres hold, computed here before any server runs (DuckDB locks the file)."""

    rows: tuple[tuple[np.ndarray, np.ndarray], ...]
    i10: tuple[int, ...]
    #: variant -> [alt allele count, allele total, centres that have it], by bcftools
    frequencies: dict[str, list[int]]


I10_SQL = (
    "WITH ranked AS (SELECT participant_id, primary_code, withdrawn_date, row_number()"
    " OVER (PARTITION BY participant_id ORDER BY signed_date DESC, consent_seq DESC)"
    " AS r FROM consent) SELECT count(*) FROM ranked k WHERE k.r = 1"
    " AND k.withdrawn_date IS NULL AND list_contains(?, k.primary_code)"
    " AND k.participant_id IN (SELECT participant_id FROM clinical_condition"
    " WHERE code LIKE 'I10%')"
)


def _bcftools_counts(vcf: Path, samples: list[str], region: str) -> list[tuple[str, int, int]]:
    out = subprocess.run(
        f"bcftools view -s {','.join(samples)} -r {region} {vcf} | bcftools norm -m -any"
        " | bcftools +fill-tags -- -t AC,AN"
        " | bcftools query -f '%CHROM:%POS:%REF:%ALT\\t%AC\\t%AN\\n'",
        shell=True,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [(k, int(ac), int(an)) for k, ac, an in (line.split("\t") for line in out.splitlines())]


@pytest.fixture(scope="module")
def expected(network: Network) -> Expected:
    rows, i10, freq = [], [], {}
    for path in network.stores:
        rows.append(_pooled_rows(path))
        with Store(path, read_only=True) as store:
            row = store.con.execute(I10_SQL, [list(HMB_CODES)]).fetchone()
            samples = sorted(permitted_samples(store.con, HMB_CODES))
        i10.append(int(row[0]) if row else 0)
        vcf = path.parent / "demo" / "population" / "cohort.vcf.gz"
        for key, ac, an in _bcftools_counts(vcf, samples, "chr1:1-3000"):
            cell = freq.setdefault(key, [0, 0, 0])
            cell[0] += ac
            cell[1] += an
            cell[2] += 1
    return Expected(tuple(rows), tuple(i10), freq)


def _statsmodels_fit(parts: list[tuple[np.ndarray, np.ndarray]]) -> Any:
    import statsmodels.api as sm

    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return sm.Logit(y, x).fit(method="newton", tol=1e-12, maxiter=100, disp=False)


def test_a_centre_sends_only_its_sufficient_statistics(
    network: Network, expected: Expected
) -> None:
    x, y = expected.rows[0]
    with Store(network.stores[0]) as store:
        partner = Partner("coordinator", "HMB")
        got = answer_question(store, partner, "logistic", {**QUESTION, "beta": None}, min_count=5)
        p = np.full(len(y), 0.5)
        assert got["n"] == len(y)
        assert got["n_cases"] == int(y.sum())
        np.testing.assert_allclose(got["gradient"], x.T @ (y - p), rtol=1e-12)
        np.testing.assert_allclose(got["information"], (x * 0.25).T @ x, rtol=1e-12)
        assert set(got) == {
            "columns",
            "n",
            "n_cases",
            "n_parameters",
            "gradient",
            "information",
            "loglik",
        }
        audited = store.con.execute(
            "SELECT user_name, target FROM audit_log WHERE action = 'federation.question'"
        ).fetchall()
        assert ("partner:coordinator", "logistic") in audited


def test_a_centre_refuses_a_disclosive_question_and_audits_it(network: Network) -> None:
    with Store(network.stores[1]) as store:
        partner = Partner("coordinator", "HMB")
        rare = None
        for code in ("E11.2", "C50.4", "I25.9", "E78.0", "E11.4", "C50.901"):
            _columns, _x, y = design_matrix(store.con, {**QUESTION, "outcome": code}, "HMB")
            if 0 < int(y.sum()) < 5:
                rare = {**QUESTION, "outcome": code}
                break
        assert rare is not None, "the demo store should have a rare diagnosis"
        with pytest.raises(AccessDenied, match="disclosure"):
            answer_question(store, partner, "logistic", rare, min_count=5)
        refused = store.con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'federation.refused'"
        ).fetchone()
        assert refused is not None
        assert refused[0] >= 1
        with pytest.raises(ValidationError):
            answer_question(
                store, partner, "logistic", {**QUESTION, "covariates": ["bmi"]}, min_count=5
            )
        # a small count is suppressed, never sent
        small = answer_question(
            store,
            partner,
            "count",
            {"filters": [{"id": "ICD10:E11.2", "includeDescendantTerms": False}]},
            min_count=5,
        )
        assert small["n"] is None or small["n"] == 0 or small["n"] >= 5


def test_logistic_statistics_of_newton_sum_to_the_pooled_fit(expected: Expected) -> None:
    """Summing per-centre statistics each Newton step gives statsmodels' pooled fit (in process)."""
    parts = list(expected.rows)
    beta = np.zeros(3)
    for _ in range(30):
        stats = [logistic_statistics(x, y, beta) for x, y in parts]
        step = np.linalg.solve(
            sum(np.asarray(s["information"]) for s in stats),
            sum(np.asarray(s["gradient"]) for s in stats),
        )
        beta = beta + step
        if np.max(np.abs(step)) < 1e-12:
            break
    fit = _statsmodels_fit(parts)
    np.testing.assert_allclose(beta, fit.params, rtol=1e-6)


# -- three `biobank serve` on loopback --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"biobank serve exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if httpx.get(url + "/api/beacon/info", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


@pytest.fixture(scope="module")
def servers(
    network: Network, expected: Expected
) -> Iterator[list[tuple[Centre, subprocess.Popen[bytes]]]]:
    biobank = Path(sys.executable).parent / "biobank"
    running = []
    env = {**os.environ, "BIOBANK_SECRET_KEY": "k" * 40}
    for i, (path, token) in enumerate(zip(network.stores, network.tokens, strict=True), start=1):
        port = _free_port()
        proc = subprocess.Popen(
            [
                str(biobank),
                "--store",
                str(path),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        running.append((Centre(f"centre-{i}", f"http://127.0.0.1:{port}", token), proc))
    try:
        for centre, proc in running:
            _wait(centre.url, proc)
        yield running
    finally:
        for _centre, proc in running:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)


def test_three_centres_over_http(
    network: Network, expected: Expected, servers: list[tuple[Centre, Any]], tmp_path: Path
) -> None:
    centres = [c for c, _p in servers]
    federation = Federation(centres, timeout=30)
    # counts: the sum of the three stores
    count = federated_count(federation, ["ICD10:I10"])
    assert count.complete
    assert count.value == sum(expected.i10)
    assert count.per_centre == {c.name: n for c, n in zip(centres, expected.i10, strict=True)}
    # allele frequencies per cohort: sums of bcftools counts on each centre's VCF
    freq = federated_frequencies(federation, "chr1:1-3000", cohorts=["T2D"])
    assert freq.complete
    assert set(freq.value) == {"all", "T2D"}
    pooled = freq.value["all"]
    assert set(pooled) == set(expected.frequencies)
    checked = 0
    for key, (ac, an, n_centres) in expected.frequencies.items():
        cell = pooled[key]
        if cell["suppressed_at"]:
            assert cell["alt_allele_count"] is None
            continue
        assert (cell["alt_allele_count"], cell["allele_total"]) == (ac, an)
        assert len(cell["centres"]) == n_centres
        checked += 1
    assert checked > 0
    # logistic regression: the pooled fit of statsmodels, to 1e-6 relative
    fit = federated_logistic(federation, "E11", ["sex", "age"], reference_year=YEAR)
    pooled_fit = _statsmodels_fit(list(expected.rows))
    assert fit.missing == {}
    assert fit.columns == ["intercept", "sex", "age"]
    np.testing.assert_allclose(fit.beta, pooled_fit.params, rtol=1e-6)
    np.testing.assert_allclose(fit.standard_error, pooled_fit.bse, rtol=1e-6)
    assert fit.n == int(pooled_fit.nobs)
    # a wrong token is refused by that centre, named in the answer
    wrong = Federation(
        [centres[0], Centre(centres[1].name, centres[1].url, "bbp_wrong")], timeout=10
    )
    partial = federated_count(wrong, [])
    assert list(partial.missing) == [centres[1].name]
    assert "refused" in partial.missing[centres[1].name]
    # the command line over a centres file
    spec = tmp_path / "centres.yaml"
    spec.write_text(
        "centres:\n"
        + "".join(f"  - {{name: {c.name}, url: '{c.url}', token: {c.token}}}\n" for c in centres),
        encoding="utf-8",
    )
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "biobank"),
            "federate",
            "count",
            "--centres",
            str(spec),
            "--filter",
            "ICD10:I10",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'"n": {sum(expected.i10)}' in cli.stdout

    # one centre stops in the middle of a logistic fit: the answer names it and is the
    # pooled fit of the two others
    class Stopping(Federation):
        calls = 0

        def ask(
            self, kind: str, question: dict[str, Any], centres: list[Centre] | None = None
        ) -> Any:
            Stopping.calls += 1
            if Stopping.calls == 2:
                servers[2][1].terminate()
                servers[2][1].wait(timeout=20)
            return super().ask(kind, question, centres)

    partial_fit = federated_logistic(
        Stopping(centres, timeout=10), "E11", ["sex", "age"], reference_year=YEAR
    )
    assert list(partial_fit.missing) == [centres[2].name]
    assert partial_fit.centres == [centres[0].name, centres[1].name]
    two = _statsmodels_fit(list(expected.rows[:2]))
    np.testing.assert_allclose(partial_fit.beta, two.params, rtol=1e-6)
    down = federated_count(Federation(centres, timeout=5), [])
    assert "unreachable" in down.missing[centres[2].name]
    assert down.value == sum(down.per_centre[c.name] for c in centres[:2])
    # every centre audited every question it answered
    for _c, proc in servers:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
    for path in network.stores:
        with Store(path, read_only=True) as store:
            kinds = {
                r[0]
                for r in store.con.execute(
                    "SELECT target FROM audit_log WHERE action = 'federation.question'"
                    " AND user_name = 'partner:coordinator'"
                ).fetchall()
            }
        assert {"count", "frequencies", "logistic"} <= kinds


def test_a_variant_covariate_is_the_dosage_bcftools_reads(network: Network) -> None:
    path = network.stores[0]
    vcf = path.parent / "demo" / "population" / "cohort.vcf.gz"
    with Store(path, read_only=True) as store:
        samples = permitted_samples(store.con, HMB_CODES)
        contig, pos, ref, alt = store.con.execute(
            "SELECT contig, position, ref, alt FROM variant WHERE variant_key = ("
            " SELECT variant_key FROM genotype_call GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"
        ).fetchone()  # type: ignore[misc]
    out = subprocess.run(
        ["bcftools", "query", "-r", f"{contig}:{pos}", "-f", "[%SAMPLE\t%GT\n]", str(vcf)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    dosage = {}
    for line in out.splitlines():
        sample, gt = line.split("\t")
        if sample in samples and "." not in gt:
            dosage[samples[sample]] = sum(a == "1" for a in gt.replace("|", "/").split("/"))
    assert sum(dosage.values()) > 0
    question = {**QUESTION, "covariates": ["sex", f"variant:{contig}:{pos}:{ref}:{alt}"]}
    with Store(path) as store:
        columns, x, _y = design_matrix(store.con, question, "HMB")
        sql = (
            "SELECT participant_id FROM participant p WHERE participant_id IN"
            " (SELECT participant_id FROM genotype_sample) ORDER BY 1"
        )
        order = [r[0] for r in store.con.execute(sql).fetchall() if r[0] in dosage]
    assert columns[-1].startswith("variant:")
    assert x[:, -1].tolist() == [float(dosage[p]) for p in order]


def test_a_variant_model_over_centres_of_one_genome_matches_plink2(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """One demo cohort split into three centres (same genome): the federated E11 ~ sex + age +
    ALT dosage equals plink2 --glm on the merged VCF (OR and SE of the variant, plink2's
    printed precision). The centres answer in process (HTTP is tested above)."""
    import csv
    import math

    from beacon_support import split_demo

    from biobank.testing import generate_demo, load_centre_store

    root = tmp_path_factory.mktemp("split")
    generate_demo(root / "demo", preset="tiny", seed=24, reads=False)
    folders = split_demo(root / "demo", root)
    stores = [load_centre_store(f / "centre.duckdb", f) for f in folders]
    opened = [Store(p) for p in stores]
    try:
        rows, samples_hmb = [], []
        for store in opened:
            samples = permitted_samples(store.con, HMB_CODES)
            samples_hmb += sorted(samples)
            rows += store.con.execute(
                "SELECT g.sample_id, p.sex = 'male', ? - p.birth_year, EXISTS (SELECT 1 FROM"
                " clinical_condition c WHERE c.participant_id = p.participant_id"
                " AND c.code LIKE 'E11%') FROM genotype_sample g JOIN participant p USING"
                " (participant_id) WHERE list_contains(?, g.sample_id)",
                [YEAR, sorted(samples)],
            ).fetchall()
        contig, pos, ref, alt = (
            opened[0]
            .con.execute(
                "SELECT contig, position, ref, alt FROM variant WHERE variant_key = ("
                " SELECT c.variant_key FROM genotype_call c JOIN variant v USING (variant_key)"
                " WHERE v.contig = 'chr1' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"
            )
            .fetchone()
        )  # type: ignore[misc]
        variant = f"variant:{contig}:{pos}:{ref}:{alt}"

        class InProcess(Federation):
            def ask(self, kind: str, question: dict[str, Any], centres: Any = None) -> Any:
                partner = Partner("coordinator", "HMB")
                answers = {
                    f"centre{j}": answer_question(s, partner, kind, question, min_count=5)
                    for j, s in enumerate(opened)
                }
                return answers, {}

        names = [Centre(f"centre{j}", "http://unused", "t") for j in range(3)]
        fit = federated_logistic(
            InProcess(names), "E11", ["sex", "age", variant], reference_year=YEAR
        )
    finally:
        for store in opened:
            store.close()
    work = root / "plink"
    work.mkdir()
    with (work / "pheno.txt").open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["#IID", "E11"])
        w.writerows([(s, 2 if case else 1) for s, _m, _a, case in rows])
    with (work / "covar.txt").open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["#IID", "male", "age"])
        w.writerows([(s, int(m), a) for s, m, a, _c in rows])
    (work / "keep.txt").write_text("\n".join(samples_hmb) + "\n")
    glm = subprocess.run(
        [
            "plink2",
            "--vcf",
            str(root / "demo" / "population" / "cohort.vcf.gz"),
            "--keep",
            str(work / "keep.txt"),
            "--chr",
            contig,
            "--from-bp",
            str(pos),
            "--to-bp",
            str(pos),
            "--pheno",
            str(work / "pheno.txt"),
            "--covar",
            str(work / "covar.txt"),
            "--glm",
            "hide-covar",
            "no-firth",
            "--out",
            str(work / "out"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert glm.returncode == 0, glm.stdout + glm.stderr
    out = next(work.glob("out.E11.glm.logistic*")).read_text().splitlines()
    head = out[0].lstrip("#").split("\t")
    rec = dict(zip(head, out[1].split("\t"), strict=True))
    assert rec["A1"] == alt
    assert int(rec["OBS_CT"]) == fit.n
    assert math.log(float(rec["OR"])) == pytest.approx(fit.beta[-1], rel=1e-4)
    assert float(rec["LOG(OR)_SE"]) == pytest.approx(fit.standard_error[-1], rel=1e-4)


def test_a_centre_that_does_not_answer_in_time_is_named() -> None:
    """A centre that accepts the connection and never answers: the answer names it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        federation = Federation([Centre("slow-centre", url, "t")], timeout=0.5)
        started = time.monotonic()
        result = federated_count(federation, [])
    assert time.monotonic() - started < 10
    assert result.centres == []
    assert result.missing == {"slow-centre": "timed out after 0.5 s"}
    with pytest.raises(ValidationError, match="no centre could answer"):
        federated_logistic(federation, "E11", ["sex"], reference_year=YEAR)


def test_counts_go_through_the_differencing_check(network: Network) -> None:
    """Two counts that differ by 1 to 4 people: the second is withheld (issue 16's checks)."""
    with Store(network.stores[2]) as store:
        partner = Partner("coordinator", "HMB")
        ages = store.con.execute(
            "WITH ranked AS (SELECT participant_id, primary_code, withdrawn_date, row_number()"
            " OVER (PARTITION BY participant_id ORDER BY signed_date DESC, consent_seq DESC) AS r"
            " FROM consent) SELECT year(current_date) - p.birth_year AS age, count(*)"
            " FROM participant p JOIN ranked k ON k.participant_id = p.participant_id"
            " AND k.r = 1 WHERE k.withdrawn_date IS NULL AND list_contains(?, k.primary_code)"
            " GROUP BY 1 ORDER BY 1",
            [list(HMB_CODES)],
        ).fetchall()
        age = next(a for a, n in ages if 0 < n < 5 and a > ages[0][0] + 5)
        first = answer_question(store, partner, "count", {"filters": [f"age>={age}"]}, min_count=5)
        assert first["n"] == sum(n for a, n in ages if a >= age)
        second = answer_question(
            store, partner, "count", {"filters": [f"age>={age + 1}"]}, min_count=5
        )
        assert second["n"] is None
        assert "differencing" in second["reason"]
        withheld = store.con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'disclosure.withheld'"
            " AND user_name = 'partner:coordinator'"
        ).fetchone()
        assert withheld is not None
        assert withheld[0] >= 1
