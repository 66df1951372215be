"""A small Kubernetes API server for tests: custom objects at their real paths, and a kubeconfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class FakeKubeAPI:
    """Serves ``GET /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`` from ``objects``."""

    objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    def put(
        self, group: str, version: str, plural: str, namespace: str, name: str, obj: dict[str, Any]
    ) -> None:
        self.objects[(group, version, namespace, plural, name)] = obj

    def put_kustomization(self, ref: str, obj: dict[str, Any]) -> None:
        ns, _, name = ref.rpartition("/")
        self.put("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", ns or "flux-system", name, obj)

    def put_application(self, ref: str, obj: dict[str, Any]) -> None:
        ns, _, name = ref.rpartition("/")
        self.put("argoproj.io", "v1alpha1", "applications", ns or "argocd", name, obj)

    def put_canary(self, ref: str, obj: dict[str, Any]) -> None:
        ns, _, name = ref.rpartition("/")
        self.put("flagger.app", "v1beta1", "canaries", ns, name, obj)

    async def _get(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.requests.append(request.path)
        if request.headers.get("Authorization") != "Bearer test-token":
            return web.json_response({"kind": "Status", "code": 401, "reason": "Unauthorized"}, status=401)
        obj = self.objects.get((m["group"], m["version"], m["ns"], m["plural"], m["name"]))
        if obj is None:
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
            }
            return web.json_response(body, status=404)
        return web.json_response(obj)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", self._get)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def kubeconfig(self, path: Path, context: str) -> Path:
        path.write_text(
            f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {self.url}
contexts:
- name: {context}
  context:
    cluster: test
    user: bot
- name: unreachable
  context:
    cluster: nowhere
    user: bot
- name: nowhere-cluster
  context:
    cluster: nowhere
    user: bot
users:
- name: bot
  user:
    token: test-token
current-context: {context}
"""
        )
        # a context pointing at a closed port, for the unreachable case
        text = path.read_text().replace(
            "clusters:\n", "clusters:\n- name: nowhere\n  cluster:\n    server: http://127.0.0.1:9\n", 1
        )
        path.write_text(text)
        return path
