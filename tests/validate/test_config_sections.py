"""The config sections this area owns: documented, defaults match the code, bad values rejected."""

from __future__ import annotations

import json

import pytest

from bot.domain.config import ConfigError, parse_config
from bot.domain.policy.gatekeeper import DEFAULT_POLICY_PATHS
from bot.domain.validate.fleet import DEFAULT_NAME_PATTERN, DEFAULT_PRODUCTION
from tests.conftest import FIXTURES, ROOT

SECTIONS = ["cluster_requests", "fleet", "eks", "secrets", "policy", "self_service"]


@pytest.mark.parametrize("name", SECTIONS)
def test_sections_are_documented(name: str) -> None:
    schema = json.loads((ROOT / "config" / "sections" / f"{name}.schema.json").read_text())
    assert schema["$id"].endswith(f"sections/{name}.schema.json")
    assert schema["description"] and "default" in schema
    for prop in schema["properties"].values():
        assert prop.get("description"), prop


def test_defaults_match_the_code() -> None:
    fleet = json.loads((ROOT / "config" / "sections" / "fleet.schema.json").read_text())
    assert fleet["properties"]["name_pattern"]["default"] == DEFAULT_NAME_PATTERN
    assert fleet["properties"]["production"]["default"] == DEFAULT_PRODUCTION
    policy = json.loads((ROOT / "config" / "sections" / "policy.schema.json").read_text())
    assert tuple(policy["properties"]["paths"]["default"]) == DEFAULT_POLICY_PATHS


def test_example_fleet_config_is_valid() -> None:
    config = parse_config((FIXTURES / "validate" / "blog" / ".github" / "gitops-bot.yml").read_text())
    assert config["fleet"]["environments"]["dev"]["max_nodes"] == 20


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: 1\nfleet: {allowed_regions: eu-west-1}\n", "fleet/allowed_regions"),
        (
            "version: 1\nfleet: {environments: {dev: {account_id: '123'}}}\n",
            "fleet/environments/dev/account_id",
        ),
        ("version: 1\neks: {allow_extended: true}\n", "eks"),
        (
            "version: 1\ncluster_requests: {kinds: [{kind: X, role: master}]}\n",
            "cluster_requests/kinds/0/role",
        ),
        ("version: 1\nself_service: {enabled: 'yes'}\n", "self_service/enabled"),
        ("version: 1\npolicy: {paths: []}\npolicy2: 1\n", "policy2"),
    ],
)
def test_bad_values_are_rejected_with_their_place(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert any(where in f.message for f in err.value.findings), err.value.findings
