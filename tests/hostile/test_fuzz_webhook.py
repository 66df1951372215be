"""Fuzz ``POST /webhook`` with hypothesis: any body, any headers -> 2xx or 4xx, never 5xx.

Bodies are derived from octokit's webhook examples and schemas (tests/fixtures/hostile): valid
shapes, then mutations — a required key dropped, a property of the wrong type, huge strings,
deep nesting, truncated JSON, non-object JSON, random bytes — and signatures that are right,
wrong or missing, and headers that are missing or odd. A delivery is stored only when it is
signed and well-formed, stored byte for byte, and stored once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

webhook = pytest.importorskip("bot.service.webhook", reason="the webhook service is not on this branch yet")
app_module = pytest.importorskip("bot.service.app", reason="the app factory is not on this branch yet")
settings_module = pytest.importorskip("bot.service.settings", reason="settings are not on this branch yet")
sqlite_module = pytest.importorskip("bot.queue.sqlite", reason="the SQLite store is not on this branch yet")

import gidgethub.routing  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hostile" / "webhooks"
SECRET = b"fuzz-webhook-secret"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _examples() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(event, example payload, the schema of its action) for every copied example."""
    out = []
    for path in sorted((FIXTURES / "examples").rglob("*.json")):
        event = path.parent.name
        payload = json.loads(path.read_text())
        action = payload.get("action")
        schema_path = (
            FIXTURES / "schemas" / event / (f"{action}.schema.json" if action else "event.schema.json")
        )
        out.append((event, payload, json.loads(schema_path.read_text())))
    return out


EXAMPLES = _examples()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


def wrong_type_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that break a property's declared type (objects for refs, strings for numbers...)."""
    declared = schema.get("type")
    if declared in ("string", ["string", "null"]):
        return (
            st.integers()
            | st.lists(st.integers(), max_size=3)
            | st.dictionaries(st.text(max_size=5), st.none())
        )
    if declared in ("integer", "number", "boolean"):
        return st.text(max_size=20) | st.none() | st.lists(json_scalars, max_size=3)
    return st.text(max_size=20) | st.integers() | st.lists(json_scalars, max_size=3) | st.none()


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    """A schema-shaped payload, possibly mutated, as (event, body bytes)."""
    event, example, schema = draw(st.sampled_from(EXAMPLES))
    payload = json.loads(json.dumps(example))
    kind = draw(st.sampled_from(["as-is", "drop-required", "wrong-type", "extra", "huge-string", "unicode"]))
    if kind == "drop-required" and schema.get("required"):
        payload.pop(draw(st.sampled_from(schema["required"])), None)
    elif kind == "wrong-type":
        name = draw(st.sampled_from(sorted(schema["properties"])))
        payload[name] = draw(wrong_type_for(schema["properties"][name]))
    elif kind == "extra":
        payload[draw(st.text(min_size=1, max_size=20))] = draw(json_values)
    elif kind == "huge-string":
        payload["zzz"] = "x" * draw(st.integers(10_000, 2_000_000))
    elif kind == "unicode":
        payload["title"] = draw(st.text(max_size=200))
    return event, json.dumps(payload).encode()


@st.composite
def malformed_bodies(draw: st.DrawFn) -> bytes:
    """Bodies that are not one JSON object."""
    _, example, _ = draw(st.sampled_from(EXAMPLES))
    text = json.dumps(example).encode()
    kind = draw(st.sampled_from(["truncated", "bytes", "array", "scalar", "deep", "empty", "bad-utf8"]))
    if kind == "truncated":
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "bytes":
        return draw(st.binary(max_size=500))
    if kind == "array":
        return json.dumps(draw(st.lists(json_values, max_size=3))).encode()
    if kind == "scalar":
        return json.dumps(draw(json_scalars)).encode()
    if kind == "deep":
        depth = draw(st.integers(2_000, 200_000))
        return b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bad-utf8":
        return b'{"action": "opened", "x": "\xff\xfe"}'
    return b""


class Harness:
    """The real app with a real SQLite store, on a real server, driven from a private loop."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        db = tmp_path / "fuzz.db"
        self.store = sqlite_module.SQLiteStore(db)
        config = settings_module.Settings(webhook_secret=SECRET, database_url=f"sqlite:///{db}", worker="off")
        app = app_module.create_app(config, store=self.store, router=gidgethub.routing.Router())

        async def start() -> TestClient[Any, Any]:
            client: TestClient[Any, Any] = TestClient(TestServer(app))
            await client.start_server()
            return client

        self.client = self.loop.run_until_complete(start())

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        async def go() -> int:
            async with self.client.post("/webhook", data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        return self.loop.run_until_complete(go())

    def stored(self) -> int:
        counts = self.loop.run_until_complete(self.store.counts())
        return sum(counts.values())

    def get(self, delivery_id: str) -> Any:
        return self.loop.run_until_complete(self.store.get(delivery_id))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def headers(body: bytes, event: str, delivery: str, *, secret: bytes = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": webhook.sign(secret, body),
        "Content-Type": "application/json",
    }


@FUZZ
@given(case=mutated_payloads())
def test_signed_object_payloads_are_stored_once_byte_for_byte(
    harness: Harness, case: tuple[str, bytes]
) -> None:
    event, body = case
    delivery = str(uuid.uuid4())
    before = harness.stored()
    status = harness.post(body, headers(body, event, delivery))
    assert status == 202, f"a signed JSON object is accepted whatever its shape (got {status})"
    stored = harness.get(delivery)
    assert stored is not None and stored.payload == body and stored.event == event
    assert harness.post(body, headers(body, event, delivery)) == 200, "a redelivery is acknowledged"
    assert harness.stored() == before + 1, "and stored once"


@FUZZ
@given(body=malformed_bodies(), event=st.sampled_from([e for e, _, _ in EXAMPLES]))
def test_signed_malformed_bodies_get_400_and_nothing_stored(
    harness: Harness, body: bytes, event: str
) -> None:
    before = harness.stored()
    status = harness.post(body, headers(body, event, str(uuid.uuid4())))
    assert status == 400, f"malformed body answered {status}"
    assert harness.stored() == before


@FUZZ
@given(
    case=mutated_payloads(),
    signature=st.one_of(
        st.none(),
        header_text,
        st.binary(min_size=32, max_size=32).map(lambda b: "sha256=" + b.hex()),
        st.just("sha1=0000"),
    ),
    other_secret=st.booleans(),
)
def test_unsigned_or_wrongly_signed_gets_401_and_nothing_stored(
    harness: Harness, case: tuple[str, bytes], signature: str | None, other_secret: bool
) -> None:
    event, body = case
    hdrs = headers(body, event, str(uuid.uuid4()), secret=b"not-the-secret" if other_secret else SECRET)
    if not other_secret:
        if signature is None:
            del hdrs["X-Hub-Signature-256"]
        else:
            hdrs["X-Hub-Signature-256"] = signature
    before = harness.stored()
    status = harness.post(body, hdrs)
    assert status == 401, f"bad signature answered {status}"
    assert harness.stored() == before


@FUZZ
@given(
    case=mutated_payloads(),
    event=st.one_of(st.none(), header_text),
    delivery=st.one_of(st.none(), header_text, st.just("x" * 5000)),
)
def test_odd_or_missing_headers_never_crash(
    harness: Harness, case: tuple[str, bytes], event: str | None, delivery: str | None
) -> None:
    _, body = case
    hdrs = headers(body, "push", "unused")
    for name, value in (("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery)):
        if value is None:
            del hdrs[name]
        else:
            hdrs[name] = value
    before = harness.stored()
    status = harness.post(body, hdrs)
    assert status < 500, f"headers {event!r}/{delivery!r} answered {status}"
    if event is None or delivery is None or not event.strip() or not delivery.strip():
        assert status == 400
    if status == 202:
        # HTTP trims optional whitespace around header values (RFC 9110), so does the store key
        assert delivery is not None and harness.get(delivery.strip()) is not None
        assert harness.stored() == before + 1
    else:
        assert harness.stored() <= before + 1 if status == 200 else harness.stored() == before


def test_ping_is_answered_and_not_stored(harness: Harness) -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    assert harness.post(body, headers(body, "ping", str(uuid.uuid4()))) == 200
    assert harness.stored() == 0
