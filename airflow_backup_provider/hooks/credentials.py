"""Sign-in: which azure-identity credential a connection uses, and the bearer-token cache of a hook.

Rule: one place decides the credential (client secret when the connection has one, else ``DefaultAzureCredential``
through the azure provider's helpers where they honour the connection) and when a token is fetched (a cached token
is reused until :data:`TOKEN_REFRESH_MARGIN` seconds before it expires; a forced refresh after a 401 passes a claims
challenge so MSAL skips its own cache). The sync and async hooks differ only in the credential classes they pass.

This module imports only the synchronous ``azure.identity``; the async classes are handed in by the async hook's
module (:mod:`airflow_backup_provider.hooks.backup_async`), so a reschedule poke never loads the async stack.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.identity import ClientSecretCredential, DefaultAzureCredential

from airflow_backup_provider.core import CLOUDS, ConnectionSettings

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken

# Re-use a token until this many seconds before it expires.
TOKEN_REFRESH_MARGIN = 120.0


@dataclass(frozen=True)
class CredentialTypes:
    """The azure-identity classes of one flavour (``azure.identity`` or ``azure.identity.aio``)."""

    client_secret: type
    default: type
    asynchronous: bool


SYNC_CREDENTIALS = CredentialTypes(ClientSecretCredential, DefaultAzureCredential, asynchronous=False)


def credential_kwargs(
    settings: ConnectionSettings, secret: str | None, request_timeout: tuple[float, float]
) -> tuple[str, dict[str, Any]]:
    """Which azure-identity credential to build, and with what."""
    connect, read = request_timeout
    if settings.uses_client_secret:
        kwargs: dict[str, Any] = {
            "tenant_id": settings.tenant_id,
            "client_id": settings.client_id,
            "client_secret": secret,
            "authority": settings.authority_host,
            # Token requests get the same timeouts as ARM requests.
            "connection_timeout": connect,
            "read_timeout": read,
        }
        if settings.authority_is_custom:
            # An emulator or private authority is unknown to Entra's instance discovery.
            kwargs["disable_instance_discovery"] = True
        return "ClientSecretCredential", kwargs
    return "DefaultAzureCredential", {
        "managed_identity_client_id": settings.managed_identity_client_id,
        "workload_identity_tenant_id": settings.workload_identity_tenant_id,
        "authority": settings.authority_host,
        "connection_timeout": connect,
        "read_timeout": read,
    }


def build_credential(kind: str, kwargs: Mapping[str, Any], types: CredentialTypes) -> Any:
    """Instantiate the credential :func:`credential_kwargs` chose, in the given flavour."""
    if kind == "ClientSecretCredential":
        return types.client_secret(**kwargs)
    return _default_credential(kwargs, types)


def _default_credential(kwargs: Mapping[str, Any], types: CredentialTypes) -> Any:
    """``DefaultAzureCredential``: via the azure provider's helpers where they do what the connection says.

    The helpers pass the identity ids only when *both* are set and know only the public cloud; a user-assigned
    managed identity alone, or another cloud's authority, is passed to azure-identity directly.
    """
    mi, wi, authority = kwargs["managed_identity_client_id"], kwargs["workload_identity_tenant_id"], kwargs["authority"]
    if authority == CLOUDS["AzureCloud"].authority_host and bool(mi) == bool(wi):
        from airflow.providers.microsoft.azure.utils import (
            get_async_default_azure_credential,
            get_sync_default_azure_credential,
        )

        helper = get_async_default_azure_credential if types.asynchronous else get_sync_default_azure_credential
        return helper(managed_identity_client_id=mi, workload_identity_tenant_id=wi)
    extra: dict[str, Any] = {
        "authority": authority,
        "connection_timeout": kwargs["connection_timeout"],
        "read_timeout": kwargs["read_timeout"],
    }
    if mi:
        extra["managed_identity_client_id"] = mi
    if wi:
        extra.update(workload_identity_tenant_id=wi, additionally_allowed_tenants=[wi])
    return types.default(**extra)


def force_refresh_claims() -> str:
    """A CAE-style "nbf" claims challenge: makes azure-identity/MSAL skip their token cache and fetch a new token."""
    return json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}})


def token_still_good(token: AccessToken | None) -> bool:
    """A cached token is reused until :data:`TOKEN_REFRESH_MARGIN` seconds before it expires."""
    return token is not None and token.expires_on - time.time() > TOKEN_REFRESH_MARGIN


def get_token_kwargs(credential: Any, refresh: bool) -> dict[str, Any]:
    """Keyword arguments of ``credential.get_token``: a claims challenge on a forced refresh, if it takes claims."""
    if not refresh:
        return {}
    try:
        params = inspect.signature(credential.get_token).parameters.values()
    except (TypeError, ValueError):  # not introspectable: assume the azure-identity signature
        return {"claims": force_refresh_claims()}
    if any(p.name == "claims" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return {"claims": force_refresh_claims()}
    return {}
