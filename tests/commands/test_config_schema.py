"""The ``commands`` section of the repository config: documented, defaulted, strict."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from bot.domain.config import ConfigError, parse_config
from bot.domain.help import ALL_COMMANDS


def section() -> dict[str, object]:
    return json.loads(resources.files("config").joinpath("sections/commands.schema.json").read_text("utf-8"))


def test_schema_documents_every_key_with_a_default() -> None:
    schema = section()
    assert schema["$id"] == "https://gitops-bot.dev/schema/sections/commands.schema.json"
    props = schema["properties"]
    assert isinstance(props, dict)
    for name, prop in props.items():
        assert prop.get("description"), name
        assert "default" in prop, name
    assert props["enabled"]["items"]["enum"] == list(ALL_COMMANDS)
    assert props["enabled"]["default"] == list(ALL_COMMANDS)


@pytest.mark.parametrize(
    "text",
    [
        "commands: {}\n",
        "commands:\n  enabled: [diff, validate, help]\n",
        "commands:\n  allowed_teams: [acme/platform-oncall, my-org/sre.team]\n",
    ],
)
def test_valid_sections(text: str) -> None:
    assert isinstance(parse_config(text)["commands"], dict)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("commands:\n  enabled: [deploy]\n", "commands/enabled/0"),
        ("commands:\n  enabled: [diff, diff]\n", "commands/enabled"),
        ("commands:\n  allowed_teams: [oncall]\n", "commands/allowed_teams/0"),
        ("commands:\n  allow_everyone: true\n", "commands"),
    ],
)
def test_invalid_sections_name_the_key(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert any(f.message.startswith(where) for f in caught.value.findings), caught.value
