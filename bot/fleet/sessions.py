"""Dashboard sessions in the store: the user's GitHub token sealed, expired sessions removed.

A session is kept under ``fleet:session:<sha256(id)>``; the id itself lives only in the signed
cookie. The user's token is sealed with AES-GCM (``cryptography``) under a key derived with
HKDF from the settings' session key *and* the session id, so neither a dump of the store nor
the settings alone opens it. ``fleet:sessions`` lists every session with its expiry; each sign-in
and the dashboard's periodic pass delete the sessions that have expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.queue.base import DeliveryStore

INDEX = "fleet:sessions"
_INFO = b"gitops-bot fleet session token v1"


def session_key(sid: str) -> str:
    """The store key of session ``sid`` (a digest: the store never holds the id itself)."""
    return "fleet:session:" + hashlib.sha256(sid.encode()).hexdigest()


def _aead(secret: bytes, sid: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=sid.encode(), info=_INFO).derive(secret)
    return AESGCM(key)


def seal(secret: bytes, sid: str, token: str) -> str:
    """Return ``token`` encrypted for session ``sid`` (nonce and ciphertext, base64)."""
    nonce = os.urandom(12)
    box = _aead(secret, sid).encrypt(nonce, token.encode(), session_key(sid).encode())
    return base64.b64encode(nonce + box).decode()


def unseal(secret: bytes, sid: str, sealed: str) -> str | None:
    """Return the token sealed by :func:`seal`, or None when it cannot be opened (other key, tampered)."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        return _aead(secret, sid).decrypt(raw[:12], raw[12:], session_key(sid).encode()).decode()
    except (InvalidTag, ValueError):
        return None


async def create(
    store: DeliveryStore, secret: bytes, sid: str, login: str, token: str, now: float, seconds: float
) -> None:
    """Store a new session (its token sealed) and delete the sessions that have expired."""
    expires = now + seconds
    session = {"login": login, "token_sealed": seal(secret, sid, token), "expires": expires}
    await store.set_state(session_key(sid), json.dumps(session))
    key = session_key(sid)

    def add(raw: str | None) -> tuple[str | None, list[str]]:
        index = _index(raw)
        expired = [k for k, at in index.items() if at < now]
        kept = {k: at for k, at in index.items() if at >= now} | {key: expires}
        return json.dumps(kept), expired

    for old in await store.update_state(INDEX, add):
        await store.delete_state(old)


async def load(store: DeliveryStore, secret: bytes, sid: str, now: float) -> dict[str, Any] | None:
    """Return ``{"login", "token", "expires"}`` of a live session, or None (unknown, expired, unreadable)."""
    raw = await store.get_state(session_key(sid))
    if not raw:
        return None
    try:
        session = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(session, dict) or float(session.get("expires") or 0) < now:
        return None
    if "token" in session:  # written before tokens were sealed: removed, its user signs in again
        await store.delete_state(session_key(sid))
        return None
    token = unseal(secret, sid, str(session.get("token_sealed") or ""))
    if token is None:
        return None
    return {"login": str(session.get("login") or ""), "token": token, "expires": session["expires"]}


async def delete(store: DeliveryStore, sid: str) -> None:
    """Remove session ``sid`` (signing out)."""
    key = session_key(sid)
    await store.delete_state(key)

    def drop(raw: str | None) -> tuple[str | None, None]:
        index = _index(raw)
        return (json.dumps({k: v for k, v in index.items() if k != key}) if key in index else None), None

    await store.update_state(INDEX, drop)


async def prune(store: DeliveryStore, now: float) -> int:
    """Delete every expired session; return how many."""

    def split(raw: str | None) -> tuple[str | None, list[str]]:
        index = _index(raw)
        expired = [k for k, at in index.items() if at < now]
        if not expired:
            return None, []
        return json.dumps({k: at for k, at in index.items() if at >= now}), expired

    expired = await store.update_state(INDEX, split)
    for key in expired:
        await store.delete_state(key)
    return len(expired)


def _index(raw: str | None) -> dict[str, float]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
