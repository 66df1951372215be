"""Fast extraction of the routing facts of a webhook body with ``msgspec``.

The web handler must validate every body as JSON and read a handful of fields (action,
installation id, repository, pull request or issue number, linked pull requests). The standard
library decodes the whole payload (often 20-30 KB) into Python objects for that; msgspec
validates the JSON while skipping everything but those fields, which is several times faster
and keeps acknowledgements quick under bursts.

:func:`fast_facts` returns a small dict shaped like the payload (only the fields above, absent
ones left out) so the same pure functions compute the facts on either path; it returns None
when the body is not an object or a field has an unexpected type (the caller then decodes
fully), and raises ValueError for malformed JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec

UNSET: Any = msgspec.UNSET


class MalformedPayload(ValueError):
    """JSON that is not what GitHub sends (nested too deeply, not an object); the message is
    safe to answer with. Other ValueErrors mean the body is not valid JSON at all."""


class _Installation(msgspec.Struct):
    id: Any = UNSET


class _Repository(msgspec.Struct):
    full_name: Any = UNSET


class _Numbered(msgspec.Struct):
    number: Any = UNSET


class _Issue(msgspec.Struct):
    number: Any = UNSET
    pull_request: Any = UNSET


class _Check(msgspec.Struct):
    pull_requests: Any = UNSET


class _Facts(msgspec.Struct):
    action: Any = UNSET
    number: Any = UNSET
    installation: _Installation | msgspec.UnsetType | None = UNSET
    repository: _Repository | msgspec.UnsetType | None = UNSET
    pull_request: _Numbered | msgspec.UnsetType | None = UNSET
    issue: _Issue | msgspec.UnsetType | None = UNSET
    check_run: _Check | msgspec.UnsetType | None = UNSET
    check_suite: _Check | msgspec.UnsetType | None = UNSET


_DECODER = msgspec.json.Decoder(_Facts)


def fast_facts(raw: bytes) -> dict[str, Any] | None:
    """Return the routing fields of JSON ``raw`` as a small dict, None to ask for a full decode.

    Raises ValueError when ``raw`` is not well-formed JSON.
    """
    try:
        facts = _DECODER.decode(raw)
    except msgspec.ValidationError:
        return None  # not an object, or a field of an unusual type: the full decode decides
    except msgspec.DecodeError as exc:
        raise ValueError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedPayload("the JSON is nested too deeply") from None
    result: dict[str, Any] = msgspec.to_builtins(facts)  # UNSET fields are left out
    return result
