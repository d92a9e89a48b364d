"""What the sync and async hooks share: connection settings, vault/item references, sign-in, the flows they drive.

Rule: nothing here performs I/O on a transport. :class:`AzureBackupHookBase` holds the constructor arguments,
the validated settings, the :class:`~airflow_backup_provider.core.BackupApi`, the credential and token-cache rule,
the bearer-token origin check and the flows of each API call; :class:`~.backup.AzureBackupHook` drives them with
``requests`` and :class:`~.backup_async.AzureBackupAsyncHook` with ``aiohttp`` (so the async hook has no blocking
API method to call by mistake on the triggerer's event loop).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_backup_provider import core as protocol
from airflow_backup_provider.core import (
    DEFAULT_API_VERSION,
    ApiResponse,
    BackupApi,
    BackupJob,
    ConnectionSettings,
    Flow,
    ItemRef,
    RetryPolicy,
    TriggeredOperation,
    VaultRef,
    WaitSettings,
)
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupForeignHostError
from airflow_backup_provider.hooks import credentials

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken

# azure-identity's HTTP pipeline logs every token request with its headers at INFO; task logs need none of that
# (the WASB hook of the azure provider does the same).
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
# azure-identity logs "ClientSecretCredential.get_token succeeded" at INFO on every sign-in, i.e. on every reschedule
# poke; the hook logs its own line once instead (see _token_request). Warnings and errors still come through.
for _name in ("azure.identity._internal.get_token_mixin", "azure.identity.aio._internal.get_token_mixin"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def _user_agent(transport: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("airflow-backup-provider")
    except PackageNotFoundError:  # running from a source tree
        own = "dev"
    return f"airflow-backup-provider/{own} {transport}"


class AzureBackupHookBase(BaseHook):
    """The transport-free part of both Azure Backup hooks (see the module docstring); not a hook of its own."""

    conn_name_attr = "azure_backup_conn_id"
    default_conn_name = "azure_backup_default"

    def __init__(
        self,
        azure_backup_conn_id: str = default_conn_name,
        *,
        api_version: str = DEFAULT_API_VERSION,
        request_timeout: float | tuple[float, float] = (10.0, 60.0),
        retry_policy: RetryPolicy | None = None,
        operation_poll_interval: float = 5.0,
        operation_timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.azure_backup_conn_id = azure_backup_conn_id
        self.api_version = protocol.require_name("api_version", api_version)
        if isinstance(request_timeout, (int, float)):
            request_timeout = (float(request_timeout), float(request_timeout))
        if any(t <= 0 for t in request_timeout):
            raise AzureBackupConfigError("request_timeout", request_timeout, "must be positive seconds")
        self.request_timeout: tuple[float, float] = request_timeout
        self.retry_policy = (retry_policy or RetryPolicy()).validate()
        if operation_poll_interval < 0:
            raise AzureBackupConfigError("operation_poll_interval", operation_poll_interval, "must be >= 0")
        if operation_timeout <= 0:
            raise AzureBackupConfigError("operation_timeout", operation_timeout, "must be > 0")
        self.wait_settings = WaitSettings(poll_interval=operation_poll_interval, timeout=operation_timeout)
        self._settings: ConnectionSettings | None = None
        self._secret: str | None = None
        self._credential: Any = None
        self._token: AccessToken | None = None
        self.token_requests = 0  # how many times a token was fetched from the credential (observability, tests)

    # -- connection -------------------------------------------------------------------------------------------------
    def _load_settings(self, conn: Any, extras: Any) -> ConnectionSettings:
        if not isinstance(extras, Mapping):
            raise AzureBackupConfigError("extra", "(not a JSON object)", "connection extras must be a JSON object")
        self._secret = conn.password or None
        self._settings = ConnectionSettings.from_connection(
            conn_id=self.azure_backup_conn_id, login=conn.login, has_password=bool(conn.password), extras=extras
        )
        return self._settings

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (loaded on first use)."""
        if self._settings is None:
            conn = self.get_connection(self.azure_backup_conn_id)
            self._load_settings(conn, conn.extra_dejson)
        assert self._settings is not None
        return self._settings

    @cached_property
    def api(self) -> BackupApi:
        return BackupApi(self.settings.resource_manager_endpoint, self.api_version, self.retry_policy)

    def vault_ref(self, resource_group_name: str | None = None, vault_name: str | None = None) -> VaultRef:
        """Resolve the vault of a call: the arguments, else the connection's defaults."""
        settings = self.settings
        rg = resource_group_name or settings.resource_group_name
        vault = vault_name or settings.vault_name
        if not rg:
            raise AzureBackupConfigError(
                "resource_group_name", rg, f"not given and connection {self.azure_backup_conn_id!r} has no default"
            )
        if not vault:
            raise AzureBackupConfigError(
                "vault_name", vault, f"not given and connection {self.azure_backup_conn_id!r} has no default"
            )
        return VaultRef(
            settings.subscription_id,
            protocol.require_name("resource_group_name", rg),
            protocol.require_name("vault_name", vault),
        )

    def item_ref(
        self,
        container_name: str,
        protected_item_name: str,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> ItemRef:
        return ItemRef(
            self.vault_ref(resource_group_name, vault_name),
            protocol.require_name("container_name", container_name),
            protocol.require_name("protected_item_name", protected_item_name),
        )

    def _credential_kwargs(self) -> tuple[str, dict[str, Any]]:
        """Which azure-identity credential to build, and with what (see :mod:`.credentials`)."""
        return credentials.credential_kwargs(self.settings, self._secret, self.request_timeout)

    # The azure-identity flavour this hook uses; the async hook passes the ``azure.identity.aio`` classes.
    _credential_types: credentials.CredentialTypes = credentials.SYNC_CREDENTIALS

    def get_credential(self) -> Any:
        """Return the (cached) azure-identity credential (``azure.identity`` or ``azure.identity.aio``)."""
        if self._credential is None:
            self._credential = credentials.build_credential(*self._credential_kwargs(), self._credential_types)
        return self._credential

    def _token_request(self, refresh: bool) -> tuple[Any, dict[str, Any]] | None:
        """The credential and ``get_token`` arguments when a token must be fetched; None if the cached one will do."""
        if not refresh and credentials.token_still_good(self._token):
            return None
        self.token_requests += 1
        credential = self.get_credential()
        self.log.log(
            logging.INFO if self.token_requests == 1 else logging.DEBUG,
            "Signing in to Entra ID with %s for %s%s.",
            type(credential).__name__,
            self.settings.scope,
            " (token refresh)" if refresh else "",
        )
        return credential, credentials.get_token_kwargs(credential, refresh)

    def _cached_token(self) -> str:
        assert self._token is not None
        return self._token.token

    def _bearer_headers(
        self, request: protocol.ApiRequest, connect_to: protocol.Origin | None, token: str
    ) -> dict[str, str]:
        """Headers with the bearer token, only for a request whose transport connects to the ARM origin.

        ``connect_to`` is the origin as the transport itself parsed the URL (None: it did not parse as a plain
        https URL); BackupApi.follow_url already refused other URLs, this is the check at the socket's door.
        """
        arm = self.api.origin
        if connect_to != arm:
            raise AzureBackupForeignHostError(
                source=f"{request.method} request", url_host=protocol.describe_host(request.url), arm_host=arm.netloc
            )
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "x-ms-client-request-id": str(uuid.uuid4()),
        }

    def _log_response(self, request: protocol.ApiRequest, response: ApiResponse) -> ApiResponse:
        self.log.debug(
            "%s %s -> %s (x-ms-request-id=%s)",
            request.method,
            protocol.redact_url(request.url),
            response.status,
            response.request_id,
        )
        return response

    # -- the flow of each API call, driven by both hooks -----------------------------------------------------------
    def _trigger_backup_flow(  # noqa: PLR0917 (private; both hooks pass positionally)
        self,
        container_name: str,
        protected_item_name: str,
        backup_request: Mapping[str, Any] | None,
        resource_group_name: str | None,
        vault_name: str | None,
        on_accepted: Callable[[protocol.OperationHandle], None] | None = None,
    ) -> Flow[TriggeredOperation]:
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        body = dict(backup_request) if backup_request else protocol.build_backup_request(container_name=container_name)
        if "properties" not in body:
            body = {"properties": body}
        return protocol.trigger_and_follow(
            self.api, self.api.trigger_backup(item, body), item, self.wait_settings, on_accepted
        )

    def _get_job_flow(self, job_id: str, resource_group_name: str | None, vault_name: str | None) -> Flow[BackupJob]:
        return protocol.get_job(self.api, self.vault_ref(resource_group_name, vault_name), job_id)

    def _list_jobs_flow(
        self, limit: int | None, resource_group_name: str | None, vault_name: str | None, **filters: Any
    ) -> Flow[list[BackupJob]]:
        vault = self.vault_ref(resource_group_name, vault_name)
        request = self.api.list_jobs(vault, protocol.build_job_filter(**filters))
        return protocol.list_pages(self.api, request, protocol.parse_job, limit)

    def _cancel_job_flow(
        self, job_id: str, wait: bool, resource_group_name: str | None, vault_name: str | None
    ) -> Flow[None]:
        vault = self.vault_ref(resource_group_name, vault_name)
        return protocol.cancel_job(self.api, vault, job_id, self.wait_settings, follow=wait)

    def _wait_for_job_flow(
        self,
        job_id: str,
        poll_interval: float,
        deadline: float,
        resource_group_name: str | None,
        vault_name: str | None,
    ) -> Flow[protocol.JobWaitResult]:
        vault = self.vault_ref(resource_group_name, vault_name)
        return protocol.wait_for_job(self.api, vault, job_id, poll_interval=poll_interval, deadline=deadline)

    def _cancel_logged(self, job_id: str, reason: str, error: Exception | None) -> bool:
        """The one log line of a best-effort cancel (sync and async); whether the request was sent."""
        if error is not None:
            self.log.warning("Could not cancel backup job %s (%s): %s", job_id, reason, error)
            return False
        self.log.info("Cancellation of backup job %s requested (%s).", job_id, reason)
        return True

    def _release_credential(self) -> Any:
        """Forget the credential; return it when it has a ``close`` to call (sync, or a coroutine for the async)."""
        credential, self._credential = self._credential, None
        return credential if hasattr(credential, "close") else None
