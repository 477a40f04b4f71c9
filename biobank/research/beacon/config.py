"""Settings of the Beacon: identity, who gets which granularity, and the defences.

Read from a YAML file (``biobank serve --beacon-config beacon.yaml``) whose keys
are the field names of :class:`BeaconConfig`; every key is optional.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from biobank.core.disclosure import SMALL_COUNT_THRESHOLD
from biobank.core.errors import ConfigError
from biobank.registry.consent import parse_purpose

__all__ = ["BeaconConfig"]


@dataclass(frozen=True)
class BeaconConfig:
    """What the Beacon says about itself and how it protects the people in it.

    Parameters
    ----------
    beacon_id, name, organization_id, organization_name, environment
        Shown by ``/info`` and ``/service-info``.
    assembly
        The reference assembly of the store (a request naming another is refused).
    anonymous_purpose
        The research purpose anonymous questions are answered for: only
        participants whose consent permits it are ever counted.
    min_allele_frequency
        Alleles rarer than this among the consented participants (or carried by
        fewer than ``min_count`` of them) are answered as absent to every
        requester without an approved data access request (Raisaro et al. 2017).
        With N participants an allele of frequency f is missing from a
        non-member's beacon with probability (1 - f)^(2N); hiding alleles with
        f below about 3.5 / N makes a "no" almost never informative. ``0`` turns
        the defence off (alleles carried by anyone are answered as present).
    anonymous_budget, partner_budget
        Questions a day per anonymous client address and per partner centre
        (``None``: no budget). Requesters with an approved request have none.
    max_range
        Longest range (bases) a range or bracket query may span.
    min_count
        The small-count threshold (:mod:`biobank.core.disclosure`).
    """

    beacon_id: str = "cn.regional-gdc.beacon"
    name: str = "Regional gene data center Beacon"
    organization_id: str = "regional-gdc"
    organization_name: str = "Regional gene data center"
    environment: str = "prod"
    assembly: str = "GRCh38"
    anonymous_purpose: str = "HMB"
    min_allele_frequency: float = 0.05
    anonymous_budget: int | None = 1000
    partner_budget: int | None = 10000
    max_range: int = 5_000_000
    min_count: int = SMALL_COUNT_THRESHOLD

    def __post_init__(self) -> None:
        parse_purpose(self.anonymous_purpose)
        if not 0 <= self.min_allele_frequency < 1:
            raise ConfigError("min_allele_frequency must be in [0, 1)")
        if self.environment not in {"prod", "test", "dev", "staging"}:
            raise ConfigError("environment must be prod, test, dev or staging")
        if self.min_count < 1 or self.max_range < 1:
            raise ConfigError("min_count and max_range must be positive")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BeaconConfig:
        """Read a YAML file of settings.

        Raises
        ------
        ConfigError
            Naming the file and the unknown key or bad value.
        """
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the beacon settings {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the beacon settings must be a mapping of key: value")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{path}: unknown key {unknown[0]!r}; keys are {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError, ConfigError) as exc:  # ValidationError is a ValueError
            raise ConfigError(f"{path}: {exc}") from exc
