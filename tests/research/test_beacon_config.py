"""Beacon settings from YAML: every key optional, unknown keys and bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.core.errors import ConfigError, ValidationError
from biobank.research.beacon.config import BeaconConfig


def test_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "beacon.yaml"
    path.write_text("beacon_id: cn.test\nmin_allele_frequency: 0.02\nanonymous_budget: null\n")
    config = BeaconConfig.load(path)
    assert (config.beacon_id, config.min_allele_frequency, config.anonymous_budget) == (
        "cn.test",
        0.02,
        None,
    )
    assert config.partner_budget == BeaconConfig().partner_budget


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: blue\n", "unknown key 'colour'"),
        ("min_allele_frequency: 1.5\n", "min_allele_frequency"),
        ("environment: moon\n", "environment"),
        ("anonymous_purpose: everything\n", "purpose"),
        ("- a list\n", "mapping"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "beacon.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        BeaconConfig.load(path)
    assert str(path) in str(err.value)


def test_the_anonymous_purpose_must_be_a_purpose() -> None:
    with pytest.raises(ValidationError):
        BeaconConfig(anonymous_purpose="everything")
