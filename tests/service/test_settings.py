"""Settings: defaults, each broken setting named in one line, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.service.settings import SettingsError, default_git_url, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_defaults() -> None:
    s = load_settings({"GITHUB_WEBHOOK_SECRET": "s3cret"})
    assert s.api_url == "https://api.github.com"
    assert s.port == 8080
    assert s.database_url == "sqlite:///gitops-bot.db"
    assert s.worker == "inline"
    assert s.git_url == "https://github.com/{owner}/{repo}.git"
    assert not s.has_app_credentials
    assert "s3cret" not in repr(s)
    assert s.safe_summary()["webhook_secret"] == "set"


def test_app_credentials_from_env_or_file(pem: str, tmp_path: Path) -> None:
    s = load_settings({"GITHUB_WEBHOOK_SECRET": "x", "GITHUB_APP_ID": "123", "GITHUB_PRIVATE_KEY": pem})
    assert s.has_app_credentials and s.app_id == "123"
    one_line = pem.replace("\n", "\\n")
    assert load_settings({"GITHUB_WEBHOOK_SECRET": "x", "GITHUB_PRIVATE_KEY": one_line}).private_key == pem
    key_file = tmp_path / "key.pem"
    key_file.write_text(pem)
    s2 = load_settings({"GITHUB_WEBHOOK_SECRET": "x", "GITHUB_PRIVATE_KEY_PATH": str(key_file)})
    assert s2.private_key == pem
    assert "PRIVATE KEY" not in repr(s2) and "PRIVATE KEY" not in str(s2.safe_summary())


def test_ghes_and_simulator_urls() -> None:
    assert default_git_url("https://ghe.example.com/api/v3") == "https://ghe.example.com/{owner}/{repo}.git"
    assert default_git_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000/{owner}/{repo}.git"
    s = load_settings({"GITHUB_WEBHOOK_SECRET": "x", "GITHUB_API_URL": "https://ghe.example.com/api/v3/"})
    assert s.api_url == "https://ghe.example.com/api/v3"
    assert s.git_url == "https://ghe.example.com/{owner}/{repo}.git"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "GITHUB_WEBHOOK_SECRET"),
        ({"GITHUB_WEBHOOK_SECRET": "  "}, "GITHUB_WEBHOOK_SECRET"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL"),
        ({"DATABASE_URL": "mysql://u:pw@h/db"}, "DATABASE_URL"),
        ({"GITHUB_APP_ID": "my-app"}, "GITHUB_APP_ID"),
        ({"GITHUB_PRIVATE_KEY": "not a key"}, "GITHUB_PRIVATE_KEY"),
        (
            {"GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"},
            "GITHUB_PRIVATE_KEY",
        ),
        ({"GITHUB_PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "GITHUB_PRIVATE_KEY_PATH"),
        ({"GITOPS_BOT_WORKER": "sometimes"}, "GITOPS_BOT_WORKER"),
        ({"GIT_URL": "https://x/repo.git"}, "GIT_URL"),
        ({"GITOPS_BOT_BACKOFF_CAP": "-1"}, "GITOPS_BOT_BACKOFF_CAP"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_each_broken_setting_is_named_in_one_line(env: dict[str, str], named: str) -> None:
    full = {"GITHUB_WEBHOOK_SECRET": "x", **env} if named != "GITHUB_WEBHOOK_SECRET" else env
    with pytest.raises(SettingsError) as info:
        load_settings(full)
    message = str(info.value)
    assert message.startswith(named) and "\n" not in message
    assert "pw" not in message


def test_missing_app_credentials_are_named() -> None:
    s = load_settings({"GITHUB_WEBHOOK_SECRET": "x"})
    with pytest.raises(SettingsError, match=r"^GITHUB_APP_ID"):
        s.require_app_credentials()
    s = load_settings({"GITHUB_WEBHOOK_SECRET": "x", "GITHUB_APP_ID": "1"})
    with pytest.raises(SettingsError, match=r"^GITHUB_PRIVATE_KEY"):
        s.require_app_credentials()


def test_worker_and_deliveries_do_not_need_the_webhook_secret() -> None:
    assert load_settings({}, require_webhook_secret=False).webhook_secret == b""


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({}, "gitops-bot: error: GITHUB_WEBHOOK_SECRET is not set"),
        (
            {"GITHUB_WEBHOOK_SECRET": "x", "PORT": "abc"},
            "gitops-bot: error: PORT='abc' is not a whole number",
        ),
        ({"GITHUB_WEBHOOK_SECRET": "x"}, "gitops-bot: error: GITHUB_APP_ID is not set"),
        (
            {
                "GITHUB_WEBHOOK_SECRET": "x",
                "GITOPS_BOT_WORKER": "off",
                "DATABASE_URL": "sqlite:////nonexistent/d/x.db",
            },
            "gitops-bot: error: DATABASE_URL='sqlite:////nonexistent/d/x.db' cannot be opened",
        ),
    ],
)
def test_serve_stops_with_one_clear_line(env: dict[str, str], line: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(line), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_worker_stops_with_one_clear_line_without_app_credentials(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "worker", "--drain"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/w.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("gitops-bot: error: GITHUB_APP_ID is not set"), proc.stderr
    assert "Traceback" not in proc.stderr
