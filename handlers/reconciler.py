"""Heal missed webhooks: re-evaluate open PRs and promotions, find merges whose promotion is missing.

Runs once right after start-up and then every ``interval`` seconds (:func:`run_reconciler`, or
:func:`reconciler_context` for ``app.cleanup_ctx``). One pass (:func:`reconcile_once`), per
repository:

1. every open pull request that is not a promotion PR and whose head commit has no gitops-bot
   check run yet (or only one stuck in progress for longer than ``STALE_CHECK_SECONDS``) gets
   the PR checks (``handlers.pull_request.run_pr_checks``). A PR already checked at its head
   is left alone, so passes are cheap and idempotent;
2. ``handlers.promotion.reconcile_promotions`` finds merged PRs whose promotion is missing and
   opens it (and may evaluate open promotion PRs itself);
3. every open promotion PR (by the bot's own records, :func:`bot.service.records.pr_standing`, never
   by label or branch name) that step 2 did not evaluate gets its gates evaluated
   (``handlers.promotion.evaluate_promotion``), so elapsed soak times and health turning green
   lead to a merge without any new event.

Which repositories: ``GET /app/installations`` is not in the API subset the bot relies on, so
the reconciler takes the union of

* ``settings.reconcile_repositories`` (``owner/name`` strings), whose installation is looked up
  with ``GET /repos/{owner}/{repo}/installation`` as the App, and
* the repositories the bot has heard from: :func:`remember_repos_from_payload` (wired as a
  router in ``handlers/reconcile.py``) keeps ``{full_name: installation_id}`` in the delivery
  store's state under :data:`STATE_KEY`. ``installation`` and ``installation_repositories``
  events add and remove whole lists of repositories.

Errors are isolated per pull request and per repository and end up in the report; a pass
never raises for a GitHub error, and the loop never dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gidgethub
import gidgethub.abc

from bot.github.types import GitHubClients
from bot.queue.base import DeliveryStore, Status
from bot.service.context import HandlerContext
from bot.service.records import is_promotion_pr
from handlers.commands.base import redact, repo_path
from handlers.promotion import evaluate_promotion, reconcile_promotions
from handlers.pull_request import run_pr_checks
from handlers.upgrades import reconcile_upgrades

log = logging.getLogger(__name__)

STATE_KEY = "reconciler:repositories"
CHECK_NAME_PREFIX = "gitops-bot"
STALE_CHECK_SECONDS = 15 * 60

CtxFactory = Callable[[], HandlerContext]


@dataclass(frozen=True, slots=True)
class RepoTarget:
    """A repository to reconcile and the installation that can act on it."""

    full_name: str
    installation_id: int


@dataclass
class ReconcileReport:
    """What one pass did; ``errors`` holds one line per PR or repository that failed."""

    repositories: list[str] = field(default_factory=list)
    open_prs: int = 0
    up_to_date: int = 0
    checked: list[str] = field(default_factory=list)
    promotions_evaluated: list[str] = field(default_factory=list)
    promotions_recovered: list[str] = field(default_factory=list)
    needs_attention: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return one log line."""
        return (
            f"reconciled {len(self.repositories)} repositories: {self.open_prs} open PRs "
            f"({self.up_to_date} up to date, {len(self.checked)} checked again), "
            f"{len(self.promotions_evaluated)} promotions evaluated, "
            f"{len(self.promotions_recovered)} recovered, {len(self.needs_attention)} need attention, "
            f"{len(self.errors)} errors"
        )


# --- which repositories ---------------------------------------------------------------------------


async def known_repos(store: DeliveryStore | None) -> dict[str, int]:
    """Return the repositories remembered from deliveries, ``{full_name: installation_id}``."""
    if store is None:
        return {}
    raw = await store.get_state(STATE_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        log.warning("state %s is not JSON; starting an empty repository list", STATE_KEY)
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}


async def remember_repos(
    store: DeliveryStore | None, add: Mapping[str, int], remove: Iterable[str] = ()
) -> dict[str, int]:
    """Add and remove repositories in the remembered list; write only when it changes.

    Two workers updating at the same moment can lose one addition; the next delivery from that
    repository adds it again.
    """
    if store is None:
        return {}
    repos = await known_repos(store)
    updated = {**repos, **dict(add)}
    for name in remove:
        updated.pop(name, None)
    if updated != repos:
        await store.set_state(STATE_KEY, json.dumps(updated, sort_keys=True))
    return updated


async def remember_repos_from_payload(
    store: DeliveryStore | None, event: str, payload: Mapping[str, Any]
) -> None:
    """Remember (or forget) the repositories a webhook payload names, with its installation id."""
    installation = payload.get("installation") or {}
    installation_id = installation.get("id")
    if not isinstance(installation_id, int):
        return
    action = payload.get("action")
    add: dict[str, int] = {}
    remove: list[str] = []
    if event == "installation":
        names = [r["full_name"] for r in payload.get("repositories") or [] if "full_name" in r]
        if action == "deleted":
            remove = names or [k for k, v in (await known_repos(store)).items() if v == installation_id]
        elif action in {"created", "new_permissions_accepted", "unsuspend"}:
            add = dict.fromkeys(names, installation_id)
        elif action == "suspend":
            remove = [k for k, v in (await known_repos(store)).items() if v == installation_id]
    elif event == "installation_repositories":
        add = {r["full_name"]: installation_id for r in payload.get("repositories_added") or []}
        remove = [r["full_name"] for r in payload.get("repositories_removed") or []]
    else:
        repo = payload.get("repository") or {}
        if isinstance(repo.get("full_name"), str):
            add = {repo["full_name"]: installation_id}
    if add or remove:
        await remember_repos(store, add, remove)


async def discover_repos(
    app_clients: GitHubClients, ctx: HandlerContext
) -> tuple[list[RepoTarget], list[str]]:
    """Return the repositories to reconcile, and errors for configured ones that cannot be reached."""
    found = await known_repos(ctx.store)
    errors: list[str] = []
    configured = [str(r) for r in getattr(ctx.settings, "reconcile_repositories", None) or ()]
    missing = [r for r in configured if r not in found]
    if missing:
        app = await app_clients.app_api()
        for name in missing:
            try:
                answer = await app.getitem(f"{repo_path(name)}/installation")
                found[name] = int(answer["id"])
            except gidgethub.BadRequest as exc:
                errors.append(
                    f"{name}: the App is not installed there ({exc.status_code}); "
                    "install it or remove the repository from the reconciler's list"
                )
    return [RepoTarget(name, inst) for name, inst in sorted(found.items())], errors


# --- one pass -----------------------------------------------------------------------------------


async def checked_at_head(
    gh: gidgethub.abc.GitHubAPI, repo: str, sha: str, *, now: datetime | None = None
) -> bool:
    """True when ``sha`` has a gitops-bot check run that is done or still fresh."""
    answer = await gh.getitem(f"{repo_path(repo)}/commits/{sha}/check-runs?per_page=100")
    now = now or datetime.now(UTC)
    for run in answer.get("check_runs") or []:
        if not str(run.get("name") or "").startswith(CHECK_NAME_PREFIX):
            continue
        if run.get("status") == "completed":
            return True
        started = _parse_time(run.get("started_at"))
        if started is not None and (now - started).total_seconds() < STALE_CHECK_SECONDS:
            return True
    return False


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _error(where: str, exc: BaseException) -> str:
    return f"{where}: {type(exc).__name__}: {redact(str(exc))}"


async def queued_keys(store: DeliveryStore | None, limit: int = 1000) -> set[str]:
    """Ordering keys (``owner/repo#number``) of deliveries still to be processed, by any replica.

    The reconciler leaves those pull requests to their deliveries: acting at the same time
    (the delivery on another replica, say) made every check run twice.
    """
    if store is None:
        return set()
    keys: set[str] = set()
    try:
        for status in (Status.PENDING, Status.PROCESSING, Status.FAILED):
            found = await store.recent(status=status, limit=limit)
            keys.update(d.ordering_key for d in found if d.ordering_key)
    except Exception as exc:  # the pass still runs, as before this check existed
        log.warning("cannot list queued deliveries (%s); reconciling every PR", type(exc).__name__)
        return set()
    return keys


async def reconcile_repo(
    gh: gidgethub.abc.GitHubAPI, ctx: HandlerContext, repo: str, report: ReconcileReport
) -> None:
    """Reconcile one repository into ``report`` (see the module docs); never raises for one PR.

    A pull request with a delivery still queued is left to that delivery (:func:`queued_keys`).
    """
    report.repositories.append(repo)
    promotions: dict[int, str] = {}
    queued = await queued_keys(ctx.store)
    async for pr in gh.getiter(f"{repo_path(repo)}/pulls?state=open&per_page=100"):
        number = int(pr["number"])
        where = f"{repo}#{number}"
        report.open_prs += 1
        if where in queued:
            report.skipped.append(f"{where}: a delivery for it is still queued")
            continue
        if await is_promotion_pr(ctx, repo, pr):
            promotions[number] = str(pr.get("html_url") or "")
            continue
        try:
            if await checked_at_head(gh, repo, str(pr["head"]["sha"])):
                report.up_to_date += 1
            elif where in await queued_keys(ctx.store):  # asked again: it may have arrived since
                report.skipped.append(f"{where}: a delivery for it is still queued")
            else:
                full = await gh.getitem(f"{repo_path(repo)}/pulls/{number}")
                await run_pr_checks(gh, ctx, repo=repo, pr=full)
                report.checked.append(where)
        except Exception as exc:
            log.exception("reconciling %s failed", where)
            report.errors.append(_error(where, exc))
    await _reconcile_promotions(gh, ctx, repo, promotions, report)
    try:
        report.errors.extend(await reconcile_upgrades(gh, ctx, repo))
    except Exception as exc:
        log.exception("reconciling the upgrades of %s failed", repo)
        report.errors.append(_error(f"{repo} upgrades", exc))


async def _reconcile_promotions(
    gh: gidgethub.abc.GitHubAPI,
    ctx: HandlerContext,
    repo: str,
    promotions: Mapping[int, str],
    report: ReconcileReport,
) -> None:
    """Let ``reconcile_promotions`` recover missing promotions, then evaluate the PRs it left out.

    ``reconcile_promotions`` may evaluate open promotion PRs itself (the one on the promotion
    branch does); an outcome whose URL is a promotion PR's, or whose message starts with its
    ``#number``, counts as that PR's evaluation, so no PR is evaluated twice in one pass.
    """
    covered: set[int] = set()
    for outcome in await reconcile_promotions(gh, ctx, repo=repo):
        line = f"{repo}: {outcome.message}" + (f" ({outcome.url})" if outcome.url else "")
        evaluated = [
            n
            for n, url in promotions.items()
            if (url and outcome.url == url) or str(outcome.message).startswith(f"#{n}")
        ]
        if evaluated:
            covered.update(evaluated)
            report.promotions_evaluated.append(line)
        else:
            (report.promotions_recovered if outcome.ok else report.needs_attention).append(line)
    for number in sorted(set(promotions) - covered):
        where = f"{repo}#{number}"
        try:
            outcome = await evaluate_promotion(gh, ctx, repo=repo, promotion_pr=number)
            report.promotions_evaluated.append(f"{where}: {outcome.message}")
        except Exception as exc:
            log.exception("evaluating the promotion %s failed", where)
            report.errors.append(_error(where, exc))


async def reconcile_once(
    app_clients: GitHubClients, ctx_factory: CtxFactory, *, repos: Sequence[RepoTarget] | None = None
) -> ReconcileReport:
    """Run one reconciliation pass over ``repos`` (default: :func:`discover_repos`)."""
    ctx = ctx_factory()
    report = ReconcileReport()
    if repos is None:
        repos, errors = await discover_repos(app_clients, ctx)
        report.errors.extend(errors)
    for target in repos:
        try:
            gh = await app_clients.installation_api(target.installation_id)
            await reconcile_repo(gh, ctx, target.full_name, report)
        except Exception as exc:
            log.exception("reconciling %s failed", target.full_name)
            report.errors.append(_error(target.full_name, exc))
    return report


# --- the loop -----------------------------------------------------------------------------------


async def run_reconciler(
    app_clients: GitHubClients, ctx_factory: CtxFactory, *, interval: float, stop: asyncio.Event
) -> None:
    """Reconcile now, then every ``interval`` seconds, until ``stop`` is set.

    A failed pass is logged and the loop goes on; setting ``stop`` ends the wait at once (a pass
    in progress finishes first unless the task is cancelled).
    """
    while not stop.is_set():
        try:
            report = await reconcile_once(app_clients, ctx_factory)
        except Exception:
            log.exception("reconciliation pass failed; trying again in %.0f s", interval)
        else:
            log.info("%s", report.summary())
            for line in report.errors:
                log.warning("reconciler: %s", line)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def reconciler_context(
    app_clients: Callable[[Any], GitHubClients | None],
    ctx_factory: Callable[[Any], CtxFactory],
    *,
    interval: float,
) -> Callable[[Any], AsyncIterator[None]]:
    """Return a function for ``app.cleanup_ctx`` that runs the reconciler while the app lives.

    ``app_clients(app)`` and ``ctx_factory(app)`` read what the loop needs from the application
    once it has started (other cleanup contexts create them first); no clients (a web-only
    process) means no reconciler. On shutdown the loop is told
    to stop and given ten seconds to finish its pass before it is cancelled.
    """

    async def context(app: Any) -> AsyncIterator[None]:
        clients = app_clients(app)
        if clients is None:
            log.info("the reconciler is off: this process has no GitHub App clients")
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_reconciler(clients, ctx_factory(app), interval=interval, stop=stop),
            name="gitops-bot-reconciler",
        )
        yield
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            log.warning("the reconciler did not stop within 10 s; cancelled")

    return context
