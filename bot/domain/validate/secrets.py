"""Secret hygiene: plaintext Secrets, private keys, AWS access keys, IRSA role ARNs.

No finding ever repeats a secret value: messages name the key or the kind of secret and
the line, and an access key id is shown only by its first four characters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any

from bot.domain.masking import (
    ACCESS_KEY,
    EXAMPLE_KEYS,
    PRIVATE_KEY,
    SECRET_FIELDS,
    is_core_secret,
    is_expression,
    iter_secrets,
    public_entry,
)
from bot.domain.model import Finding, Severity
from bot.domain.validate.base import Context, Doc

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/([\w+=,.@/-]{1,512})$")


def scan_text(path: str, text: str) -> list[Finding]:
    """Return findings for private keys and AWS access key ids anywhere in a file."""
    findings: list[Finding] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = PRIVATE_KEY.search(line)
        if m:
            findings.append(
                Finding(
                    "secrets.private-key",
                    Severity.ERROR,
                    path,
                    lineno,
                    f"a {m.group(1).lower()} is committed in this file",
                    "Remove it from Git (and from history), rotate the key, and load it with "
                    "ExternalSecret or SealedSecret.",
                    m.start() + 1,
                )
            )
        for key in ACCESS_KEY.finditer(line):
            if key.group(1) in EXAMPLE_KEYS:
                continue
            findings.append(
                Finding(
                    "secrets.aws-key",
                    Severity.ERROR,
                    path,
                    lineno,
                    f"an AWS access key id ({key.group(1)[:4]}...) is committed in this file",
                    "Deactivate the key in IAM now, remove it from Git, and use IRSA or Pod Identity "
                    "instead.",
                    key.start() + 1,
                )
            )
    return findings


def _walk_annotations(doc: Doc) -> Iterable[tuple[list[str | int], Any]]:
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        yield ["metadata", "annotations"], meta["annotations"]
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    tmeta = (((spec or {}).get("template") or {}).get("metadata")) if isinstance(spec, dict) else None
    if isinstance(tmeta, dict) and isinstance(tmeta.get("annotations"), dict):
        yield ["spec", "template", "metadata", "annotations"], tmeta["annotations"]


def _accounts(ctx: Context, doc: Doc) -> set[str]:
    allowed = {str(a) for a in ctx.section("secrets").get("irsa_accounts") or []}
    envs = ctx.section("fleet").get("environments") or {}
    parts = doc.path.split("/")
    for env, cfg in envs.items():
        if isinstance(cfg, dict) and cfg.get("account_id") and env in parts:
            allowed.add(str(cfg["account_id"]))
    return allowed


TEMPLATE_EXPRESSION = re.compile(r"\$\{[^{}]*\}|\{\{.*?\}\}")
"""A complete kro/Flux ``${...}`` or Helm/Go ``{{ ... }}`` expression inside a value."""


def _templated(value: Any) -> bool:
    """True when a value is filled in later (kro ``${...}``, Helm or Go ``{{ }}``): not a secret in Git."""
    return isinstance(value, str) and bool(TEMPLATE_EXPRESSION.search(value))


_PLACEHOLDER = re.compile(
    r"^\s*(|(.)\2{2,}|<[^<>]*>|(replace|change|fill)[-_ ]?(me|it|this)\w*|"
    r"todo|tbd|fixme|placeholder|redacted|your[-_ ]\S*)\s*$",
    re.IGNORECASE,
)
"""A value nobody would deploy: empty, one character repeated (``XXXX``), ``<token>``, ``REPLACE_ME``..."""


def _decoded(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value


def _carries_secret(secret: dict[str, Any], field: str, key: str, value: Any) -> bool:
    """Whether one Secret entry holds something secret: not templated, not a placeholder, not public."""
    if public_entry(secret, key) or is_expression(value):
        return False
    text = "" if value is None else str(value)
    if field == "data":
        text = _decoded(text.strip())
    return not _PLACEHOLDER.match(text)


def _shape(value: Any) -> str:
    return "a list" if isinstance(value, list) else "a string" if isinstance(value, str) else "a scalar"


def _secret_findings(doc: Doc) -> list[Finding]:
    """Flag every Secret with values in Git: the document itself, a ``List``'s items, any nesting.

    A ``data`` or ``stringData`` that is not a map (a scalar, a list) is flagged as malformed;
    nested Secrets whose values are all templated (a kro template's ``${schema...}``) are not.
    """
    findings: list[Finding] = []
    for path, secret in iter_secrets(doc.data):
        if not is_core_secret(secret):
            continue
        meta = secret.get("metadata")
        name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
        for key in SECRET_FIELDS:
            block = secret.get(key)
            where = [*path, key]
            if isinstance(block, dict):
                if not block or (path and all(_templated(v) for v in block.values())):
                    continue
                real = sorted(str(k) for k, v in block.items() if _carries_secret(secret, key, str(k), v))
                if not real:
                    findings.append(
                        doc.finding(
                            "secrets.placeholder",
                            Severity.NOTICE,
                            where,
                            f"Secret {name!r} has {key} in Git, but only placeholders or public "
                            f"material ({', '.join(sorted(str(k) for k in block)[:5])}); nothing secret",
                            "Fill in the real values outside Git (ExternalSecret, SealedSecret), not in "
                            "this file.",
                        )
                    )
                    continue
                names = ", ".join(real[:5])
                findings.append(
                    doc.finding(
                        "secrets.plaintext",
                        Severity.ERROR,
                        where,
                        f"Secret {name!r} carries {key} in Git (keys: {names}); base64 is not encryption",
                        "Replace it with an ExternalSecret (external-secrets.io) or a SealedSecret "
                        "(bitnami.com), "
                        "and rotate the values that were committed.",
                    )
                )
            elif block is not None and not (path and _templated(block)):
                findings.append(
                    doc.finding(
                        "secrets.malformed",
                        Severity.ERROR,
                        where,
                        f"Secret {name!r} has {key} as {_shape(block)}, not a map of keys to "
                        "values; its value is in Git (masked in the diff)",
                        f"Write {key} as `key: value` pairs, and keep the values out of Git with an "
                        "ExternalSecret or a SealedSecret.",
                    )
                )
    return findings


def check_doc(ctx: Context, doc: Doc) -> list[Finding]:
    """Return the Secret and IRSA findings of one YAML document."""
    findings = _secret_findings(doc)
    for base, notes in _walk_annotations(doc):
        value = notes.get(IRSA_ANNOTATION)
        if value is None or "${" in str(value):
            continue
        where = [*base, IRSA_ANNOTATION]
        m = ROLE_ARN.match(str(value))
        if not m:
            findings.append(
                doc.finding(
                    "secrets.irsa",
                    Severity.ERROR,
                    where,
                    f"{IRSA_ANNOTATION} is not an IAM role ARN: {value!r}",
                    "Write arn:aws:iam::<12-digit account>:role/<role name>.",
                )
            )
            continue
        allowed = _accounts(ctx, doc)
        if allowed and m.group(2) not in allowed:
            findings.append(
                doc.finding(
                    "secrets.irsa",
                    Severity.ERROR,
                    where,
                    f"IRSA role is in account {m.group(2)}, not the cluster's account "
                    f"({', '.join(sorted(allowed))})",
                    "Use a role from the cluster's own AWS account; cross-account IRSA is not allowed here.",
                )
            )
    return findings
