"""Approval rules: who must approve which paths in which environment (pure; facts in, decisions out).

The handler gathers :class:`ApprovalFacts` (reviews, trees of reviewed commits from the
local mirror, team memberships and permissions of the reviewers, CODEOWNERS of the base
branch) and :func:`evaluate` decides. Semantics:

- A rule applies when at least one changed path matches its ``paths`` globs (all paths
  when absent) AND, when ``environments`` is given, that path's environment is listed.
  A path's environment comes from ``env_from_path`` patterns (``clusters/{env}/**``),
  otherwise from the base branch (``branch_environments`` or the ``environments``
  section's ``branch`` entries).
- Only each reviewer's LATEST approving or requesting review counts (comments do not
  change it; a dismissed review counts for nothing).
- An approval counts for the head when given on the head commit or on a commit whose
  TREE equals the head's tree (a no-op rebase keeps it); with ``invalidate_on_push:
  false`` any approval counts.
- Only approvals from people with **write** permission or more count (as GitHub counts them
  for branch protection and code owners), whatever the rule's teams or users say; a rule
  raises the bar with ``min_permission: maintain|admin`` or opts out explicitly with
  ``min_permission: none`` (then anyone matching it counts). CODEOWNERS approvals always need
  write.
- The PR author never counts unless ``author_can_approve``.
- A CHANGES_REQUESTED review from someone who could approve under a rule blocks that
  rule until dismissed or replaced by a later approval from the same person.
- ``codeowners: true`` adds one requirement per CODEOWNERS line that owns changed
  paths: one of its owners must approve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bot.domain.governance.codeowners import CodeOwners, owner_is_team
from bot.domain.governance.globs import any_match, env_from_path

DEFAULT_ENV_PATTERNS = ("clusters/{env}/**",)
PERMISSION_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}
DEFAULT_MIN_PERMISSION = "write"
"""What an approver needs unless the rule says otherwise: GitHub's own bar for approvals."""
NO_PERMISSION_CHECK = "none"
Status = Literal["satisfied", "pending", "blocked"]


@dataclass(frozen=True, slots=True)
class Review:
    """One pull-request review as GitHub lists it (chronological order)."""

    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    commit_id: str
    submitted_at: str = ""
    id: int = 0


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """Everything the rules need; ``team_members`` and ``permissions`` cover the reviewers only."""

    author: str
    head_sha: str
    head_tree: str
    base_ref: str
    changed_paths: tuple[str, ...]
    reviews: tuple[Review, ...] = ()
    trees: Mapping[str, str] = field(default_factory=dict)
    team_members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    permissions: Mapping[str, str] = field(default_factory=dict)
    codeowners: CodeOwners | None = None
    # danger rules the rendered diff of the head found (bot.domain.dangers); None while that diff
    # is not known: a `when: dangerous` rule then waits (fail closed), never satisfied
    dangers: tuple[str, ...] | None = ()


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The outcome of one rule (or one CODEOWNERS line) for the head commit."""

    name: str
    patterns: tuple[str, ...]
    matched: tuple[str, ...]
    required: int
    who: tuple[str, ...]
    status: Status
    approved_by: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    blocked_by: tuple[str, ...] = ()
    still_needed: str = ""

    @property
    def satisfied(self) -> bool:
        return self.status == "satisfied"


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    """Per-rule results; ``notes`` explain configuration problems the user should fix."""

    rules: tuple[RuleResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.satisfied for r in self.rules)


# --------------------------------------------------------------------------- helpers


def _norm_team(team: str) -> str:
    return team.lstrip("@").lower()


def _norm_user(user: str) -> str:
    return user.lstrip("@").lower()


def approvals_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``approvals`` section with defaults filled in."""
    section = dict(config.get("approvals") or {})
    section.setdefault("codeowners", True)
    section.setdefault("rules", [])
    section.setdefault("env_from_path", list(DEFAULT_ENV_PATTERNS))
    section.setdefault("invalidate_on_push", True)
    return section


def branch_environment(config: Mapping[str, Any], base_ref: str) -> str | None:
    """Return the environment a base branch stands for, or None.

    Looks at ``approvals.branch_environments`` (``{branch: env}``) first, then at entries
    of the ``environments`` section (``name``, and ``branch`` which defaults to the name).
    """
    mapping = (config.get("approvals") or {}).get("branch_environments") or {}
    if base_ref in mapping:
        return str(mapping[base_ref])
    envs = config.get("environments")
    if isinstance(envs, list):
        for env in envs:
            if isinstance(env, Mapping) and env.get("name") and env.get("branch", env["name"]) == base_ref:
                return str(env["name"])
    return None


def path_environment(config: Mapping[str, Any], path: str, base_ref: str) -> str | None:
    """Return the environment of ``path``: from its location first, else from the base branch."""
    patterns = approvals_settings(config)["env_from_path"]
    return env_from_path(patterns, path) or branch_environment(config, base_ref)


def matched_paths(
    rule: Mapping[str, Any], config: Mapping[str, Any], paths: Iterable[str], base_ref: str
) -> list[str]:
    """Return the changed paths a rule covers (its globs, then its environments)."""
    patterns = rule.get("paths") or ["**"]
    envs = rule.get("environments")
    out = []
    for path in paths:
        if not any_match(patterns, path):
            continue
        if envs and path_environment(config, path, base_ref) not in envs:
            continue
        out.append(path)
    return out


def latest_reviews(reviews: Iterable[Review]) -> dict[str, Review]:
    """Return each reviewer's latest APPROVED / CHANGES_REQUESTED / DISMISSED review (lowercased login).

    COMMENTED and PENDING reviews do not change a reviewer's standing, as on GitHub.
    """
    latest: dict[str, Review] = {}
    for review in reviews:
        if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[_norm_user(review.user)] = review
    return latest


@dataclass(frozen=True, slots=True)
class Lookups:
    """What the handler must look up for :func:`evaluate` (reviewers only, never all members)."""

    reviewers: tuple[str, ...]
    teams: tuple[str, ...]
    needs_permissions: bool


def plan_lookups(
    config: Mapping[str, Any],
    changed: Sequence[str],
    base_ref: str,
    reviews: Iterable[Review],
    codeowners: CodeOwners | None,
) -> Lookups:
    """Say which team memberships and permissions matter for these reviewers and paths."""
    settings = approvals_settings(config)
    reviewers = tuple(
        sorted(u for u, r in latest_reviews(reviews).items() if r.state in ("APPROVED", "CHANGES_REQUESTED"))
    )
    teams: set[str] = set()
    needs_perm = False
    for rule in settings["rules"]:
        if not matched_paths(rule, config, changed, base_ref):
            continue
        require = rule.get("require") or {}
        teams.update(_norm_team(t) for t in require.get("teams", []))
        needs_perm = needs_perm or rule_min_permission(require) is not None
    if settings["codeowners"] and codeowners is not None:
        needs_perm = needs_perm or any(codeowners.owners_for(path) for path in changed)
        for path in changed:
            teams.update(_norm_team(o) for o in codeowners.owners_for(path) if owner_is_team(o))
    return Lookups(reviewers, tuple(sorted(teams)), needs_perm)


def rule_min_permission(require: Mapping[str, Any]) -> str | None:
    """The permission an approver needs under a rule's ``require`` (None: the rule opted out)."""
    wanted = str(require.get("min_permission") or DEFAULT_MIN_PERMISSION)
    return None if wanted == NO_PERMISSION_CHECK else wanted


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class _Requirement:
    name: str
    patterns: tuple[str, ...]
    matched: tuple[str, ...]
    count: int
    teams: tuple[str, ...]
    users: tuple[str, ...]
    min_permission: str | None
    author_can_approve: bool
    invalidate_on_push: bool


def _could_approve(login: str, req: _Requirement, facts: ApprovalFacts) -> bool:
    if login == _norm_user(facts.author) and not req.author_can_approve:
        return False
    if req.teams or req.users:
        in_users = login in req.users
        in_teams = any(login in facts.team_members.get(t, frozenset()) for t in req.teams)
        if not (in_users or in_teams):
            return False
    if req.min_permission:
        have = PERMISSION_RANK.get(facts.permissions.get(login, "none"), 0)
        if have < PERMISSION_RANK[req.min_permission]:
            return False
    return True


def _fresh(review: Review, facts: ApprovalFacts) -> bool:
    if review.commit_id == facts.head_sha:
        return True
    tree = facts.trees.get(review.commit_id)
    return tree is not None and tree == facts.head_tree


def _who(req: _Requirement) -> tuple[str, ...]:
    return tuple(f"@{t}" for t in req.teams) + tuple(f"@{u}" for u in req.users)


def _still_needed(req: _Requirement, missing: int) -> str:
    who = " or ".join(_who(req))
    if not who:
        who = f"reviewers with {req.min_permission} permission" if req.min_permission else "reviewers"
        if not req.author_can_approve:
            who += " other than the author"
    elif req.min_permission and req.min_permission != DEFAULT_MIN_PERMISSION:
        who += f" (with {req.min_permission} permission)"
    where = ", ".join(f"`{p}`" for p in req.patterns)
    return f"{missing} more from {who} for {where}"


def _evaluate(req: _Requirement, facts: ApprovalFacts, latest: Mapping[str, Review]) -> RuleResult:
    approved: list[str] = []
    stale: list[str] = []
    blocked: list[str] = []
    for login, review in sorted(latest.items()):
        if not _could_approve(login, req, facts):
            continue
        if review.state == "CHANGES_REQUESTED":
            blocked.append(login)
        elif review.state == "APPROVED":
            if not req.invalidate_on_push or _fresh(review, facts):
                approved.append(login)
            else:
                stale.append(login)
    missing = max(0, req.count - len(approved))
    status: Status = "blocked" if blocked else "pending" if missing else "satisfied"
    if blocked:
        names = ", ".join(f"@{b}" for b in blocked)
        needed = f"changes requested by {names}: they must approve, or the review must be dismissed"
        if missing:
            needed += "; then " + _still_needed(req, missing)
    elif missing:
        needed = _still_needed(req, missing)
    else:
        needed = ""
    return RuleResult(
        name=req.name,
        patterns=req.patterns,
        matched=req.matched,
        required=req.count,
        who=_who(req),
        status=status,
        approved_by=tuple(approved),
        stale=tuple(stale),
        blocked_by=tuple(blocked),
        still_needed=needed,
    )


def evaluate(facts: ApprovalFacts, config: Mapping[str, Any]) -> ApprovalResult:
    """Evaluate every applicable rule and the CODEOWNERS requirement for the PR head."""
    settings = approvals_settings(config)
    latest = latest_reviews(facts.reviews)
    results: list[RuleResult] = []
    notes: list[str] = []
    for index, rule in enumerate(settings["rules"]):
        matched = matched_paths(rule, config, facts.changed_paths, facts.base_ref)
        dangerous = rule.get("when") == "dangerous"
        if not matched or (dangerous and facts.dangers is not None and not facts.dangers):
            continue  # `when: dangerous` rules apply only when the diff destroys or replaces something
        require = rule.get("require") or {}
        invalidate = rule.get(
            "invalidate_on_push", rule.get("dismiss_on_push", settings["invalidate_on_push"])
        )
        req = _Requirement(
            name=str(rule.get("name") or f"rule {index + 1}"),
            patterns=tuple(rule.get("paths") or ["**"]),
            matched=tuple(matched),
            count=int(require.get("count", 1)),
            teams=tuple(_norm_team(t) for t in require.get("teams", [])),
            users=tuple(_norm_user(u) for u in require.get("users", [])),
            min_permission=rule_min_permission(require),
            author_can_approve=bool(rule.get("author_can_approve", False)),
            invalidate_on_push=bool(invalidate),
        )
        result = _evaluate(req, facts, latest)
        results.append(_until_the_diff_is_known(result) if dangerous and facts.dangers is None else result)
    if settings["codeowners"] and facts.codeowners is not None:
        results.extend(_codeowner_results(facts, latest, bool(settings["invalidate_on_push"]), notes))
    return ApprovalResult(tuple(results), tuple(notes))


def _until_the_diff_is_known(result: RuleResult) -> RuleResult:
    """A `when: dangerous` rule before the bot rendered the head's diff: pending, never satisfied."""
    waiting = "waiting for the rendered diff of the head (a `when: dangerous` rule)"
    if result.status == "satisfied":
        return replace(result, status="pending", still_needed=waiting)
    return replace(result, still_needed=f"{waiting}; {result.still_needed}")


def _codeowner_results(
    facts: ApprovalFacts, latest: Mapping[str, Review], invalidate: bool, notes: list[str]
) -> list[RuleResult]:
    assert facts.codeowners is not None
    groups: dict[int, list[str]] = {}
    rules = {}
    for path in facts.changed_paths:
        rule = facts.codeowners.rule_for(path)
        if rule is None or not rule.owners:
            continue
        groups.setdefault(rule.line, []).append(path)
        rules[rule.line] = rule
    results = []
    for line, paths in sorted(groups.items()):
        rule = rules[line]
        teams = tuple(_norm_team(o) for o in rule.owners if owner_is_team(o))
        users = tuple(_norm_user(o) for o in rule.owners if o.startswith("@") and not owner_is_team(o))
        emails = [o for o in rule.owners if not o.startswith("@")]
        if emails:
            notes.append(
                f"{facts.codeowners.path} line {line}: owner(s) {', '.join(emails)} are emails, "
                "which the bot cannot map to GitHub logins; write them as @login."
            )
        req = _Requirement(
            name=f"CODEOWNERS `{rule.pattern}`",
            patterns=(rule.pattern,),
            matched=tuple(paths),
            count=1,
            teams=teams,
            users=users,
            min_permission=DEFAULT_MIN_PERMISSION,
            author_can_approve=False,
            invalidate_on_push=invalidate,
        )
        results.append(_evaluate(req, facts, latest))
    return results


# --------------------------------------------------------------------------- output

_ICON = {"satisfied": "✅ satisfied", "pending": "⏳ waiting", "blocked": "⛔ changes requested"}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def approvals_summary(result: ApprovalResult) -> tuple[str, str]:
    """Return (title, markdown) for the ``gitops-bot/approvals`` check run: one table row per rule."""
    rules = result.rules
    done = sum(1 for r in rules if r.satisfied)
    if not rules:
        title = "No approval rule applies to this change"
    elif result.ok:
        title = f"Approved: {done} of {len(rules)} rule{'s' if len(rules) != 1 else ''} satisfied"
    elif any(r.status == "blocked" for r in rules):
        blockers = sorted({b for r in rules for b in r.blocked_by})
        title = f"Blocked: changes requested by {', '.join('@' + b for b in blockers)}"
    else:
        title = f"Waiting for approvals: {done} of {len(rules)} rules satisfied"
    lines: list[str] = []
    if rules:
        lines += ["| Rule | Paths | Status | Approved by | Still needed |", "|---|---|---|---|---|"]
        for r in rules:
            approved = ", ".join(f"@{a}" for a in r.approved_by) or "—"
            lines.append(
                f"| {_md(r.name)} | {', '.join(f'`{_md(p)}`' for p in r.patterns)} | {_ICON[r.status]} "
                f"| {approved} | {_md(r.still_needed) or '—'} |"
            )
        stale = [(r.name, s) for r in rules for s in r.stale]
        if stale:
            lines += [
                "",
                "**Approvals on an older version** (the files changed since; they need to approve again):",
            ]
            for name, login in stale:
                lines.append(f"- @{login} for {_md(name)}")
        lines += ["", "<details><summary>Changed files per rule</summary>", ""]
        for r in rules:
            shown = r.matched[:50]
            more = f" and {len(r.matched) - 50} more" if len(r.matched) > 50 else ""
            lines.append(f"- **{_md(r.name)}**: {', '.join(f'`{p}`' for p in shown)}{more}")
        lines += ["", "</details>"]
    else:
        lines.append("None of the configured approval rules or CODEOWNERS entries covers the changed files.")
    if result.notes:
        lines += ["", "**Configuration notes**", ""] + [f"- {n}" for n in result.notes]
    lines += [
        "",
        "Approvals count for the current head when given on it or on a commit with the same file tree; "
        "a CHANGES_REQUESTED review blocks until dismissed or followed by an approval from the same person.",
    ]
    return title, "\n".join(lines)
