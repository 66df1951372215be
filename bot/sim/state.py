"""The simulator's in-memory world: people, repositories, pull requests and everything on them."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PERMISSIONS = ("read", "triage", "write", "maintain", "admin")


def now_iso() -> str:
    """The current UTC time in GitHub's format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(ts: float) -> str:
    """A Unix time in GitHub's format."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rank(permission: str) -> int:
    """Order permissions; an unknown one ranks below read."""
    return PERMISSIONS.index(permission) if permission in PERMISSIONS else -1


@dataclass
class User:
    login: str
    id: int
    name: str
    type: str = "User"
    emails: dict[str, bool] = field(default_factory=dict)  # address -> verified
    ssh_signing_keys: list[str] = field(default_factory=list)
    gpg_keys: list[str] = field(default_factory=list)  # ASCII-armoured public keys
    site_admin: bool = False


@dataclass
class Team:
    slug: str
    id: int
    name: str
    members: dict[str, str] = field(default_factory=dict)  # login -> "member" | "maintainer"
    repos: dict[str, str] = field(default_factory=dict)  # "owner/repo" -> permission


@dataclass
class Org:
    login: str
    id: int
    members: set[str] = field(default_factory=set)
    teams: dict[str, Team] = field(default_factory=dict)


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    path: Path
    default_branch: str = "main"
    private: bool = True
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> permission
    labels: dict[str, Label] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    protection: dict[str, dict[str, Any]] = field(default_factory=dict)  # branch -> protection body
    parent: str | None = None  # a fork: the full name of the repository it was forked from

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Review:
    id: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    body: str
    commit_id: str
    submitted_at: str


@dataclass
class PullRequest:
    number: int
    id: int
    repo: str  # full name
    title: str
    body: str | None
    user: str
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    head_repo: str
    draft: bool = False
    state: str = "open"
    merged: bool = False
    merged_by: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None
    merge_commit_sha: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    labels: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    requested_reviewers: list[str] = field(default_factory=list)
    maintainer_can_modify: bool = False


@dataclass
class Issue:
    """A plain issue (a pull request is an issue too, but lives in ``World.pulls``)."""

    number: int
    id: int
    repo: str  # full name
    title: str
    body: str | None
    user: str
    state: str = "open"
    state_reason: str | None = None
    closed_by: str | None = None
    closed_at: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    labels: list[str] = field(default_factory=list)


@dataclass
class IssueComment:
    id: int
    repo: str
    issue_number: int
    user: str
    body: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    reactions: list[tuple[int, str, str]] = field(default_factory=list)  # (id, login, content)


@dataclass
class CheckSuite:
    id: int
    repo: str
    head_sha: str
    head_branch: str | None
    app_id: int
    status: str = "queued"
    conclusion: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class CheckRun:
    id: int
    repo: str
    head_sha: str
    name: str
    suite_id: int
    app_id: int
    status: str = "queued"
    conclusion: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Status:
    id: int
    repo: str
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class Installation:
    id: int
    account: str  # org or user login
    repository_selection: str = "all"
    created_at: str = field(default_factory=now_iso)


@dataclass
class Token:
    value: str
    kind: str  # "installation" | "user"
    subject: str  # installation id (as text) or user login
    expires_at: float
    repositories: frozenset[str] | None = None  # repo names an installation token is limited to

    def expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass
class Delivery:
    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    body: bytes
    headers: dict[str, str]
    redelivery: bool = False
    delivered_at: str = field(default_factory=now_iso)
    duration: float = 0.0
    status: str = "pending"
    status_code: int = 0
    response_body: str = ""
    throttled_at: str | None = None


class Ids:
    """Monotonic ids per kind, starting high enough to look like GitHub's."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def next(self, kind: str) -> int:
        counter = self._counters.setdefault(kind, itertools.count(1001))
        return next(counter)


@dataclass
class World:
    """All state of one simulated GitHub."""

    app_id: int
    app_slug: str
    app_name: str
    webhook_url: str | None
    users: dict[str, User] = field(default_factory=dict)
    orgs: dict[str, Org] = field(default_factory=dict)
    repos: dict[str, Repo] = field(default_factory=dict)
    pulls: dict[str, dict[int, PullRequest]] = field(default_factory=dict)
    issue_numbers: dict[str, int] = field(default_factory=dict)
    issues: dict[str, dict[int, Issue]] = field(default_factory=dict)  # plain issues, by repo and number
    comments: dict[int, IssueComment] = field(default_factory=dict)
    suites: dict[int, CheckSuite] = field(default_factory=dict)
    runs: dict[int, CheckRun] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    installations: dict[int, Installation] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    ids: Ids = field(default_factory=Ids)

    def account(self, login: str) -> User | Org | None:
        """The user or organisation named ``login``."""
        return self.users.get(login) or self.orgs.get(login)

    def account_id(self, login: str) -> int:
        acct = self.account(login)
        return acct.id if acct else 0

    def installation_for(self, owner: str) -> Installation | None:
        """The App's installation on the account that owns a repository."""
        for inst in self.installations.values():
            if inst.account == owner:
                return inst
        return None

    def permission(self, repo: Repo, login: str) -> str:
        """A user's effective permission on a repository (owner, collaborator, team or org member)."""
        if login == repo.owner:
            return "admin"
        best = repo.collaborators.get(login, "none")
        org = self.orgs.get(repo.owner)
        if org:
            for team in org.teams.values():
                p = team.repos.get(repo.full_name)
                if p and login in team.members and rank(p) > rank(best):
                    best = p
            if best == "none" and login in org.members and not repo.private:
                best = "read"
        if best == "none" and not repo.private:
            best = "read"
        return best

    def next_issue_number(self, full_name: str) -> int:
        n = self.issue_numbers.get(full_name, 0) + 1
        self.issue_numbers[full_name] = n
        return n
