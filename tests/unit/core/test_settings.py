"""Connection settings and clouds (:mod:`airflow_backup_provider.core.settings`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from airflow_backup_provider.core import (
    CLOUDS,
    ConnectionSettings,
    resolve_cloud,
)
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
)
from tests.unit.conftest import (
    SECRET,
    SUB,
)

# --------------------------------------------------------------------------------------------------------------------
# 6. Connection settings and clouds
# --------------------------------------------------------------------------------------------------------------------


def settings(extras: Mapping[str, Any], *, login: str | None = None, has_password: bool = False) -> ConnectionSettings:
    return ConnectionSettings.from_connection(
        conn_id="azure_backup_default", login=login, has_password=has_password, extras=extras
    )


def test_minimal_connection_uses_public_cloud() -> None:
    s = settings({"subscription_id": SUB})
    assert s.subscription_id == SUB
    assert (s.tenant_id, s.client_id, s.uses_client_secret) == (None, None, False)
    assert s.cloud is CLOUDS["AzureCloud"]
    assert s.resource_manager_endpoint == "https://management.azure.com"
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.scope == "https://management.azure.com/.default"
    assert s.authority_is_custom is False


def test_service_principal_connection() -> None:
    s = settings(
        {
            "subscription_id": f" {SUB} ",
            "tenant_id": "tenant-1",
            "resource_group_name": "rg",
            "vault_name": "vault",
            "managed_identity_client_id": "",
            "workload_identity_tenant_id": "   ",
            "client_secret": SECRET,
        },
        login=" app-id ",
        has_password=True,
    )
    assert (s.subscription_id, s.tenant_id, s.client_id) == (SUB, "tenant-1", "app-id")
    assert s.uses_client_secret is True
    assert (s.resource_group_name, s.vault_name) == ("rg", "vault")
    assert (s.managed_identity_client_id, s.workload_identity_tenant_id) == (None, None)
    assert SECRET not in repr(s)


def test_legacy_extra_keys_are_accepted() -> None:
    s = settings(
        {
            "extra__azure_backup__subscription_id": SUB,
            "extra__azure_backup__tenant_id": "tenant-1",
            "extra__azure_backup__cloud_environment": "AzureChinaCloud",
            "extra__azure_backup__vault_name": "vault",
        },
        login="app",
        has_password=True,
    )
    assert (s.subscription_id, s.tenant_id, s.vault_name) == (SUB, "tenant-1", "vault")
    assert s.cloud.name == "AzureChinaCloud"


def test_new_extra_key_wins_over_legacy_key() -> None:
    s = settings({"subscription_id": "new", "extra__azure_backup__subscription_id": "old"})
    assert s.subscription_id == "new"


@pytest.mark.parametrize(
    ("extras", "login", "has_password", "match"),
    [
        pytest.param({}, None, False, r"subscription_id=None: connection 'azure_backup_default' needs", id="no-sub"),
        pytest.param({"subscription_id": "  "}, None, False, r"subscription_id=None", id="blank-sub"),
        pytest.param(
            {"subscription_id": SUB, "tenant_id": "t", "client_secret": SECRET},
            None,
            True,
            r"login=None: connection 'azure_backup_default' has a client secret but no client id",
            id="secret-without-login",
        ),
        pytest.param(
            {"subscription_id": SUB, "client_secret": SECRET},
            "app",
            True,
            r"tenant_id=None: connection 'azure_backup_default' has a client secret, which needs the extra 'tenant_id'",
            id="secret-without-tenant",
        ),
        pytest.param(
            {"subscription_id": SUB, "cloud_environment": "AzureGermanCloud"},
            None,
            False,
            r"cloud_environment='AzureGermanCloud': unknown cloud; "
            r"use one of AzureCloud, AzureUSGovernment, AzureChinaCloud",
            id="unknown-cloud",
        ),
        pytest.param(
            {"subscription_id": SUB, "resource_manager_endpoint": "http://localhost:8080"},
            None,
            False,
            r"resource_manager_endpoint='http://localhost:8080': must be an https:// URL",
            id="http-arm",
        ),
        pytest.param(
            {"subscription_id": SUB, "authority_host": "http://login.example.test"},
            None,
            False,
            r"authority_host='http://login.example.test': must be an https:// URL",
            id="http-authority",
        ),
        pytest.param(
            {"subscription_id": SUB, "resource_manager_endpoint": "management.azure.com"},
            None,
            False,
            r"resource_manager_endpoint='management.azure.com': must be an https:// URL",
            id="no-scheme",
        ),
    ],
)
def test_connection_errors_name_field_never_secret(
    extras: dict[str, Any], login: str | None, has_password: bool, match: str
) -> None:
    with pytest.raises(AzureBackupConfigError, match=match) as info:
        settings(extras, login=login, has_password=has_password)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.value)


@pytest.mark.parametrize(
    ("name", "arm", "authority", "portal"),
    [
        (None, "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"),
        ("AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"),
        ("azurecloud", "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"),
        (
            "AzurePublicCloud",
            "https://management.azure.com",
            "https://login.microsoftonline.com",
            "https://portal.azure.com",
        ),
        (
            "AzureUSGovernment",
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.us",
            "https://portal.azure.us",
        ),
        (
            "AzureGovernment",
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.us",
            "https://portal.azure.us",
        ),
        (
            "AzureChinaCloud",
            "https://management.chinacloudapi.cn",
            "https://login.chinacloudapi.cn",
            "https://portal.azure.cn",
        ),
        (
            "AZURECHINA",
            "https://management.chinacloudapi.cn",
            "https://login.chinacloudapi.cn",
            "https://portal.azure.cn",
        ),
    ],
)
def test_clouds(name: str | None, arm: str, authority: str, portal: str) -> None:
    extras = {"subscription_id": SUB} | ({"cloud_environment": name} if name else {})
    s = settings(extras)
    assert (s.resource_manager_endpoint, s.authority_host, s.cloud.portal) == (arm, authority, portal)
    assert s.scope == f"{arm}/.default"
    assert s.authority_is_custom is False
    assert resolve_cloud(name) is s.cloud


@pytest.mark.parametrize(
    ("extras", "arm", "authority", "custom"),
    [
        pytest.param(
            {"resource_manager_endpoint": "https://localhost:8443/", "authority_host": "https://localhost:9443//"},
            "https://localhost:8443",
            "https://localhost:9443",
            True,
            id="emulator",
        ),
        pytest.param(
            {"resource_manager_endpoint": " https://arm.example.test/prefix/ "},
            "https://arm.example.test/prefix",
            "https://login.microsoftonline.com",
            False,
            id="path-kept-trailing-slash-dropped",
        ),
        pytest.param(
            {"cloud_environment": "AzureUSGovernment", "authority_host": "https://login.microsoftonline.com/"},
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.com",
            False,
            id="known-authority-override",
        ),
    ],
)
def test_endpoint_overrides(extras: dict[str, str], arm: str, authority: str, custom: bool) -> None:
    s = settings({"subscription_id": SUB, **extras})
    assert s.resource_manager_endpoint == arm
    assert s.authority_host == authority
    assert s.scope == f"{arm}/.default"
    assert s.authority_is_custom is custom
