"""The Shringarpure-Bustamante membership attack on the demo centre's Beacon, kept as a test.

The Beacon answers for participants whose consent permits HMB; the genotyped participants
whose consent does not (POA, DS) are the natural non-members: the same population, not in
the Beacon. The attacker holds a target's genome, asks the Beacon (anonymous, through the
real answer path) about the target's rarest alleles first, and calls membership when the
likelihood ratio is at least 20 and above every non-member control attacked the same way.
``benchmarks/beacon_attack.py`` runs the full attack and reports the figures.
"""

from __future__ import annotations

from typing import Any

import pytest
from beacon_support import BeaconCentre

from biobank.core.store import Store
from biobank.registry.consent import permitted_participants_sql
from biobank.research.beacon.attack import (
    llr_step,
    queries_to_call,
    simulate_attack,
    target_alleles,
)
from biobank.research.beacon.config import BeaconConfig

OPEN = BeaconConfig(min_allele_frequency=0.0, anonymous_budget=None)
DEFENDED = BeaconConfig()  # rare alleles hidden below 5 %, 1,000 questions a day
MAX_QUERIES = 15
TARGETS = 24


def _people(store: Store) -> tuple[list[str], list[str]]:
    sql = permitted_participants_sql("HMB")
    members = store.con.execute(
        f"SELECT participant_id FROM genotype_sample WHERE participant_id IN ({sql})"
        " ORDER BY sample_id"
    ).fetchall()
    others = store.con.execute(
        f"SELECT participant_id FROM genotype_sample WHERE participant_id NOT IN ({sql})"
        " ORDER BY sample_id"
    ).fetchall()
    return [r[0] for r in members], [r[0] for r in others]


def _attack(store: Store, pid: str, config: BeaconConfig, n: int, **kw: Any) -> Any:
    skip = config.min_allele_frequency
    return simulate_attack(
        store,
        target_alleles(store, pid),
        config=config,
        n_beacon=n,
        client=kw.pop("client", f"attacker-{pid}-{config.min_allele_frequency}"),
        skip_below=skip,
        max_queries=kw.pop("max_queries", MAX_QUERIES),
        **kw,
    )


def test_the_likelihood_ratio_steps() -> None:
    # a "no" for an allele the target carries is strong evidence against membership
    assert llr_step(False, 0.01, 100) < -10
    # a "yes" for a singleton-frequency allele favours membership; for a common one, nothing
    assert llr_step(True, 0.002, 150) > 0.4
    assert abs(llr_step(True, 0.3, 150)) < 1e-9


@pytest.mark.slow
def test_the_attack_calls_members_without_the_defence_and_fails_with_it(
    beacon_centre: BeaconCentre,
) -> None:
    """Power without the defence (the tiny demo genome holds few rare alleles a person: not
    every member can be called in 15 queries), none with it.

    The people are ordered by their sample name, not by pseudonym: a pseudonym depends on the
    centre's random key, and six targets picked by it made the called count vary between runs
    (about half of the 167 members can be called in 15 queries). Twenty-four targets spread over
    the cohort are attacked; a third of them must be called.
    """
    with Store(beacon_centre.path) as store:
        members, others = _people(store)
        assert len(others) >= 5
        n = len(members)
        targets = members[:: max(1, n // TARGETS)][:TARGETS]
        controls = [_attack(store, p, OPEN, n) for p in others[:3]]
        called = [queries_to_call(_attack(store, pid, OPEN, n), controls) for pid in targets]
        hits = sorted(k for k in called if k is not None)
        assert len(hits) >= TARGETS // 3, called
        assert hits[len(hits) // 2] <= 8, called  # a called member is called quickly
        # no non-member is called (the first three are the null)
        for pid in others[3:]:
            assert queries_to_call(_attack(store, pid, OPEN, n), controls) is None, pid
        # with the defence the same attacker (skipping alleles it knows are hidden) calls no one
        controls = [_attack(store, p, DEFENDED, n) for p in others[:3]]
        for pid in targets:
            result = _attack(store, pid, DEFENDED, n)
            assert result.queries_made == MAX_QUERIES
            assert queries_to_call(result, controls) is None, pid


def test_the_budget_ends_the_attack(beacon_centre: BeaconCentre) -> None:
    with Store(beacon_centre.path) as store:
        members, _others = _people(store)
        config = BeaconConfig(min_allele_frequency=0.0, anonymous_budget=4)
        result = _attack(
            store, members[0], config, len(members), max_queries=None, client="budget-test"
        )
        assert result.stopped_by_budget
        assert result.queries_made == 4
