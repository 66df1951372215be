"""One masking rule for everything gitops-bot outputs: Secret values, private keys, AWS key ids.

What the secrets rules flag never appears in full anywhere the bot writes (diff, comment,
check runs, JSON, logs):

* :func:`mask_object` masks a rendered or parsed object: every ``Secret`` at any depth (a
  ``kind: List``'s items, a kro template, a Crossplane ``Object`` manifest...) has each
  ``data``/``stringData`` value replaced by a keyed hash, whatever shape the field has (a
  map, a scalar, a list); private key blocks and AWS access key ids are masked in every
  string. Keys stay visible and a changed value gives a different hash.
* :class:`Masker` is the last pass over text: the same patterns, plus every Secret value it
  learned from the pull request's files (:meth:`Masker.learn_yaml`), so a value echoed in a
  finding, an error or a log line is masked too. :meth:`Masker.value` masks JSON-like data.

Values shorter than :data:`MIN_TEXT_VALUE` characters are masked in objects but not
searched for in free text (``true`` or ``admin`` would mask unrelated words).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bot.domain.model import Finding, ObjectChange

PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
)
ACCESS_KEY = re.compile(r"(?<![A-Z0-9])((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})(?![A-Z0-9])")
EXAMPLE_KEYS = frozenset({"AKIAIOSFODNN7EXAMPLE"})
"""AWS's documentation key id: public, never flagged, left as is."""

MIN_TEXT_VALUE = 6
SECRET_FIELDS = ("data", "stringData")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# a private key block: to its END line, or (cut short) over the base64 lines that follow it
_KEY_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----"
    r"(?:.*?-----END \1-----|(?:[ \t]*\\?n?\r?\n?[ \t+|>-]*[A-Za-z0-9+/=:]{8,})*)",
    re.S,
)
_SUSPECT = re.compile(r"PRIVATE KEY|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}")


def secret_token(key: bytes, value: str | bytes) -> str:
    """Return the masked stand-in for a secret value: a short keyed hash (HMAC-SHA256)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return f"<secret hmac:{hmac.new(key, raw, hashlib.sha256).hexdigest()[:12]}>"


def mask_patterns(text: str, key: bytes) -> str:
    """Mask private key blocks and AWS access key ids (but AWS's example id) in ``text``."""
    if not _SUSPECT.search(text):
        return text

    def key_block(m: re.Match[str]) -> str:
        return f"-----BEGIN {m.group(1)}----- {secret_token(key, m.group(0))}"

    def access_key(m: re.Match[str]) -> str:
        found = m.group(1)
        return found if found in EXAMPLE_KEYS else f"{found[:4]}{secret_token(key, found)}"

    return ACCESS_KEY.sub(access_key, _KEY_BLOCK.sub(key_block, text))


def _decoded(value: Any) -> str | bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return str(value)


def _field_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def is_secret(obj: dict[str, Any]) -> bool:
    """Return True for a Kubernetes ``Secret`` (any apiVersion: a malformed one is masked too)."""
    return obj.get("kind") == "Secret"


def is_core_secret(obj: dict[str, Any]) -> bool:
    """Return True for a core ``v1`` Secret, or one whose apiVersion is missing (malformed)."""
    return is_secret(obj) and str(obj.get("apiVersion") or "v1") == "v1"


PUBLIC_KEYS = re.compile(r"^(known_hosts|ssh_known_hosts|.*\.pub|ca\.crt|tls\.crt)$")
"""Secret keys that by convention hold public material (host keys, public keys, certificates)."""

ARGOCD_SECRET_LABEL = "argocd.argoproj.io/secret-type"
ARGOCD_PUBLIC_KEYS = frozenset(
    {
        "name",
        "server",
        "project",
        "namespaces",
        "clusterResources",
        "url",
        "type",
        "proxy",
        "noProxy",
        "enableOCI",
        "enableLfs",
        "insecure",
        "forceHttpBasicAuth",
    }
)
"""Keys of Argo CD cluster and repository Secrets that Argo CD documents as plain settings (the
cluster's name and API server, a repository's URL); ``config``, ``password``, keys and tokens stay secret."""

_EXPRESSION = re.compile(r"^\s*(\$\{[^{}]*\}|\{\{[^{}]*\}\})\s*$")


def is_expression(value: Any) -> bool:
    """Whether ``value`` is one template expression as a whole (``${schema.spec.password}``)."""
    return isinstance(value, str) and bool(_EXPRESSION.match(value))


def public_entry(obj: dict[str, Any], key: str) -> bool:
    """Whether the Secret entry ``key`` of ``obj`` holds public material, not a secret value."""
    if PUBLIC_KEYS.match(key):
        return True
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return isinstance(labels, dict) and ARGOCD_SECRET_LABEL in labels and key in ARGOCD_PUBLIC_KEYS


def secret_values(obj: dict[str, Any]) -> Iterable[str]:
    """Yield the values of a Secret's ``data``/``stringData`` as written (and ``data`` decoded).

    Public entries (:func:`public_entry`) and values that are one template expression
    (``${schema.spec.name}``, filled in later) are not secrets and are left out.
    """
    for name in SECRET_FIELDS:
        block = obj.get(name)
        if block is None:
            continue
        if isinstance(block, dict):
            values = [v for k, v in block.items() if not public_entry(obj, str(k))]
        else:
            values = [block]
        for value in values:
            if value is None or is_expression(value):
                continue
            text = _field_value(value)
            yield text
            if name == "data":
                raw = _decoded(text)
                if isinstance(raw, bytes):
                    yield raw.decode("utf-8", errors="replace")


def _mask_secret(obj: dict[str, Any], key: bytes) -> dict[str, Any]:
    out = dict(obj)
    for name in SECRET_FIELDS:
        block = out.get(name)
        if block is None:
            continue
        if isinstance(block, dict):
            out[name] = {
                str(k): v
                if public_entry(obj, str(k))
                else secret_token(key, _decoded(v) if name == "data" else _field_value(v))
                for k, v in block.items()
                if v is not None
            }
        else:  # malformed (a scalar or a list): the whole field is one value
            out[name] = secret_token(key, _field_value(block))
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        out["metadata"] = {
            **meta,
            "annotations": {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED},
        }
    return out


def mask_object(value: Any, key: bytes) -> Any:
    """Return ``value`` with every Secret (at any depth) and every flagged string masked.

    The input is never modified; parts with nothing to mask are returned as they are (same
    objects), so masking a large render costs one walk and no copies.
    """
    if isinstance(value, str):
        return mask_patterns(value, key)
    if isinstance(value, dict):
        source = _mask_secret(value, key) if is_secret(value) else value
        out = {k: mask_object(v, key) for k, v in source.items()}
        if source is value and all(out[k] is value[k] for k in value):
            return value
        return out
    if isinstance(value, list):
        items = [mask_object(v, key) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def iter_secrets(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterable[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Yield (path, Secret) for every Secret in a document, itself included, at any depth."""
    if isinstance(value, dict):
        if is_secret(value):
            yield path, value
        for k, v in value.items():
            yield from iter_secrets(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_secrets(v, (*path, i))


class Masker:
    """The last masking pass over text and data the bot writes out, for one check."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def learn(self, values: Iterable[str]) -> None:
        """Remember secret values to mask wherever they appear in text (and in this process's logs)."""
        added = self._add(values)
        if added and self is not _PROCESS:
            _PROCESS._add(added)

    def _add(self, values: Iterable[str]) -> list[str]:
        added = []
        for value in values:
            for part in (value, *value.splitlines()):
                part = part.strip()
                if len(part) >= MIN_TEXT_VALUE and part not in self._values:
                    self._values.add(part)
                    added.append(part)
        if added:
            self._pattern = None
            if len(self._values) > REMEMBER_MAX:
                self._values = set(added[-REMEMBER_MAX:])
        return added

    def learn_documents(self, documents: Iterable[Any]) -> None:
        """Remember the values of every Secret inside ``documents`` (parsed YAML, any nesting)."""
        for doc in documents:
            for _path, secret in iter_secrets(doc):
                self.learn(secret_values(secret))

    def text(self, text: str) -> str:
        """Return ``text`` with flagged patterns and learned Secret values masked."""
        text = mask_patterns(text, self.key)
        if not self._values:
            return text
        if self._pattern is None:
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern.sub(lambda m: secret_token(self.key, m.group(0)), text)

    def finding(self, f: Finding) -> Finding:
        """Return ``f`` with its message and hint masked."""
        message, hint = self.text(f.message), self.text(f.hint)
        return f if (message, hint) == (f.message, f.hint) else replace(f, message=message, hint=hint)

    def change(self, c: ObjectChange) -> ObjectChange:
        """Return ``c`` with its diff masked (objects are masked already: this catches the rest)."""
        diff = self.text(c.diff)
        return c if diff == c.diff else replace(c, diff=diff)

    def value(self, data: Any) -> Any:
        """Return JSON-like ``data`` with every string (keys too) passed through :meth:`text`."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {self.value(k): self.value(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data


REMEMBER_MAX = 10_000
_PROCESS = Masker(secrets.token_bytes(32))


def process_masker() -> Masker:
    """Return the masker holding every value any check of this process learned (for logs)."""
    return _PROCESS
