"""Hooks for Azure Backup (Recovery Services vaults) over the ARM REST API.

:class:`AzureBackupHook` sends requests with ``requests``; :class:`AzureBackupAsyncHook` (for triggers) with
``aiohttp``. Both only *drive* the flows of :mod:`airflow_backup_provider.protocol`: every URL, body, parse,
status rule and retry decision comes from there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

# aiohttp and azure.identity.aio are imported with the module, not on first use: an import inside a trigger would
# block the triggerer's event loop.
import aiohttp
import requests
import urllib3
from airflow.providers.common.compat.sdk import BaseHook
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential
from yarl import URL

from airflow_backup_provider import protocol
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupError, AzureBackupForeignHostError
from airflow_backup_provider.protocol import (
    DEFAULT_API_VERSION,
    ApiResponse,
    BackupApi,
    BackupJob,
    ConnectionSettings,
    Flow,
    ItemRef,
    ProtectedItem,
    RecoveryPoint,
    RetryPolicy,
    Send,
    Sleep,
    TransportFailure,
    TriggeredOperation,
    Vault,
    VaultRef,
    WaitSettings,
)

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken

T = TypeVar("T")

# azure-identity's HTTP pipeline logs every token request with its headers at INFO; task logs need none of that
# (the WASB hook of the azure provider does the same).
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def _user_agent(transport: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("airflow-backup-provider")
    except PackageNotFoundError:  # running from a source tree
        own = "dev"
    return f"airflow-backup-provider/{own} {transport}"


# Re-use a token until this many seconds before it expires.
TOKEN_REFRESH_MARGIN = 120.0


def _force_refresh_claims() -> str:
    # A CAE-style "nbf" claims challenge makes azure-identity/MSAL skip their token cache and fetch a new token.
    return json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}})


class AzureBackupHook(BaseHook):
    """
    Interact with Azure Backup (Recovery Services vaults) through the Azure Resource Manager REST API.

    Sign-in: ``login`` (client id) + ``password`` (client secret) + extra ``tenant_id`` use a
    ``ClientSecretCredential``; otherwise ``DefaultAzureCredential`` (managed identity, workload identity, ...) via the
    azure provider's helpers. The vault and resource group of each call default to the connection's extras.

    :param azure_backup_conn_id: The Airflow connection id (type ``azure_backup``).
    :param api_version: Recovery Services backup api-version (default ``2026-10-01``).
    :param request_timeout: Seconds for every HTTP request: ``(connect, read)`` or one number.
    :param retry_policy: Bounded retry settings (attempts, backoff, cap on ``Retry-After``).
    :param operation_poll_interval: Seconds between polls of an async operation when the service gives no
        ``Retry-After``.
    :param operation_timeout: Seconds to wait for an async operation (trigger → jobId, cancel) to finish.
    """

    conn_type = "azure_backup"
    conn_name_attr = "azure_backup_conn_id"
    default_conn_name = "azure_backup_default"
    hook_name = "Azure Backup"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the Airflow 2 connection form (Airflow 3 reads ``conn-fields`` of get_provider_info)."""
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import StringField
        except ImportError:  # Airflow 3: no Flask AppBuilder; the form comes from conn-fields
            return {}
        from airflow_backup_provider.get_provider_info import get_provider_info

        fields = get_provider_info()["connection-types"][0]["conn-fields"]
        return {
            name: StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"])
            for name, spec in fields.items()
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form behaviour (Airflow 2 UI; Airflow 3 reads ``get_provider_info``)."""
        from airflow_backup_provider.get_provider_info import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

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
        """Which azure-identity credential to build, and with what (shared by the sync and async hooks)."""
        s = self.settings
        if s.uses_client_secret:
            kwargs: dict[str, Any] = {
                "tenant_id": s.tenant_id,
                "client_id": s.client_id,
                "client_secret": self._secret,
                "authority": s.authority_host,
                # Token requests get the same timeouts as ARM requests.
                "connection_timeout": self.request_timeout[0],
                "read_timeout": self.request_timeout[1],
            }
            if s.authority_is_custom:
                # An emulator or private authority is unknown to Entra's instance discovery.
                kwargs["disable_instance_discovery"] = True
            return "ClientSecretCredential", kwargs
        return "DefaultAzureCredential", {
            "managed_identity_client_id": s.managed_identity_client_id,
            "workload_identity_tenant_id": s.workload_identity_tenant_id,
            "authority": s.authority_host,
            "connection_timeout": self.request_timeout[0],
            "read_timeout": self.request_timeout[1],
        }

    # The azure-identity flavour this hook uses; the async twin flips it.
    _asynchronous = False

    def get_credential(self) -> Any:
        """Return the (cached) azure-identity credential (``azure.identity`` or ``azure.identity.aio``)."""
        if self._credential is None:
            kind, kwargs = self._credential_kwargs()
            if kind == "ClientSecretCredential":
                cls = AsyncClientSecretCredential if self._asynchronous else ClientSecretCredential
                self._credential = cls(**kwargs)
            else:
                self._credential = _default_credential(kwargs, asynchronous=self._asynchronous)
        return self._credential

    def _token_request(self, refresh: bool) -> dict[str, Any] | None:
        """Keyword arguments for ``credential.get_token`` when a token must be fetched; None if the cached one will do.

        A forced refresh (after a 401) passes a claims challenge, which makes MSAL skip its own cache.
        """
        if not refresh and self._token is not None and self._token.expires_on - time.time() > TOKEN_REFRESH_MARGIN:
            return None
        self.token_requests += 1
        return {"claims": _force_refresh_claims()} if refresh else {}

    def get_token(self, *, refresh: bool = False) -> str:
        """Return a bearer token for ARM, cached per hook; ``refresh`` forces a new one (after a 401)."""
        kwargs = self._token_request(refresh)
        if kwargs is not None:
            credential = self.get_credential()
            try:
                self._token = credential.get_token(self.settings.scope, **kwargs)
            except TypeError:  # a credential without claims support
                self._token = credential.get_token(self.settings.scope)
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

    # -- transport --------------------------------------------------------------------------------------------------
    @cached_property
    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = _user_agent(f"requests/{requests.__version__}")
        return session

    def _send(self, action: Send) -> ApiResponse | TransportFailure:
        request = action.request
        session = self._session
        # Prepare first, then check the origin urllib3 will connect to for *this* prepared URL, then add the token.
        prepared = session.prepare_request(requests.Request(request.method, request.url, json=request.body))
        token = self.get_token(refresh=action.refresh_token)
        prepared.headers.update(self._bearer_headers(request, _requests_origin(prepared.url), token))
        try:
            environment = session.merge_environment_settings(prepared.url, {}, None, True, None)
            environment["verify"] = environment.get("verify") or True  # never off, whatever the environment says
            response = session.send(prepared, timeout=self.request_timeout, allow_redirects=False, **environment)
        except requests.exceptions.SSLError as exc:
            raise AzureBackupError(f"TLS verification failed for {protocol.redact_url(request.url)}: {exc}") from None
        except requests.exceptions.ConnectTimeout as exc:
            return TransportFailure("connect", type(exc).__name__)
        except requests.exceptions.Timeout as exc:
            return TransportFailure("timeout", type(exc).__name__)
        except requests.exceptions.ConnectionError as exc:
            return TransportFailure(_classify_connection_error(exc), f"{type(exc).__name__}: {_root_cause(exc)}")
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            return TransportFailure("reset", f"{type(exc).__name__}: {_root_cause(exc)}")
        headers_out = {k.lower(): v for k, v in response.headers.items()}
        return self._log_response(request, ApiResponse(response.status_code, headers_out, response.content))

    def run(self, flow: Flow[T]) -> T:
        """Drive a protocol flow with blocking I/O."""
        outcome: ApiResponse | TransportFailure | None = None
        try:
            while True:
                action = flow.send(outcome)
                if isinstance(action, Sleep):
                    time.sleep(action.seconds)
                    outcome = None
                else:
                    outcome = self._send(action)
        except StopIteration as stop:
            return stop.value

    # -- API --------------------------------------------------------------------------------------------------------
    def get_vault(self, *, resource_group_name: str | None = None, vault_name: str | None = None) -> Vault:
        """Get the Recovery Services vault."""
        vault = self.vault_ref(resource_group_name, vault_name)
        return self.run(protocol.call_parsed(self.api.get_vault(vault), self.retry_policy, protocol.parse_vault))

    def build_backup_request(self, container_name: str, **kwargs: Any) -> dict[str, Any]:
        """Build the backup request body; see :func:`airflow_backup_provider.protocol.build_backup_request`."""
        return protocol.build_backup_request(container_name=container_name, **kwargs)

    # -- flows shared by the sync methods below and the async twin's --------------------------------------------------
    def _trigger_backup_flow(  # noqa: PLR0917 (private; the sync method and its async twin pass positionally)
        self,
        container_name: str,
        protected_item_name: str,
        backup_request: Mapping[str, Any] | None,
        resource_group_name: str | None,
        vault_name: str | None,
        on_accepted: Callable[[protocol.OperationHandle], None] | None = None,
    ) -> Flow[TriggeredOperation]:
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        body = dict(backup_request) if backup_request else self.build_backup_request(container_name)
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

    # -- sync API ---------------------------------------------------------------------------------------------------
    def trigger_backup(
        self,
        container_name: str,
        protected_item_name: str,
        *,
        backup_request: Mapping[str, Any] | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
        on_accepted: Callable[[protocol.OperationHandle], None] | None = None,
    ) -> TriggeredOperation:
        """
        Trigger an on-demand backup and follow its asynchronous operation to the job id.

        :param container_name: Container name as returned by the list APIs (``IaasVMContainer;...``).
        :param protected_item_name: Protected item name (``VM;...``).
        :param backup_request: The request body ``{"properties": {...}}``; default: inferred from the container.
        :param on_accepted: Called with the operation handle as soon as Azure accepted the POST (202).
        :return: the operation id and the job id.
        """
        return self.run(
            self._trigger_backup_flow(
                container_name, protected_item_name, backup_request, resource_group_name, vault_name, on_accepted
            )
        )

    def find_jobs_of_request(
        self,
        container_name: str,
        protected_item_name: str,
        posted_at: datetime,
        *,
        operation: str = "Backup",
        skew: timedelta,
        visible_within: float,
        poll_interval: float = 5.0,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> list[BackupJob]:
        """The jobs (finished ones included) a POST sent at ``posted_at`` may have started; see the protocol flow."""
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        return self.run(
            protocol.find_jobs_of_request(
                self.api,
                item,
                posted_at,
                operation=operation,
                skew=skew,
                visible_within=visible_within,
                poll_interval=poll_interval,
                now=lambda: datetime.now(timezone.utc),
            )
        )

    def get_job(
        self, job_id: str, *, resource_group_name: str | None = None, vault_name: str | None = None
    ) -> BackupJob:
        """Get a backup job by id."""
        return self.run(self._get_job_flow(job_id, resource_group_name, vault_name))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        operation: str | None = None,
        backup_management_type: str | None = None,
        start_time: datetime | str | None = None,
        end_time: datetime | str | None = None,
        limit: int | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> list[BackupJob]:
        """List jobs (newest first), following ``nextLink``; filters are validated and combined with ``and``."""
        return self.run(
            self._list_jobs_flow(
                limit,
                resource_group_name,
                vault_name,
                status=status,
                operation=operation,
                backup_management_type=backup_management_type,
                start_time=start_time,
                end_time=end_time,
            )
        )

    def cancel_job(
        self,
        job_id: str,
        *,
        wait: bool = True,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> None:
        """Cancel a job (it then goes Cancelling → Cancelled).

        :param wait: Follow the cancel operation until the service has processed it; ``False`` only sends the
            request (for kill paths, which have seconds, not the operation's Retry-After).
        """
        self.run(self._cancel_job_flow(job_id, wait, resource_group_name, vault_name))

    def get_protected_item(
        self,
        container_name: str,
        protected_item_name: str,
        *,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> ProtectedItem:
        """Get one protected item."""
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        request = self.api.get_protected_item(item)
        return self.run(protocol.call_parsed(request, self.retry_policy, protocol.parse_protected_item))

    def list_protected_items(
        self,
        *,
        backup_management_type: str | None = None,
        item_type: str | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> list[ProtectedItem]:
        """List the vault's protected items (optionally by backup management type and item type)."""
        vault = self.vault_ref(resource_group_name, vault_name)
        clauses = []
        if backup_management_type:
            clauses.append(
                f"backupManagementType eq '{protocol.odata_value('backup_management_type', backup_management_type)}'"
            )
        if item_type:
            clauses.append(f"itemType eq '{protocol.odata_value('item_type', item_type)}'")
        request = self.api.list_protected_items(vault, " and ".join(clauses) or None)
        return self.run(protocol.list_pages(self.api, request, protocol.parse_protected_item, None))

    def list_recovery_points(
        self,
        container_name: str,
        protected_item_name: str,
        *,
        start_time: datetime | str | None = None,
        end_time: datetime | str | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> list[RecoveryPoint]:
        """List recovery points of an item, optionally between ``start_time`` and ``end_time``."""
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        odata = None
        if start_time is not None or end_time is not None:
            # The filter has whole seconds; an open end reaches a little into the future so that a point created
            # this very second is not cut off.
            end = (
                protocol.coerce_datetime("end_time", end_time)
                if end_time
                else datetime.now(timezone.utc) + timedelta(hours=1)
            )
            start = protocol.coerce_datetime("start_time", start_time) if start_time else end - timedelta(days=365)
            odata = (
                f"startDate eq '{protocol.format_filter_datetime(start)}' and "
                f"endDate eq '{protocol.format_filter_datetime(end)}'"
            )
        request = self.api.list_recovery_points(item, odata)
        return self.run(protocol.list_pages(self.api, request, protocol.parse_recovery_point, None))

    def trigger_restore(
        self,
        container_name: str,
        protected_item_name: str,
        recovery_point_id: str,
        restore_request: Mapping[str, Any],
        *,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> TriggeredOperation:
        """Trigger a restore from a recovery point and follow its operation to the job id.

        :param restore_request: The ``RestoreRequest`` properties (``objectType`` ``IaasVMRestoreRequest``, ...).
        """
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        props = (
            dict(restore_request.get("properties", restore_request)) if isinstance(restore_request, Mapping) else None
        )
        if not props or not isinstance(props.get("objectType"), str):
            raise AzureBackupConfigError(
                "restore_request", restore_request, "needs an objectType (e.g. IaasVMRestoreRequest)"
            )
        request = self.api.trigger_restore(
            item, protocol.require_name("recovery_point_id", recovery_point_id), {"properties": props}
        )
        return self.run(protocol.trigger_and_follow(self.api, request, item, self.wait_settings))

    def find_in_progress_backup(
        self,
        container_name: str,
        protected_item_name: str,
        *,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> BackupJob | None:
        """Return the running backup job of this item, if there is one."""
        item = self.get_protected_item(
            container_name, protected_item_name, resource_group_name=resource_group_name, vault_name=vault_name
        )
        vault = self.vault_ref(resource_group_name, vault_name)
        return self.run(protocol.find_in_progress_backup(self.api, vault, item, datetime.now(timezone.utc)))

    def list_item_backup_jobs(
        self,
        item: ProtectedItem,
        *,
        start_time: datetime,
        end_time: datetime | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> list[BackupJob]:
        """Backup jobs (any status) of a protected item that started in the window, newest first."""
        vault = self.vault_ref(resource_group_name, vault_name)
        end = end_time or datetime.now(timezone.utc) + timedelta(minutes=5)
        return self.run(protocol.find_item_backup_jobs(self.api, vault, item, start=start_time, end=end))

    def explain_job_not_found(
        self,
        job_id: str,
        error: protocol.AzureBackupNotFoundError,
        *,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> None:
        """Return when a job 404 means "not visible yet" (its vault exists); raise naming the vault when it is gone."""
        vault = self.vault_ref(resource_group_name, vault_name)
        self.run(protocol.explain_job_not_found(self.api, vault, job_id, error))

    def cancel_job_quietly(
        self, job_id: str, reason: str, *, resource_group_name: str | None = None, vault_name: str | None = None
    ) -> bool:
        """Send a cancel request, logging instead of raising (kill and timeout paths). Return whether it was sent."""
        try:
            # Only the request: a killed task has seconds, the cancel operation's Retry-After is a minute.
            self.cancel_job(job_id, wait=False, resource_group_name=resource_group_name, vault_name=vault_name)
        except Exception as exc:  # best effort; never mask the task's own outcome
            self.log.warning("Could not cancel backup job %s (%s): %s", job_id, reason, exc)
            return False
        self.log.info("Cancellation of backup job %s requested (%s).", job_id, reason)
        return True

    def get_operation_status(
        self,
        container_name: str,
        protected_item_name: str,
        operation_id: str,
        *,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> protocol.OperationStatus:
        """Read a backup/restore operation's status once (``operationsStatus/{operationId}`` of the item)."""
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        request = self.api.get_item_operation_status(item, protocol.require_name("operation_id", operation_id))
        return self.run(protocol.call_parsed(request, self.retry_policy, protocol.parse_operation_status))

    def wait_for_job(
        self,
        job_id: str,
        *,
        poll_interval: float = 30.0,
        timeout: float = 7 * 24 * 3600.0,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> BackupJob:
        """Poll a job until it is terminal and return it (404s right after the trigger are waited out).

        :raises AzureBackupTimeoutError: when ``timeout`` seconds pass first.
        """
        result = self.run(
            self._wait_for_job_flow(job_id, poll_interval, time.time() + timeout, resource_group_name, vault_name)
        )
        if result.timed_out or result.job is None:
            raise protocol.AzureBackupTimeoutError(f"job {job_id} not finished after {timeout:g} s")
        return result.job

    def test_connection(self) -> tuple[bool, str]:
        """Sign in and read the default vault (or only sign in when no vault is configured)."""
        try:
            settings = self.settings
            if settings.resource_group_name and settings.vault_name:
                vault = self.get_vault()
                return True, f"Connected: vault {vault.name!r} ({vault.location or 'location ?'}) is reachable."
            self.get_token()
            return True, "Signed in to Azure Resource Manager; set resource_group_name and vault_name to check a vault."
        except Exception as exc:  # the UI shows the message; never the secret (messages never contain it)
            return False, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        if "_session" in self.__dict__:
            self._session.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            self._credential.close()
        self._credential = None


def plain_hook_params(hook_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Hook parameters as plain JSON values, for trigger kwargs (a ``RetryPolicy`` becomes a dict)."""
    plain: dict[str, Any] = {}
    for key, value in (hook_params or {}).items():
        if isinstance(value, RetryPolicy):
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            value = list(value)
        plain[key] = value
    json.dumps(plain)  # fail at deferral time, not in the triggerer, if something is not serialisable
    return plain


def hook_params_from_plain(plain: Mapping[str, Any] | None) -> dict[str, Any]:
    """Inverse of :func:`plain_hook_params`."""
    params = dict(plain or {})
    if isinstance(params.get("retry_policy"), Mapping):
        params["retry_policy"] = RetryPolicy(**params["retry_policy"])
    if isinstance(params.get("request_timeout"), list):
        params["request_timeout"] = tuple(params["request_timeout"])
    return params


def _default_credential(kwargs: Mapping[str, Any], *, asynchronous: bool) -> Any:
    """``DefaultAzureCredential``: via the azure provider's helpers where they do what the connection says.

    The helpers pass the identity ids only when *both* are set and know only the public cloud; a user-assigned
    managed identity alone, or another cloud's authority, is passed to azure-identity directly.
    """
    from airflow_backup_provider.protocol import CLOUDS

    mi, wi, authority = kwargs["managed_identity_client_id"], kwargs["workload_identity_tenant_id"], kwargs["authority"]
    if authority == CLOUDS["AzureCloud"].authority_host and bool(mi) == bool(wi):
        from airflow.providers.microsoft.azure.utils import (
            get_async_default_azure_credential,
            get_sync_default_azure_credential,
        )

        helper = get_async_default_azure_credential if asynchronous else get_sync_default_azure_credential
        return helper(managed_identity_client_id=mi, workload_identity_tenant_id=wi)
    cls: Any = AsyncDefaultAzureCredential if asynchronous else DefaultAzureCredential
    extra: dict[str, Any] = {
        "authority": authority,
        "connection_timeout": kwargs["connection_timeout"],
        "read_timeout": kwargs["read_timeout"],
    }
    if mi:
        extra["managed_identity_client_id"] = mi
    if wi:
        extra.update(workload_identity_tenant_id=wi, additionally_allowed_tenants=[wi])
    return cls(**extra)


def _requests_origin(url: str | None) -> protocol.Origin | None:
    """The origin urllib3 connects to for a prepared ``requests`` URL (None when it has userinfo or is not https)."""
    try:
        parsed = urllib3.util.parse_url(url or "")
    except urllib3.exceptions.LocationParseError:
        return None
    return protocol.origin_from_parts(parsed.scheme, parsed.auth, parsed.host, parsed.port)


def _yarl_origin(url: URL) -> protocol.Origin | None:
    """The origin aiohttp connects to for a yarl URL (None when it has userinfo or is not https)."""
    user = url.user or url.password
    return protocol.origin_from_parts(url.scheme, user, url.raw_host, url.port)


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc)[:200]


def _classify_connection_error(exc: requests.exceptions.ConnectionError) -> protocol.TransportFailureKind:
    """``connect`` when the request never reached the service (refused, DNS), else ``reset``."""
    text = repr(exc)
    if "NewConnectionError" in text or "NameResolutionError" in text or "Connection refused" in text:
        return "connect"
    return "reset"


class AzureBackupAsyncHook(AzureBackupHook):
    """
    Async twin of :class:`AzureBackupHook` for triggers: ``aiohttp`` + ``azure.identity.aio``.

    Connection access is asynchronous (never the sync ``get_connection`` on the triggerer's event loop).
    Use as ``async with AzureBackupAsyncHook(conn_id) as hook: job = await hook.get_job(job_id)``.
    """

    _asynchronous = True

    def __init__(self, azure_backup_conn_id: str = AzureBackupHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(azure_backup_conn_id, **kwargs)
        self._client: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AzureBackupAsyncHook:
        await self.load_settings()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def load_settings(self) -> ConnectionSettings:
        if self._settings is None:
            conn = await _aget_connection(self.azure_backup_conn_id)
            self._load_settings(conn, await _aextras(conn))
        assert self._settings is not None
        return self._settings

    async def aget_token(self, *, refresh: bool = False) -> str:
        """Async :meth:`get_token`: same cache and refresh rules."""
        kwargs = self._token_request(refresh)
        if kwargs is not None:
            credential = self.get_credential()
            try:
                self._token = await credential.get_token(self.settings.scope, **kwargs)
            except TypeError:  # a credential without claims support
                self._token = await credential.get_token(self.settings.scope)
        assert self._token is not None
        return self._token.token

    def _client_session(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            connect, read = self.request_timeout
            timeout = aiohttp.ClientTimeout(total=connect + read, sock_connect=connect, sock_read=read)
            # create_default_context honours SSL_CERT_FILE; verification stays on.
            connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
            self._client = aiohttp.ClientSession(
                timeout=timeout,
                connector=connector,
                headers={"User-Agent": _user_agent(f"aiohttp/{aiohttp.__version__}")},
            )
        return self._client

    async def _asend(self, action: Send) -> ApiResponse | TransportFailure:
        request = action.request
        # The URL is already percent-encoded by BackupApi; aiohttp must not re-quote it. The origin is checked on
        # the very yarl URL aiohttp connects to.
        url = URL(request.url, encoded=True)
        token = await self.aget_token(refresh=action.refresh_token)
        headers = self._bearer_headers(request, _yarl_origin(url), token)
        try:
            async with self._client_session().request(
                request.method,
                url,
                json=request.body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                headers_out = {k.lower(): v for k, v in response.headers.items()}
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise AzureBackupError(f"TLS verification failed for {protocol.redact_url(request.url)}: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            return TransportFailure("connect", f"{type(exc).__name__}: {exc}")
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            return TransportFailure("timeout", type(exc).__name__)
        except aiohttp.ClientError as exc:  # resets, disconnects, payload errors: no complete response
            return TransportFailure("reset", f"{type(exc).__name__}: {exc}")
        return self._log_response(request, ApiResponse(response.status, headers_out, body))

    async def arun(self, flow: Flow[T]) -> T:
        """Drive a protocol flow with non-blocking I/O."""
        await self.load_settings()
        outcome: ApiResponse | TransportFailure | None = None
        try:
            while True:
                action = flow.send(outcome)
                if isinstance(action, Sleep):
                    await asyncio.sleep(action.seconds)
                    outcome = None
                else:
                    outcome = await self._asend(action)
        except StopIteration as stop:
            return stop.value

    # -- API (same flows as the sync hook) --------------------------------------------------------------------------
    async def aget_job(
        self, job_id: str, *, resource_group_name: str | None = None, vault_name: str | None = None
    ) -> BackupJob:
        await self.load_settings()
        return await self.arun(self._get_job_flow(job_id, resource_group_name, vault_name))

    async def acancel_job(
        self,
        job_id: str,
        *,
        wait: bool = True,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> None:
        await self.load_settings()
        await self.arun(self._cancel_job_flow(job_id, wait, resource_group_name, vault_name))

    async def acancel_job_quietly(
        self, job_id: str, reason: str, *, resource_group_name: str | None = None, vault_name: str | None = None
    ) -> bool:
        """Async :meth:`cancel_job_quietly`: send the cancel request only, log instead of raising."""
        try:
            await self.acancel_job(job_id, wait=False, resource_group_name=resource_group_name, vault_name=vault_name)
        except Exception as exc:  # best effort: the task outcome must not depend on it
            self.log.warning("Could not cancel backup job %s (%s): %s", job_id, reason, exc)
            return False
        self.log.info("Cancellation of backup job %s requested (%s).", job_id, reason)
        return True

    async def await_job(
        self,
        job_id: str,
        *,
        poll_interval: float,
        deadline: float,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> protocol.JobWaitResult:
        """Poll a job until it is terminal or the Unix-time ``deadline`` passes (see ``protocol.wait_for_job``)."""
        await self.load_settings()
        return await self.arun(
            self._wait_for_job_flow(job_id, poll_interval, deadline, resource_group_name, vault_name)
        )

    async def atrigger_backup(
        self,
        container_name: str,
        protected_item_name: str,
        *,
        backup_request: Mapping[str, Any] | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> TriggeredOperation:
        await self.load_settings()
        return await self.arun(
            self._trigger_backup_flow(
                container_name, protected_item_name, backup_request, resource_group_name, vault_name
            )
        )

    async def alist_jobs(
        self,
        *,
        status: str | None = None,
        operation: str | None = None,
        limit: int | None = None,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
    ) -> list[BackupJob]:
        await self.load_settings()
        return await self.arun(
            self._list_jobs_flow(limit, resource_group_name, vault_name, status=status, operation=operation)
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()
        self._credential = None


async def _aextras(conn: Any) -> Any:
    """Connection extras without the sync ``extra_dejson`` (its secret masking must not run on the event loop)."""
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:  # older common-compat (Python 3.10 installs): mask in a worker thread
        return await asyncio.to_thread(lambda: conn.extra_dejson)
    return await get_async_extra_dejson(conn)


async def _aget_connection(conn_id: str) -> Any:
    """Fetch a connection without blocking the event loop (Airflow 3: async API; 2.11: in a thread)."""
    try:
        from airflow.providers.common.compat.connection import get_async_connection
    except ImportError:  # older common-compat
        return await asyncio.to_thread(BaseHook.get_connection, conn_id)
    return await get_async_connection(conn_id)
