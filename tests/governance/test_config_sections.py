"""The signatures and approvals sections of the config schema document and enforce the options."""

from __future__ import annotations

import pytest

from bot.domain.config import ConfigError, parse_config, validate_config
from tests.governance.test_approvals import CONFIG as APPROVALS_CONFIG

GOOD = """\
version: 1
signatures:
  required: false
  trust: keys
  allowed_signers: .github/allowed_signers
  gpg_keys: .github/gpg-keys/
  web_flow: reject
  overrides:
    - paths: ["clusters/prod/**"]
      required: true
approvals:
  codeowners: true
  env_from_path: ["clusters/{env}/**"]
  rules:
    - name: prod
      paths: ["clusters/**"]
      environments: [prod]
      require: {count: 1, teams: [org/platform-team], min_permission: maintain}
      author_can_approve: false
      invalidate_on_push: true
"""


def test_documented_example_is_valid() -> None:
    config = parse_config(GOOD)
    assert config["signatures"]["trust"] == "keys"
    assert validate_config(APPROVALS_CONFIG) == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("signatures: {trust: pgp}", "signatures/trust"),
        ("signatures: {web_flow: sometimes}", "signatures/web_flow"),
        ("signatures: {overrides: [{required: true}]}", "signatures/overrides/0"),
        ("approvals: {rules: [{paths: [a]}]}", "approvals/rules/0"),
        ("approvals: {rules: [{name: x, require: {count: 0}}]}", "approvals/rules/0/require/count"),
        (
            "approvals: {rules: [{name: x, require: {teams: [platform]}}]}",
            "approvals/rules/0/require/teams/0",
        ),
        ("approvals: {rules: [{name: x, require: {min_permission: read}}]}", "min_permission"),
        ("approvals: {env_from_path: ['clusters/**']}", "approvals/env_from_path/0"),
        ("approvals: {rule: []}", "approvals"),
    ],
)
def test_mistakes_are_pinned(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert any(where in f.message for f in err.value.findings), err.value.findings


def test_every_property_is_described() -> None:
    import json
    from importlib import resources

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                assert "description" in sub, f"{path}.{name} has no description"
                walk(sub, f"{path}.{name}")
            if isinstance(node.get("items"), dict):
                walk(node["items"], path + "[]")

    for name in ("signatures", "approvals"):
        walk(json.loads(resources.files("config").joinpath(f"sections/{name}.schema.json").read_text()), name)
