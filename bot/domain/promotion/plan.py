"""Promotion plans: deterministic branch names, PR titles and bodies, the history marker.

Everything here is a pure function of its inputs, so the handler can re-run any step and
find (or rewrite identically) what it made before.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.domain import escape
from bot.domain.labels import CONFLICT_MARKER, PROMOTION_MARKER_PREFIX, ROLLBACK_MARKER_PREFIX
from bot.domain.promotion.environments import Chain, Environment, Strategy

BRANCH_PREFIX = "gitops-bot/promote/"
ROLLBACK_PREFIX = "gitops-bot/rollback/"
MARKER_SUFFIX = " -->"
MAX_BODY = 60_000  # GitHub allows 65,536 characters; keep room for the marker and tables
_MARKER_RE = re.compile(re.escape(PROMOTION_MARKER_PREFIX) + r"(\{.*?\})" + re.escape(MARKER_SUFFIX), re.S)


def inline_text(text: str, limit: int = 300) -> str:
    """User text (a PR title, a /rollback reason) made safe for one line of markdown.

    Newlines collapse, ``<``/``>``/``&`` become entities (no HTML, no hidden comments, no
    forged markers), and the text is cut at ``limit`` characters.
    """
    one = " ".join(text.split())
    if len(one) > limit:
        one = one[: limit - 1] + "…"
    return escape.message(one)  # the one escaping helper: no HTML, markup, link or mention


def short(sha: str) -> str:
    return sha[:7]


def branch_name(env: str, sha: str) -> str:
    """``gitops-bot/promote/<env>/<short sha>`` of the source commit."""
    return f"{BRANCH_PREFIX}{env}/{short(sha)}"


def rollback_branch(env: str, sha: str) -> str:
    """``gitops-bot/rollback/<env>/<short sha>`` of the commit being reverted."""
    return f"{ROLLBACK_PREFIX}{env}/{short(sha)}"


def parse_branch(ref: str) -> tuple[str, str] | None:
    """Return ``(env, short sha)`` for a promotion branch, or None for any other branch."""
    if not ref.startswith(BRANCH_PREFIX):
        return None
    env, _, sha = ref[len(BRANCH_PREFIX) :].partition("/")
    return (env, sha) if env and sha else None


def pr_title(origin_pr: int, env: str, title: str) -> str:
    """``Promote #123 to staging: <title>`` (the title of the change as it was first merged)."""
    title = re.sub(r"^Promote #\d+ to [^:]+: ", "", title).strip()
    return f"Promote #{origin_pr} to {env}: {title}"


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of a change through the environments: the PR that brought it and its commit."""

    env: str
    pr: int
    sha: str


@dataclass(frozen=True, slots=True)
class History:
    """The promotion history kept in the hidden marker of each promotion PR body.

    ``origin`` is the first PR (the cluster request), ``hops`` every merged step so far;
    ``target`` is where this PR goes. ``source_sha`` is the commit the change was taken from.
    """

    origin_pr: int
    origin_title: str
    source_env: str
    target_env: str
    source_pr: int
    source_sha: str
    strategy: Strategy
    hops: tuple[Hop, ...] = ()
    commits: tuple[str, ...] = field(default=())
    merged_at: str = ""  # when the source PR merged into source_env (ISO 8601, UTC)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hops"] = [asdict(h) for h in self.hops]
        data["commits"] = list(self.commits)
        data["version"] = 1
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        return cls(
            origin_pr=int(data["origin_pr"]),
            origin_title=str(data.get("origin_title", "")),
            source_env=str(data["source_env"]),
            target_env=str(data["target_env"]),
            source_pr=int(data["source_pr"]),
            source_sha=str(data["source_sha"]),
            strategy="merge" if data.get("strategy") == "merge" else "cherry-pick",
            hops=tuple(Hop(str(h["env"]), int(h["pr"]), str(h["sha"])) for h in data.get("hops", [])),
            commits=tuple(str(c) for c in data.get("commits", [])),
            merged_at=str(data.get("merged_at") or ""),
        )


def marker(history: History) -> str:
    """The hidden HTML comment holding ``history`` as JSON (``>`` escaped so it cannot close it)."""
    payload = json.dumps(history.to_json(), sort_keys=True, separators=(",", ":")).replace(">", "\\u003e")
    return f"{PROMOTION_MARKER_PREFIX}{payload}{MARKER_SUFFIX}"


def read_marker(body: str | None) -> History | None:
    """Return the history shown in a PR body, or None (what people see; the bot decides on its store)."""
    if not body:
        return None
    # the bot writes its marker last; anything earlier (a quoted diff, a title) is not trusted
    matches = list(_MARKER_RE.finditer(body))
    if not matches:
        return None
    m = matches[-1]
    try:
        return History.from_json(json.loads(m.group(1)))
    except (ValueError, KeyError, TypeError):
        return None


def next_history(
    chain: Chain,
    source_env: Environment,
    target_env: Environment,
    *,
    merged_pr: int,
    merged_title: str,
    merged_sha: str,
    previous: History | None,
    commits: tuple[str, ...] = (),
    merged_at: str = "",
) -> History:
    """The history of the promotion that carries ``merged_pr`` (merged into ``source_env``) onward.

    When the merged PR was itself a promotion (``previous`` is its history), the origin and
    the hops so far are kept, so prod's PR still says ``Promote #123``.
    """
    hop = Hop(source_env.name, merged_pr, merged_sha)
    if previous is not None and previous.target_env == source_env.name:
        return History(
            origin_pr=previous.origin_pr,
            origin_title=previous.origin_title,
            source_env=source_env.name,
            target_env=target_env.name,
            source_pr=merged_pr,
            source_sha=merged_sha,
            strategy=chain.settings.strategy,
            hops=(*previous.hops, hop),
            commits=commits,
            merged_at=merged_at,
        )
    return History(
        origin_pr=merged_pr,
        origin_title=merged_title,
        source_env=source_env.name,
        target_env=target_env.name,
        source_pr=merged_pr,
        source_sha=merged_sha,
        strategy=chain.settings.strategy,
        hops=(hop,),
        commits=commits,
        merged_at=merged_at,
    )


def _truncate(text: str, limit: int, note: str) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    # never leave a code fence or <details> open
    if cut.count("```") % 2:
        cut += "\n```"
    if cut.count("<details>") > cut.count("</details>"):
        cut += "\n</details>"
    return f"{cut}\n\n{note}"


def pr_body(
    history: History,
    *,
    repo: str,
    diff_markdown: str,
    checklist: str,
    auto_merge: bool,
) -> str:
    """The promotion PR body: source link, gates, rendered diff for the target, history, marker.

    The diff is truncated (closing any open fence) so the body stays under GitHub's limit.
    """
    src = f"https://github.com/{repo}/pull/{history.source_pr}"
    origin = f"https://github.com/{repo}/pull/{history.origin_pr}"
    how = (
        "cherry-picks exactly its change"
        if history.strategy == "cherry-pick"
        else f"merges `{history.source_env}`"
    )
    lines = [
        f"## Promote #{history.origin_pr} to `{history.target_env}`",
        "",
        f"Carries [#{history.origin_pr}]({origin}) (*{inline_text(history.origin_title)}*) "
        f"from `{history.source_env}` "
        f"to `{history.target_env}`: this PR {how} "
        f"(source [#{history.source_pr}]({src}), commit `{short(history.source_sha)}`).",
        "",
        "### Gates",
        "",
        checklist,
        "",
        (
            "The bot merges this PR when every gate holds."
            if auto_merge
            else f"`{history.target_env}` does not merge by itself: merge this PR when the gates hold."
        ),
        "Comment `/hold` to stop it, `/unhold` to release it, `/rollback` after merge to revert it.",
        "",
        f"### Rendered diff for `{history.target_env}`",
        "",
    ]
    head = "\n".join(lines) + "\n"
    hist = ["", "### History", "", "| Environment | PR | Commit |", "|---|---|---|"]
    hist += [f"| `{h.env}` | #{h.pr} | `{short(h.sha)}` |" for h in history.hops]
    hist.append(f"| `{history.target_env}` | this PR | |")
    tail = "\n".join(hist) + "\n\n" + marker(history) + "\n"
    room = MAX_BODY - len(head) - len(tail)
    diff = _truncate(
        diff_markdown.strip() or "_No rendered change for this environment._",
        max(room, 1000),
        "_The diff is too long for the PR body; see the check runs or run `/diff`._",
    )
    return head + diff + "\n" + tail


def conflict_comment(
    *,
    env: Environment,
    onto_branch: str,
    source_pr: int,
    source_sha: str,
    paths: tuple[str, ...],
    strategy: Strategy,
    merge_commit: bool = True,
) -> str:
    """The comment on the source PR when its change does not apply to ``env``: paths and what to do."""
    files = "\n".join(f"- `{p}`" for p in paths)
    branch = branch_name(env.name, source_sha)
    if strategy == "cherry-pick":
        apply = f"git cherry-pick {'-m 1 ' if merge_commit else ''}{source_sha}"
    else:
        apply = f"git merge {source_sha}"
    return "\n".join(
        [
            CONFLICT_MARKER.format(env=env.name),
            f"### ⚠️ Cannot promote #{source_pr} to `{env.name}`: conflicts",
            "",
            f"The change does not apply cleanly on `{onto_branch}`. Conflicting paths:",
            "",
            files,
            "",
            "No promotion PR was opened. Resolve it by hand:",
            "",
            "```sh",
            f"git fetch origin {onto_branch}",
            f"git switch -c {branch} origin/{onto_branch}",
            apply,
            "# fix the files above, then: git add <files> && git cherry-pick --continue (or git commit)",
            f"git push origin {branch}",
            "```",
            "",
            f"and open a PR to `{onto_branch}`, or fix `{onto_branch}` and comment "
            f"`/promote {env.name}` to retry.",
        ]
    )


def resolved_comment(env: Environment, url: str | None) -> str:
    """Replaces the conflict comment once a later attempt succeeded."""
    where = f": {url}" if url else ""
    tag = CONFLICT_MARKER.format(env=env.name)
    return f"{tag}\n✅ The conflicts are resolved; promotion to `{env.name}` is open{where}."


def rollback_body(*, repo: str, env: str, pr_number: int, sha: str, reason: str) -> str:
    """The body of a revert PR: what it undoes and why."""
    return "\n".join(
        [
            f"## Roll back #{pr_number} in `{env}`",
            "",
            f"Reverts commit `{short(sha)}` of [#{pr_number}](https://github.com/{repo}/pull/{pr_number}).",
            "",
            f"**Why:** {inline_text(reason, 1000) or 'requested'}",
            "",
            "Review and merge to undo the change; close this PR to keep it.",
            f"{ROLLBACK_MARKER_PREFIX}{json.dumps({'pr': pr_number, 'sha': sha, 'env': env})} -->",
        ]
    )


@dataclass(frozen=True, slots=True)
class Queued:
    """An open promotion PR into one environment, with the merge order of its origin."""

    number: int
    target_env: str
    merged_order: tuple[str, int]  # (source merged_at ISO, source PR number)


def in_flight_ahead(open_prs: list[Queued], number: int) -> tuple[int, ...]:
    """PRs into the same environment that come before ``number`` in merge order.

    One promotion is in flight per environment: the first in merge order; the rest wait.
    A PR missing from ``open_prs`` has nothing ahead of it.
    """
    me = next((q for q in open_prs if q.number == number), None)
    if me is None:
        return ()
    same = sorted(
        (q for q in open_prs if q.target_env == me.target_env), key=lambda q: (q.merged_order, q.number)
    )
    return tuple(q.number for q in same[: same.index(me)])
