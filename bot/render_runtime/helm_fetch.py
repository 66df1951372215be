"""Fetch charts from the Helm repositories the deployment allows (``render.helm.repositories``).

Only this module opens connections for Helm, in the bot's process (the engine's sandbox has no
network): the repository's ``index.yaml`` and the chart archive it names, each bounded in size
and time, the archive checked against the index's ``digest`` and kept in a cache folder under
its SHA-256 (``<cache>/<sha256>.tgz``), so a chart version is downloaded once per cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

MAX_INDEX = 32 * 1024**2
MAX_ARCHIVE = 32 * 1024**2
TIMEOUT = 30.0
INDEX_TTL = 300.0
_CACHE_DIR: Path | None = None
_INDEXES: dict[str, tuple[float, dict[str, Any]]] = {}
_LOCK = threading.Lock()


class HelmFetchFailed(RuntimeError):
    """The chart could not be fetched (the message says why; no URL credentials in it)."""


def use_cache_dir(folder: Path | None) -> None:
    """Keep fetched charts in ``folder`` (default: a folder under the system's temporary folder)."""
    global _CACHE_DIR
    _CACHE_DIR = folder


def cache_dir() -> Path:
    folder = _CACHE_DIR or Path(tempfile.gettempdir()) / "gitops-bot-helm-charts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _get(url: str, limit: int) -> bytes:
    return _fetch(url, limit)[0]


def _fetch(url: str, limit: int, accept: str = "") -> tuple[bytes, dict[str, str]]:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise HelmFetchFailed(f"{url}: only http and https are fetched")
    headers = {"User-Agent": "gitops-bot", **({"Accept": accept} if accept else {})}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (checked)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (checked)
            data = response.read(limit + 1)
            got = {k.lower(): v for k, v in response.headers.items()}
    except OSError as exc:
        raise HelmFetchFailed(f"{url}: {exc}") from exc
    if len(data) > limit:
        raise HelmFetchFailed(f"{url}: larger than {limit // 1024**2} MiB")
    return bytes(data), got


def _index(repo_url: str) -> dict[str, Any]:
    now = time.monotonic()
    with _LOCK:
        hit = _INDEXES.get(repo_url)
    if hit is not None and now - hit[0] < INDEX_TTL:
        return hit[1]
    try:
        index = yaml.safe_load(_get(f"{repo_url}/index.yaml", MAX_INDEX))
    except yaml.YAMLError as exc:
        raise HelmFetchFailed(f"{repo_url}/index.yaml is not YAML") from exc
    if not isinstance(index, dict) or not isinstance(index.get("entries"), dict):
        raise HelmFetchFailed(f"{repo_url}/index.yaml has no entries")
    with _LOCK:
        _INDEXES[repo_url] = (now, index)
    return index


def _version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    core, _, pre = version.lstrip("v").partition("-")
    numbers = tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.+]", core)[:3])
    return numbers, 0 if pre else 1, pre


def pick_version(entries: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The index entry of ``wanted``: an exact version, or the newest stable one for ``""``/``*``.

    Semver ranges (``>=1.2``, ``~1.2``) are not resolved: None (a notice says so).
    """
    valid = [e for e in entries if isinstance(e, dict) and e.get("version")]
    if wanted in ("", "*"):
        stable = [e for e in valid if "-" not in str(e["version"])]
        return max(stable, key=lambda e: _version_key(str(e["version"])), default=None)
    return next((e for e in valid if str(e["version"]).lstrip("v") == wanted.lstrip("v")), None)


def fetch_chart(repo_url: str, chart: str, version: str) -> tuple[Path, str]:
    """Return the cached archive of ``chart`` at ``version`` from ``repo_url`` and its SHA-256."""
    if repo_url.startswith("oci://"):
        return fetch_oci_chart(repo_url, chart, version)
    index = _index(repo_url.rstrip("/"))
    entry = pick_version(list(index["entries"].get(chart) or []), version)
    if entry is None:
        raise HelmFetchFailed(f"{repo_url} has no chart `{chart}` at version `{version or 'latest'}`")
    urls = entry.get("urls") or []
    if not urls:
        raise HelmFetchFailed(f"{repo_url}: chart `{chart}` {entry['version']} has no URL")
    url = urllib.parse.urljoin(repo_url.rstrip("/") + "/", str(urls[0]))
    base, target = urllib.parse.urlsplit(repo_url), urllib.parse.urlsplit(url)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        raise HelmFetchFailed(f"{repo_url}: chart `{chart}` is served from another host, not fetched")
    expected = str(entry.get("digest") or "").lower()
    if expected:
        cached = cache_dir() / f"{expected}.tgz"
        if cached.is_file():
            return cached, expected
    data = _get(url, MAX_ARCHIVE)
    digest = hashlib.sha256(data).hexdigest()
    if expected and digest != expected:
        raise HelmFetchFailed(f"{url}: digest {digest} is not the index's {expected}")
    return _store(data, digest), digest


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MAX_MANIFEST = 4 * 1024**2
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_oci_chart(registry_url: str, chart: str, version: str) -> tuple[Path, str]:
    """Pull ``chart`` at tag ``version`` from an OCI registry (``oci://host/path``), as Helm does.

    The distribution API: ``GET /v2/<path>/<chart>/manifests/<tag>`` (an OCI image manifest whose
    config is Helm's and whose one chart layer is a tar+gzip), then ``GET .../blobs/<digest>`` of
    that layer, checked against its digest and cached under it. Anonymous pulls only; loopback
    registries are spoken to over plain HTTP (as ``helm --plain-http``), others over HTTPS.
    """
    host, _, path = registry_url.removeprefix("oci://").rstrip("/").partition("/")
    name = f"{path}/{chart}".strip("/") if chart else path
    if not version or not _TAG.fullmatch(version):
        raise HelmFetchFailed(f"{registry_url}: chart `{chart}` needs an exact version (an OCI tag)")
    scheme = "http" if host.split(":")[0] in _LOOPBACK or host.startswith("[::1]") else "https"
    base = f"{scheme}://{host}/v2/{name}"
    raw, headers = _fetch(f"{base}/manifests/{version}", MAX_MANIFEST, accept=OCI_MANIFEST)
    said = headers.get("docker-content-digest", "")
    if said and said != f"sha256:{_sha256(raw)}":
        raise HelmFetchFailed(f"{registry_url}: the manifest of `{chart}:{version}` is not {said}")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise HelmFetchFailed(f"{registry_url}: the manifest of `{chart}:{version}` is not JSON") from exc
    config = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(config, dict) or config.get("mediaType") != HELM_CONFIG:
        raise HelmFetchFailed(f"{registry_url}: `{chart}:{version}` is not a Helm chart (config media type)")
    layers = [
        layer
        for layer in manifest.get("layers") or []
        if isinstance(layer, dict) and layer.get("mediaType") == HELM_CHART_LAYER
    ]
    if len(layers) != 1 or not _DIGEST.fullmatch(str(layers[0].get("digest") or "")):
        raise HelmFetchFailed(f"{registry_url}: `{chart}:{version}` has no single Helm chart layer")
    expected = str(layers[0]["digest"]).removeprefix("sha256:")
    cached = cache_dir() / f"{expected}.tgz"
    if cached.is_file():
        return cached, expected
    data = _get(f"{base}/blobs/sha256:{expected}", MAX_ARCHIVE)
    digest = _sha256(data)
    if digest != expected:
        raise HelmFetchFailed(f"{registry_url}: chart layer digest {digest} is not the manifest's {expected}")
    return _store(data, digest), digest


def _store(data: bytes, digest: str) -> Path:
    path = cache_dir() / f"{digest}.tgz"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(dir=cache_dir(), suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return path


def forget() -> None:
    """Forget the repository indexes read (not the cached archives)."""
    with _LOCK:
        _INDEXES.clear()
