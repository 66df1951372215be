"""The repository configuration ``.github/gitops-bot.yml``: parse, validate, default.

The bot always reads it from the pull request's **base** revision; a PR cannot weaken
its own rules. The JSON Schema lives in the top-level ``config`` package
(``config/schema.json`` with one file per section under ``config/sections/``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from bot.domain.model import Finding, Severity
from bot.domain.render import fastyaml
from bot.domain.yamlio import YamlError, load_yaml_text

CONFIG_PATH = ".github/gitops-bot.yml"
SCHEMA_BASE = "https://gitops-bot.dev/schema/"


@cache
def _schema_and_registry() -> tuple[dict[str, Any], Registry[Any]]:
    root = resources.files("config")
    schema = json.loads(root.joinpath("schema.json").read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry()
    for entry in root.joinpath("sections").iterdir():
        if entry.name.endswith(".schema.json"):
            section = json.loads(entry.read_text(encoding="utf-8"))
            registry = registry.with_resource(section["$id"], Resource.from_contents(section))
    registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return schema, registry


class ConfigError(ValueError):
    """The configuration is not valid; ``findings`` say where and why."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f"{f.path}:{f.line}: {f.message}" for f in findings))
        self.findings = findings


def validate_config(data: Any, path: str = CONFIG_PATH) -> list[Finding]:
    """Return one finding per schema violation (empty when valid)."""
    schema, registry = _schema_and_registry()
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    findings = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        findings.append(
            Finding(
                rule="config",
                severity=Severity.ERROR,
                path=path,
                line=1,
                message=f"{where}: {err.message}",
                hint="See config/schema.json for the allowed keys and values.",
            )
        )
    return findings


def parse_config(text: str | None, path: str = CONFIG_PATH) -> dict[str, Any]:
    """Parse and validate the configuration text; ``None`` (no file) means all defaults.

    Raises :class:`ConfigError` when the YAML is broken or the schema rejects it.
    """
    if text is None or not text.strip():
        return {"version": 1}
    fast, data = fastyaml.load_plain_12(text)  # the same data, read by libyaml, when it can be sure
    if not fast:
        try:
            data = load_yaml_text(text, path)
        except YamlError as exc:
            raise ConfigError([exc.finding]) from exc
    if data is None:
        return {"version": 1}
    if not isinstance(data, dict):
        raise ConfigError([Finding("config", Severity.ERROR, path, 1, "the configuration must be a mapping")])
    findings = validate_config(data, path)
    if findings:
        raise ConfigError(findings)
    return dict(data)
