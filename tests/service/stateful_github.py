"""A RecordingGitHub that keeps issue comments and check runs, so idempotency can be tested."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes import Call, RecordingGitHub

BOT = {"login": "gitops-bot[bot]", "type": "Bot"}


@dataclass
class StatefulGitHub(RecordingGitHub):
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 100
    remaining: int = 5000

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(url)
        path = parts.path
        data = json.loads(body) if body else None
        answer: Any = None
        status = 200
        link = ""
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path):
            if method == "GET":
                number = int(m[2])
                answer = [c for c in self.comments.values() if c["issue"] == number]
            elif method == "POST":
                cid = self._new_id()
                self.comments[cid] = {"id": cid, "issue": int(m[2]), "body": data["body"], "user": BOT}
                answer, status = self.comments[cid], 201
        elif m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", path):
            cid = int(m[1])
            if method == "PATCH":
                self.comments[cid]["body"] = data["body"]
                answer = self.comments[cid]
            elif method == "DELETE":
                del self.comments[cid]
                status = 204
        elif m := re.fullmatch(r"/repos/[^/]+/[^/]+/commits/([0-9a-f]+)/check-runs", path):
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            name = query.get("check_name")
            runs = [
                r for r in self.check_runs.values() if r["head_sha"] == m[1] and name in (None, r["name"])
            ]
            per_page, page = min(100, int(query.get("per_page", 30))), int(query.get("page", 1))
            answer = {"total_count": len(runs), "check_runs": runs[(page - 1) * per_page : page * per_page]}
            if page * per_page < len(runs):  # GitHub's pagination: a Link header to the next page
                next_query = urlencode({**query, "page": page + 1})
                link = f'<{parts.scheme}://{parts.netloc}{path}?{next_query}>; rel="next"'
        elif re.fullmatch(r"/repos/[^/]+/[^/]+/check-runs", path) and method == "POST":
            rid = self._new_id()
            output = data.get("output", {})
            run = {
                **data,
                "id": rid,
                "html_url": f"https://github.com/x/runs/{rid}",
                "output": {**output, "annotations_count": len(output.get("annotations", []))},
            }
            self.check_runs[rid] = run
            answer, status = run, 201
        elif (m := re.fullmatch(r"/repos/[^/]+/[^/]+/check-runs/(\d+)", path)) and method == "PATCH":
            run = self.check_runs[int(m[1])]
            count = run["output"].get("annotations_count", 0)
            output = data.get("output", {})
            run.update({k: v for k, v in data.items() if k != "output"})
            run["output"] = {**output, "annotations_count": count + len(output.get("annotations", []))}
            answer = run
        else:
            return await super()._request(method, url, headers, body)
        self.calls.append(Call(method, path + (f"?{parts.query}" if parts.query else ""), data))
        payload = b"" if status == 204 else json.dumps(answer).encode()
        self.remaining -= 1
        headers = {
            "content-type": "application/json; charset=utf-8",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": "4102444800",
        }
        if link:
            headers["link"] = link
        return status, headers, payload
