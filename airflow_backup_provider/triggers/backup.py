"""Deferrable trigger that waits for an Azure Backup job in the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from azure.core.exceptions import AzureError

from airflow_backup_provider.core import build_job_event, describe_job_failure, job_event_status
from airflow_backup_provider.exceptions import AzureBackupError
from airflow_backup_provider.hooks.backup import hook_params_from_plain, plain_hook_params
from airflow_backup_provider.hooks.backup_async import AzureBackupAsyncHook
from airflow_backup_provider.triggers.watcher import wait_batched_event


class BackupJobTrigger(BaseTrigger):
    """
    Poll a backup job from the triggerer until it is terminal or a wall-clock deadline passes.

    Only ids and plain values are serialized (never a token or secret). The deadline is Unix time
    (``time.time()``), because the worker that computed it and the triggerer may be different hosts.

    :param job_id: The backup job id.
    :param azure_backup_conn_id: The Azure Backup connection id.
    :param end_time: Unix time after which a ``timeout`` event is emitted.
    :param poll_interval: Seconds between polls.
    :param resource_group_name: Vault resource group (default: the connection's).
    :param vault_name: Vault name (default: the connection's).
    :param cancel_on_timeout: Cancel the job when the deadline passes.
    :param cancel_on_kill: Cancel the job when the deferred task is killed (``BaseTrigger.on_kill``, Airflow 3.3+).
    :param hook_params: Plain-JSON :class:`AzureBackupAsyncHook` parameters (timeouts, retry policy as a dict).
    :param batched: Share one watcher per (connection, vault) with the other batched triggers of this triggerer: one
        jobs listing per interval for them all, one session and credential (:mod:`.watcher`). False: this trigger
        polls its own job with its own hook.
    """

    def __init__(
        self,
        *,
        job_id: str,
        azure_backup_conn_id: str,
        end_time: float,
        poll_interval: float = 60.0,
        resource_group_name: str | None = None,
        vault_name: str | None = None,
        cancel_on_timeout: bool = False,
        cancel_on_kill: bool = False,
        hook_params: dict[str, Any] | None = None,
        batched: bool = True,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.azure_backup_conn_id = azure_backup_conn_id
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.resource_group_name = resource_group_name
        self.vault_name = vault_name
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.hook_params = plain_hook_params(hook_params)
        self.batched = bool(batched)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__name__}",
            {
                "job_id": self.job_id,
                "azure_backup_conn_id": self.azure_backup_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "resource_group_name": self.resource_group_name,
                "vault_name": self.vault_name,
                "cancel_on_timeout": self.cancel_on_timeout,
                "cancel_on_kill": self.cancel_on_kill,
                "hook_params": self.hook_params,
                "batched": self.batched,
            },
        )

    def _hook(self) -> AzureBackupAsyncHook:
        return AzureBackupAsyncHook(self.azure_backup_conn_id, **hook_params_from_plain(self.hook_params))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The event is computed with the hook open and yielded after it is closed: the triggerer may never resume
        # this generator after the first event, and an aiohttp session must not be left to the garbage collector.
        yield TriggerEvent(await self._wait_for_job())

    async def _wait_for_job(self) -> dict[str, Any]:
        if self.batched:
            return await wait_batched_event(self)
        try:
            async with self._hook() as hook:
                result = await hook.await_job(
                    self.job_id,
                    poll_interval=self.poll_interval,
                    deadline=self.end_time,
                    resource_group_name=self.resource_group_name,
                    vault_name=self.vault_name,
                )
                job = result.job
                if result.timed_out or job is None:
                    if self.cancel_on_timeout:
                        await self._cancel(hook, "deadline passed")
                    state = job.status if job else "not visible"
                    return build_job_event(
                        "timeout", self.job_id, f"Job {self.job_id} still {state} at the deadline", job
                    )
        except (AzureBackupError, AzureError) as exc:  # AzureError: sign-in failures from azure-identity
            # The hook already retried what is retriable; a transient failure never cancels the job.
            return build_job_event("error", self.job_id, f"{type(exc).__name__}: {exc}")
        status = job_event_status(job)
        assert status is not None  # a terminal job always maps to an event
        message = describe_job_failure(job) if status == "failed" else f"Job {job.status}"
        return build_job_event(status, self.job_id, message, job)

    async def _cancel(self, hook: AzureBackupAsyncHook, reason: str) -> None:
        await hook.acancel_job_quietly(
            self.job_id, reason, resource_group_name=self.resource_group_name, vault_name=self.vault_name
        )

    async def on_kill(self) -> None:
        """Cancel the job when the user kills the deferred task (Airflow 3.3 calls this; 2.x never does)."""
        if not self.cancel_on_kill:
            return
        async with self._hook() as hook:
            await self._cancel(hook, "task killed")
