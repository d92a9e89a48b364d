"""Clouds and connection settings: which Entra ID authority and Resource Manager endpoint a connection talks to.

Rule: an endpoint is accepted only as a plain ``https://host[:port][/path]`` that no parser could read two ways
(:func:`~airflow_backup_provider.core.origins.parse_origin`); the client secret is never a field of anything here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_backup_provider.core.errors import (
    AzureBackupConfigError,
)
from airflow_backup_provider.core.origins import (
    parse_origin,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Clouds and connection settings
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudEnvironment:
    """Endpoints of one Azure cloud (values from azure-cli's ``cloud.py``)."""

    name: str
    resource_manager: str
    authority_host: str
    portal: str


CLOUDS: dict[str, CloudEnvironment] = {
    "AzureCloud": CloudEnvironment(
        "AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"
    ),
    "AzureUSGovernment": CloudEnvironment(
        "AzureUSGovernment",
        "https://management.usgovcloudapi.net",
        "https://login.microsoftonline.us",
        "https://portal.azure.us",
    ),
    "AzureChinaCloud": CloudEnvironment(
        "AzureChinaCloud",
        "https://management.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
        "https://portal.azure.cn",
    ),
}
# Spellings used by azure-identity / msrestazure for the same clouds.
_CLOUD_ALIASES = {
    "azurepubliccloud": "AzureCloud",
    "azuregovernment": "AzureUSGovernment",
    "azurechina": "AzureChinaCloud",
}
KNOWN_AUTHORITY_HOSTS = frozenset(urlsplit(c.authority_host).hostname for c in CLOUDS.values())


def resolve_cloud(name: str | None) -> CloudEnvironment:
    """Return the cloud for ``cloud_environment`` (default ``AzureCloud``); unknown names are a clear error."""
    if not name:
        return CLOUDS["AzureCloud"]
    for key, cloud in CLOUDS.items():
        if key.lower() == name.lower():
            return cloud
    alias = _CLOUD_ALIASES.get(name.lower())
    if alias:
        return CLOUDS[alias]
    raise AzureBackupConfigError("cloud_environment", name, f"unknown cloud; use one of {', '.join(CLOUDS)}")


def _normalize_base_url(fieldname: str, value: str) -> str:
    """A configured endpoint as ``https://host[:port][/path]``; anything a parser could read two ways is refused.

    The value is echoed in the error only when it carries no userinfo (which may hold a password).
    """
    text = value.strip()
    shown: Any = "<redacted: contains userinfo>" if "@" in text else text
    try:
        origin = parse_origin(text, allow_query=False)
    except ValueError as exc:
        raise AzureBackupConfigError(fieldname, shown, f"{exc} (TLS verification is never disabled)") from None
    path = urlsplit(text).path.rstrip("/")
    return f"{origin.url}{path}"


@dataclass(frozen=True)
class ConnectionSettings:
    """The non-secret part of an ``azure_backup`` connection, validated.

    The client secret is deliberately *not* a field, so that no ``repr`` of this object can leak it.
    """

    subscription_id: str
    tenant_id: str | None
    client_id: str | None
    uses_client_secret: bool
    resource_group_name: str | None
    vault_name: str | None
    cloud: CloudEnvironment
    resource_manager_endpoint: str
    authority_host: str
    managed_identity_client_id: str | None
    workload_identity_tenant_id: str | None

    @property
    def scope(self) -> str:
        """OAuth scope for ARM: the Resource Manager endpoint + ``/.default``."""
        return f"{self.resource_manager_endpoint}/.default"

    @property
    def authority_is_custom(self) -> bool:
        """True when the authority is not a public Entra ID host (emulator, sovereign override)."""
        return urlsplit(self.authority_host).hostname not in KNOWN_AUTHORITY_HOSTS

    @classmethod
    def from_connection(
        cls, *, conn_id: str, login: str | None, has_password: bool, extras: Mapping[str, Any]
    ) -> ConnectionSettings:
        """Validate connection fields. Errors name the connection and the field, never the secret."""

        def extra(name: str) -> str | None:
            # Accept the legacy ``extra__azure_backup__<name>`` form the Airflow 2 UI writes.
            value = extras.get(name, extras.get(f"extra__azure_backup__{name}"))
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            return str(value).strip()

        subscription_id = extra("subscription_id")
        if not subscription_id:
            raise AzureBackupConfigError(
                "subscription_id", None, f"connection {conn_id!r} needs the extra field 'subscription_id'"
            )
        tenant_id = extra("tenant_id")
        login = (login or "").strip() or None
        if has_password and not login:
            raise AzureBackupConfigError(
                "login", None, f"connection {conn_id!r} has a client secret but no client id (login)"
            )
        if has_password and not tenant_id:
            raise AzureBackupConfigError(
                "tenant_id", None, f"connection {conn_id!r} has a client secret, which needs the extra 'tenant_id'"
            )
        cloud = resolve_cloud(extra("cloud_environment"))
        arm = extra("resource_manager_endpoint")
        authority = extra("authority_host")
        return cls(
            subscription_id=subscription_id,
            tenant_id=tenant_id,
            client_id=login,
            uses_client_secret=has_password,
            resource_group_name=extra("resource_group_name"),
            vault_name=extra("vault_name"),
            cloud=cloud,
            resource_manager_endpoint=_normalize_base_url("resource_manager_endpoint", arm)
            if arm
            else cloud.resource_manager,
            authority_host=_normalize_base_url("authority_host", authority) if authority else cloud.authority_host,
            managed_identity_client_id=extra("managed_identity_client_id"),
            workload_identity_tenant_id=extra("workload_identity_tenant_id"),
        )
