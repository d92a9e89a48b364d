"""Which azure-identity credential a connection leads to (no sign-in: constructing credentials does no I/O)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

from airflow_backup_provider.hooks.backup import AzureBackupAsyncHook, AzureBackupHook

EXTRA = {"subscription_id": "sub-1", "resource_group_name": "rg", "vault_name": "v"}


def use_connection(monkeypatch: pytest.MonkeyPatch, **conn: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_BACKUP_DEFAULT", json.dumps({"conn_type": "azure_backup", **conn}))


def test_client_secret_on_the_public_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, login="app", password="s3cret", extra={**EXTRA, "tenant_id": "t"})
    hook = AzureBackupHook(request_timeout=(4, 9))
    kind, kwargs = hook._credential_kwargs()
    assert kind == "ClientSecretCredential"
    assert kwargs["authority"] == "https://login.microsoftonline.com"
    assert "disable_instance_discovery" not in kwargs  # Entra's own discovery stays on for real clouds
    assert (kwargs["connection_timeout"], kwargs["read_timeout"]) == (4, 9)
    assert isinstance(hook.get_credential(), ClientSecretCredential)
    assert hook.settings.scope == "https://management.azure.com/.default"


@pytest.mark.parametrize(
    ("cloud", "arm", "authority"),
    [
        ("AzureUSGovernment", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us"),
        ("AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    ],
)
def test_sovereign_clouds(monkeypatch: pytest.MonkeyPatch, cloud: str, arm: str, authority: str) -> None:
    extra = {**EXTRA, "tenant_id": "t", "cloud_environment": cloud}
    use_connection(monkeypatch, login="app", password="s3cret", extra=extra)
    hook = AzureBackupHook()
    assert hook.settings.scope == f"{arm}/.default"
    assert hook.api.base_url == arm
    assert hook._credential_kwargs()[1]["authority"] == authority


def test_managed_identity_alone_is_honoured(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    use_connection(monkeypatch, extra={**EXTRA, "managed_identity_client_id": "mi-123"})
    credential = AzureBackupHook().get_credential()
    assert isinstance(credential, DefaultAzureCredential)
    assert "will use IMDS with client_id: mi-123" in caplog.text


def test_no_identity_settings_use_the_azure_provider_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, extra=EXTRA)
    assert isinstance(AzureBackupHook().get_credential(), DefaultAzureCredential)


def test_async_hook_builds_async_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(
        monkeypatch, extra={**EXTRA, "managed_identity_client_id": "mi-1", "workload_identity_tenant_id": "wt"}
    )
    hook = AzureBackupAsyncHook()
    assert isinstance(hook.get_credential(), AsyncDefaultAzureCredential)
