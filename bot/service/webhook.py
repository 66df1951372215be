"""``POST /webhook``: verify the signature, store the delivery durably, then answer.

Order of checks (each answers at once and stores nothing):

1. a ``Content-Encoding`` other than identity -> 415, before the body is read (GitHub never
   compresses deliveries, and the listener never inflates one: no decompression bomb);
   body over the size limit -> 413; body not received within the body timeout -> 408;
2. missing or wrong ``X-Hub-Signature-256`` -> 401 (checked before anything is parsed, so an
   unauthenticated caller learns nothing else);
3. missing ``X-GitHub-Event`` or ``X-GitHub-Delivery``, a delivery id that is not a plain
   ASCII token (GitHub sends a GUID), or a body that is not a JSON object -> 400;
4. ``ping`` -> 200, not stored;
5. otherwise the delivery is committed to the store and only then answered: 202 when new,
   200 with ``"status": "duplicate"`` when the delivery id was stored before (it is not
   processed again). If the store fails, 503, so GitHub shows the delivery as failed and it
   can be redelivered.

Metrics label events by :func:`bot.service.metrics.event_label`: an event GitHub does not document
counts as ``other``, so the label set stays bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import msgspec
from aiohttp import web

from bot.queue.base import DeliveryStore
from bot.service.metrics import Metrics, event_label
from bot.service.payload_facts import MalformedPayload, fast_facts

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
MAX_DELIVERY_ID = 200
MAX_EVENT_NAME = 100
# A delivery id is a plain ASCII token (RFC 9110 ``tchar``); GitHub sends a GUID.
DELIVERY_ID_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1," + str(MAX_DELIVERY_ID) + "}")
IDENTITY = frozenset({"", "identity"})
# Metric label for requests whose event header cannot be trusted yet (keeps label cardinality
# bounded against unauthenticated callers).
UNVERIFIED = "unverified"


def sign(secret: bytes, body: bytes) -> str:
    """Return the ``X-Hub-Signature-256`` value GitHub would send for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Return True when ``header`` is the HMAC-SHA256 of ``body`` with ``secret``.

    Fails closed: an empty secret, a missing header or another algorithm is False. The
    comparison is constant-time.
    """
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("ascii", "replace"))


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ordering_key(event: str, payload: Mapping[str, Any]) -> str | None:
    """Return ``"<owner/repo>#<number>"`` when the delivery is about one pull request, else None.

    Pull request, review, review comment, ``issue_comment`` on a pull request, and
    ``check_run``/``check_suite`` linked to pull requests (the first one) have a key; pushes,
    statuses, installations and comments on plain issues have none.
    """
    repo = payload.get("repository")
    full_name = repo.get("full_name") if isinstance(repo, dict) else None
    if not isinstance(full_name, str) or not full_name:
        return None
    number: int | None = None
    if event in {
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
    }:
        pr = payload.get("pull_request")
        number = _number(pr.get("number")) if isinstance(pr, dict) else _number(payload.get("number"))
    elif event == "issue_comment":
        issue = payload.get("issue")
        if isinstance(issue, dict) and issue.get("pull_request"):
            number = _number(issue.get("number"))
    elif event in {"check_run", "check_suite"}:
        obj = payload.get(event)
        prs = obj.get("pull_requests") if isinstance(obj, dict) else None
        if isinstance(prs, list) and prs and isinstance(prs[0], dict):
            number = _number(prs[0].get("number"))
    return None if number is None else f"{full_name}#{number}"


def installation_id(payload: Mapping[str, Any]) -> int | None:
    """Return ``payload.installation.id`` when present."""
    inst = payload.get("installation")
    return _number(inst.get("id")) if isinstance(inst, dict) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the web handler needs from a delivery body: routing facts and the JSON to store."""

    action: str | None
    installation_id: int | None
    ordering_key: str | None
    payload: bytes


def _json_bytes(body: bytes, content_type: str) -> bytes:
    if content_type != "application/x-www-form-urlencoded":
        return body
    fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
    if len(fields.get("payload", [])) != 1:
        raise ValueError("form body without one payload field")
    return fields["payload"][0].encode("utf-8")


def decode_object(raw: bytes) -> dict[str, Any]:
    """Decode strict JSON (no NaN/Infinity) that must be an object; raise ValueError otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise MalformedPayload("the JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedPayload("the payload is not a JSON object")
    return data


def read_envelope(event: str, body: bytes, content_type: str = "application/json") -> Envelope:
    """Validate a delivery body and extract its action, installation id and ordering key.

    Accepts a JSON object, or GitHub's form encoding (``payload=<json>``). Raises ValueError
    (UnicodeDecodeError included) for anything else. msgspec validates the body and decodes
    only the few routing fields, which is several times faster on large payloads; unusual
    shapes fall back to the full decode, so the answer is always the same as
    :func:`decode_object` followed by :func:`ordering_key`.
    """
    raw = _json_bytes(body, content_type)
    raw.decode("utf-8")  # strict UTF-8, as the full decode would require
    facts = fast_facts(raw)
    if facts is None:
        facts = decode_object(raw)
    action = facts.get("action")
    return Envelope(
        action=action if isinstance(action, str) else None,
        installation_id=installation_id(facts),
        ordering_key=ordering_key(event, facts),
        payload=raw,
    )


def _answer(code: int, message: str, /, **extra: Any) -> web.Response:
    return web.Response(
        body=msgspec.json.encode({"message": message, **extra}),
        status=code,
        content_type="application/json",
        charset="utf-8",
    )


def _closing(response: web.Response) -> web.Response:
    """Close the connection after ``response`` (the request body was not read to its end)."""
    response.force_close()
    return response


class WebhookHandler:
    """The aiohttp handler for ``POST /webhook`` (:meth:`handle`)."""

    def __init__(
        self,
        secret: bytes,
        store: Callable[[], DeliveryStore],
        *,
        metrics: Metrics | None = None,
        on_stored: Callable[[], None] | None = None,
        max_body_bytes: int = 25 * 1024 * 1024,
        body_timeout: float = 30.0,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required; unsigned webhooks are refused")
        self._secret = secret
        self._store = store
        self._metrics = metrics
        # Labelled children of the deliveries counter by (event, outcome), so that each
        # delivery skips labels(), which validates the names and takes a lock. The events are
        # those of verified deliveries (others count as "unverified"), so the map stays small.
        self._counters: dict[tuple[str, str], Any] = {}
        self.on_stored = on_stored
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    @property
    def metrics(self) -> Metrics | None:
        """The metrics the handler records into (fixed at construction)."""
        return self._metrics

    def _count(self, event: str, outcome: str, started: float) -> None:
        if self.metrics is not None:
            counter = self._counters.get((event, outcome))
            if counter is None:
                label = event if event == UNVERIFIED else event_label(event)
                counter = self.metrics.deliveries.labels(event=label, outcome=outcome)
                self._counters[(event, outcome)] = counter
            counter.inc()
            self.metrics.ack_seconds.observe(time.perf_counter() - started)

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one webhook request (see the module docs for the answers)."""
        started = time.perf_counter()
        event = request.headers.get(EVENT_HEADER, "").strip()[:MAX_EVENT_NAME]
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in IDENTITY:
            self._count(UNVERIFIED, "compressed", started)
            return _closing(
                _answer(415, "compressed bodies are not accepted: send the JSON as is (no Content-Encoding)")
            )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            self._count(UNVERIFIED, "too_large", started)
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.max_body_bytes, actual_size=request.content_length
            )
        try:
            if request.content.is_eof():  # the usual case: the whole body came with the headers
                body = await request.read()
            else:
                async with asyncio.timeout(self.body_timeout):
                    body = await request.read()  # a chunked body past client_max_size stops here
        except web.HTTPRequestEntityTooLarge:
            self._count(UNVERIFIED, "too_large", started)
            raise
        except TimeoutError:
            self._count(UNVERIFIED, "timeout", started)
            log.warning("webhook refused: body slower than %ss (from %s)", self.body_timeout, request.remote)
            return _closing(_answer(408, f"the body was not received within {self.body_timeout:g} seconds"))
        if len(body) > self.max_body_bytes:
            self._count(UNVERIFIED, "too_large", started)
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_bytes, actual_size=len(body))

        if not signature_ok(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            self._count(UNVERIFIED, "bad_signature", started)
            log.warning("webhook refused: missing or wrong %s (from %s)", SIGNATURE_HEADER, request.remote)
            return _answer(401, f"missing or wrong {SIGNATURE_HEADER}: check the App's webhook secret")

        delivery_id = request.headers.get(DELIVERY_HEADER, "").strip()
        if not event or not delivery_id:
            missing = EVENT_HEADER if not event else DELIVERY_HEADER
            self._count(event, "bad_request", started)
            return _answer(400, f"missing {missing} header")
        if DELIVERY_ID_RE.fullmatch(delivery_id) is None:
            self._count(event, "bad_request", started)
            return _answer(
                400,
                f"{DELIVERY_HEADER} must be a plain ASCII token of at most {MAX_DELIVERY_ID} characters "
                "(GitHub sends a GUID)",
            )
        try:
            envelope = read_envelope(event, body, request.content_type)
            payload = decode_object(envelope.payload) if event == "ping" else None
        except ValueError as exc:
            self._count(event, "bad_request", started)
            reason = str(exc) if isinstance(exc, MalformedPayload) else "the body is not valid JSON"
            return _answer(400, f"malformed payload: {reason}", delivery=delivery_id)

        if payload is not None:
            self._count(event, "ping", started)
            log.info("ping %s (hook %s)", delivery_id, payload.get("hook_id"))
            return _answer(200, "pong", zen=payload.get("zen"))

        try:
            new = await self._store().put(
                delivery_id,
                event,
                envelope.payload,
                action=envelope.action,
                installation_id=envelope.installation_id,
                ordering_key=envelope.ordering_key,
            )
        except Exception:
            self._count(event, "store_error", started)
            log.exception("could not store delivery %s (%s)", delivery_id, event)
            return _answer(
                503, "the delivery could not be stored; GitHub can redeliver it", delivery=delivery_id
            )
        if not new:
            self._count(event, "duplicate", started)
            log.info("duplicate delivery %s (%s) acknowledged, not processed again", delivery_id, event)
            return _answer(
                200, "duplicate delivery, already stored", status="duplicate", delivery=delivery_id
            )
        self._count(event, "accepted", started)
        if self.on_stored is not None:
            self.on_stored()
        return _answer(202, "stored", status="queued", delivery=delivery_id)
