"""The private key and webhook secret read from AWS Secrets Manager (moto in server mode)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.server import ThreadedMotoServer

from bot.service.settings import SettingsError, load_settings


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_REGION": "eu-west-1"}


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _create(endpoint: str, name: str, value: str) -> None:
    client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="eu-west-1")
    client.create_secret(Name=name, SecretString=value)


def test_key_and_secret_come_from_secrets_manager(aws_env: dict[str, str], pem: str) -> None:
    _create(aws_env["AWS_ENDPOINT_URL"], "gitops-bot/key", pem)
    _create(aws_env["AWS_ENDPOINT_URL"], "gitops-bot/hook", "from-aws")
    s = load_settings(
        {
            **aws_env,
            "GITHUB_APP_ID": "42",
            "AWS_SECRETS_MANAGER_PRIVATE_KEY_ID": "gitops-bot/key",
            "AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID": "gitops-bot/hook",
        }
    )
    assert s.webhook_secret == b"from-aws"
    assert s.private_key == pem.strip() + "\n"
    assert s.has_app_credentials
    assert "from-aws" not in repr(s) and "PRIVATE" not in repr(s)


def test_a_missing_secret_is_named_without_its_value(aws_env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**aws_env, "AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID": "no/such/secret"})
    assert str(info.value) == (
        "AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID='no/such/secret': "
        "AWS Secrets Manager answered ResourceNotFoundException"
    )


def test_a_secret_that_is_not_a_pem_key_is_refused(aws_env: dict[str, str]) -> None:
    _create(aws_env["AWS_ENDPOINT_URL"], "gitops-bot/not-a-key", "hunter2")
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                **aws_env,
                "GITHUB_WEBHOOK_SECRET": "x",
                "AWS_SECRETS_MANAGER_PRIVATE_KEY_ID": "gitops-bot/not-a-key",
            }
        )
    assert str(info.value).startswith(
        "AWS_SECRETS_MANAGER_PRIVATE_KEY_ID='gitops-bot/not-a-key' does not hold a PEM"
    )
    assert "hunter2" not in str(info.value)


def test_an_unreachable_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(
        SettingsError, match=r"^AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID='s': AWS Secrets Manager unreachable"
    ):
        load_settings(
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SECRETS_MANAGER_WEBHOOK_SECRET_ID": "s"}
        )
