"""The fast (msgspec) and the full (json) ways to read a body agree on every answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.service import payload_facts
from bot.service.webhook import decode_object, installation_id, ordering_key, read_envelope
from tests.service.conftest import EXAMPLES, example_files

EVENTS = ["pull_request", "pull_request_review", "issue_comment", "check_run", "check_suite", "push"]


def _slow(event: str, raw: bytes) -> tuple[Any, ...]:
    try:
        data = decode_object(raw)
    except ValueError:
        return ("error",)
    action = data.get("action")
    return (action if isinstance(action, str) else None, installation_id(data), ordering_key(event, data))


def _fast(event: str, raw: bytes) -> tuple[Any, ...]:
    try:
        env = read_envelope(event, raw)
    except ValueError:
        return ("error",)
    return (env.action, env.installation_id, env.ordering_key)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_gives_the_same_facts(path: Path) -> None:
    raw = path.read_bytes()
    assert payload_facts.fast_facts(raw) is not None
    assert _fast(path.parent.name, raw) == _slow(path.parent.name, raw)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["number", "id", "full_name", "pull_request", "pull_requests", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=10,
)
payloads = st.dictionaries(
    st.sampled_from(
        [
            "action",
            "number",
            "installation",
            "repository",
            "pull_request",
            "issue",
            "check_run",
            "check_suite",
            "y",
        ]
    ),
    values,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(event=st.sampled_from(EVENTS), payload=st.one_of(payloads, values))
def test_random_shapes_give_the_same_facts(event: str, payload: Any) -> None:
    raw = json.dumps(payload).encode()
    assert _fast(event, raw) == _slow(event, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"action": "opened", "action": "closed"}',
        b'{"installation": {"id": 1}, "installation": {"id": 2}}',
        b'{"a": NaN}',
        b'{"a": Infinity, "action": "x"}',
        b'{"a": "\xff"}',
        b'{"action": "x"} trailing',
        b"",
        b"[]",
        b'{"a": [1,, 2]}',
        b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"issue": {"pull_request": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
    ],
)
def test_edge_cases_agree(raw: bytes) -> None:
    assert _fast("pull_request", raw) == _slow("pull_request", raw)
