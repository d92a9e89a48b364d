"""The sync hook for Azure Backup (Recovery Services vaults) over the ARM REST API, with ``requests``.

Rule: a hook only *drives* the flows of :mod:`airflow_backup_provider.core` (every URL, body, parse, status rule
and retry decision comes from there); what the sync and async hooks share lives in their transport-free base,
:class:`~airflow_backup_provider.hooks.client.AzureBackupHookBase`. This module never imports the async stack:
:class:`AzureBackupAsyncHook` is in :mod:`.backup_async` (still importable from here, loaded on first access).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import urllib3

from airflow_backup_provider import core as protocol
from airflow_backup_provider.core import (
    ApiResponse,
    BackupJob,
    Flow,
    ProtectedItem,
    RecoveryPoint,
    RetryPolicy,
    Send,
    Sleep,
    TransportFailure,
    TriggeredOperation,
    Vault,
)
from airflow_backup_provider.exceptions import (
    AzureBackupError,
    AzureBackupNotFoundError,
    AzureBackupTimeoutError,
)
from airflow_backup_provider.hooks.client import AzureBackupHookBase, _user_agent

if TYPE_CHECKING:
    pass

T = TypeVar("T")


class AzureBackupHook(AzureBackupHookBase):
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
    hook_name = "Azure Backup"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the Airflow 2 connection form (Airflow 3 reads ``conn-fields`` of get_provider_info)."""
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget, Select2Widget
            from flask_babel import lazy_gettext
            from wtforms import SelectField, StringField
        except ImportError:  # Airflow 3: no Flask AppBuilder; the form comes from conn-fields
            return {}
        from airflow_backup_provider.get_provider_info import get_provider_info

        fields = get_provider_info()["connection-types"][0]["conn-fields"]
        widgets: dict[str, Any] = {}
        for name, spec in fields.items():
            label, schema = lazy_gettext(spec["label"]), spec["schema"]
            if "enum" in schema:  # the Cloud: a select with the same choices and default as Airflow 3's form
                choices = [(value, value) for value in schema["enum"]]
                widgets[name] = SelectField(
                    label,
                    choices=choices,
                    default=schema.get("default"),
                    widget=Select2Widget(),
                    description=spec["description"],
                )
            else:  # default "": the Airflow 2 form writes nothing for an empty field
                widgets[name] = StringField(
                    label, widget=BS3TextFieldWidget(), default="", description=spec["description"]
                )
        return widgets

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

    def get_token(self, *, refresh: bool = False) -> str:
        """Return a bearer token for ARM, cached per hook; ``refresh`` forces a new one (after a 401)."""
        fetch = self._token_request(refresh)
        if fetch is not None:
            credential, kwargs = fetch
            self._token = credential.get_token(self.settings.scope, **kwargs)
        return self._cached_token()

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
        odata = protocol.build_protected_items_filter(
            backup_management_type=backup_management_type, item_type=item_type
        )
        request = self.api.list_protected_items(vault, odata)
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
        odata = protocol.build_recovery_point_filter(start_time=start_time, end_time=end_time)
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
        on_accepted: Callable[[protocol.OperationHandle], None] | None = None,
    ) -> TriggeredOperation:
        """Trigger a restore from a recovery point and follow its operation to the job id.

        :param restore_request: The ``RestoreRequest`` properties (``objectType`` ``IaasVMRestoreRequest``, ...).
        :param on_accepted: Called with the operation handle as soon as Azure accepted the POST (202).
        """
        item = self.item_ref(container_name, protected_item_name, resource_group_name, vault_name)
        body = protocol.build_restore_request(restore_request)
        request = self.api.trigger_restore(item, protocol.require_name("recovery_point_id", recovery_point_id), body)
        return self.run(protocol.trigger_and_follow(self.api, request, item, self.wait_settings, on_accepted))

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
        error: AzureBackupNotFoundError,
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
            return self._cancel_logged(job_id, reason, exc)
        return self._cancel_logged(job_id, reason, None)

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
            raise AzureBackupTimeoutError(f"job {job_id} not finished after {timeout:g} s")
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
        credential = self._release_credential()
        if credential is not None:
            credential.close()


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


def _requests_origin(url: str | None) -> protocol.Origin | None:
    """The origin urllib3 connects to for a prepared ``requests`` URL (None when it has userinfo or is not https)."""
    try:
        parsed = urllib3.util.parse_url(url or "")
    except urllib3.exceptions.LocationParseError:
        return None
    return protocol.origin_from_parts(parsed.scheme, parsed.auth, parsed.host, parsed.port)


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


def __getattr__(name: str) -> Any:
    # ``from airflow_backup_provider.hooks.backup import AzureBackupAsyncHook`` keeps working; the async stack
    # (aiohttp, azure.identity.aio, yarl) loads only then, never on a plain sync import (a reschedule poke).
    if name == "AzureBackupAsyncHook":
        from airflow_backup_provider.hooks.backup_async import AzureBackupAsyncHook

        return AzureBackupAsyncHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
