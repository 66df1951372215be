"""Secret hygiene: plaintext Secrets, private keys, AWS access keys, IRSA role ARNs.

No finding ever repeats a secret value: messages name the key or the kind of secret and
the line, and an access key id is shown only by its first four characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bot.domain.model import Finding, Severity
from bot.domain.validate.base import Context, Doc

PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
)
ACCESS_KEY = re.compile(r"(?<![A-Z0-9])((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})(?![A-Z0-9])")
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/([\w+=,.@/-]{1,512})$")
EXAMPLE_KEYS = frozenset({"AKIAIOSFODNN7EXAMPLE"})


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


def check_doc(ctx: Context, doc: Doc) -> list[Finding]:
    """Return the Secret and IRSA findings of one YAML document."""
    findings: list[Finding] = []
    if doc.kind == "Secret" and doc.api_version == "v1":
        for key in ("data", "stringData"):
            block = doc.data.get(key)
            if isinstance(block, dict) and block:
                names = ", ".join(sorted(str(k) for k in block)[:5])
                findings.append(
                    doc.finding(
                        "secrets.plaintext",
                        Severity.ERROR,
                        [key],
                        f"Secret {doc.name!r} carries {key} in Git (keys: {names}); base64 is not encryption",
                        "Replace it with an ExternalSecret (external-secrets.io) or a SealedSecret "
                        "(bitnami.com), "
                        "and rotate the values that were committed.",
                    )
                )
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
