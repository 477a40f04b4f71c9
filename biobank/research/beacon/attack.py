"""The Shringarpure-Bustamante membership attack on a Beacon, to measure its defences.

Shringarpure and Bustamante (2015, AJHG 97:631) showed that someone holding a
person's genome learns whether that person is in a Beacon of N individuals
from yes/no answers to queries of alleles the person carries. For an allele
of population frequency f, no one of N non-members carries it with
probability D_N = (1 - f)^(2N), so

* not a member: P(yes) = 1 - D_N;
* a member (who carries the allele): P(yes) = 1 - delta * D_(N-1), with delta
  the chance the beacon misses one of its member's alleles (sequencing error).

The log-likelihood ratio of membership adds ``log((1 - delta D_(N-1)) / (1 - D_N))``
for each "yes" and ``log(delta D_(N-1) / D_N)`` for each "no". The attacker
asks the rarest alleles first (the most informative; Raisaro et al. 2017) and
calls membership once the ratio of the target passes that of every
non-member control attacked the same way (:func:`queries_to_call`).

:func:`simulate_attack` runs the attack through the Beacon's own answer path
(:func:`biobank.research.beacon.query.answer`, an anonymous requester), so
the query budget and the hiding of rare alleles act as they do in service.
``tests/research/test_beacon_attack.py`` and ``benchmarks/beacon_attack.py``
run it with and without the defences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from biobank.core.errors import QuotaExceeded
from biobank.research.beacon.config import BeaconConfig
from biobank.research.beacon.query import Requester, answer
from biobank.research.beacon.request import BeaconRequest, VariantQuery

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "AttackResult",
    "TargetAllele",
    "llr_step",
    "queries_to_call",
    "simulate_attack",
    "target_alleles",
]


@dataclass(frozen=True)
class TargetAllele:
    """An ALT allele the target carries, with the attacker's estimate of its frequency."""

    contig: str
    position: int  # 1-based (VCF)
    ref: str
    alt: str
    frequency: float


@dataclass(frozen=True)
class AttackResult:
    """How the attack on one target went.

    Attributes
    ----------
    llr
        The membership log-likelihood ratio (natural log) after each answer.
    stopped_by_budget
        Whether the Beacon's query budget ended the attack.
    """

    llr: list[float]
    stopped_by_budget: bool

    @property
    def queries_made(self) -> int:
        """Queries answered."""
        return len(self.llr)

    @property
    def final_llr(self) -> float:
        """The ratio after the last answer (0 before any)."""
        return self.llr[-1] if self.llr else 0.0


def queries_to_call(
    target: AttackResult, controls: Sequence[AttackResult], *, min_llr: float = math.log(20.0)
) -> int | None:
    """Queries after which the attacker makes a confident membership call on the target.

    Confident: the target's log-likelihood ratio is at least ``min_llr``
    (default odds of 20 to 1, a 95 % posterior at even prior odds) *and* above
    that of every control after as many queries. The controls are people known
    not to be in the Beacon, attacked the same way: their ratios are the
    empirical null distribution of the statistic (as Shringarpure and
    Bustamante calibrate it). ``None``: no confident call was made.
    """
    for k, value in enumerate(target.llr, start=1):
        null = [c.llr[min(k, len(c.llr)) - 1] if c.llr else 0.0 for c in controls]
        if value >= min_llr and (not null or value > max(null)):
            return k
    return None


def llr_step(exists: bool, frequency: float, n: int, error: float = 1e-6) -> float:
    """The change of the membership log-likelihood ratio for one answer.

    >>> llr_step(False, 0.001, 100) < 0 < llr_step(True, 0.001, 100)
    True
    """
    d_n = (1.0 - frequency) ** (2 * n)
    d_n1 = (1.0 - frequency) ** (2 * n - 2)
    if exists:
        return math.log((1.0 - error * d_n1) / max(1.0 - d_n, 1e-300))
    return math.log(error * d_n1 / max(d_n, 1e-300))


def target_alleles(store: Store, participant_id: str) -> list[TargetAllele]:
    """The ALT alleles ``participant_id`` carries, rarest first (the attacker's genome copy).

    The frequency estimate is the allele's frequency over every genotyped sample
    of the store (standing in for a reference panel of the population).
    """
    from biobank.genomes.counts import allele_counts_in
    from biobank.genomes.filters import VariantFilter
    from biobank.genomes.reader import sample_table

    con = store.con
    keys = [
        int(r[0])
        for r in con.execute(
            "SELECT DISTINCT c.variant_key FROM genotype_call_all c JOIN genotype_sample g"
            " USING (sample_key) WHERE g.participant_id = ? AND c.dosage > 0 AND c.flags & 1 = 0",
            [participant_id],
        ).fetchall()
    ]
    with sample_table(con, None) as tbl:
        df = allele_counts_in(con, tbl, VariantFilter(variant_keys=keys))
    floor = 1.0 / max(2, 2 * (df.height and int(df["variant_n_samples"][0])))
    out = [
        TargetAllele(
            str(r["variant_contig"]),
            int(r["variant_position"]),
            str(r["variant_ref"]),
            str(r["variant_alt"]),
            max(float(r["variant_alt_allele_frequency"] or 0.0), floor),
        )
        for r in df.iter_rows(named=True)
    ]
    return sorted(out, key=lambda a: (a.frequency, a.contig, a.position))


def simulate_attack(
    store: Store,
    alleles: Sequence[TargetAllele],
    *,
    config: BeaconConfig,
    n_beacon: int,
    client: str = "attacker",
    skip_below: float = 0.0,
    max_queries: int | None = None,
) -> AttackResult:
    """Ask the Beacon about ``alleles`` in order, as an anonymous client; track the ratio.

    Parameters
    ----------
    store
        The Beacon's store.
    alleles
        The target's alleles, in the order asked (:func:`target_alleles`).
    config
        The Beacon's settings (budget, rare-allele hiding).
    n_beacon
        N, the number of people in the Beacon (public: the Beacon says it).
    client
        The anonymous client address the budget is charged to.
    skip_below
        The attacker skips alleles rarer than this (an attacker who knows the
        Beacon hides them, and so avoids answers that only look like "absent").
    max_queries
        Stop after this many answers.
    """
    requester = Requester(f"anonymous:{client}", None, config.anonymous_purpose)
    llr: list[float] = []
    total = 0.0
    for allele in alleles:
        if allele.frequency < skip_below:
            continue
        if max_queries is not None and len(llr) >= max_queries:
            break
        request = BeaconRequest(
            entry_type="g_variants",
            variant=VariantQuery(
                "sequence",
                reference_name=allele.contig,
                start=(allele.position - 1,),
                reference_bases=allele.ref,
                alternate_bases=allele.alt,
            ),
        )
        try:
            exists = answer(store, request, requester, config).exists
        except QuotaExceeded:
            return AttackResult(llr, True)
        total += llr_step(exists, allele.frequency, n_beacon)
        llr.append(total)
    return AttackResult(llr, False)
