"""Sticky pull-request comments: found by a hidden marker, updated in place, never duplicated.

A sticky comment carries ``<!-- gitops-bot:KEY -->``. Content too long for one comment is
split into numbered parts, each marked ``<!-- gitops-bot:KEY part N/M -->``; a later, shorter
update edits the parts it still needs and deletes the others. Bodies that did not change are
not re-sent.

This module is the only one that finds the bot's comments, and it only ever finds comments
whose author is this App (``bot_login``): a marker in a comment a person (or another App)
wrote is never read, edited or trusted.

https://docs.github.com/en/rest/issues/comments
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import gidgethub.abc

from bot.domain import authors
from bot.github.writes import GitHubWrites

MAX_COMMENT_CHARS = 65_536
_KEY = re.compile(r"^[A-Za-z0-9_.:-]+$")
_MARKER = re.compile(r"<!-- gitops-bot:(?P<key>[A-Za-z0-9_.:-]+?)(?: part (?P<n>\d+)/(?P<total>\d+))? -->")


def marker(key: str, part: int | None = None, total: int | None = None) -> str:
    """Return the hidden marker of sticky comment ``key`` (optionally of part ``part``/``total``)."""
    if not _KEY.match(key):
        raise ValueError(f"invalid sticky comment key {key!r}: use letters, digits, '_', '.', ':', '-'")
    if part is None:
        return f"<!-- gitops-bot:{key} -->"
    return f"<!-- gitops-bot:{key} part {part}/{total} -->"


@dataclass(frozen=True, slots=True)
class MarkedComment:
    """A bot comment that carries a marker: its id, part number (1 for unnumbered) and body."""

    id: int
    part: int
    body: str


def parse_marker(body: str) -> tuple[str, int] | None:
    """Return ``(key, part)`` of the first marker in ``body``, or None."""
    match = _MARKER.search(body or "")
    if match is None:
        return None
    return match["key"], int(match["n"] or 1)


DEFAULT_BOT_LOGIN = "gitops-bot[bot]"


def by_bot(comment: Mapping[str, Any], bot_login: str | None) -> bool:
    """Whether ``comment`` was written by this App (its login, not merely any Bot account)."""
    return authors.by_bot(comment, bot_login or DEFAULT_BOT_LOGIN)


async def list_marked_comments(
    gh: gidgethub.abc.GitHubAPI, repo: str, number: int, key: str, *, bot_login: str | None = None
) -> list[MarkedComment]:
    """Return this bot's comments on issue/PR ``number`` marked with ``key``, oldest first.

    A comment counts only when its author is this App (``bot_login``): people and other Apps
    who write the marker are never edited.
    """
    found: list[MarkedComment] = []
    async for comment in gh.getiter(f"/repos/{repo}/issues/{number}/comments?per_page=100"):
        if not isinstance(comment, dict) or not by_bot(comment, bot_login):
            continue
        parsed = parse_marker(str(comment.get("body") or ""))
        if parsed is not None and parsed[0] == key:
            found.append(MarkedComment(int(comment["id"]), parsed[1], str(comment.get("body") or "")))
    return found


def _with_marker(body: str, mark: str) -> str:
    body = _MARKER.sub("", body).strip("\n")
    return f"{mark}\n{body}"


async def upsert_comment_parts(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    key: str,
    parts: Sequence[str],
    *,
    writes: GitHubWrites,
    bot_login: str | None = None,
) -> list[int]:
    """Make the PR show exactly ``parts`` as the sticky comment(s) ``key``; return their ids in order.

    One part is written unnumbered; several are numbered ``part N/M``. Existing parts are
    edited in place (skipped when unchanged), missing ones created, and parts beyond
    ``len(parts)`` or duplicates of a part (from a past race) deleted. An empty ``parts``
    deletes them all.
    """
    total = len(parts)
    bodies = [
        _with_marker(text, marker(key) if total == 1 else marker(key, i, total))
        for i, text in enumerate(parts, 1)
    ]
    for body in bodies:
        if len(body) > MAX_COMMENT_CHARS:
            raise ValueError(f"part of sticky comment {key!r} is {len(body)} characters; split it further")
    # Two deliveries of one PR (or two replicas) writing together would each find no comment
    # and create one: find-then-write under one lock per comment, as check runs do.
    async with writes.lock("comments", f"{repo}#{number}:{key}"):
        return await _write_parts(gh, repo, number, key, bodies, bot_login)


async def _write_parts(
    gh: gidgethub.abc.GitHubAPI, repo: str, number: int, key: str, bodies: list[str], bot_login: str | None
) -> list[int]:
    total = len(bodies)
    existing = await list_marked_comments(gh, repo, number, key, bot_login=bot_login)
    by_part: dict[int, MarkedComment] = {}
    extra: list[MarkedComment] = []
    for comment in existing:
        if comment.part in by_part or comment.part > total:
            extra.append(comment)
        else:
            by_part[comment.part] = comment
    ids: list[int] = []
    for index, body in enumerate(bodies, 1):
        current = by_part.get(index)
        if current is None:
            created = await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})
            ids.append(int(created.get("id", 0)) if isinstance(created, dict) else 0)
        else:
            if current.body != body:
                await gh.patch(f"/repos/{repo}/issues/comments/{current.id}", data={"body": body})
            ids.append(current.id)
    for comment in extra:
        await gh.delete(f"/repos/{repo}/issues/comments/{comment.id}")
    return ids


async def upsert_sticky_comment(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    key: str,
    body: str,
    *,
    writes: GitHubWrites,
    bot_login: str | None = None,
) -> int:
    """Create or update the one sticky comment ``key`` on PR ``number``; return its id."""
    ids = await upsert_comment_parts(gh, repo, number, key, [body], writes=writes, bot_login=bot_login)
    return ids[0]


async def delete_sticky_comment(
    gh: gidgethub.abc.GitHubAPI, repo: str, number: int, key: str, *, bot_login: str | None = None
) -> int:
    """Delete every part of sticky comment ``key``; return how many were deleted."""
    existing = await list_marked_comments(gh, repo, number, key, bot_login=bot_login)
    for comment in existing:
        await gh.delete(f"/repos/{repo}/issues/comments/{comment.id}")
    return len(existing)


async def find_bot_comment(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    tag: str,
    *,
    bot_login: str | None,
    since: str | None = None,
) -> dict[str, Any] | None:
    """The first comment on ``number`` by this App that contains ``tag`` (at or after ``since``)."""
    url = f"/repos/{repo}/issues/{number}/comments?per_page=100"
    if since:
        url += f"&since={quote(since, safe='')}"
    async for comment in gh.getiter(url):
        if isinstance(comment, dict) and by_bot(comment, bot_login) and tag in str(comment.get("body") or ""):
            return dict(comment)
    return None


async def upsert_bot_comment(
    gh: gidgethub.abc.GitHubAPI,
    repo: str,
    number: int,
    tag: str,
    body: str,
    *,
    bot_login: str | None,
    since: str | None = None,
) -> dict[str, Any]:
    """Create or update this App's comment carrying ``tag`` (which ``body`` must contain)."""
    if tag not in body:
        raise ValueError(f"the comment body must carry its tag {tag!r}")
    existing = await find_bot_comment(gh, repo, number, tag, bot_login=bot_login, since=since)
    if existing is None:
        created = await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})
        return dict(created) if isinstance(created, dict) else {}
    if existing.get("body") != body:
        await gh.patch(f"/repos/{repo}/issues/comments/{int(existing['id'])}", data={"body": body})
    return {**existing, "body": body}
