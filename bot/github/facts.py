"""Facts about people from GitHub: reviews, repository permissions, team membership.

One home for these lookups, used by governance, promotion gates and commands, with one cache
per delivery (``ctx.cache``) and one policy for refusals:

- 404 means "no": not a collaborator (permission ``none``), not a team member;
- 403 means "the App may not see this": the answer is "no" too (fail closed: nobody gains an
  approval or a command by an unreadable fact) and a note says what permission the App lacks;
- anything else raises, so the delivery is retried.

https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user
https://docs.github.com/en/rest/teams/members#get-team-membership-for-a-user
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import gidgethub
import gidgethub.abc

from bot.domain.governance.approvals import PERMISSION_RANK, Review

CACHE_KEY = "github.facts"
WRITE_ROLES = frozenset({"admin", "maintain", "write"})


@dataclass(frozen=True, slots=True)
class Permission:
    """A person's access to a repository: ``role`` (role_name) and the classic ``permission``."""

    role: str
    permission: str

    @property
    def level(self) -> str:
        """The higher of the role and the classic permission (a custom role based on write is write)."""
        return max((self.role, self.permission), key=lambda r: PERMISSION_RANK.get(r, 0))

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES or self.permission in {"admin", "write"}


@dataclass
class _Cache:
    permissions: dict[tuple[str, str], Permission] = field(default_factory=dict)
    members: dict[tuple[str, str], bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def reviews_from(items: Iterable[Mapping[str, Any]]) -> tuple[Review, ...]:
    """Reviews as the approval engine reads them; reviews by deleted accounts cannot count."""
    out = []
    for item in items:
        user = item.get("user") or {}
        if not user.get("login"):
            continue
        out.append(
            Review(
                user=str(user["login"]),
                state=str(item.get("state", "")),
                commit_id=str(item.get("commit_id") or ""),
                submitted_at=str(item.get("submitted_at") or ""),
                id=int(item.get("id") or 0),
            )
        )
    return tuple(out)


class GitHubFacts:
    """Reviews, permissions and team membership, cached for one delivery in ``cache``."""

    def __init__(self, gh: gidgethub.abc.GitHubAPI, cache: MutableMapping[str, Any]) -> None:
        self.gh = gh
        found = cache.get(CACHE_KEY)
        if not isinstance(found, _Cache):
            found = _Cache()
            cache[CACHE_KEY] = found
        self._cache: _Cache = found

    @property
    def notes(self) -> list[str]:
        """What the App could not see (one line each, without repeats)."""
        return list(dict.fromkeys(self._cache.notes))

    async def reviews(self, repo: str, number: int, per_page: int = 100) -> tuple[Review, ...]:
        """The reviews of PR ``number`` (not cached: they are what an event changes)."""
        items = [
            r async for r in self.gh.getiter(f"/repos/{repo}/pulls/{number}/reviews?per_page={per_page}")
        ]
        return reviews_from(items)

    async def permission(self, repo: str, login: str) -> Permission:
        """``login``'s permission on ``repo`` (``none`` when not a collaborator or not visible)."""
        key = (repo, login)
        if key not in self._cache.permissions:
            url = f"/repos/{repo}/collaborators/{quote(login, safe='')}/permission"
            data = await self._get(url, f"the permission of @{login}", "Metadata: read")
            if data is None:
                self._cache.permissions[key] = Permission("none", "none")
            else:
                permission = str(data.get("permission") or "none")
                self._cache.permissions[key] = Permission(
                    str(data.get("role_name") or permission), permission
                )
        return self._cache.permissions[key]

    async def role(self, repo: str, login: str) -> str:
        """``login``'s role name on ``repo`` (``none`` when not a collaborator)."""
        return (await self.permission(repo, login)).role

    async def team_member(self, team: str, login: str) -> bool:
        """Whether ``login`` is an active member of ``team`` (``org/slug``)."""
        key = (team, login)
        if key not in self._cache.members:
            org, _, slug = team.partition("/")
            team_url = f"/orgs/{quote(org, safe='')}/teams/{quote(slug, safe='')}"
            url = f"{team_url}/memberships/{quote(login, safe='')}"
            data = await self._get(url, f"the members of @{team}", "Members: read")
            self._cache.members[key] = data is not None and data.get("state") == "active"
        return self._cache.members[key]

    async def may_command(self, repo: str, login: str, allowed_teams: Iterable[str] = ()) -> tuple[bool, str]:
        """Whether ``login`` may run write commands: write access, or a member of an allowed team."""
        perm = await self.permission(repo, login)
        if perm.can_write:
            return True, perm.role
        for team in allowed_teams:
            if await self.team_member(team, login):
                return True, f"member of {team}"
        return False, perm.role

    async def _get(self, url: str, what: str, grant: str) -> Mapping[str, Any] | None:
        try:
            data = await self.gh.getitem(url)
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            if exc.status_code == 403:
                self._cache.notes.append(
                    f"The app cannot read {what} (HTTP 403); grant it the permission *{grant}*."
                )
                return None
            raise
        return data if isinstance(data, Mapping) else None


def facts(gh: gidgethub.abc.GitHubAPI, cache: MutableMapping[str, Any]) -> GitHubFacts:
    """The facts of one delivery (``cache`` is ``ctx.cache``)."""
    return GitHubFacts(gh, cache)
