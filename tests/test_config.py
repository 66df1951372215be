from __future__ import annotations

import pytest

from bot.domain.config import ConfigError, parse_config


def test_missing_config_means_defaults() -> None:
    assert parse_config(None) == {"version": 1}
    assert parse_config("") == {"version": 1}


def test_unknown_top_level_key_is_rejected_with_its_name() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("version: 1\nbogus: true\n")
    assert "bogus" in err.value.findings[0].message


def test_broken_yaml_is_a_finding_at_its_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("version: 1\nfleet: [\n")
    assert err.value.findings[0].rule == "yaml.syntax"
    assert err.value.findings[0].line >= 2
