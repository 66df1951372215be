"""App auth, installations, webhook deliveries, rate limit and team membership routes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.sim.core import Actor, Answer, ApiError, SimCore, not_found
from bot.sim.state import (
    iso,
)


class AppRoutes(SimCore):
    """App auth, installations, webhook deliveries, rate limit and team membership routes."""

    async def op_apps__get_authenticated(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        return Answer(200, self.views.app())

    async def op_apps__create_installation_access_token(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        inst = (
            self.world.installations.get(int(p["installation_id"]))
            if p["installation_id"].isdigit()
            else None
        )
        if inst is None:
            raise not_found()
        repos = [r for r in self.world.repos.values() if r.owner == inst.account]
        wanted = (b or {}).get("repositories")
        if wanted:
            unknown = sorted(set(wanted) - {r.name for r in repos})
            if unknown:
                raise ApiError(
                    422,
                    f"There is at least one repository that does not exist or is not "
                    f"accessible to the parent installation: {', '.join(unknown)}",
                )
            repos = [r for r in repos if r.name in wanted]
        token = self.installation_token(inst.id, wanted)
        return Answer(
            201,
            {
                "token": token.value,
                "expires_at": iso(token.expires_at),
                "permissions": (b or {}).get("permissions") or self.views.app()["permissions"],
                "repository_selection": "selected" if b and b.get("repositories") else "all",
                "repositories": [self.views.repo(r) for r in repos],
            },
        )

    async def op_apps__get_repo_installation(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        repo = self.world.repos.get(f"{p['owner']}/{p['repo']}")
        inst = self.world.installation_for(repo.owner) if repo else None
        if inst is None:
            raise not_found()
        return Answer(200, self._installation_view(inst))

    async def op_apps__list_webhook_deliveries(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        try:
            per_page = min(max(int(req.query.get("per_page") or 30), 1), 100)
        except ValueError as exc:
            raise ApiError(422, "Invalid request.\n\nper_page must be an integer.") from exc
        cursor = req.query.get("cursor")
        items = sorted(self.world.deliveries, key=lambda d: d.id, reverse=True)
        if cursor:
            items = [d for d in items if d.id < int(cursor)] if cursor.isdigit() else []
        chunk = items[:per_page]
        headers = {}
        if len(items) > per_page:
            nxt = f"{self.base_url}{req.path}?{urlencode({'per_page': per_page, 'cursor': chunk[-1].id})}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        body = [
            {
                "id": d.id,
                "guid": d.guid,
                "delivered_at": d.delivered_at,
                "redelivery": d.redelivery,
                "duration": d.duration,
                "status": d.status,
                "status_code": d.status_code,
                "event": d.event,
                "action": d.action,
                "installation_id": d.installation_id,
                "repository_id": d.repository_id,
                "throttled_at": d.throttled_at,
            }
            for d in chunk
        ]
        return Answer(200, body, headers)

    async def op_apps__redeliver_webhook_delivery(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        target = next((d for d in self.world.deliveries if str(d.id) == p["delivery_id"]), None)
        if target is None:
            raise not_found()
        self.deliverer.redeliver(target)
        return Answer(202, {})

    async def op_rate_limit__get(self, req: web.Request, p: dict[str, str], b: Any, a: Actor) -> Answer:
        _, used, reset = self._window(a)
        core = {"limit": self.rate_limit, "used": used, "remaining": self.rate_limit - used, "reset": reset}
        return Answer(
            200, {"resources": {"core": core, "search": dict(core), "graphql": dict(core)}, "rate": core}
        )

    async def op_teams__get_membership_for_user_in_org(
        self, req: web.Request, p: dict[str, str], b: Any, a: Actor
    ) -> Answer:
        org = self.world.orgs.get(p["org"])
        team = org.teams.get(p["team_slug"]) if org else None
        if a.kind == "installation":
            inst = self.world.installations.get(a.installation_id or 0)
            if inst is None or inst.account != p["org"]:
                raise not_found()
        if team is None or p["username"] not in team.members:
            raise not_found()
        return Answer(
            200,
            {
                "url": f"{self.base_url}/organizations/{org.id if org else 0}/team/{team.id}"
                f"/memberships/{p['username']}",
                "role": team.members[p["username"]],
                "state": "active",
            },
        )
