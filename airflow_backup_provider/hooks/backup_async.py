"""The async hook for triggers: the same flows as :class:`~.backup.AzureBackupHook`, over ``aiohttp``.

Rule: this is the only module that imports the async stack (``aiohttp``, ``azure.identity.aio``, ``yarl``), and it
imports it at load time: the trigger module imports this one, so a trigger never imports on the triggerer's event
loop, while the sync path (a reschedule poke) never loads it at all.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any, TypeVar

import aiohttp
from airflow.providers.common.compat.sdk import BaseHook
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential
from yarl import URL

from airflow_backup_provider import core as protocol
from airflow_backup_provider.core import (
    ApiResponse,
    BackupJob,
    ConnectionSettings,
    Flow,
    Send,
    Sleep,
    TransportFailure,
    TriggeredOperation,
)
from airflow_backup_provider.exceptions import AzureBackupError
from airflow_backup_provider.hooks.client import AzureBackupHookBase, _user_agent
from airflow_backup_provider.hooks.credentials import CredentialTypes

T = TypeVar("T")

ASYNC_CREDENTIALS = CredentialTypes(AsyncClientSecretCredential, AsyncDefaultAzureCredential, asynchronous=True)


def _yarl_origin(url: URL) -> protocol.Origin | None:
    """The origin aiohttp connects to for a yarl URL (None when it has userinfo or is not https)."""
    user = url.user or url.password
    return protocol.origin_from_parts(url.scheme, user, url.raw_host, url.port)


class AzureBackupAsyncHook(AzureBackupHookBase):
    """
    Async hook for triggers: the flows of :class:`~.backup.AzureBackupHook` over ``aiohttp`` + ``azure.identity.aio``.

    It shares the transport-free base with the sync hook, not the sync hook itself: it has no blocking API method.
    Connection access is asynchronous (never the sync ``get_connection`` on the triggerer's event loop).
    Use as ``async with AzureBackupAsyncHook(conn_id) as hook: job = await hook.aget_job(job_id)``.
    """

    _credential_types = ASYNC_CREDENTIALS

    def __init__(self, azure_backup_conn_id: str = AzureBackupHookBase.default_conn_name, **kwargs: Any) -> None:
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
        fetch = self._token_request(refresh)
        if fetch is not None:
            credential, kwargs = fetch
            self._token = await credential.get_token(self.settings.scope, **kwargs)
        return self._cached_token()

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
            return self._cancel_logged(job_id, reason, exc)
        return self._cancel_logged(job_id, reason, None)

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
        credential = self._release_credential()
        if credential is not None:
            await credential.close()


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
