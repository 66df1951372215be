"""Service settings from environment variables (and AWS Secrets Manager for the key and secret).

Every problem is reported as one :class:`SettingsError` whose message names the variable and
says what to do; the CLI prints that one line and exits 2. Secret values never appear in a
message, a ``repr`` or a log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

WorkerMode = Literal["inline", "off"]

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_DATABASE_URL = "sqlite:///gitops-bot.db"
MAX_BODY_BYTES = 25 * 1024 * 1024


class SettingsError(Exception):
    """A setting is missing or broken; ``str(exc)`` is one line that names it."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    webhook_secret: bytes = field(repr=False)
    app_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    git_url: str = "https://github.com/{owner}/{repo}.git"
    host: str = "0.0.0.0"
    port: int = 8080
    health_port: int = 8081
    database_url: str = DEFAULT_DATABASE_URL
    worker: WorkerMode = "inline"
    data_dir: Path = Path(".gitops-bot")
    worker_concurrency: int = 4
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    lease_seconds: float = 300.0
    poll_interval: float = 1.0
    bot_login: str = "gitops-bot[bot]"
    handlers: tuple[str, ...] = ()
    retention_days: float = 7.0
    reconcile_interval: float = 300.0
    redeliver_interval: float = 300.0
    git_mirror: bool = True
    kubeconfig: str | None = None
    reconcile_repositories: tuple[str, ...] = ()
    log_level: str = "INFO"
    max_body_bytes: int = MAX_BODY_BYTES
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 512
    metrics_token: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    # the fleet dashboard (docs/dashboard.md)
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    session_key: bytes = field(default=b"", repr=False)
    fleet_token: str | None = field(default=None, repr=False)
    web_url: str = "https://github.com"

    @property
    def has_app_credentials(self) -> bool:
        """Return True when the App id and private key are both known."""
        return bool(self.app_id and self.private_key)

    def require_app_credentials(self) -> None:
        """Raise :class:`SettingsError` unless the App id and private key are set."""
        if not self.app_id:
            raise SettingsError("GITHUB_APP_ID is not set: give the numeric id of the GitHub App")
        if not self.private_key:
            raise SettingsError(
                "GITHUB_PRIVATE_KEY is not set: give the App's PEM private key in GITHUB_PRIVATE_KEY, "
                "a file in GITHUB_PRIVATE_KEY_PATH, or a secret id in AWS_SECRETS_MANAGER_PRIVATE_KEY_ID"
            )

    def safe_summary(self) -> dict[str, Any]:
        """Return the settings for logging, with secrets reduced to 'set'/'unset'."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in {
                "webhook_secret",
                "private_key",
                "metrics_token",
                "oauth_client_secret",
                "session_key",
                "fleet_token",
            }:
                out[f.name] = "set" if value else "unset"
            else:
                out[f.name] = str(value) if isinstance(value, Path) else value
        return out


def default_web_url(api_url: str) -> str:
    """Derive GitHub's web address (OAuth pages) from the API URL, as :func:`default_git_url` does."""
    return default_git_url(api_url).split("/{owner}", 1)[0]


def default_git_url(api_url: str) -> str:
    """Derive the clone URL template from the API URL.

    ``https://api.github.com`` gives ``https://github.com/{owner}/{repo}.git``; a GitHub
    Enterprise Server ``https://ghe.example.com/api/v3`` gives
    ``https://ghe.example.com/{owner}/{repo}.git``; any other URL (the local simulator) gives
    ``<scheme>://<host:port>/{owner}/{repo}.git``.
    """
    parts = urlsplit(api_url)
    if parts.netloc == "api.github.com":
        return "https://github.com/{owner}/{repo}.git"
    return f"{parts.scheme}://{parts.netloc}/{{owner}}/{{repo}}.git"


N = TypeVar("N", int, float)


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"on", "true", "1", "yes"}:
        return True
    if raw in {"off", "false", "0", "no"}:
        return False
    raise SettingsError(f"{name}={raw!r} must be on or off")


def _number(env: Mapping[str, str], name: str, default: N, *, low: N, high: N | None = None) -> N:
    """Read a number of the type of ``default`` in ``[low, high]``; empty means the default."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a {'whole number' if kind is int else 'number'}"
        ) from None
    if value != value or value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"a number >= {low}"
        raise SettingsError(f"{name}={raw} is out of range: use {bounds}")
    return value


def _repo_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Read a comma-separated list of ``owner/repo`` names."""
    names = tuple(n.strip() for n in env.get(name, "").split(",") if n.strip())
    for repo in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
            raise SettingsError(f"{name} holds {repo!r}, which is not an owner/repo name")
    return names


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError(f"{name}={raw!r} is not an http(s) URL")
    return raw.rstrip("/")


def _database_url(env: Mapping[str, str]) -> str:
    raw = env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    if raw.startswith("sqlite:///") and len(raw) > len("sqlite:///"):
        return raw
    if raw.startswith(("postgresql://", "postgres://")):
        return raw
    shown = re.sub(r"//[^@/]*@", "//***@", raw)
    raise SettingsError(
        f"DATABASE_URL={shown!r} is not supported: use sqlite:///path/to.db or postgresql://user@host/db"
    )


def _pem(text: str, source: str) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    text = text.strip()
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise SettingsError(
            f"{source} does not hold a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')"
        )
    try:
        load_pem_private_key(text.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise SettingsError(
            f"{source} holds a PEM block that is not a usable private key: download a new key for the App"
        ) from None
    return text + "\n"


def fetch_aws_secret(secret_id: str, *, env: Mapping[str, str], variable: str) -> str:
    """Return the string value of ``secret_id`` from AWS Secrets Manager.

    Uses ``AWS_ENDPOINT_URL`` / ``AWS_SECRETS_MANAGER_ENDPOINT_URL`` and ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` from ``env`` when given. Errors name ``variable`` and the secret id,
    never the value.
    """
    import boto3
    import botocore.exceptions

    endpoint = env.get("AWS_SECRETS_MANAGER_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=region)
        answer = client.get_secret_value(SecretId=secret_id)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SettingsError(f"{variable}={secret_id!r}: AWS Secrets Manager answered {code}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise SettingsError(
            f"{variable}={secret_id!r}: AWS Secrets Manager unreachable ({type(exc).__name__})"
        ) from None
    value = answer.get("SecretString")
    if value is None:
        binary = answer.get("SecretBinary")
        if binary is None:
            raise SettingsError(f"{variable}={secret_id!r}: the secret has no value")
        value = bytes(binary).decode("utf-8", errors="replace")
    return str(value)


def load_settings(env: Mapping[str, str] | None = None, *, require_webhook_secret: bool = True) -> Settings:
    """Read :class:`Settings` from ``env`` (default ``os.environ``); raise SettingsError on any problem.

    The webhook secret is required (the service fails closed) unless ``require_webhook_secret``
    is False (commands that never receive webhooks: worker, deliveries, replay). The App id
    and key are optional here; commands that talk to GitHub call :meth:`Settings.require_app_credentials`.
    """
    env = dict(os.environ if env is None else env)

    secret_id = env.get("AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID", "").strip()
    secret = env.get("GITHUB_WEBHOOK_SECRET", "")
    if secret_id:
        secret = fetch_aws_secret(secret_id, env=env, variable="AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID")
    if not secret.strip() and require_webhook_secret:
        raise SettingsError(
            "GITHUB_WEBHOOK_SECRET is not set: the service refuses unsigned webhooks; set it to the App's "
            "webhook secret (or AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID)"
        )

    key_id = env.get("AWS_SECRETS_MANAGER_PRIVATE_KEY_ID", "").strip()
    key_path = env.get("GITHUB_PRIVATE_KEY_PATH", "").strip()
    private_key: str | None = None
    if key_id:
        private_key = _pem(
            fetch_aws_secret(key_id, env=env, variable="AWS_SECRETS_MANAGER_PRIVATE_KEY_ID"),
            f"AWS_SECRETS_MANAGER_PRIVATE_KEY_ID={key_id!r}",
        )
    elif env.get("GITHUB_PRIVATE_KEY", "").strip():
        private_key = _pem(env["GITHUB_PRIVATE_KEY"].replace("\\n", "\n"), "GITHUB_PRIVATE_KEY")
    elif key_path:
        try:
            text = Path(key_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(
                f"GITHUB_PRIVATE_KEY_PATH={key_path!r} cannot be read: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise SettingsError(f"GITHUB_PRIVATE_KEY_PATH={key_path!r} is not a text PEM file") from None
        private_key = _pem(text, f"GITHUB_PRIVATE_KEY_PATH={key_path!r}")

    app_id = env.get("GITHUB_APP_ID", "").strip() or None
    if app_id is not None and not app_id.isdigit():
        raise SettingsError(f"GITHUB_APP_ID={app_id!r} is not a number: use the App's numeric id")

    api_url = _url(env, "GITHUB_API_URL", DEFAULT_API_URL)
    git_url = env.get("GIT_URL", "").strip() or default_git_url(api_url)
    if "{owner}" not in git_url or "{repo}" not in git_url:
        raise SettingsError(f"GIT_URL={git_url!r} must contain {{owner}} and {{repo}}")

    worker = env.get("GITOPS_BOT_WORKER", "inline").strip().lower() or "inline"
    if worker not in ("inline", "off"):
        raise SettingsError(f"GITOPS_BOT_WORKER={worker!r} is not valid: use inline or off")

    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"LOG_LEVEL={log_level!r} is not valid: use DEBUG, INFO, WARNING or ERROR")

    metrics_port = env.get("GITOPS_BOT_METRICS_PORT", "").strip()
    return Settings(
        webhook_secret=secret.encode("utf-8"),
        app_id=app_id,
        private_key=private_key,
        api_url=api_url,
        git_url=git_url,
        host=env.get("HOST", "0.0.0.0").strip() or "0.0.0.0",
        port=_number(env, "PORT", 8080, low=0, high=65535),
        health_port=_number(env, "GITOPS_BOT_WORKER_HEALTH_PORT", 8081, low=0, high=65535),
        database_url=_database_url(env),
        worker="inline" if worker == "inline" else "off",
        data_dir=Path(env.get("GITOPS_BOT_DATA_DIR", "").strip() or ".gitops-bot"),
        worker_concurrency=_number(env, "GITOPS_BOT_WORKER_CONCURRENCY", 4, low=1, high=256),
        max_attempts=_number(env, "GITOPS_BOT_MAX_ATTEMPTS", 8, low=1, high=100),
        backoff_base=_number(env, "GITOPS_BOT_BACKOFF_BASE", 2.0, low=0.0),
        backoff_cap=_number(env, "GITOPS_BOT_BACKOFF_CAP", 600.0, low=0.0),
        lease_seconds=_number(env, "GITOPS_BOT_LEASE_SECONDS", 300.0, low=1.0),
        poll_interval=_number(env, "GITOPS_BOT_POLL_INTERVAL", 1.0, low=0.01),
        bot_login=env.get("GITOPS_BOT_LOGIN", "").strip() or "gitops-bot[bot]",
        retention_days=_number(env, "GITOPS_BOT_RETENTION_DAYS", 7.0, low=3.0),
        reconcile_interval=_number(env, "GITOPS_BOT_RECONCILE_INTERVAL", 300.0, low=0.0),
        redeliver_interval=_number(env, "GITOPS_BOT_REDELIVER_INTERVAL", 300.0, low=0.0),
        kubeconfig=env.get("KUBECONFIG") or None,
        git_mirror=_on_off(env, "GITOPS_BOT_GIT_MIRROR", True),
        reconcile_repositories=_repo_list(env, "GITOPS_BOT_RECONCILE_REPOS"),
        handlers=tuple(n.strip() for n in env.get("GITOPS_BOT_HANDLERS", "").split(",") if n.strip()),
        log_level=log_level,
        header_timeout=_number(env, "GITOPS_BOT_HEADER_TIMEOUT", 10.0, low=0.1, high=3600.0),
        body_timeout=_number(env, "GITOPS_BOT_BODY_TIMEOUT", 30.0, low=0.1, high=3600.0),
        max_connections=_number(env, "GITOPS_BOT_MAX_CONNECTIONS", 512, low=1, high=100_000),
        metrics_token=env.get("GITOPS_BOT_METRICS_TOKEN", "").strip() or None,
        metrics_port=_number(env, "GITOPS_BOT_METRICS_PORT", 0, low=0, high=65535) if metrics_port else None,
        oauth_client_id=env.get("GITHUB_CLIENT_ID", "").strip() or None,
        oauth_client_secret=env.get("GITHUB_CLIENT_SECRET", "").strip() or None,
        session_key=(env.get("GITOPS_BOT_SESSION_KEY", "").strip() or secret).encode("utf-8"),
        fleet_token=env.get("GITOPS_BOT_FLEET_TOKEN", "").strip() or None,
        web_url=_url(env, "GITHUB_WEB_URL", default_web_url(api_url)),
    )
